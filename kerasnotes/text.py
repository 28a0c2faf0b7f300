"""Text pieces shared by the sequence families: tokenizers, vocabularies, word vectors.

Tokenization happens inside the models, in a Keras `TextVectorization` layer whose
vocabulary is part of its config, so `model.keras` and the SavedModel carry it and a
serving user sends plain text. Id 0 is padding and id 1 the out-of-vocabulary token.
"""

from __future__ import annotations

import numpy as np

TOKEN_LEVELS = ("word", "character")
NUM_NEIGHBOURS = 10
# A stand-in vocabulary for building without data (the task gives the real one): the
# padding and out-of-vocabulary tokens first, as `TextVectorization` has them.
EXAMPLE_VOCABULARY = (
    "", "[UNK]", "the", "film", "plot", "was", "is", "not", "never", "good", "bad", "great",
    "dull", "but", "and", "jordan", "said", "city",
)  # fmt: skip


def check_token_level(token_level: str) -> str:
    if token_level not in TOKEN_LEVELS:
        raise ValueError(
            f"Invalid token_level {token_level!r}: expected one of {', '.join(TOKEN_LEVELS)}."
        )
    return token_level


def make_tokenizer(
    vocabulary=None,
    token_level: str = "word",
    *,
    keep_punctuation: bool = False,
    max_tokens: int | None = None,
    name: str = "tokenizer",
):
    """A `TextVectorization` layer: text `(batch,)` to ids `(batch, time)`, padded with 0
    to the batch's longest text.

    Words are lower-cased and split on whitespace; punctuation is stripped unless
    `keep_punctuation` (taggers keep every token, so tags stay aligned).
    `token_level="character"` splits into characters instead. Without a
    `vocabulary`, call `adapt` (with `max_tokens`) to learn one.
    """
    import keras

    character = check_token_level(token_level) == "character"
    return keras.layers.TextVectorization(
        max_tokens=max_tokens,
        vocabulary=list(vocabulary) if vocabulary is not None else None,
        standardize="lower" if keep_punctuation or character else "lower_and_strip_punctuation",
        split="character" if character else "whitespace",
        name=name,
    )


