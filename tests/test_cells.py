"""Every cell, three ways: the fast code equals the plain reference (tests/reference.py) — states,
loss and every gradient — and both match central finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

import reference
from charlstm import model, stepping
from charlstm.cells import CELLS
from charlstm.ops import project, softmax_cross_entropy

from conftest import CELL_NAMES, numeric_grad, random_model, rel_error

def problem(cell: str, L: int, V=5, H=4, T=6, B=3, seed=0):
    """A random model, ids, targets, a random initial state and weights w on the final state, so
    the loss L = CE + Σ w ⊙ stateT exercises the gradient arriving at the final state too."""
    config, params = random_model(V, H, L, seed=seed, cell=cell)
    rng = np.random.default_rng(seed + 1)
    x = rng.integers(0, V, (T, B)).astype(np.uint8)
    y = rng.integers(0, V, (T, B)).astype(np.uint8)
    names = model.state_names(config)
    state0 = tuple(rng.standard_normal((L, B, H)) * 0.5 for _ in names)
    w = tuple(rng.standard_normal((L, B, H)) for _ in names)
    return config, params, x, y, state0, w


def fast(config, params, x, y, state0, w):
    logits, stateT, cache = model.forward(params, config, x, state0)
    loss, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
    grads, dstate0 = model.backward(params, config, dlogits, cache, dstate=w)
    loss += sum(float(np.sum(wi * s)) for wi, s in zip(w, stateT))
    return loss, stateT, {k: v.copy() for k, v in grads.items()}, dstate0


@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradients_match_finite_differences(cell, L):
    """Every parameter and every initial-state tensor, relative error < 1e-5 in float64."""
    config, params, x, y, state0, w = problem(cell, L)
    loss, _, grads, dstate0 = fast(config, params, x, y, state0, w)

    def loss_fn() -> float:
        return fast(config, params, x, y, state0, w)[0]

    assert set(grads) == set(params)
    for name, p in params.items():
        err = rel_error(grads[name], numeric_grad(loss_fn, p))
        assert err < 1e-5, f"{cell} {name}: relative error {err:.2e}"
    for name, s, ds in zip(model.state_names(config), state0, dstate0):
        err = rel_error(ds, numeric_grad(loss_fn, s))
        assert err < 1e-5, f"{cell} d{name}0: relative error {err:.2e}"


@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_fast_code_equals_the_plain_reference(cell, L):
    """Logits, final state, loss, every gradient and dstate0 agree with tests/reference.py."""
    config, params, x, y, state0, w = problem(cell, L, V=7, H=5, T=5, B=2, seed=3)
    logits, stateT, cache = model.forward(params, config, x, state0)
    logits = logits.copy()
    ref_logits, ref_stateT, ref_caches = reference.forward(params, cell, L, 7, x, state0)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-12, atol=1e-12)
    for s, r in zip(stateT, ref_stateT):
        np.testing.assert_allclose(s, r, rtol=1e-12, atol=1e-12)
    loss, dlogits = softmax_cross_entropy(logits.copy(), y.reshape(-1))
    ref_loss, ref_dlogits = reference.loss_and_dlogits(ref_logits, y.reshape(-1))
    assert abs(loss - ref_loss) < 1e-12
    grads, dstate0 = model.backward(params, config, dlogits, cache, dstate=w)
    ref_grads, ref_dstate0 = reference.backward(params, cell, L, ref_dlogits, ref_caches, w)
    assert set(grads) == set(ref_grads)
    for name in grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    for d, r in zip(dstate0, ref_dstate0):
        np.testing.assert_allclose(d, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_float_input_layer_gradients_match_finite_differences(cell):
    """One layer fed floats (as every layer above the first is), through the shared projection:
    dx, every weight, both biases, every state tensor."""
    T, B, D, H = 5, 2, 3, 4
    c = CELLS[cell]
    G = c.NUM_GATES * H
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, D))
    p = {n: rng.standard_normal(s) * 0.5 for n, s in (("W_ih", (G, D)), ("W_hh", (G, H)), ("b_ih", G), ("b_hh", G))}
    state0 = tuple(rng.standard_normal((B, H)) for _ in c.STATE_NAMES)
    w = rng.standard_normal((T, B, H))  # loss = Σ w ⊙ h_seq

    def run():
        proj = project(x, p["W_ih"], c.input_scale(H, x.dtype))
        h_seq, _, cache = c.forward(proj.xa, state0, p["W_hh"], p["b_ih"], p["b_hh"])
        return float(np.sum(w * h_seq)), proj, cache

    from charlstm.ops import project_backward

    _, proj, cache = run()
    dxa, g, dstate0 = c.backward(w, cache)
    dW_ih, dx = project_backward(proj, dxa)
    checks = [("x", x, dx), ("W_ih", p["W_ih"], dW_ih), ("W_hh", p["W_hh"], g["weight_hh"]),
              ("b_ih", p["b_ih"], g["bias_ih"]), ("b_hh", p["b_hh"], g["bias_hh"])]
    checks += [(f"{n}0", s, d) for n, s, d in zip(c.STATE_NAMES, state0, dstate0)]
    for name, value, analytic in checks:
        err = rel_error(analytic, numeric_grad(lambda: run()[0], value))
        assert err < 1e-5, f"{cell} {name}: relative error {err:.2e}"


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_whole_window_forward_equals_stepping(cell):
    """model.forward over a window and stepping.step one character at a time (the sampling path,
    batch-minor with prepared weights) give the same logits and the same final state."""
    V, H, L, T, B = 9, 6, 3, 7, 4
    config, params = random_model(V, H, L, seed=4, dtype=np.float64, scale=0.4, cell=cell)
    rng = np.random.default_rng(5)
    x = rng.integers(0, V, (T, B)).astype(np.uint8)
    state0 = tuple(rng.standard_normal((L, B, H)) * 0.3 for _ in model.state_names(config))
    logits, stateT, _ = model.forward(params, config, x, state0)
    logits = logits.reshape(T, B, V)
    stepper = stepping.prepare_stepper(params, config)
    state = state0
    for t in range(T):
        step_logits, state = stepping.step(stepper, x[t], state)
        np.testing.assert_allclose(step_logits, logits[t], rtol=1e-10, atol=1e-10)
    for a, b in zip(state, stateT):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_activations_are_copies_of_the_forward(cell):
    """activations(cache) names the gates and states of the last forward; h is the layer output,
    and they survive the backward that overwrites the cache's gate buffer."""
    config, params, x, y, state0, w = problem(cell, 1)
    logits, _, cache = model.forward(params, config, x, state0)
    acts = CELLS[cell].activations(cache.layers[0])
    h_seq = cache.top.reshape(x.shape + (config.hidden_size,)).copy()
    np.testing.assert_array_equal(acts["h"], h_seq)
    before = {k: v.copy() for k, v in acts.items()}
    _, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
    model.backward(params, config, dlogits, cache)
    for k in acts:
        np.testing.assert_array_equal(acts[k], before[k])
    gates = {"lstm": "ifgoch", "gru": "rzn", "rnn": ""}[cell]
    assert set(gates) <= set(acts)
    for g in set(gates) & set("ifozr"):
        assert ((acts[g] > 0) & (acts[g] < 1)).all()  # sigmoid gates


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_init_follows_pytorch_shapes_and_the_cell(cell):
    config = model.ModelConfig(vocab_size=10, hidden_size=8, num_layers=2, cell=cell)
    params = model.init_params(config, seed=1)
    G = CELLS[cell].NUM_GATES * 8
    assert params[f"{cell}.weight_ih_l0"].shape == (G, 10)
    assert params[f"{cell}.weight_ih_l1"].shape == (G, 8)
    assert list(params) == list(model.param_shapes(config))
    forget = params[f"{cell}.bias_ih_l0"][8:16]
    assert (forget == 1.0).all() if cell == "lstm" else (params[f"{cell}.bias_ih_l0"] == 0).all()


def test_the_registry_has_every_cell_the_config_accepts():
    from charlstm.config import CELL_NAMES as ACCEPTED

    assert tuple(CELLS) == ACCEPTED
    for cell in CELLS.values():
        assert cell.STATE_NAMES[0] == "h" and cell.NUM_GATES >= 1
