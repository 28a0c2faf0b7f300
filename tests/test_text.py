"""The sequence families: text data and readers, the rnn builders' options, masking,
time-major equivalence, training, exports, predict and neighbours."""

import json
import os
import pathlib
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import kerasnotes
from kerasnotes.data import sentences
from kerasnotes.data import text as text_data
from kerasnotes.errors import DataError
from kerasnotes.exports import MANIFEST
from kerasnotes.testing import check_model
from kerasnotes.text import EXAMPLE_VOCABULARY
from tests.conftest import run_cli, train_quietly

QUICK_RNN = [
    "dataset=sentiment/small",
    "epochs=6",
    "batch_size=32",
    "units=32",
    "embedding_dim=32",
]
QUICK_TAGGER = [
    "dataset=entities/small",
    "epochs=6",
    "batch_size=32",
    "units=32",
    "embedding_dim=32",
]


# Embedded data -------------------------------------------------------------------------


def test_the_order_of_the_words_decides_the_sentiment():
    # The same words, in the other order, have the other label.
    rng = np.random.default_rng(0)
    flipped = 0
    for _ in range(200):
        text, label = sentences.sentiment_review(rng)
        if " but " in text and "not only" not in text and text.count(" but ") == 1:
            first, second = text.split(" but ")
            opener = next((o for o in sentences.OPENERS if o and first.startswith(o)), "")
            swapped = f"{opener} {second} but {first[len(opener) :].strip()}".strip()
            assert sorted(swapped.split()) == sorted(text.split())
            flipped += 1
            assert _label_of(swapped) != label, (text, swapped)
    assert flipped > 20


def _label_of(text: str) -> str:
    """The label by the dataset's rules, for reviews "A but B" (B decides)."""
    clause = text.split(" but ")[-1].split()
    polarity = next(
        p
        for word in reversed(clause)
        for p, words in sentences.ADJECTIVES.items()
        if word in words
    )
    negated = any(word in ("not", "never", "hardly") for word in clause)
    return (
        polarity if not negated else ({"positive": "negative", "negative": "positive"}[polarity])
    )


def test_embedded_splits_are_disjoint_and_deterministic():
    for name, kind in (("sentiment/small", "classification"), ("entities/small", "tagging")):
        data = text_data.load(name, kind)
        texts = {
            split: [t.decode() for t, _ in getattr(data, split).as_numpy_iterator()]
            for split in ("train", "validation", "test")
        }
        assert len(texts["train"]) == data.num_examples["train"] == 3000
        assert not set(texts["test"]) & set(texts["train"])
        assert not set(texts["validation"]) & set(texts["train"])
        again = text_data.load(name, kind)
        assert [t.decode() for t, _ in again.test.take(5).as_numpy_iterator()] == texts["test"][:5]


def test_entities_need_the_words_after_the_name():
    # Every name occurs as a person, a place and a company: only the words after it tell.
    rng = np.random.default_rng(1)
    seen = {}
    for _ in range(500):
        tokens, tags = sentences.entity_sentence(rng)
        for token, tag in zip(tokens, tags, strict=True):
            if tag.startswith("B-"):
                seen.setdefault(token, set()).add(tag)
    assert all(len(kinds) == 3 for kinds in seen.values()), seen


# Local files ---------------------------------------------------------------------------


def _write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _rows(n: int, sep: str = ",") -> str:
    return "".join(
        f"review number {i} was {'good' if i % 2 else 'bad'}{sep}{'pos' if i % 2 else 'neg'}\n"
        for i in range(n)
    )


def test_csv_tsv_and_jsonl_files_load(tmp_path):
    csv_path = _write(tmp_path / "reviews.csv", "text,label\n" + _rows(30))
    data = text_data.load(csv_path, "classification")
    assert data.class_names == ["neg", "pos"]
    assert sum(data.num_examples.values()) == 30 and data.num_examples["test"] == 3
    text, label = next(iter(data.train))
    assert text.numpy().decode().startswith("review number") and int(label) in (0, 1)

    tsv_path = _write(tmp_path / "reviews.tsv", "body\tsentiment\n" + _rows(30, "\t"))
    data = text_data.load(tsv_path, "classification", text_column="body", label_column="sentiment")
    assert data.class_names == ["neg", "pos"]

    lines = [json.dumps({"review": f"text {i}", "stars": i % 3}) for i in range(30)]
    jsonl_path = _write(tmp_path / "reviews.jsonl", "\n".join(lines) + "\n")
    data = text_data.load(jsonl_path, "classification", text_column="review", label_column="stars")
    assert data.class_names == ["0", "1", "2"]


