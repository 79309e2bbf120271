"""The kernels: the NumPy reference follows the LSTM and Adam equations, and the numba kernels (when
numba is installed) equal the reference; choosing between them; the numba kernels' disk cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charlstm.errors import UsageError
from charlstm.nn import kernels, optim
from charlstm.nn.kernels import numpy_ref

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(1, 1), (3, 5), (8, 19), (4, 64)]  # (B, H): odd widths exercise the loops' remainders
DTYPES = [np.float32, np.float64]
SCALE = np.array([0.5, 0.5, 1.0, 0.5])  # s per gate block i, f, g, o


def tolerance(dtype) -> dict:
    return {"rtol": 1e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype, factor: float = 1.0) -> None:
    """Equal within the dtype's tolerance, the absolute part scaled to the values' size."""
    tol = tolerance(dtype)
    size = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=factor * tol["rtol"], atol=factor * tol["atol"] * size)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def forward_inputs(B: int, H: int, dtype, seed: int = 0):
    """â (B, 4H) scaled pre-activations, c_prev (B, H), the outputs c, tanh_c and an h buffer
    (B, H+1) whose last column is ones (as in the layer's cache)."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((B, 4 * H)) * 2 * np.repeat(SCALE, H)).astype(dtype)
    c_prev = rng.standard_normal((B, H)).astype(dtype)
    h_buf = np.ones((B, H + 1), dtype)
    return a, c_prev, np.full((B, H), np.nan, dtype), np.full((B, H), np.nan, dtype), h_buf


def forward_equations(a_hat: np.ndarray, c_prev: np.ndarray):
    """The LSTM step from its definition, in float64, on the unscaled pre-activations."""
    H = c_prev.shape[1]
    a = a_hat.astype(np.float64) / np.repeat(SCALE, H)
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 3 * H :])
    g = np.tanh(a[:, 2 * H : 3 * H])
    c = f * c_prev + i * g
    return np.concatenate([i, f, g, o], axis=1), c, np.tanh(c), o * np.tanh(c)


def backward_inputs(B: int, H: int, dtype, seed: int = 1):
    """One forward step's results (from the reference) and the gradients arriving at h_t and c_t."""
    a, c_prev, c, tanh_c, h_buf = forward_inputs(B, H, dtype, seed)
    numpy_ref.lstm_forward_gates(a, c_prev, c, tanh_c, h_buf[:, :H])
    rng = np.random.default_rng(seed + 1)
    dh = rng.standard_normal((B, H)).astype(dtype)
    dc_next = rng.standard_normal((B, H)).astype(dtype)
    return a, dh, dc_next, c_prev, tanh_c, h_buf


def backward_equations(gates, dh, dc_next, c_prev, tanh_c):
    """The step's gradients from the chain rule, in float64: da (B, 4H) and dc_{t-1} (B, H)."""
    gates, dh, dc_next, c_prev, tanh_c = (x.astype(np.float64) for x in (gates, dh, dc_next, c_prev, tanh_c))
    H = dh.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    dc = dh * o * (1 - tanh_c**2) + dc_next
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2), dh * tanh_c * o * (1 - o)], axis=1
    )
    return da, dc * f


def adam_inputs(shape: tuple[int, ...], dtype, seed: int = 2):
    rng = np.random.default_rng(seed)
    p, g, m = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    v = rng.random(shape).astype(dtype)
    return p, g, m, v


def adam_equations(p, g, m, v, lr, beta1, beta2, eps, t):
    """Kingma & Ba's Adam step with bias-corrected moments, in float64: new (p, m, v)."""
    p, g, m, v = (x.astype(np.float64) for x in (p, g, m, v))
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


ADAM_ARGS = (2e-3, 0.9, 0.999, 1e-8)


@pytest.fixture
def numba_impl():
    pytest.importorskip("numba")
    from charlstm.nn.kernels import numba_impl

    return numba_impl


