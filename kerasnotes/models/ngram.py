"""`ngram`: the count-based language model, the baseline every language model is held to.

The notes' n-gram model counts how often each token follows each context of `order - 1`
tokens and "rolls a weighted die" by those counts. Counts alone give unseen n-grams no
chance, so they are smoothed:

- `kneser_ney` (default), interpolated Kneser-Ney (Kneser and Ney, 1995; Chen and
  Goodman, 1998): every level subtracts a discount `d` from each count and hands the
  mass it freed to the next shorter context,

      P(w | c) = max(N(c w) - d, 0) / N(c .) + d * T(c) / N(c .) * P(w | c[1:])

  where at the highest order `N` are the counts, and at the lower orders the
  continuation counts (how many distinct tokens precede `c w`), so a token that occurs
  often but after one context only ("Francisco") gets little weight as a continuation;
  `T(c)` is the number of distinct tokens seen after `c`. A context never seen hands
  everything down. The recursion is `nltk.lm`'s `KneserNeyInterpolated`, which the
  tests hold it against; it ends in the continuation unigram, which here is
  interpolated with the uniform distribution by the same discount, so that a token
  never seen in training keeps a probability above zero. `discount=None` estimates
  one discount per order from the counts of counts, `n1 / (n1 + 2 * n2)` (Ney et al.,
  1994);
- `add_k` (Lidstone; Laplace for k = 1): `(N(c w) + k) / (N(c .) + k * V)`, at the
  longest context only, as `nltk.lm`'s `Lidstone` is.

The model learns by counting, not by gradient descent: `adapt(token_ids)` counts the
n-grams of a token stream (the trainer calls it once on the training split), and the
counts sit in a hash table (a Keras `StringLookup` from n-gram to row) beside a matrix
of statistics, so scoring and sampling are table lookups in the graph and a SavedModel
serves them with TensorFlow alone. An n-gram is the string of its tokens' ids, each
written as one code point.
"""

from __future__ import annotations

import collections
import os

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.language_models import LanguageModel
from kerasnotes.registry import register_model

SMOOTHINGS = ("kneser_ney", "add_k")
# Columns of the statistics matrix, one row per n-gram (row 0: an n-gram never seen).
COUNT, CONTINUATION, TOTAL, DISTINCT, CONTINUATION_TOTAL = range(5)
# Token ids are written as code points from here, which skips every control and line
# break character (the table's vocabulary file has one n-gram per line).
FIRST_CODE_POINT = 0x4E00
SURROGATES = (0xD800, 0xE000)
STATS_FILE = "ngram_statistics.npz"
IMPOSSIBLE = -1e9  # The log-probability of padding: finite, so logits stay finite.


def code_points(ids: np.ndarray) -> np.ndarray:
    """The code point that stands for each token id."""
    points = ids + FIRST_CODE_POINT
    return np.where(points >= SURROGATES[0], points + SURROGATES[1] - SURROGATES[0], points)


def count_ngrams(ids: np.ndarray, order: int) -> list[collections.Counter]:
    """Counts of the n-grams of orders 1 to `order` in the stream `ids`, each keyed by
    the string of its tokens' code points; `counts[k - 1]` holds order k."""
    text = "".join(map(chr, code_points(np.asarray(ids, np.int64)).tolist()))
    return [
        collections.Counter(text[i : i + k] for i in range(len(text) - k + 1))
        for k in range(1, order + 1)
    ]


def ney_discount(counts) -> float:
    """`n1 / (n1 + 2 n2)` from counts of counts, within (0.05, 0.95)."""
    values = np.fromiter(counts, np.int64)
    n1, n2 = np.sum(values == 1), np.sum(values == 2)
    estimate = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
    return float(np.clip(estimate, 0.05, 0.95))


