"""The kernels of `numpy_ref`, compiled with numba: one pass per kernel over the B × H block.

Importing this module imports numba (slow: do it only when the kernels are used). Each kernel loops
over rows, and within a row runs a few short loops that LLVM vectorises, each touching few arrays
and writing a row at one offset only (with more, LLVM gives up on its runtime alias checks and
the loop runs at scalar speed; `bench/kernels.py` guards that). tanh is a rational approximation
that vectorises (the libm call does not): Eigen's for float32 (≤ 7 ulp), Cephes' for float64
(≤ 1.5 ulp); NaN stays NaN.
`error_model="numpy"` keeps divisions free of zero checks, which would also stop vectorisation.

The sampling step (`lstm_step`) is the one kernel that runs on several threads (`parallel=True`,
numba's threading layer, NUMBA_NUM_THREADS of them): each owns a share of the hidden units and
computes their gate rows' dot products — reassociated (`fastmath` reassoc + contract only) so that
they vectorise — and then their gate math. Like any 2-thread code on a 2-core machine it slows
sharply when another process keeps one core busy (each parallel region waits for both threads).

Compiled code is cached on disk, in `<charlstm cache folder>/numba` unless NUMBA_CACHE_DIR is set
(numba then falls back to its own places); without any writable place the kernels are compiled in
memory, and a cache that fails to read or write is given up quietly.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, set_num_threads, types
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


def _jit(fn: Callable | None = None, **options: Any) -> Callable:
    """njit with JIT_OPTIONS (`options` override them), cached on disk where any cache folder is
    writable. A decorator, bare or with options: `@_jit` or `@_jit(parallel=True)`."""
    if fn is None:
        return functools.partial(_jit, **options)
    options = {**JIT_OPTIONS, **options}
    try:
        with _charlstm_cache_dir():
            kernel = njit(cache=True, **options)(fn)
    except (RuntimeError, OSError):  # no writable cache folder anywhere
        return njit(**options)(fn)
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


# ------------------------------------------------------------------------------------ sampling
#
# A sampling step at batch 1 reads every weight once per character (12.6 MB at 2×512): the product
# is a matrix-vector product bound by the memory bandwidth, which one thread does not reach. The
# fused step splits the units between the threads, each computing the four gate rows of its units
# (dot products with the input, reassociated so that they vectorise) and then their gate math: no
# pass over the (4H, N) pre-activations between the product and the gates, and no BLAS threads.

# Up to this many streams the fused step is used; above it, the product is OpenBLAS's GEMM and only
# the gate math is fused. OpenBLAS packs the whole weight matrix on every call, which a handful of
# columns does not amortise: a step of both layers at 2×512, one thread, took 0.73 / 2.2 / 8.6 ms
# fused at N = 4 / 16 / 64 against 2.5 / 3.4 / 8.1 ms for OpenBLAS + fused gates, and 33 against
# 25 ms at N = 256 (CPU time, min of 15, on a loaded machine).
FUSED_MAX_N = 32
_REASSOC = {"reassoc", "contract"}  # sums in any order (vectorised dot products), fused multiply-add


@_jit(fastmath=_REASSOC)
def _dots1(W, j, H, zT, n, K):
    """The dot products of W's rows j, H + j, 2H + j, 3H + j (a unit's four gates) with zT[n, :K].
    (Elements, not row views: every view made in a parallel loop increments its array's shared
    reference count, an atomic that the threads then fight over.)"""
    zero = zT.dtype.type(0)
    s0, s1, s2, s3 = zero, zero, zero, zero
    for k in range(K):
        zk = zT[n, k]
        s0 += W[j, k] * zk
        s1 += W[H + j, k] * zk
        s2 += W[2 * H + j, k] * zk
        s3 += W[3 * H + j, k] * zk
    return s0, s1, s2, s3


@_jit(fastmath=_REASSOC)
def _dots2(W, j, H, zT, n, K):
    """`_dots1` with zT[n] and zT[n + 1] at once (each weight loaded serves both)."""
    zero = zT.dtype.type(0)
    s0, s1, s2, s3, t0, t1, t2, t3 = zero, zero, zero, zero, zero, zero, zero, zero
    for k in range(K):
        a, b = zT[n, k], zT[n + 1, k]
        w0, w1, w2, w3 = W[j, k], W[H + j, k], W[2 * H + j, k], W[3 * H + j, k]
        s0 += w0 * a
        s1 += w1 * a
        s2 += w2 * a
        s3 += w3 * a
        t0 += w0 * b
        t1 += w1 * b
        t2 += w2 * b
        t3 += w3 * b
    return s0, s1, s2, s3, t0, t1, t2, t3


@_jit
def _unit_products(W, bias, rows, zT, a, lo, hi):
    """a[q·H + j, n] = W[q·H + j] · zT[n, :K] + bias[rows[n], q·H + j] for the units lo ≤ j < hi."""
    H4, K = W.shape
    H = H4 // 4
    N = a.shape[1]
    for j in range(lo, hi):
        n = 0
        while n + 1 < N:
            s0, s1, s2, s3, t0, t1, t2, t3 = _dots2(W, j, H, zT, n, K)
            r, q = rows[n], rows[n + 1]
            a[j, n], a[H + j, n] = s0 + bias[r, j], s1 + bias[r, H + j]
            a[2 * H + j, n], a[3 * H + j, n] = s2 + bias[r, 2 * H + j], s3 + bias[r, 3 * H + j]
            a[j, n + 1], a[H + j, n + 1] = t0 + bias[q, j], t1 + bias[q, H + j]
            a[2 * H + j, n + 1], a[3 * H + j, n + 1] = t2 + bias[q, 2 * H + j], t3 + bias[q, 3 * H + j]
            n += 2
        if n < N:
            s0, s1, s2, s3 = _dots1(W, j, H, zT, n, K)
            r = rows[n]
            a[j, n], a[H + j, n] = s0 + bias[r, j], s1 + bias[r, H + j]
            a[2 * H + j, n], a[3 * H + j, n] = s2 + bias[r, 2 * H + j], s3 + bias[r, 3 * H + j]


@_jit
def _step_gates(a, c, h, lo, hi):
    """The gate math of `numpy_ref.lstm_forward_gates` over the elements lo:hi of each gate block of
    a batch-minor step, flat: a (4·H·N,) in place, c (H·N,) in place, h (H·N,) written."""
    HN = c.shape[0]
    i, f, g, o = a[lo:hi], a[HN + lo : HN + hi], a[2 * HN + lo : 2 * HN + hi], a[3 * HN + lo : 3 * HN + hi]
    c_u, h_u = c[lo:hi], h[lo:hi]
    half = a.dtype.type(0.5)
    for q in range(hi - lo):
        i[q] = half * _tanh(i[q]) + half
    for q in range(hi - lo):
        f[q] = half * _tanh(f[q]) + half
    for q in range(hi - lo):
        g[q] = _tanh(g[q])
    for q in range(hi - lo):
        o[q] = half * _tanh(o[q]) + half
    for q in range(hi - lo):
        c_u[q] = f[q] * c_u[q] + i[q] * g[q]
    for q in range(hi - lo):
        h_u[q] = o[q] * _tanh(c_u[q])


@_jit(parallel=True)
def _lstm_step_fused(W, bias, rows, z, c, a, zT, parts):
    K, N = z.shape
    H = c.shape[0]
    parts = min(parts, H)
    for n in range(N):  # the bias rows are read unchecked below
        if rows[n] < 0 or rows[n] >= bias.shape[0]:
            raise IndexError("an input id is outside the vocabulary")
    for k in range(K):  # the input, a row per stream (h is rewritten while other units read it)
        for n in range(N):
            zT[n, k] = z[k, n]
    a_flat, c_flat, h_flat = a.reshape(-1), c.reshape(-1), z[K - H :].reshape(-1)
    for t in prange(parts):
        lo, hi = t * H // parts, (t + 1) * H // parts
        _unit_products(W, bias, rows, zT, a, lo, hi)
        _step_gates(a_flat, c_flat, h_flat, lo * N, hi * N)


@_jit
def _lstm_step_gates(a, c, h):
    _step_gates(a, c, h, 0, c.shape[0])


_THREADS: list[int] = []


def _threads() -> int:
    """numba's thread count, read once and then kept by `set_threads`: `numba.get_num_threads()`
    takes a lock (~1 µs, a sampling step calls for it three times). A `numba.set_num_threads`
    made elsewhere is not seen: the units are then still split in this many parts, which fewer
    threads run in turn (the result is the same: each unit's sums are one thread's)."""
    if not _THREADS:
        _THREADS.append(get_num_threads())
    return _THREADS[0]


def set_threads(n: int) -> None:
    """The threads of the sampling kernels' parallel loops (at most numba's NUMBA_NUM_THREADS)."""
    n = max(1, min(int(n), config.NUMBA_NUM_THREADS))
    set_num_threads(n)
    _THREADS[:] = [n]


def get_threads() -> int:
    """The threads the sampling kernels' parallel loops run on now."""
    return _threads()


