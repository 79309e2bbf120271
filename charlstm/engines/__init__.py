"""Engines: one training run, two ways to compute it.

The run (training/loop.py: the loop, divergence guard, validation, samples, checkpoints, events;
with training/plan.py, training/schedule.py and store/runs.py) never computes anything itself: it
asks an engine, chosen once when the run starts (`make_engine`) and passed along:

- "numpy" (`numpy_engine`): the hand-written model, optimisers and kernels of this package on the
  CPU — the readable reference, and the default;
- "torch" (`torch_engine`): the same model on PyTorch (`pip install 'charlstm[torch]'`), on a CPU,
  a GPU, or under `torchrun` one GPU per rank with DistributedDataParallel (`distributed`).

Both hold the weights under PyTorch's names and write the same checkpoint tensors, so a run moves
between engines through its resume file. A step is two calls, so that the run decides between
them whether the update is applied and at which rate:

    loss, grad_norm, new_state = engine.forward_backward(x, y, state)   # x, y: (T, B) ids
    if loss <= limit and isfinite(grad_norm): engine.update(lr)

Under torchrun the engine's `team` (`Team`) lets every rank agree on the run's decisions; a run
in one process has the `Solo` team, whose agreement is what it was given. Nothing here imports
torch: `world_size()` and `rank()` read torchrun's environment.

Engines declare themselves (`EngineKind`: name, the options they take, whether they train across
ranks, the library they need and how to install it, how to make one) in a registry, as cells do:
a new engine is one module that provides `Engine` and one `register(EngineKind(...))`; `config`
checks `--engine` against `names()`, and the run asks `get(name)` for everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from charlstm.engines.registry import ENGINE_OPTIONS, EngineKind, get, kinds, names, register
from charlstm.engines.team import Team, world_size
from charlstm.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from charlstm.config import ModelConfig, TrainConfig
    from charlstm.inference.loss import Evaluation
    from charlstm.nn.kernels import Kernels
    from charlstm.store.checkpoint import Checkpoint

State = Any  # the carried recurrent state, in the engine's own arrays (one per name in the cell's STATE_NAMES)


class Engine(Protocol):
    """What a run asks of an engine. Arrays in and out of it are NumPy; states are the engine's."""

    team: Team
    kernels: Kernels | None  # the CPU math that draws the run's samples (None: NumPy)

    def describe(self) -> str:
        """What computes, in words, for the banner: 'numpy (numba kernels)', 'torch 2.13.0 on cuda:0 (…), 4 ranks'."""

    def thread_control(self) -> Callable[[], Callable[[int], None]] | None:
        """What makes the set-threads of the CPU math this engine computes on (`charlstm.nn.threads`:
        the Tuner calls it with each count), or None where the count is not chosen as the run goes
        (a GPU, several ranks)."""

    def zero_state(self) -> State:
        """The all-zero carried state of this rank's streams."""

    def forward_backward(self, x: np.ndarray, y: np.ndarray, state: State) -> tuple[float, float, State]:
        """One window of truncated BPTT on ids x, targets y (T, B) — every stream of the run; a
        rank takes its own columns — from the carried `state`: the mean loss (nats/char, over
        every rank's streams), the global gradient norm before clipping (clipped to `clip` in
        place), and the final state (this rank's), detached. Both numbers are the same on every rank."""

    def update(self, lr: float) -> None:
        """Apply the optimiser to the gradients of the last `forward_backward` at rate `lr`."""

    def evaluate(self, ids: np.ndarray, B: int, T: int) -> Evaluation:
        """The loss of the ids (N,) under the model (`model_numpy`'s weights) exactly as
        `charlstm.inference.loss.evaluate` scores them."""

    def params_numpy(self) -> dict[str, np.ndarray]:
        """The weights being trained as NumPy arrays under PyTorch's names (the engine's own
        arrays, or copies): what the resume file holds."""

    def model_numpy(self) -> dict[str, np.ndarray]:
        """The model the run validates, samples and saves in its model file: the average of the
        weights (--ema) when the run keeps one, else `params_numpy()`. Valid until the next update."""

    def params_finite(self) -> bool: ...

    def snapshot(self) -> Any:
        """Copies of the weights and optimiser state: what `restore` goes back to."""

    def restore(self, snapshot: Any) -> None: ...

    def save_state(self, state: State) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The resume file's part of the engine: tensors `optim.<buffer>.<name>` and `state.<name>`
        ((L, B, H), every stream of the run), `average.<name>` with --ema (the average's sums,
        `charlstm.nn.average`), and metadata (`optimizer_steps`, `rng`, `average_weight`, …)."""

    def load_state(self, resume: Checkpoint) -> State:
        """Put a resume file's optimiser moments, step count and random state in place; return
        this rank's carried state. Raises KeyError (or ValueError) for what it lacks."""

    def close(self) -> None:
        """Let go of what the engine holds outside this process (a process group)."""


class Pending(Protocol):
    """A step's numbers on their way from the device."""

    def get(self) -> tuple[float, float]:
        """Wait for the step's (loss, gradient norm), and return them."""


