"""`rnn` and `rnn-tagger`: SimpleRNN, LSTM and GRU stacks over text, deep and
bidirectional, classifying a sequence or tagging each of its tokens.

The recurrent networks of the notes, from the SimpleRNN cell to the deep bidirectional
LSTM (DBLSTM):

1. the tokenizer (a `TextVectorization` layer holding the vocabulary) turns text into
   token ids, `(batch, time)`, padded with 0 only to the batch's longest text;
2. word (or character) embeddings, `(batch, time, embedding_dim)`, learned or read
   from a word2vec / GloVe file, with the padding masked from here on;
3. a stack of recurrent layers, one per entry of `units` (deep), each optionally
   bidirectional (a forward and a backward layer, their outputs merged by
   `merge_mode`); the mask keeps padding out of every state;
4. the head: for a label, the last state, or the mean, maximum or attention-weighted
   sum of the steps (`pooling`), then a softmax over the classes; for tags, a softmax
   over the tags at every step.

The model takes text; its `token_ids` sub-model (`model.get_layer("network")`) takes
ids, `(batch, time)`, or `(time, batch)` with `time_major=True` (the layout of the
notes' PyTorch example; Keras's recurrent layers are batch-major, so it is a
transposition at the edge, like channels_first images). Masking makes padding change
nothing: a text gives the same prediction alone and in a batch of much longer ones.
"""

from __future__ import annotations

import keras
from keras import layers

from kerasnotes.layers import (
    AtLeastOneStep,
    AttentionPooling1D,
    MaskedGlobalMaxPooling1D,
    TransposeBatchTime,
    check_positive_ints,
)
from kerasnotes.registry import register_model
from kerasnotes.text import EXAMPLE_VOCABULARY, make_tokenizer, read_vectors

CELLS = {"simple": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
MERGE_MODES = ("concat", "sum", "mul", "ave")
POOLINGS = ("last", "mean", "max", "attention")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"Invalid {name} {value!r}: expected one of {', '.join(choices)}.")


def _check_rate(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1):
        raise ValueError(f"Invalid {name} {value!r}: must be a number in [0, 1).")


