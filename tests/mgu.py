"""A minimal gated unit (Zhou et al., 2016), a cell defined in one file outside charlstm: importing
this module registers it as the cell "mgu", and the whole tool then trains, samples and looks into
it (tests/test_one_file_cell.py).

    f   = σ(W_f x_t + b_if + U_f h_{t-1} + b_hf)            forget gate
    n   = tanh(W_n x_t + b_in + U_n (f ⊙ h_{t-1}) + b_hn)   candidate
    h_t = (1 − f) ⊙ h_{t-1} + f ⊙ n

PyTorch's layout: weight_ih = [W_f; W_n] (2H, D), weight_hh = [U_f; U_n] (2H, H), the biases
(2H,). Backward, with dh the whole gradient at h_t:

    da_n = dh ⊙ f ⊙ (1 − n²)        d(f ⊙ h_{t-1}) = U_n^T da_n
    da_f = (dh ⊙ (n − h_{t-1}) + d(f ⊙ h_{t-1}) ⊙ h_{t-1}) ⊙ f(1 − f)
    dh_{t-1} = dh ⊙ (1 − f) + d(f ⊙ h_{t-1}) ⊙ f + U_f^T da_f

Its fast path is `stepwise`: the plain step in a loop. No torch.nn module computes it.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from charlstm.nn import cells
from charlstm.nn.cells import SIGMOID_SATURATION, StepGrads, stepwise
from charlstm.nn.cells.common import uniform_layer
from charlstm.nn.ops import sigmoid

NUM_GATES = 2
STATE_NAMES = ("h",)
QUANTITIES = ("h", "f", "n")
SIGMOID = frozenset("f")
GATES = {"f": SIGMOID_SATURATION}
TORCH = None


def step(
    xa: np.ndarray, state: tuple[np.ndarray, ...], W_hh: np.ndarray, b_hh: np.ndarray
) -> tuple[tuple[np.ndarray], dict[str, np.ndarray]]:
    """xa (B, 2H) = W_ih x + b_ih, state = (h,): the new (h,) and the step's record."""
    (h_prev,) = state
    x_f, x_n = np.split(xa, 2, axis=1)
    U_f, U_n = np.split(W_hh, 2)
    b_f, b_n = np.split(b_hh, 2)
    f = sigmoid(x_f + h_prev @ U_f.T + b_f)
    n = np.tanh(x_n + (f * h_prev) @ U_n.T + b_n)
    h = (1 - f) * h_prev + f * n
    return (h,), {"h": h, "f": f, "n": n, "h_prev": h_prev}


def step_back(dstate: tuple[np.ndarray, ...], rec: dict[str, np.ndarray], W_hh: np.ndarray) -> StepGrads:
    (dh,) = dstate
    f, n, h_prev = rec["f"], rec["n"], rec["h_prev"]
    U_f, U_n = np.split(W_hh, 2)
    da_n = dh * f * (1 - n**2)
    d_fh = da_n @ U_n
    da_f = (dh * (n - h_prev) + d_fh * h_prev) * f * (1 - f)
    dxa = np.concatenate([da_f, da_n], axis=1)  # (B, 2H), also the gradient of the recurrent pre-activations
    dW_hh = np.concatenate([da_f.T @ h_prev, da_n.T @ (f * h_prev)])
    dh_prev = dh * (1 - f) + d_fh * f + da_f @ U_f
    return StepGrads(dxa, dW_hh, dxa.sum(axis=0), (dh_prev,), (dh,))


def init_layer(
    rng: np.random.Generator, D: int, H: int, first: bool, dtype: type = np.float32
) -> dict[str, np.ndarray]:
    return uniform_layer(rng, 2 * H, D, H, first, dtype)


input_scale, prepare, step_work = stepwise.input_scale, stepwise.prepare, stepwise.step_work
forward = functools.partial(stepwise.forward, step)
backward = functools.partial(stepwise.backward, step_back)
activations = functools.partial(stepwise.activations, QUANTITIES)
step_into = functools.partial(stepwise.step_into, step)

cells.register("mgu", sys.modules[__name__])
