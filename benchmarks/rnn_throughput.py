"""Side-by-side speed of the `rnn` family (not part of the test suite).

1. Bucketed padding: the `rnn` defaults trained on batches from its task's pipeline
   (tokenized in the pipeline, bucketed by length, each batch padded to its own
   longest text), against the same network trained on token ids padded to the longest
   text of the data, on texts whose lengths vary (1 to 15 reviews, about 5 to 250
   words). Goal: training throughput ratio >= 1.5.
2. kerasnotes vs plain Keras: the default `rnn`'s network against the same
   architecture written by hand (Embedding, Bidirectional(LSTM(64)), Dense), both fed
   the same bucketed batches of token ids of the embedded `sentiment` data.
   Goal: ratio >= 1.0.
3. The exported `serving_default` signature, text in, label out, at batch 64, in this
   process after `tf.saved_model.load`. Goal: >= 2,000 sentences/s.

Rounds alternate the contenders and report medians (step time drifts between processes
and over time on this machine; see STACK-FACTS.md).

    python benchmarks/rnn_throughput.py [--rounds 7] [--steps 150]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

import kerasnotes  # noqa: E402
from kerasnotes.data import sentences  # noqa: E402
from kerasnotes.data.text import load  # noqa: E402
from kerasnotes.tasks import get_task  # noqa: E402
from kerasnotes.text import make_tokenizer  # noqa: E402

TASK = get_task("text_classification")


def compiled(model):
    TASK.compile(model, keras.optimizers.Adam(1e-3))
    return model


def kerasnotes_rnn(vocabulary):
    """The default rnn, compiled as the trainer compiles it: its network, on ids."""
    return compiled(TASK.training_model(kerasnotes.create_model("rnn", vocabulary=vocabulary)))


def plain_keras_rnn(vocabulary):
    """The default kerasnotes rnn's network, written by hand."""
    model = keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int64"),
            layers.Embedding(len(vocabulary), 64, mask_zero=True),
            layers.Bidirectional(layers.LSTM(64, use_cudnn=False)),
            layers.Dense(2, activation="softmax"),
        ]
    )
    return compiled(model)


def examples_per_second(model, batches, steps):
    """Training examples a second over `steps` batches, after a warm-up."""
    iterator = iter(batches)
    warm = [next(iterator) for _ in range(10)]  # Traces every shape the batches take.
    timed = [next(iterator) for _ in range(steps)]
    for batch in warm:
        model.train_on_batch(*batch)
    start = time.perf_counter()
    for batch in timed:
        model.train_on_batch(*batch)
    seconds = time.perf_counter() - start
    return sum(int(batch[0].shape[0]) for batch in timed) / seconds


def varied_texts(count: int, seed: int = 0):
    """Texts of 1 to 15 reviews each, labelled by the last: lengths vary 60-fold."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(count):
        reviews = [sentences.sentiment_review(rng) for _ in range(rng.integers(1, 16))]
        texts.append(" . ".join(text for text, _ in reviews))
        labels.append(sentences.SENTIMENTS.index(reviews[-1][1]))
    return texts, np.array(labels)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    config = {"batch_size": 64, "seed": 0, "token_level": "word"}

    # 1. Bucketed batches against padding to the data's longest text.
    texts, labels = varied_texts(4000)
    adapter = make_tokenizer(max_tokens=20_000)
    adapter.adapt(texts)
    vocabulary = adapter.get_vocabulary()
    lengths = [len(t.split()) for t in texts]
    split = tf.data.Dataset.from_tensor_slices((texts, labels))
    info = {"vocabulary": vocabulary}
    bucketed = TASK.batches(split, config, info, training=True, num_examples=len(texts))
    longest = make_tokenizer(vocabulary)
    ids = longest(tf.constant(texts)).numpy()  # (examples, longest text)
    padded = (
        tf.data.Dataset.from_tensor_slices((ids, labels))
        .shuffle(len(texts), seed=0)
        .batch(64, drop_remainder=True)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    print(
        f"1. texts of {min(lengths)}-{max(lengths)} words (median {int(np.median(lengths))}); "
        f"padded to {ids.shape[1]} tokens"
    )

    # 2. The embedded sentiment data, bucketed, for kerasnotes against plain Keras.
    data = load("sentiment", "classification")
    words = make_tokenizer(max_tokens=20_000)
    words.adapt(data.train.map(lambda text, _: text).batch(1024))
    sentiment_vocabulary = words.get_vocabulary()
    info = {"vocabulary": sentiment_vocabulary}
    sentiment = TASK.batches(data.train, config, info, training=True, num_examples=12000)

    contenders = {
        "bucketed": lambda: examples_per_second(kerasnotes_rnn(vocabulary), bucketed, args.steps),
        "padded": lambda: examples_per_second(kerasnotes_rnn(vocabulary), padded, args.steps),
        "kerasnotes": lambda: examples_per_second(
            kerasnotes_rnn(sentiment_vocabulary), sentiment, args.steps
        ),
        "plain_keras": lambda: examples_per_second(
            plain_keras_rnn(sentiment_vocabulary), sentiment, args.steps
        ),
    }
    results = {name: [] for name in contenders}
    for round_index in range(args.rounds):
        # Each pair runs side by side, in alternating order.
        for pair in (("bucketed", "padded"), ("kerasnotes", "plain_keras")):
            for name in pair if round_index % 2 == 0 else reversed(pair):
                keras.utils.set_random_seed(0)
                results[name].append(contenders[name]())
    median = {k: statistics.median(v) for k, v in results.items()}
    for name, values in results.items():
        print(f"{name:>12}: {median[name]:8.1f} examples/s (median; {[round(v) for v in values]})")

    def paired(a, b):  # The median of the rounds' ratios: drift cancels within a round.
        return statistics.median(x / y for x, y in zip(results[a], results[b], strict=True))

    print(f"1. bucketed / padded to the longest: {paired('bucketed', 'padded'):.2f} (goal >= 1.5)")
    print(
        f"2. kerasnotes / plain Keras:         {paired('kerasnotes', 'plain_keras'):.3f} "
        "(goal >= 1.0)"
    )

    # 3. The export's text signature.
    model = kerasnotes.create_model("rnn", vocabulary=sentiment_vocabulary)
    info = {"class_names": ["negative", "positive"], "vocabulary": sentiment_vocabulary}
    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name, (fn, spec) in TASK.signatures(model, info, {"time_major": False}).items():
            archive.add_endpoint(name, fn, input_signature=spec)
        archive.write_out(tmp, verbose=False)
        serve = tf.saved_model.load(tmp).signatures["serving_default"]
        test = [t for t, _ in data.test.as_numpy_iterator()]
        batches = [tf.constant(test[i : i + 64]) for i in range(0, len(test) - 63, 64)]
        for batch in batches[:3]:
            serve(text=batch)
        rates = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for batch in batches:
                serve(text=batch)["label"].numpy()
            rates.append(64 * len(batches) / (time.perf_counter() - start))
    print(
        f"3. export serving_default, batch 64: {statistics.median(rates):,.0f} sentences/s "
        f"(median; {[round(r) for r in rates]}; goal >= 2,000)"
    )


if __name__ == "__main__":
    main()
