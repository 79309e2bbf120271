"""Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models"): a
model that keeps learning from the text it reads. The text is read as ONE stream, window by
window, the recurrent state carried across windows as in `evaluate`; each window is first scored
with the current weights, and only then are the weights moved a little along that window's
gradient. So every character is still predicted from the characters before it alone: the weights
that score window k were changed only by windows 0..k−1. (Several streams read side by side, as
`evaluate` lays a text out, would let a stream learn from a later part of the text before scoring
an earlier one; hence one stream.)

The update, for every parameter θ (an array of any shape, elementwise), after window i with
gradient g_i of the window's mean loss (truncated BPTT within the window, dropout off):

    MS_i = MS_{i−1} + (g_i² − MS_{i−1}) / i                    mean square of g over windows 1..i
    θ_i  = θ_{i−1} − η · g_i / (√MS_i + ε) + λ · (θ_trained − θ_{i−1})

η (`lr`) is a step in units of the gradient's own RMS, so one rate fits every layer and model
size; λ (`decay`) pulls the weights back toward the trained ones, θ_trained, so the model forgets
what it adapted to at rate λ per window. Krause et al.'s "RMS with global prior" takes MS from the
training text; `eval` has only the text it scores, so MS here is gathered from the windows read so
far — the past only, like everything else. With η = 0 the weights never move and the loss is
`evaluate`'s with one stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from charlstm.inference.loss import Evaluation
from charlstm.nn import model
from charlstm.nn.model import ModelConfig
from charlstm.nn.ops import softmax_cross_entropy_rows
from charlstm.text.corpus import iter_windows

EPS = 1e-8  # keeps the step finite where a parameter has had no gradient yet (a character unseen)


class Adapter:
    """The weights being adapted, θ (copies: the trained ones are never written), θ_trained, and
    the mean square of the gradients so far, MS (each a dict of arrays shaped like the params)."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, decay: float) -> None:
        self.trained = params
        self.params = {k: np.array(v, copy=True) for k, v in params.items()}
        self.ms = {k: np.zeros_like(v) for k, v in params.items()}
        self.lr, self.decay, self.steps = lr, decay, 0

    def update(self, grads: dict[str, np.ndarray]) -> None:
        """One step of the rule in the module's docstring, in place, from one window's gradients."""
        self.steps += 1
        for name, theta in self.params.items():
            g, ms = grads[name], self.ms[name]
            ms += (np.square(g) - ms) / self.steps
            pull = self.decay * (self.trained[name] - theta)
            theta -= self.lr * g / (np.sqrt(ms) + EPS)
            theta += pull


@dataclass(frozen=True)
class AdaptiveEvaluation(Evaluation):
    """`Evaluation` of dynamic evaluation; `char_losses` (chars,), the loss in nats of every
    scored character in text order, when asked for."""

    char_losses: np.ndarray | None = None


def adapt(
    adapter: Adapter,
    config: ModelConfig,
    ids: np.ndarray,
    T: int,
    on_window: Callable[[np.ndarray], None] | None = None,
) -> model.State:
    """Read the ids (N,) as one stream in windows of T, scoring each window with `adapter.params`
    and then updating them (`Adapter.update`). `on_window(losses)` gets each window's
    per-character losses (length,) before its update. Returns the state after the last window."""
    state = model.zero_state(config, 1, adapter.params["head.weight"].dtype)
    cache = model.Cache()
    for x, y in iter_windows(ids, 1, T):
        logits, state, cache = model.forward(adapter.params, config, x, state, cache)
        losses, dlogits = softmax_cross_entropy_rows(logits, y.reshape(-1))
        if on_window is not None:
            on_window(losses)
        if adapter.lr > 0.0:
            grads, _ = model.backward(adapter.params, config, dlogits, cache)
            adapter.update(grads)
    return state


def evaluate_adaptive(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    ids: np.ndarray,
    T: int,
    lr: float,
    decay: float,
    per_char: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> AdaptiveEvaluation:
    """The loss of dynamic evaluation over ids (N,): every character but the first scored once,
    before the weights learn from it. `params` (θ_trained) are left as they are. `per_char`
    keeps every character's loss; `on_progress(scored, to_score)` follows each window."""
    if len(ids) < 2:
        raise ValueError("evaluation needs at least two characters")
    total, count, kept = 0.0, 0, []

    def on_window(losses: np.ndarray) -> None:
        nonlocal total, count
        total += float(losses.sum())
        count += len(losses)
        if per_char:
            kept.append(losses)
        if on_progress is not None:
            on_progress(count, len(ids) - 1)

    adapt(Adapter(params, lr, decay), config, ids, T, on_window)
    return AdaptiveEvaluation(total / count, count, np.concatenate(kept) if per_char else None)


def adapted_params(
    params: dict[str, np.ndarray], config: ModelConfig, ids: np.ndarray, T: int, lr: float, decay: float
) -> dict[str, np.ndarray]:
    """The weights after reading ids (N,) (`sample --adapt`: the seed): a new dict, `params`
    left as they are. Fewer than two ids teach nothing: the weights come back unchanged."""
    adapter = Adapter(params, lr, decay)
    if len(ids) >= 2:
        adapt(adapter, config, ids, T)
    return adapter.params
