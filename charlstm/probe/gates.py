"""Gate saturation (Karpathy, Johnson & Fei-Fei 2015, figure 3): how often each unit's gate is
nearly shut or nearly fully open.

A gate is left-saturated at a step when its value is below `low` and right-saturated when above
`high`: 0.1 and 0.9 for the sigmoid gates (LSTM i, f, o; GRU r, z). A vanilla RNN has no gates;
for it the same counts are made of its tanh output h with −0.9 and 0.9, so its row says how often
units are pinned at ±1 (where tanh' ≈ 0 and the gradient through them vanishes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charlstm.model import ModelConfig
from charlstm.probe.tracing import Trace

GATES = {"lstm": ("i", "f", "o"), "gru": ("r", "z"), "rnn": ("h",)}
THRESHOLDS = {"h": (-0.9, 0.9)}  # tanh; every other entry of GATES is a sigmoid gate
SIGMOID_THRESHOLDS = (0.1, 0.9)


@dataclass(frozen=True)
class GateSaturation:
    """Per-unit saturation fractions of one gate of one layer over the N steps of a trace."""

    layer: int
    gate: str
    low: float
    high: float
    left: np.ndarray  # (H,) fraction of steps with value < low
    right: np.ndarray  # (H,) fraction of steps with value > high

    @property
    def left_fraction(self) -> float:
        """Over units and steps (every unit has the same number of steps)."""
        return float(self.left.mean())

    @property
    def right_fraction(self) -> float:
        return float(self.right.mean())


def saturation(tr: Trace, config: ModelConfig) -> list[GateSaturation]:
    """Every layer's gates (`GATES[config.cell]`), layer by layer."""
    out = []
    for k in range(config.num_layers):
        for gate in GATES[config.cell]:
            low, high = THRESHOLDS.get(gate, SIGMOID_THRESHOLDS)
            values = tr.values(k, gate)  # (N, H)
            out.append(GateSaturation(k, gate, low, high, (values < low).mean(axis=0), (values > high).mean(axis=0)))
    return out
