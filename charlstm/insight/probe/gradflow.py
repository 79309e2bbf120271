"""Gradient flow through time: how much the loss at one step depends on the states k steps back.

For positions t of a text, L_t = −log p(ids[t+1] | ids[..t]) is the cross-entropy of step t, and

    ‖∂L_t/∂h^l_{t−k}‖   (and so for every state tensor the cell declares: the LSTM's c),   k = 0 .. K,

for every layer l, are total derivatives (every path from that state to L_t: the recurrence, the
layers above and, for the LSTM's h, its cell state). They are exact: one backward per position
from the dlogits of step t alone, over the window t−K .. t (a state before t−K cannot change the
gradient at t−K or later), with the cell's plain one-step backward (`Cell.step_back`). The
forward is the model's own (`trace`), in float64. Averaged over positions, the norms against k
show how fast the gradient vanishes: geometrically for a vanilla RNN, far more slowly along the
LSTM's cell state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charlstm.errors import UsageError
from charlstm.insight.probe.scoring import log_softmax
from charlstm.insight.probe.tracing import Trace, trace
from charlstm.nn import model
from charlstm.nn.model import ModelConfig


@dataclass(frozen=True)
class GradientFlow:
    """Gradient norms per position t, layer l and lag k, for each state tensor of the cell."""

    positions: np.ndarray  # (P,) the steps t
    norms: dict[str, np.ndarray]  # state name → (P, L, K+1) ‖∂L_t/∂state^l_{t−k}‖, in the cell's STATE_NAMES order

    @property
    def states(self) -> tuple[str, ...]:
        """The cell's state names, h first: what the views draw, one series each."""
        return tuple(self.norms)

    def mean(self, name: str) -> np.ndarray:
        """(L, K+1) the norms of state `name`, averaged over positions."""
        return self.norms[name].mean(axis=0)


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
    params: dict[str, np.ndarray],
    config: ModelConfig,
    ids: np.ndarray,
    max_lag: int,
    positions: int | np.ndarray = 32,
) -> GradientFlow:
    """The norms for `positions` steps t (a count, spread by `choose_positions`, or the steps)."""
    if isinstance(positions, (int, np.integer)):
        ts = choose_positions(len(ids), max_lag, int(positions))
    else:
        ts = np.asarray(positions, np.intp)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    walk = _Walk(config, p64, trace(p64, config, ids))
    norms = {name: np.zeros((len(ts), config.num_layers, max_lag + 1)) for name in walk.cell.STATE_NAMES}
    for j, t in enumerate(ts):
        if not max_lag <= t <= len(ids) - 2:
            raise ValueError(f"position {t} needs {max_lag} steps before it and a target after it")
        walk.norms(int(t), {name: n[j] for name, n in norms.items()})
    return GradientFlow(ts, norms)


class _Walk:
    """Backward from one step's loss, a step and a layer at a time, with the cell's plain
    `step_back`; each step's record comes from the cell's plain `step`, redone from the traced
    input and state of that step."""

    def __init__(self, config: ModelConfig, p64: dict[str, np.ndarray], tr: Trace) -> None:
        self.cell, self.tr, self.W_hy = model.cell_of(config), tr, p64["head.weight"]
        self.weights = [model.layer_params(p64, config, k) for k in range(config.num_layers)]

    def record(self, layer: int, s: int) -> dict[str, np.ndarray]:
        """The plain step's record of `layer` at step s, for one stream (rows of 1)."""
        W_ih, W_hh, b_ih, b_hh = self.weights[layer]
        x_part = W_ih[:, self.tr.ids[s]] if layer == 0 else W_ih @ self.tr.layers[layer - 1]["h"][s]  # (G,)
        acts = self.tr.layers[layer]
        state = tuple(acts[n][s - 1 : s] if s > 0 else np.zeros((1, W_hh.shape[1])) for n in self.cell.STATE_NAMES)
        return self.cell.step((x_part + b_ih)[None], state, W_hh, b_hh)[1]

    def norms(self, t: int, out: dict[str, np.ndarray]) -> None:
        """From L_t over steps t, t−1, .., t−K (K + 1 = the width of each out), layer by layer
        from the top, writing ‖∂L_t/∂state^l_{t−k}‖ into out[name][l, k]."""
        L, H = len(self.weights), self.W_hy.shape[1]
        dlogits = np.exp(log_softmax(self.tr.logits[t : t + 1]))  # (1, V) p
        dlogits[0, self.tr.ids[t + 1]] -= 1.0  # ∂L_t/∂logits_t = p − onehot(target)
        names = self.cell.STATE_NAMES
        carried = [[np.zeros((1, H)) for _ in names] for _ in range(L)]  # what flows into step s from s + 1
        for k in range(out["h"].shape[1]):
            from_above = dlogits @ self.W_hy if k == 0 else np.zeros((1, H))  # the head reads the top h_t only
            for layer in reversed(range(L)):
                d = carried[layer]
                g = self.cell.step_back((d[0] + from_above, *d[1:]), self.record(layer, t - k), self.weights[layer][1])
                for name, total in zip(names, g.dstate):
                    out[name][layer, k] = np.linalg.norm(total)
                carried[layer] = list(g.dstate_prev)
                if layer > 0:
                    from_above = g.dxa @ self.weights[layer][0]  # (1, H): into the layer below's h, at this step
