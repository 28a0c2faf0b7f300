"""`transformer-lm`: a small causal Transformer language model, readable in one file.

The notes build the Transformer on scaled dot-product attention, in six steps:

1. queries, keys and values: every position's vector is projected three ways, once
   per head;
2. dot products: each query is compared with every key;
3. scaling: the dot products are divided by the square root of the key size, so that
   they do not grow with it and push the softmax into saturation;
4. softmax over the keys: attention weights that sum to 1 (a causal mask first hides
   every later position, so a position sees itself and the past only);
5. weighting: each value is multiplied by its weight;
6. summing: a query's output is the sum of the weighted values.

`CausalSelfAttention` writes them out in that order. A `TransformerBlock` is pre-norm,
as in GPT-2: `x + attention(norm(x))`, then `x + mlp(norm(x))`. Token embeddings plus learned (or
sinusoidal) position embeddings go in; the output layer shares the token embedding
matrix (tied embeddings), so the logits are the final vectors' dot products with every
token's embedding.

Decoding keeps every layer's keys and values (a key/value cache): each new token
computes its own query, key and value and attends to the cached ones, one position of
work per token instead of the whole prefix again. The model reads at most
`sequence_length` positions; when generation reaches that, the cache is rebuilt from the
last half of the text in one pass and decoding continues (positions are absolute, so
cached keys cannot simply slide). Scoring text longer than that uses overlapping
windows, each token scored with at least half a window of context.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kerasnotes.language_models import LanguageModel
from kerasnotes.layers import check_positive_ints
from kerasnotes.registry import register_model

POSITIONS = ("learned", "sinusoidal")


@keras.saving.register_keras_serializable(package="kerasnotes")
class CausalSelfAttention(layers.Layer):
    """Multi-head scaled dot-product self-attention with a causal mask.

    Its weights have the shapes of `keras.layers.MultiHeadAttention`'s (query, key and
    value kernels `(width, heads, key_dim)` with biases `(heads, key_dim)`, the output
    kernel `(heads, key_dim, width)` with bias `(width,)`), in that order, so the two
    can be held against each other.

    Args:
        num_heads: attention heads.
        key_dim: the size of each head's queries, keys and values.
        dropout: dropout on the attention weights.

    Call arguments:
        inputs: `(batch, time, width)`.
        cache: optional `(keys, values)`, each `(batch, cache_time, heads, key_dim)`,
            of the positions before `inputs`; with `position` (the number of them that
            are filled, `(batch,)`), the inputs' keys and values are written there and
            the inputs attend to every filled position.

    Returns:
        `(batch, time, width)`; with `cache`, also the updated `(keys, values)`.
    """

    def __init__(self, num_heads, key_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.dropout_layer = layers.Dropout(dropout)

    def build(self, input_shape):
        width = input_shape[-1]
        heads, key_dim = self.num_heads, self.key_dim

        def weight(name, shape):
            initializer = "zeros" if name.endswith("bias") else "glorot_uniform"
            return self.add_weight(shape=shape, initializer=initializer, name=name)

        self.query_kernel = weight("query_kernel", (width, heads, key_dim))
        self.query_bias = weight("query_bias", (heads, key_dim))
        self.key_kernel = weight("key_kernel", (width, heads, key_dim))
        self.key_bias = weight("key_bias", (heads, key_dim))
        self.value_kernel = weight("value_kernel", (width, heads, key_dim))
        self.value_bias = weight("value_bias", (heads, key_dim))
        self.output_kernel = weight("output_kernel", (heads, key_dim, width))
        self.output_bias = weight("output_bias", (width,))

    def call(self, inputs, cache=None, position=None, training=False):
        x = inputs  # (batch, time, width)
        # 1. Queries, keys and values, per head.
        queries = ops.einsum("btd,dhk->bthk", x, self.query_kernel) + self.query_bias
        keys = ops.einsum("btd,dhk->bthk", x, self.key_kernel) + self.key_bias
        values = ops.einsum("btd,dhk->bthk", x, self.value_kernel) + self.value_bias
        # (batch, time, heads, key_dim) each
        time = ops.shape(x)[1]
        query_positions = ops.arange(time)
        if cache is not None:  # Keys and values of the earlier positions, kept.
            keys, values = self._write(cache, keys, values, position)
            query_positions = query_positions[None, :] + position[:, None]  # (batch, time)
        else:
            query_positions = ops.broadcast_to(query_positions[None, :], ops.shape(x)[:2])
        key_positions = ops.arange(ops.shape(keys)[1])
        # 2. Dot products of every query with every key.
        scores = ops.einsum("bqhk,bshk->bhqs", queries, keys)  # (batch, heads, time, keys)
        # 3. Scaled by the square root of the key size.
        scores = scores / math.sqrt(self.key_dim)
        # The causal mask: a query sees its own position and the earlier ones.
        visible = key_positions[None, None, None, :] <= query_positions[:, None, :, None]
        scores = ops.where(visible, scores, ops.cast(-1e9, scores.dtype))
        # 4. Softmax over the keys: weights that sum to 1.
        weights = ops.softmax(scores, axis=-1)  # (batch, heads, time, keys)
        weights = self.dropout_layer(weights, training=training)
        # 5. Each value weighted, and 6. summed over the keys (one contraction).
        attended = ops.einsum("bhqs,bshk->bqhk", weights, values)  # (batch, time, heads, key_dim)
        outputs = ops.einsum("bqhk,hkd->bqd", attended, self.output_kernel) + self.output_bias
        return outputs if cache is None else (outputs, (keys, values))  # (batch, time, width)

    @staticmethod
    def _write(cache, keys, values, position):
        """The cache with `keys` and `values` written from `position` on."""
        cached_keys, cached_values = cache  # (batch, cache_time, heads, key_dim)
        slots = ops.arange(ops.shape(cached_keys)[1])[None, :]  # (1, cache_time)
        offset = slots - position[:, None]  # Which new position goes in each slot.
        new = (offset >= 0) & (offset < ops.shape(keys)[1])
        index = ops.clip(offset, 0, ops.shape(keys)[1] - 1)
        gathered_keys = tf.gather(keys, index, batch_dims=1)
        gathered_values = tf.gather(values, index, batch_dims=1)
        new = new[:, :, None, None]
        return (
            ops.where(new, gathered_keys, cached_keys),
            ops.where(new, gathered_values, cached_values),
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"num_heads": self.num_heads, "key_dim": self.key_dim, "dropout": self.dropout}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="kerasnotes")
class TransformerBlock(layers.Layer):
    """A pre-norm Transformer decoder block: `x + attention(norm(x))`, then
    `x + mlp(norm(x))`, with dropout on both branches.

    Call arguments: `inputs` `(batch, time, width)`, and `cache` and `position` as
    `CausalSelfAttention` takes them. Returns `(batch, time, width)`, and the updated
    cache when given one.
    """

    def __init__(self, num_heads, key_dim, mlp_width, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.mlp_width = mlp_width
        self.dropout = dropout
        self.attention_norm = layers.LayerNormalization(name="attention_norm")
        self.attention = CausalSelfAttention(num_heads, key_dim, dropout, name="attention")
        self.mlp_norm = layers.LayerNormalization(name="mlp_norm")
        self.mlp_in = layers.Dense(mlp_width, activation="gelu", name="mlp_in")
        self.mlp_out = None
        self.dropout_layer = layers.Dropout(dropout)

    def build(self, input_shape):
        width = input_shape[-1]
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self.mlp_norm.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out = layers.Dense(width, name="mlp_out")
        self.mlp_out.build((*input_shape[:-1], self.mlp_width))

    def call(self, inputs, cache=None, position=None, training=False):
        x = inputs  # (batch, time, width)
        normed = self.attention_norm(x)
        if cache is None:
            attended = self.attention(normed, training=training)
        else:
            attended, cache = self.attention(normed, cache, position)
        x = x + self.dropout_layer(attended, training=training)
        hidden = self.mlp_out(self.mlp_in(self.mlp_norm(x)))  # (batch, time, width)
        x = x + self.dropout_layer(hidden, training=training)
        return x if cache is None else (x, cache)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "mlp_width": self.mlp_width,
            "dropout": self.dropout,
        }
        return {**super().get_config(), **config}


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
    """`(length, width)` sines and cosines of geometrically spaced frequencies
    (Vaswani et al., 2017)."""
    positions = np.arange(length)[:, None]
    rates = 1.0 / np.power(10_000.0, (2 * (np.arange(width) // 2)) / width)
    angles = positions * rates[None, :]
    return np.where(np.arange(width) % 2 == 0, np.sin(angles), np.cos(angles)).astype("float32")


@keras.saving.register_keras_serializable(package="kerasnotes")
class TransformerLM(LanguageModel):
    """A causal Transformer decoder over token ids; see the module docstring.

    Args:
        vocabulary: the tokens, padding and the unknown token first.
        num_layers: Transformer blocks.
        width: the model's vector size (embeddings and residual stream).
        num_heads: attention heads per block (`width` divisible by it).
        mlp_ratio: the feed-forward layer's width, as a multiple of `width`.
        dropout: dropout on attention weights and on each block's outputs.
        positions: `"learned"` or `"sinusoidal"` position embeddings.
        sequence_length: the most positions the model reads (its context).

    Call arguments: `token_ids` `(batch, time)`, time at most `sequence_length`.
    Returns the logits `(batch, time, vocabulary)` of the token after each position.
    """

    def __init__(
        self,
        vocabulary,
        num_layers=4,
        width=128,
        num_heads=4,
        mlp_ratio=4,
        dropout=0.0,
        positions="learned",
        sequence_length=128,
        **kwargs,
    ):
        super().__init__(vocabulary, **kwargs)
        check_positive_ints("num_layers", [num_layers])
        check_positive_ints("width", [width])
        check_positive_ints("num_heads", [num_heads])
        check_positive_ints("mlp_ratio", [mlp_ratio])
        check_positive_ints("sequence_length", [sequence_length])
        if width % num_heads:
            raise ValueError(
                f"Invalid num_heads {num_heads!r}: width {width} must divide into that many heads."
            )
        if positions not in POSITIONS:
            raise ValueError(
                f"Invalid positions {positions!r}: expected one of {', '.join(POSITIONS)}."
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"Invalid dropout {dropout!r}: must be in [0, 1).")
        self.num_layers = num_layers
        self.width = width
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.positions = positions
        self.sequence_length = sequence_length
        self.context_length = sequence_length
        self.token_embedding = layers.Embedding(
            len(self.vocabulary), width, name="token_embedding"
        )
        if positions == "learned":
            self.position_embedding = layers.Embedding(
                sequence_length, width, name="position_embedding"
            )
        self.blocks = [
            TransformerBlock(
                num_heads, width // num_heads, mlp_ratio * width, dropout, name=f"block{i + 1}"
            )
            for i in range(num_layers)
        ]
        self.dropout_layer = layers.Dropout(dropout)
        self.final_norm = layers.LayerNormalization(name="final_norm")
        self.output_bias = None
        self.build()

    def build(self, input_shape=None):
        self.token_embedding.build((None, None))
        if self.positions == "learned":
            self.position_embedding.build((None,))
        for block in self.blocks:
            block.build((None, None, self.width))
        self.final_norm.build((None, None, self.width))
        self.output_bias = self.add_weight(
            shape=(len(self.vocabulary),), initializer="zeros", name="output_bias"
        )
        self.built = True

    def _embed(self, token_ids, start):
        """Token plus position embeddings of `token_ids` at positions `start` +
        0, 1, ... (`start` `(batch,)`)."""
        x = self.token_embedding(token_ids)  # (batch, time, width)
        positions = start[:, None] + ops.arange(ops.shape(token_ids)[1])[None, :]
        if self.positions == "learned":
            return x + self.position_embedding(positions)
        table = ops.convert_to_tensor(sinusoidal_positions(self.sequence_length, self.width))
        return x + ops.take(table, positions, axis=0)

    def _logits(self, x):
        """Tied output layer: the dot product with every token's embedding."""
        x = self.final_norm(x)
        return ops.matmul(x, ops.transpose(self.token_embedding.embeddings)) + self.output_bias

    def call(self, token_ids, training=False):
        start = ops.zeros(ops.shape(token_ids)[:1], "int32")
        x = self.dropout_layer(self._embed(token_ids, start), training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self._logits(x)  # (batch, time, vocabulary)

    # Scoring ---------------------------------------------------------------------------

    def log_likelihood(self, token_ids):
        """Like `LanguageModel.log_likelihood`, in windows of `sequence_length` that
        overlap by half when the text is longer, each token scored once, with at least
        half a window of context."""
        token_ids = tf.cast(token_ids, tf.int64)
        window, stride = self.sequence_length, max(1, self.sequence_length // 2)
        scored = tf.shape(token_ids)[1] - 1

        def one_window():
            return super(TransformerLM, self).log_likelihood(token_ids)

        def windows():
            count = 1 + (scored - window + stride - 1) // stride
            padded_length = window + (count - 1) * stride + 1
            padded = tf.pad(token_ids, [[0, 0], [0, padded_length - tf.shape(token_ids)[1]]])
            # (batch, count, window + 1)
            frames = tf.signal.frame(padded, window + 1, stride, axis=1)
            batch = tf.shape(frames)[0]
            flat = tf.reshape(frames, [-1, window + 1])
            log_likelihood = super(TransformerLM, self).log_likelihood(flat)
            log_likelihood = tf.reshape(log_likelihood, [batch, count, window])
            later = tf.reshape(log_likelihood[:, 1:, window - stride :], [batch, -1])
            return tf.concat([log_likelihood[:, 0], later], axis=1)[:, :scored]

        return tf.cond(scored <= window, one_window, windows)

    # Decoding ---------------------------------------------------------------------------

    def initial_decoding_state(self, batch_size):
        """Empty caches: per block `(keys, values)` `(batch, sequence_length, heads,
        key_dim)`, the tokens read `(batch, sequence_length)`, and how many `(batch,)`."""
        head_shape = [
            batch_size,
            self.sequence_length,
            self.num_heads,
            self.width // self.num_heads,
        ]
        caches = [(tf.zeros(head_shape), tf.zeros(head_shape)) for _ in self.blocks]
        tokens = tf.zeros([batch_size, self.sequence_length], tf.int64)
        return caches, tokens, tf.zeros([batch_size], tf.int32)

    def decoding_step(self, tokens, state):
        """`kerasnotes.decoding`'s step: one position through every block, attending to
        the cached keys and values; a full cache is first rebuilt from its last half."""
        caches, history, position = state
        full = tf.reduce_any(position >= self.sequence_length)
        caches, history, position = tf.cond(
            full, lambda: self._refill(history), lambda: (caches, history, position)
        )
        tokens = tf.cast(tokens, tf.int64)[:, None]  # (rows, 1)
        x = self._embed(tokens, position)
        new_caches = []
        for block, cache in zip(self.blocks, caches, strict=True):
            x, cache = block(x, cache, position)
            new_caches.append(cache)
        slot = tf.one_hot(position, self.sequence_length, dtype=tf.int64)  # (rows, slots)
        history = history * (1 - slot) + slot * tokens
        return self._logits(x)[:, 0], (new_caches, history, position + 1), None

    def _refill(self, history):
        """Caches for the last half of `history` at positions 0.., in one pass."""
        keep = self.sequence_length // 2
        kept = history[:, self.sequence_length - keep :]  # (rows, keep)
        empty, _, _ = self.initial_decoding_state(tf.shape(history)[0])
        start = tf.zeros([tf.shape(history)[0]], tf.int32)
        x = self._embed(kept, start)
        caches = []
        for block, cache in zip(self.blocks, empty, strict=True):
            x, cache = block(x, cache, start)
            caches.append(cache)
        history = tf.pad(kept, [[0, 0], [0, self.sequence_length - keep]])
        return caches, history, start + keep

    def get_config(self):
        config = {
            "num_layers": self.num_layers,
            "width": self.width,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "dropout": self.dropout,
            "positions": self.positions,
            "sequence_length": self.sequence_length,
        }
        return {**super().get_config(), **config}


@register_model(
    "transformer-lm",
    task="language_modelling",
    # 12 epochs of 32 streams take about 8 minutes on 2 CPU cores (benchmarks/README.md).
    training_defaults={
        "epochs": 12,
        "batch_size": 32,
        "learning_rate": 5e-3,
        "lr_schedule": "warmup_cosine",
        "warmup_epochs": 1.0,
        "clipnorm": 1.0,
        "optimizer": "adamw",
    },
)
def transformer_lm(
    vocabulary=("", "[UNK]", "a", "b"),
    num_layers=4,
    width=128,
    num_heads=4,
    mlp_ratio=4,
    dropout=0.1,
    positions="learned",
    sequence_length=128,
    name="transformer_lm",
):
    """Causal Transformer language model: six-step attention, key/value-cache decoding.

    Pre-norm blocks, tied embeddings.

    Args:
        vocabulary: the tokens (set from the data by `kerasnotes train`).
        num_layers, width, num_heads, mlp_ratio, dropout: the blocks.
        positions: `"learned"` or `"sinusoidal"`.
        sequence_length: the context, and the training window, in tokens.
        name: the model's name.

    Example:

    >>> model = transformer_lm(vocabulary=["", "[UNK]", "a", "b"], width=16, num_heads=2)
    >>> model(np.array([[2, 3, 2]])).shape
    TensorShape([1, 3, 4])
    """
    return TransformerLM(
        vocabulary=list(vocabulary),
        num_layers=num_layers,
        width=width,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        dropout=dropout,
        positions=positions,
        sequence_length=sequence_length,
        name=name,
    )