def default_threads() -> int:
    """numba's own default: NUMBA_NUM_THREADS, the cores unless that variable says otherwise."""
    return config.NUMBA_NUM_THREADS


def lstm_step(
    W: np.ndarray, bias: np.ndarray, rows: np.ndarray, z: np.ndarray, c: np.ndarray,
    a: np.ndarray, gathered: np.ndarray, zT: np.ndarray, tanh_c: np.ndarray,
) -> None:
    """`numpy_ref.lstm_step`: up to FUSED_MAX_N streams fused (product and gates, split between the
    threads), above it OpenBLAS's product and the fused gate math. Arrays C-contiguous."""
    N = z.shape[1]
    if not (z.flags.c_contiguous and c.flags.c_contiguous):
        raise ValueError("lstm_step needs C-contiguous z and c")
    if N <= FUSED_MAX_N:
        _lstm_step_fused(W, bias, rows, z, c, a, zT, _threads())
        return
    H = c.shape[0]
    np.matmul(W, z, out=a)
    if bias.shape[0] == 1:
        a += bias.T
    else:
        np.take(bias, rows, axis=0, out=gathered)
        a += gathered.T
    _lstm_step_gates(a.reshape(-1), c.reshape(-1), z[-H:].reshape(-1))


@_jit(fastmath=_REASSOC)
def _linear1(W, x, b, out):
    for v in range(W.shape[0]):
        s = x.dtype.type(0)
        for k in range(x.shape[0]):
            s += W[v, k] * x[k]
        out[v] = s + b[v]


