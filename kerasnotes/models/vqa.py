"""`vqa`: visual question answering, a CNN reading the image and an RNN the question.

The VQA model of the notes:

1. the image encoder shared with the captioner (`build_encoder`) turns the image into
   a grid of region features;
2. the question encoder, word embeddings (with masking for padding) and a GRU or LSTM
   (bidirectional by default), reduces the question to a vector;
3. a fusion of the two, one of:
   - `"film"` (default): feature-wise linear modulation (Perez et al., 2018, "FiLM:
     Visual Reasoning with a General Conditioning Layer"): residual blocks of 3x3
     convolutions over the region grid whose normalised features are scaled and
     shifted by the question, `gamma(q) * x + beta(q)`, so the question decides
     what the image features compute; the 3x3 convolutions see the neighbourhood
     that relations ("left of the red circle") need, and each block's input has the
     regions' coordinates beside it, as the paper's has;
   - `"concat"`: the question concatenated to every region, then a dense layer;
   - `"product"`: every region multiplied element-wise by a projection of the question;
4. attention over the fused regions, queried by the question (optional): the weighted
   sums of the fused regions and of the encoder's own regions (what the attended
   object looks like, before the question changed it: colour questions learned
   faster with it), the mean of the fused regions, and soft counts: `COUNTERS` sigmoid
   gates of every fused region, summed over the regions, so "how many" and "are there
   more ... than ..." read counts rather than a softmax's shares (softmax attention
   cannot count: its weights sum to one);
5. where the data knows its scenes, a counting answer beside that classifier's
   (`inventory_weight`): from every region, the density of each kind of object (each
   combination of attribute values: "red circle") is summed into the image's
   inventory, trained against the scenes' true counts; `count_filters` soft
   selections of kinds chosen by the question (one selection per attribute,
   multiplied: "red" x "any shape") pick objects from it, and a small classifier
   answers from each selection's total and its histogram per attribute. Selections
   made from the question's vector tend to pick the same group twice in "are there
   more circles than squares?", so `count_filters` more are made from its words:
   per attribute, attention over the words (scored from the question encoder's
   states) reads each attended word's values ("circles": any colour, circle); the
   classifier also reads the first such group's total and how much it exceeds the
   others'. Its logits are added to the visual answer's, weighted by a gate that
   the question opens (counting, existence, colour of the named shape) or closes
   (relations, which need positions the inventory does not have), closed at first;
   it is also trained alone (an auxiliary cross-entropy) so that its selections are
   learned early;
6. a softmax over the answer vocabulary.

Learning to see from answers alone is slow: one answer is a few bits about an image.
Where the data knows its scenes (the embedded `shapes_vqa` and CLEVR give each
scene's objects), training adds a second, dense signal (`scene_weight`): from every
region's features, small heads predict the attributes (shape, colour, ...) of the
object centred in that region, or none. On `shapes_vqa` this taught the encoder
shapes that answers alone had not after four epochs. It adds one dense layer per
attribute, used in training only. Answers alone did not teach counting either: the
scene heads' per-region classes parsed only 80-85% of held-out scenes exactly
(objects near a region's edge), while the summed densities of the inventory count
every kind right in 95% of them.

Questions are tokenized in the graph by the model's `TextVectorization` layer (lower
case, punctuation stripped, `[start]` first so an empty question is still one token;
words outside the vocabulary become `[UNK]`), so exports take question strings.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kerasnotes.encoders import build_encoder
from kerasnotes.layers import (
    BahdanauAttention,
    FusedBatchNormalization,
    check_data_format,
    check_positive_ints,
)
from kerasnotes.models import captioner
from kerasnotes.models.captioner import RNN_TYPES, make_tokenizer
from kerasnotes.registry import register_model

FUSIONS = ("film", "concat", "product")
COUNTERS = 8  # Soft counts the answer classifier reads (see `VqaModel`).
COUNTING_AUX_WEIGHT = 1.0  # Weight of the counting answer's own cross-entropy.
# The captioner's first reserved tokens, so its `tokenize` serves questions too.
RESERVED = captioner.RESERVED[:3]  # "", "[UNK]", "[start]"


def tokenize(tokenizer, questions, max_length: int):
    """Questions `(n,)` to ids `(n, max_length + 1)`: `[start]`, words (cut), padding."""
    return captioner.tokenize(tokenizer, questions, max_length, end=False)


def scene_targets(scene, grid, attributes):
    """Per-region classes of a batch of scenes, for the scene loss.

    Args:
        scene: `{"center": (batch, objects, 2) (y, x) fractions of the image's size,
            <attribute>: (batch, objects) class ids}`; padding objects have ids < 0.
        grid: `(rows, columns)` of the region grid.
        attributes: the attributes to give targets for.

    Returns:
        `{attribute: (batch, rows * columns) int32}`: 1 + the class id of the object
        centred in each region (the largest, if several are), 0 where none is.
    """
    rows, columns = grid
    center = ops.cast(scene["center"], "float32")
    row = ops.clip(ops.cast(ops.floor(center[..., 0] * rows), "int32"), 0, rows - 1)
    column = ops.clip(ops.cast(ops.floor(center[..., 1] * columns), "int32"), 0, columns - 1)
    cells = ops.one_hot(row * columns + column, rows * columns, dtype="int32")
    targets = {}
    for name in attributes:
        ids = ops.cast(scene[name], "int32")
        # (batch, objects, regions): 1 + id in the object's region, 0 elsewhere.
        marked = cells * ops.expand_dims(ops.maximum(ids + 1, 0), -1)
        targets[name] = ops.max(marked, axis=1)
    return targets


def scene_counts(scene, attributes):
    """How many objects of each kind a batch of scenes holds, for the inventory loss.

    Args:
        scene: `{<attribute>: (batch, objects) class ids}`; padding objects have ids < 0.
        attributes: `{attribute: number of classes}`; a kind is one class of each, in
            this order (the first attribute varies slowest).

    Returns:
        `(batch, kinds)` float32 counts, `kinds` the product of the class numbers.
    """
    kind, valid, kinds = 0, True, 1
    for name, classes in attributes.items():
        ids = ops.cast(scene[name], "int32")
        kind = kind * classes + ops.maximum(ids, 0)
        valid = valid & (ids >= 0)
        kinds *= classes
    return ops.sum(ops.one_hot(kind, kinds) * ops.cast(valid, "float32")[..., None], axis=1)


@keras.saving.register_keras_serializable(package="kerasnotes")
class VqaModel(keras.Model):
    """Image + question in, answer scores out.

    Args:
        vocabulary: question words, starting with `RESERVED` ("", "[UNK]", "[start]").
        answers: the answer vocabulary (the classes).
        max_length: longest question in words (longer ones are cut).
        image_shape: image shape in `data_format` order.
        data_format: `"channels_last"` or `"channels_first"`.
        encoder, encoder_weights, encoder_filters, encoder_batch_norm: the image
            encoder (see `kerasnotes.encoders.build_encoder`).
        embedding_dim: width of the word embeddings.
        units: width of the region features, of the question encoder and the fusion.
        rnn: `"gru"` or `"lstm"`; `bidirectional` reads the question both ways.
        fusion: `"film"`, `"concat"` or `"product"` (see the module docstring).
        film_blocks: FiLM residual blocks (fusion `"film"`).
        attention: attend over the fused regions, queried by the question.
        attention_units: width of the attention's scoring layer.
        classifier_units: width of the hidden layer before the answer softmax.
        dropout: dropout before the answer classifier.
        top_k: how many ranked answers `answer` returns.
        scene_attributes: `{attribute: number of classes}` of the scenes' objects,
            for the scene loss; empty for data without scenes.
        scene_weight: weight of the scene loss (0 for none).
        inventory_weight: weight of the inventory loss; with scenes and a weight above
            0, the model has the counting answer (see the module docstring).
        count_filters: how many selections of objects the counting answer makes from
            the question's vector, and as many from its words (two for "are there
            more circles than squares?").

    Call arguments:
        inputs: `{"images": (batch, H, W, C) or (batch, C, H, W) float pixels 0-255,
            "question_ids": (batch, time) ids from `tokenize`}`, and in training
            optionally `"scene"`: the scenes' objects for the scene loss (see
            `scene_targets`). With `"image_index"`: (questions,) ints, the row of
            `images` each question is about, so an image with several questions is
            encoded once, and so is what FiLM's first block computes before the
            question modulates it: `images` (and `scene`) then hold each image once.

    Returns:
        Answer logits `(questions, len(answers))`, one row per question.
    """

    def __init__(
        self,
        vocabulary,
        answers,
        max_length=20,
        image_shape=(48, 48, 3),
        data_format="channels_last",
        encoder="cnn",
        encoder_weights=None,
        encoder_filters=(16, 32, 64),
        encoder_batch_norm=True,
        embedding_dim=64,
        units=128,
        rnn="gru",
        bidirectional=True,
        fusion="film",
        film_blocks=2,
        attention=True,
        attention_units=128,
        classifier_units=256,
        dropout=0.0,
        top_k=5,
        scene_attributes=None,
        scene_weight=10.0,
        inventory_weight=1.0,
        count_filters=2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        vocabulary = [str(token) for token in vocabulary]
        answers = [str(answer) for answer in answers]
        if tuple(vocabulary[: len(RESERVED)]) != RESERVED:
            raise ValueError(
                f"Invalid vocabulary starting {vocabulary[:4]!r}: expected the reserved "
                f"tokens {list(RESERVED)!r} first."
            )
        if len(answers) < 2 or len(set(answers)) != len(answers):
            raise ValueError(f"Invalid answers {answers[:5]!r}: need at least 2 distinct answers.")
        for name, value in (
            ("max_length", max_length),
            ("embedding_dim", embedding_dim),
            ("units", units),
            ("attention_units", attention_units),
            ("classifier_units", classifier_units),
            ("top_k", top_k),
            ("count_filters", count_filters),
        ):
            check_positive_ints(name, [value])
        if rnn not in RNN_TYPES:
            raise ValueError(f"Invalid rnn {rnn!r}: expected one of {', '.join(RNN_TYPES)}.")
        if fusion not in FUSIONS:
            raise ValueError(f"Invalid fusion {fusion!r}: expected one of {', '.join(FUSIONS)}.")
        if not isinstance(film_blocks, int) or film_blocks < 0:
            raise ValueError(f"Invalid film_blocks {film_blocks!r}: must be an integer >= 0.")
        if not 0 <= dropout < 1:
            raise ValueError(f"Invalid dropout {dropout!r}: must be in [0, 1).")
        for name, weight in (
            ("scene_weight", scene_weight),
            ("inventory_weight", inventory_weight),
        ):
            if isinstance(weight, bool) or not (isinstance(weight, (int, float)) and weight >= 0):
                raise ValueError(f"Invalid {name} {weight!r}: must be a number >= 0.")
        scene_attributes = dict(scene_attributes or {})
        for name, classes in scene_attributes.items():
            check_positive_ints(f"scene_attributes[{name!r}]", [classes])
        check_data_format(data_format)
        self.vocabulary = vocabulary
        self.answers = answers
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
        self.bidirectional = bidirectional
        self.fusion = fusion
        self.film_blocks = film_blocks
        self.use_attention = attention
        self.attention_units = attention_units
        self.classifier_units = classifier_units
        self.dropout = dropout
        self.top_k = min(top_k, len(answers))
        self.scene_attributes = scene_attributes
        self.scene_weight = float(scene_weight)
        self.inventory_weight = float(inventory_weight)
        self.count_filters = count_filters
        # Kinds of objects the inventory counts (0: no counting answer).
        self.kinds = (
            math.prod(scene_attributes.values()) if scene_attributes and inventory_weight else 0
        )

        self.tokenizer = make_tokenizer(vocabulary)
        self.encoder = build_encoder(
            self.image_shape,
            data_format,
            units,
            encoder=encoder,
            encoder_weights=encoder_weights,
            cnn_options={"filters": self.encoder_filters, "batch_norm": encoder_batch_norm},
        )
        self.grid = tuple(self.encoder.get_layer("regions").input.shape[1:3])
        self.coordinates = np.stack(
            np.meshgrid(
                *(np.linspace(-1, 1, n, dtype="float32") for n in self.grid), indexing="ij"
            ),
            axis=-1,
        )[None]  # (1, rows, columns, 2)
        self.embedding = layers.Embedding(
            len(vocabulary), embedding_dim, mask_zero=True, name="embedding"
        )
        # Every word's state (for the word selections) and the final states.
        recurrent = (layers.GRU if rnn == "gru" else layers.LSTM)(
            units, return_sequences=True, return_state=True, name=rnn
        )
        self.question_encoder = (
            layers.Bidirectional(recurrent, name=f"bidirectional_{rnn}")
            if bidirectional
            else recurrent
        )
        self.question_projection = layers.Dense(units, activation="relu", name="question")
        if fusion == "film":
            self.film_inputs = [
                layers.Conv2D(units, 1, activation="relu", name=f"film{i + 1}_input")
                for i in range(film_blocks)
            ]
            self.film_convs = [
                layers.Conv2D(units, 3, padding="same", use_bias=False, name=f"film{i + 1}_conv")
                for i in range(film_blocks)
            ]
            self.film_norms = [
                FusedBatchNormalization(center=False, scale=False, name=f"film{i + 1}_norm")
                for i in range(film_blocks)
            ]
            self.film_generators = [
                layers.Dense(2 * units, name=f"film{i + 1}_gamma_beta") for i in range(film_blocks)
            ]
        else:
            self.fusion_dense = layers.Dense(units, activation="relu", name=f"{fusion}_fusion")
        self.attention = (
            BahdanauAttention(attention_units, name="attention") if attention else None
        )
        # Soft counts: per-region gates of the fused features, summed over the regions.
        self.counter = layers.Dense(COUNTERS, activation="sigmoid", name="counter")
        self.hidden = layers.Dense(classifier_units, activation="relu", name="hidden")
        self.dropout_layer = layers.Dropout(dropout, name="dropout")
        self.classifier = layers.Dense(len(answers), name="answer")
        # Class 0 of each head: no object is centred in the region.
        self.scene_heads = (
            [layers.Dense(n + 1, name=f"scene_{a}") for a, n in scene_attributes.items()]
            if self.scene_weight
            else []
        )
        if self.kinds:
            self.density = layers.Dense(
                self.kinds,
                activation="sigmoid",
                bias_initializer=keras.initializers.Constant(-4.0),  # Few objects at first.
                name="inventory_density",
            )
            self.selections = [
                layers.Dense(count_filters * n, activation="sigmoid", name=f"select_{a}")
                for a, n in scene_attributes.items()
            ]
            # Word selections: per attribute, attention over the question's words, and
            # each attended word's attribute values.
            self.word_attentions = [
                layers.Dense(count_filters, name=f"word_attention_{a}") for a in scene_attributes
            ]
            self.word_values = [
                layers.Dense(n, activation="sigmoid", name=f"word_select_{a}")
                for a, n in scene_attributes.items()
            ]
            self.word_softmax = layers.Softmax(axis=1, name="word_softmax")  # Over words.
            self.counting_hidden = layers.Dense(
                classifier_units, activation="relu", name="counting_hidden"
            )
            self.counting_classifier = layers.Dense(len(answers), name="counting_answer")
            # Closed at first: the visual answer learns as it would alone (relations
            # came later with it open), while the counting answer learns from its own
            # cross-entropy until it is worth opening for.
            self.counting_gate = layers.Dense(
                1,
                activation="sigmoid",
                bias_initializer=keras.initializers.Constant(-3.0),
                name="counting_gate",
            )
        self._counting_logits = None  # The last training call's, for `compute_loss`.
        self.build()

    def build(self, input_shape=None):
        # Every shape follows from the constructor's arguments: build on construction,
        # so `load_model` finds every variable.
        regions = self.encoder(ops.zeros((1, *self.image_shape)))
        question_ids = ops.zeros((1, self.max_length + 1), "int32")
        self._answer_logits(regions, self.inventory(regions), question_ids)
        for head in self.scene_heads:
            head(regions)
        self.built = True

    def tokenize(self, questions):
        """Question strings `(n,)` to ids `(n, max_length + 1)`."""
        return tokenize(self.tokenizer, questions, self.max_length)

    def encode_question(self, question_ids, training=False):
        """`(question, words)`: the question's vector `(batch, units)` and its words,
        `(embeddings, encoder states, mask)`, one row per word."""
        embedded = self.embedding(question_ids)
        mask = self.embedding.compute_mask(question_ids)
        states, *finals = self.question_encoder(embedded, mask=mask, training=training)
        # The final hidden states (an LSTM's come with its cells), both ways.
        final = ops.concatenate(finals[::2] if self.rnn == "lstm" else finals, axis=-1)
        return self.question_projection(final), (embedded, states, mask)

    def fuse(self, regions, question, index=None, training=False):
        """Question-conditioned region features `(questions, regions, units)`.

        `regions`: one row per image; `index`: the row of each question's image, or
        `None` for one image per question.
        """

        def per_question(t):
            return t if index is None else ops.take(t, index, axis=0)

        if self.fusion != "film":
            regions = per_question(regions)
        if self.fusion == "concat":
            tiled = ops.repeat(ops.expand_dims(question, 1), ops.shape(regions)[1], axis=1)
            return self.fusion_dense(ops.concatenate([regions, tiled], axis=-1))
        if self.fusion == "product":
            return self.fusion_dense(regions * ops.expand_dims(question, 1))
        rows, columns = self.grid
        x = ops.reshape(regions, (-1, rows, columns, self.units))
        # Each region's (row, column) from -1 to 1 beside every block's input, as in
        # FiLM's paper: "furthest to the left" is then linear in the features.
        for block in range(self.film_blocks):
            coordinates = ops.broadcast_to(
                ops.convert_to_tensor(self.coordinates, dtype=x.dtype),
                (ops.shape(x)[0], rows, columns, 2),
            )
            x = self.film_inputs[block](ops.concatenate([x, coordinates], axis=-1))
            h = self.film_convs[block](x)
            if block == 0:
                # Until the first modulation, the features are the image's alone: they
                # are computed once per image, then repeated for its questions (before
                # the batch norm, whose statistics stay those of the questions).
                x, h = per_question(x), per_question(h)
            h = self.film_norms[block](h, training=training)
            gamma, beta = ops.split(self.film_generators[block](question), 2, axis=-1)
            h = (1.0 + gamma[:, None, None]) * h + beta[:, None, None]
            x = x + ops.relu(h)
        return ops.reshape(x, (-1, rows * columns, self.units))

    def answer_logits(self, images, question_ids, training=False):
        """`(logits, attention weights or None)`."""
        regions = self.encoder(images, training=training)
        return self._answer_logits(regions, self.inventory(regions), question_ids, training)

    def _answer_logits(self, regions, inventory, question_ids, training=False, index=None):
        question, words = self.encode_question(question_ids, training=training)
        fused = self.fuse(regions, question, index, training=training)
        if index is not None:
            regions = ops.take(regions, index, axis=0)
            inventory = None if inventory is None else ops.take(inventory, index, axis=0)
        pooled = [question, ops.mean(fused, axis=1), ops.sum(self.counter(fused), axis=1)]
        weights = None
        if self.attention is not None:
            context, weights = self.attention(ops.expand_dims(question, 1), fused)
            # What the attended regions hold, fused and as the encoder saw them.
            pooled += [context[:, 0], ops.matmul(weights, regions)[:, 0]]
            weights = weights[:, 0]
        x = self.hidden(ops.concatenate(pooled, axis=-1))
        logits = self.classifier(self.dropout_layer(x, training=training))
        if inventory is not None:
            counting = self.counting_logits(inventory, question, words)
            if training:
                self._counting_logits = counting
            logits = logits + self.counting_gate(question) * counting
        return logits, weights

    def inventory(self, regions):
        """`(batch, kinds)`: the summed densities of each kind of object over the regions.

        `None` without the counting answer.
        """
        return ops.sum(self.density(regions), axis=1) if self.kinds else None

    def counting_logits(self, inventory, question, words):
        """The counting answer's logits, from the inventory and the question.

        `words`: the question's `(embeddings, encoder states, mask)`, from
        `encode_question`.
        """
        # The inventory learns from the scenes' counts alone.
        inventory = ops.stop_gradient(inventory)
        selected = self.select(inventory, [layer(question) for layer in self.selections])
        # Per selection: its total and its histogram over each attribute's classes.
        axes = tuple(range(2, selected.ndim))
        features = [ops.sum(selected, axis=axes)[..., None]] + [
            ops.sum(selected, axis=tuple(a for a in axes if a != axis)) for axis in axes
        ]
        features = ops.concatenate(features, axis=-1)
        features = ops.reshape(features, (-1, features.shape[1] * features.shape[2]))
        # The selections of the question vector tend to pick the same group twice ("more
        # circles than squares"); attention over the words tells the groups apart.
        totals = self.word_groups(inventory, words)
        # The first group's total, and how much it exceeds each other's.
        groups = [totals[:, :1], totals[:, :1] - totals[:, 1:]]
        return self.counting_classifier(
            self.counting_hidden(ops.concatenate([features, *groups, question], axis=-1))
        )

    def select(self, inventory, values):
        """`(batch, count_filters, n1, n2, ...)`: the inventory `(batch, kinds)` times
        each attribute's selection values `(batch, count_filters, n)`."""
        sizes = list(self.scene_attributes.values())
        selected = ops.reshape(inventory, (-1, 1, *sizes))
        for axis, (value, n) in enumerate(zip(values, sizes, strict=True)):
            shape = [n if i == axis else 1 for i in range(len(sizes))]
            selected = selected * ops.reshape(value, (-1, self.count_filters, *shape))
        return selected

    def word_groups(self, inventory, words):
        """`(batch, count_filters)`: how many objects of the inventory each group that
        the question's words name holds (see the module docstring)."""
        embedded, states, mask = words
        mask = ops.expand_dims(mask, -1)  # Padding gets no attention.
        values = [
            ops.einsum("btk,btn->bkn", self.word_softmax(attention(states), mask), value(embedded))
            for attention, value in zip(self.word_attentions, self.word_values, strict=True)
        ]
        selected = self.select(inventory, values)
        return ops.sum(selected, axis=tuple(range(2, selected.ndim)))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if training and self._counting_logits is not None:
            # The counting answer alone must answer too, so its selections are learned.
            counting = keras.losses.categorical_crossentropy(
                y, ops.cast(self._counting_logits, "float32"), from_logits=True
            )
            loss = loss + COUNTING_AUX_WEIGHT * ops.mean(counting)
            self._counting_logits = None
        return loss

    def scene_loss(self, regions, inventory, scene):
        """The scene heads' mean cross-entropy and the inventory's squared count error."""
        loss = 0.0
        if self.scene_heads:
            targets = scene_targets(scene, self.grid, list(self.scene_attributes))
            losses = [
                keras.losses.sparse_categorical_crossentropy(
                    targets[name], ops.cast(head(regions), "float32"), from_logits=True
                )
                for name, head in zip(self.scene_attributes, self.scene_heads, strict=True)
            ]
            loss = self.scene_weight * ops.mean(ops.stack(losses))
        if inventory is not None:
            error = ops.cast(inventory, "float32") - scene_counts(scene, self.scene_attributes)
            loss = loss + self.inventory_weight * ops.mean(ops.sum(error**2, axis=-1))
        return loss

    def call(self, inputs, training=False):
        regions = self.encoder(inputs["images"], training=training)
        inventory = self.inventory(regions)
        if training and (self.scene_heads or self.kinds) and "scene" in inputs:
            self.add_loss(self.scene_loss(regions, inventory, inputs["scene"]))
        # With "image_index", each image was encoded once for all the questions about it.
        logits, _ = self._answer_logits(
            regions, inventory, inputs["question_ids"], training, inputs.get("image_index")
        )
        return logits

    def answer(self, images, questions, top_k=None):
        """Answers for images (float pixels) and question strings, in the graph.

        Returns a dict: `answer` string `(batch,)`, `top_answers` string `(batch, k)`,
        `top_scores` float `(batch, k)` (softmax probabilities) and `attention`
        `(batch, regions)` (zeros without attention).
        """
        logits, weights = self.answer_logits(images, self.tokenize(questions))
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
        scores, indices = tf.math.top_k(probabilities, k=int(top_k or self.top_k))
        names = tf.gather(tf.constant(self.answers), indices)
        if weights is None:
            weights = tf.zeros([tf.shape(logits)[0], self.grid[0] * self.grid[1]])
        return {
            "answer": names[:, 0],
            "top_answers": names,
            "top_scores": scores,
            "attention": weights,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "answers": self.answers,
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
            "bidirectional": self.bidirectional,
            "fusion": self.fusion,
            "film_blocks": self.film_blocks,
            "attention": self.use_attention,
            "attention_units": self.attention_units,
            "classifier_units": self.classifier_units,
            "dropout": self.dropout,
            "top_k": self.top_k,
            "scene_attributes": self.scene_attributes,
            "scene_weight": self.scene_weight,
            "inventory_weight": self.inventory_weight,
            "count_filters": self.count_filters,
        }


