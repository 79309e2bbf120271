"""The GRU cell, exactly as torch.nn.GRU computes it (gate order r, z, n): its plain step, a
window forward and backward, and a step in place for sampling.

    r   = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
    z   = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
    n   = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t-1} + b_hn))  candidate
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}  =  n + z ⊙ (h_{t-1} − n)

Unlike the LSTM, b_in and b_hn cannot be merged (r multiplies only the recurrent part), so the
input bias is added to the projection and the recurrent term hh_t = W_hh h_{t-1} + b_hh is
computed on its own, with hh_n kept for backward. Backward, with dh the total gradient at h_t:

    dn = dh ⊙ (1 − z)      dz = dh ⊙ (h_{t-1} − n)      da_n = dn ⊙ (1 − n²)
    dr = da_n ⊙ hh_n       da_r = dr ⊙ r(1 − r)         da_z = dz ⊙ z(1 − z)
    d(W_ih x + b_ih) = [da_r, da_z, da_n]      d(hh) = [da_r, da_z, r ⊙ da_n]
    dh_{t-1} = dh ⊙ z + W_hh^T d(hh)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from charlstm.nn.cells import SIGMOID_SATURATION, StepGrads
from charlstm.nn.cells.common import hidden_with_ones, recurrent_grads, recurrent_operand, uniform_layer
from charlstm.nn.ops import sigmoid, sigmoid_

NUM_GATES = 3
STATE_NAMES = ("h",)
QUANTITIES = ("h", "r", "z", "n")
SIGMOID = frozenset("rz")
GATES = {"r": SIGMOID_SATURATION, "z": SIGMOID_SATURATION}
TORCH: tuple[str, dict[str, object]] = ("GRU", {})  # torch.nn.GRU


def step(
    xa: np.ndarray, state: tuple[np.ndarray, ...], W_hh: np.ndarray, b_hh: np.ndarray
) -> tuple[tuple[np.ndarray], dict[str, np.ndarray]]:
    """One step as written above (the reference of `forward` and `step_into`): xa (B, 3H) =
    W_ih x + b_ih, state = (h,), (B, H). Returns (h,) and the step's record."""
    (h_prev,) = state
    x_r, x_z, x_n = np.split(xa, 3, axis=1)
    h_r, h_z, h_n = np.split(h_prev @ W_hh.T + b_hh, 3, axis=1)
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    h = (1 - z) * n + z * h_prev
    return (h,), {"h": h, "r": r, "z": z, "n": n, "h_prev": h_prev, "hn": h_n}


def step_back(dstate: tuple[np.ndarray, ...], rec: dict[str, np.ndarray], W_hh: np.ndarray) -> StepGrads:
    """Back through `step` (the reference of `backward`): dstate = (dh,)."""
    (dh,) = dstate
    r, z, n, h_prev = rec["r"], rec["z"], rec["n"], rec["h_prev"]
    da_n = dh * (1 - z) * (1 - n**2)
    da_r = da_n * rec["hn"] * r * (1 - r)
    da_z = dh * (h_prev - n) * z * (1 - z)
    dhh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H) the gradient of W_hh h_{t-1} + b_hh
    dxa = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
    return StepGrads(dxa, dhh.T @ h_prev, dhh.sum(axis=0), (dh * z + dhh @ W_hh,), (dh,))


def init_layer(
    rng: np.random.Generator, D: int, H: int, first: bool, dtype: type = np.float32
) -> dict[str, np.ndarray]:
    return uniform_layer(rng, 3 * H, D, H, first, dtype)


def input_scale(H: int, dtype: np.dtype) -> None:
    return None


@dataclass
class Cache:
    """Reusable buffers of one window. `G` is the projection's xa buffer; forward leaves r, z, n
    in it, backward the gradients of W_ih x + b_ih. `h` carries a column of ones."""

    W_hh: np.ndarray  # (3H, H)
    W_rec: np.ndarray  # (H+1, 3H) [W_hh^T; b_hh]
    G: np.ndarray  # (T, B, 3H)
    hn: np.ndarray  # (T, B, H) W_hn h_{t-1} + b_hn
    h: np.ndarray  # (T+1, B, H+1), h[0] = [h0, 1]
    hh: np.ndarray  # (B, 3H) scratch
    tmp: np.ndarray  # (B, H) scratch
    pad: np.ndarray  # (3H, H + 16)
    dHH: np.ndarray | None = None  # (T, B, 3H) d(hh_t), made by the first backward
    grads: dict[str, np.ndarray] | None = None
    dWb: np.ndarray | None = None  # (3H, H+1)


