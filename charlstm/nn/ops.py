"""Building blocks shared by every recurrent cell and the output head.

Every cell starts a step from the input projection xa_t = W_ih x_t, which does not depend on the
recurrence, so it is computed for the whole window before the cell's time loop (`project`) and
its gradients after the cell's backward (`project_backward`) — once, here, for every cell.
Inputs to the first layer are character ids: multiplying a one-hot vector by W^T is picking a row
of W^T, so the projection of a whole window is one gather (`embed`) and its weight gradient is a
sum of rows grouped by id (`embed_backward`). Deeper layers take float inputs and use GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def is_ids(x: np.ndarray) -> bool:
    """True when x holds character ids (integer dtype) rather than float activations."""
    return x.dtype.kind in "iu"


def embed(x: np.ndarray, table: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Rows of `table` (V, N) picked by the ids x (T, B) into out (T, B, N): one_hot(x) @ table."""
    return np.take(table, x, axis=0, out=out, mode="clip")


def one_hot_rows(ids: np.ndarray, out: np.ndarray) -> np.ndarray:
    """one_hot(ids) written into out (N, V), which is returned: ids (N,) pick the 1 of each row."""
    out.fill(0)
    out[np.arange(len(ids)), ids] = 1
    return out


ONE_HOT_MAX_V = 512  # up to this vocabulary size, embed_backward is a one-hot GEMM


