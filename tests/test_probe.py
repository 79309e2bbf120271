"""The library behind the views (charlstm.insight.probe), checked against definitions, plain loops,
`evaluate` and finite differences. The views through the real CLI are in test_views.py."""

from __future__ import annotations

import numpy as np
import pytest

from charlstm.errors import UsageError
from charlstm.inference.loss import evaluate
from charlstm.insight import probe
from charlstm.insight.probe.finitediff import model_grads
from charlstm.nn import model, stepping
from charlstm.nn.cells import CELLS

from helpers import CELL_NAMES, random_model


def test_trace_equals_stepping_and_leaves_the_parameters_alone():
    """The traced top-layer h and logits are those of stepping one character at a time (the
    sampling path), and tracing changes no parameter."""
    config, params = random_model(6, 5, 2, dtype=np.float32, scale=0.4)
    before = {k: v.copy() for k, v in params.items()}
    ids = np.random.default_rng(0).integers(0, 6, 30).astype(np.uint8)
    tr = probe.trace(params, config, ids)
    stepper = stepping.prepare_stepper(params, config)
    state = model.zero_state(config, 1)
    for t, i in enumerate(ids):
        logits, state = stepping.step(stepper, np.array([i]), state)
        np.testing.assert_allclose(tr.logits[t], logits[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(tr.values(1, "h")[t], state[0][1, 0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(tr.values(1, "c")[t], state[1][1, 0], rtol=1e-4, atol=1e-5)
    assert all(np.array_equal(before[k], params[k]) for k in params)
    assert set(tr.layers[0]) == set(probe.quantities(config)) and tr.sigmoid == probe.sigmoids(config) == set("ifo")


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("quote", 'a"bc"d“e”', [0, 1, 1, 1, 0, 0, 1, 1, 0]),
        ("bracket", "(a[b])}{", [1, 1, 2, 2, 1, 0, 0, 1]),
        ("line", "ab\ncde\n", [1, 2, 0, 1, 2, 3, 0]),
        ("indent", "  a b\n\tc\nd", [1, 2, 2, 2, 2, 0, 1, 1, 0, 0]),
        (r"b+", "abbcb", [0, 1, 1, 0, 1]),
    ],
)
def test_features(name, text, expected):
    np.testing.assert_array_equal(probe.feature(text, name), expected)


def test_correlations_are_pearson_and_a_constant_unit_scores_zero():
    rng = np.random.default_rng(1)
    values = rng.standard_normal((50, 4))
    values[:, 2] = 3.0
    f = rng.standard_normal(50)
    r = probe.correlations(values, f)
    for u in (0, 1, 3):
        assert r[u] == pytest.approx(np.corrcoef(values[:, u], f)[0, 1], rel=1e-12)
    assert r[2] == 0


def test_rank_units_finds_a_planted_unit():
    """A unit whose value is the bracket depth (with the sign flipped) ranks first, |r| = 1."""
    config, params = random_model(5, 6, 2, dtype=np.float32)
    text = "(()[{}])" * 20
    tr = probe.trace(params, config, np.zeros(len(text), np.uint8))
    tr.layers[1]["c"][:, 4] = -probe.feature(text, "bracket")
    best = probe.rank_units(tr, probe.feature(text, "bracket"), "c", [0, 1], top=3)
    assert (best[0].layer, best[0].unit) == (1, 4) and best[0].r == pytest.approx(-1.0)
    assert len(best) == 3 and abs(best[1].r) >= abs(best[2].r)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_mean_surprisal_is_evaluate_with_one_stream(cell):
    config, params = random_model(7, 8, 2, dtype=np.float32, scale=0.4, cell=cell)
    ids = np.random.default_rng(2).integers(0, 7, 250).astype(np.uint8)
    s = probe.surprisal(probe.trace(params, config, ids), top=3)
    assert len(s.bits) == 249
    assert s.mean_bits == pytest.approx(evaluate(params, config, ids, B=1, T=37).bits_per_char, rel=1e-5)
    assert np.all(s.probs[:, 0] >= s.probs[:, 1]) and np.all(s.probs[:, 1] >= s.probs[:, 2])
    hit = s.guesses[:, 0] == s.targets  # where the top guess is right, its probability is 2^-bits
    np.testing.assert_allclose(s.probs[hit, 0], 2.0 ** -s.bits[hit], rtol=1e-9)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_saturation_equals_a_plain_count(cell):
    config, params = random_model(6, 7, 2, dtype=np.float32, scale=1.5, cell=cell)
    ids = np.random.default_rng(3).integers(0, 6, 120).astype(np.uint8)
    tr = probe.trace(params, config, ids)
    rows = probe.saturation(tr, config)
    assert [(g.layer, g.gate) for g in rows] == [(k, gate) for k in range(2) for gate in CELLS[cell].GATES]
    for g in rows:
        values = tr.values(g.layer, g.gate)
        left = right = 0
        for t in range(values.shape[0]):
            for u in range(values.shape[1]):
                left += values[t, u] < g.low
                right += values[t, u] > g.high
        assert g.left_fraction == pytest.approx(left / values.size, abs=1e-12)
        assert g.right_fraction == pytest.approx(right / values.size, abs=1e-12)
    assert any(g.left_fraction > 0 or g.right_fraction > 0 for g in rows)  # the check is not vacuous


def test_what_is_counted_instead_of_gates_is_said():
    """The cell says what `gates` counts: for the vanilla RNN its tanh output h, at ±0.9, which
    the reader is told; the LSTM's and GRU's are all sigmoid gates, at 0.1 and 0.9."""
    config = {cell: model.ModelConfig(5, 4, 1, cell) for cell in ("lstm", "gru", "rnn")}
    assert (
        probe.stand_ins(config["rnn"])
        == "the RNN has no gates; shown instead: how often its h is below −0.9 or above 0.9"
    )
    assert probe.stand_ins(config["lstm"]) is None and probe.stand_ins(config["gru"]) is None
    assert (
        dict.fromkeys("ifo", (0.1, 0.9)) == CELLS["lstm"].GATES
        and dict.fromkeys("rz", (0.1, 0.9)) == CELLS["gru"].GATES
    )


# ------------------------------------------------------------------------- gradient flow, exactly


def _loss_at(params, config, ids, t, hook):
    """L_t from a plain forward (the cells' plain steps) in which hook(layer, step, state, rec) may
    replace each new state."""
    cell = model.cell_of(config)
    H = config.hidden_size
    states = [tuple(np.zeros((1, H)) for _ in cell.STATE_NAMES) for _ in range(config.num_layers)]
    for s in range(t + 1):
        x = np.eye(config.vocab_size)[[ids[s]]]
        for k in range(config.num_layers):
            W_ih, W_hh, b_ih, b_hh = model.layer_params(params, config, k)
            states[k] = hook(k, s, *cell.step(x @ W_ih.T + b_ih, states[k], W_hh, b_hh))
            x = states[k][0]
    logits = x @ params["head.weight"].T + params["head.bias"]
    z = logits[0] - logits.max()
    return float(np.log(np.exp(z).sum()) - z[ids[t + 1]])


def _fd_norm(params, config, ids, t, layer, s, nudge):
    """‖∂L_t/∂state^layer_s‖ by central differences, `nudge(state, rec, delta)` giving the state
    of that step nudged by delta (1, H)."""
    grad = np.zeros(config.hidden_size)
    for j in range(config.hidden_size):
        delta = np.zeros((1, config.hidden_size))

        def hook(k, step, state, rec):
            return nudge(state, rec, delta) if (k, step) == (layer, s) else state

        delta[0, j] = 1e-6
        plus = _loss_at(params, config, ids, t, hook)
        delta[0, j] = -1e-6
        grad[j] = (plus - _loss_at(params, config, ids, t, hook)) / 2e-6
    return np.linalg.norm(grad)


def _nudge_h(state, rec, delta):
    return (state[0] + delta, *state[1:])


def _nudge_lstm_c(state, rec, delta):
    """c nudged before h = o ⊙ tanh(c) is taken from it: every path from c_s."""
    c = state[1] + delta
    return (rec["o"] * np.tanh(c), c)


def _check_flow(cell, name, nudge):
    V, H, L, K, t = 5, 3, 2, 5, 8
    config, params = random_model(V, H, L, seed=1, cell=cell)
    ids = np.random.default_rng(2).integers(0, V, 11).astype(np.uint8)
    flow = probe.gradient_flow(params, config, ids, K, positions=np.array([t]))
    assert list(flow.norms) == list(CELLS[cell].STATE_NAMES)
    expected = [[_fd_norm(params, config, ids, t, k, t - lag, nudge) for lag in range(K + 1)] for k in range(L)]
    np.testing.assert_allclose(flow.norms[name][0], expected, rtol=1e-6)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradient_flow_equals_finite_differences(cell):
    _check_flow(cell, "h", _nudge_h)


def test_gradient_flow_along_the_lstm_cell_state_equals_finite_differences():
    _check_flow("lstm", "c", _nudge_lstm_c)


def test_gradient_flow_positions_and_average():
    config, params = random_model(5, 4, 1, seed=3, cell="rnn")
    ids = np.random.default_rng(4).integers(0, 5, 40).astype(np.uint8)
    flow = probe.gradient_flow(params, config, ids, max_lag=6, positions=5)
    assert flow.positions.tolist() == [6, 14, 22, 30, 38]
    np.testing.assert_allclose(flow.mean("h"), flow.norms["h"].mean(axis=0))
    assert flow.states == ("h",)
    with pytest.raises(UsageError, match="too few"):
        probe.gradient_flow(params, config, ids[:6], max_lag=6)


# ------------------------------------------------------------------------------------ gradcheck


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradcheck_passes_on_the_model_gradients(cell):
    result = probe.gradcheck(probe.random_problem(cell))
    assert result.passed, result
    assert {t.name for t in result.tensors} >= {"head.weight", f"{cell}.weight_hh_l1", "state0.h"}
    assert max(t.max_error for t in result.tensors) < result.tolerance / 10


def test_gradcheck_fails_on_a_wrong_gradient():
    """A slip in one derivation — here the recurrent weight gradient of layer 0 off by 1% —
    fails that tensor and only that one."""

    def wrong(params, config, x, y, state):
        grads = model_grads(params, config, x, y, state)
        grads["lstm.weight_hh_l0"] *= 1.01
        return grads

    result = probe.gradcheck(probe.random_problem("lstm"), grad_fn=wrong)
    assert not result.passed
    assert [t.name for t in result.tensors if not t.passed] == ["lstm.weight_hh_l0"]
