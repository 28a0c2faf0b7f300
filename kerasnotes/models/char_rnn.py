"""`char-rnn`: a recurrent language model over characters (or words), as min-char-rnn.

Karpathy's min-char-rnn in Keras: token embedding, a stack of LSTM / GRU / SimpleRNN
layers, a softmax over the vocabulary for the next token. Trained with truncated
backpropagation through time: the training text is cut into `batch_size` contiguous
streams, each batch continues every stream where the one before stopped, and the
recurrent state is carried from batch to batch (gradients flow back `sequence_length`
steps only) and reset at every epoch, so the model learns from contexts far longer than
one window. `stateful=False` trains on independent windows instead, each from a zero
state. Exploding gradients are clipped by the trainer's `clipnorm` / `clipvalue`.

Sampling (`kerasnotes.decoding`) carries the state too: each new token costs one step
of every layer's cell, whatever the length of the text so far.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from kerasnotes.language_models import LanguageModel
from kerasnotes.layers import check_positive_ints
from kerasnotes.registry import register_model

CELLS = {"lstm": layers.LSTM, "gru": layers.GRU, "simple": layers.SimpleRNN}


@keras.saving.register_keras_serializable(package="kerasnotes")
class CharRNN(LanguageModel):
    """Embedding, recurrent layers and a softmax over the vocabulary.

    Args:
        vocabulary: the tokens, padding and the unknown token first.
        cell: `"lstm"`, `"gru"` or `"simple"`.
        units: units of each recurrent layer (a list: one layer each).
        embedding_dim: the size of the token embedding.
        dropout: dropout between layers and before the softmax.
        stateful: train with state carried across batches (see the module docstring).
        sequence_length: tokens per training window (backpropagation's reach).

    Call arguments: `token_ids` `(batch, time)`; `initial_state` (a list per layer of
    its states, or `None` for zeros); `return_state`. Returns logits `(batch, time,
    vocabulary)`, and with `return_state` also each layer's final states.
    """

    def __init__(
        self,
        vocabulary,
        cell="lstm",
        units=(512,),
        embedding_dim=64,
        dropout=0.0,
        stateful=True,
        sequence_length=128,
        **kwargs,
    ):
        super().__init__(vocabulary, **kwargs)
        if cell not in CELLS:
            raise ValueError(f"Invalid cell {cell!r}: expected one of {', '.join(CELLS)}.")
        units = [units] if isinstance(units, int) else list(units)
        check_positive_ints("units", units)
        check_positive_ints("embedding_dim", [embedding_dim])
        check_positive_ints("sequence_length", [sequence_length])
        if not 0 <= dropout < 1:
            raise ValueError(f"Invalid dropout {dropout!r}: must be in [0, 1).")
        self.cell = cell
        self.units = units
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.stateful = bool(stateful)
        self.sequence_length = sequence_length
        self.embedding = layers.Embedding(len(self.vocabulary), embedding_dim, name="embedding")
        # Without cuDNN kernels, so that an export traced on a GPU loads anywhere.
        portable = {"use_cudnn": False} if cell != "simple" else {}
        self.rnn_layers = [
            CELLS[cell](
                width, return_sequences=True, return_state=True, name=f"{cell}{i + 1}", **portable
            )
            for i, width in enumerate(units)
        ]
        self.dropout_layer = layers.Dropout(dropout, name="dropout")
        self.classifier = layers.Dense(len(self.vocabulary), name="next_token")
        self.build()

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        width = self.embedding_dim
        for rnn_layer in self.rnn_layers:
            rnn_layer.build((None, None, width))
            width = rnn_layer.units
        self.classifier.build((None, None, width))
        self.built = True

    def state_sizes(self) -> list[list[int]]:
        """The sizes of each layer's states (an LSTM has two, h and c)."""
        sizes = []
        for rnn_layer in self.rnn_layers:
            size = rnn_layer.cell.state_size
            sizes.append(list(size) if isinstance(size, (list, tuple)) else [size])
        return sizes

    def call(self, token_ids, initial_state=None, return_state=False, training=False):
        x = self.embedding(token_ids)  # (batch, time, embedding_dim)
        initial_state = initial_state or [None] * len(self.rnn_layers)
        final_states = []
        for rnn_layer, states in zip(self.rnn_layers, initial_state, strict=True):
            x = self.dropout_layer(x, training=training) if final_states else x
            x, *states = rnn_layer(x, initial_state=states, training=training)
            final_states.append(states)  # (batch, units) each
        logits = self.classifier(self.dropout_layer(x, training=training))
        return (logits, final_states) if return_state else logits  # (batch, time, vocabulary)

    # Decoding ---------------------------------------------------------------------------

    def initial_decoding_state(self, batch_size):
        return [[tf.zeros([batch_size, size]) for size in sizes] for sizes in self.state_sizes()]

    def decoding_step(self, tokens, state):
        """`kerasnotes.decoding`'s step: every layer's cell, once."""
        x = self.embedding(tokens)  # (rows, embedding_dim)
        new_state = []
        for rnn_layer, states in zip(self.rnn_layers, state, strict=True):
            x, states = rnn_layer.cell(x, states)
            new_state.append(list(states))
        return self.classifier(x), new_state, None

    # Training ---------------------------------------------------------------------------

    def stateful_trainer(self, batch_size: int):
        """What `fit` trains when `stateful`: this model, its state carried across
        batches of `batch_size` streams (see `TruncatedBPTT`)."""
        trainer = TruncatedBPTT(self)
        trainer.build((batch_size, None))
        return trainer

    def get_config(self):
        config = {
            "cell": self.cell,
            "units": self.units,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "stateful": self.stateful,
            "sequence_length": self.sequence_length,
        }
        return {**super().get_config(), **config}


class TruncatedBPTT(keras.Model):
    """Trains a `CharRNN` with its state carried from batch to batch.

    The final states of one batch start the next (without gradients flowing back into
    the batch before); `reset_state` zeroes them (the language-modelling task's
    callback does at every epoch and before validation). The batch size is fixed when
    it is built: every batch holds the same streams.

    Why not Keras's `stateful=True` layers: they fix the batch size of the network
    itself and write their state in every call, so the same network could not score or
    sample at other batch sizes (and a changed batch size broadcasts silently,
    keras#21183). Here the carry lives in this wrapper; the network stays stateless.
    """

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.carry = None

    def build(self, input_shape):
        batch_size = input_shape[0]
        if batch_size is None:
            raise ValueError("Truncated BPTT needs batches of a fixed size.")
        # Under a tf.distribute strategy each replica trains its own rows of every
        # batch (the same rows each step, so its own streams) and keeps their carry in
        # its own copy of the variables (synchronised on read, never on write).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if batch_size % replicas:
            raise ValueError(
                f"Truncated BPTT over {replicas} replicas needs a batch size divisible by "
                f"{replicas}, not {batch_size}."
            )
        self.carry = [
            [
                keras.Variable(
                    "zeros",
                    shape=(batch_size // replicas, size),
                    trainable=False,
                    name=f"carry_{i}_{j}",
                    synchronization="on_read",
                    aggregation="mean",
                )
                for j, size in enumerate(sizes)
            ]
            for i, sizes in enumerate(self.network.state_sizes())
        ]
        self.built = True

    def call(self, token_ids, training=False):
        initial = [[v.value for v in states] for states in self.carry]
        logits, final = self.network(
            token_ids, initial_state=initial, return_state=True, training=training
        )
        for variables, states in zip(self.carry, final, strict=True):
            for variable, state in zip(variables, states, strict=True):
                variable.assign(tf.stop_gradient(state))
        return logits

    def reset_state(self):
        for variables in self.carry or []:
            for variable in variables:
                variable.assign(tf.zeros_like(variable))


@register_model(
    "char-rnn",
    task="language_modelling",
    # 12 epochs of 32 streams fit in 10 minutes on 2 CPU cores (benchmarks/README.md).
    training_defaults={
        "epochs": 12,
        "batch_size": 32,
        "learning_rate": 3e-3,
        "clipnorm": 1.0,
        "lr_schedule": "cosine",
    },
)
def char_rnn(
    vocabulary=("", "[UNK]", "a", "b"),
    cell="lstm",
    units=(512,),
    embedding_dim=64,
    dropout=0.0,
    stateful=True,
    sequence_length=128,
    name="char_rnn",
):
    """Character-level recurrent language model (min-char-rnn), truncated BPTT.

    Args:
        vocabulary: the tokens (set from the data by `kerasnotes train`).
        cell: `"lstm"`, `"gru"` or `"simple"`.
        units: units of each recurrent layer; a list stacks layers.
        embedding_dim: token embedding size.
        dropout: dropout between layers and before the softmax.
        stateful: carry the state across batches (truncated BPTT); `False` trains on
            independent windows.
        sequence_length: tokens per training window.
        name: the model's name.

    Example:

    >>> model = char_rnn(vocabulary=["", "[UNK]", "a", "b"], units=[8])
    >>> model(np.array([[2, 3, 2]])).shape
    TensorShape([1, 3, 4])
    """
    return CharRNN(
        vocabulary=list(vocabulary),
        cell=cell,
        units=units,
        embedding_dim=embedding_dim,
        dropout=dropout,
        stateful=stateful,
        sequence_length=sequence_length,
        name=name,
    )
