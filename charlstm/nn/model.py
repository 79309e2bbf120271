"""The model: a stack of recurrent layers over one-hot characters and a softmax head over V.

    xa_k = W_ih x_k                      input projection (`ops.project`), x_0 = one-hot ids
    h_k, state_k = cell(xa_k, state_k)   the recurrence of layer k (`cells`), x_{k+1} = dropout(h_k)
    logits = W_hy x_L + b_y              the head, (T·B, V)

In training, `Dropout` says what is dropped: the layers' outputs (per step or per window), and
the recurrent weights W_hh (weight drop), which the cell then computes with masked.

Parameters live in a plain dict keyed by PyTorch's state_dict names (`lstm.weight_ih_l0`, ...,
`head.weight`, `head.bias`, with `gru.` or `rnn.` for the other cells), so a checkpoint is that
dict and loads into `torch.nn.LSTM` / `GRU` / `RNN` + `torch.nn.Linear` unchanged. Gradient dicts
have the same keys. Recurrent state is a tuple of (L, B, H) arrays, one per name in the cell's
STATE_NAMES — (h, c) for the LSTM, (h,) for the others — passed in and returned, never kept on an
object. One step at a time (sampling) is `stepping`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from charlstm.config import DROPOUT_MASKS, ModelConfig
from charlstm.nn.cells import CELLS, Cell
from charlstm.nn.kernels import Kernels
from charlstm.nn.ops import Projection, project, project_backward, softmax_cross_entropy

State = tuple[np.ndarray, ...]


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in PyTorch's state_dict order."""
    cell, V, H = config.cell, config.vocab_size, config.hidden_size
    GH = CELLS[cell].NUM_GATES * H
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(config.num_layers):
        shapes[f"{cell}.weight_ih_l{k}"] = (GH, V if k == 0 else H)
        shapes[f"{cell}.weight_hh_l{k}"] = (GH, H)
        shapes[f"{cell}.bias_ih_l{k}"] = (GH,)
        shapes[f"{cell}.bias_hh_l{k}"] = (GH,)
    shapes["head.weight"] = (V, H)
    shapes["head.bias"] = (V,)
    return shapes


def num_params(config: ModelConfig) -> int:
    return sum(math.prod(s) for s in param_shapes(config).values())


def init_params(config: ModelConfig, seed: int = 0, dtype: type = np.float32) -> dict[str, np.ndarray]:
    """Every layer as its cell initialises it (`cells.common.uniform_layer`; the LSTM adds its
    forget-gate bias), then the head as PyTorch's Linear(H, V) weight, Uniform(±1/√H), with a
    zero bias."""
    rng = np.random.default_rng(seed)
    cell, V, H = config.cell, config.vocab_size, config.hidden_size
    params = {}
    for k in range(config.num_layers):
        layer = CELLS[cell].init_layer(rng, V if k == 0 else H, H, k == 0, dtype)
        params.update({f"{cell}.{name}_l{k}": p for name, p in layer.items()})
    bound = 1.0 / math.sqrt(H)
    params["head.weight"] = rng.uniform(-bound, bound, size=(V, H)).astype(dtype)
    params["head.bias"] = np.zeros(V, dtype)
    return {name: params[name] for name in param_shapes(config)}


