"""An LSTM whose cell state is named m, a cell defined in one file outside charlstm: importing this
module registers it as the cell "mcell" (tests/test_cell_states.py). Its equations are the LSTM's
(`charlstm.nn.cells.lstm.step`), its fast path `stepwise`; what differs is only the name of its
second state, so that a view which draws "h and c" instead of the states a cell declares shows.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from charlstm.nn import cells
from charlstm.nn.cells import StepGrads, lstm, stepwise

NUM_GATES = 4
STATE_NAMES = ("h", "m")
QUANTITIES = ("m", "h", "i", "f", "g", "o")
SIGMOID = frozenset("ifo")
GATES = lstm.GATES
TORCH = None


def step(
    xa: np.ndarray, state: tuple[np.ndarray, ...], W_hh: np.ndarray, b_hh: np.ndarray
) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
    """xa (B, 4H) = W_ih x + b_ih, state = (h, m): the LSTM's step, its cell state recorded as m."""
    state, rec = lstm.step(xa, state, W_hh, b_hh)
    return state, {**rec, "m": rec["c"]}


def step_back(dstate: tuple[np.ndarray, ...], rec: dict[str, np.ndarray], W_hh: np.ndarray) -> StepGrads:
    return lstm.step_back(dstate, rec, W_hh)


init_layer = lstm.init_layer
input_scale, prepare, step_work = stepwise.input_scale, stepwise.prepare, stepwise.step_work
forward = functools.partial(stepwise.forward, step)
backward = functools.partial(stepwise.backward, step_back)
activations = functools.partial(stepwise.activations, QUANTITIES)
step_into = functools.partial(stepwise.step_into, step)

cells.register("mcell", sys.modules[__name__])
