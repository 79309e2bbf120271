"""The hand-written backward pass against central finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

from charlstm import lstm, model
from charlstm.ops import softmax_cross_entropy

from conftest import random_model

EPS = 1e-6


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-12))


def numeric_grad(f, x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar f() w.r.t. every entry of x (perturbed in place)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + EPS
        plus = f()
        x[i] = old - EPS
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * EPS)
    return grad


def test_model_gradients_match_finite_differences():
    """Every parameter of a 2-layer model, plus dh0 and dc0, with a loss that also depends on the
    final state (so the dhT/dcT path of backward is exercised)."""
    V, H, L, T, B = 5, 4, 2, 6, 3
    config, params = random_model(V, H, L)
    rng = np.random.default_rng(1)
    x = rng.integers(0, V, (T, B)).astype(np.uint8)
    y = rng.integers(0, V, (T, B)).astype(np.uint8)
    h0 = rng.standard_normal((L, B, H)) * 0.5
    c0 = rng.standard_normal((L, B, H)) * 0.5
    wh = rng.standard_normal((L, B, H))
    wc = rng.standard_normal((L, B, H))

    def loss_fn() -> float:
        logits, (hT, cT), _ = model.forward(params, config, x, (h0, c0))
        loss, _ = softmax_cross_entropy(logits, y.reshape(-1))
        return loss + float(np.sum(wh * hT) + np.sum(wc * cT))

    logits, _, cache = model.forward(params, config, x, (h0, c0))
    _, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
    grads, (dh0, dc0) = model.backward(params, config, dlogits, cache, dstate=(wh, wc))

    assert set(grads) == set(params)
    for name, p in params.items():
        err = rel_error(grads[name], numeric_grad(loss_fn, p))
        assert err < 1e-5, f"{name}: relative error {err:.2e}"
    assert rel_error(dh0, numeric_grad(loss_fn, h0)) < 1e-5
    assert rel_error(dc0, numeric_grad(loss_fn, c0)) < 1e-5


def test_layer_gradients_with_float_input():
    """One layer fed float inputs (as every layer above the first is): dx, weights, biases, state."""
    T, B, D, H = 5, 2, 3, 4
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    W_ih, W_hh = rng.standard_normal((4 * H, D)) * 0.5, rng.standard_normal((4 * H, H)) * 0.5
    b_ih, b_hh = rng.standard_normal(4 * H) * 0.5, rng.standard_normal(4 * H) * 0.5
    w = rng.standard_normal((T, B, H))  # loss = sum(w * h_seq)

    def loss_fn() -> float:
        h_seq, _, _ = lstm.forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh)
        return float(np.sum(w * h_seq))

    _, _, cache = lstm.forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh)
    dx, g, (dh0, dc0) = lstm.backward(w, cache)
    for name, value, analytic in [
        ("x", x, dx), ("W_ih", W_ih, g["W_ih"]), ("W_hh", W_hh, g["W_hh"]), ("b_ih", b_ih, g["b_ih"]),
        ("b_hh", b_hh, g["b_hh"]), ("h0", h0, dh0), ("c0", c0, dc0),
    ]:
        err = rel_error(analytic, numeric_grad(loss_fn, value))
        assert err < 1e-5, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("V", [7, 600])
def test_first_layer_gather_equals_one_hot_matmul(V):
    """The first layer's column gather W_ih[:, x] equals one_hot(x) @ W_ih^T, and its weight
    gradient equals one_hot(x)^T @ dA — for a small vocabulary (one-hot GEMM path) and a large
    one (sorted scatter path)."""
    from charlstm.corpus import one_hot
    from charlstm.ops import embed, embed_backward

    rng = np.random.default_rng(3)
    T, B, N = 6, 4, 12
    x = rng.integers(0, V, (T, B)).astype(np.uint16)
    W = rng.standard_normal((N, V))
    out = np.empty((T, B, N))
    embed(x, np.ascontiguousarray(W.T), out=out)
    np.testing.assert_allclose(out, one_hot(x, V, np.float64) @ W.T, rtol=1e-12, atol=1e-12)
    dA = rng.standard_normal((T, B, N))
    expected = one_hot(x, V, np.float64).reshape(-1, V).T @ dA.reshape(-1, N)
    np.testing.assert_allclose(embed_backward(x, dA, V), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("V", [6, 600])
def test_one_hot_input_layer_equals_float_one_hot_input(V):
    """Feeding ids and feeding their float one-hot vectors give the same layer outputs and grads
    (above 512 characters the first layer's dW_ih is a sum of rows per id, not a one-hot GEMM)."""
    from charlstm.corpus import one_hot

    T, B, H = 4, 3, 5
    rng = np.random.default_rng(4)
    x = rng.integers(0, V, (T, B)).astype(np.uint16)
    W_ih, W_hh = rng.standard_normal((4 * H, V)), rng.standard_normal((4 * H, H))
    b_ih, b_hh = rng.standard_normal(4 * H), rng.standard_normal(4 * H)
    h0 = c0 = np.zeros((B, H))
    dh = rng.standard_normal((T, B, H))
    h_ids, _, cache_ids = lstm.forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh)
    h_ids = h_ids.copy()
    _, g_ids, _ = lstm.backward(dh, cache_ids)
    h_f, _, cache_f = lstm.forward(one_hot(x, V, np.float64), h0, c0, W_ih, W_hh, b_ih, b_hh)
    _, g_f, _ = lstm.backward(dh, cache_f)
    np.testing.assert_allclose(h_ids, h_f, rtol=1e-12, atol=1e-12)
    for name in g_ids:
        np.testing.assert_allclose(g_ids[name], g_f[name], rtol=1e-10, atol=1e-12)


def test_gradients_through_dropout_match_finite_differences():
    """With a fixed mask (the same generator seed for every forward), backward through inverted
    dropout between layers and before the head matches finite differences."""
    V, H, L, T, B = 5, 4, 2, 5, 2
    config, params = random_model(V, H, L, seed=3)
    rng = np.random.default_rng(7)
    x = rng.integers(0, V, (T, B)).astype(np.uint8)
    y = rng.integers(0, V, (T, B)).astype(np.uint8)
    state = model.zero_state(config, B, np.float64)

    def run(cache=None):
        logits, _, cache = model.forward(params, config, x, state, cache, dropout=0.4, rng=np.random.default_rng(11))
        loss, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
        return loss, dlogits, cache

    _, dlogits, cache = run()
    assert any((m == 0).any() for m in cache.masks)  # units really were dropped
    grads, _ = model.backward(params, config, dlogits, cache)
    grads = {k: v.copy() for k, v in grads.items()}
    for name, p in params.items():
        err = rel_error(grads[name], numeric_grad(lambda: run()[0], p))
        assert err < 1e-5, f"{name}: relative error {err:.2e}"