@_jit(fastmath=_REASSOC)
def _row_dots2(W, v, xT, n, K):
    s, t = xT.dtype.type(0), xT.dtype.type(0)
    for k in range(K):
        w = W[v, k]
        s += w * xT[n, k]
        t += w * xT[n + 1, k]
    return s, t


@_jit(fastmath=_REASSOC)
def _row_dot(W, v, xT, n, K):
    s = xT.dtype.type(0)
    for k in range(K):
        s += W[v, k] * xT[n, k]
    return s


@_jit(parallel=True)
def _linear_fused(W, x, b, out, xT, parts):
    K, N = x.shape
    V = W.shape[0]
    for k in range(K):
        for n in range(N):
            xT[n, k] = x[k, n]
    parts = min(parts, V)
    for t in prange(parts):
        for v in range(t * V // parts, (t + 1) * V // parts):
            n = 0
            while n + 1 < N:
                s, u = _row_dots2(W, v, xT, n, K)
                out[v, n], out[v, n + 1] = s + b[v, 0], u + b[v, 0]
                n += 2
            if n < N:
                out[v, n] = _row_dot(W, v, xT, n, K) + b[v, 0]


def linear_step(W: np.ndarray, x: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """`numpy_ref.linear_step`. Up to FUSED_MAX_N streams in numba — one stream in this thread —
    so that no BLAS thread wakes between two of the fused step's parallel regions (on 2 cores a
    BLAS thread spinning beside numba's threads cost 16 samples ~5× their speed); above it BLAS."""
    N = x.shape[1]
    if N == 1:
        _linear1(W, x[:, 0], b[:, 0], out[:, 0])
    elif N <= FUSED_MAX_N:
        _linear_fused(W, x, b, out, np.empty((N, x.shape[0]), x.dtype), _threads())
    else:
        np.matmul(W, x, out=out)
        out += b


@_jit
def _block_sum(a, lo, n):
    """NumPy's pairwise summation of a[lo : lo + n] for n ≤ 128: eight interleaved sums."""
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@_jit
def _pairwise_sum(a):
    """The sum of a in NumPy's order — its pairwise summation, halving (at multiples of 8) down to
    blocks of ≤ 128 — so that it rounds as `np.sum` does (to the bit where NumPy runs its plain C
    loop). The recursion runs on an explicit stack (numba's disk cache does not load recursive
    functions)."""
    n = a.shape[0]
    if n <= 128:
        return 0.0 + _block_sum(a, 0, n)
    todo = np.empty((64, 3), np.int64)  # (lo, n, children done): depth ≤ log2(n / 128) + 1
    sums = np.empty(64)
    todo[0, 0], todo[0, 1], todo[0, 2] = 0, n, 0
    top, done = 1, 0
    while top > 0:
        top -= 1
        lo, m, ready = todo[top, 0], todo[top, 1], todo[top, 2]
        if m <= 128:
            sums[done] = _block_sum(a, lo, m)
            done += 1
        elif ready:
            done -= 1
            sums[done - 1] = sums[done - 1] + sums[done]  # left + right
        else:
            m2 = m // 2
            m2 -= m2 % 8
            todo[top, 2] = 1
            todo[top + 1, 0], todo[top + 1, 1], todo[top + 1, 2] = lo + m2, m - m2, 0  # right, after
            todo[top + 2, 0], todo[top + 2, 1], todo[top + 2, 2] = lo, m2, 0  # left, first
            top += 3
    return 0.0 + sums[0]


@_jit
def softmax_draw(logits, temperature, u, z, ids):
    """`numpy_ref.softmax_draw` in one pass per row, in the same float64 operations (exp is libm's,
    as NumPy's where it has no SIMD exp of its own: on AVX-512 machines NumPy's may differ in the
    last bit, which changes a draw only when a uniform falls within that bit of a CDF step)."""
    N, V = logits.shape
    for n in range(N):
        row = z[n]
        m = np.float64(logits[n, 0]) / temperature
        for v in range(V):
            x = np.float64(logits[n, v]) / temperature
            row[v] = x
            if x > m or x != x:  # NaN wins, as in np.max
                m = x if m == m else m
        for v in range(V):
            row[v] = math.exp(row[v] - m)
        total = _pairwise_sum(row)
        acc = 0.0
        for v in range(V):
            acc += row[v] / total
            row[v] = acc
        threshold = u[n] * row[V - 1]
        count = 0
        for v in range(V):
            if row[v] <= threshold:
                count += 1
        ids[n] = min(count, V - 1)


def warm_up(dtype: np.dtype) -> None:
    """Compile (or load from the disk cache) the kernels for `dtype` with the argument layouts that
    training passes — contiguous arrays, and h a view of a (B, H+1) buffer — and sampling's
    (sampling loads its kernels on first use: it needs no warm-up, but this compiles them once)."""
    B, H = 2, 3
    a = np.zeros((B, 4 * H), dtype)
    state = [np.zeros((B, H), dtype) for _ in range(4)]
    h = np.zeros((B, H + 1), dtype)[:, :H]
    lstm_forward_gates(a, state[0], state[1], state[2], h)
    lstm_backward_gates(a, state[0], state[1], state[2], state[3], h)
    adam_update(*(np.zeros(4, dtype) for _ in range(4)), 1e-3, 0.9, 0.999, 1e-8, 1)
    for N in (1, 2, FUSED_MAX_N + 1):  # sampling: each path of lstm_step and linear_step
        z, c = np.zeros((2 * H, N), dtype), np.zeros((H, N), dtype)
        scratch = (np.zeros((4 * H, N), dtype), np.zeros((N, 4 * H), dtype), np.zeros((N, 2 * H), dtype), np.zeros((H, N), dtype))
        rows = np.zeros(N, np.intp)
        for bias in (np.zeros((5, 4 * H), dtype), np.zeros((1, 4 * H), dtype)):
            lstm_step(np.zeros((4 * H, H), dtype), bias, rows, z[H:], c, *scratch)
            lstm_step(np.zeros((4 * H, 2 * H), dtype), bias, rows, z, c, *scratch)
        linear_step(np.zeros((5, H), dtype), z[H:], np.zeros((5, 1), dtype), np.zeros((5, N), dtype))
