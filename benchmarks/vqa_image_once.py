"""VQA training steps: each image encoded once for its questions, against once per question.

The embedded `shapes_vqa` has three questions per scene. The training pipeline keeps
a scene's questions together and each batch holds every distinct image once (with
`image_index`, the row of each question's image), so the encoder runs on about 22
images per batch of 64 questions. The baseline is the same pipeline told that every
image has one question (`questions_per_image=1`): questions are shuffled one by one
and a batch holds about 64 distinct images, as before the change.

A third contender takes the image-once batches but repeats each image's regions for
its questions before FiLM, as the model did before its first FiLM block (whose
features are the image's alone until the question modulates them) ran once per image.

All three train the default `vqa` model through `fit()` (the task's compile, no
callbacks), from the same initial weights, alternating rounds in one process; prints
the median milliseconds per step of each and the ratios.

    python benchmarks/vqa_image_once.py [--steps 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import keras
from keras import ops

from kerasnotes.config import resolve_config, split
from kerasnotes.models.vqa import VqaModel
from kerasnotes.registry import create_model, get_spec
from kerasnotes.tasks import get_task
from kerasnotes.training import make_optimizer


class FilmPerQuestion(VqaModel):
    """The model with every FiLM block run once per question, as before."""

    def fuse(self, regions, question, index=None, training=False):
        if index is not None:
            regions = ops.take(regions, index, axis=0)
        return super().fuse(regions, question, None, training=training)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    task = get_task("vqa")
    config = resolve_config(
        get_spec("vqa"), derived_keys=task.derived_keys, task_settings=task.settings
    )
    data = task.load_data(config)
    info = task.data_info(data)
    _, hyperparameters = split(config, task.settings)
    keras.utils.set_random_seed(config["seed"])
    model = create_model("vqa", **hyperparameters, **task.builder_arguments(info, config))
    baseline = FilmPerQuestion.from_config(model.get_config())
    contenders = {}
    for name, net, per_image in (
        ("image once", model, info["questions_per_image"]),
        ("FiLM per question", baseline, info["questions_per_image"]),
        ("per question", model, 1),
    ):
        batches = task.batches(
            data.train,
            config,
            {**info, "questions_per_image": per_image},
            training=True,
            num_examples=data.num_examples["train"],
        )
        batches = batches.take(args.steps).cache().repeat()
        images = [int(x["images"].shape[0]) for x, _ in batches.take(args.steps)]
        contenders[name] = (net, batches, statistics.mean(images))
    for net in (model, baseline):
        net(next(iter(contenders["image once"][1]))[0])  # Builds the weights.
        task.compile(net, make_optimizer(config, args.rounds * 3 * args.steps))
    baseline.set_weights(model.get_weights())
    times = {name: [] for name in contenders}
    for round_ in range(args.rounds + 1):
        for name, (net, batches, _) in contenders.items():
            started = time.perf_counter()
            net.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0)
            if round_:  # The first round traces and warms up.
                times[name].append(1000 * (time.perf_counter() - started) / args.steps)
    result = {
        name: {
            "images_per_batch": round(images, 1),
            "ms_per_step": round(statistics.median(times[name]), 1),
            "rounds_ms": [round(t, 1) for t in times[name]],
        }
        for name, (_, _, images) in contenders.items()
    }
    once = result["image once"]["ms_per_step"]
    result["ratio_to_per_question"] = round(once / result["per question"]["ms_per_step"], 3)
    result["ratio_to_film_per_question"] = round(
        once / result["FiLM per question"]["ms_per_step"], 3
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
