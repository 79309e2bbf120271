"""The head of a sampling step and the draw, compiled with numba: `numpy_ref.linear_step` (split
between the threads up to FUSED_MAX_N streams, as the LSTM's fused step) and `softmax_draw` (one
pass per row, in NumPy's order of summation)."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from charlstm.nn.kernels.numba_jit import REASSOC, get_threads, jit
from charlstm.nn.kernels.numba_lstm_math import FUSED_MAX_N


@jit(fastmath=REASSOC)
def _linear1(W, x, b, out):
    for v in range(W.shape[0]):
        s = x.dtype.type(0)
        for k in range(x.shape[0]):
            s += W[v, k] * x[k]
        out[v] = s + b[v]


@jit(fastmath=REASSOC)
def _row_dots2(W, v, xT, n, K):
    s, t = xT.dtype.type(0), xT.dtype.type(0)
    for k in range(K):
        w = W[v, k]
        s += w * xT[n, k]
        t += w * xT[n + 1, k]
    return s, t


@jit(fastmath=REASSOC)
def _row_dot(W, v, xT, n, K):
    s = xT.dtype.type(0)
    for k in range(K):
        s += W[v, k] * xT[n, k]
    return s


@jit(parallel=True)
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
        _linear_fused(W, x, b, out, np.empty((N, x.shape[0]), x.dtype), get_threads())
    else:
        np.matmul(W, x, out=out)
        out += b


@jit
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


@jit
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


@jit
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
