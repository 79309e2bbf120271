"""The per-step LSTM gate math, the Adam update and the sampling step in NumPy: the readable
reference and the fallback.

Shapes: B batch rows, H hidden units; a (B, 4H) gate block holds i, f, g, o in blocks of H. The
pre-activations arrive scaled, â = s ⊙ a with s = (½, ½, 1, ½) per block, so that one tanh over the
whole block gives all four gates: σ(a) = ½ tanh(â) + ½ and g = tanh(a_g). See `charlstm.nn.cells.lstm`.
"""

from __future__ import annotations

import math

import numpy as np


def lstm_forward_gates(a: np.ndarray, c_prev: np.ndarray, c: np.ndarray, tanh_c: np.ndarray, h: np.ndarray) -> None:
    """One step's gate math, in place.

    a (B, 4H): the scaled pre-activations â in, the activations i, f, g, o out.
    c_prev (B, H): c_{t-1}. Written: c (B, H) = f ⊙ c_{t-1} + i ⊙ g, tanh_c (B, H) = tanh(c),
    h (B, H) = o ⊙ tanh(c); h may be a strided view (the first H columns of a (B, H+1) buffer).
    """
    H = c.shape[1]
    np.tanh(a, out=a)
    # σ(x) = ½ tanh(x/2) + ½ on the i, f and o blocks, with scalar operands (cheaper than
    # broadcasting a (4H,) vector over the whole block); the g block is tanh(a_g) already
    i_f, o = a[:, : 2 * H], a[:, 3 * H :]
    i_f *= 0.5
    i_f += 0.5
    o *= 0.5
    o += 0.5
    i, f, g = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H]
    ig = tanh_c  # scratch until tanh(c) is written
    np.multiply(f, c_prev, out=c)
    np.multiply(i, g, out=ig)
    c += ig
    np.tanh(c, out=tanh_c)
    np.multiply(o, tanh_c, out=h)


