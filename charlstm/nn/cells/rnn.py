"""The vanilla (Elman) RNN cell, as torch.nn.RNN(nonlinearity="tanh"): its plain step, a window
forward and backward, and a step in place for sampling.

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

Backward through time multiplies the gradient by W_hh^T diag(1 − h_t²) at every step back:

    da_t = (dh_t + W_hh^T da_{t+1}) ⊙ (1 − h_t²)

so over k steps it is scaled by a product of k such matrices. With |tanh'| ≤ 1 and a W_hh of
spectral radius below 1 the product shrinks geometrically — the vanishing gradient that the
LSTM's additive cell state avoids (`charlstm gradients` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from charlstm.nn.cells import StepGrads
from charlstm.nn.cells.common import hidden_with_ones, recurrent_grads, recurrent_operand, uniform_layer

NUM_GATES = 1
STATE_NAMES = ("h",)
QUANTITIES = ("h",)
SIGMOID: frozenset[str] = frozenset()
GATES = {"h": (-0.9, 0.9)}  # no gates: `charlstm gates` counts h pinned near ±1, where tanh' < 0.2
TORCH = ("RNN", {"nonlinearity": "tanh"})  # torch.nn.RNN


def step(
    xa: np.ndarray, state: tuple[np.ndarray, ...], W_hh: np.ndarray, b_hh: np.ndarray
) -> tuple[tuple[np.ndarray], dict[str, np.ndarray]]:
    """One step as written above (the reference of `forward` and `step_into`): xa (B, H) =
    W_ih x + b_ih, state = (h,), (B, H). Returns (h,) and the step's record."""
    (h_prev,) = state
    h = np.tanh(xa + h_prev @ W_hh.T + b_hh)
    return (h,), {"h": h, "h_prev": h_prev}


def step_back(dstate: tuple[np.ndarray, ...], rec: dict[str, np.ndarray], W_hh: np.ndarray) -> StepGrads:
    """Back through `step` (the reference of `backward`): dstate = (dh,)."""
    (dh,) = dstate
    da = dh * (1 - rec["h"] ** 2)
    return StepGrads(da, da.T @ rec["h_prev"], da.sum(axis=0), (da @ W_hh,), (dh,))


def init_layer(
    rng: np.random.Generator, D: int, H: int, first: bool, dtype: type = np.float32
) -> dict[str, np.ndarray]:
    return uniform_layer(rng, H, D, H, first, dtype)


def input_scale(H: int, dtype: np.dtype) -> None:
    return None


@dataclass
class Cache:
    """Reusable buffers of one window. `A` is the projection's xa buffer; backward overwrites it
    with da. `h` carries a column of ones (see `common.recurrent_operand`)."""

    W_hh: np.ndarray  # (H, H)
    W_rec: np.ndarray  # (H+1, H) [W_hh^T; b_ih + b_hh]
    A: np.ndarray  # (T, B, H)
    h: np.ndarray  # (T+1, B, H+1), h[0] = [h0, 1]
    pad: np.ndarray  # (H, H + 16)
    tmp: np.ndarray  # (B, H) scratch
    grads: dict[str, np.ndarray] | None = None
    dWb: np.ndarray | None = None  # (H, H+1)


def _cache_for(old: Cache | None, xa: np.ndarray, W_hh: np.ndarray) -> Cache:
    T, B, H = xa.shape
    if old is not None and old.h.shape == (T + 1, B, H + 1) and old.h.dtype == W_hh.dtype:
        old.A, old.W_hh = xa, W_hh
        return old
    dtype = W_hh.dtype
    W_rec, pad, tmp = np.empty((H + 1, H), dtype), np.empty((H, H + 16), dtype), np.empty((B, H), dtype)
    return Cache(W_hh, W_rec, xa, hidden_with_ones(T, B, H, dtype), pad, tmp)


def forward(
    xa: np.ndarray,
    state0: tuple[np.ndarray, ...],
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    cache: Cache | None = None,
    kernels: object = None,
) -> tuple[np.ndarray, tuple[np.ndarray], Cache]:
    """T steps from state0 = (h0,), (B, H), given xa = W_ih x_t (T, B, H)."""
    (h0,) = state0
    T, _B, H = xa.shape
    cache = _cache_for(cache, xa, W_hh)
    A, h = cache.A, cache.h
    recurrent_operand(W_hh, b_ih + b_hh, None, cache.W_rec, cache.pad)  # (H+1, H)
    h[0, :, :H] = h0
    for t in range(T):
        a = A[t]  # (B, H)
        a += np.matmul(h[t], cache.W_rec, out=cache.tmp)  # W_ih x_t + W_hh h_{t-1} + b
        np.tanh(a, out=h[t + 1, :, :H])
    return h[1:, :, :H], (h[T, :, :H].copy(),), cache


def backward(
    dh_seq: np.ndarray, cache: Cache, dstateT: tuple[np.ndarray | None, ...] | None = None, kernels: object = None
) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[np.ndarray]]:
    """da (T, B, H) (the cache's A buffer), {"weight_hh", "bias_ih", "bias_hh"}, (dh0,)."""
    A, h = cache.A, cache.h
    T, B, H = A.shape
    dhT = dstateT[0] if dstateT is not None else None
    dh_next = np.zeros((B, H), A.dtype) if dhT is None else dhT.astype(A.dtype, copy=True)
    for t in reversed(range(T)):
        da = A[t]  # (B, H)
        ht = h[t + 1, :, :H]
        np.multiply(ht, ht, out=da)
        np.subtract(1, da, out=da)  # tanh' = 1 − h²
        dh_next += dh_seq[t]
        da *= dh_next
        np.matmul(da, cache.W_hh, out=dh_next)
    return A, recurrent_grads(A, h, cache), (dh_next,)


def activations(cache: Cache) -> dict[str, np.ndarray]:
    """A copy of the output h of the last forward, (T, B, H)."""
    H = cache.A.shape[2]
    return {"h": cache.h[1:, :, :H].copy()}


@dataclass(frozen=True)
class Prepared:
    """Stepping layout: W = [W_ih | W_hh] (H, D+H) and b (H, 1) for float input; for ids, `table`
    (V, H) = W_ih^T + b (the column a one-hot input picks, bias folded in) and W = W_hh."""

    W: np.ndarray
    b: np.ndarray | None
    table: np.ndarray | None


def prepare(W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, ids: bool) -> Prepared:
    b = b_ih + b_hh  # (H,)
    if ids:
        return Prepared(W_hh.copy(), None, W_ih.T + b)
    return Prepared(np.concatenate([W_ih, W_hh], axis=1), b[:, None].copy(), None)


@dataclass
class StepWork:
    a: np.ndarray  # (H, N)
    rows: np.ndarray  # (N, H) gathered input rows (id input)


def step_work(H: int, N: int, dtype: np.dtype) -> StepWork:
    return StepWork(np.empty((H, N), dtype), np.empty((N, H), dtype))


def step_into(
    z: np.ndarray,
    rest: tuple[np.ndarray, ...],
    p: Prepared,
    work: StepWork,
    ids: np.ndarray | None = None,
    kernels: Any = None,
) -> None:
    """h ← tanh(W [x; h] + b), in place in the last H rows of z (H, N) or (D+H, N)."""
    H = p.W.shape[0]
    h = z[-H:]
    a = np.matmul(p.W, z, out=work.a)  # (H, N)
    if ids is None:
        a += p.b
    else:
        assert p.table is not None  # prepared for ids
        np.take(p.table, ids, axis=0, out=work.rows)
        a += work.rows.T
    np.tanh(a, out=h)
