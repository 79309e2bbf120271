"""Optimisers over dicts of parameter arrays, and gradient clipping by global norm.

Each optimiser updates parameters in place and subtracts the (scaled) gradient. The gradient
arrays are used as scratch space and hold garbage afterwards (they are the model cache's buffers,
rewritten by the next backward).
Moment buffers are exposed by `state_tensors()` / `load_state_tensors()` so a checkpoint can
carry them and a resumed run continues exactly.
"""

from __future__ import annotations

import math

import numpy as np

from charlstm.config import TrainConfig, default_of
from charlstm.errors import UsageError
from charlstm.nn import kernels as kernels_
from charlstm.nn.kernels import Kernels

# The hyper-parameters, written once (the torch engine gives torch.optim the same)
ADAM_BETAS = (default_of(TrainConfig, "adam_beta1"), default_of(TrainConfig, "adam_beta2"))  # --adam-beta1/2's
RMSPROP_ALPHA = 0.95
SGD_MOMENTUM = 0.9
EPS = 1e-8


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt(sum of squares) over every gradient array; inf or nan if any entry is."""
    total = 0.0
    for g in grads.values():
        flat = g.reshape(-1)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients by max_norm / norm when their global norm exceeds max_norm (in place).
    Returns the norm before clipping. max_norm <= 0 disables clipping."""
    norm = global_norm(grads)
    if max_norm > 0 and norm > max_norm and math.isfinite(norm):
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= scale
    return norm


class Optimizer:
    """Base class: `step(params, grads, lr)` updates params in place."""

    name = "base"
    buffers: tuple[str, ...] = ()

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.steps = 0
        self.state = {f"{buf}.{name}": np.zeros_like(p) for buf in self.buffers for name, p in params.items()}

    def state_tensors(self) -> dict[str, np.ndarray]:
        """The moment buffers, named `<buffer>.<parameter name>`."""
        return dict(self.state)

    def load_state_tensors(self, tensors: dict[str, np.ndarray], steps: int) -> None:
        for key, buf in self.state.items():
            if key not in tensors or tensors[key].shape != buf.shape:
                raise KeyError(key)
            buf[...] = tensors[key]
        self.steps = steps

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        self.steps += 1
        for name, p in params.items():
            self._update(name, p, grads[name], lr)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p ← p − lr·v with momentum v ← μ v + g (plain SGD when μ = 0)."""

    name = "sgd"
    buffers = ("momentum",)

    def __init__(self, params: dict[str, np.ndarray], momentum: float = SGD_MOMENTUM) -> None:
        super().__init__(params)
        self.momentum = momentum

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        v = self.state[f"momentum.{name}"]
        v *= self.momentum
        v += g
        np.multiply(v, lr, out=g)
        p -= g


class RMSProp(Optimizer):
    """v ← α v + (1 − α) g²;  p ← p − lr · g / (√v + ε)."""

    name = "rmsprop"
    buffers = ("square_avg",)

    def __init__(self, params: dict[str, np.ndarray], alpha: float = RMSPROP_ALPHA, eps: float = EPS) -> None:
        super().__init__(params)
        self.alpha, self.eps = alpha, eps

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        v = self.state[f"square_avg.{name}"]
        sq = np.multiply(g, g)
        # v ← α v + (1 − α) g², in place as v ← α (v − g²) + g²
        v -= sq
        v *= self.alpha
        v += sq
        np.sqrt(v, out=sq)
        sq += self.eps
        g /= sq
        g *= lr
        p -= g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias correction:
    m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
    p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)."""

    name = "adam"
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: dict[str, np.ndarray],
        beta1: float = ADAM_BETAS[0],
        beta2: float = ADAM_BETAS[1],
        eps: float = EPS,
        kernels: Kernels | None = None,
    ) -> None:
        super().__init__(params)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.update = (kernels or kernels_.numpy()).adam_update  # NumPy reference or fused

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        m = self.state[f"exp_avg.{name}"]
        v = self.state[f"exp_avg_sq.{name}"]
        self.update(p, g, m, v, lr, self.beta1, self.beta2, self.eps, self.steps)


OPTIMIZERS: dict[str, type[Optimizer]] = {"adam": Adam, "rmsprop": RMSProp, "sgd": SGD}


def make_optimizer(
    name: str, params: dict[str, np.ndarray], kernels: Kernels | None = None, betas: tuple[float, float] | None = None
) -> Optimizer:
    """The optimiser called `name` (adam, rmsprop or sgd) over `params`; Adam's update, with
    decays `betas` (β₁, β₂; None: its defaults), runs on `kernels` (None: NumPy)."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise UsageError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    if cls is Adam:
        return Adam(params, *betas, kernels=kernels) if betas else Adam(params, kernels=kernels)
    return cls(params)
