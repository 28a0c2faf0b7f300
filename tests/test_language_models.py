"""Language models: corpora, n-gram counts against NLTK, truncated BPTT, training,
and exports that continue prompts and score text with TensorFlow alone."""

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import kerasnotes
from kerasnotes.data import corpus
from kerasnotes.errors import DataError
from kerasnotes.models.char_rnn import char_rnn
from kerasnotes.models.ngram import NGramLM
from kerasnotes.tasks.language_modelling import TASK, compressed_bits_per_char
from tests.conftest import assert_one_line_error, run_cli, train_mirrored, train_quietly

# A small English text with repeats, for counting.
TEXT = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.\n"
    "A fox is quick and a dog is lazy, or so the story goes. Quick foxes jump.\n"
) * 6
QUICK_RNN = [
    "dataset=python_docs/small",
    "units=[128]",
    "embedding_dim=32",
    "sequence_length=32",
    "batch_size=16",
    "epochs=10",
    "learning_rate=0.005",
    "max_length=60",
]


# Corpora -------------------------------------------------------------------------------


def test_python_docs_are_split_by_topic_into_about_80_10_10():
    data = corpus.load("python_docs/small")
    topics = {
        split: {e["topic"].decode() for e in tfds.as_numpy(_builder().as_dataset(split=split))}
        for split in corpus.SPLITS
    }
    assert not topics["train"] & topics["test"] and not topics["train"] & topics["validation"]
    total = sum(data.num_examples.values())
    assert 0.05 < data.num_examples["test"] / total < 0.15
    assert 0.05 < data.num_examples["validation"] / total < 0.15
    assert data.text("test").startswith(next(data.test.as_numpy_iterator()).decode())


def _builder():
    from kerasnotes.data.corpus import CPYTHON, PythonDocs

    return PythonDocs(config=f"{CPYTHON}_small")


def test_split_by_size_keeps_documents_whole_and_fills_every_split():
    sizes = [(f"doc{i}", 100 + 37 * i) for i in range(30)]
    splits = corpus.split_by_size(sizes)
    assert sorted(sum(splits.values(), [])) == sorted(name for name, _ in sizes)
    assert all(splits[s] for s in corpus.SPLITS)
    assert corpus.split_by_size(sizes) == splits  # Deterministic.