def layer_params(
    params: dict[str, np.ndarray], config: ModelConfig, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(W_ih, W_hh, b_ih, b_hh) of layer k."""
    c = config.cell
    return (
        params[f"{c}.weight_ih_l{k}"],
        params[f"{c}.weight_hh_l{k}"],
        params[f"{c}.bias_ih_l{k}"],
        params[f"{c}.bias_hh_l{k}"],
    )


def cell_of(config: ModelConfig) -> Cell:
    """The cell module of the model (`cells.CELLS`)."""
    return CELLS[config.cell]


def state_names(config: ModelConfig) -> tuple[str, ...]:
    """Names of the recurrent state tensors, h first: ("h", "c") for the LSTM, ("h",) otherwise."""
    return CELLS[config.cell].STATE_NAMES


def zero_state(config: ModelConfig, B: int, dtype: np.dtype | type = np.float32) -> State:
    """The all-zero recurrent state: one (L, B, H) array per state tensor ((h, c) for the LSTM)."""
    L, H = config.num_layers, config.hidden_size
    return tuple(np.zeros((L, B, H), dtype) for _ in state_names(config))


@dataclass(frozen=True)
class Dropout:
    """What training drops, each kept unit or weight scaled by 1 / (1 − its p), so that evaluation
    and sampling, which drop nothing, need no rescaling.

    p: each layer's output, before the next layer and the head. `mask` says where its masks are
    drawn: "step", a new (T, B, H) mask for every step; "window", one (B, H) mask per stream for
    the window, the same at every step (locked or variational dropout, as in AWD-LSTM).
    weight_hh: DropConnect on each layer's W_hh (AWD-LSTM's weight drop): one (G, H) mask per
    window, shared by every stream and step; the cell computes with W_hh ⊙ mask.
    """

    p: float = 0.0
    mask: str = "step"
    weight_hh: float = 0.0

    def __post_init__(self) -> None:
        if self.mask not in DROPOUT_MASKS:
            raise ValueError(f"dropout mask {self.mask!r}: not one of {DROPOUT_MASKS}")

    @property
    def active(self) -> bool:
        return self.p > 0.0 or self.weight_hh > 0.0


@dataclass
class Cache:
    """Everything backward needs from one window's forward; reusable for the next window."""

    proj: list[Projection | None] = field(default_factory=list)  # each layer's input projection
    layers: list[Any] = field(default_factory=list)  # each layer's cell cache
    masks: list[np.ndarray | None] = field(default_factory=list)  # (T, B, H) or (B, H) dropout mask per layer
    dropped: list[np.ndarray | None] = field(default_factory=list)  # (T, B, H) masked layer outputs
    hh_masks: list[np.ndarray | None] = field(default_factory=list)  # (G, H) weight-drop mask per layer
    hh_dropped: list[np.ndarray | None] = field(default_factory=list)  # (G, H) W_hh ⊙ mask per layer
    top: np.ndarray | None = None  # (T*B, H) input of the head
    logits: np.ndarray | None = None  # (T*B, V)
    dtop: np.ndarray | None = None  # (T*B, H) gradient of the head's input
    head_grads: dict[str, np.ndarray] = field(default_factory=dict)  # buffers backward returns


def forward(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    x: np.ndarray,
    state: State,
    cache: Cache | None = None,
    dropout: float | Dropout = 0.0,
    rng: np.random.Generator | None = None,
    kernels: Kernels | None = None,
) -> tuple[np.ndarray, State, Cache]:
    """Logits (T*B, V) for the ids x (T, B) starting from `state`; returns them (a buffer in the
    cache), the final state, and the cache. `dropout` (training): a `Dropout`, or a float p for
    per-step dropout of each layer's output; its masks are drawn from `rng`, layer by layer (the
    weight mask first). `kernels`: the compiled per-step math to use where the cell has it
    (`charlstm.nn.kernels`; None: NumPy)."""
    cell = CELLS[config.cell]
    drop = dropout if isinstance(dropout, Dropout) else Dropout(dropout)
    if drop.active and rng is None:
        raise ValueError("dropout needs a random generator")
    T, B = x.shape
    cache = cache if cache is not None else Cache()
    L, H = config.num_layers, config.hidden_size
    if len(cache.layers) != L:
        for name in ("proj", "layers", "masks", "dropped", "hh_masks", "hh_dropped"):
            setattr(cache, name, [None] * L)
    scale = cell.input_scale(H, params["head.weight"].dtype)
    inp = x
    final = []
    for k in range(L):
        W_ih, W_hh, b_ih, b_hh = layer_params(params, config, k)
        if drop.weight_hh > 0.0 and rng is not None:
            W_hh = _drop_weights(W_hh, drop.weight_hh, rng, cache, k)
        else:
            cache.hh_masks[k] = None
        cache.proj[k] = proj = project(inp, W_ih, scale, cache.proj[k])  # xa: (T, B, G)
        h_seq, layer_state, cache.layers[k] = cell.forward(
            proj.xa, tuple(s[k] for s in state), W_hh, b_ih, b_hh, cache.layers[k], kernels
        )
        final.append(layer_state)
        if drop.p > 0.0 and rng is not None:
            inp = _dropout(h_seq, drop, rng, cache, k)
        else:
            cache.masks[k] = None
            inp = h_seq
    V = config.vocab_size
    cache.top = inp.reshape(T * B, H)
    if cache.logits is None or cache.logits.shape != (T * B, V) or cache.logits.dtype != inp.dtype:
        cache.logits = np.empty((T * B, V), inp.dtype)
    np.matmul(cache.top, params["head.weight"].T, out=cache.logits)
    cache.logits += params["head.bias"]
    new_state = tuple(np.stack([s[j] for s in final]) for j in range(len(state)))
    return cache.logits, new_state, cache


def _dropout(h_seq: np.ndarray, drop: Dropout, rng: np.random.Generator, cache: Cache, k: int) -> np.ndarray:
    """Inverted dropout of layer k's output h_seq (T, B, H), with a mask per step (T, B, H) or
    one per window (B, H), broadcast over the steps. Mask and result live in reused buffers."""
    shape = h_seq.shape if drop.mask == "step" else h_seq.shape[1:]
    mask, out = _buffer(cache.masks, k, shape, h_seq.dtype), _buffer(cache.dropped, k, h_seq.shape, h_seq.dtype)
    _draw_mask(mask, drop.p, rng)
    return np.multiply(h_seq, mask, out=out)


