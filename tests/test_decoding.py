"""The shared decoding loop, on a bigram model whose probabilities are known."""

import numpy as np
import pytest
import tensorflow as tf

from kerasnotes.decoding import decode

VOCABULARY = 6
rng = np.random.default_rng(0)
LOGITS = rng.normal(size=(VOCABULARY, VOCABULARY)).astype("float32") * 2


def bigram_step(tokens, state):
    """Logits of the next token given the last; the state counts the steps read."""
    return tf.gather(LOGITS, tokens), state + 1, tf.cast(tokens, tf.float32)[:, None]


def run(prompt, lengths=None, **options):
    prompt = np.array(prompt)
    lengths = lengths if lengths is not None else [prompt.shape[1]] * len(prompt)
    state = tf.zeros([len(prompt)], tf.int32)
    out = decode(bigram_step, state, prompt, lengths, **options)
    return {k: v.numpy() for k, v in out.items()}


def log_probs():
    return tf.nn.log_softmax(LOGITS).numpy()


def test_greedy_follows_the_most_likely_token_after_each_prompt_of_its_own_length():
    prompts = [[2, 3, 4], [5, 0, 0]]
    out = run(prompts, lengths=[3, 1], max_new_tokens=4)
    for row, (prompt, length) in enumerate(zip(prompts, [3, 1], strict=True)):
        token, expected = prompt[length - 1], []
        for _ in range(4):
            token = int(np.argmax(LOGITS[token]))
            expected.append(token)
        assert out["tokens"][row].tolist() == expected
        assert out["lengths"][row] == 4
        want = sum(
            log_probs()[a, b]
            for a, b in zip([prompt[length - 1], *expected], expected, strict=False)
        )
        np.testing.assert_allclose(out["scores"][row], want, rtol=1e-5)
    # The trace is kept for generated tokens: the token each was predicted from.
    assert out["trace"].shape == (2, 4, 1)
    assert out["trace"][1, 0, 0] == 5


def test_sampling_follows_the_model_distribution_and_is_seeded():
    prompt = np.full((4000, 1), 2)
    out = run(prompt, max_new_tokens=1, sample=True, seed=7)
    counts = np.bincount(out["tokens"][:, 0], minlength=VOCABULARY) / 4000
    np.testing.assert_allclose(counts, tf.nn.softmax(LOGITS[2]).numpy(), atol=0.03)
    again = run(prompt, max_new_tokens=1, sample=True, seed=7)
    other = run(prompt, max_new_tokens=1, sample=True, seed=8)
    assert np.array_equal(out["tokens"], again["tokens"])
    assert not np.array_equal(out["tokens"], other["tokens"])


def test_top_k_top_p_and_temperature_narrow_the_choices():
    prompt = np.full((2000, 1), 1)
    order = np.argsort(-LOGITS[1])
    top2 = run(prompt, max_new_tokens=1, sample=True, top_k=2)["tokens"][:, 0]
    assert set(top2) == set(order[:2].tolist())
    probabilities = tf.nn.softmax(LOGITS[1]).numpy()[order]
    needed = int(np.searchsorted(np.cumsum(probabilities), 0.8) + 1)
    nucleus = run(prompt, max_new_tokens=1, sample=True, top_p=0.8)["tokens"][:, 0]
    assert set(nucleus) == set(order[:needed].tolist())
    cold = run(prompt, max_new_tokens=1, sample=True, temperature=0.0)["tokens"][:, 0]
    assert set(cold) == {order[0]}
    banned = run(prompt, max_new_tokens=1, sample=True, banned=(int(order[0]),))["tokens"]
    assert order[0] not in banned


def test_a_stop_sequence_ends_a_row_and_is_not_counted_in_its_length():
    greedy = run([[2]], max_new_tokens=6)["tokens"][0]
    stop = greedy[1:3].tolist()  # Generated second and third.
    out = run([[2]], max_new_tokens=6, stop=stop)
    assert out["lengths"][0] == 1
    assert out["tokens"][0].tolist() == [*greedy[:3].tolist(), 0, 0, 0]


def test_beam_search_finds_sequences_at_least_as_likely_as_greedy():
    prompts = np.arange(VOCABULARY)[:, None]
    greedy = run(prompts, max_new_tokens=5)
    beam = run(prompts, max_new_tokens=5, beam_width=4)
    assert np.all(beam["scores"] >= greedy["scores"] - 1e-5)
    for row, tokens in enumerate(beam["tokens"]):
        path = [row, *tokens.tolist()]
        want = sum(log_probs()[a, b] for a, b in zip(path, path[1:], strict=False))
        np.testing.assert_allclose(beam["scores"][row], want, rtol=1e-5)
    with pytest.raises(ValueError, match="Beam search does not sample"):
        run(prompts, max_new_tokens=2, beam_width=2, sample=True)
