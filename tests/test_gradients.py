"""The shared blocks (projection, dropout) against their definitions and finite differences in
float64; the cells themselves are checked in test_cells.py."""

from __future__ import annotations

import numpy as np
import pytest

from charlstm.insight.probe.finitediff import TOLERANCE, max_error, numeric_grad
from charlstm.nn import model
from charlstm.nn.ops import softmax_cross_entropy

from helpers import random_model


@pytest.mark.parametrize("V", [7, 600])
def test_first_layer_gather_equals_one_hot_matmul(V):
    """The first layer's column gather W_ih[:, x] equals one_hot(x) @ W_ih^T, and its weight
    gradient equals one_hot(x)^T @ dA — for a small vocabulary (one-hot GEMM path) and a large
    one (sorted scatter path)."""
    from charlstm.nn.ops import embed, embed_backward
    from charlstm.text.corpus import one_hot

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
def test_id_projection_equals_float_one_hot_projection(V):
    """Projecting ids and projecting their float one-hot vectors give the same xa and the same
    gradients (above 512 characters the first layer's dW_ih is a sum of rows per id, not a
    one-hot GEMM)."""
    from charlstm.nn.ops import project, project_backward
    from charlstm.text.corpus import one_hot

    T, B, G = 4, 3, 20
    rng = np.random.default_rng(4)
    x = rng.integers(0, V, (T, B)).astype(np.uint16)
    W_ih = rng.standard_normal((G, V))
    scale = rng.standard_normal(G)
    dxa = rng.standard_normal((T, B, G))
    p_ids = project(x, W_ih, scale)
    p_f = project(one_hot(x, V, np.float64), W_ih, scale)
    np.testing.assert_allclose(p_ids.xa, p_f.xa, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p_ids.xa, one_hot(x, V, np.float64) @ (W_ih * scale[:, None]).T, rtol=1e-12, atol=1e-12)
    dW_ids, dx_ids = project_backward(p_ids, dxa)
    dW_f, _ = project_backward(p_f, dxa)
    assert dx_ids is None
    np.testing.assert_allclose(dW_ids, dW_f, rtol=1e-10, atol=1e-12)


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
        err = max_error(grads[name], numeric_grad(lambda: run()[0], p))
        assert err < TOLERANCE, f"{name}: error {err:.2e}"