def _jsonl(n: int) -> str:
    return "".join(
        json.dumps({"text": f"review number {i}", "label": i % 2}) + "\n" for i in range(n)
    )


@pytest.mark.parametrize(
    "content, line, reason",
    [
        ("text,label\n" + _rows(10) + ",pos\n" + _rows(10), 12, "empty text"),
        ("text,label\n" + _rows(10) + "too,many,columns\n" + _rows(10), 12, "has 3 columns"),
        (
            b"text,label\n" + _rows(10).encode() + b"caf\xe9 was good,pos\n" + _rows(10).encode(),
            12,
            "not UTF-8",
        ),
        (
            _jsonl(10) + '{"text": null, "label": "pos"}\n' + _jsonl(10),
            11,
            "has null as its 'text', not a string",
        ),
        (
            _jsonl(10) + '{"text": "fine", "label": null}\n' + _jsonl(10),
            11,
            "has null as its 'label'",
        ),
        (_jsonl(10) + '{"text": "cut short\n' + _jsonl(10), 11, "is not valid JSON"),
    ],
    ids=["empty-text", "columns", "utf8", "jsonl-null-text", "jsonl-null-label", "jsonl-syntax"],
)
def test_bad_rows_name_the_file_and_line_or_are_skipped(tmp_path, content, line, reason, capsys):
    name = "bad.jsonl" if reason.startswith(("has null", "is not valid JSON")) else "bad.csv"
    path = _write(tmp_path / name, content)
    with pytest.raises(DataError, match=f"{name}' line {line}: it .*{reason}.*skip_bad_records"):
        text_data.load(path, "classification")
    data = text_data.load(path, "classification", skip_bad_records=True)
    assert sum(data.num_examples.values()) == 20
    assert "Skipped 1 bad record(s)" in capsys.readouterr().err


def test_a_text_longer_than_pythons_csv_field_limit_loads(tmp_path):
    long_review = "a very long review " * 8_000  # 152,000 characters: over 131,072.
    path = _write(tmp_path / "long.csv", f"text,label\n{long_review},pos\n" + _rows(20))
    data = text_data.load(path, "classification")
    assert max(len(t) for t, _ in data.train.as_numpy_iterator()) == len(long_review.strip())


def test_an_unknown_label_in_validation_is_a_bad_record(tmp_path):
    folder = tmp_path / "split"
    folder.mkdir()
    _write(folder / "train.csv", "text,label\n" + _rows(10))
    _write(folder / "valid.csv", "text,label\na fine text,pos\nanother text,meh\n")
    _write(folder / "test.csv", "text,label\nsome text,neg\n")
    with pytest.raises(
        DataError, match=r"valid.csv' line 3: it has 'meh', never seen in training"
    ):
        text_data.load(str(folder), "classification")
    data = text_data.load(str(folder), "classification", skip_bad_records=True)
    assert data.num_examples == {"train": 10, "validation": 1, "test": 1}


def test_a_missing_column_names_the_columns(tmp_path):
    path = _write(tmp_path / "r.csv", "review,label\n" + _rows(5))
    with pytest.raises(
        DataError,
        match="no column 'text' \\(set text_column=...\\); its columns are review, label",
    ):
        text_data.load(path, "classification")


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP B-NP I-PER

