"""Every cell, three ways: the fast code equals the plain reference made of the cell's own plain
step (`charlstm.insight.probe.reference`) — states, loss and every gradient — and both match central
finite differences in float64 (PyTorch is the third way: test_torch_reference.py)."""

from __future__ import annotations

import functools
import types

import numpy as np
import pytest

from charlstm.insight.probe import reference
from charlstm.insight.probe.finitediff import (
    TOLERANCE,
    gradcheck,
    max_error,
    numeric_grad,
    random_problem,
    reference_grads,
)
from charlstm.nn import cells, model, stepping
from charlstm.nn.cells import CELLS, stepwise
from charlstm.nn.ops import project, project_backward, softmax_cross_entropy

from helpers import CELL_NAMES, random_model


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
    """Every parameter and every initial-state tensor, in float64."""
    config, params, x, y, state0, w = problem(cell, L)
    _loss, _, grads, dstate0 = fast(config, params, x, y, state0, w)

    def loss_fn() -> float:
        return fast(config, params, x, y, state0, w)[0]

    assert set(grads) == set(params)
    for name, p in params.items():
        err = max_error(grads[name], numeric_grad(loss_fn, p))
        assert err < TOLERANCE, f"{cell} {name}: error {err:.2e}"
    for name, s, ds in zip(model.state_names(config), state0, dstate0):
        err = max_error(ds, numeric_grad(loss_fn, s))
        assert err < TOLERANCE, f"{cell} d{name}0: error {err:.2e}"