@register_model(
    "vqa",
    task="vqa",
    training_defaults={"epochs": 7, "batch_size": 64, "learning_rate": 4e-3},
)
def vqa(
    vocabulary=(*RESERVED, "what"),
    answers=("yes", "no"),
    max_length=20,
    input_shape=(48, 48, 3),
    data_format="channels_last",
    encoder="cnn",
    encoder_weights="imagenet",
    encoder_filters=(16, 32, 64),
    encoder_batch_norm=True,
    embedding_dim=64,
    units=128,
    rnn="gru",
    bidirectional=True,
    fusion="film",
    film_blocks=2,
    attention=True,
    attention_units=128,
    classifier_units=256,
    dropout=0.0,
    top_k=5,
    scene_attributes=None,
    scene_weight=10.0,
    inventory_weight=1.0,
    count_filters=2,
    name="vqa",
):
    """CNN image encoder + RNN question encoder, fused (FiLM by default), answer softmax.

    Args:
        vocabulary, answers, max_length: question words (starting with `RESERVED`),
            answer classes and question length (set from the data by `kerasnotes train`).
        input_shape: image shape in `data_format` order (set from the data).
        data_format: `"channels_last"` or `"channels_first"`: the layout of the input.
        encoder: `"cnn"` or a `keras.applications` backbone (see the captioner).
        encoder_weights: `"imagenet"` or `None`, for a backbone (ignored by `"cnn"`).
        encoder_filters, encoder_batch_norm: the `"cnn"` encoder's blocks.
        embedding_dim, units, rnn, bidirectional, fusion, film_blocks, attention,
            attention_units, classifier_units, dropout, top_k: see `VqaModel`.
        scene_attributes: `{attribute: classes}` of the data's scenes (set from the
            data by `kerasnotes train`; none for data without scenes).
        scene_weight: weight of the scene loss, where the data has scenes (0: none).
        inventory_weight, count_filters: the counting answer, where the data has
            scenes (`inventory_weight` 0: none); see `VqaModel`.
        name: the model's name.

    Example:

    >>> model = vqa(vocabulary=["", "[UNK]", "[start]", "is", "there", "a", "circle"],
    ...             answers=["yes", "no"], max_length=6)
    >>> model.answer(np.zeros((2, 48, 48, 3)), ["is there a circle?", ""])["answer"].shape
    TensorShape([2])
    """
    return VqaModel(
        vocabulary=list(vocabulary),
        answers=list(answers),
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
        bidirectional=bidirectional,
        fusion=fusion,
        film_blocks=film_blocks,
        attention=attention,
        attention_units=attention_units,
        classifier_units=classifier_units,
        dropout=dropout,
        top_k=top_k,
        scene_attributes=scene_attributes,
        scene_weight=scene_weight,
        inventory_weight=inventory_weight,
        count_filters=count_filters,
        name=name,
    )
