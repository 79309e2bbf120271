"""Gradient flow through time: how much the loss at one step depends on the states k steps back.

For positions t of a text, L_t = −log p(ids[t+1] | ids[..t]) is the cross-entropy of step t, and

    ‖∂L_t/∂h^l_{t−k}‖   (and the LSTM's ‖∂L_t/∂c^l_{t−k}‖),   k = 0 .. K,

for every layer l, are total derivatives (every path from that state to L_t: the recurrence, the
layers above and, for the LSTM's h, its cell state). They are exact: one backward per position
from the dlogits of step t alone, over the window t−K .. t (a state before t−K cannot change the
gradient at t−K or later), with the per-step functions of `backstep`. The forward is the model's
own (`trace`), in float64. Averaged over positions, the norms against k show how fast the
gradient vanishes: geometrically for a vanilla RNN, far more slowly along the LSTM's cell state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charlstm import model
from charlstm.errors import UsageError
from charlstm.model import ModelConfig
from charlstm.probe.backstep import BACK_STEPS, LayerWeights
from charlstm.probe.scoring import log_softmax
from charlstm.probe.tracing import Trace, trace


@dataclass(frozen=True)
class GradientFlow:
    """Gradient norms per position t, layer l and lag k."""

    positions: np.ndarray  # (P,) the steps t
    h: np.ndarray  # (P, L, K+1) ‖∂L_t/∂h^l_{t−k}‖
    c: np.ndarray | None  # (P, L, K+1) ‖∂L_t/∂c^l_{t−k}‖ for the LSTM, else None

    @property
    def mean_h(self) -> np.ndarray:
        """(L, K+1) averaged over positions."""
        return self.h.mean(axis=0)

    @property
    def mean_c(self) -> np.ndarray | None:
        return None if self.c is None else self.c.mean(axis=0)


def decay(norms: np.ndarray) -> tuple[float, float] | None:
    """How much of the gradient is left K steps back: the mean norm at the last lag K over the
    one at k = 0, and the steady factor per step back that leaves as much, (ratio, ratio^(1/K)).
    `norms` (K+1,); None when K = 0 or a norm is 0."""
    K = len(norms) - 1
    if K < 1 or not (norms[0] > 0 and norms[K] > 0):
        return None
    ratio = float(norms[K] / norms[0])
    return ratio, ratio ** (1 / K)


def choose_positions(n_chars: int, max_lag: int, count: int) -> np.ndarray:
    """Up to `count` steps t, evenly spaced over [K, N − 2]: each has a target and K steps before it."""
    if max_lag < 0 or count < 1:
        raise UsageError("--max-lag must be >= 0 and --positions >= 1")
    last = n_chars - 2
    if last < max_lag:
        raise UsageError(f"{n_chars} characters are too few for --max-lag {max_lag}: at least {max_lag + 2} are needed")
    return np.unique(np.linspace(max_lag, last, count).round().astype(np.intp))


def gradient_flow(
    params: dict[str, np.ndarray], config: ModelConfig, ids: np.ndarray, max_lag: int,
    positions: int | np.ndarray = 32,
) -> GradientFlow:
    """The norms for `positions` steps t (a count, spread by `choose_positions`, or the steps)."""
    ts = choose_positions(len(ids), max_lag, positions) if np.isscalar(positions) else np.asarray(positions, np.intp)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    tr = trace(p64, config, ids)
    weights = [LayerWeights(*model.layer_params(p64, config, k)) for k in range(config.num_layers)]
    shape = (len(ts), config.num_layers, max_lag + 1)
    h = np.zeros(shape)
    c = np.zeros(shape) if config.cell == "lstm" else None
    for j, t in enumerate(ts):
        if not max_lag <= t <= len(ids) - 2:
            raise ValueError(f"position {t} needs {max_lag} steps before it and a target after it")
        _window_norms(tr, weights, p64["head.weight"], config.cell, int(t), h[j], None if c is None else c[j])
    return GradientFlow(ts, h, c)


def _window_norms(
    tr: Trace, weights: list[LayerWeights], W_hy: np.ndarray, cell: str, t: int,
    h_out: np.ndarray, c_out: np.ndarray | None,
) -> None:
    """Backward from L_t over steps t, t−1, .., t−K (K + 1 = h_out.shape[1]), layer by layer from
    the top, writing the norms into h_out and c_out (L, K+1)."""
    back = BACK_STEPS[cell]
    L, H = len(weights), W_hy.shape[1]
    dlogits = np.exp(log_softmax(tr.logits[t : t + 1])[0])  # p
    dlogits[tr.ids[t + 1]] -= 1.0  # ∂L_t/∂logits_t = p − onehot(target)
    dh_rec = [np.zeros(H) for _ in range(L)]  # what flows into h^l_s from step s + 1
    dc_rec = [np.zeros(H) for _ in range(L)]
    for k in range(h_out.shape[1]):
        from_above = dlogits @ W_hy if k == 0 else np.zeros(H)  # the head reads the top h_t only
        for l in reversed(range(L)):
            dh = dh_rec[l] + from_above
            h_out[l, k] = np.linalg.norm(dh)
            g = back(weights[l], tr.layers[l], t - k, dh, dc_rec[l])
            if c_out is not None and g.dc is not None:
                c_out[l, k] = np.linalg.norm(g.dc)
            dh_rec[l], dc_rec[l] = g.dh_prev, (g.dc_prev if g.dc_prev is not None else dc_rec[l])
            from_above = g.dxa @ weights[l].W_ih if l > 0 else from_above