"""


def test_conll_files_load_with_the_chosen_tag_column(tmp_path):
    path = _write(tmp_path / "train.conll", CONLL * 10)
    data = text_data.load(path, "tagging")
    assert data.class_names == ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]
    texts = {t.decode() for t, _ in data.train.as_numpy_iterator()}
    assert texts <= {"EU rejects German", "Peter Blackburn"}
    text, tags = next(iter(data.train))
    assert len(text.numpy().split()) == len(tags.numpy())
    # Held-out figures come from padded batches (it failed on ragged rows).
    texts, tags = next(iter(data.test.padded_batch(4)))
    assert tags.shape[0] == texts.shape[0] and tags.shape[1] == max(
        len(t.split()) for t in texts.numpy()
    )
    chunks = text_data.load(path, "tagging", tag_column=2)
    assert chunks.class_names == ["B-NP", "B-VP"]
    # The token column is no tag column (its words were taken as tags), nor a column
    # past the last, counted either way.
    for column, message in (
        (0, "Invalid tag_column 0 .*after the token"),
        (-4, "tag_column -4 does not exist .*use 1 to 3"),
        (7, "tag_column 7 does not exist"),
        ("ner", "Invalid tag_column 'ner'"),
    ):
        with pytest.raises(DataError, match=message):
            text_data.load(path, "tagging", tag_column=column)


def test_a_folder_of_conll_2003_files_keeps_its_split(tmp_path):
    for name, copies in (("eng.train", 8), ("eng.testa", 2), ("eng.testb", 3)):
        _write(tmp_path / name, CONLL * copies)
    data = text_data.load(str(tmp_path), "tagging")
    assert data.num_examples == {"train": 16, "validation": 4, "test": 6}


def test_a_conll_line_with_other_columns_is_a_bad_record(tmp_path):
    path = _write(tmp_path / "bad.conll", CONLL * 5 + "Oops NNP\n\n" + CONLL * 5)
    with pytest.raises(DataError, match="bad.conll' line 46: it has 2 columns, earlier lines 4"):
        text_data.load(path, "tagging")
    data = text_data.load(path, "tagging", skip_bad_records=True)
    assert sum(data.num_examples.values()) == 20


def test_a_table_is_read_as_a_stream_into_a_cache_the_next_run_reuses(tmp_path):
    path = tmp_path / "big.csv"
    _write(path, "text,label\n" + _rows(50_000))
    tracemalloc.start()
    try:
        data = text_data.load(str(path), "classification")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The records stay in files: a loader holding them in Python lists took 23 MB.
    assert peak < 10 * 2**20, f"{peak / 2**20:.1f} MB of Python objects"
    assert data.num_examples == {"train": 40_000, "validation": 5_000, "test": 5_000}
    assert data.train.cardinality() == 40_000
    first = sorted(data.test.as_numpy_iterator())
    # The same size and modification time: the cache answers, nothing is read again.
    stat = path.stat()
    path.write_bytes(b"x" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sorted(text_data.load(str(path), "classification").test.as_numpy_iterator()) == first
    # A changed file is read again.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="has no column 'text'"):
        text_data.load(str(path), "classification")


def test_the_vocabulary_of_a_huge_table_is_from_a_sample_spread_over_it(
    tmp_path, monkeypatch, capsys
):
    from kerasnotes.tasks import text as text_tasks

    rows = "".join(
        f"review {i} has word{i} in it,{'pos' if i % 2 else 'neg'}\n" for i in range(300)
    )
    path = _write(tmp_path / "many.csv", "text,label\n" + rows)
    config = {**text_tasks.CLASSIFICATION.settings, "dataset": path, "skip_bad_records": False,
              "vocabulary_size": 10_000}  # fmt: skip
    whole = text_tasks.CLASSIFICATION.load_data(config).vocabulary
    monkeypatch.setattr(text_tasks, "VOCABULARY_TEXTS", 100)
    sampled = text_tasks.CLASSIFICATION.load_data(config).vocabulary
    assert "The vocabulary is from 1 in 3 of the 240 training texts" in capsys.readouterr().err
    words = {w for w in sampled if w.startswith("word")}
    assert 70 < len(words) < 90 and set(sampled) < set(whole)
    numbers = sorted(int(w[4:]) for w in words)  # From all over the file, not its start.
    assert numbers[0] < 10 and numbers[-1] > 290


def test_a_conll_folder_is_cached_with_its_tags_and_bad_records(tmp_path):
    # The cache keeps what the first read found: the bad record is named again
    # without reading, and skipped when asked.
    _write(tmp_path / "train.conll", CONLL * 8)
    _write(tmp_path / "dev.conll", CONLL + "New NNP B-NP B-LOC\n\n")
    _write(tmp_path / "test.conll", CONLL)
    for _ in range(2):
        with pytest.raises(DataError, match=r"dev.conll' line 10: it has 'B-LOC', never seen"):
            text_data.load(str(tmp_path), "tagging")
    data = text_data.load(str(tmp_path), "tagging", skip_bad_records=True)
    assert data.num_examples == {"train": 16, "validation": 2, "test": 2}
    text, tags = next(iter(data.validation))
    assert text.numpy().decode() == "EU rejects German"
    assert [data.class_names[t] for t in tags.numpy()] == ["B-ORG", "O", "B-MISC"]


@pytest.mark.parametrize(
    "name, kind",
    [
        ("imdb_reviews", "classification"),
        ("ag_news_subset", "classification"),
        ("conll2003", "tagging"),
    ],
)
def test_tfds_text_datasets_load_under_mock_data(name, kind):
    import tensorflow_datasets as tfds

    from kerasnotes.tasks import get_task

    task = get_task("text_classification" if kind == "classification" else "sequence_tagging")
    config = {"dataset": name, "batch_size": 4, "seed": 0, "skip_bad_records": False}
    config |= {"vocabulary_size": 1000, "label_column": "label", "text_column": "text"}
    with tfds.testing.mock_data(num_examples=12):
        data = task.load_data({**config, "tag_column": None})
        info = task.data_info(data)
        batch = next(iter(task.batches(data.train, config, info, training=False)))
        texts, _ = next(task.test_batches(data, config))
    assert data.source.startswith(f"tfds:{name}")
    assert len(data.class_names) >= 2 and len(info["vocabulary"]) > 2
    assert batch[0].dtype.name == "int64" and batch[0].shape[0] == 4
    if kind == "tagging":  # (token_ids, tags, weights): one tag per token.
        tokens = [len(t.split()) for t in texts]
        assert list(batch[2].numpy().sum(1).astype(int)) == tokens
        assert list((batch[0].numpy() != 0).sum(1)) == tokens


# The builders --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, options",
    [
        # Several options a case (each option in one), to keep the suite short.
        ("rnn", {"cell": "simple", "pooling": "mean", "units": 8}),
        ("rnn", {"cell": "gru", "units": [8, 8], "bidirectional": False, "pooling": "max"}),
        (
            "rnn",
            {"units": [8, 8], "merge_mode": "sum", "pooling": "attention", "attention_units": 4},
        ),
        ("rnn", {"merge_mode": "mul", "dropout": 0.2, "recurrent_dropout": 0.2, "units": 8}),
        ("rnn", {"merge_mode": "ave", "token_level": "character", "units": 8}),
        (
            "rnn",
            {"train_embeddings": False, "embedding_dim": 4, "use_cudnn": True, "cell": "gru"},
        ),
        ("rnn", {"embeddings": "{glove}", "units": 8}),
        ("rnn-tagger", {"cell": "gru", "units": [8, 8]}),
        ("rnn-tagger", {"cell": "simple", "bidirectional": False, "units": 8}),
    ],
)
def test_rnn_options_pass_the_harness(name, options, tmp_path):
    # In the batch-major layout the harness also builds the time-major model, gives it
    # the same weights and holds its answers equal (both layouts of every option).
    if options.get("embeddings") == "{glove}":
        lines = [f"{word} {i / 10} {-i / 10} 0.5" for i, word in enumerate(EXAMPLE_VOCABULARY[2:])]
        options = {**options, "embeddings": _write(tmp_path / "glove.txt", "\n".join(lines))}
    check_model(name, **options)


def test_pretrained_vectors_from_a_glove_or_word2vec_file(tmp_path):
    vocabulary = ["", "[UNK]", "good", "bad", "film"]
    glove = _write(tmp_path / "glove.txt", "good 0.5 0.5 0\nbad -0.5 -0.5 0\nunused 1 1 1\n")
    model = kerasnotes.create_model("rnn", vocabulary=vocabulary, embeddings=glove, units=4)
    matrix = model.get_layer("network").get_layer("embedding").get_weights()[0]
    assert matrix.shape == (5, 3)
    np.testing.assert_allclose(matrix[2:4], [[0.5, 0.5, 0], [-0.5, -0.5, 0]])
    np.testing.assert_allclose(matrix[0], 0)
    word2vec = _write(tmp_path / "w2v.txt", "2 3\ngood 0.5 0.5 0\nbad -0.5 -0.5 0\n")
    frozen = kerasnotes.create_model(
        "rnn", vocabulary=vocabulary, embeddings=word2vec, train_embeddings=False, units=4
    )
    assert not frozen.get_layer("network").get_layer("embedding").trainable
    bad = _write(tmp_path / "bad.txt", "good 0.5 0.5\nbad 1\n")
    with pytest.raises(ValueError, match="line 2 has 1 numbers, earlier lines 2"):
        kerasnotes.create_model("rnn", vocabulary=vocabulary, embeddings=bad)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"cell": "transformer"}, "Invalid cell 'transformer'"),
        ({"units": [32, 0]}, "Invalid units 0"),
        ({"merge_mode": "max"}, "Invalid merge_mode 'max'"),
        ({"pooling": "first"}, "Invalid pooling 'first'"),
        ({"dropout": 1.0}, "Invalid dropout 1.0"),
        ({"token_level": "byte"}, "Invalid token_level 'byte'"),
    ],
)
def test_rnn_rejects_bad_hyperparameters(options, message):
    with pytest.raises(ValueError, match=message):
        kerasnotes.create_model("rnn", **options)


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("name", ["rnn", "rnn-tagger"])
def test_padding_changes_nothing(name, cell):
    """A text alone and in a batch with much longer ones: the same prediction, for
    deep bidirectional stacks of every cell."""
    import tensorflow as tf

    model = kerasnotes.create_model(name, cell=cell, units=[8, 8], bidirectional=True)
    alone = ["the film was not good"]
    batch = alone + ["the plot was dull but the film was great and " * 8, "jordan said"]
    one = model(tf.constant(alone)).numpy()[0]
    many = model(tf.constant(batch)).numpy()
    # The text alone is five tokens; in the batch it is padded to the longest text's.
    steps = model.get_layer("tokenizer")(tf.constant(batch)).shape[1]
    assert model.get_layer("tokenizer")(tf.constant(alone)).shape[1] == 5 < 40 <= steps
    np.testing.assert_allclose(
        many[0][: len(one)] if name == "rnn-tagger" else many[0], one, atol=1e-5
    )


def test_time_major_takes_time_by_batch_ids_with_the_same_weights():
    import tensorflow as tf

    batch_major = kerasnotes.create_model("rnn-tagger", units=8)
    time_major = kerasnotes.create_model("rnn-tagger", units=8, time_major=True)
    time_major.set_weights(batch_major.get_weights())
    ids = batch_major.get_layer("tokenizer")(tf.constant(["jordan said hello", "the film"]))
    assert ids.shape == (2, 3)
    got = time_major.get_layer("network")(tf.transpose(ids)).numpy()
    want = batch_major.get_layer("network")(ids).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(
        time_major(tf.constant(["jordan said hello"])),
        batch_major(tf.constant(["jordan said hello"])),
        atol=1e-6,
    )


# Training, export, predict, neighbours -------------------------------------------------


@pytest.fixture(scope="module")
def trained_rnn(tmp_path_factory):
    root = tmp_path_factory.mktemp("rnn")
    return train_quietly("rnn", QUICK_RNN, root), root


@pytest.fixture(scope="module")
def trained_tagger(tmp_path_factory):
    root = tmp_path_factory.mktemp("tagger")
    return train_quietly("rnn-tagger", QUICK_TAGGER, root), root


def test_rnn_learns_word_order(trained_rnn):
    result, _ = trained_rnn
    assert result.metrics["accuracy"] >= 0.9, result.metrics
    assert result.metrics["macro_f1"] >= 0.9
    assert len(result.metrics["samples"]) == 3


def test_tagger_learns_entities(trained_tagger):
    result, root = trained_tagger
    assert result.metrics["entity_f1"] >= 0.9, result.metrics
    assert set(result.metrics["entity_f1_by_type"]) == {"PER", "LOC", "ORG"}
    assert (root / "run" / "tag_confusion.png").exists()


def test_exports_answer_plain_text_in_a_tensorflow_only_process(trained_rnn, trained_tagger):
    script = """