def lstm_backward_gates(
    gates: np.ndarray,
    dh: np.ndarray,
    dc_next: np.ndarray,
    c_prev: np.ndarray,
    tanh_c: np.ndarray,
    h: np.ndarray,
    work: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> None:
    """One step of backpropagation through the gates, in place.

    gates (B, 4H): the activations i, f, g, o in, the pre-activation gradients da out (w.r.t. the
    unscaled a). dh (B, H): the whole gradient arriving at h_t (from above and from step t+1).
    dc_next (B, H): the gradient arriving at c_t from c_{t+1} in; dc_t ⊙ f, the gradient passed on
    to c_{t-1}, out. c_prev, tanh_c, h (B, H): c_{t-1}, tanh(c_t), h_t of the forward step (h may
    be a strided view). work: scratch (B, 4H), (B, 4H), (B, H), so the time loop allocates
    nothing (made here when not given).
    """
    H = dh.shape[1]
    dG, deriv, dc = work if work is not None else (np.empty_like(gates), np.empty_like(gates), np.empty_like(dh))
    i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    di, df, dg, do = dG[:, :H], dG[:, H : 2 * H], dG[:, 2 * H : 3 * H], dG[:, 3 * H :]
    # dc = dh ⊙ o ⊙ (1 − tanh²c) + dc_next, with o ⊙ (1 − tanh²c) = o − h ⊙ tanh c
    np.multiply(h, tanh_c, out=dc)
    np.subtract(o, dc, out=dc)
    dc *= dh
    dc += dc_next
    np.multiply(dc, g, out=di)
    np.multiply(dc, c_prev, out=df)
    np.multiply(dc, i, out=dg)
    np.multiply(dh, tanh_c, out=do)
    np.multiply(dc, f, out=dc_next)
    # through the activations: σ' = σ (1 − σ), tanh' = 1 − g² = (1 − g)(1 + g)
    np.subtract(1, gates, out=deriv)
    g += 1
    deriv *= gates
    np.multiply(dG, deriv, out=gates)


def adam_update(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    t: int,
) -> None:
    """Adam with PyTorch's bias correction, in place, for the t-th step (t ≥ 1):
    m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;  p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε).
    p, g, m, v: arrays of one shape; g is used as scratch (garbage afterwards)."""
    # m ← β1 m + (1 − β1) g, in place as m ← β1 (m − g) + g; likewise v with g²
    m -= g
    m *= beta1
    m += g
    np.multiply(g, g, out=g)
    v -= g
    v *= beta2
    v += g
    denom = g  # reuse the gradient's memory
    np.sqrt(v, out=denom)
    denom *= 1.0 / math.sqrt(1.0 - beta2**t)
    denom += eps
    np.divide(m, denom, out=denom)
    denom *= lr / (1.0 - beta1**t)
    p -= denom


# ------------------------------------------------------------------------------------ sampling


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
    """One sampling step of an LSTM layer for N streams, in place, batch-minor.

    W (4H, K): the scaled weights s ⊙ W applied to z; bias (R, 4H): scaled bias rows, of which
    stream n adds row rows[n] (the id table, with the input's column and bias folded in, for the
    first layer; one row s ⊙ b, rows all 0, above it). z (K, N): the input stacked on h, its last
    H rows overwritten with the new h; c (H, N): c_{t-1} in, c_t out. Scratch: a (4H, N),
    gathered (N, 4H), zT (N, ≥ K) (unused here), tanh_c (H, N). z and c C-contiguous.

    The gate math is `lstm_forward_gates`' (the same operations, to the bit), on the contiguous
    (H, N) gate blocks of a (4H, N).
    """
    H = c.shape[0]
    if not (z.flags.c_contiguous and c.flags.c_contiguous):
        raise ValueError("lstm_step needs C-contiguous z and c")
    if z.shape[1] == 1:  # a matrix-vector product (BLAS's gemv, ~5% faster than a one-column gemm)
        np.matmul(W, z[:, 0], out=a[:, 0])  # (4H,): â = s ⊙ (W_ih x + W_hh h)
        a[:, 0] += bias[rows[0]]
    else:
        np.matmul(W, z, out=a)  # (4H, N)
        if bias.shape[0] == 1:
            a += bias.T
        else:
            np.take(bias, rows, axis=0, out=gathered)  # (N, 4H): s ⊙ (W_ih[:, x] + b)
            a += gathered.T
    # `lstm_forward_gates`' math, in fewer passes on these contiguous blocks: × ½ + ½ over the whole
    # of a once g is saved (two passes instead of four over its i, f and o blocks)
    g = tanh_c  # scratch until tanh(c) is written
    np.tanh(a, out=a)
    np.copyto(g, a[2 * H : 3 * H])
    a *= 0.5
    a += 0.5  # rows of i, f, o now hold σ
    c *= a[H : 2 * H]  # f ⊙ c_{t-1}
    g *= a[:H]  # i ⊙ g
    c += g
    np.tanh(c, out=tanh_c)
    np.multiply(a[3 * H :], tanh_c, out=z[-H:])  # h = o ⊙ tanh(c)


def linear_step(W: np.ndarray, x: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out (V, N) = W (V, H) @ x (H, N) + b (V, 1): the head of a sampling step."""
    if x.shape[1] == 1:
        np.matmul(W, x[:, 0], out=out[:, 0])
    else:
        np.matmul(W, x, out=out)
    out += b


def softmax_draw(logits: np.ndarray, temperature: float, u: np.ndarray, z: np.ndarray, ids: np.ndarray) -> None:
    """Draw one id per row of logits (N, V) from softmax(logits / temperature), by inverse CDF with
    the uniform u[n] in [0, 1): ids[n] = min(#{v: cdf[n, v] ≤ u[n] · cdf[n, V-1]}, V − 1), in float64.
    The arithmetic, in order, of `generate.draw(generate.filter_probs(logits, temperature), rng)`
    when u is `rng.random(N)`: the same ids. z (N, V) float64 scratch; u is overwritten."""
    N, V = logits.shape
    if N == 1:  # the same operations on 1-D arrays, which cost NumPy less per call
        row = z[0]
        np.divide(logits[0], temperature, out=row, dtype=np.float64)
        row -= row.max()
        np.exp(row, out=row)
        row /= row.sum()
        np.cumsum(row, out=row)
        ids[0] = min(np.count_nonzero(row <= u[0] * row[-1]), V - 1)
        return
    np.divide(logits, temperature, out=z, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)  # the probabilities
    np.cumsum(z, axis=1, out=z)  # the CDF
    u *= z[:, -1]
    np.minimum(np.count_nonzero(z <= u[:, None], axis=1), V - 1, out=ids)
