"""The LSTM cell: its plain step, forward over a window of T steps, backward through time, and a
single step in place for sampling.

Gate order is PyTorch's, i, f, g, o, in blocks of H along the last axis of every (..., 4H) array,
so torch.nn.LSTM's weight_ih_l{k} (4H, D), weight_hh_l{k} (4H, H), bias_ih_l{k} and bias_hh_l{k}
(4H,) are used unchanged:

    a   = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          pre-activations a_i, a_f, a_g, a_o
    i   = σ(a_i)    f = σ(a_f)    g = tanh(a_g)    o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

Since σ(a) = (1 + tanh(a/2)) / 2, all four gates come out of one tanh over the contiguous (B, 4H)
block: the weights are pre-scaled by s = (½, ½, 1, ½) per block, so the loop computes â = s ⊙ a
directly, takes tanh(â), and maps the i, f and o blocks back with × ½ + ½ (scalar operands: a
broadcast (4H,) vector costs about twice as much per element).

Layouts. Training keeps the window batch-major, (T, B, ·): its T·B rows are one matrix for the
products that are batched over the window (input projection, weight gradients, head), with no
reshuffling; a step's gate blocks are then column blocks (strided views) of G[t]. Sampling has no
such products, so its state is batch-minor, (H, N), with contiguous gate blocks (`Prepared`).

Backward reads as the forward reversed. The gradient of the cell state gathers both paths, through
h_t and from c_{t+1}:

    dc_t = dh_t ⊙ o ⊙ (1 − tanh²(c_t)) + dc_{t+1} ⊙ f_{t+1}

Work that does not depend on t is batched over the window: the input projection of all T steps is
one gather or GEMM before the loop (`ops.project`, shared by every cell); dW_hh and the biases'
gradient are one GEMM after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charlstm.nn import kernels as kernels_
from charlstm.nn.cells import SIGMOID_SATURATION, StepGrads
from charlstm.nn.cells.common import hidden_with_ones, recurrent_grads, recurrent_operand, uniform_layer
from charlstm.nn.kernels import Kernels
from charlstm.nn.ops import sigmoid

NUM_GATES = 4
STATE_NAMES = ("h", "c")
QUANTITIES = ("c", "h", "i", "f", "g", "o")  # the views show the cell state first
SIGMOID = frozenset("ifo")
GATES = {"i": SIGMOID_SATURATION, "f": SIGMOID_SATURATION, "o": SIGMOID_SATURATION}
TORCH: tuple[str, dict[str, object]] = ("LSTM", {})  # torch.nn.LSTM
FORGET_BIAS = 1.0


def step(
    xa: np.ndarray, state: tuple[np.ndarray, ...], W_hh: np.ndarray, b_hh: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, np.ndarray]]:
    """One step as written above (the reference of `forward` and `step_into`): xa (B, 4H) =
    W_ih x + b_ih, state = (h, c), (B, H) each. Returns (h, c) and the step's record."""
    h_prev, c_prev = state
    a_i, a_f, a_g, a_o = np.split(xa + h_prev @ W_hh.T + b_hh, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return (h, c), {"c": c, "h": h, "i": i, "f": f, "g": g, "o": o, "h_prev": h_prev, "c_prev": c_prev}


def step_back(dstate: tuple[np.ndarray, ...], rec: dict[str, np.ndarray], W_hh: np.ndarray) -> StepGrads:
    """Back through `step` (the reference of `backward`): dstate = (dh, dc), dc the gradient
    reaching c_t from c_{t+1}; the cell state's whole gradient adds the path through h_t."""
    dh, dc = dstate
    i, f, g, o, c = (rec[k] for k in "ifgoc")
    tanh_c = np.tanh(c)
    do = dh * tanh_c
    dc = dc + dh * o * (1 - tanh_c**2)
    di, df, dg = dc * g, dc * rec["c_prev"], dc * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1)  # (B, 4H)
    return StepGrads(da, da.T @ rec["h_prev"], da.sum(axis=0), (da @ W_hh, dc * f), (dh, dc))


def init_layer(
    rng: np.random.Generator, D: int, H: int, first: bool, dtype: type = np.float32
) -> dict[str, np.ndarray]:
    """The shared initialisation, with the forget gate's bias_ih at 1: the cell state starts out
    remembered, so early gradients flow through it (Jozefowicz et al., 2015)."""
    p = uniform_layer(rng, 4 * H, D, H, first, dtype)
    p["bias_ih"][H : 2 * H] = FORGET_BIAS
    return p


def gate_scale(H: int, dtype: np.dtype) -> np.ndarray:
    """s = (½, ½, 1, ½), each repeated H times: (4H,)."""
    return np.repeat(np.array([0.5, 0.5, 1.0, 0.5], dtype=dtype), H)


def input_scale(H: int, dtype: np.dtype) -> np.ndarray:
    """The projection of the input is scaled like the rest of the pre-activation: s (4H,)."""
    return gate_scale(H, dtype)