# ------------------------------------------------------------------------- the NumPy reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, H", SHAPES)
def test_reference_forward_follows_the_equations(B, H, dtype):
    a, c_prev, c, tanh_c, h_buf = forward_inputs(B, H, dtype)
    gates, c_eq, tanh_c_eq, h_eq = forward_equations(a, c_prev)
    numpy_ref.lstm_forward_gates(a, c_prev, c, tanh_c, h_buf[:, :H])
    for actual, expected in [(a, gates), (c, c_eq), (tanh_c, tanh_c_eq), (h_buf[:, :H], h_eq)]:
        assert actual.dtype == dtype
        assert_close(actual, expected, dtype, factor=2)
    np.testing.assert_array_equal(h_buf[:, H], 1)  # the column beside the strided h is untouched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, H", SHAPES)
def test_reference_backward_follows_the_equations(B, H, dtype):
    gates, dh, dc_next, c_prev, tanh_c, h_buf = backward_inputs(B, H, dtype)
    da_eq, dc_prev_eq = backward_equations(gates, dh, dc_next, c_prev, tanh_c)
    numpy_ref.lstm_backward_gates(gates, dh, dc_next, c_prev, tanh_c, h_buf[:, :H])
    assert_close(gates, da_eq, dtype, factor=4)
    assert_close(dc_next, dc_prev_eq, dtype, factor=4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_adam_follows_the_equations_step_after_step(dtype):
    p, g, m, v = adam_inputs((6, 7), dtype)
    p_eq, m_eq, v_eq = p.copy(), m.copy(), v.copy()
    for t in range(1, 5):
        p_eq, m_eq, v_eq = adam_equations(p_eq, g, m_eq, v_eq, *ADAM_ARGS, t)
        numpy_ref.adam_update(p, g.copy(), m, v, *ADAM_ARGS, t)
        for actual, expected in [(p, p_eq), (m, m_eq), (v, v_eq)]:
            assert actual.dtype == dtype
            assert_close(actual, expected, dtype, factor=4)


def test_reference_adam_is_the_optimisers_update():
    params = {"w": adam_inputs((5, 3), np.float32)[0], "b": adam_inputs((5,), np.float32, seed=3)[0]}
    grads = {name: np.random.default_rng(4).standard_normal(p.shape).astype(np.float32) for name, p in params.items()}
    mine = {name: (p.copy(), np.zeros_like(p), np.zeros_like(p)) for name, p in params.items()}
    adam = optim.Adam(params, *ADAM_ARGS[1:])
    for t in range(1, 4):
        adam.step(params, {name: g.copy() for name, g in grads.items()}, ADAM_ARGS[0])
        for name, (p, m, v) in mine.items():
            numpy_ref.adam_update(p, grads[name].copy(), m, v, *ADAM_ARGS, t)
            np.testing.assert_array_equal(p, params[name])
            np.testing.assert_array_equal(m, adam.state[f"exp_avg.{name}"])
            np.testing.assert_array_equal(v, adam.state[f"exp_avg_sq.{name}"])


# ------------------------------------------------------------------------- numba against the reference


@pytest.mark.parametrize("strided", [True, False], ids=["h-strided", "h-contiguous"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, H", SHAPES)
def test_numba_forward_equals_reference(numba_impl, B, H, dtype, strided):
    a, c_prev, c, tanh_c, h_buf = forward_inputs(B, H, dtype)
    ref = [x.copy() for x in (a, c, tanh_c, h_buf)]
    numpy_ref.lstm_forward_gates(ref[0], c_prev, ref[1], ref[2], ref[3][:, :H])
    h = h_buf[:, :H] if strided else np.full((B, H), np.nan, dtype)
    numba_impl.lstm_forward_gates(a, c_prev, c, tanh_c, h)
    for actual, expected in zip([a, c, tanh_c, h], [ref[0], ref[1], ref[2], ref[3][:, :H]]):
        assert_close(actual, expected, dtype)
    np.testing.assert_array_equal(h_buf[:, H], 1)


@pytest.mark.parametrize("strided", [True, False], ids=["h-strided", "h-contiguous"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, H", SHAPES)
def test_numba_backward_equals_reference(numba_impl, B, H, dtype, strided):
    gates, dh, dc_next, c_prev, tanh_c, h_buf = backward_inputs(B, H, dtype)
    h = h_buf[:, :H] if strided else h_buf[:, :H].copy()
    ref_gates, ref_dc = gates.copy(), dc_next.copy()
    numpy_ref.lstm_backward_gates(ref_gates, dh, ref_dc, c_prev, tanh_c, h_buf[:, :H])
    numba_impl.lstm_backward_gates(gates, dh, dc_next, c_prev, tanh_c, h)
    assert_close(gates, ref_gates, dtype)
    assert_close(dc_next, ref_dc, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (37,), (12, 19)])
def test_numba_adam_equals_reference(numba_impl, shape, dtype):
    p, g, m, v = adam_inputs(shape, dtype)
    ref = [x.copy() for x in (p, m, v)]
    for t in range(1, 5):
        numpy_ref.adam_update(ref[0], g.copy(), ref[1], ref[2], *ADAM_ARGS, t)
        numba_impl.adam_update(p, g.copy(), m, v, *ADAM_ARGS, t)
        for actual, expected in zip((p, m, v), ref):
            assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numba_tanh_keeps_nan_and_saturates(numba_impl, dtype):
    """A NaN pre-activation gives NaN gates (divergence must stay visible); ±inf gives ±1."""
    B, H = 1, 4
    a, c_prev, c, tanh_c, h_buf = forward_inputs(B, H, dtype)
    a[0, [0, H, 2 * H, 3 * H]] = [np.nan, np.inf, -np.inf, 1e30]
    numba_impl.lstm_forward_gates(a, c_prev, c, tanh_c, h_buf[:, :H])
    assert np.isnan(a[0, 0]) and a[0, H] == 1 and a[0, 2 * H] == -1 and a[0, 3 * H] == 1
    assert np.isnan(c[0, 0]) and np.isnan(h_buf[0, 0])


def test_numba_rejects_an_h_without_unit_stride(numba_impl):
    a, c_prev, c, tanh_c, _ = forward_inputs(2, 3, np.float32)
    h = np.zeros((2, 6), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="unit stride"):
        numba_impl.lstm_forward_gates(a, c_prev, c, tanh_c, h)


# ------------------------------------------------------------------------- choosing the kernels


def test_resolve():
    assert kernels.resolve("numpy") == "numpy"
    assert kernels.resolve("auto") == ("numba" if kernels.available() else "numpy")
    with pytest.raises(UsageError, match="choose one of auto, numpy, numba"):
        kernels.resolve("fortran")


def test_numba_without_numba_is_a_clean_usage_error(monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert kernels.resolve("auto") == "numpy"
    with pytest.raises(UsageError) as error:
        kernels.resolve("numba")
    message = str(error.value)
    assert "pip install 'charlstm[fast]'" in message and "\n" not in message


def test_load_numpy():
    k = kernels.load("numpy")
    assert k.name == "numpy"
    assert k.lstm_forward_gates is numpy_ref.lstm_forward_gates
    assert k.adam_update is numpy_ref.adam_update
    k.warm_up(np.float32)


def test_load_numba(numba_impl):
    k = kernels.load("numba")
    assert (k.name, k.lstm_forward_gates, k.warm_up) == ("numba", numba_impl.lstm_forward_gates, numba_impl.warm_up)


@pytest.mark.parametrize("L", [1, 2])
def test_a_training_step_on_numba_equals_numpy(numba_impl, L):
    """The whole step through the model — logits, final state, loss, every gradient, dstate0 — and
    an Adam update, on the numba kernels equal the NumPy path (float32: to ~1e-5 relative)."""
    from charlstm.nn import model, optim

    from helpers import random_model

    V, H, T, B = 11, 32, 9, 6
    config, params = random_model(V, H, L, seed=2, dtype=np.float32, scale=0.3)
    rng = np.random.default_rng(3)
    x, y = (rng.integers(0, V, (T, B)).astype(np.uint8) for _ in range(2))
    state0 = tuple((rng.standard_normal((L, B, H)) * 0.5).astype(np.float32) for _ in range(2))
    out = {}
    for name in ("numpy", "numba"):
        k = kernels.load(name)
        logits, stateT, cache = model.forward(params, config, x, state0, kernels=k)
        logits = logits.copy()
        loss, dlogits = model.softmax_cross_entropy(logits.copy(), y.reshape(-1))
        grads, dstate0 = model.backward(params, config, dlogits, cache, dstate=state0, kernels=k)
        grads = {n: g.copy() for n, g in grads.items()}
        stepped = {n: p.copy() for n, p in params.items()}
        opt = optim.make_optimizer("adam", stepped, k)
        for _ in range(3):
            opt.step(stepped, {n: g.copy() for n, g in grads.items()}, 1e-2)
        out[name] = (logits, stateT, loss, grads, dstate0, stepped)
    (l0, s0, loss0, g0, d0, p0), (l1, s1, loss1, g1, d1, p1) = out["numpy"], out["numba"]
    assert abs(loss0 - loss1) <= 1e-6 * abs(loss0)
    np.testing.assert_allclose(l1, l0, rtol=1e-5, atol=1e-6)
    for a, b in [*zip(s1, s0), *zip(d1, d0)]:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for n in g0:
        scale = np.abs(g0[n]).max()
        assert np.abs(g1[n] - g0[n]).max() <= 1e-5 * scale, n
        np.testing.assert_allclose(p1[n], p0[n], rtol=1e-5, atol=1e-6, err_msg=n)


def test_importing_charlstm_kernels_does_not_import_numba():
    code = "import sys, charlstm.nn.kernels as k; k.load('numpy'); assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


# ------------------------------------------------------------------------- numba's disk cache


def warm_up_in_subprocess(tmp_path: Path, cache: Path, **env: str) -> subprocess.CompletedProcess:
    """Compile the float32 kernels in a fresh process, with `cache` as charlstm's cache folder."""
    code = "import numpy as np; from charlstm.nn.kernels import numba_impl; numba_impl.warm_up(np.float32)"
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    full_env.update(PYTHONPATH=str(ROOT), CHARLSTM_CACHE=str(cache), **env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=300
    )


def test_numba_caches_compiled_code_in_charlstms_cache_folder(numba_impl, tmp_path):
    for _ in range(2):  # compile and save, then load
        result = warm_up_in_subprocess(tmp_path, tmp_path / "cache")
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert len(list((tmp_path / "cache" / "numba").rglob("*lstm_forward_gates*.nbi"))) == 1


def test_numba_works_silently_without_a_writable_cache_folder(numba_impl, tmp_path):
    (tmp_path / "file").write_text("")  # a folder cannot be made below a file
    only_ours = {"NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator"}  # none of numba's fallbacks
    result = warm_up_in_subprocess(tmp_path, tmp_path / "file" / "cache", **only_ours)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_failing_cache_is_given_up_quietly(numba_impl):
    class Broken:
        enabled = True

        def load_overload(self, sig, target_context):
            raise OSError("unreadable")

        def save_overload(self, sig, data):
            raise OSError("read-only file system")

        def disable(self):
            self.enabled = False

    broken = Broken()
    from charlstm.nn.kernels.numba_jit import _QuietCache

    cache = _QuietCache(broken)
    assert cache.load_overload(None, None) is None and not broken.enabled
    broken.enabled = True
    cache.save_overload(None, None)
    assert not broken.enabled


# ------------------------------------------------------------------------- sampling kernels


def step_inputs(K: int, H: int, N: int, dtype, ids: bool, seed: int = 4):
    """A layer's stepping operands: W (4H, K), bias rows and the rows each stream adds, z (K, N)
    whose last H rows are h, c (H, N), and the scratch of `cells.lstm.StepWork`."""
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((4 * H, K)) / np.sqrt(K)).astype(dtype)
    bias = rng.standard_normal((7 if ids else 1, 4 * H)).astype(dtype)
    rows = rng.integers(0, 7, N) if ids else np.zeros(N, np.intp)
    z = rng.standard_normal((K, N)).astype(dtype)
    c = rng.standard_normal((H, N)).astype(dtype)
    scratch = (
        np.empty((4 * H, N), dtype),
        np.empty((N, 4 * H), dtype),
        np.empty((N, K + 3), dtype),
        np.empty((H, N), dtype),
    )
    return W, bias, rows, z, c, scratch


@pytest.mark.parametrize("ids", [True, False], ids=["id-input", "float-input"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 2, 3, 16])
@pytest.mark.parametrize("K, H", [(1, 1), (8, 3), (19, 5), (96, 64)])
def test_numba_lstm_step_equals_reference(numba_impl, K, H, N, dtype, ids):
    """The fused step (N ≤ FUSED_MAX_N) and the product-then-gates step equal the NumPy step, and
    that follows the LSTM equations (h, c of the last H rows of z)."""
    K = max(K, H) if ids else K + H
    W, bias, rows, z, c, scratch = step_inputs(K, H, N, dtype, ids)
    ref_z, ref_c = z.copy(), c.copy()
    numpy_ref.lstm_step(W, bias, rows, ref_z, ref_c, *scratch)
    a_hat = (W.astype(np.float64) @ z + bias[rows].T).T  # (N, 4H)
    _gates, c_eq, _, h_eq = forward_equations(a_hat, c.T)
    assert_close(ref_c, c_eq.T, dtype, factor=4 * K)
    assert_close(ref_z[-H:], h_eq.T, dtype, factor=4 * K)
    np.testing.assert_array_equal(ref_z[:-H], z[:-H])  # the input rows are untouched
    from charlstm.nn.kernels import numba_lstm_math  # where lstm_step reads FUSED_MAX_N

    for fused_max in (numba_lstm_math.FUSED_MAX_N, 0, 64):
        z2, c2 = z.copy(), c.copy()
        saved, numba_lstm_math.FUSED_MAX_N = numba_lstm_math.FUSED_MAX_N, fused_max
        try:
            numba_impl.lstm_step(W, bias, rows, z2, c2, *scratch)
        finally:
            numba_lstm_math.FUSED_MAX_N = saved
        assert_close(z2, ref_z, dtype, factor=4 * K)
        assert_close(c2, ref_c, dtype, factor=4 * K)


def test_numba_lstm_step_rejects_an_id_outside_the_vocabulary(numba_impl):
    W, bias, _rows, z, c, scratch = step_inputs(6, 3, 2, np.float32, True)
    for bad in (7, -1):  # the 7 bias rows are 0..6
        with pytest.raises(IndexError, match="outside the vocabulary"):
            numba_impl.lstm_step(W, bias, np.array([0, bad]), z, c, *scratch)


def test_lstm_step_rejects_a_strided_state(numba_impl):
    W, bias, rows, z, c, scratch = step_inputs(6, 3, 2, np.float32, False)
    for impl in (numpy_ref, numba_impl):
        with pytest.raises(ValueError, match="C-contiguous"):
            impl.lstm_step(W, bias, rows, np.asfortranarray(z), c, *scratch)


@pytest.mark.parametrize("N", [1, 2, 5, 40])  # one stream, fused (odd and even), BLAS
def test_numba_linear_step_equals_reference(numba_impl, N):
    rng = np.random.default_rng(5)
    W, x, b = rng.standard_normal((11, 40)), rng.standard_normal((40, N)), rng.standard_normal((11, 1))
    out, ref = np.empty((11, N)), np.empty((11, N))
    numpy_ref.linear_step(W, x, b, ref)
    numba_impl.linear_step(W, x, b, out)
    np.testing.assert_allclose(out, W @ x + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref, W @ x + b, rtol=1e-12, atol=1e-12)


ROUNDING = 32 * np.finfo(np.float64).eps  # of a CDF whose total is ~1: 14 ulps at 1 seen between two orders


@pytest.mark.parametrize("N", [1, 3, 16])
def test_softmax_draw_is_filter_probs_and_draw(numba_impl_or_none, N):
    """The temperature-only draw does what `draw(filter_probs(logits, t), rng)` does: the same ids
    from the same generator, for any layout of the logits, and the same CDF to a few units of
    rounding. (Not to the bit: filter_probs sums a transposed layout in another order, numba's exp
    is libm's where NumPy's may be its own SIMD code; a draw could differ only where its uniform
    falls within that rounding of a CDF step.)"""
    from charlstm.inference.generate import draw, filter_probs

    from helpers import assert_same_draws

    rng = np.random.default_rng(6)
    impls = [numpy_ref] + ([numba_impl_or_none] if numba_impl_or_none is not None else [])
    ties = 0
    for V in (1, 2, 7, 65, 129, 300):
        for t in (1.0, 0.6, 1.7):
            logits = (rng.standard_normal((V, N)) * 4).astype(np.float32).T  # a view, as sampling passes
            seed = int(rng.integers(1 << 30))
            probs = filter_probs(logits, t)
            cdf = np.cumsum(probs, axis=1)
            uniforms = np.random.default_rng(seed).random(N)
            assert_same_draws(draw(probs, np.random.default_rng(seed)), cdf, uniforms, rtol=0)  # the rule is draw's
            for impl in impls:
                u, z, ids = np.empty(N), np.empty((N, V)), np.empty(N, np.intp)
                impl.softmax_draw(logits, t, np.random.default_rng(seed).random(out=u), z, ids)
                np.testing.assert_allclose(z, cdf, rtol=0, atol=ROUNDING)
                ties += assert_same_draws(ids, cdf, uniforms, rtol=ROUNDING)
    assert ties == 0  # a uniform within ROUNDING of a CDF step, in these few draws: chance ~1e-10


@pytest.fixture
def numba_impl_or_none():
    if not kernels.available():
        return None
    from charlstm.nn.kernels import numba_impl

    return numba_impl


def test_numba_pairwise_sum_is_numpys(numba_impl):
    """numba's sum adds in NumPy's pairwise order: within a few ulps of `np.sum` (to the bit where
    NumPy's reduction is its plain C loop, but a build may vectorise it otherwise); adding from
    left to right is 46 ulps off these numbers' sum at n = 10,000."""
    from charlstm.nn.kernels import numba_sampling

    rng = np.random.default_rng(7)
    for n in [*range(0, 140), 255, 256, 1000, 4097, 10_000]:
        x = rng.random(n) ** 3
        np.testing.assert_array_max_ulp(numba_sampling._pairwise_sum(x), x.sum(), maxulp=8)


@pytest.mark.parametrize("N", [1, 3])
def test_generating_on_numba_equals_numpy(numba_impl, N):
    """Sampling through the model on the numba kernels draws what NumPy's would: the ids of every
    step are the plain NumPy loop's after the same history, up to float rounding (numba's step
    rounds otherwise, so a draw may differ where a uniform falls within ~1e-5 of a CDF step)."""
    from charlstm.inference.generate import Sampling, generate, prime_ids
    from charlstm.text.corpus import Vocab

    from helpers import assert_sampled_as_reference, random_model

    config, params = random_model(9, 24, 2, seed=3, dtype=np.float32, scale=0.4)
    vocab = Vocab(tuple("abcdefghi"))
    for name in ("numpy", "numba"):
        rng = np.random.default_rng(8)
        steps = np.stack(list(generate(params, config, vocab, "abc", 60, Sampling(0.8), N, rng, kernels.load(name))))
        assert_sampled_as_reference(
            steps, params, config, prime_ids(vocab, "abc"), 0.8, np.random.default_rng(8), rtol=1e-5
        )


def test_sampling_on_auto_takes_numba_only_once_compiled(tmp_path):
    """`charlstm sample --kernels auto` must not pay numba's import and compile: without the
    sampling kernels in the disk cache it steps on NumPy and never imports numba."""
    code = (
        "import sys; from charlstm.nn import kernels as k; "
        "print(k.compiled_on_disk(), k.for_sampling('auto').name, 'numba' in sys.modules)"
    )
    env = {key: v for key, v in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(ROOT), CHARLSTM_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "numpy", "False"]
    if not kernels.available():
        return
    warm_up_in_subprocess(tmp_path, tmp_path / "cache")  # compiles the sampling kernels too
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "numba", "True"]