def find_embedding(model):
    """The model's first `Embedding` layer (searching nested models), or `None`."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            return layer
        if isinstance(layer, keras.Model):
            found = find_embedding(layer)
            if found is not None:
                return found
    return None


def read_vectors(path: str, vocabulary) -> tuple[np.ndarray, int]:
    """An embedding matrix for `vocabulary` from a word2vec or GloVe text file.

    Each line is a word and its vector; word2vec's first line (`count dimension`) is
    skipped. Words of the vocabulary missing from the file get small random vectors,
    the padding row is zero. Returns `(matrix (len(vocabulary), dim), words found)`.
    """
    index = {word: i for i, word in enumerate(vocabulary)}
    rows: dict[int, np.ndarray] = {}
    dimension = None
    try:
        handle = open(path, encoding="utf-8", errors="strict")
    except OSError as e:
        raise ValueError(f"Invalid embeddings {path!r}: {e.strerror}.") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                fields = line.rstrip().split(" ")
                if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    continue  # word2vec's header.
                if len(fields) < 2:
                    continue
                if dimension is None:
                    dimension = len(fields) - 1
                if len(fields) - 1 != dimension:
                    raise ValueError(
                        f"Invalid embeddings {path!r}: line {number} has {len(fields) - 1} "
                        f"numbers, earlier lines {dimension}."
                    )
                word = fields[0].lower()
                if word in index and index[word] not in rows:
                    try:
                        rows[index[word]] = np.array(fields[1:], dtype="float32")
                    except ValueError:
                        raise ValueError(
                            f"Invalid embeddings {path!r}: line {number} is not a word "
                            "followed by numbers."
                        ) from None
        except UnicodeDecodeError as e:
            raise ValueError(
                f"Invalid embeddings {path!r}: not UTF-8 text (byte offset {e.start} of a line)."
            ) from None
    if dimension is None:
        raise ValueError(f"Invalid embeddings {path!r}: no vectors in it.")
    found = np.stack(list(rows.values())) if rows else np.zeros((1, dimension), "float32")
    scale = float(found.std()) or 0.1
    matrix = np.random.default_rng(0).normal(0, scale, (len(vocabulary), dimension))
    matrix = matrix.astype("float32")
    for row, vector in rows.items():
        matrix[row] = vector
    matrix[0] = 0.0  # Padding.
    return matrix, len(rows)


def nearest_words(matrix: np.ndarray, vocabulary, words, count: int = 10) -> list[dict]:
    """For each word, the `count` nearest words by cosine similarity in `matrix`.

    Returns one dict per word: `{"word", "neighbours": [(word, similarity), ...]}`;
    a word outside the vocabulary has no neighbours and `"unknown": True`.
    """
    vocabulary = list(vocabulary)
    index = {word: i for i, word in enumerate(vocabulary)}
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.maximum(norms, 1e-12)
    results = []
    for word in words:
        i = index.get(word.lower(), index.get(word))
        if i is None or i < 2:
            results.append({"word": word, "unknown": True, "neighbours": []})
            continue
        similarities = unit @ unit[i]
        similarities[[0, 1, i]] = -np.inf  # Padding, out-of-vocabulary, the word itself.
        order = np.argsort(-similarities)[:count]
        results.append(
            {
                "word": word,
                "neighbours": [(vocabulary[j], float(similarities[j])) for j in order],
            }
        )
    return results


# Language models: tokens that give the text back --------------------------------------

# Word-level language models keep line breaks as tokens of their own; this character
# (a record separator, never in a token) marks the cuts while splitting.
_CUT = "\x1e"


def split_tokens(text, token_level: str):
    """Text `(batch,)` to tokens `(batch, None)` (ragged strings), for language models.

    Nothing is standardized: characters are every code point (whitespace included;
    bytes that are not UTF-8 become U+FFFD); words are runs of non-space characters,
    with each line break a token of its own, so text comes back from the tokens
    (`join_tokens`), up to the amount of space between words.
    """
    import tensorflow as tf

    if check_token_level(token_level) == "character":
        return tf.strings.unicode_split(text, "UTF-8", errors="replace")
    text = tf.strings.regex_replace(text, r"[^\S\n]+", _CUT)
    text = tf.strings.regex_replace(text, r"\n", _CUT + "\n" + _CUT)
    tokens = tf.strings.split(text, sep=_CUT)
    return tf.ragged.boolean_mask(tokens, tokens != "")


def join_tokens(tokens, token_level: str):
    """Tokens `(batch, None)` (ragged strings) back to text `(batch,)`."""
    import tensorflow as tf

    if check_token_level(token_level) == "character":
        return tf.strings.reduce_join(tokens, axis=-1)
    text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
    return tf.strings.regex_replace(text, r" ?\n ?", "\n")


# The `neighbours` signature of every export with a token embedding ---------------------


def neighbours_signature(embedding, vocabulary, first_ids):
    """The serving function and input spec of a `neighbours` signature: a word in, the
    nearest tokens of `vocabulary` by cosine similarity in `embedding` out.

    `first_ids(word)` gives the id of each word's (first) token, 0 for an empty word.
    Padding, the unknown token and the word itself are never neighbours; a word outside
    the vocabulary gets `""` and 0.
    """
    import tensorflow as tf

    words = tf.constant(list(vocabulary))
    count = min(NUM_NEIGHBOURS, len(vocabulary))

    def neighbours(word):
        table = tf.math.l2_normalize(tf.cast(embedding.embeddings, tf.float32), axis=-1)
        ids = tf.cast(first_ids(word), tf.int64)  # (batch,)
        similarities = tf.matmul(tf.gather(table, ids), table, transpose_b=True)
        vocabulary_ids = tf.range(tf.shape(table)[0], dtype=ids.dtype)
        excluded = (vocabulary_ids[None, :] < 2) | (vocabulary_ids[None, :] == ids[:, None])
        similarities = tf.where(excluded, -2.0, similarities)
        top = tf.math.top_k(similarities, k=count)
        known = ids >= 2
        return {
            "neighbours": tf.where(known[:, None], tf.gather(words, top.indices), ""),
            "similarities": tf.where(known[:, None], top.values, 0.0),
        }

    return neighbours, [tf.TensorSpec([None], tf.string, name="word")]


def neighbours_contract(vocabulary) -> dict:
    """The fixed names, dtypes and shapes of the `neighbours` signature."""
    count = min(NUM_NEIGHBOURS, len(vocabulary))
    return {
        "inputs": {"word": ["string", [None]]},
        "outputs": {
            "neighbours": ["string", [None, count]],
            "similarities": ["float32", [None, count]],
        },
    }


def neighbours_example(neighbours, words) -> dict:
    """An export check of the `neighbours` signature: `words` and what it answers here."""
    import tensorflow as tf

    found = neighbours(tf.constant(words))
    return {
        "signature": "neighbours",
        "inputs": {"word": [w.encode() for w in words]},
        "outputs": {k: plain(v) for k, v in found.items()},
    }


def plain(tensor):
    """A tensor as JSON-ready lists (strings decoded)."""
    value = tensor.numpy()
    if value.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value).tolist()
    return value.tolist()
