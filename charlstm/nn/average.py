"""An average of the weights over training (--ema): what a run validates, samples and saves as its
model, while training goes on with its own weights.

The exponential moving average with decay d, started from zero and bias-corrected, as Adam's
moments are:

    s_t = d s_{t-1} + (1 − d) θ_t        w_t = d w_{t-1} + (1 − d)        average_t = s_t / w_t

so the average is Σ_i c_i θ_i / Σ_i c_i with c_i = (1 − d) d^(t−i): the last ~1/(1 − d) updates
count most, and early on it averages the updates made so far instead of leaning towards zero.
Keeping the total weight w_t (rather than a step count, w_t = 1 − d^t) keeps it exact when a
resumed run changes the decay.
"""

from __future__ import annotations

import numpy as np


class WeightAverage:
    """The bias-corrected EMA of a dict of weight arrays. `update` after every applied step;
    `value` is the average. `sums` (s_t) and `weight` (w_t) are its whole state."""

    def __init__(self, params: dict[str, np.ndarray], decay: float) -> None:
        self.decay = decay
        self.sums = {k: np.zeros_like(p) for k, p in params.items()}
        self.weight = 0.0
        self._average = {k: np.empty_like(p) for k, p in params.items()}  # what `value` returns
        self._scratch = {k: np.empty_like(p) for k, p in params.items()}

    def update(self, params: dict[str, np.ndarray]) -> None:
        """Take the weights after an update into the average: s ← s + (1 − d)(θ − s)."""
        share = 1.0 - self.decay
        for k, s in self.sums.items():
            tmp = np.subtract(params[k], s, out=self._scratch[k])
            tmp *= share
            s += tmp
        self.weight = self.decay * self.weight + share

    def value(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The average s / w (buffers rewritten by the next call), or `params` themselves before
        the first update."""
        if self.weight == 0.0:
            return params
        for k, s in self.sums.items():
            np.divide(s, self.weight, out=self._average[k])
        return self._average

    def load(self, sums: dict[str, np.ndarray], weight: float) -> None:
        """Put a saved state (`sums`, `weight`) in place; KeyError naming a sum that is missing or
        of another shape."""
        for k, s in self.sums.items():
            if k not in sums or sums[k].shape != s.shape:
                raise KeyError(f"average.{k}")
            s[...] = sums[k]
        self.weight = float(weight)
