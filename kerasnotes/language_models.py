"""What every language model shares: its vocabulary, and scoring by its logits.

The language-modelling task (`kerasnotes.tasks.language_modelling`) trains, measures
and serves any subclass of `LanguageModel`; see that module for the protocol.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


class LanguageModel(keras.Model):
    """A model over token ids of `vocabulary` (padding `""` and the unknown token first).

    Holds the vocabulary and its `StringLookup` (`lookup`: tokens to ids, for serving),
    so exports of the model carry it. Subclasses give the logits of the next token at
    each position (`call`) and a decoding step; `log_likelihood` scores by the logits.
    """

    context_length = None  # Tokens of context the model reads at most (None: any).

    def __init__(self, vocabulary, **kwargs):
        super().__init__(**kwargs)
        if len(vocabulary) < 3:
            raise ValueError(
                f"Invalid vocabulary of {len(vocabulary)} tokens: it needs padding, the "
                "unknown token and at least one token."
            )
        self.vocabulary = list(vocabulary)
        self.lookup = keras.layers.StringLookup(
            vocabulary=self.vocabulary[2:], mask_token="", oov_token="[UNK]", name="lookup"
        )

    def log_likelihood(self, token_ids):
        """Natural log-probabilities of tokens 1.. of each row given the tokens before
        them: `(batch, time - 1)`."""
        logits = tf.cast(self(token_ids[:, :-1], training=False), tf.float32)
        log_probs = tf.nn.log_softmax(logits)
        return tf.gather(log_probs, tf.cast(token_ids[:, 1:], tf.int32), batch_dims=2)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary}


@keras.saving.register_keras_serializable(package="kerasnotes")
class BitsPerToken(keras.metrics.Mean):
    """Cross-entropy of next-token logits in bits per token (per character, for
    character-level models)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return super().update_state(loss / math.log(2), sample_weight=sample_weight)