def embed_backward(x: np.ndarray, dout: np.ndarray, V: int, onehot: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `embed` w.r.t. the table: one_hot(x)^T @ dout, shape (V, N).

    For a small vocabulary the one-hot GEMM is fastest (`onehot`, (T*B, V), is a reusable buffer
    for it); for a large one (where a (T*B, V) one-hot block would be huge) the rows of dout are
    summed per id after a sort.
    """
    ids = x.reshape(-1)
    rows = dout.reshape(len(ids), -1)  # (T*B, N)
    if V <= ONE_HOT_MAX_V:
        if onehot is None:
            onehot = np.empty((len(ids), V), dtype=rows.dtype)  # (T*B, V), one window only
        return one_hot_rows(ids, onehot).T @ rows
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    table_grad = np.zeros((V, rows.shape[1]), dtype=rows.dtype)  # (V, N)
    table_grad[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return table_grad


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e^−a), as written (the cells' plain steps): a new array. Where e^−a
    overflows to ∞, σ is 0, as it should be."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """σ(a) in place, as ½ tanh(a/2) + ½: one transcendental pass and no overflow for large |a|."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def scaled_transpose(W: np.ndarray, scale: np.ndarray | None, out: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """out = (scale[:, None] ⊙ W)^T (or W^T when scale is None) for W (G, n), by way of `pad`
    (G, ≥ n+16). Reading the columns of W itself is several times slower when n is a power of
    two (a column's elements then share cache sets): 5 ms instead of 1.5 ms for a 2048 × 512
    matrix here; the padded copy breaks that stride."""
    P = pad[:, : W.shape[1]]
    np.copyto(P, W)
    if scale is None:
        np.copyto(out, P.T)
    else:
        np.multiply(P.T, scale, out=out)
    return out


@dataclass
class Projection:
    """One layer's input projection over a window, and the buffers it reuses from window to window.

    x: (T, B) ids or (T, B, D) floats; W_ih (G, D); `table` (D, G) is (s ⊙ W_ih)^T — for ids, the
    rows a one-hot input picks. `xa` (T, B, G) is handed to the cell, which may overwrite it (the
    LSTM keeps its gates there and then their gradients)."""

    x: np.ndarray
    W_ih: np.ndarray
    table: np.ndarray  # (D, G)
    pad: np.ndarray  # (G, D + 16) scratch for the transpose
    xa: np.ndarray  # (T, B, G)
    dW_ih: np.ndarray | None = None  # (G, D), made by the first backward
    dx: np.ndarray | None = None  # (T, B, D) for float input, ditto
    onehot: np.ndarray | None = None  # (T*B, V) one-hot rows for dW_ih of ids, ditto


def _projection_for(old: Projection | None, x: np.ndarray, W_ih: np.ndarray) -> Projection:
    T, B = x.shape[:2]
    G, D = W_ih.shape
    dtype = W_ih.dtype
    if old is not None and old.xa.shape == (T, B, G) and old.table.shape == (D, G) and old.xa.dtype == dtype:
        old.x, old.W_ih = x, W_ih
        if old.dx is not None and old.dx.shape[2:] != x.shape[2:]:
            old.dx = None
        return old
    return Projection(x, W_ih, np.empty((D, G), dtype), np.empty((G, D + 16), dtype), np.empty((T, B, G), dtype))


def project(
    x: np.ndarray, W_ih: np.ndarray, scale: np.ndarray | None = None, proj: Projection | None = None
) -> Projection:
    """xa = x (s ⊙ W_ih)^T for every step of the window: (T, B, G), in `proj.xa`.

    x: (T, B) ids (one-hot input, D = V: a row gather) or (T, B, D) floats (one GEMM over all T·B
    rows); W_ih (G, D); scale: the cell's per-row factor on its pre-activations (the LSTM's
    sigmoid-through-tanh trick), or None. Pass the previous window's Projection to reuse buffers."""
    proj = _projection_for(proj, x, W_ih)
    scaled_transpose(W_ih, scale, proj.table, proj.pad)  # (D, G)
    if is_ids(x):
        embed(x, proj.table, out=proj.xa)
    else:
        T, B, D = x.shape
        np.matmul(x.reshape(T * B, D), proj.table, out=proj.xa.reshape(T * B, -1))
    return proj


def project_backward(proj: Projection, dxa: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradients of the projection from dxa (T, B, G), the gradient of W_ih x (unscaled): dW_ih
    (G, D) and dx (T, B, D) for float input (None for ids). Both are buffers of `proj`."""
    x, W_ih = proj.x, proj.W_ih
    G, D = W_ih.shape
    T, B = x.shape[:2]
    dA = dxa.reshape(T * B, G)
    if proj.dW_ih is None:
        proj.dW_ih = np.empty((G, D), dxa.dtype)
    if is_ids(x):
        if D <= ONE_HOT_MAX_V and proj.onehot is None:
            proj.onehot = np.empty((T * B, D), dxa.dtype)
        np.copyto(proj.dW_ih, embed_backward(x, dA, D, proj.onehot).T)
        return proj.dW_ih, None
    np.matmul(dA.T, x.reshape(T * B, D), out=proj.dW_ih)
    if proj.dx is None:
        proj.dx = np.empty((T, B, D), dxa.dtype)
    np.matmul(dA, W_ih, out=proj.dx.reshape(T * B, D))
    return proj.dW_ih, proj.dx


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood (nats per character) of targets y under softmax(logits), and
    its gradient w.r.t. the logits (the fused `p - onehot(y)`, divided by the number of rows).

    logits: (N, V) float, overwritten by the gradient; y: (N,) ids.
    """
    N = logits.shape[0]
    rows = np.arange(N)
    logits -= logits.max(axis=1, keepdims=True)
    target = logits[rows, y]  # (N,) shifted logit of each target
    np.exp(logits, out=logits)
    total = logits.sum(axis=1)  # (N,)
    loss = float(np.mean(np.log(total) - target))
    _softmax_grad(logits, total, y)
    return loss, logits


def softmax_cross_entropy_rows(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`softmax_cross_entropy` with the loss of every row kept: (N,) nats in float64 (summed in
    float64, as `cross_entropy_sum`), and the same gradient written over `logits` (N, V)."""
    rows = np.arange(logits.shape[0])
    logits -= logits.max(axis=1, keepdims=True)
    target = logits[rows, y].astype(np.float64)
    np.exp(logits, out=logits)
    total = logits.sum(axis=1, dtype=np.float64)  # (N,)
    losses = np.log(total) - target
    _softmax_grad(logits, total.astype(logits.dtype), y)
    return losses, logits


def _softmax_grad(e: np.ndarray, total: np.ndarray, y: np.ndarray) -> None:
    """e (N, V) = exp(shifted logits) becomes (p − onehot(y)) / N in place; total (N,) its row sums."""
    e /= total[:, None]  # p
    e[np.arange(e.shape[0]), y] -= 1.0
    e /= e.shape[0]


def cross_entropy_sum(logits: np.ndarray, y: np.ndarray) -> float:
    """Summed negative log-likelihood of y under softmax(logits) (N, V); logits are overwritten."""
    rows = np.arange(logits.shape[0])
    logits -= logits.max(axis=1, keepdims=True)
    target = logits[rows, y].astype(np.float64)
    np.exp(logits, out=logits)
    return float(np.sum(np.log(logits.sum(axis=1, dtype=np.float64)) - target))
