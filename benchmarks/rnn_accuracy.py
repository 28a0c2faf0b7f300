"""What the `rnn` family learns, against baselines on the same splits (not part of the
test suite).

1. `rnn` with its defaults on the embedded `sentiment` data, against a bag of words of
   about the same size (the same tokenizer and embedding, their mean, a dense layer):
   the order of the words decides the label, so the bag should stay near 0.5-0.8
   while the recurrent model reaches >= 0.98.
2. `rnn-tagger` with its defaults on `entities`, against a left-to-right tagger of
   about the same size (one direction, wider): names are typed by the words after
   them, so the left-to-right tagger should be clearly lower in entity F1.
3. LSTM against SimpleRNN on `sentiment/long_range` (the label is 5-100 words back),
   left-to-right, reading the last state, same units, 3 seeds each.

    python benchmarks/rnn_accuracy.py [--only 1,2,3]
"""

import argparse
import os
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import kerasnotes  # noqa: E402


def train(model: str, overrides: list[str]):
    """Train `model` in a temporary run directory: (result, trainable parameters)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = kerasnotes.train(
            model,
            overrides=overrides,
            run_dir=os.path.join(tmp, "run"),
            export_dir=None,
            echo=lambda line: None,
        )
        net = keras.models.load_model(os.path.join(tmp, "run", "model.keras"))
    return result, sum(int(w.numpy().size) for w in net.trainable_weights)


@kerasnotes.register_model("bag-of-words", task="text_classification")
def bag_of_words(vocabulary=("", "[UNK]"), num_classes=2, embedding_dim=64, units=64):
    """The baseline: the mean of the word embeddings, a hidden layer, the classes."""
    from kerasnotes.text import make_tokenizer

    token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    x = keras.layers.Embedding(len(vocabulary), embedding_dim, mask_zero=True)(token_ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    network = keras.Model(token_ids, outputs, name="network")
    text = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(text, network(make_tokenizer(vocabulary)(text)), name="bag_of_words")


def order_matters():
    rnn, rnn_size = train("rnn", [])
    bag, bag_size = train("bag-of-words", ["units=768"])  # About the rnn's size.
    print("1. sentiment (default), held-out accuracy")
    print(
        f"   rnn defaults:  {rnn.metrics['accuracy']:.4f} (macro F1 {rnn.metrics['macro_f1']:.4f}) "
        f"in {rnn.train_seconds:.1f} s of training, {rnn.metrics['epochs']} epochs, "
        f"{rnn_size:,} parameters"
    )
    print(
        f"   bag of words:  {bag.metrics['accuracy']:.4f} in {bag.train_seconds:.1f} s, "
        f"{bag_size:,} parameters"
    )


def reads_to_the_right():
    (both, both_size), (left, left_size) = (
        train("rnn-tagger", []),
        train("rnn-tagger", ["bidirectional=false", "units=96"]),
    )
    print("2. entities (default), held-out entity F1")
    print(
        f"   bidirectional (defaults): {both.metrics['entity_f1']:.4f} "
        f"(token accuracy {both.metrics['token_accuracy']:.4f}) in {both.train_seconds:.1f} s, "
        f"{both_size:,} parameters"
    )
    print(
        f"   left to right (units 96): {left.metrics['entity_f1']:.4f} "
        f"(token accuracy {left.metrics['token_accuracy']:.4f}) by type "
        f"{left.metrics['entity_f1_by_type']}, {left_size:,} parameters"
    )


def long_range():
    print("3. sentiment/long_range, held-out accuracy, left to right, last state, 64 units")
    for cell in ("lstm", "simple"):
        scores = []
        for seed in (0, 1, 2):
            result, _ = train(
                "rnn",
                [
                    "dataset=sentiment/long_range",
                    f"cell={cell}",
                    "bidirectional=false",
                    "pooling=last",
                    f"seed={seed}",
                ],
            )
            scores.append(result.metrics["accuracy"])
        print(
            f"   {cell:>6}: median {statistics.median(scores):.4f} "
            f"(seeds 0, 1, 2: {', '.join(f'{s:.4f}' for s in scores)})"
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="1,2,3")
    args = parser.parse_args()
    parts = {"1": order_matters, "2": reads_to_the_right, "3": long_range}
    for key in args.only.split(","):
        parts[key]()


if __name__ == "__main__":
    main()