@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_fast_code_equals_the_plain_reference(cell, L):
    """Logits, final state, loss, every gradient and dstate0 agree with the model made of the
    cell's plain step (`probe.reference`)."""
    config, params, x, y, state0, w = problem(cell, L, V=7, H=5, T=5, B=2, seed=3)
    logits, stateT, cache = model.forward(params, config, x, state0)
    logits = logits.copy()
    ref_logits, ref_stateT, records = reference.forward(params, config, x, state0)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-12, atol=1e-12)
    for s, r in zip(stateT, ref_stateT):
        np.testing.assert_allclose(s, r, rtol=1e-12, atol=1e-12)
    loss, dlogits = softmax_cross_entropy(logits.copy(), y.reshape(-1))
    ref_loss, ref_dlogits = reference.loss_and_dlogits(ref_logits, y.reshape(-1))
    assert abs(loss - ref_loss) < 1e-12
    grads, dstate0 = model.backward(params, config, dlogits, cache, dstate=w)
    ref_grads, ref_dstate0 = reference.backward(params, config, ref_dlogits, records, w)
    assert list(grads) == list(ref_grads)
    for name in grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    for d, r in zip(dstate0, ref_dstate0):
        np.testing.assert_allclose(d, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_the_plain_reference_matches_finite_differences(cell):
    """The cell's plain step_back, checked on its own: `gradcheck` of the plain reference."""
    result = gradcheck(random_problem(cell, seed=1), grad_fn=reference_grads)
    assert result.passed, result


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

    _, proj, cache = run()
    dxa, g, dstate0 = c.backward(w, cache)
    dW_ih, dx = project_backward(proj, dxa)
    checks = [
        ("x", x, dx),
        ("W_ih", p["W_ih"], dW_ih),
        ("W_hh", p["W_hh"], g["weight_hh"]),
        ("b_ih", p["b_ih"], g["bias_ih"]),
        ("b_hh", p["b_hh"], g["bias_hh"]),
    ]
    checks += [(f"{n}0", s, d) for n, s, d in zip(c.STATE_NAMES, state0, dstate0)]
    for name, value, analytic in checks:
        err = max_error(analytic, numeric_grad(lambda: run()[0], value))
        assert err < TOLERANCE, f"{cell} {name}: error {err:.2e}"


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


def named(what: str, arrays) -> dict[str, np.ndarray]:
    """{"what.key": array} of a dict or a tuple of arrays."""
    items = arrays.items() if isinstance(arrays, dict) else enumerate(arrays)
    return {f"{what}.{k}": v for k, v in items}


def stepwise_cell(cell) -> types.SimpleNamespace:
    """`cell` with its fast path replaced by `stepwise` over its plain step."""
    return types.SimpleNamespace(
        input_scale=stepwise.input_scale,
        prepare=stepwise.prepare,
        step_work=stepwise.step_work,
        forward=functools.partial(stepwise.forward, cell.step),
        backward=functools.partial(stepwise.backward, cell.step_back),
        activations=functools.partial(stepwise.activations, cell.QUANTITIES),
        step_into=functools.partial(stepwise.step_into, cell.step),
    )


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_stepwise_fast_path_equals_the_cells_own(cell):
    """`stepwise` (a new cell's first fast path) over a cell's plain step computes what the cell's
    own fast path computes: window forward, backward (from dh and a final-state gradient),
    activations and the in-place sampling step."""
    T, B, D, H = 4, 3, 5, 6
    c = CELLS[cell]
    s = stepwise_cell(c)
    rng = np.random.default_rng(6)
    W_ih, W_hh = rng.standard_normal((c.NUM_GATES * H, D)) * 0.5, rng.standard_normal((c.NUM_GATES * H, H)) * 0.5
    b_ih, b_hh = rng.standard_normal(c.NUM_GATES * H) * 0.5, rng.standard_normal(c.NUM_GATES * H) * 0.5
    x, dh = rng.standard_normal((T, B, D)), rng.standard_normal((T, B, H))
    state0 = tuple(rng.standard_normal((B, H)) for _ in c.STATE_NAMES)
    dstateT = tuple(rng.standard_normal((B, H)) for _ in c.STATE_NAMES)
    out = []
    for impl in (c, s):
        proj = project(x, W_ih, impl.input_scale(H, x.dtype))
        h_seq, stateT, cache = impl.forward(proj.xa, state0, W_hh, b_ih, b_hh)
        acts = impl.activations(cache)
        h_seq = h_seq.copy()
        dxa, grads, dstate0 = impl.backward(dh, cache, dstateT)
        out.append(
            {
                "h_seq": h_seq,
                **named("stateT", stateT),
                **named("acts", acts),
                **named("dW_ih, dx", project_backward(proj, dxa)),
                **named("grads", grads),
                **named("dstate0", dstate0),
            }
        )
    assert out[0].keys() == out[1].keys()
    for name in out[0]:
        np.testing.assert_allclose(out[1][name], out[0][name], rtol=1e-10, atol=1e-12, err_msg=name)
    z = np.ascontiguousarray(np.concatenate([x[0].T, state0[0].T]))  # (D+H, B): the input stacked on h
    rest = tuple(np.ascontiguousarray(st.T) for st in state0[1:])
    z2, rest2 = z.copy(), tuple(r.copy() for r in rest)
    c.step_into(z, rest, c.prepare(W_ih, W_hh, b_ih, b_hh, ids=False), c.step_work(H, B, z.dtype))
    s.step_into(z2, rest2, s.prepare(W_ih, W_hh, b_ih, b_hh, ids=False), s.step_work(H, B, z.dtype))
    for u, v in zip((z, *rest), (z2, *rest2)):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_activations_are_copies_of_the_forward(cell):
    """activations(cache) names every quantity the cell declares; h is the layer output, the
    sigmoid ones lie in (0, 1), and they survive the backward that overwrites the cache."""
    config, params, x, y, state0, _w = problem(cell, 1)
    logits, _, cache = model.forward(params, config, x, state0)
    c = CELLS[cell]
    acts = c.activations(cache.layers[0])
    assert set(acts) == set(c.QUANTITIES)
    h_seq = cache.top.reshape((*x.shape, config.hidden_size)).copy()
    np.testing.assert_array_equal(acts["h"], h_seq)
    before = {k: v.copy() for k, v in acts.items()}
    _, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
    model.backward(params, config, dlogits, cache)
    for k in acts:
        np.testing.assert_array_equal(acts[k], before[k])
    for g in c.SIGMOID:
        assert ((acts[g] > 0) & (acts[g] < 1)).all()


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_init_follows_pytorch_shapes(cell):
    config = model.ModelConfig(vocab_size=10, hidden_size=8, num_layers=2, cell=cell)
    params = model.init_params(config, seed=1)
    G = CELLS[cell].NUM_GATES * 8
    assert params[f"{cell}.weight_ih_l0"].shape == (G, 10)
    assert params[f"{cell}.weight_ih_l1"].shape == (G, 8)
    assert list(params) == list(model.param_shapes(config))
    assert (params[f"{cell}.bias_hh_l0"] == 0).all()


def test_the_registry_has_every_cell_the_config_accepts_and_each_keeps_the_contract():
    from charlstm.config import CELL_NAMES as ACCEPTED

    assert tuple(CELLS) == ACCEPTED == cells.names()
    for name, cell in CELLS.items():
        cells.check(name, cell)  # every declaration and function of charlstm.nn.cells.Cell, consistent
        assert cell.NUM_GATES >= 1 and (cell.TORCH is None or hasattr(cell.TORCH[1], "items"))


def test_a_module_that_breaks_the_contract_is_refused_with_what_it_lacks():
    broken = types.ModuleType("broken")
    broken.__dict__.update(
        {n: getattr(CELLS["rnn"], n) for n in ("NUM_GATES", "STATE_NAMES", "SIGMOID", "GATES", "TORCH")}
    )
    with pytest.raises(TypeError, match="lacks QUANTITIES, step, step_back"):
        cells.register("broken", broken)
    broken.QUANTITIES = ("c",)
    broken.__dict__.update({n: getattr(CELLS["rnn"], n) for n in vars(cells.Cell) if not n.startswith("_")})
    with pytest.raises(TypeError, match="STATE_NAMES names h, not in QUANTITIES; GATES names h"):
        cells.register("broken", broken)
    with pytest.raises(ValueError, match="lower-case"):
        cells.register("Broken Cell", CELLS["rnn"])
    assert "broken" not in cells.names()
