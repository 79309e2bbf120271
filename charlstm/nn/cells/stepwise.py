"""A cell's fast path made of its plain `step` and `step_back`: for a new cell that has no fast
path of its own yet. It is right at once (it is the reference, run over a window) and slow (a
Python loop of small NumPy calls per step, allocating as it goes). A cell module binds it to its
steps, and is then a whole `Cell`:

    input_scale, prepare, step_work = stepwise.input_scale, stepwise.prepare, stepwise.step_work
    forward = functools.partial(stepwise.forward, step)
    backward = functools.partial(stepwise.backward, step_back)
    activations = functools.partial(stepwise.activations, QUANTITIES)
    step_into = functools.partial(stepwise.step_into, step)

The cell computes with W_ih x + b_ih, W_hh and b_hh as `step` takes them (no `input_scale`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from charlstm.nn.cells import StepGrads

Step = Callable[..., tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]]
StepBack = Callable[..., StepGrads]


@dataclass
class Cache:
    """One window's steps, for backward and `activations`."""

    W_hh: np.ndarray  # (G, H)
    xa: np.ndarray  # (T, B, G) the buffer forward was given; backward writes dxa into it
    records: list[dict[str, np.ndarray]]  # the plain step's record of each step
    states: int  # how many state tensors the cell has


def input_scale(H: int, dtype: np.dtype) -> None:
    return None


def forward(
    step: Step,
    xa: np.ndarray,
    state0: tuple[np.ndarray, ...],
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    cache: Cache | None = None,
    kernels: Any = None,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], Cache]:
    """`step` T times from state0, given xa = W_ih x (T, B, G): h_seq (T, B, H), the final state
    and the cache (a new one every window)."""
    state, records, hs = tuple(state0), [], []
    for t in range(xa.shape[0]):
        state, rec = step(xa[t] + b_ih, state, W_hh, b_hh)
        records.append(rec)
        hs.append(state[0])
    return np.stack(hs), tuple(s.copy() for s in state), Cache(W_hh, xa, records, len(state0))


def backward(
    step_back: StepBack,
    dh_seq: np.ndarray,
    cache: Cache,
    dstateT: tuple[np.ndarray | None, ...] | None = None,
    kernels: Any = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[np.ndarray, ...]]:
    """`step_back` from step T to 1: dxa (T, B, G) (the cache's xa buffer), {"weight_hh",
    "bias_ih", "bias_hh"} summed over the steps, and dstate0."""
    T, B, H = dh_seq.shape
    dstate = [np.zeros((B, H), dh_seq.dtype) if d is None else d for d in (dstateT or (None,) * cache.states)]
    dW_hh, db_hh = np.zeros_like(cache.W_hh), np.zeros(cache.W_hh.shape[0], cache.W_hh.dtype)
    for t in reversed(range(T)):
        g = step_back((dstate[0] + dh_seq[t], *dstate[1:]), cache.records[t], cache.W_hh)
        cache.xa[t] = g.dxa
        dW_hh += g.dW_hh
        db_hh += g.db_hh
        dstate = list(g.dstate_prev)
    dxa = cache.xa
    grads = {"weight_hh": dW_hh, "bias_ih": dxa.reshape(T * B, -1).sum(axis=0), "bias_hh": db_hh}
    return dxa, grads, tuple(dstate)


def activations(quantities: tuple[str, ...], cache: Cache) -> dict[str, np.ndarray]:
    """Every quantity of the last forward's records, (T, B, H) each (fresh arrays)."""
    return {name: np.stack([rec[name] for rec in cache.records]) for name in quantities}


@dataclass(frozen=True)
class Prepared:
    """A layer's weights, as `step` takes them."""

    W_ih: np.ndarray  # (G, D)
    W_hh: np.ndarray  # (G, H)
    b_ih: np.ndarray  # (G,)
    b_hh: np.ndarray  # (G,)


def prepare(W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, ids: bool) -> Prepared:
    return Prepared(W_ih.copy(), W_hh.copy(), b_ih.copy(), b_hh.copy())


def step_work(H: int, N: int, dtype: np.dtype) -> None:
    return None


def step_into(
    step: Step,
    z: np.ndarray,
    rest: tuple[np.ndarray, ...],
    p: Prepared,
    work: None,
    ids: np.ndarray | None = None,
    kernels: Any = None,
) -> None:
    """`step` for N streams, batch-minor and in place: the last H rows of z (D+H, N) — or all of
    it, with ids (N,) as the input — become the new h, and `rest` ((H, N) each) the other state."""
    H = p.W_hh.shape[1]
    h = z[-H:]
    x_part = p.W_ih[:, ids] if ids is not None else p.W_ih @ z[:-H]  # (G, N): W_ih x, one-hot x picking a column
    state, _ = step(x_part.T + p.b_ih, (h.T, *(s.T for s in rest)), p.W_hh, p.b_hh)
    h[...] = state[0].T
    for s, new in zip(rest, state[1:]):
        s[...] = new.T
