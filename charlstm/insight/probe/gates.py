"""Gate saturation (Karpathy, Johnson & Fei-Fei 2015, figure 3): how often each unit's gate is
nearly shut or nearly fully open.

A gate is left-saturated at a step when its value is below `low` and right-saturated when above
`high`. Each cell says what is counted and where (`Cell.GATES`): 0.1 and 0.9 for the sigmoid gates
(LSTM i, f, o; GRU r, z). A vanilla RNN has no gates; for it the same counts are made of its tanh
output h with −0.9 and 0.9, so its row says how often units are pinned at ±1 (where tanh' ≈ 0 and
the gradient through them vanishes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charlstm.insight.probe.tracing import Trace
from charlstm.nn import model
from charlstm.nn.model import ModelConfig


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
    """Every layer's gates (what the cell counts: `Cell.GATES`), layer by layer."""
    out = []
    for k in range(config.num_layers):
        for gate, (low, high) in model.cell_of(config).GATES.items():
            values = tr.values(k, gate)  # (N, H)
            out.append(GateSaturation(k, gate, low, high, (values < low).mean(axis=0), (values > high).mean(axis=0)))
    return out


def stand_ins(config: ModelConfig) -> str | None:
    """A line for the reader when some of what `saturation` counts are no gates (the vanilla
    RNN's tanh output h), else None."""
    cell = model.cell_of(config)
    others = [(q, lo, hi) for q, (lo, hi) in cell.GATES.items() if q not in cell.SIGMOID]
    if not others:
        return None
    counted = "; ".join(f"its {q} is below {_number(lo)} or above {_number(hi)}" for q, lo, hi in others)
    if len(others) == len(cell.GATES):
        return f"the {config.cell.upper()} has no gates; shown instead: how often {counted}"
    return f"besides the gates of the {config.cell.upper()}, shown: how often {counted}"


def _number(x: float) -> str:
    return f"{x:g}".replace("-", "−")
