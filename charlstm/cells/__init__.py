"""Recurrent cells: the LSTM, the GRU and the vanilla RNN, each one file with the same contract.

A layer of any cell computes, for t = 1..T,

    xa_t = W_ih x_t                      (the input projection: `ops.project`, outside the cell)
    state_t = cell(xa_t, state_{t-1})    (the recurrence: the cell's `forward`)

and `h_t` is the layer's output. The input projection and its gradient live once, in `ops`; a
cell owns only the recurrence. Parameters use PyTorch's names and layouts (gate blocks stacked
along the rows of `weight_ih`/`weight_hh`, in PyTorch's gate order), so a checkpoint loads into
`torch.nn.LSTM` / `nn.GRU` / `nn.RNN` unchanged.

The contract, `Cell`, is what the model, training, evaluation, sampling and checkpoints use, and
nothing else. A cell is a module that provides it; `CELLS` maps the names to them.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from charlstm.cells import gru, lstm, rnn


class Cell(Protocol):
    """What every cell module provides. Shapes: T steps, B batch, H hidden, G = NUM_GATES·H."""

    NUM_GATES: int  # blocks of H rows in weight_ih / weight_hh: LSTM 4, GRU 3, RNN 1
    STATE_NAMES: tuple[str, ...]  # the recurrent state, h first: ("h", "c") or ("h",)

    def init_layer(self, rng: np.random.Generator, D: int, H: int, first: bool, dtype: type) -> dict[str, np.ndarray]:
        """A layer's parameters {"weight_ih": (G, D), "weight_hh": (G, H), "bias_ih": (G,), "bias_hh": (G,)}."""

    def input_scale(self, H: int, dtype: np.dtype) -> np.ndarray | None:
        """Per-row factor (G,) that `ops.project` applies to W_ih for this cell, or None."""

    def forward(
        self, xa: np.ndarray, state0: tuple[np.ndarray, ...], W_hh: np.ndarray, b_ih: np.ndarray,
        b_hh: np.ndarray, cache: Any = None, kernels: Any = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...], Any]:
        """Run T steps from state0 ((B, H) each) given xa (T, B, G), which the cell may keep and
        overwrite. Returns h_seq (T, B, H) (a view into the cache), the final state (fresh
        arrays) and the cache (pass it back next window to reuse its buffers). `kernels`
        (`charlstm.kernels.Kernels`, None: NumPy) is the compiled per-step math, for the cells
        that have it (the LSTM; the GRU and RNN run on NumPy and ignore it)."""

    def backward(
        self, dh_seq: np.ndarray, cache: Any, dstateT: tuple[np.ndarray | None, ...] | None = None,
        kernels: Any = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[np.ndarray, ...]]:
        """From dL/dh_t (T, B, H) and the gradient at the final state (None: zero): dxa (T, B, G),
        the gradient of W_ih x_t (unscaled); {"weight_hh", "bias_ih", "bias_hh"}; dstate0."""

    def activations(self, cache: Any) -> dict[str, np.ndarray]:
        """Named copies of the gates and states of the last forward, (T, B, H) each. Valid only
        between forward and backward (backward overwrites the gates with their gradients)."""

    def prepare(self, W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, ids: bool) -> Any:
        """The layer's weights laid out for `step_into`."""

    def step_work(self, H: int, N: int, dtype: np.dtype) -> Any:
        """Scratch buffers of `step_into` for N streams."""

    def step_into(
        self, z: np.ndarray, rest: tuple[np.ndarray, ...], p: Any, work: Any, ids: np.ndarray | None = None,
        kernels: Any = None,
    ) -> None:
        """One step in place, batch-minor: z (D+H, N) is the input stacked on h — or h alone,
        (H, N), with ids (N,) as input — and its last H rows become the new h; `rest` holds the
        other state tensors, (H, N) each, updated in place. `kernels` as in `forward` (the LSTM
        steps on them; the GRU and RNN ignore them)."""


CELLS: dict[str, Cell] = {"lstm": lstm, "gru": gru, "rnn": rnn}  # type: ignore[dict-item]
