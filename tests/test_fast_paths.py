"""The layouts and fused paths added for speed agree with the plain definitions."""

from __future__ import annotations

import numpy as np

from charlstm import lstm, model
from charlstm.corpus import Vocab
from charlstm.generate import Sampling, draw, filter_probs, generate, prime, prime_ids

from conftest import random_model


def test_layer_step_with_float_input_equals_forward():
    """lstm.step on float input (the stacked [x; h] product) follows lstm.forward step by step."""
    T, B, D, H = 6, 3, 5, 4
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D))
    h, c = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    W_ih, W_hh = rng.standard_normal((4 * H, D)), rng.standard_normal((4 * H, H))
    b_ih, b_hh = rng.standard_normal(4 * H), rng.standard_normal(4 * H)
    h_seq, (hT, cT), _ = lstm.forward(x, h, c, W_ih, W_hh, b_ih, b_hh)
    p = lstm.prepare(W_ih, W_hh, b_ih, b_hh, ids=False)
    h0, c0 = h.copy(), c.copy()
    for t in range(T):
        h, c = lstm.step(x[t], h, c, p)
        np.testing.assert_allclose(h, h_seq[t], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, hT, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, cT, rtol=1e-12, atol=1e-12)
    h1, c1 = h0.copy(), c0.copy()
    lstm.step(x[0], h1, c1, p)
    np.testing.assert_array_equal(h1, h0)  # the inputs are not modified
    np.testing.assert_array_equal(c1, c0)


def test_step_in_place_equals_pure_step_and_round_trips_the_state():
    V, H, L, N = 7, 6, 3, 4
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.4)
    rng = np.random.default_rng(1)
    state = tuple((rng.standard_normal((L, N, H)) * 0.3).astype(np.float32) for _ in range(2))
    stepper = model.prepare_stepper(params, config)
    st = model.step_state(stepper, state)
    for a, b in zip(model.state_of(st), state):
        np.testing.assert_array_equal(a, b)
    for _ in range(5):
        x = rng.integers(0, V, N)
        expected, state = model.step(stepper, x, state)
        logits = model.step_in_place(stepper, x, st)
        np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    for a, b in zip(model.state_of(st), state):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_generate_equals_sampling_with_the_pure_step():
    """generate (in-place stepping) draws exactly what a loop over model.step would draw."""
    V, H, L, N = 9, 8, 2, 3
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.5)
    vocab = Vocab(tuple("abcdefghi"))
    got = np.stack(list(generate(params, config, vocab, "abc", 20, Sampling(0.9), num_samples=N, rng=np.random.default_rng(5))))
    rng = np.random.default_rng(5)
    logits, state = prime(params, config, prime_ids(vocab, "abc"), N)
    stepper = model.prepare_stepper(params, config)
    want = []
    for _ in range(20):
        ids = draw(filter_probs(logits, 0.9), rng)
        want.append(ids)
        logits, state = model.step(stepper, ids, state)
    np.testing.assert_array_equal(got, np.stack(want))


def test_gradients_from_a_reused_cache_equal_a_fresh_cache():
    """Backward writes into buffers owned by the cache; a second window through the same cache
    (stale buffers, one-hot rows from the first window) gives exactly a fresh cache's gradients."""
    V, H, L, T, B = 7, 6, 2, 5, 3
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.4)
    rng = np.random.default_rng(2)
    x1, y1, x2, y2 = (rng.integers(0, V, (T, B)).astype(np.uint8) for _ in range(4))
    state = model.zero_state(config, B)
    loss, fresh, _, _ = model.loss_and_grads(params, config, x2, y2, state)
    fresh = {k: v.copy() for k, v in fresh.items()}
    _, _, _, cache = model.loss_and_grads(params, config, x1, y1, state)
    loss2, reused, _, cache2 = model.loss_and_grads(params, config, x2, y2, state, cache)
    assert cache2 is cache and loss2 == loss
    for name in params:
        np.testing.assert_array_equal(reused[name], fresh[name])

