"""`captioner`: a CNN encoder and a recurrent decoder with attention over image regions.

The image caption generator of the notes ("an RNN with attention over the image"):

1. the encoder turns an image into a grid of region features, `(batch, regions, units)`
   (the CNN family's convolution blocks, or a `keras.applications` backbone);
2. the decoder, word embeddings and a stack of GRU or LSTM layers started from the
   mean and the maximum of the regions, reads the caption so far;
3. at every step, additive (Bahdanau) attention scores each region against the
   decoder's state, and the next word is predicted from the state, the attended
   context and the sum of the contexts attended at the earlier steps (the
   state-then-attend arrangement of Luong et al., 2015, which lets training run the
   recurrent layers over whole sequences).

The sum of earlier contexts is what the caption has looked at so far: which objects,
and where (the regions carry position embeddings). "left of" or "above" compares where
the object just named is with the one attended now, and "a purple diamond and a ..."
needs to know which diamond was named. Feeding each context back into the recurrent
layer (input feeding, as in Show, Attend and Tell) gives the decoder the same memory,
but makes training step through time one attention at a time; a running sum (an
exclusive cumulative sum in training) keeps it parallel. On `shapes_captions` it
raised held-out BLEU-4 from 0.830 to 0.876 (seed 0, 8 epochs) at the same step time,
where input feeding reached 0.856 at 1.5x the step time.

Training is plain `fit()` with teacher forcing: inputs `{"images", "token_ids"}`, the
shifted tokens as targets and the padding mask as sample weights.

Decoding (`generate`) is `kerasnotes.decoding`'s batched beam search in the graph,
with length normalisation; beam width 1 is greedy decoding. `evaluate`, `predict` and the
SavedModel all call it. The vocabulary lives in the model's `TextVectorization`
layer and its config, so `model.keras` carries it.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from kerasnotes.decoding import decode
from kerasnotes.encoders import build_encoder
from kerasnotes.layers import BahdanauAttention, check_data_format, check_positive_ints
from kerasnotes.registry import register_model

RNN_TYPES = ("gru", "lstm")
# Reserved tokens: TextVectorization's padding and out-of-vocabulary tokens, then
# sentence boundaries that its standardization can never produce from text.
PAD, UNKNOWN, START, END = "", "[UNK]", "[start]", "[end]"
RESERVED = (PAD, UNKNOWN, START, END)
START_ID, END_ID = RESERVED.index(START), RESERVED.index(END)


def make_tokenizer(vocabulary) -> layers.TextVectorization:
    """The word tokenizer for `vocabulary` (lower case, punctuation stripped)."""
    return layers.TextVectorization(vocabulary=list(vocabulary), ragged=True, name="tokenizer")


def tokenize(tokenizer, captions, max_length: int, end: bool = True):
    """Captions `(n,)` to ids `(n, max_length + 2)`: `[start]`, words, `[end]`, padding.

    Captions longer than `max_length` words are cut to it (and still end with `[end]`).
    With `end=False` (questions) there is no `[end]`: ids `(n, max_length + 1)`.
    """
    words = tokenizer(captions)[:, :max_length]  # Ragged (n, None).
    column = tf.ones([words.nrows(), 1], words.dtype)
    ids = tf.concat([column * START_ID, words, *([column * END_ID] if end else [])], 1)
    return ids.to_tensor(0, shape=[None, max_length + 1 + int(end)])


@keras.saving.register_keras_serializable(package="kerasnotes")
class Captioner(keras.Model):
    """Image captioner: region encoder, recurrent decoder, additive attention.

    Args:
        vocabulary: the tokens, starting with `RESERVED` ("", "[UNK]", "[start]",
            "[end]").
        max_length: the longest caption in words (tokenization truncates to it;
            decoding stops after it).
        image_shape: image shape in `data_format` order.
        data_format: `"channels_last"` or `"channels_first"`.
        encoder, encoder_weights, encoder_filters, encoder_batch_norm: the image
            encoder (see `kerasnotes.encoders.build_encoder`).
        embedding_dim: width of the word embeddings.
        units: width of the region features and of every recurrent layer.
        rnn: `"gru"` or `"lstm"`.
        num_layers: recurrent layers in the decoder.
        attention_units: width of the attention's scoring layer (64 by default: on
            `shapes_captions` 128 cost 11% more time per step for +0.004 BLEU-4).
        dropout: dropout before the word classifier.
        beam_width: default beam width of `generate` (1 is greedy).
        length_penalty: exponent `alpha` of the length normalisation
            `((5 + length) / 6) ** alpha` of beam scores (0, the default, for none:
            on `shapes_captions` alpha 0.6 favoured long phrasings and cost about
            0.01 BLEU-4).

    Call arguments:
        inputs: `{"images": (batch, H, W, C) or (batch, C, H, W), "token_ids":
            (batch, time)}`: float pixels 0-255 and `[start] words` ids.

    Returns:
        Next-token logits, `(batch, time, vocabulary_size)`.
    """

    def __init__(
        self,
        vocabulary,
        max_length=20,
        image_shape=(48, 48, 3),
        data_format="channels_last",
        encoder="cnn",
        encoder_weights=None,
        encoder_filters=(16, 32, 64),
        encoder_batch_norm=True,
        embedding_dim=64,
        units=256,
        rnn="gru",
        num_layers=1,
        attention_units=64,
        dropout=0.0,
        beam_width=3,
        length_penalty=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        vocabulary = [str(token) for token in vocabulary]
        if tuple(vocabulary[: len(RESERVED)]) != RESERVED or len(vocabulary) <= len(RESERVED):
            raise ValueError(
                f"Invalid vocabulary starting {vocabulary[:5]!r}: expected the reserved "
                f"tokens {list(RESERVED)!r} followed by at least one word."
            )
        for name, value in (
            ("max_length", max_length),
            ("embedding_dim", embedding_dim),
            ("units", units),
            ("num_layers", num_layers),
            ("attention_units", attention_units),
            ("beam_width", beam_width),
        ):
            check_positive_ints(name, [value])
        if rnn not in RNN_TYPES:
            raise ValueError(f"Invalid rnn {rnn!r}: expected one of {', '.join(RNN_TYPES)}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"Invalid dropout {dropout!r}: must be in [0, 1).")
        if length_penalty < 0:
            raise ValueError(f"Invalid length_penalty {length_penalty!r}: must be >= 0.")
        check_data_format(data_format)
        self.vocabulary = vocabulary
        self.max_length = max_length
        self.image_shape = tuple(image_shape)
        self.data_format = data_format
        self.encoder_name = encoder
        self.encoder_weights = encoder_weights
        self.encoder_filters = list(encoder_filters)
        self.encoder_batch_norm = encoder_batch_norm
        self.embedding_dim = embedding_dim
        self.units = units
        self.rnn = rnn
        self.num_layers = num_layers
        self.attention_units = attention_units
        self.dropout = dropout
        self.beam_width = beam_width
        self.length_penalty = length_penalty

        self.tokenizer = make_tokenizer(vocabulary)
        self.encoder = build_encoder(
            self.image_shape,
            data_format,
            units,
            encoder=encoder,
            encoder_weights=encoder_weights,
            cnn_options={"filters": self.encoder_filters, "batch_norm": encoder_batch_norm},
        )
        rnn_layer = layers.GRU if rnn == "gru" else layers.LSTM
        self.num_states = 1 if rnn == "gru" else 2
        self.initial_state_layers = [
            layers.Dense(units * self.num_states, activation="tanh", name=f"initial_state{i + 1}")
            for i in range(num_layers)
        ]
        self.embedding = layers.Embedding(len(vocabulary), embedding_dim, name="embedding")
        self.rnn_layers = [
            rnn_layer(units, return_sequences=True, return_state=True, name=f"{rnn}{i + 1}")
            for i in range(num_layers)
        ]
        self.attention = BahdanauAttention(attention_units, name="attention")
        self.dropout_layer = layers.Dropout(dropout, name="dropout")
        self.classifier = layers.Dense(len(vocabulary), name="next_token")
        self.build()

    # Pieces shared by training and decoding ------------------------------------------

    def initial_states(self, features):
        """Per recurrent layer, its initial states from the mean and maximum regions.

        The maximum says which features occur anywhere, which the mean blurs: whether
        two objects of one colour are one shape twice ("two green rings") or two
        shapes ("a green circle above a green ring"), a choice the first word makes.
        With the maximum, held-out BLEU-4 rose from 0.876 to 0.922 (seed 0, 8 epochs;
        the median of seeds 0-2 is 0.923, and 0.911 with the defaults: see
        `benchmarks/README.md`).
        """
        summary = ops.concatenate([ops.mean(features, axis=1), ops.max(features, axis=1)], -1)
        return [
            list(ops.split(dense(summary), self.num_states, axis=-1))
            for dense in self.initial_state_layers
        ]

    def initial_memory(self, features):
        """What decoding carries from step to step, at its start: `(states, seen)`.

        `states` are `initial_states(features)`; `seen`, the sum of the contexts so far,
        starts at zeros. `_step` takes and returns both.
        """
        return self.initial_states(features), ops.zeros_like(features[:, 0])

    def tokenize(self, captions):
        """Captions (string tensor `(n,)`) to `[start] words [end]` ids `(n, max_length + 2)`."""
        return tokenize(self.tokenizer, captions, self.max_length)

    def build(self, input_shape=None):
        # Every layer's shapes follow from the constructor arguments, so the model is
        # built on construction (and `load_model` finds every variable).
        regions = self.encoder.output_shape[1]
        for dense in self.initial_state_layers:
            dense.build((None, 2 * self.units))
        self.embedding.build((None, None))
        width = self.embedding_dim
        for rnn_layer in self.rnn_layers:
            rnn_layer.build((None, None, width))
            width = self.units
        self.attention.build((None, None, self.units), (None, regions, self.units))
        self.classifier.build((None, None, 3 * self.units))
        self.built = True

    def call(self, inputs, training=False):
        images, token_ids = inputs["images"], inputs["token_ids"]
        features = self.encoder(images, training=training)  # (batch, regions, units)
        states = self.initial_states(features)
        x = self.embedding(token_ids)  # (batch, time, embedding_dim)
        for rnn_layer, initial in zip(self.rnn_layers, states, strict=True):
            x, *_ = rnn_layer(x, initial_state=initial, training=training)
        context, _ = self.attention(x, features)  # (batch, time, units)
        seen = ops.cumsum(context, axis=1) - context  # Contexts of the earlier steps.
        x = ops.concatenate([x, context, seen], axis=-1)
        x = self.dropout_layer(x, training=training)
        return self.classifier(x)  # (batch, time, vocabulary)

    # Decoding ---------------------------------------------------------------------------

    def _step(self, tokens, states, seen, features, projected):
        """One decoding step for `tokens` (n,) after contexts summing to `seen`.

        Returns the logits, the attention weights, the new states and `seen` plus this
        step's context.
        """
        x = self.embedding(tokens)  # (n, embedding_dim)
        new_states = []
        for rnn_layer, layer_states in zip(self.rnn_layers, states, strict=True):
            x, layer_states = rnn_layer.cell(x, layer_states)
            new_states.append(list(layer_states))
        context, weights = self.attention(ops.expand_dims(x, 1), features, projected)
        context = context[:, 0]
        logits = self.classifier(ops.concatenate([x, context, seen], axis=-1))
        return logits, weights[:, 0], new_states, seen + context

    def generate(self, images, beam_width=None, length_penalty=None, max_length=None):
        """Batched beam search in the graph; beam width 1 is greedy decoding.

        Args:
            images: `(batch, H, W, C)` or `(batch, C, H, W)` float pixels, 0-255.
            beam_width, length_penalty: default to the model's settings.
            max_length: most words per caption (default the model's `max_length`).

        Returns:
            A dict: `token_ids` `(batch, steps)` (words, then `[end]` and padding),
            `lengths` `(batch,)` (words before `[end]`), `attention`
            `(batch, steps, regions)` (the weights behind each word) and `scores`
            `(batch,)` (length-normalised log-probabilities).
        """
        features = self.encoder(images, training=False)  # (batch, regions, units)
        batch = tf.shape(features)[0]
        states, seen = self.initial_memory(features)
        state = (states, seen, features, self.attention.project_values(features))

        def step(tokens, state):
            states, seen, features, projected = state
            logits, weights, states, seen = self._step(tokens, states, seen, features, projected)
            return logits, (states, seen, features, projected), weights

        out = decode(
            step,
            state,
            prompt=tf.fill([batch, 1], tf.constant(START_ID, tf.int64)),
            prompt_lengths=tf.ones([batch], tf.int32),
            max_new_tokens=int(max_length or self.max_length) + 1,  # Words and [end].
            beam_width=int(beam_width or self.beam_width),
            stop=[END_ID],
            # Never padding, unknown or start tokens.
            banned=(0, 1, START_ID),
            length_penalty=float(
                self.length_penalty if length_penalty is None else length_penalty
            ),
        )
        return {
            "token_ids": out["tokens"],
            "lengths": out["lengths"],
            "attention": out["trace"],
            "scores": out["scores"],
        }

    def detokenize(self, token_ids, lengths):
        """Caption strings `(batch,)` from `generate`'s token ids and lengths."""
        words = tf.gather(tf.constant(self.vocabulary), token_ids)
        words = tf.RaggedTensor.from_tensor(words, lengths=lengths)
        return tf.strings.reduce_join(words, axis=-1, separator=" ")

    def caption(self, images, beam_width=None, length_penalty=None):
        """Caption strings for a batch of images (float pixels, 0-255)."""
        out = self.generate(images, beam_width=beam_width, length_penalty=length_penalty)
        return self.detokenize(out["token_ids"], out["lengths"])

    def get_config(self):
        base_config = super().get_config()
        config = {
            "vocabulary": self.vocabulary,
            "max_length": self.max_length,
            "image_shape": list(self.image_shape),
            "data_format": self.data_format,
            "encoder": self.encoder_name,
            "encoder_weights": self.encoder_weights,
            "encoder_filters": self.encoder_filters,
            "encoder_batch_norm": self.encoder_batch_norm,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "rnn": self.rnn,
            "num_layers": self.num_layers,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
            "beam_width": self.beam_width,
            "length_penalty": self.length_penalty,
        }
        return {**base_config, **config}


@register_model(
    "captioner",
    task="captioning",
    training_defaults={"epochs": 7, "batch_size": 32, "learning_rate": 3e-3},
)
def captioner(
    vocabulary=(*RESERVED, "a"),
    max_length=20,
    input_shape=(48, 48, 3),
    data_format="channels_last",
    encoder="cnn",
    encoder_weights="imagenet",
    encoder_filters=(16, 32, 64),
    encoder_batch_norm=True,
    embedding_dim=64,
    units=256,
    rnn="gru",
    num_layers=1,
    attention_units=64,
    dropout=0.0,
    beam_width=3,
    length_penalty=0.0,
    name="captioner",
):
    """CNN encoder + GRU/LSTM decoder with additive attention over image regions.

    Args:
        vocabulary: tokens, starting with `RESERVED` (set from the data by
            `kerasnotes train`).
        max_length: longest caption in words (set from the data).
        input_shape: image shape in `data_format` order (set from the data).
        data_format: `"channels_last"` or `"channels_first"`: the layout of the input.
        encoder: `"cnn"` (the CNN family's blocks) or a `keras.applications` backbone:
            `"mobilenet_v2"`, `"resnet50_v2"`, `"efficientnet_b0"`.
        encoder_weights: `"imagenet"` or `None`, for a backbone (ignored by `"cnn"`).
        encoder_filters: filters of each block of the `"cnn"` encoder.
        encoder_batch_norm: batch normalization in the `"cnn"` encoder.
        embedding_dim, units, rnn, num_layers, attention_units, dropout, beam_width,
            length_penalty: see `Captioner`.
        name: the model's name.

    Example:

    >>> model = captioner(vocabulary=["", "[UNK]", "[start]", "[end]", "a", "red",
    ...                   "circle"], max_length=4)
    >>> model.caption(np.zeros((2, 48, 48, 3))).shape
    TensorShape([2])
    """
    return Captioner(
        vocabulary=list(vocabulary),
        max_length=max_length,
        image_shape=tuple(input_shape),
        data_format=data_format,
        encoder=encoder,
        encoder_weights=encoder_weights if encoder != "cnn" else None,
        encoder_filters=encoder_filters,
        encoder_batch_norm=encoder_batch_norm,
        embedding_dim=embedding_dim,
        units=units,
        rnn=rnn,
        num_layers=num_layers,
        attention_units=attention_units,
        dropout=dropout,
        beam_width=beam_width,
        length_penalty=length_penalty,
        name=name,
    )