@dataclass(frozen=True)
class Prepared:
    """One layer's weights laid out for stepping (sampling).

    The stepping state is batch-minor — h and c are (H, N), a column per sample — so a step's
    product is W @ [x; h], the orientation OpenBLAS computes fastest for a handful of columns, and
    the four gate blocks are contiguous rows. Sigmoid rows are scaled by ½ as in `forward`.
    For id input, `W` is s ⊙ W_hh (4H, H) and `bias` (V, 4H) holds, for each id, the column of
    s ⊙ W_ih that its one-hot input picks, with the bias folded in: stream n adds row ids[n].
    For float input, `W` is s ⊙ [W_ih | W_hh] (4H, D+H), applied to the input stacked on h, and
    `bias` is the one row s ⊙ b (1, 4H), which every stream adds.
    """

    W: np.ndarray
    bias: np.ndarray
    ids: bool  # the input is ids (the first layer)


def prepare(W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, ids: bool) -> Prepared:
    """Scale and lay out one layer's weights for `step_into` (cheap: O(weights))."""
    H4, H = W_hh.shape
    D = W_ih.shape[1]
    scale = gate_scale(H, W_hh.dtype)
    b = (b_ih + b_hh) * scale  # (4H,)
    if ids:
        table = np.multiply(W_ih.T, scale, out=np.empty((D, H4), W_ih.dtype))  # (V, 4H)
        table += b
        return Prepared(W_hh * scale[:, None], table, True)
    W = np.empty((H4, D + H), W_hh.dtype)
    np.multiply(W_ih, scale[:, None], out=W[:, :D])
    np.multiply(W_hh, scale[:, None], out=W[:, D:])
    return Prepared(W, b[None, :].copy(), False)


@dataclass
class StepWork:
    """Scratch of `step_into` for one layer and N samples."""

    a: np.ndarray  # (4H, N) pre-activations, then gates
    tanh_c: np.ndarray  # (H, N)
    gathered: np.ndarray  # (N, 4H) the bias rows of the id input
    rows: np.ndarray  # (N,) zeros: the bias row of float input
    zT: np.ndarray | None = None  # (N, D+H) the input a row per stream (the fused kernel), made on first use


def step_work(H: int, N: int, dtype: np.dtype) -> StepWork:
    return StepWork(
        np.empty((4 * H, N), dtype), np.empty((H, N), dtype), np.empty((N, 4 * H), dtype), np.zeros(N, np.intp)
    )


def step_into(
    z: np.ndarray,
    rest: tuple[np.ndarray, ...],
    p: Prepared,
    work: StepWork,
    ids: np.ndarray | None = None,
    kernels: Kernels | None = None,
) -> None:
    """Advance the layer one step in place (the sampling hot path: no allocation after the first).

    z: (D+H, N) the input stacked on the state h — or h alone, (H, N), with `ids` (N,) as input;
    its last H rows are overwritten with the new h. rest = (c,): (H, N), overwritten with the new c.
    z and c C-contiguous. kernels: the step's implementation (`charlstm.nn.kernels`; None: NumPy):
    â = W z + bias[rows], then the gate math of `forward`, on (4H, N) gate blocks.
    """
    (c,) = rest
    K, N = z.shape
    if work.zT is None or work.zT.shape[1] < K:
        work.zT = np.empty((N, K), z.dtype)
    rows = ids if p.ids else work.rows
    (kernels or kernels_.numpy()).lstm_step(p.W, p.bias, rows, z, c, work.a, work.gathered, work.zT, work.tanh_c)


@dataclass
class Cache:
    """What backward needs from forward, as arrays stacked over time. Reused across windows of the
    same shape (pass it back to `forward`), so the hot loop allocates nothing.

    `G` is the projection's xa buffer: it holds the gate activations i, f, g, o after forward and
    is overwritten with the pre-activation gradients da by backward: a cache serves one backward.
    `h` carries a column of ones after the H state columns (see `common.recurrent_operand`).
    """

    W_hh: np.ndarray  # (4H, H) the layer's weights, for backward
    W_rec: np.ndarray  # (H+1, 4H) [s ⊙ W_hh^T; s ⊙ (b_ih + b_hh)]
    G: np.ndarray  # (T, B, 4H)
    c: np.ndarray  # (T+1, B, H), c[0] = c0
    tanh_c: np.ndarray  # (T, B, H)
    h: np.ndarray  # (T+1, B, H+1), h[0] = [h0, 1]
    tmp: np.ndarray  # (B, 4H) scratch
    tmp2: np.ndarray  # (B, 4H) scratch
    pad: np.ndarray  # (4H, H + 16) scratch for transposing W_hh
    grads: dict[str, np.ndarray] | None = None  # the gradient buffers backward returns
    dWb: np.ndarray | None = None  # (4H, H+1) [dW_hh | db], made by the first backward


