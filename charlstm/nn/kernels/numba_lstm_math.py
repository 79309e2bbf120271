"""The LSTM's gate math compiled with numba (training's forward and backward, and sampling's fused
step): `numpy_ref`'s lstm_forward_gates, lstm_backward_gates and lstm_step, one pass over the block.

Each kernel loops over rows, and within a row runs a few short loops that LLVM vectorises, each
touching few arrays and writing a row at one offset only (with more, LLVM gives up on its runtime
alias checks and the loop runs at scalar speed; `bench/kernels.py` guards that). tanh is a rational
approximation that vectorises (the libm call does not): Eigen's for float32 (≤ 7 ulp), Cephes' for
float64 (≤ 1.5 ulp); NaN stays NaN.

The sampling step (`lstm_step`) runs on several threads (`parallel=True`, numba's threading layer,
NUMBA_NUM_THREADS of them): each owns a share of the hidden units and computes their gate rows'
dot products — reassociated (`fastmath` reassoc + contract only) so that they vectorise — and then
their gate math. Like any 2-thread code on a 2-core machine it slows sharply when another process
keeps one core busy (each parallel region waits for both threads).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload

from charlstm.nn.kernels.numba_jit import REASSOC, get_threads, jit


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
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = map(
    _F,
    (
        4.89352455891786e-03,
        6.37261928875436e-04,
        1.48572235717979e-05,
        5.12229709037114e-08,
        -8.60467152213735e-11,
        2.00018790482477e-13,
        -2.76076847742355e-16,
    ),
)
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


@jit
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


@jit
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


@jit(fastmath=REASSOC)
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


@jit(fastmath=REASSOC)
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


@jit
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


@jit
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


@jit(parallel=True)
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


@jit
def _lstm_step_gates(a, c, h):
    _step_gates(a, c, h, 0, c.shape[0])


def lstm_step(
    W: np.ndarray,
    bias: np.ndarray,
    rows: np.ndarray,
    z: np.ndarray,
    c: np.ndarray,
    a: np.ndarray,
    gathered: np.ndarray,
    zT: np.ndarray,
    tanh_c: np.ndarray,
) -> None:
    """`numpy_ref.lstm_step`: up to FUSED_MAX_N streams fused (product and gates, split between the
    threads), above it OpenBLAS's product and the fused gate math. Arrays C-contiguous."""
    N = z.shape[1]
    if not (z.flags.c_contiguous and c.flags.c_contiguous):
        raise ValueError("lstm_step needs C-contiguous z and c")
    if N <= FUSED_MAX_N:
        _lstm_step_fused(W, bias, rows, z, c, a, zT, get_threads())
        return
    H = c.shape[0]
    np.matmul(W, z, out=a)
    if bias.shape[0] == 1:
        a += bias.T
    else:
        np.take(bias, rows, axis=0, out=gathered)
        a += gathered.T
    _lstm_step_gates(a.reshape(-1), c.reshape(-1), z[-H:].reshape(-1))
