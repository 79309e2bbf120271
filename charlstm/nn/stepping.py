"""The model one step at a time, for sampling: its weights laid out for stepping (`Stepper`), the
state of N streams in the stepping layout (`StepState`), and the step (`step_in_place`), which
advances that state without a copy or an allocation.

The step computes what `model.forward` computes for one character; only the layouts differ.
Training runs windows batch-major, (T, B, ·), for its batched products; a sampling step has no
such products, so its state is batch-minor, (H, N), a column per stream, and each layer's weights
are prepared once (`Cell.prepare`) for the cell's in-place step (`Cell.step_into`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from charlstm.nn import kernels as kernels_
from charlstm.nn.cells import Cell
from charlstm.nn.kernels import Kernels
from charlstm.nn.model import ModelConfig, State, cell_of, layer_params


@dataclass(frozen=True)
class Stepper:
    """The model prepared for one-step-at-a-time inference (sampling)."""

    config: ModelConfig
    cell: Cell  # the model's cell (looked up once: a sampling step is ~0.2 ms)
    layers: tuple[Any, ...]  # the cell's prepared weights, one per layer
    W_hy: np.ndarray  # (V, H)
    b_y: np.ndarray  # (V, 1)
    kernels: Kernels | None = None  # the step's implementation (`charlstm.nn.kernels`; None: NumPy)


def prepare_stepper(params: dict[str, np.ndarray], config: ModelConfig, kernels: Kernels | None = None) -> Stepper:
    """The model's weights laid out for `step_in_place`, which steps on `kernels` (None: NumPy)."""
    cell = cell_of(config)
    layers = tuple(cell.prepare(*layer_params(params, config, k), k == 0) for k in range(config.num_layers))
    return Stepper(config, cell, layers, params["head.weight"], params["head.bias"][:, None].copy(), kernels)


@dataclass
class StepState:
    """The recurrent state of N sampling streams, laid out for `step_in_place`, which advances it.

    h of all layers is stacked, (L*H, N), a column per stream: the input and state of layer k ≥ 1
    are then the adjacent rows [h_{k-1}; h_k], one operand for one product, and the new h_k is
    written where layer k+1 reads its input. The other state tensors of the cell (the LSTM's c)
    are (L, H, N) each, in `rest`. The caller owns it and passes it in.
    """

    h: np.ndarray  # (L*H, N)
    rest: tuple[np.ndarray, ...]  # (L, H, N) for each state name after "h"
    work: list[Any]  # the cell's scratch, one per layer
    logits: np.ndarray  # (V, N)
    # views made once (a sampling step is ~0.2 ms, in which Python's overhead shows): layer k's
    # operand z (h_0 for k = 0, [h_{k-1}; h_k] above), its other state tensors, and the top h
    inputs: list[np.ndarray] = field(init=False, repr=False)
    rests: list[tuple[np.ndarray, ...]] = field(init=False, repr=False)
    top: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        L = len(self.work)
        H = self.h.shape[0] // L
        self.inputs = [self.h[:H]] + [self.h[(k - 1) * H : (k + 1) * H] for k in range(1, L)]
        self.rests = [tuple(s[k] for s in self.rest) for k in range(L)]
        self.top = self.h[-H:]


def step_state(stepper: Stepper, state: State) -> StepState:
    """The stepping layout of `state` ((L, N, H) arrays, as `forward` and `zero_state` make them)."""
    cell = stepper.cell
    h, *rest = state
    L, N, H = h.shape
    dtype = stepper.W_hy.dtype
    return StepState(
        h=np.ascontiguousarray(h.transpose(0, 2, 1), dtype).reshape(L * H, N),
        rest=tuple(np.ascontiguousarray(s.transpose(0, 2, 1), dtype) for s in rest),
        work=[cell.step_work(H, N, dtype) for _ in range(L)],
        logits=np.empty((stepper.W_hy.shape[0], N), dtype),
    )


def state_of(st: StepState) -> State:
    """The state, (L, N, H) arrays, of a StepState (fresh copies)."""
    LH, N = st.h.shape
    L = len(st.work)
    h = st.h.reshape(L, LH // L, N).transpose(0, 2, 1).copy()
    return (h, *(s.transpose(0, 2, 1).copy() for s in st.rest))


def step_in_place(stepper: Stepper, x: np.ndarray, st: StepState) -> np.ndarray:
    """Feed one character per stream, ids x (N,), advancing `st` in place (no allocation); returns
    the logits (N, V), a view that the next call overwrites."""
    step_into = stepper.cell.step_into
    kernels = stepper.kernels
    inputs, rests, work = st.inputs, st.rests, st.work
    step_into(inputs[0], rests[0], stepper.layers[0], work[0], x, kernels)
    for k in range(1, len(inputs)):
        step_into(inputs[k], rests[k], stepper.layers[k], work[k], None, kernels)
    (kernels or kernels_.numpy()).linear_step(stepper.W_hy, st.top, stepper.b_y, st.logits)  # (V, N)
    return st.logits.T


def step(stepper: Stepper, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
    """Logits (B, V) for one character per stream, ids x (B,), and the new state; the given state
    is not modified. (Sampling loops use `step_state` and `step_in_place` to skip the copies.)"""
    st = step_state(stepper, state)
    logits = step_in_place(stepper, x, st)
    return logits.copy(), state_of(st)
