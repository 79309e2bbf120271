"""The kernels of `numpy_ref`, compiled with numba: one pass per kernel over the B × H block.

Importing this module imports numba (slow: do it only when the kernels are used). Each kernel loops
over rows, and within a row runs a few short loops that LLVM vectorises, each touching few arrays
and writing a row at one offset only (with more, LLVM gives up on its runtime alias checks and
the loop runs at scalar speed; `bench/kernels.py` guards that). tanh is a rational approximation
that vectorises (the libm call does not): Eigen's for float32 (≤ 7 ulp), Cephes' for float64
(≤ 1.5 ulp); NaN stays NaN.
`error_model="numpy"` keeps divisions free of zero checks, which would also stop vectorisation.

Compiled code is cached on disk, in `<charlstm cache folder>/numba` unless NUMBA_CACHE_DIR is set
(numba then falls back to its own places); without any writable place the kernels are compiled in
memory, and a cache that fails to read or write is given up quietly.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload

from charlstm.config import cache_dir

JIT_OPTIONS = {"fastmath": False, "error_model": "numpy", "boundscheck": False, "nogil": True}


class _QuietCache:
    """A dispatcher's disk cache that never fails a call: an error reading or writing it disables
    it (the kernel is then compiled in memory, as without a cache)."""

    def __init__(self, cache) -> None:
        self._cache = cache

    def load_overload(self, sig, target_context):
        try:
            return self._cache.load_overload(sig, target_context)
        except Exception:
            self._cache.disable()
            return None

    def save_overload(self, sig, data) -> None:
        try:
            self._cache.save_overload(sig, data)
        except Exception:
            self._cache.disable()

    def __getattr__(self, name: str):
        return getattr(self._cache, name)


@contextlib.contextmanager
def _charlstm_cache_dir() -> Iterator[None]:
    """numba's cache folder is charlstm's while the kernels are defined (numba keeps the folder a
    function was defined with), unless the user has chosen one with NUMBA_CACHE_DIR."""
    saved = config.CACHE_DIR
    if not saved:
        config.CACHE_DIR = str(cache_dir() / "numba")
    try:
        yield
    finally:
        config.CACHE_DIR = saved


def _jit(fn: Callable) -> Callable:
    """njit with JIT_OPTIONS, cached on disk where any cache folder is writable."""
    try:
        with _charlstm_cache_dir():
            kernel = njit(cache=True, **JIT_OPTIONS)(fn)
    except (RuntimeError, OSError):  # no writable cache folder anywhere
        return njit(**JIT_OPTIONS)(fn)
    if hasattr(kernel, "_cache"):
        kernel._cache = _QuietCache(kernel._cache)
    return kernel


@intrinsic
def _row(typingctx, arr, b):
    """arr[b] of a 2-D array whose rows have unit stride, typed as contiguous: loops over the row of
    a strided view (h, the first H columns of a (B, H+1) buffer) vectorise, as over any other row."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(b, types.Integer)):
        return None
    row_type = types.Array(arr.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        arr_type = sig.args[0]
        src = context.make_array(arr_type)(context, builder, args[0])
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        data = cgutils.get_item_pointer(context, builder, arr_type, src, [index, zero])
        dst = context.make_array(sig.return_type)(context, builder)
        ncols = builder.extract_value(src.shape, 1)
        context.populate_array(
            dst,
            data=data,
            shape=cgutils.pack_array(builder, [ncols]),
            strides=cgutils.pack_array(builder, [src.itemsize]),
            itemsize=src.itemsize,
            meminfo=src.meminfo,
            parent=src.parent,
        )
        return impl_ret_borrowed(context, builder, sig.return_type, dst._getvalue())

    return row_type(arr, b), codegen


@intrinsic
def _pow2(typingctx, n):
    """2.0 ** n as a float64 for an int64 n in [-1022, 1023], built from its bits."""
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        n64 = context.cast(builder, args[0], sig.args[0], types.int64)
        bits = builder.shl(builder.add(n64, ir.Constant(i64, 1023)), ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(n), codegen


# float32: Eigen's rational approximation of tanh on [−7.9, 7.9] (beyond, tanh rounds to ±1)
_F = np.float32
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = map(_F, (
    4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
    -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16,
))
_B0, _B2, _B4, _B6 = map(_F, (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06))
_CLAMP32 = _F(7.90531110763549805)

# float64: Cephes' tanh (a rational function for |x| < 0.625, else 1 − 2 / (e^{2|x|} + 1)) and exp
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3
_EP0, _EP1, _EP2 = 1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1
_EQ0, _EQ1, _EQ2, _EQ3 = 3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1, 2.0
_LN2_HI, _LN2_LO = 6.93145751953125e-1, 1.42860682030941723212e-6
_LOG2E = 1.4426950408889634073599
_CLAMP64 = 22.0  # tanh(22) rounds to 1


def _tanh_f32(x):
    x = _CLAMP32 if x > _CLAMP32 else x  # comparisons, not min/max: NaN stays NaN
    x = -_CLAMP32 if x < -_CLAMP32 else x
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return x * p / q


def _tanh_f64(x):
    z = abs(x)
    s = x * x
    small = x + x * s * (((_TP0 * s + _TP1) * s + _TP2) / (((s + _TQ0) * s + _TQ1) * s + _TQ2))
    # e^y = 2^n e^r with y = n ln 2 + r, |r| ≤ ½ ln 2; y is clamped (NaN too) so n stays in range
    y = 2.0 * (z if z < _CLAMP64 else _CLAMP64)
    n = math.floor(y * _LOG2E + 0.5)
    r = y - n * _LN2_HI
    r = r - n * _LN2_LO
    rr = r * r
    pr = r * ((_EP0 * rr + _EP1) * rr + _EP2)
    e = (1.0 + 2.0 * (pr / (((_EQ0 * rr + _EQ1) * rr + _EQ2) * rr + _EQ3 - pr))) * _pow2(np.int64(n))
    large = math.copysign(1.0 - 2.0 / (e + 1.0), x)
    return large if z >= 0.625 else small  # NaN: small, which is NaN


def _tanh(x):
    """tanh of a float32 or float64 scalar, in a form LLVM vectorises (numba only)."""
    raise NotImplementedError


@overload(_tanh)
def _tanh_overload(x):
    if x == types.float32:
        return _tanh_f32
    if x == types.float64:
        return _tanh_f64
    return None


@_jit
def lstm_forward_gates(a: np.ndarray, c_prev: np.ndarray, c: np.ndarray, tanh_c: np.ndarray, h: np.ndarray) -> None:
    """`numpy_ref.lstm_forward_gates`, fused. h's rows must have unit stride."""
    B, H = c.shape
    if H > 1 and h.strides[1] != h.itemsize:
        raise ValueError("h must have unit stride along its rows")
    half = a.dtype.type(0.5)
    for b in range(B):
        i_f, g, o = a[b, : 2 * H], a[b, 2 * H : 3 * H], a[b, 3 * H :]
        i, f = a[b, :H], a[b, H : 2 * H]
        c_b, tanh_c_b, h_b = c[b], tanh_c[b], _row(h, b)
        for j in range(2 * H):
            i_f[j] = half * _tanh(i_f[j]) + half
        for j in range(H):
            g[j] = _tanh(g[j])
        for j in range(H):
            o[j] = half * _tanh(o[j]) + half
        for j in range(H):
            c_b[j] = f[j] * c_prev[b, j] + i[j] * g[j]
        for j in range(H):
            t = _tanh(c_b[j])
            tanh_c_b[j] = t
            h_b[j] = o[j] * t


@_jit
def lstm_backward_gates(
    gates: np.ndarray, dh: np.ndarray, dc_next: np.ndarray, c_prev: np.ndarray, tanh_c: np.ndarray, h: np.ndarray
) -> None:
    """`numpy_ref.lstm_backward_gates`, fused. h's rows must have unit stride."""
    B, H = dh.shape
    if H > 1 and h.strides[1] != h.itemsize:
        raise ValueError("h must have unit stride along its rows")
    one = gates.dtype.type(1)
    di, dg = np.empty(H, gates.dtype), np.empty(H, gates.dtype)
    for b in range(B):
        i, f, g, o = gates[b, :H], gates[b, H : 2 * H], gates[b, 2 * H : 3 * H], gates[b, 3 * H :]
        dh_b, dc, tanh_c_b, h_b = dh[b], dc_next[b], tanh_c[b], _row(h, b)
        for j in range(H):  # dc_next becomes dc
            dc[j] = (o[j] - h_b[j] * tanh_c_b[j]) * dh_b[j] + dc[j]
        for j in range(H):
            o[j] = (dh_b[j] * tanh_c_b[j]) * ((one - o[j]) * o[j])
        for j in range(H):  # i and g need each other: through scratch, not written in place
            di[j] = (dc[j] * g[j]) * ((one - i[j]) * i[j])
            dg[j] = (dc[j] * i[j]) * ((one - g[j]) * (g[j] + one))
        for j in range(H):
            i[j] = di[j]
        for j in range(H):
            g[j] = dg[j]
        for j in range(H):
            f_j = f[j]
            f[j] = (dc[j] * c_prev[b, j]) * ((one - f_j) * f_j)
            dc[j] = dc[j] * f_j


@_jit
def _adam(p, g, m, v, beta1, beta2, inv_sqrt_bc2, eps, step):
    """The update on flat arrays, with the scalars in their dtype (1/√(1 − β2ᵗ), lr / (1 − β1ᵗ))."""
    for k in range(p.size):
        g_k = g[k]
        m_k = (m[k] - g_k) * beta1 + g_k
        g2 = g_k * g_k
        v_k = (v[k] - g2) * beta2 + g2
        m[k] = m_k
        v[k] = v_k
        p[k] -= m_k / (np.sqrt(v_k) * inv_sqrt_bc2 + eps) * step


def adam_update(
    p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
    lr: float, beta1: float, beta2: float, eps: float, t: int,
) -> None:
    """`numpy_ref.adam_update`, fused (g is left unchanged). p, g, m, v: C-contiguous, one shape."""
    if not (p.flags.c_contiguous and g.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        raise ValueError("adam_update needs C-contiguous arrays")
    real = p.dtype.type
    _adam(
        p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
        real(beta1), real(beta2), real(1.0 / math.sqrt(1.0 - beta2**t)), real(eps), real(lr / (1.0 - beta1**t)),
    )


def warm_up(dtype: np.dtype) -> None:
    """Compile (or load from the disk cache) the kernels for `dtype` with the argument layouts that
    training passes: contiguous arrays, and h a view of a (B, H+1) buffer."""
    B, H = 2, 3
    a = np.zeros((B, 4 * H), dtype)
    state = [np.zeros((B, H), dtype) for _ in range(4)]
    h = np.zeros((B, H + 1), dtype)[:, :H]
    lstm_forward_gates(a, state[0], state[1], state[2], h)
    lstm_backward_gates(a, state[0], state[1], state[2], state[3], h)
    adam_update(*(np.zeros(4, dtype) for _ in range(4)), 1e-3, 0.9, 0.999, 1e-8, 1)
