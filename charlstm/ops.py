"""Building blocks shared by every recurrent cell and the output head.

Inputs to the first layer are character ids: multiplying a one-hot vector by W^T is picking a row
of W^T, so the input projection of a whole window is one gather (`embed`) and its weight gradient
is a sum of rows grouped by id (`embed_backward`). Deeper layers take float inputs and use GEMMs.
"""

from __future__ import annotations

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
    logits /= total[:, None]  # p
    logits[rows, y] -= 1.0
    logits /= N
    return loss, logits


def cross_entropy_sum(logits: np.ndarray, y: np.ndarray) -> float:
    """Summed negative log-likelihood of y under softmax(logits) (N, V); logits are overwritten."""
    rows = np.arange(logits.shape[0])
    logits -= logits.max(axis=1, keepdims=True)
    target = logits[rows, y].astype(np.float64)
    np.exp(logits, out=logits)
    return float(np.sum(np.log(logits.sum(axis=1, dtype=np.float64)) - target))