import json, sys
import tensorflow as tf
rnn = tf.saved_model.load(sys.argv[1]).signatures
tagger = tf.saved_model.load(sys.argv[2]).signatures
labels = rnn["serving_default"](text=tf.constant(
    ["the plot was not good but the acting was great", "the acting was great but the plot was not good"]))
tags = tagger["serving_default"](text=tf.constant(["jordan said hello", "victoria corp was sold today"]))
found = rnn["neighbours"](word=tf.constant(["good"]))
# Empty texts alone (no steps at all) are answered as they are among longer ones.
alone = rnn["serving_default"](text=tf.constant(["", ""]))["scores"].numpy()
among = rnn["serving_default"](text=tf.constant(["", "a longer text"]))["scores"].numpy()
no_ids = rnn["serving_token_ids"](token_ids=tf.zeros([1, 0], tf.int64))["scores"].numpy()
no_tags = tagger["serving_default"](text=tf.constant([""]))
no_tag_ids = tagger["serving_token_ids"](token_ids=tf.zeros([1, 0], tf.int64))
print(json.dumps({
    "empty": [alone[0].tolist(), among[0].tolist(), no_ids[0].tolist()],
    "empty_tags": [list(no_tags["tags"].shape), list(no_tags["tag_scores"].shape),
                   list(no_tags["tokens"].shape), list(no_tag_ids["tag_scores"].shape)],
    "labels": [l.decode() for l in labels["label"].numpy()],
    "tokens": [[t.decode() for t in row] for row in tags["tokens"].numpy()],
    "tags": [[t.decode() for t in row] for row in tags["tags"].numpy()],
    "neighbours": [n.decode() for n in found["neighbours"].numpy()[0]],
    "kerasnotes": "kerasnotes" in sys.modules,
}))
"""
    proc = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            script,
            trained_rnn[0].export_dir,
            trained_tagger[0].export_dir,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["labels"] == ["positive", "negative"]
    assert out["tokens"][0] == ["jordan", "said", "hello", "", ""]
    assert out["tags"][0] == ["B-PER", "O", "O", "", ""]
    assert out["tags"][1] == ["B-ORG", "I-ORG", "O", "O", "O"]
    assert len(out["neighbours"]) == 10 and "good" not in out["neighbours"]
    assert not out["kerasnotes"]
    alone, among, no_ids = out["empty"]
    assert np.allclose(alone, among, atol=1e-5) and np.allclose(alone, no_ids, atol=1e-5)
    manifest = pathlib.Path(trained_tagger[0].export_dir) / MANIFEST
    classes = len(json.loads(manifest.read_text())["data"]["class_names"])
    assert out["empty_tags"] == [[1, 0], [1, 0, classes], [1, 0], [1, 0, classes]]


def test_predict_and_neighbours_at_the_cli(trained_rnn, trained_tagger, tmp_path):
    texts = _write(tmp_path / "texts.txt", "jordan said hello\n\naustin is a city\n")
    proc = run_cli(
        "predict", trained_tagger[0].export_dir, "victoria inc hired staff", "--file", texts
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "victoria inc hired staff\tvictoria/B-ORG inc/I-ORG hired/O staff/O",
        "jordan said hello\tjordan/B-PER said/O hello/O",
        "austin is a city\taustin/B-LOC is/O a/O city/O",
    ]
    proc = run_cli(
        "predict", trained_rnn[0].export_dir, "the film was never once boring", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label"] == "positive"
    run_dir = trained_rnn[0].run_dir
    for path in (trained_rnn[0].export_dir, run_dir):
        proc = run_cli("neighbours", path, "good", "qwertyuiop", "-n", "3")
        assert proc.returncode == 0, proc.stderr
        good, unknown = proc.stdout.splitlines()
        assert good.startswith("good: ") and len(good.split(", ")) == 3
        assert unknown == "qwertyuiop: not in the vocabulary"
    # The run keeps its embedding for TensorBoard's projector.
    logs = pathlib.Path(run_dir) / "logs"
    assert (logs / "projector_config.pbtxt").exists()
    words = (logs / "embedding_metadata.tsv").read_text().splitlines()
    vectors = (logs / "embedding_vectors.tsv").read_text().splitlines()
    assert len(words) == len(vectors) and "good" in words


def test_text_runs_evaluate_and_export_again(trained_rnn, tmp_path):
    result, _ = trained_rnn
    again = kerasnotes.evaluate(result.export_dir)
    assert again["accuracy"] == pytest.approx(result.metrics["accuracy"], abs=1e-6)
    exported = kerasnotes.export(result.run_dir, export_root=str(tmp_path), echo=lambda line: None)
    assert exported.endswith("rnn/1")
    manifest = json.loads((pathlib.Path(exported) / "assets" / "kerasnotes.json").read_text())
    assert manifest["task"] == "text_classification"
    assert manifest["data"]["vocabulary"][:2] == ["", "[UNK]"]


@pytest.mark.slow  # 22 s; resuming is tested on the cnn in test_training.
def test_a_text_run_resumes_from_its_backup(tmp_path):
    # `fit` trains the network sub-model: its backups and best weights resume it.
    quick = ["dataset=sentiment/small", "epochs=1", "units=8", "embedding_dim=8"]
    first = kerasnotes.train(
        "rnn", overrides=quick, run_dir=str(tmp_path / "run"), export_dir=None, echo=print
    )
    assert first.metrics["epochs"] == 1
    lines = []
    resumed = kerasnotes.train(
        "rnn",
        overrides=["epochs=2"],
        run_dir=str(tmp_path / "run"),
        resume=True,
        export_dir=None,
        echo=lines.append,
    )
    assert resumed.epochs_trained == 1 and resumed.metrics["epochs"] == 2
    assert resumed.metrics["weights_epoch"] in (1, 2)
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1"]