def _cache_for(old: Cache | None, xa: np.ndarray, W_hh: np.ndarray) -> Cache:
    T, B, H3 = xa.shape
    H = H3 // 3
    dtype = W_hh.dtype
    if old is not None and old.hn.shape == (T, B, H) and old.hn.dtype == dtype:
        old.G, old.W_hh = xa, W_hh
        return old
    return Cache(
        W_hh=W_hh,
        W_rec=np.empty((H + 1, H3), dtype),
        G=xa,
        hn=np.empty((T, B, H), dtype),
        h=hidden_with_ones(T, B, H, dtype),
        hh=np.empty((B, H3), dtype),
        tmp=np.empty((B, H), dtype),
        pad=np.empty((H3, H + 16), dtype),
    )


def forward(
    xa: np.ndarray,
    state0: tuple[np.ndarray, ...],
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    cache: Cache | None = None,
    kernels: object = None,
) -> tuple[np.ndarray, tuple[np.ndarray], Cache]:
    """T steps from state0 = (h0,), (B, H), given xa = W_ih x_t (T, B, 3H)."""
    (h0,) = state0
    T, _B, H3 = xa.shape
    H = H3 // 3
    cache = _cache_for(cache, xa, W_hh)
    G, h, hh, n_tmp = cache.G, cache.h, cache.hh, cache.tmp
    recurrent_operand(W_hh, b_hh, None, cache.W_rec, cache.pad)  # (H+1, 3H)
    G += b_ih
    h[0, :, :H] = h0
    for t in range(T):
        g = G[t]  # (B, 3H): W_ih x_t + b_ih
        np.matmul(h[t], cache.W_rec, out=hh)  # W_hh h_{t-1} + b_hh
        rz, n = g[:, : 2 * H], g[:, 2 * H :]
        rz += hh[:, : 2 * H]
        sigmoid_(rz)  # r, z
        r, z = g[:, :H], g[:, H : 2 * H]
        np.copyto(cache.hn[t], hh[:, 2 * H :])
        np.multiply(r, cache.hn[t], out=n_tmp)
        n += n_tmp
        np.tanh(n, out=n)
        # h_t = n + z ⊙ (h_{t-1} − n)
        np.subtract(h[t, :, :H], n, out=n_tmp)
        n_tmp *= z
        np.add(n, n_tmp, out=h[t + 1, :, :H])
    return h[1:, :, :H], (h[T, :, :H].copy(),), cache


def backward(
    dh_seq: np.ndarray, cache: Cache, dstateT: tuple[np.ndarray | None, ...] | None = None, kernels: object = None
) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[np.ndarray]]:
    """d(W_ih x + b_ih) (T, B, 3H) (the cache's G buffer), {"weight_hh", "bias_ih", "bias_hh"}, (dh0,)."""
    G, h = cache.G, cache.h
    T, B, H3 = G.shape
    H = H3 // 3
    dtype = G.dtype
    if cache.dHH is None:
        cache.dHH = np.empty((T, B, H3), dtype)
    dHH = cache.dHH
    dhT = dstateT[0] if dstateT is not None else None
    dh_next = np.zeros((B, H), dtype) if dhT is None else dhT.astype(dtype, copy=True)
    dh = np.empty((B, H), dtype)
    tmp = cache.tmp
    for t in reversed(range(T)):
        g, dhh = G[t], dHH[t]  # (B, 3H) each
        r, z, n = g[:, :H], g[:, H : 2 * H], g[:, 2 * H :]
        da_r, da_z, da_n = dhh[:, :H], dhh[:, H : 2 * H], dhh[:, 2 * H :]
        h_prev = h[t, :, :H]
        np.add(dh_seq[t], dh_next, out=dh)
        np.subtract(h_prev, n, out=da_z)
        da_z *= dh  # dz
        np.subtract(1, z, out=da_n)
        da_n *= dh  # dn
        np.multiply(dh, z, out=dh_next)  # the direct path h_{t-1} → h_t
        np.multiply(n, n, out=tmp)
        np.subtract(1, tmp, out=tmp)
        da_n *= tmp  # da_n = dn ⊙ (1 − n²)
        np.multiply(da_n, cache.hn[t], out=da_r)  # dr
        np.subtract(1, z, out=tmp)
        tmp *= z
        da_z *= tmp  # da_z = dz ⊙ z(1 − z)
        np.subtract(1, r, out=tmp)
        tmp *= r
        da_r *= tmp  # da_r = dr ⊙ r(1 − r)
        # g becomes d(W_ih x + b_ih) = [da_r, da_z, da_n], dhh becomes d(hh) = [da_r, da_z, r ⊙ da_n]
        np.copyto(n, da_n)
        da_n *= r
        np.copyto(g[:, : 2 * H], dhh[:, : 2 * H])
        dh_next += np.matmul(dhh, cache.W_hh, out=tmp)
    grads = recurrent_grads(dHH, h, cache)
    np.sum(G.reshape(T * B, H3), axis=0, out=grads["bias_ih"])  # b_ih enters apart from b_hh
    return G, grads, (dh_next,)


