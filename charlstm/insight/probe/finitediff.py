"""Gradient check: the analytic gradients of `model.backward` against central differences of
the loss, in float64, for a small random model — the derivations, checked live.

    numeric_j = (loss(θ + ε e_j) − loss(θ − ε e_j)) / 2ε        ε = 1e-6
    error_j   = |analytic_j − numeric_j| / max(|analytic_j|, |numeric_j|, FLOOR)

per entry of every parameter and of the initial state; a tensor passes when its largest error
is below the tolerance. With ε = 1e-6 in float64 the truncation error is ~ε² and the rounding
error of the difference ~1e-16·loss/ε ≈ 3e-10 in absolute terms, so entries smaller than FLOOR
are measured against FLOOR (relative to it, that noise is ~3e-6). Correct gradients then give
errors of 1e-9 .. 5e-6, and a wrong derivation errors near 1.

The analytic gradient is a parameter, `grad_fn`: the model's own backward by default,
`reference_grads` for the plain reference (`probe.reference`), or a wrong one, for a test to see
the check fail. `numeric_grad` and `max_error` are the check's two halves, for any function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from charlstm.insight.probe import reference
from charlstm.nn import model
from charlstm.nn.model import ModelConfig, State
from charlstm.nn.ops import softmax_cross_entropy

EPS = 1e-6
TOLERANCE = 1e-4
FLOOR = 1e-4  # entries smaller than this are compared relative to it

Grads = dict[str, np.ndarray]
GradFn = Callable[[dict[str, np.ndarray], ModelConfig, np.ndarray, np.ndarray, State], Grads]


@dataclass(frozen=True)
class Problem:
    """A small model and one window of data: ids x, targets y (T, B) and an initial state."""

    config: ModelConfig
    params: dict[str, np.ndarray]  # float64
    x: np.ndarray
    y: np.ndarray
    state: State  # (L, B, H) arrays, nonzero so their gradients are checked too


def random_problem(cell: str, seed: int = 0, V: int = 5, H: int = 4, L: int = 2, T: int = 6, B: int = 2) -> Problem:
    """Every parameter and the initial state drawn from N(0, 0.5²) (biases too, so no gradient
    is trivially zero), random ids."""
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, cell=cell)
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) * 0.5 for k, s in model.param_shapes(config).items()}
    state = tuple(rng.standard_normal((L, B, H)) * 0.5 for _ in model.state_names(config))
    return Problem(config, params, rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B)), state)


def loss(params: dict[str, np.ndarray], config: ModelConfig, x: np.ndarray, y: np.ndarray, state: State) -> float:
    """Mean cross-entropy of the window (nats per character), dropout off."""
    logits, _, _ = model.forward(params, config, x, state, model.Cache())
    return softmax_cross_entropy(logits, y.reshape(-1))[0]


def model_grads(
    params: dict[str, np.ndarray], config: ModelConfig, x: np.ndarray, y: np.ndarray, state: State
) -> Grads:
    """The analytic gradients: `model.backward`, plus the initial state's as "state0.h" etc."""
    logits, _, cache = model.forward(params, config, x, state, model.Cache())
    _, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
    grads, dstate = model.backward(params, config, dlogits, cache)
    out = {k: v.copy() for k, v in grads.items()}
    out.update({f"state0.{n}": d.copy() for n, d in zip(model.state_names(config), dstate)})
    return out


def reference_grads(
    params: dict[str, np.ndarray], config: ModelConfig, x: np.ndarray, y: np.ndarray, state: State
) -> Grads:
    """The gradients of the plain reference (`probe.reference`: the cells' plain `step_back`),
    named as `model_grads` names them."""
    logits, _, records = reference.forward(params, config, x, state)
    _, dlogits = reference.loss_and_dlogits(logits, y.reshape(-1))
    grads, dstate = reference.backward(params, config, dlogits, records)
    return {**grads, **{f"state0.{n}": d for n, d in zip(model.state_names(config), dstate)}}


def numeric_grad(f: Callable[[], float], x: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Central differences of the scalar f() w.r.t. every entry of x, which is perturbed in place
    and restored exactly."""
    grad = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        old = x[j]
        x[j] = old + eps
        plus = f()
        x[j] = old - eps
        minus = f()
        x[j] = old
        grad[j] = (plus - minus) / (2 * eps)
    return grad


def numeric_grads(p: Problem) -> Grads:
    """Central differences of `loss` w.r.t. every entry of every parameter and initial state."""
    tensors = {**p.params, **{f"state0.{n}": s for n, s in zip(model.state_names(p.config), p.state)}}
    return {name: numeric_grad(lambda: loss(p.params, p.config, p.x, p.y, p.state), t) for name, t in tensors.items()}


@dataclass(frozen=True)
class TensorCheck:
    name: str
    shape: tuple[int, ...]
    max_error: float  # the largest entry error (see the module docstring)
    passed: bool


@dataclass(frozen=True)
class GradcheckResult:
    cell: str
    tensors: tuple[TensorCheck, ...]
    tolerance: float

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)


def entry_errors(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    return np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), FLOOR)


def max_error(analytic: np.ndarray | None, numeric: np.ndarray) -> float:
    """The largest entry error of a tensor (see the module docstring); inf for a missing or
    misshapen analytic gradient."""
    if analytic is None or np.shape(analytic) != np.shape(numeric):
        return float("inf")
    return float(entry_errors(analytic, numeric).max(initial=0.0))


def gradcheck(p: Problem, grad_fn: GradFn = model_grads, tolerance: float = TOLERANCE) -> GradcheckResult:
    """Compare grad_fn's gradients with central differences, tensor by tensor. The problem's
    tensors are perturbed in place and restored exactly."""
    numeric = numeric_grads(p)
    analytic = grad_fn(p.params, p.config, p.x, p.y, p.state)
    checks = []
    for name, n in numeric.items():
        error = max_error(analytic.get(name), n)
        checks.append(TensorCheck(name, n.shape, error, error < tolerance))
    return GradcheckResult(p.config.cell, tuple(checks), tolerance)