@runtime_checkable
class LateGuard(Protocol):
    """An engine that can queue a step before its numbers are read (the torch engine on a GPU):
    the run's divergence guard then looks one step late (`training.loop`) where `late` is true."""

    late: bool

    def queue_step(self, x: np.ndarray, y: np.ndarray, state: State) -> tuple[Pending, State]:
        """`Engine.forward_backward` without waiting: its (loss, norm) on their way, and the final state."""

    def rewind(self) -> None:
        """Forget the last `queue_step`, which will not be applied: the generators draw again what it drew."""


def _numpy_engine() -> Any:
    """The NumPy engine's class."""
    from charlstm.engines.numpy_engine import NumpyEngine

    return NumpyEngine


def _check_torch_device(device: str, precision: str, ranks: int) -> Any:
    """torch_devices.check_device (its import imports torch)."""
    from charlstm.engines.torch_devices import check_device

    return check_device(device, precision, ranks)


def _torch_device_words() -> str:
    """torch_devices.devices (its import imports torch)."""
    from charlstm.engines.torch_devices import devices

    return devices()


def _torch_engine() -> Any:
    """The torch_engine module (its import imports torch)."""
    from charlstm.engines import torch_engine

    return torch_engine


register(EngineKind("numpy", "this package's own code, on the CPU", _numpy_engine, options=("kernels",)))
register(
    EngineKind(
        "torch",
        "PyTorch, on a CPU or GPUs; pip install 'charlstm[torch]'; several GPUs: torchrun",
        lambda: _torch_engine().TorchEngine,
        options=("device", "precision"),
        ranks=True,
        library="torch",
        needs="PyTorch",
        install="pip install 'charlstm[torch]'",
        check_device=_check_torch_device,
    )
)


def make_engine(config: ModelConfig, cfg: TrainConfig, params: dict[str, np.ndarray], dtype: Any = None) -> Engine:
    """The engine `cfg.engine` names, holding `params` (copied) and a fresh optimiser; `dtype`
    (default float32) is what it computes in (float64 for tests of the math)."""
    import numpy as np

    kind = get(cfg.engine)
    return _load(kind, kind.make)(config, cfg, params, dtype or np.float32)


def check(cfg: TrainConfig, given: Sequence[str] = (), batch: bool = True) -> None:
    """A UsageError, before anything is read or written, when this machine cannot train with
    `cfg`'s engine as chosen: an engine option (--device, --precision, --kernels) that it does not
    take (given: the options the user set), torchrun with an engine that trains in one process,
    its library missing, a device that is not there, a precision it cannot run there; with
    `batch`, a --batch-size that the ranks cannot share equally."""
    kind, K = get(cfg.engine), world_size()
    _check_options(kind, given)
    if K > 1 and not kind.ranks:
        across = " or ".join(k.name for k in kinds() if k.ranks)
        raise UsageError(
            f"torchrun started {K} ranks, but only the {across} engine trains across ranks; add --engine {across}"
        )
    if (check_device := kind.check_device) is not None:
        _load(kind, lambda: check_device(cfg.device, cfg.precision, K))
    if batch and cfg.batch_size % K:
        fits = max(K, cfg.batch_size // K * K)
        raise UsageError(
            f"--batch-size {cfg.batch_size} does not divide among {K} ranks (each takes an equal share of the "
            f"streams); use a multiple of {K}, e.g. --batch-size {fits}, or a number of ranks that divides {cfg.batch_size}"
        )


def describe_torch_devices() -> str:
    """The devices the torch engine can use here, in words ('cpu, cuda ×2'): imports PyTorch, or
    raises the UsageError that says how to install it."""
    return str(_load(get("torch"), _torch_device_words))


def _check_options(kind: EngineKind, given: Sequence[str]) -> None:
    """The engine options given that `kind` does not take, refused in one line naming whose they are."""
    foreign = [name for name in ENGINE_OPTIONS if name in given and name not in kind.options]
    if not foreign:
        return
    flags = " and ".join(f"--{name}" for name in foreign)
    owners = [k.name for k in kinds() if set(foreign) <= set(k.options)] or ["another"]
    are, them = ("are options", "them") if len(foreign) > 1 else ("is an option", "it")
    whose = " or ".join(owners)
    if "engine" in given:
        raise UsageError(f"{flags} {are} of the {whose} engine, not of the {kind.name} engine: drop {them}")
    raise UsageError(f"{flags} {are} of the {whose} engine; add --engine {owners[0]}, or drop {them}")


def _load(kind: EngineKind, load: Callable[[], Any]) -> Any:
    """What `load` gives; a UsageError saying how to install the engine's library when it cannot be imported."""
    try:
        return load()
    except ImportError as e:
        if kind.library is None or not (e.name or "").startswith(kind.library):
            raise
        raise UsageError(
            f"the {kind.name} engine needs {kind.needs or kind.library}, which cannot be imported here: {kind.install}"
        ) from None


__all__ = [  # the registry's names, here too: `charlstm.engines.register(...)` adds an engine
    "ENGINE_OPTIONS",
    "Engine",
    "EngineKind",
    "LateGuard",
    "Pending",
    "State",
    "Team",
    "check",
    "get",
    "kinds",
    "make_engine",
    "names",
    "register",
    "world_size",
]
