"""The layouts and fused paths added for speed agree with the plain definitions."""

from __future__ import annotations

import numpy as np
import pytest

from charlstm.inference.generate import Sampling, generate, prime_ids
from charlstm.nn import model, stepping
from charlstm.text.vocab import Vocab

from helpers import CELL_NAMES, assert_sampled_as_reference, random_model


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_layer_step_with_float_input_equals_forward(cell):
    """step_into on float input (the stacked [x; h] layout) follows the window forward step by
    step, for every cell."""
    from charlstm.nn.cells import CELLS
    from charlstm.nn.ops import project

    c = CELLS[cell]
    T, B, D, H = 6, 3, 5, 4
    G = c.NUM_GATES * H
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D))
    state = tuple(rng.standard_normal((B, H)) for _ in c.STATE_NAMES)
    W_ih, W_hh = rng.standard_normal((G, D)), rng.standard_normal((G, H))
    b_ih, b_hh = rng.standard_normal(G), rng.standard_normal(G)
    xa = project(x, W_ih, c.input_scale(H, x.dtype)).xa
    h_seq, stateT, _ = c.forward(xa, state, W_hh, b_ih, b_hh)
    p = c.prepare(W_ih, W_hh, b_ih, b_hh, ids=False)
    work = c.step_work(H, B, x.dtype)
    h, *rest = (s.T.copy() for s in state)  # batch-minor (H, B)
    for t in range(T):
        z = np.concatenate([x[t].T, h])  # (D+H, B)
        c.step_into(z, tuple(rest), p, work)
        h = z[-H:].copy()
        np.testing.assert_allclose(h.T, h_seq[t], rtol=1e-12, atol=1e-12)
    for a, b in zip((h, *rest), stateT):
        np.testing.assert_allclose(a.T, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_step_in_place_equals_pure_step_and_round_trips_the_state(cell):
    V, H, L, N = 7, 6, 3, 4
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.4, cell=cell)
    rng = np.random.default_rng(1)
    state = tuple((rng.standard_normal((L, N, H)) * 0.3).astype(np.float32) for _ in model.state_names(config))
    stepper = stepping.prepare_stepper(params, config)
    st = stepping.step_state(stepper, state)
    for a, b in zip(stepping.state_of(st), state):
        np.testing.assert_array_equal(a, b)
    for _ in range(5):
        x = rng.integers(0, V, N)
        expected, state = stepping.step(stepper, x, state)
        logits = stepping.step_in_place(stepper, x, st)
        np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    for a, b in zip(stepping.state_of(st), state):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_generate_equals_sampling_with_the_pure_step(cell):
    """generate (in-place stepping, the fused temperature draw) draws what a loop over stepping.step
    with filter_probs and draw would, step after step (to the last few ulps of the CDF)."""
    V, H, L, N = 9, 8, 2, 3
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.5, cell=cell)
    vocab = Vocab(tuple("abcdefghi"))
    got = np.stack(
        list(generate(params, config, vocab, "abc", 20, Sampling(0.9), num_samples=N, rng=np.random.default_rng(5)))
    )
    assert_sampled_as_reference(got, params, config, prime_ids(vocab, "abc"), 0.9, np.random.default_rng(5), rtol=1e-12)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradients_from_a_reused_cache_equal_a_fresh_cache(cell):
    """Backward writes into buffers owned by the cache; a second window through the same cache
    (stale buffers, one-hot rows from the first window) gives exactly a fresh cache's gradients."""
    V, H, L, T, B = 7, 6, 2, 5, 3
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.4, cell=cell)
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
