"""One step of backpropagation through one layer, written plainly from the equations (float64,
one stream, vectors of H), for the gradient-flow probe.

The cells' own backward runs over a whole window and keeps only the gradients of the weights and
of the initial state; the probe needs ∂L/∂h (and the LSTM's ∂L/∂c) at every step, so it walks back
one step at a time with these functions, reading the gates that `trace` recorded. Each takes the
total gradient dh at h_s (from the head, the layer above and step s + 1) and, for the LSTM, the
gradient dc_next reaching c_s from c_{s+1}; it returns the gradient of the step's input
projection and what flows on to step s − 1. tests/test_probe.py checks them against finite
differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayerWeights:
    """One layer's parameters in PyTorch's layout, float64."""

    W_ih: np.ndarray  # (G, D)
    W_hh: np.ndarray  # (G, H)
    b_ih: np.ndarray  # (G,)
    b_hh: np.ndarray  # (G,)


@dataclass(frozen=True)
class StepGrads:
    """What one step back yields. All (H,) but dxa (G,)."""

    dxa: np.ndarray  # gradient of the step's input projection W_ih x_s (+ b_ih); dx = dxa @ W_ih
    dh_prev: np.ndarray  # the part of ∂L/∂h_{s−1} that flows through this layer's recurrence
    dc_prev: np.ndarray | None  # LSTM: the part of ∂L/∂c_{s−1} that flows through c_s (dc ⊙ f)
    dc: np.ndarray | None  # LSTM: the total ∂L/∂c_s


Acts = dict[str, np.ndarray]  # a layer's recorded quantities, (N, H) each
BackStep = Callable[[LayerWeights, Acts, int, np.ndarray, np.ndarray], StepGrads]


def previous(acts: Acts, name: str, s: int) -> np.ndarray:
    """The quantity at step s − 1, or the zero initial state for s = 0."""
    return acts[name][s - 1] if s > 0 else np.zeros_like(acts[name][0])


def lstm_back(w: LayerWeights, acts: Acts, s: int, dh: np.ndarray, dc_next: np.ndarray) -> StepGrads:
    """c_s = f ⊙ c_{s−1} + i ⊙ g, h_s = o ⊙ tanh(c_s); gates i, f, o = σ(a), g = tanh(a)."""
    i, f, g, o, c = (acts[n][s] for n in "ifgoc")
    tc = np.tanh(c)
    dc = dc_next + dh * o * (1 - tc * tc)
    da = np.concatenate([
        dc * g * i * (1 - i),
        dc * previous(acts, "c", s) * f * (1 - f),
        dc * i * (1 - g * g),
        dh * tc * o * (1 - o),
    ])  # (4H,)
    return StepGrads(da, da @ w.W_hh, dc * f, dc)


def gru_back(w: LayerWeights, acts: Acts, s: int, dh: np.ndarray, dc_next: np.ndarray) -> StepGrads:
    """h_s = (1 − z) ⊙ n + z ⊙ h_{s−1}, n = tanh(W_in x + b_in + r ⊙ (W_hn h_{s−1} + b_hn))."""
    r, z, n = (acts[k][s] for k in "rzn")
    H = len(r)
    h_prev = previous(acts, "h", s)
    hn = w.W_hh[2 * H :] @ h_prev + w.b_hh[2 * H :]  # (H,)
    da_n = dh * (1 - z) * (1 - n * n)
    da_r = da_n * hn * r * (1 - r)
    da_z = dh * (h_prev - n) * z * (1 - z)
    dhh = np.concatenate([da_r, da_z, da_n * r])  # gradient of W_hh h_{s−1} + b_hh, (3H,)
    return StepGrads(np.concatenate([da_r, da_z, da_n]), dh * z + dhh @ w.W_hh, None, None)


def rnn_back(w: LayerWeights, acts: Acts, s: int, dh: np.ndarray, dc_next: np.ndarray) -> StepGrads:
    """h_s = tanh(W_ih x_s + b_ih + W_hh h_{s−1} + b_hh)."""
    h = acts["h"][s]
    da = dh * (1 - h * h)
    return StepGrads(da, da @ w.W_hh, None, None)


BACK_STEPS: dict[str, BackStep] = {"lstm": lstm_back, "gru": gru_back, "rnn": rnn_back}
