"""Decoding: from a next-token model to token sequences, in the graph.

One loop for every model that generates (the captioner, the language models): greedy
decoding, sampling (temperature, top-k, top-p) and beam search, batched, seeded, with a
stop sequence and a maximum length, written with `tf.while_loop` so that it runs inside
a SavedModel (exports trace without AutoGraph).

A model takes part through a step function that reads one token per row and carries
whatever it needs to read the next (a recurrent model its states, a Transformer its
key/value cache, an n-gram model its last tokens):

    step(tokens, state) -> (logits, state, trace)

- `tokens`: `(rows,)` int64, the token each row reads now;
- `state`: a nested structure of tensors whose first axis is the row; beam search
  repeats it per beam and reorders it as beams are chosen, so constants a step needs
  per row (a captioner's image features) belong in it too;
- `logits`: `(rows, vocabulary)` scores of the next token (log-probabilities up to a
  constant);
- `trace`: a tensor `(rows, ...)` kept for every generated token (a captioner's
  attention weights), or `None`.

Every row starts with its prompt: `prompt` `(batch, time)` ids, right-padded, of which
the first `prompt_lengths` count. The loop reads the prompt one token at a time (each
token costs one step, as each generated one does) and generates once a row's prompt is
read, until it has `max_new_tokens` or ends with the `stop` sequence.

Why not KerasHub's samplers: they decode a fixed-length, left-aligned prompt tensor by
re-running a `next(prompt, cache, index)` function and stop on end tokens only; they
have no beam search over reordered nested state with per-step traces (the captioner's
attention maps), no multi-token stop sequence, and they bring `keras_hub` and
`tensorflow_text` into every export. The loop here needs TensorFlow alone.
"""

from __future__ import annotations

import tensorflow as tf

NEGATIVE = -1e9  # The score of an impossible choice.
# The sampling settings of a generating task: a run's defaults, an export's inputs.
SAMPLING = ("max_length", "temperature", "top_k", "top_p", "seed")


def sampling_settings(training: dict, options: dict, *, what: str, also=()) -> dict:
    """The sampling settings for a request: `options` (from `kerasnotes predict`) over
    the run's `training` settings, checked (`check_sampling`); an option outside
    `SAMPLING` and `also` is a `UsageError` saying it does not apply to `what`."""
    from kerasnotes.errors import UsageError

    unknown = set(options) - {*SAMPLING, *also}
    if unknown:
        raise UsageError(f"{', '.join(sorted(unknown))} does not apply to {what}.")
    settings = {
        key: options[key] if options.get(key) is not None else training[key] for key in SAMPLING
    }
    check_sampling(settings)
    return settings


def check_sampling(settings) -> None:
    """A `ConfigError` naming the first of the `SAMPLING` settings in `settings` that
    is out of range; NaN is never in range."""
    import math

    from kerasnotes.errors import ConfigError

    def integer(key, low):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"Invalid {key} {value!r}: must be an integer >= {low}.")

    def number(key, valid, says):
        value = settings[key]
        if not (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and valid(value)
        ):
            raise ConfigError(f"Invalid {key} {value!r}: must be {says}.")

    integer("max_length", 1)
    number("temperature", lambda t: t >= 0, "a number >= 0 (0 picks the most likely token)")
    integer("top_k", 0)
    number("top_p", lambda p: 0 < p <= 1, "a number in (0, 1] (1 keeps every token)")
    if "seed" in settings:
        integer("seed", -(2**63))


def _sampling_checks(max_length, temperature, top_k, top_p) -> list:
    """Assertions (in the graph, or raised at once when eager) that the sampling
    settings are in `check_sampling`'s ranges; each message names the setting."""

    def check(ok, says, value):
        return tf.debugging.Assert(ok, [says, value])

    return [
        check(max_length >= 1, "max_length must be an integer >= 1, got", max_length),
        check(
            tf.math.is_finite(temperature) & (temperature >= 0),
            "temperature must be a number >= 0, got",
            temperature,
        ),
        check(top_k >= 0, "top_k must be an integer >= 0, got", top_k),
        check(
            tf.math.is_finite(top_p) & (top_p > 0) & (top_p <= 1),
            "top_p must be a number in (0, 1], got",
            top_p,
        ),
    ]