def _cache_for(old: Cache | None, xa: np.ndarray, W_hh: np.ndarray) -> Cache:
    T, B, H4 = xa.shape
    H = W_hh.shape[1]
    dtype = W_hh.dtype
    if old is not None and old.c.shape == (T + 1, B, H) and old.c.dtype == dtype:
        old.G, old.W_hh = xa, W_hh
        return old
    return Cache(
        W_hh=W_hh,
        W_rec=np.empty((H + 1, H4), dtype),
        G=xa,
        c=np.empty((T + 1, B, H), dtype),
        tanh_c=np.empty((T, B, H), dtype),
        h=hidden_with_ones(T, B, H, dtype),
        tmp=np.empty((B, H4), dtype),
        tmp2=np.empty((B, H4), dtype),
        pad=np.empty((H4, H + 16), dtype),
    )


def forward(
    xa: np.ndarray,
    state0: tuple[np.ndarray, ...],
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    cache: Cache | None = None,
    kernels: Kernels | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], Cache]:
    """Run the cell over T steps from state0 = (h0, c0), (B, H) each.

    xa: (T, B, 4H) the scaled input projection s ⊙ W_ih x_t (`ops.project` with `input_scale`),
    kept by the cache and overwritten. kernels: the gate math's implementation (`charlstm.nn.kernels`;
    None: the NumPy reference, `kernels.numpy_ref`). Returns h_seq (T, B, H) — a view into the
    cache, valid until the cache is reused — the final state (hT, cT) as fresh arrays, and the cache.
    """
    gates_forward = (kernels or kernels_.numpy()).lstm_forward_gates
    h0, c0 = state0
    T = xa.shape[0]
    H = W_hh.shape[1]
    cache = _cache_for(cache, xa, W_hh)
    G, c, tanh_c, h, tmp = cache.G, cache.c, cache.tanh_c, cache.h, cache.tmp
    recurrent_operand(W_hh, b_ih + b_hh, gate_scale(H, G.dtype), cache.W_rec, cache.pad)  # (H+1, 4H)
    h[0, :, :H] = h0
    c[0] = c0
    for t in range(T):
        a = G[t]  # (B, 4H)
        np.matmul(h[t], cache.W_rec, out=tmp)  # [h_{t-1}, 1] @ [s ⊙ W_hh^T; s ⊙ b]
        a += tmp
        # i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o) in place of â;
        # c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t)
        gates_forward(a, c[t], c[t + 1], tanh_c[t], h[t + 1, :, :H])
    return h[1:, :, :H], (h[T, :, :H].copy(), c[T].copy()), cache


def backward(
    dh_seq: np.ndarray,
    cache: Cache,
    dstateT: tuple[np.ndarray | None, ...] | None = None,
    kernels: Kernels | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Backpropagate through the window.

    dh_seq: (T, B, H) gradient of the loss w.r.t. every h_t from above (the head or the next
    layer); dstateT = (dhT, dcT): gradients arriving at the final state (None: zero, as in
    truncated BPTT, where nothing flows back across windows).
    Returns da (T, B, 4H), the gradient of the pre-activations (= of W_ih x_t, for the
    projection's backward; the cache's G buffer), the gradients {"weight_hh", "bias_ih",
    "bias_hh"} summed over all steps — buffers of the cache too, rewritten by its next backward —
    and (dh0, dc0).
    """
    gates_backward = (kernels or kernels_.numpy()).lstm_backward_gates
    G, c, tanh_c, h = cache.G, cache.c, cache.tanh_c, cache.h
    T, B, H4 = G.shape
    H = H4 // 4
    dtype = G.dtype
    dhT, dcT = dstateT if dstateT is not None else (None, None)
    dh = np.empty((B, H), dtype)
    dh_next = np.zeros((B, H), dtype) if dhT is None else dhT.astype(dtype, copy=True)
    dc_next = np.zeros((B, H), dtype) if dcT is None else dcT.astype(dtype, copy=True)
    work = (cache.tmp, cache.tmp2, np.empty((B, H), dtype))  # scratch of the NumPy gate math
    for t in reversed(range(T)):
        np.add(dh_seq[t], dh_next, out=dh)
        # dc_t = dh ⊙ o ⊙ (1 − tanh² c_t) + dc_{t+1} ⊙ f_{t+1};  di = dc ⊙ g, df = dc ⊙ c_{t-1},
        # dg = dc ⊙ i, do = dh ⊙ tanh c_t; then through σ' and tanh' into da_t, in place of G[t]
        gates_backward(G[t], dh, dc_next, c[t], tanh_c[t], h[t + 1, :, :H], work)
        np.matmul(G[t], cache.W_hh, out=dh_next)
    return G, recurrent_grads(G, h, cache), (dh_next, dc_next)


def activations(cache: Cache) -> dict[str, np.ndarray]:
    """Copies of the gates i, f, g, o, the cell state c and the output h of the last forward,
    (T, B, H) each (call before backward, which overwrites the gates)."""
    H = cache.c.shape[2]
    G = cache.G
    out = {name: G[:, :, k * H : (k + 1) * H].copy() for k, name in enumerate("ifgo")}
    out["c"] = cache.c[1:].copy()
    out["h"] = cache.h[1:, :, :H].copy()
    return out