def build_rnn(
    vocabulary=EXAMPLE_VOCABULARY,
    num_classes: int = 2,
    *,
    per_step: bool = False,
    token_level: str = "word",
    cell: str = "lstm",
    units=64,
    bidirectional: bool = True,
    merge_mode: str = "concat",
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    embedding_dim: int = 64,
    embeddings: str | None = None,
    train_embeddings: bool = True,
    pooling: str = "last",
    attention_units: int = 64,
    time_major: bool = False,
    use_cudnn: bool = False,
    name: str = "rnn",
) -> keras.Model:
    """A recurrent text classifier (`per_step=False`) or tagger (`per_step=True`).

    Args:
        vocabulary: the tokens, `""` (padding) and `"[UNK]"` first.
        num_classes: labels (classifier) or tags (tagger).
        per_step: one prediction per token instead of one per text.
        token_level: `"word"` or `"character"`.
        cell: `"simple"`, `"lstm"` or `"gru"`.
        units: the units of each recurrent layer; a list gives a deep stack.
        bidirectional: read each layer's input in both directions.
        merge_mode: how the two directions combine: concat, sum, mul or ave.
        dropout, recurrent_dropout: dropout of the recurrent layers' inputs and states.
        embedding_dim: width of the learned embeddings (ignored with `embeddings`).
        embeddings: a word2vec / GloVe text file to start the embeddings from.
        train_embeddings: keep training the embeddings (false freezes them).
        pooling: classifier head over the steps: last, mean, max or attention.
        attention_units: width of the attention pooling's scoring layer.
        time_major: the `network` sub-model takes ids `(time, batch)`.
        use_cudnn: let Keras use cuDNN kernels where a GPU and the layer allow them
            (faster there; but an export traced on a GPU may then need one, and cuDNN
            needs right-padded masks without empty texts). Off by default.
    """
    _check_choice("cell", cell, CELLS)
    _check_choice("merge_mode", merge_mode, MERGE_MODES)
    _check_choice("pooling", pooling, POOLINGS)
    units_list = list(units) if isinstance(units, (list, tuple)) else [units]
    if not units_list:
        raise ValueError("Invalid units []: give at least one layer's units.")
    check_positive_ints("units", units_list)
    check_positive_ints("embedding_dim", [embedding_dim])
    check_positive_ints("attention_units", [attention_units])
    check_positive_ints("num_classes", [num_classes])
    _check_rate("dropout", dropout)
    _check_rate("recurrent_dropout", recurrent_dropout)
    vocabulary = list(vocabulary)

    # Token ids -> predictions: the part a `token_ids` signature serves.
    token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    ids = TransposeBatchTime(name="batch_major")(token_ids) if time_major else token_ids
    ids = AtLeastOneStep(name="at_least_one_step")(ids)  # A batch of empty texts.
    if embeddings:
        matrix, _ = read_vectors(embeddings, vocabulary)
        embedding_dim = matrix.shape[1]
    embedding = layers.Embedding(len(vocabulary), embedding_dim, mask_zero=True, name="embedding")
    x = embedding(ids)  # (batch, time, embedding_dim), padding masked.
    if embeddings:
        embedding.embeddings.assign(matrix)
    embedding.trainable = train_embeddings
    for index, width in enumerate(units_list):
        last = index == len(units_list) - 1
        options = {"dropout": dropout, "recurrent_dropout": recurrent_dropout}
        if cell != "simple":
            options["use_cudnn"] = "auto" if use_cudnn else False
        recurrent = CELLS[cell](
            width,
            return_sequences=per_step or not last or pooling != "last",
            name=f"{cell}_{index + 1}",
            **options,
        )
        if bidirectional:
            recurrent = layers.Bidirectional(
                recurrent, merge_mode=merge_mode, name=f"bidirectional_{index + 1}"
            )
        x = recurrent(x)  # (batch, time, features), or (batch, features) at the last state.
    if per_step:
        outputs = layers.Dense(num_classes, activation="softmax", name="tags")(x)
    else:
        if pooling == "mean":
            x = layers.GlobalAveragePooling1D(name="mean_pooling")(x)
        elif pooling == "max":
            x = MaskedGlobalMaxPooling1D(name="max_pooling")(x)
        elif pooling == "attention":
            x = AttentionPooling1D(attention_units, name="attention_pooling")(x)
        if dropout:
            x = layers.Dropout(dropout, name="head_dropout")(x)
        outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    network = keras.Model(token_ids, outputs, name="network")

    # Text -> token ids -> predictions: what training and `serving_default` run.
    text = keras.Input(shape=(), dtype="string", name="text")
    tokenizer = make_tokenizer(vocabulary, token_level, keep_punctuation=per_step)
    ids = tokenizer(text)  # (batch, time)
    if time_major:
        ids = TransposeBatchTime(name="time_major")(ids)
    return keras.Model(text, network(ids), name=name)


@register_model(
    "rnn",
    task="text_classification",
    training_defaults={"epochs": 5, "batch_size": 64, "learning_rate": 3e-3},
)
def rnn(
    vocabulary=EXAMPLE_VOCABULARY,
    num_classes: int = 2,
    token_level: str = "word",
    cell: str = "lstm",
    units=64,
    bidirectional: bool = True,
    merge_mode: str = "concat",
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    embedding_dim: int = 64,
    embeddings: str | None = None,
    train_embeddings: bool = True,
    pooling: str = "last",
    attention_units: int = 64,
    time_major: bool = False,
    use_cudnn: bool = False,
) -> keras.Model:
    """SimpleRNN / LSTM / GRU text classifier, deep and bidirectional: text in, label out.

    See `build_rnn` for the arguments.

    Example:

    >>> import kerasnotes
    >>> model = kerasnotes.create_model("rnn", cell="gru", units=[32, 32])
    >>> model.output_shape
    (None, 2)
    """
    return build_rnn(**locals(), per_step=False, name="rnn")


@register_model(
    "rnn-tagger",
    task="sequence_tagging",
    training_defaults={"epochs": 5, "batch_size": 64, "learning_rate": 3e-3},
)
def rnn_tagger(
    vocabulary=EXAMPLE_VOCABULARY,
    num_classes: int = 7,
    token_level: str = "word",
    cell: str = "lstm",
    units=64,
    bidirectional: bool = True,
    merge_mode: str = "concat",
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    embedding_dim: int = 64,
    embeddings: str | None = None,
    train_embeddings: bool = True,
    time_major: bool = False,
    use_cudnn: bool = False,
) -> keras.Model:
    """SimpleRNN / LSTM / GRU sequence tagger, deep and bidirectional: a tag per token.

    See `build_rnn` for the arguments.

    Example:

    >>> import kerasnotes
    >>> model = kerasnotes.create_model("rnn-tagger", units=[32, 32])
    >>> model.output_shape
    (None, None, 7)
    """
    return build_rnn(**locals(), per_step=True, name="rnn_tagger")