def _drop_weights(W_hh: np.ndarray, p: float, rng: np.random.Generator, cache: Cache, k: int) -> np.ndarray:
    """Layer k's W_hh (G, H) with a fresh DropConnect mask applied, in a reused buffer; backward
    multiplies the gradient of this matrix by the same mask (`cache.hh_masks[k]`)."""
    mask = _buffer(cache.hh_masks, k, W_hh.shape, W_hh.dtype)
    _draw_mask(mask, p, rng)
    return np.multiply(W_hh, mask, out=_buffer(cache.hh_dropped, k, W_hh.shape, W_hh.dtype))


def _draw_mask(mask: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Fill `mask` in place: 1 / (1 − p) with probability 1 − p (kept), else 0 (dropped)."""
    rng.random(out=mask, dtype=mask.dtype)
    np.greater_equal(mask, p, out=mask)  # 1.0 where kept
    mask *= 1.0 / (1.0 - p)
    return mask


def _buffer(buffers: list[np.ndarray | None], k: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """buffers[k], made anew when it is missing or of another shape or dtype."""
    b = buffers[k]
    if b is None or b.shape != shape or b.dtype != dtype:
        buffers[k] = b = np.empty(shape, dtype)
    return b


def backward(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    dlogits: np.ndarray,
    cache: Cache,
    dstate: State | None = None,
    kernels: Kernels | None = None,
) -> tuple[dict[str, np.ndarray], State]:
    """Gradients of every parameter from dlogits (T*B, V), and of the initial state.
    `dstate` is the gradient arriving at the final state (None: zero, truncated BPTT).
    The gradient arrays are buffers of the cache, rewritten by its next backward (so a training
    step allocates no large array)."""
    cell = CELLS[config.cell]
    c = config.cell
    W_hy, top, proj0 = params["head.weight"], cache.top, cache.proj[0]
    assert top is not None and proj0 is not None, "backward needs the cache of a forward"
    if cache.dtop is None or cache.dtop.shape != top.shape or cache.dtop.dtype != dlogits.dtype:
        cache.dtop = np.empty(top.shape, dlogits.dtype)
        cache.head_grads = {
            "head.weight": np.empty(W_hy.shape, dlogits.dtype),
            "head.bias": np.empty(W_hy.shape[0], dlogits.dtype),
        }
    grads: dict[str, np.ndarray] = {
        "head.weight": np.matmul(dlogits.T, top, out=cache.head_grads["head.weight"]),
        "head.bias": np.sum(dlogits, axis=0, out=cache.head_grads["head.bias"]),
    }
    T, B = proj0.xa.shape[:2]
    dh_seq = np.matmul(dlogits, W_hy, out=cache.dtop).reshape(T, B, config.hidden_size)
    dstate0: list[tuple[np.ndarray, ...]] = [()] * config.num_layers
    for k in reversed(range(config.num_layers)):
        if cache.masks[k] is not None:
            dh_seq *= cache.masks[k]  # (broadcast over T for a window's mask); a buffer of the cache
        dfinal = tuple(d[k] for d in dstate) if dstate is not None else None
        dxa, g, dstate0[k] = cell.backward(dh_seq, cache.layers[k], dfinal, kernels)
        if cache.hh_masks[k] is not None:
            g["weight_hh"] *= cache.hh_masks[k]  # the cell computed with W_hh ⊙ mask
        proj = cache.proj[k]
        assert proj is not None
        grads[f"{c}.weight_ih_l{k}"], dx = project_backward(proj, dxa)
        grads.update({f"{c}.{name}_l{k}": value for name, value in g.items()})
        if dx is not None:  # None below the first layer, whose input is ids
            dh_seq = dx
    ordered = {name: grads[name] for name in params}
    return ordered, tuple(np.stack([d[j] for d in dstate0]) for j in range(len(cell.STATE_NAMES)))


def loss_and_grads(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    x: np.ndarray,
    y: np.ndarray,
    state: State,
    cache: Cache | None = None,
    dropout: float | Dropout = 0.0,
    rng: np.random.Generator | None = None,
    kernels: Kernels | None = None,
) -> tuple[float, dict[str, np.ndarray], State, Cache]:
    """One window of truncated BPTT: mean cross-entropy (nats/char) of targets y (T, B) given ids
    x (T, B) from `state`, the gradients of every parameter (buffers of the cache, valid until its
    next use), the final state (to carry into the next window, detached), and the cache to pass
    back next time."""
    logits, new_state, cache = forward(params, config, x, state, cache, dropout, rng, kernels)
    loss, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
    grads, _ = backward(params, config, dlogits, cache, kernels=kernels)
    return loss, grads, new_state, cache