def _apply_top_k_top_p(logits, top_k, top_p):
    """`logits` with every token outside the `top_k` best and outside the smallest set
    whose probability reaches `top_p` set to `NEGATIVE` (`top_k` 0 and `top_p` 1 keep
    all)."""
    vocabulary_size = tf.shape(logits)[-1]
    ranked = tf.sort(logits, axis=-1, direction="DESCENDING")  # (rows, vocabulary)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary_size), vocabulary_size)
    kth_best = tf.gather(ranked, k - 1, axis=-1)[:, None]
    # Nucleus: keep ranked tokens until the probability before them reaches top_p.
    probabilities = tf.nn.softmax(ranked, axis=-1)
    before = tf.cumsum(probabilities, axis=-1, exclusive=True)
    kept = tf.where(before < top_p, ranked, tf.reduce_max(ranked, -1, keepdims=True))
    nucleus_floor = tf.reduce_min(kept, axis=-1, keepdims=True)
    floor = tf.maximum(kth_best, nucleus_floor)
    return tf.where(logits >= floor, logits, NEGATIVE)


def decode(
    step,
    state,
    prompt,
    prompt_lengths,
    *,
    max_new_tokens,
    beam_width: int = 1,
    sample=False,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    seed=0,
    stop=(),
    banned=(),
    length_penalty: float = 0.0,
):
    """Generate up to `max_new_tokens` tokens after each prompt.

    Args:
        step: the model's step function (see the module docstring).
        state: the step's state before the first prompt token, `(batch, ...)` leaves.
        prompt: `(batch, time)` int token ids; `prompt_lengths` `(batch,)` of them count
            (at least 1 each).
        max_new_tokens: the most tokens to generate per row (a scalar, may be a tensor;
            at least 1). It and the sampling settings out of `check_sampling`'s ranges
            are an `InvalidArgumentError` naming the setting.
        beam_width: more than 1 for beam search (a Python int).
        sample: a boolean (may be a tensor): sample with `temperature`, `top_k` and
            `top_p`, else choose the most likely token. `temperature` 0 is greedy.
        seed: an integer (may be a tensor); equal seeds give equal samples.
        stop: token ids whose appearance at the end of the generated tokens ends a row
            (a captioner's end token; a stop string's tokens).
        banned: ids never generated (padding, the unknown token, a start token).
        length_penalty: beam search ranks finished beams by their log-probability
            divided by `((5 + length) / 6) ** length_penalty` (Wu et al., 2016).

    Returns:
        A dict: `tokens` `(batch, max_new_tokens)` (the generated tokens, the stop
        sequence included, then padding 0), `lengths` `(batch,)` (tokens before the stop
        sequence), `scores` `(batch,)` (the log-probability of the generated tokens,
        stop included; beam search: length-normalised) and `trace` `(batch,
        max_new_tokens, ...)` (the step's trace for each generated token) if the step
        returns one.
    """
    beam = int(beam_width)
    if beam > 1 and sample is not False:
        raise ValueError("Beam search does not sample: pass sample=False with beam_width > 1.")
    prompt = tf.cast(prompt, tf.int64)
    prompt_lengths = tf.cast(prompt_lengths, tf.int32)
    max_new_tokens = tf.cast(max_new_tokens, tf.int32)
    temperature = tf.cast(temperature, tf.float32)
    top_k, top_p = tf.cast(top_k, tf.int32), tf.cast(top_p, tf.float32)
    # The graph's own `check_sampling`, for callers of an export's signatures.
    with tf.control_dependencies(_sampling_checks(max_new_tokens, temperature, top_k, top_p)):
        prompt, max_new_tokens, temperature, top_k, top_p = (
            tf.identity(t) for t in (prompt, max_new_tokens, temperature, top_k, top_p)
        )
    batch = tf.shape(prompt)[0]
    rows = batch * beam
    stop = tf.reshape(tf.constant(stop, tf.int64) if not tf.is_tensor(stop) else stop, [-1])
    stop = tf.cast(stop, tf.int64)
    stop_size = tf.size(stop)

    # Every prompt's beams side by side: (batch * beam, ...).
    def repeat(t):
        return tf.repeat(t, beam, axis=0) if beam > 1 else t

    state = tf.nest.map_structure(repeat, state)
    prompt, prompt_lengths = repeat(prompt), repeat(prompt_lengths)
    total_steps = tf.reduce_max(prompt_lengths) - 1 + max_new_tokens
    offsets = tf.reshape(tf.range(batch) * beam, [-1, 1])
    # Only the first beam of each row is live until it branches.
    scores = tf.tile(tf.concat([[0.0], tf.fill([beam - 1], NEGATIVE)], 0), [batch])
    finished = tf.zeros([rows], tf.bool)
    generated = tf.zeros([rows], tf.int32)  # Tokens generated so far, the stop included.
    window = tf.zeros([rows, stop_size], tf.int64)  # The last generated tokens.
    sample = tf.convert_to_tensor(sample, tf.bool)
    seed = tf.cast(seed, tf.int64)

    def choose(t, logits, scores, finished, forced):
        """The next token of each row, and the rows' scores with it."""
        vocabulary_size = tf.shape(logits)[-1]
        log_probs = tf.nn.log_softmax(logits)
        if banned:
            ban = tf.reduce_sum(tf.one_hot(list(banned), vocabulary_size), axis=0) * NEGATIVE
            log_probs += ban
        # A row still reading its prompt takes its next prompt token at no cost; a
        # finished row emits padding at no cost, so its score stays as it ended.
        is_forced = forced >= 0
        forced_row = tf.one_hot(tf.maximum(forced, 0), vocabulary_size, 0.0, NEGATIVE)
        padding_row = tf.one_hot(tf.zeros([rows], tf.int64), vocabulary_size, 0.0, NEGATIVE)
        log_probs = tf.where(is_forced[:, None], forced_row, log_probs)
        log_probs = tf.where(finished[:, None], padding_row, log_probs)
        if beam > 1:
            total = tf.reshape(scores[:, None] + log_probs, [batch, beam * vocabulary_size])
            top_scores, top = tf.math.top_k(total, k=beam)  # (batch, beam)
            origin = tf.reshape(top // vocabulary_size + offsets, [-1])
            tokens = tf.cast(tf.reshape(top % vocabulary_size, [-1]), tf.int64)
            return tokens, origin, tf.reshape(top_scores, [-1])
        greedy = tf.argmax(log_probs, axis=-1)
        filtered = _apply_top_k_top_p(log_probs / tf.maximum(temperature, 1e-6), top_k, top_p)
        sampled = tf.random.stateless_categorical(
            filtered, 1, seed=tf.stack([seed, tf.cast(t, tf.int64)]), dtype=tf.int64
        )[:, 0]
        sampling = sample & (temperature > 0)
        tokens = tf.where(is_forced | finished | ~sampling, greedy, sampled)
        chosen = tf.gather(log_probs, tokens, batch_dims=1)
        return tokens, None, scores + chosen

    def body(t, tokens, state, scores, finished, generated, window, history, trace):
        logits, state, step_trace = step(tokens, state)
        logits = tf.cast(logits, tf.float32)
        # The prompt token that follows position t, or -1 once the prompt is read.
        reading = t + 1 < prompt_lengths
        following = tf.gather(prompt, tf.minimum(t + 1, tf.shape(prompt)[1] - 1), axis=1)
        forced = tf.where(reading, following, -1)
        tokens, origin, scores = choose(t, logits, scores, finished, forced)

        def reorder(s):  # Beam search follows each chosen beam's origin.
            return tf.gather(s, origin) if beam > 1 else s

        state = tf.nest.map_structure(reorder, state)
        finished, generated, window = reorder(finished), reorder(generated), reorder(window)
        history = tf.concat([reorder(history), tokens[:, None]], axis=1)
        if step_trace is not None:
            step_trace = reorder(step_trace)[:, None]
            trace = step_trace if trace is None else tf.concat([reorder(trace), step_trace], 1)
        generating = ~finished & ~reorder(reading)
        generated += tf.cast(generating, tf.int32)
        window = tf.where(
            generating[:, None], tf.concat([window[:, 1:], tokens[:, None]], axis=1), window
        )
        stopped = (stop_size > 0) & (generated >= stop_size) & tf.reduce_all(window == stop, -1)
        finished |= generating & (stopped | (generated >= max_new_tokens))
        return t + 1, tokens, state, scores, finished, generated, window, history, trace

    def cond(t, tokens, state, scores, finished, *_):
        return (t < total_steps) & ~tf.reduce_all(finished)

    # The first step runs before the loop, so that the trace starts with its shape.
    loop_vars = body(tf.constant(0), prompt[:, 0], state, scores, finished, generated, window,
                     tf.zeros([rows, 0], tf.int64), None)  # fmt: skip
    traced = loop_vars[-1] is not None
    if not traced:
        loop_vars = (*loop_vars[:-1], tf.zeros([rows, 0]))
    # Every per-row tensor may lose its static row count; the history and the trace grow.
    invariants = tf.nest.map_structure(
        lambda v: tf.TensorShape([None, *v.shape[1:]]) if v.shape.rank else v.shape, loop_vars
    )
    invariants = (
        *invariants[:7],
        tf.TensorShape([None, None]),
        tf.TensorShape([None, None, *loop_vars[-1].shape[2:]]),
    )
    _, _, _, scores, finished, generated, window, history, trace = tf.while_loop(
        cond, body, loop_vars, shape_invariants=invariants
    )
    stopped = (stop_size > 0) & (generated >= stop_size) & tf.reduce_all(window == stop, -1)
    lengths = generated - tf.where(stopped, stop_size, 0)
    if beam > 1:  # Each prompt's best beam by its length-normalised score.
        penalty = tf.pow((5.0 + tf.cast(generated, tf.float32)) / 6.0, length_penalty)
        normalised = tf.reshape(scores / penalty, [batch, beam])
        best = tf.reshape(tf.argmax(normalised, axis=-1, output_type=tf.int32), [-1, 1])
        chosen = tf.reshape(best + offsets, [-1])
        scores = tf.reduce_max(normalised, axis=-1)
    else:
        chosen = tf.range(rows)
    # The generated tokens of each row start at the step that read its last prompt token.
    first = tf.gather(prompt_lengths, chosen) - 1
    positions = first[:, None] + tf.range(max_new_tokens)[None, :]
    in_range = positions < tf.shape(history)[1]
    positions = tf.minimum(positions, tf.maximum(tf.shape(history)[1] - 1, 0))
    lengths, generated = tf.gather(lengths, chosen), tf.gather(generated, chosen)
    valid = in_range & (tf.range(max_new_tokens)[None, :] < generated[:, None])
    tokens = tf.where(valid, tf.gather(tf.gather(history, chosen), positions, batch_dims=1), 0)
    result = {"tokens": tokens, "lengths": lengths, "scores": scores}
    if traced:
        trace = tf.gather(tf.gather(trace, chosen), positions, batch_dims=1)
        mask = tf.reshape(
            valid, tf.concat([tf.shape(valid), tf.ones_like(tf.shape(trace)[2:])], 0)
        )
        result["trace"] = tf.where(mask, trace, tf.zeros_like(trace))
    return result