@keras.saving.register_keras_serializable(package="kerasnotes")
class NGramLM(LanguageModel):
    """A smoothed n-gram language model over token ids; see the module docstring.

    Args:
        vocabulary: the tokens, padding (`""`) and the unknown token first; id `i` is
            `vocabulary[i]`. Padding is never predicted.
        order: the n of the n-grams: the model reads `order - 1` tokens of context.
        smoothing: `"kneser_ney"` or `"add_k"`.
        discount: Kneser-Ney's discount in (0, 1], or `None` to estimate one per order.
        k: add-k's pseudo-count, > 0.

    Call arguments (`call`): `token_ids` `(batch, time)` int ids, -1 or padding past
    the end. Returns `(batch, time, vocabulary)` log-probabilities of the token after
    each position given the tokens before it (within the row).
    """

    def __init__(
        self, vocabulary, order=5, smoothing="kneser_ney", discount=None, k=0.1, **kwargs
    ):
        super().__init__(vocabulary, **kwargs)
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise ValueError(f"Invalid order {order!r}: must be an integer >= 1.")
        if smoothing not in SMOOTHINGS:
            raise ValueError(
                f"Invalid smoothing {smoothing!r}: expected one of {', '.join(SMOOTHINGS)}."
            )
        if smoothing == "kneser_ney" and order < 2:
            raise ValueError(
                f"Invalid order {order!r} for kneser_ney: its lowest level counts the "
                "contexts a token follows, so order must be >= 2 (or use add_k)."
            )
        if discount is not None and not (0 < discount <= 1):
            raise ValueError(f"Invalid discount {discount!r}: must be in (0, 1], or None.")
        if not k > 0:
            raise ValueError(f"Invalid k {k!r}: must be > 0.")
        self.order = order
        self.smoothing = smoothing
        self.discount = discount
        self.k = k
        self.context_length = order - 1
        self.table = keras.layers.StringLookup(num_oov_indices=1, mask_token=None, name="table")
        self.statistics = None  # (n-grams + 1, 5) int64, set by `adapt`.
        self.discounts = None  # (order,) float64: the discount of each order.
        self.root = None  # TOTAL, DISTINCT, CONTINUATION_TOTAL of the empty context.

    # Counting --------------------------------------------------------------------------

    def adapt(self, data, steps=None):
        """Count the n-grams of `data`: a stream of token ids `(time,)`, or rows of
        streams `(batch, time)`, or a `tf.data.Dataset` of such rows (`steps` batches,
        `(token_ids, targets)` pairs or ids alone) in which each batch continues every
        row of the one before (as `kerasnotes`'s language-model batches do)."""
        if isinstance(data, tf.data.Dataset):
            batches = [
                batch[0] if isinstance(batch, tuple) else batch
                for batch in (data.take(steps) if steps else data).as_numpy_iterator()
            ]
            rows = np.concatenate([np.atleast_2d(b) for b in batches], axis=1)
        else:
            rows = np.atleast_2d(np.asarray(data))
        counts = [collections.Counter() for _ in range(self.order)]
        for row in rows:
            for total, found in zip(counts, count_ngrams(row[row > 0], self.order), strict=True):
                total.update(found)
        self.set_counts(counts)

    def set_counts(self, counts: list[collections.Counter]) -> None:
        """Take the counts of orders 1 to `order` (`count_ngrams`'s) as the model's."""
        order = self.order
        keys = [key for level in counts for key in level]
        index = {key: i + 1 for i, key in enumerate(keys)}
        stats = np.zeros((len(keys) + 1, 5), np.int64)
        for level in counts:
            for key, count in level.items():
                stats[index[key], COUNT] = count
        # Continuation counts: how many distinct tokens precede each n-gram.
        for level in counts[1:]:
            for key in level:
                stats[index[key[1:]], CONTINUATION] += 1
        # Each context's totals over the tokens that follow it.
        root = np.zeros(5, np.int64)
        for level in counts:
            for key, count in level.items():
                target = stats[index[key[:-1]]] if len(key) > 1 else root
                target[TOTAL] += count
                target[DISTINCT] += 1
                target[CONTINUATION_TOTAL] += stats[index[key], CONTINUATION]
        if self.discount is not None:
            discounts = [self.discount] * order
        else:
            discounts = [
                ney_discount(
                    stats[[index[key] for key in level], COUNT if k == order else CONTINUATION]
                )
                for k, level in enumerate(counts, start=1)
            ]
        self.table.set_vocabulary(keys or ["\0"])
        self.statistics = stats
        self.discounts = np.array(discounts, np.float64)
        self.root = root
        self.built = True

    @property
    def num_ngrams(self) -> int:
        return 0 if self.statistics is None else len(self.statistics) - 1

    def _check_adapted(self):
        if self.statistics is None:
            raise ValueError("The n-gram model has no counts yet: call adapt() first.")

    # Probabilities ----------------------------------------------------------------------

    def probabilities(self, context, targets, order=None):
        """P(target | context): `context` `(rows, order - 1)` ids (-1 where the stream
        had not started), `targets` `(rows, m)` ids; float64 `(rows, m)`.

        `order` (at most the model's) gives what the model of that order would, from
        the same counts (every statistic of a shorter n-gram is the same in both; the
        discounts are this model's).
        """
        self._check_adapted()
        order = order or self.order
        stats = tf.constant(self.statistics)
        discounts = tf.constant(self.discounts)
        root = tf.cast(tf.constant(self.root), tf.float64)
        size = float(len(self.vocabulary) - 1)  # Padding is never a token.
        context = tf.cast(context, tf.int64)
        targets = tf.cast(targets, tf.int64)

        points = code_points(np.arange(len(self.vocabulary)))
        characters = tf.constant([chr(p) for p in points.tolist()])

        def strings(ids):  # Each id's character (-1: any; contexts check `available`).
            return tf.gather(characters, tf.maximum(ids, 0))

        def lookup(keys):  # The statistics of each n-gram, as float64.
            return tf.cast(tf.gather(stats, self.table(keys)), tf.float64)

        target_strings = strings(targets)  # (rows, m)
        unigrams = lookup(target_strings)  # (rows, m, 5)
        if self.smoothing == "add_k":
            p = (unigrams[..., COUNT] + self.k) / (root[TOTAL] + self.k * size)
        else:
            d = discounts[0]
            p = (
                tf.maximum(unigrams[..., CONTINUATION] - d, 0.0) + d * root[DISTINCT] / size
            ) / root[CONTINUATION_TOTAL]
        prefix = tf.fill(tf.shape(context)[:1], "")
        for length in range(1, order):
            position = self.context_length - length
            prefix = strings(context[:, position]) + prefix  # The last `length` tokens.
            available = context[:, position] >= 0
            c = lookup(prefix)  # (rows, 5)
            g = lookup(prefix[:, None] + target_strings)  # (rows, m, 5)
            if self.smoothing == "add_k":  # The longest context counts, seen or not.
                known = available
                higher = (g[..., COUNT] + self.k) / (c[:, None, TOTAL] + self.k * size)
            else:
                known = available & (c[:, TOTAL] > 0)
                highest = length + 1 == order
                numerator = g[..., COUNT] if highest else g[..., CONTINUATION]
                denominator = c[:, TOTAL] if highest else c[:, CONTINUATION_TOTAL]
                known &= denominator > 0
                denominator = tf.maximum(denominator, 1.0)[:, None]
                d = discounts[length]
                alpha = tf.maximum(numerator - d, 0.0) / denominator
                gamma = d * c[:, None, DISTINCT] / denominator
                higher = alpha + gamma * p
            p = tf.where(known[:, None], higher, p)
        return p

    def contexts(self, token_ids, *, inclusive=False):
        """The `order - 1` ids before each position of `token_ids` `(batch, time)`, or
        up to and including it (`inclusive`), -1 before the start: `(batch, time,
        order - 1)`."""
        token_ids = tf.cast(token_ids, tf.int64)
        if self.context_length == 0:
            return tf.zeros(tf.concat([tf.shape(token_ids), [0]], 0), tf.int64)
        padded = tf.pad(token_ids, [[0, 0], [self.context_length, 0]], constant_values=-1)
        padded = padded[:, 1:] if inclusive else padded[:, :-1]
        return tf.signal.frame(padded, self.context_length, 1, axis=1)

    def log_likelihood(self, token_ids, order=None):
        """Natural log-probability of tokens 1.. of each row given the tokens before
        them: `(batch, time - 1)` (as the model of `order` would, see `probabilities`)."""
        context = self.contexts(token_ids)[:, 1:]  # (batch, time - 1, order - 1)
        shape = tf.shape(context)[:2]
        flat = tf.reshape(context, [-1, self.context_length])
        p = self.probabilities(flat, tf.reshape(token_ids[:, 1:], [-1, 1]), order)
        return tf.reshape(tf.math.log(p), shape)

    def next_log_probs(self, context):
        """Log-probabilities `(rows, vocabulary)` of the next token after `context`
        `(rows, order - 1)`; padding gets `IMPOSSIBLE`."""
        rows = tf.shape(context)[0]
        everything = tf.tile(tf.range(len(self.vocabulary), dtype=tf.int64)[None], [rows, 1])
        log_p = tf.math.log(self.probabilities(context, everything)[:, 1:])
        padding = tf.fill([rows, 1], tf.constant(IMPOSSIBLE, log_p.dtype))
        return tf.cast(tf.concat([padding, log_p], axis=1), tf.float32)

    def call(self, token_ids):
        contexts = self.contexts(token_ids, inclusive=True)  # (batch, time, order - 1)
        flat = tf.reshape(contexts, [-1, self.context_length])
        out = self.next_log_probs(flat)
        return tf.reshape(out, tf.concat([tf.shape(contexts)[:2], [len(self.vocabulary)]], 0))

    # Decoding ---------------------------------------------------------------------------

    def initial_decoding_state(self, batch_size):
        """No tokens read yet: `(batch, order - 1)` of -1."""
        return tf.fill([batch_size, self.context_length], tf.constant(-1, tf.int64))

    def decoding_step(self, tokens, state):
        """`kerasnotes.decoding`'s step: read `tokens`, give the next token's logits."""
        context = tf.concat([state, tf.cast(tokens, tf.int64)[:, None]], axis=1)
        context = context[:, 1:]
        return self.next_log_probs(context), context, None

    # Saving ----------------------------------------------------------------------------

    def save_assets(self, dir_path):
        self._check_adapted()
        np.savez(
            os.path.join(dir_path, STATS_FILE),
            statistics=self.statistics,
            discounts=self.discounts,
            root=self.root,
        )

    def load_assets(self, dir_path):
        with np.load(os.path.join(dir_path, STATS_FILE)) as saved:
            self.statistics = saved["statistics"]
            self.discounts = saved["discounts"]
            self.root = saved["root"]
        self.built = True

    def get_config(self):
        base_config = super().get_config()
        config = {
            "order": self.order,
            "smoothing": self.smoothing,
            "discount": self.discount,
            "k": self.k,
        }
        return {**base_config, **config}


@register_model(
    "ngram",
    task="language_modelling",
    training_defaults={"epochs": 1},
)
def ngram(
    vocabulary=("", "[UNK]", "a", "b"),
    order=8,
    smoothing="kneser_ney",
    discount=0.75,
    k=0.1,
    name="ngram",
):
    """Count-based n-gram language model: interpolated Kneser-Ney or add-k smoothing.

    Args:
        vocabulary: the tokens (set from the data by `kerasnotes train`).
        order: the n of the n-grams (the context is `order - 1` tokens).
        smoothing: `"kneser_ney"` (interpolated) or `"add_k"`.
        discount: Kneser-Ney's discount, or `None` to estimate one per order.
        k: add-k's pseudo-count.
        name: the model's name.

    Example:

    >>> model = ngram(vocabulary=["", "[UNK]", "a", "b"], order=2)
    >>> model.adapt(np.array([2, 3, 2, 3, 2]))
    >>> model.log_likelihood(np.array([[2, 3, 2]])).shape
    TensorShape([1, 2])
    """
    return NGramLM(
        vocabulary=list(vocabulary),
        order=order,
        smoothing=smoothing,
        discount=discount,
        k=k,
        name=name,
    )