def activations(cache: Cache) -> dict[str, np.ndarray]:
    """Copies of the gates r, z, the candidate n and the output h of the last forward, (T, B, H)."""
    H = cache.hn.shape[2]
    G = cache.G
    out = {name: G[:, :, k * H : (k + 1) * H].copy() for k, name in enumerate("rzn")}
    out["h"] = cache.h[1:, :, :H].copy()
    return out


@dataclass(frozen=True)
class Prepared:
    """Stepping layout: the input part W_i (3H, D) with b_i (3H, 1) — or, for ids, `table`
    (V, 3H) = W_ih^T + b_ih — and the recurrent part W_h (3H, H), b_h (3H, 1), kept apart because
    r multiplies only the recurrent part of n."""

    W_i: np.ndarray | None
    b_i: np.ndarray | None
    table: np.ndarray | None
    W_h: np.ndarray
    b_h: np.ndarray


def prepare(W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, ids: bool) -> Prepared:
    if ids:
        return Prepared(None, None, W_ih.T + b_ih, W_hh.copy(), b_hh[:, None].copy())
    return Prepared(W_ih.copy(), b_ih[:, None].copy(), None, W_hh.copy(), b_hh[:, None].copy())


@dataclass
class StepWork:
    ax: np.ndarray  # (3H, N) W_ih x + b_ih
    ah: np.ndarray  # (3H, N) W_hh h + b_hh
    rows: np.ndarray  # (N, 3H) gathered input rows (id input)
    tmp: np.ndarray  # (H, N)


def step_work(H: int, N: int, dtype: np.dtype) -> StepWork:
    return StepWork(
        np.empty((3 * H, N), dtype), np.empty((3 * H, N), dtype), np.empty((N, 3 * H), dtype), np.empty((H, N), dtype)
    )


def step_into(
    z: np.ndarray,
    rest: tuple[np.ndarray, ...],
    p: Prepared,
    work: StepWork,
    ids: np.ndarray | None = None,
    kernels: Any = None,
) -> None:
    """One GRU step in place: the last H rows of z (the state h, below the input) become the new h."""
    H = p.W_h.shape[1]
    h = z[-H:]
    ax, ah = work.ax, work.ah
    if ids is None:
        assert p.W_i is not None and p.b_i is not None  # prepared for float input
        np.matmul(p.W_i, z[:-H], out=ax)
        ax += p.b_i
    else:
        assert p.table is not None  # prepared for ids
        np.take(p.table, ids, axis=0, out=work.rows)
        np.copyto(ax, work.rows.T)
    np.matmul(p.W_h, h, out=ah)
    ah += p.b_h
    rz = ax[: 2 * H]
    rz += ah[: 2 * H]
    sigmoid_(rz)
    r, zg, n = ax[:H], ax[H : 2 * H], ax[2 * H :]
    np.multiply(r, ah[2 * H :], out=work.tmp)
    n += work.tmp
    np.tanh(n, out=n)
    np.subtract(h, n, out=work.tmp)
    work.tmp *= zg
    np.add(n, work.tmp, out=h)
