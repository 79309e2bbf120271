"""The NumPy engine: the hand-written model of this package (model.py, cells/, optim.py) on the CPU.

It holds what a run computes with: the weights (a dict of arrays under PyTorch's names), the
optimiser and its moments, the average of the weights (--ema), the random generator of dropout,
the activation buffers reused from window to window, and the kernels (NumPy or numba: chosen
here, once per run, and nowhere else).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from charlstm.config import ModelConfig, TrainConfig
from charlstm.engines.team import Solo, Team
from charlstm.inference.loss import Evaluation, evaluate
from charlstm.nn import model, threads
from charlstm.nn.average import WeightAverage
from charlstm.nn.kernels import load as load_kernels
from charlstm.nn.optim import clip_grad_norm, make_optimizer
from charlstm.store.checkpoint import Checkpoint


@dataclass(frozen=True)
class Snapshot:
    """Copies of the weights and optimiser state."""

    params: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray]
    optimizer_steps: int
    average: tuple[dict[str, np.ndarray], float] | None  # the average's sums and weight


class NumpyEngine:
    """See `charlstm.engines.Engine`. Computes in `dtype` (float32; float64 for tests)."""

    def __init__(
        self, config: ModelConfig, cfg: TrainConfig, params: dict[str, np.ndarray], dtype: Any = np.float32
    ) -> None:
        self.config, self.cfg, self.dtype = config, cfg, np.dtype(dtype)
        self.team: Team = Solo()
        self.params = {k: np.array(v, self.dtype) for k, v in params.items()}
        self.kernels = load_kernels(cfg.kernels)
        # compiles on the first run ever (~10 s, sampling's kernels too), then loads from disk
        self.kernels.warm_up(self.dtype.type)
        self.optimizer = make_optimizer(cfg.optimizer, self.params, self.kernels, (cfg.adam_beta1, cfg.adam_beta2))
        self.average = WeightAverage(self.params, cfg.ema) if cfg.ema > 0 else None
        self.dropout = model.Dropout(cfg.dropout, cfg.dropout_mask, cfg.weight_drop)
        self.rng = np.random.default_rng(cfg.seed)  # dropout's masks
        self.cache = model.Cache()  # activation buffers, reused
        self.grads: dict[str, np.ndarray] = {}

    def describe(self) -> str:
        return f"numpy ({self.kernels.name} kernels)"

    def thread_control(self) -> Callable[[], Callable[[int], None]]:
        return threads.numpy_threads

    def zero_state(self) -> model.State:
        return model.zero_state(self.config, self.cfg.batch_size, self.dtype)

    def forward_backward(self, x: np.ndarray, y: np.ndarray, state: model.State) -> tuple[float, float, model.State]:
        loss, self.grads, new_state, self.cache = model.loss_and_grads(
            self.params, self.config, x, y, state, self.cache, self.dropout, self.rng, self.kernels
        )
        return loss, clip_grad_norm(self.grads, self.cfg.clip), new_state

    def update(self, lr: float) -> None:
        self.optimizer.step(self.params, self.grads, lr)
        if self.average is not None:
            self.average.update(self.params)

    def evaluate(self, ids: np.ndarray, B: int, T: int) -> Evaluation:
        return evaluate(self.model_numpy(), self.config, ids, B, T, self.cache, self.kernels)

    def params_numpy(self) -> dict[str, np.ndarray]:
        return self.params

    def model_numpy(self) -> dict[str, np.ndarray]:
        return self.params if self.average is None else self.average.value(self.params)

    def params_finite(self) -> bool:
        return all(np.isfinite(p).all() for p in self.params.values())

    def snapshot(self) -> Snapshot:
        opt, avg = self.optimizer, self.average
        average = None if avg is None else ({k: v.copy() for k, v in avg.sums.items()}, avg.weight)
        return Snapshot(
            {k: v.copy() for k, v in self.params.items()},
            {k: v.copy() for k, v in opt.state.items()},
            opt.steps,
            average,
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Put the snapshot's weights and optimiser state back, in place."""
        for k, v in snapshot.params.items():
            self.params[k][...] = v
        for k, v in snapshot.optimizer_state.items():
            self.optimizer.state[k][...] = v
        self.optimizer.steps = snapshot.optimizer_steps
        if self.average is not None and snapshot.average is not None:
            self.average.load(*snapshot.average)

    def save_state(self, state: model.State) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        tensors = {f"optim.{k}": v for k, v in self.optimizer.state_tensors().items()}
        tensors.update({f"state.{n}": s for n, s in zip(model.state_names(self.config), state)})
        meta = {"optimizer_steps": self.optimizer.steps, "rng": self.rng.bit_generator.state}
        if self.average is not None:
            tensors.update({f"average.{k}": s for k, s in self.average.sums.items()})
            meta["average_weight"] = self.average.weight
        return tensors, meta

    def load_state(self, resume: Checkpoint) -> model.State:
        self.optimizer.load_state_tensors(
            {k[len("optim.") :]: v for k, v in resume.extra.items() if k.startswith("optim.")},
            int(resume.train["optimizer_steps"]),
        )
        self.rng.bit_generator.state = resume.train["rng"]
        sums = {k[len("average.") :]: v for k, v in resume.extra.items() if k.startswith("average.")}
        if self.average is not None and sums:  # else the average starts here (--ema new on resume)
            self.average.load(sums, resume.train["average_weight"])
        return tuple(resume.extra[f"state.{n}"].astype(self.dtype) for n in model.state_names(self.config))

    def close(self) -> None:
        pass