def test_a_text_file_is_split_by_position(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("".join(chr(ord("a") + i % 26) for i in range(1000)))
    data = corpus.load(str(path))
    assert data.num_examples == {"train": 800, "validation": 100, "test": 100}
    assert data.text("train") + data.text("validation") + data.text("test") == path.read_text()


def test_folders_split_by_file_name_or_by_file(tmp_path):
    named = tmp_path / "named"
    named.mkdir()
    for split in ("train", "valid", "test"):
        (named / f"{split}.txt").write_text(f"{split} text\n" * 20)
    data = corpus.load(str(named))
    assert data.text("validation").startswith("valid text")
    books = tmp_path / "books"
    books.mkdir()
    for i in range(12):
        (books / f"book{i:02d}.txt").write_text(f"book {i}\n" * (10 + i))
    data = corpus.load(str(books))
    held_out = data.text("validation") + data.text("test")
    for i in range(12):  # Every book is whole in one split.
        assert (f"book {i}\n" * (10 + i)) in data.text("train") or f"book {i}\n" in held_out


@pytest.mark.parametrize(
    "content, message",
    [
        (b"caf\xe9 au lait", r"not UTF-8: invalid byte 0xe9 at byte offset 3"),
        (b"", r"is empty"),
        (b"  \n\n ", r"is empty"),
        (b"ab ab ab \n", r"has 10 characters: too few to cut into training, validation and test"),
    ],
)
def test_bad_text_files_get_clear_errors(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        corpus.load(str(path))


def test_a_folder_file_that_is_not_utf8_is_named_or_skipped(tmp_path, capsys):
    books = tmp_path / "books"
    books.mkdir()
    for i in range(4):
        (books / f"book{i}.txt").write_text(f"book {i}\n" * 30)
    (books / "latin1.txt").write_bytes(b"caf\xe9 au lait\n" * 30)
    with pytest.raises(
        DataError, match=r"latin1.txt.*not UTF-8: invalid byte 0xe9 at byte offset 3"
    ):
        corpus.load(str(books))
    data = corpus.load(str(books), skip_bad_records=True)
    assert "Skipped 1 unreadable text file(s)" in capsys.readouterr().err
    text = "".join(data.text(split) for split in corpus.SPLITS)
    assert "caf" not in text and all(f"book {i}\n" in text for i in range(4))


def test_a_corpus_shorter_than_the_batches_is_a_clear_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("too short to learn from " * 20)
    config = {**TASK.with_defaults({}), "dataset": str(path), "batch_size": 64}
    config["sequence_length"] = 128
    with pytest.raises(DataError, match=r"too few for batch_size 64 x sequence_length 128"):
        TASK.load_data(config)


@pytest.mark.parametrize("name", ["tiny_shakespeare", "lm1b"])
def test_tfds_corpora_load_under_mock_data(name):
    with tfds.testing.mock_data(num_examples=6):
        data = corpus.load(name)
    assert data.source.startswith(f"tfds:{name}")
    assert all(data.num_examples[split] > 0 for split in corpus.SPLITS)


# The n-gram model ----------------------------------------------------------------------


def _ids(text, vocabulary):
    index = {c: i for i, c in enumerate(vocabulary)}
    return np.array([index.get(c, 1) for c in text])


@pytest.mark.parametrize("order", [2, 3, 5])
@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k"])
def test_ngram_perplexity_equals_nltk(order, smoothing):
    """Held against nltk.lm on the same n-grams: Lidstone for add-k, and
    KneserNeyInterpolated for Kneser-Ney, whose continuation unigram we interpolate
    with the uniform distribution by the discount (the one difference, written here)."""
    from nltk.lm import Lidstone
    from nltk.lm.models import InterpolatedLanguageModel
    from nltk.lm.smoothing import KneserNey
    from nltk.util import everygrams

    train, test = TEXT[:-120], TEXT[-120:]
    vocabulary = ["", "[UNK]", *sorted(set(train))]
    model = NGramLM(vocabulary, order=order, smoothing=smoothing, discount=0.3, k=0.5)
    model.adapt(_ids(train, vocabulary))
    ids = _ids("\n" + test, vocabulary)[None]
    mine = math.exp(-float(np.mean(model.log_likelihood(ids))))

    class UniformBase(KneserNey):
        def unigram_score(self, word):
            continuation, total = self._continuation_counts(word)
            seen = len(self.counts[1])
            return (
                max(continuation - self.discount, 0) + self.discount * seen / len(self.vocab)
            ) / total

    if smoothing == "add_k":
        reference = Lidstone(0.5, order)
    else:
        params = {"discount": 0.3, "order": order}
        reference = InterpolatedLanguageModel(UniformBase, order, params=params)
    reference.fit([list(everygrams(list(train), max_len=order))], vocabulary_text=list(train))
    text = "\n" + test
    grams = [tuple(text[max(0, i - order + 1) : i + 1]) for i in range(1, len(text))]
    assert mine == pytest.approx(reference.perplexity(grams), rel=1e-6)


def test_ngram_distributions_sum_to_one_and_favour_what_was_counted():
    vocabulary = ["", "[UNK]", *sorted(set(TEXT))]
    model = NGramLM(vocabulary, order=4)
    model.adapt(_ids(TEXT, vocabulary))
    context = _ids("The qui", vocabulary)[-3:][None]
    probabilities = np.exp(model.next_log_probs(tf.constant(context)).numpy()[0])
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert probabilities[0] < 1e-30  # Never padding.
    assert vocabulary[int(probabilities.argmax())] == "c"
    assert probabilities[1] > 0  # The unknown token keeps a chance.


def test_ngram_counts_continue_across_the_rows_of_stream_batches():
    """Counting a stream cut into batches of streams (rows continue from batch to
    batch) gives the counts of the streams themselves."""
    vocabulary = ["", "[UNK]", *sorted(set(TEXT))]
    ids = _ids(TEXT[:600], vocabulary)
    rows = ids.reshape(2, 300)
    batches = tf.data.Dataset.from_tensor_slices(rows.reshape(2, 10, 30).transpose(1, 0, 2))
    whole, streamed = NGramLM(vocabulary, order=3), NGramLM(vocabulary, order=3)
    whole.adapt(rows)
    streamed.adapt(batches.map(lambda x: (x, x)))
    np.testing.assert_array_equal(whole.statistics, streamed.statistics)


def test_ngram_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="order must be >= 2"):
        NGramLM(["", "[UNK]", "a"], order=1)
    with pytest.raises(ValueError, match="Invalid smoothing 'witten_bell'"):
        NGramLM(["", "[UNK]", "a"], smoothing="witten_bell")
    with pytest.raises(ValueError, match="Invalid discount 1.5"):
        NGramLM(["", "[UNK]", "a"], discount=1.5)


# char-rnn --------------------------------------------------------------------------------


def test_truncated_bptt_carries_the_state_from_batch_to_batch():
    """Two windows through the stateful trainer give what the whole sequence gives in
    one pass; after a reset the state starts from zero again."""
    model = char_rnn(vocabulary=["", "[UNK]", "a", "b", "c"], units=[8, 6], cell="lstm")
    ids = np.random.default_rng(0).integers(2, 5, size=(3, 20))
    whole = model(ids).numpy()
    trainer = model.stateful_trainer(3)
    first, second = trainer(ids[:, :12]).numpy(), trainer(ids[:, 12:]).numpy()
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    trainer.reset_state()
    np.testing.assert_allclose(trainer(ids[:, :12]).numpy(), whole[:, :12], atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_char_rnn_decoding_steps_give_the_models_logits(cell):
    model = char_rnn(vocabulary=["", "[UNK]", "a", "b", "c"], units=[8, 6], cell=cell)
    ids = np.random.default_rng(1).integers(2, 5, size=(2, 7))
    whole = model(ids).numpy()
    state = model.initial_decoding_state(2)
    for t in range(7):
        logits, state, _ = model.decoding_step(tf.constant(ids[:, t]), state)
        np.testing.assert_allclose(logits.numpy(), whole[:, t], atol=1e-5)


def test_training_batches_are_streams_or_random_windows():
    data = corpus.load("python_docs/small")
    config = {**TASK.with_defaults({}), "dataset": "python_docs/small", "batch_size": 4}
    config["sequence_length"] = 16
    info = {"vocabulary": TASK.load_data(config).vocabulary}
    batches = list(TASK.batches(data.train, config, info, training=True).take(3))
    x0, y0 = (t.numpy() for t in batches[0])
    x1, _ = (t.numpy() for t in batches[1])
    assert x0.shape == (4, 16)
    np.testing.assert_array_equal(x0[:, 1:], y0[:, :-1])  # Targets: the next token.
    np.testing.assert_array_equal(x1[:, 0], y0[:, -1])  # Each row continues.
    config["stateful"] = False
    random = [x.numpy() for x, _ in TASK.batches(data.train, config, info, training=True)]
    assert len(random) == len(list(TASK.batches(data.train, {**config, "stateful": True},
                                                info, training=True)))  # fmt: skip
    assert not np.array_equal(random[1][:, 0], random[0][:, -1] + 0 * random[1][:, 0])


def test_a_large_split_is_read_in_blocks_of_streams(monkeypatch):
    from kerasnotes.tasks import language_modelling

    data = corpus.load("python_docs/small")
    config = {**TASK.with_defaults({}), "dataset": "python_docs/small", "batch_size": 4}
    config["sequence_length"] = 16
    info = {"vocabulary": TASK.load_data(config).vocabulary}
    ids = TASK.token_ids([data.text("train")], info["vocabulary"], "character")[0]
    monkeypatch.setattr(language_modelling, "BLOCK_TOKENS", 5_000)
    batches = TASK.batches(data.train, config, info, training=True)
    windows = [(x.numpy(), y.numpy()) for x, y in batches]
    assert len(windows) == batches.cardinality()  # Counted before they are read.
    # Every block of 5,000 tokens is 4 streams of 1,249, read 16 at a time (78 windows
    # each), the last block's as many as its tokens give.
    per_block = 1_249 // 16
    full_blocks = len(ids) // 5_000
    assert len(windows) == full_blocks * per_block + (len(ids) % 5_000 - 1) // 4 // 16
    for block in range(full_blocks):
        first_x, first_y = windows[block * per_block]
        start = block * 5_000 + np.arange(4) * 1_249
        for row in range(4):
            np.testing.assert_array_equal(first_x[row], ids[start[row] : start[row] + 16])
            np.testing.assert_array_equal(first_y[row], ids[start[row] + 1 : start[row] + 17])
    config["stateful"] = False
    random = list(TASK.batches(data.train, config, info, training=True))
    assert len(random) == len(windows)
    text = "".join(info["vocabulary"][i] for i in ids)
    for x, _ in random[:3]:  # Each window is a piece of the text.
        assert all("".join(info["vocabulary"][i] for i in row) in text for row in x.numpy())


def test_a_large_file_is_read_in_pieces_that_join_back_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "PIECE_BYTES", 500)
    path = tmp_path / "book.txt"
    lines = [f"line {i} of the b\u00f6\u00f6k" + " with more words" * (i % 5) for i in range(400)]
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    data = corpus.load(str(path))
    text = path.read_text(encoding="utf-8-sig")
    assert data.text("train") + data.text("validation") + data.text("test") == text
    cut = round(len(text) * 0.8)
    assert data.text("train") == text[:cut] and data.num_examples["train"] == cut
    documents = [d.decode() for d in data.train.as_numpy_iterator()]
    assert len(documents) > 20 and all(len(d.encode()) < 600 for d in documents)
    assert all(d.startswith("line ") for d in documents)  # Cut at line breaks.


def test_documents_are_scored_in_batches_of_bounded_size():
    from kerasnotes.tasks.language_modelling import SCORE_CHARACTERS, scoring_batches

    sizes = [10] * 12 + [SCORE_CHARACTERS // 3] * 4 + [SCORE_CHARACTERS * 2, 5]
    batches = list(scoring_batches(b"x" * n for n in sizes))
    assert [len(d) for batch in batches for d in batch] == sizes  # All, in order.
    assert [len(batch) for batch in batches] == [8, 4, 3, 1, 1, 1]
    assert all(len(b) * max(map(len, b)) <= SCORE_CHARACTERS for b in batches if len(b) > 1)


def test_the_baselines_read_bounded_samples_and_say_so(monkeypatch):
    from kerasnotes.tasks import language_modelling

    data = corpus.load("python_docs/small")
    config = {**TASK.with_defaults({}), "dataset": "python_docs/small", "batch_size": 4}
    info = {"vocabulary": TASK.load_data(config).vocabulary}
    whole = language_modelling.ngram_baseline(data, info, config)
    assert whole["training_tokens"] == data.num_examples["train"]
    monkeypatch.setattr(language_modelling, "NGRAM_TOKENS", 10_000)
    monkeypatch.setattr(language_modelling, "HELD_OUT_SAMPLE", 2_000)
    capped = language_modelling.ngram_baseline(data, info, config)
    assert capped["training_tokens"] == 10_000
    # Fewer counts: the baseline does worse, on its sample of the held-out text.
    assert capped["bits_per_char"] > whole["bits_per_char"]
    documents = language_modelling.head_documents(data.test, 2_000)
    assert len("\n".join(documents)) == 2_000 and data.text("test").startswith(documents[0])


# Training, measuring and serving -------------------------------------------------------


@pytest.fixture(scope="module")
def trained_ngram(tmp_path_factory):
    root = tmp_path_factory.mktemp("ngram")
    return train_quietly("ngram", ["dataset=python_docs/small", "max_length=60"], root)


@pytest.fixture(scope="module")
def trained_char_rnn(tmp_path_factory):
    root = tmp_path_factory.mktemp("char-rnn")
    return train_quietly("char-rnn", QUICK_RNN, root)


def test_ngram_measures_itself_beside_the_baselines(trained_ngram):
    metrics = trained_ngram.metrics
    # The 8-gram counts its way to 2.405 bits (deterministic); the nearest weaker
    # model, a 4-gram with the baseline's smoothing, gives 2.515 on the same text, a
    # trigram 2.962 and a bigram 3.749 (unigram entropy is about 4.5).
    by_order = metrics["ngram_bits_per_char_by_order"]
    assert by_order["4"] == pytest.approx(2.515, abs=0.01), by_order
    assert metrics["bits_per_char"] < 2.46 < by_order["4"], metrics
    comparison = metrics["comparison"]
    assert set(comparison) >= {"this model", "gzip", "bz2", "xz"}
    assert any(name.endswith("-gram (Kneser-Ney)") for name in comparison)
    assert metrics["perplexity"] == pytest.approx(2 ** metrics["bits_per_char"], rel=1e-3)
    assert len(metrics["samples"]) == 3 and all(s["text"] for s in metrics["samples"])


def test_char_rnn_learns_the_corpus(trained_char_rnn):
    """Above the nearest weaker model, a trigram of the same text (2.962 bits per
    character, deterministic; a bigram 3.749): this small LSTM gives 2.806 after its
    ten epochs (Xeon, 2 cores)."""
    metrics = trained_char_rnn.metrics
    trigram = metrics["ngram_bits_per_char_by_order"]["3"]
    assert trigram == pytest.approx(2.962, abs=0.01), trigram
    assert metrics["bits_per_char"] < 2.9, metrics


def test_stateful_char_rnn_trains_under_a_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """Each replica carries the state of its own half of the streams (it crashed at
    the first step, the carry sized for the whole batch). Four epochs give 3.307 bits
    per character on two replicas and 3.355 on one (Xeon, 2 cores): under the
    bigram's 3.749, as learning at all needs."""
    quick = [*QUICK_RNN, "epochs=4"]
    assert train_mirrored("char-rnn", quick, tmp_path / "run", "bits_per_char") < 3.4


def test_compressors_are_measured_on_the_held_out_part_only():
    train = "abcdefgh" * 500
    assert compressed_bits_per_char(train, "abcdefgh" * 10)["xz"] < 1.0  # Seen before.
    random = "".join(np.random.default_rng(0).choice(list("abcdefgh"), 4000))
    assert compressed_bits_per_char(train, random)["bz2"] > 2.5  # Three bits of entropy.


def test_exports_continue_prompts_and_score_text_in_a_tensorflow_only_process(
    trained_ngram, trained_char_rnn
):
    script = """
import json, sys
import tensorflow as tf
out = {}
for path in sys.argv[1:]:
    model = tf.saved_model.load(path).signatures
    prompts = tf.constant(["The ", "for x in "])
    default = model["serving_default"](prompt=prompts)["text"].numpy()
    options = dict(max_length=tf.constant(30), temperature=tf.constant(0.0),
                   top_k=tf.constant(0), top_p=tf.constant(1.0), seed=tf.constant(0, tf.int64))
    greedy = model["generate"](prompt=prompts, **options)["text"].numpy()
    again = model["generate"](prompt=prompts, **options)["text"].numpy()
    scores = model["score"](text=tf.constant(["The value of the attribute", "zq#@!xv~^%"]))
    out[path] = {
        "default": [t.decode() for t in default],
        "greedy": [t.decode() for t in greedy],
        "again": [t.decode() for t in again],
        "bits": scores["bits_per_char"].numpy().tolist(),
        "log_probability": scores["log_probability"].numpy().tolist(),
        "neighbours": [n.decode() for n in model["neighbours"](word=tf.constant(["a"]))[
            "neighbours"].numpy()[0]] if "neighbours" in model else None,
    }
out["kerasnotes"] = "kerasnotes" in sys.modules
print(json.dumps(out))
"""
    exports = [trained_ngram.export_dir, trained_char_rnn.export_dir]
    proc = subprocess.run(
        [sys.executable, "-P", "-c", script, *exports], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert not out.pop("kerasnotes")
    assert out[trained_ngram.export_dir]["neighbours"] is None  # No embedding.
    assert len(out[trained_char_rnn.export_dir]["neighbours"]) == 10
    for path, got in out.items():
        assert all(len(t) == 60 for t in got["default"]), path  # The run's max_length.
        assert all(len(t) == 30 for t in got["greedy"]) and got["greedy"] == got["again"]
        english, noise = got["bits"]
        assert english < 3.5 < noise, (path, got["bits"])
        assert got["log_probability"][0] == pytest.approx(
            -english * len("The value of the attribute") * math.log(2), rel=1e-4
        )


def test_the_score_signature_agrees_with_the_runs_held_out_measure(trained_ngram):
    data = corpus.load("python_docs/small")
    documents = [d.decode() for d in data.test.as_numpy_iterator()]
    score = tf.saved_model.load(trained_ngram.export_dir).signatures["score"]
    total = float(np.sum(score(text=tf.constant(documents))["log_probability"]))
    bits = -total / math.log(2) / sum(len(d) for d in documents)
    assert bits == pytest.approx(trained_ngram.metrics["bits_per_char"], rel=1e-4)


def test_neighbours_of_a_character_model_are_of_characters(trained_char_rnn):
    for path in (trained_char_rnn.export_dir, trained_char_rnn.run_dir):
        proc = run_cli("neighbours", path, "e", "--json")
        assert proc.returncode == 0, proc.stderr[-2000:]
        found = [word for word, _ in json.loads(proc.stdout.splitlines()[-1])["neighbours"]]
        assert len(found) == 10 and all(len(c) == 1 for c in found) and "e" not in found
        assert_one_line_error(run_cli("neighbours", path, "e", "the"), "character-level", "'the'")


def test_predict_samples_at_the_cli(trained_char_rnn, tmp_path):
    export = trained_char_rnn.export_dir
    options = ["--temperature", "0.5", "--max-length", "25", "--seed", "3"]
    proc = run_cli("predict", export, "The ", *options, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["input"] == "The " and len(result["continuation"]) == 25
    plain = run_cli("predict", export, "The ", *options)  # Seeded: the same text.
    assert plain.stdout == "The " + result["continuation"] + "\n"
    streamed = run_cli("predict", export, "The ", "--max-length", "25", "--stream")
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    assert streamed.stdout.startswith("The ") and len(streamed.stdout) == len("The ") + 25 + 1
    # Temperature 0 is greedy: the seed no longer matters (a 0 given is a value, not unset).
    texts = {
        (temperature, seed): run_cli(
            "predict", export, "The ", "--max-length", "25", "--temperature", temperature,
            "--seed", seed, "--top-k", "0",
        ).stdout
        for temperature in ("0", "1.5")
        for seed in ("0", "1")
    }  # fmt: skip
    assert texts["0", "0"] == texts["0", "1"] and texts["0", "0"].startswith("The ")
    assert texts["1.5", "0"] != texts["1.5", "1"]
    for option, value in (("--temperature", "-1"), ("--temperature", "nan"), ("--top-p", "nan")):
        bad = run_cli("predict", export, "The ", option, value)
        # Click's range refuses -1; NaN passes every comparison, so the export's check names it.
        assert_one_line_error(bad, option[2:5], repr(float(value)))
        bad = run_cli("predict", export, "The ", option, value, "--stream")
        assert bad.returncode == 2 and bad.stdout == "", bad.stdout


@pytest.mark.slow  # 37 s; text files also train in test_word_level_models_read_and_write_words.
def test_a_plain_text_file_trains_each_language_model(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT * 8)
    common = [f"dataset={path}", "batch_size=4", "max_length=10"]
    runs = {
        "ngram": common,
        "char-rnn": [*common, "sequence_length=32", "units=[16]", "epochs=1"],
        "transformer-lm": [*common, "sequence_length=32", "width=16", "num_heads=2", "epochs=1"],
    }
    for model, overrides in runs.items():  # Exports are checked with the fixtures' runs.
        result = kerasnotes.train(
            model, overrides=overrides, run_dir=str(tmp_path / model), export_dir=None,
            echo=lambda line: None,
        )  # fmt: skip
        assert np.isfinite(result.metrics["bits_per_char"]), model


def test_word_level_models_read_and_write_words(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT * 8)
    result = train_quietly(
        "ngram",
        [f"dataset={path}", "batch_size=4", "max_length=6", "token_level=word", "order=3"],
        tmp_path / "run",
    )
    assert result.metrics["num_tokens"] < result.metrics["num_characters"] / 3
    assert 0 <= result.metrics["unknown_rate"] < 0.5
    out = kerasnotes.predict(result.export_dir, ["The quick"], temperature=0.0)[0]
    assert out["continuation"].startswith(" ") and len(out["continuation"].split()) == 6


# transformer-lm ------------------------------------------------------------------------

VOCABULARY = ["", "[UNK]", *"abcdefgh"]


def _transformer(**options):
    from kerasnotes.models.transformer_lm import transformer_lm

    settings = {"width": 16, "num_heads": 2, "num_layers": 2, "sequence_length": 8}
    return transformer_lm(vocabulary=VOCABULARY, **{**settings, **options})


def test_the_six_step_attention_equals_keras_multi_head_attention():
    from kerasnotes.models.transformer_lm import CausalSelfAttention

    ours = CausalSelfAttention(num_heads=2, key_dim=4)
    x = np.random.default_rng(0).normal(size=(3, 7, 12)).astype("float32")
    ours.build(x.shape)
    for weight in ours.weights:  # Non-zero biases, so that they are compared too.
        weight.assign(np.random.default_rng(1).normal(size=weight.shape).astype("float32"))
    reference = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    reference(x, x)  # Builds it.
    reference.set_weights([w.numpy() for w in ours.weights])
    want = reference(x, x, use_causal_mask=True).numpy()
    np.testing.assert_allclose(ours(x).numpy(), want, atol=1e-5)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_a_changed_future_token_never_changes_an_earlier_output(positions):
    model = _transformer(positions=positions)
    ids = np.random.default_rng(2).integers(2, 10, size=(2, 8))
    changed = ids.copy()
    changed[:, 5] = (changed[:, 5] - 1) % 8 + 2
    before, after = model(ids).numpy(), model(changed).numpy()
    np.testing.assert_allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not np.allclose(before[:, 5:], after[:, 5:])


def test_the_key_value_cache_gives_the_models_logits_and_refills_when_full():
    model = _transformer()
    ids = np.random.default_rng(3).integers(2, 10, size=(2, 11))
    state = model.initial_decoding_state(2)
    steps = []
    for t in range(11):
        logits, state, _ = model.decoding_step(tf.constant(ids[:, t]), state)
        steps.append(logits.numpy())
    whole = model(ids[:, :8]).numpy()
    for t in range(8):
        np.testing.assert_allclose(steps[t], whole[:, t], atol=1e-5)
    # Full at 8 positions: the last 4 are read again from position 0, then 8, 9, 10.
    refilled = model(ids[:, 4:11]).numpy()
    for t in range(8, 11):
        np.testing.assert_allclose(steps[t], refilled[:, t - 4], atol=1e-5)


def test_long_texts_are_scored_in_overlapping_windows():
    model = _transformer()
    ids = np.random.default_rng(4).integers(2, 10, size=(2, 23))
    got = model.log_likelihood(tf.constant(ids)).numpy()
    assert got.shape == (2, 22)
    log_probs = lambda window: tf.nn.log_softmax(model(window[:, :-1])).numpy()  # noqa: E731
    first = log_probs(ids[:, :9])
    np.testing.assert_allclose(got[:, 0], first[:, 0, :][np.arange(2), ids[:, 1]], atol=1e-5)
    # Token 12 is scored in the window starting at 4 (8 tokens of context: 4..11).
    window = log_probs(ids[:, 4:13])
    np.testing.assert_allclose(got[:, 11], window[np.arange(2), 7, ids[:, 12]], atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "{bad}"], "is not UTF-8: invalid byte 0xe9 at byte offset 3"),
        (["--set", "temperature=-1"], "Invalid temperature -1.0: must be a number >= 0"),
        (["--set", "top_p=.nan"], "Invalid top_p nan: must be a number in (0, 1]"),
    ],
)
def test_bad_input_stops_training_with_one_line(tmp_path, args, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    proc = run_cli("train", "char-rnn", *[a.format(bad=bad) for a in args], cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_an_ngram_model_answers_for_its_lower_orders():
    vocabulary = ["", "[UNK]", *sorted(set(TEXT))]
    ids = _ids(TEXT, vocabulary)
    high = NGramLM(vocabulary, order=5, discount=0.6)
    high.adapt(ids)
    for order in (2, 3, 4):
        low = NGramLM(vocabulary, order=order, discount=0.6)
        low.adapt(ids)
        sample = ids[None, :200]
        np.testing.assert_allclose(
            high.log_likelihood(sample, order).numpy(), low.log_likelihood(sample).numpy(),
            rtol=1e-12,
        )  # fmt: skip
