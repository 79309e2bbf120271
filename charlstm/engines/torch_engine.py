"""The torch engine: the model of model.py on PyTorch, on a CPU, a GPU, or one GPU per rank under
torchrun (DistributedDataParallel: `distributed`).

The same model as the NumPy engine's, so that a run computes the same losses on either:

- one recurrent module per layer (`nn.LSTM`, `nn.GRU`, `nn.RNN(nonlinearity="tanh")`: cuDNN on a
  GPU) fed the one-hot characters, dropout after every layer's output, the last one included (as
  model.py has it; `nn.LSTM(dropout=p)` would leave out the last), then `nn.Linear`;
- the weights the NumPy engine starts from (`model.init_params`: the forget-gate bias included),
  copied in under PyTorch's names;
- torch.optim's Adam, RMSprop and SGD with the hyper-parameters of optim.py (the same update
  formulas; their moments under the same names in checkpoints), clipping by the global norm;
- the same windows: B contiguous streams, the state carried from window to window, detached.

Dropout draws from the engine's own generator (seeded per rank) and weight drop from one seeded
alike on every rank; the resume file keeps both, so a torch run also resumes exactly on torch.
With bf16 the head alone runs under autocast in training (`Net`: PyTorch's autocast would run
cuDNN's recurrence in float16, unscaled); the recurrence, validation, weights, gradients and
optimiser stay float32.

On a GPU the engine is `late`: `queue_step` returns the step's loss and gradient norm still on
their way (`Numbers`), and the training loop reads them one step later, after the next step is
queued, so that the device never waits for the host between steps. Importing this module imports torch (an
ImportError when it is missing: `engines` turns that into the advice to install it).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from charlstm.config import ModelConfig, TrainConfig
from charlstm.engines.team import Solo, Team, world_size
from charlstm.engines.torch_devices import check_device
from charlstm.engines.torch_net import Average, Net, Numbers, make_optimizer, parameter_names, recurrent_layer
from charlstm.inference.loss import Evaluation
from charlstm.nn import model, optim, threads
from charlstm.store.checkpoint import Checkpoint
from charlstm.text.corpus import iter_windows, stream_length

if TYPE_CHECKING:
    from charlstm.engines.distributed import Ranks

TORCH_BUFFERS = {"momentum": "momentum_buffer"}  # optim.py's buffer names where torch.optim's differ
DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
SHARED = 1 << 30  # in place of a rank in the seed of the generator every rank shares (weight drop)


class TorchEngine:
    """See `charlstm.engines.Engine`. Under torchrun, rank r of K computes streams r·B/K to
    (r+1)·B/K − 1 of every window through DistributedDataParallel, which averages the gradients:
    with equal shares, the gradient of the whole batch's mean loss."""

    def __init__(
        self, config: ModelConfig, cfg: TrainConfig, params: dict[str, np.ndarray], dtype: Any = np.float32
    ) -> None:
        self.config, self.cfg = config, cfg
        recurrent_layer(config)  # a cell that PyTorch cannot compute is refused before anything is set up
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        K = world_size()
        self.device = check_device(cfg.device, cfg.precision, K)
        self.ranks: Ranks | None = None  # the process group under torchrun (the team, and what else it does)
        if K > 1:
            from charlstm.engines.distributed import Ranks

            self.ranks = Ranks(self.device)
        self.team: Team = self.ranks or Solo()
        share = cfg.batch_size // self.team.size
        self.columns = slice(self.team.rank * share, (self.team.rank + 1) * share)  # this rank's streams
        self.generator = torch.Generator(self.device).manual_seed(_seed(cfg.seed, self.team.rank))
        self.shared = torch.Generator(self.device).manual_seed(_seed(cfg.seed, SHARED))
        self.dtype = DTYPES[np.dtype(dtype)]  # of the weights, the carried state and the loss
        drop = model.Dropout(cfg.dropout, cfg.dropout_mask, cfg.weight_drop)
        self.net = Net(config, drop, self.generator, self.shared, cfg.precision == "bf16").to(self.device, self.dtype)
        self.names = parameter_names(config)
        self.params = dict(self.net.named_parameters())
        with torch.no_grad():
            for name, theirs in self.names.items():
                self.params[theirs].copy_(torch.from_numpy(np.asarray(params[name])))
        self.model = self.net if self.ranks is None else self.ranks.wrap(self.net)
        self.optimizer = make_optimizer(cfg.optimizer, list(self.params.values()), (cfg.adam_beta1, cfg.adam_beta2))
        self.average = Average(self.params, cfg.ema) if cfg.ema > 0 else None
        self.steps = 0  # updates applied: Adam's and RMSprop's bias-correction count, as optim.py keeps it
        self.numpy_rng = np.random.default_rng(cfg.seed).bit_generator.state  # kept for the NumPy engine
        self.kernels = None
        self.late = self.device.type != "cpu"  # the loop reads each step's numbers one step later
        self.drawn: tuple[torch.Tensor, torch.Tensor] | None = None  # the generators before an unapplied step
        cuda = self.device.type == "cuda"
        self.pinned = [torch.empty(2, dtype=self.dtype, pin_memory=True) for _ in range(2)] if cuda else []

    def describe(self) -> str:
        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        extras = [f"{self.team.size} ranks"] if self.team.size > 1 else []
        extras += ["bf16 head"] if self.cfg.precision == "bf16" else []
        return f"torch {torch.__version__.split('+')[0]} on {where}" + "".join(f", {e}" for e in extras)

    def thread_control(self) -> Callable[[], Callable[[int], None]] | None:
        """On a CPU in one process, PyTorch's threads are chosen as the load changes (`cpu_threads`)."""
        return cpu_threads if self.device.type == "cpu" and self.team.size == 1 else None

    def zero_state(self, B: int | None = None) -> tuple[torch.Tensor, ...]:
        """Zeros for this rank's streams, or for B streams."""
        L, H = self.config.num_layers, self.config.hidden_size
        B = B or self.columns.stop - self.columns.start
        return tuple(torch.zeros(L, B, H, device=self.device, dtype=self.dtype) for _ in model.state_names(self.config))

    def forward_backward(
        self, x: np.ndarray, y: np.ndarray, state: tuple[torch.Tensor, ...]
    ) -> tuple[float, float, tuple[torch.Tensor, ...]]:
        numbers, final = self.queue_step(x, y, state)
        loss, norm = numbers.get()  # one wait for the device
        return loss, norm, final

    def queue_step(
        self, x: np.ndarray, y: np.ndarray, state: tuple[torch.Tensor, ...]
    ) -> tuple[Numbers, tuple[torch.Tensor, ...]]:
        """`forward_backward` without waiting: its (loss, norm) on their way, and the final state."""
        self.drawn = (self.generator.get_state(), self.shared.get_state())
        inputs, targets = self._ids(x[:, self.columns]), self._ids(y[:, self.columns])
        self.net.train()
        logits, final = self.model(inputs, state)
        loss = self._loss(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg.clip if self.cfg.clip > 0 else float("inf")
        norm = nn.utils.clip_grad_norm_(
            self.params.values(), clip
        )  # the norm before clipping (DDP's averaged gradients: the same on every rank)
        mean = loss.detach() if self.ranks is None else self.ranks.average(loss)  # the loss of every rank's streams
        values = torch.stack([mean, norm.to(mean.dtype)])  # (2,)
        self.pinned.reverse()  # two buffers: the loop reads a step's numbers before it queues the next but one
        return Numbers(values, self.pinned[0] if self.pinned else None), tuple(s.detach() for s in final)

    def rewind(self) -> None:
        """Forget the last `queue_step`, which will not be applied (it was computed from a step
        that diverged): the generators draw again what it drew."""
        if self.drawn is not None:
            self.generator.set_state(self.drawn[0])
            self.shared.set_state(self.drawn[1])
            self.drawn = None

    def update(self, lr: float) -> None:
        self.drawn = None
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.steps += 1
        if self.average is not None:
            self.average.update(self.params)

    def evaluate(self, ids: np.ndarray, B: int, T: int) -> Evaluation:
        """As `charlstm.inference.loss.evaluate`: B streams (fewer for a short text), every window in
        order, the state carried; on this rank's module alone (rank 0 validates)."""
        B = max(1, min(B, len(ids) - 1))
        if stream_length(len(ids), B) < 1:
            raise ValueError("evaluation needs at least two characters")
        state = self.zero_state(B)
        sums, count = [], 0  # each window's summed loss, in the weights' dtype (MPS has no float64)
        self.net.eval()  # the head in float32 too (bf16_head is for training)
        with torch.no_grad(), self._weights(self._model()):
            for x, y in iter_windows(ids, B, T):
                logits, state = self.net(self._ids(x), state)
                sums.append(self._loss(logits, self._ids(y), "none").sum())
                count += y.size
        total = np.sum(torch.stack(sums).cpu().numpy(), dtype=np.float64)  # totalled on the host
        return Evaluation(float(total) / count, count)

    def params_numpy(self) -> dict[str, np.ndarray]:
        return {name: self.params[theirs].detach().cpu().numpy() for name, theirs in self.names.items()}

    def model_numpy(self) -> dict[str, np.ndarray]:
        model_ = self._model()
        return {name: _numpy(model_[theirs]) for name, theirs in self.names.items()}

    def _model(self) -> dict[str, torch.Tensor]:
        """The model the run validates and saves (Net's names): the average with --ema, else the weights."""
        return (
            self.average.value(self.params)
            if self.average is not None
            else {k: p.detach() for k, p in self.params.items()}
        )

    @contextmanager
    def _weights(self, weights: dict[str, torch.Tensor]) -> Iterator[None]:
        """Net computes with `weights` inside the block; the trained weights come back after it."""
        if self.average is None:
            yield
            return
        kept = {k: p.detach().clone() for k, p in self.params.items()}
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(weights[k])
        try:
            yield
        finally:
            with torch.no_grad():
                for k, p in self.params.items():
                    p.copy_(kept[k])

    def params_finite(self) -> bool:
        return bool(torch.stack([torch.isfinite(p).all() for p in self.params.values()]).all())

    def snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, Any], int, Any]:
        weights = {k: p.detach().clone() for k, p in self.params.items()}
        avg = self.average
        average = None if avg is None else ({k: s.clone() for k, s in avg.sums.items()}, avg.weight)
        return weights, copy.deepcopy(self.optimizer.state_dict()), self.steps, average

    def restore(self, snapshot: tuple[dict[str, torch.Tensor], dict[str, Any], int, Any]) -> None:
        weights, optimizer_state, self.steps, average = snapshot
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(weights[k])
            if self.average is not None and average is not None:
                for k, s in self.average.sums.items():
                    s.copy_(average[0][k])
                self.average.weight = average[1]
        self.optimizer.load_state_dict(
            copy.deepcopy(optimizer_state)
        )  # a copy: loading may keep the tensors it is given

    def save_state(self, state: tuple[torch.Tensor, ...]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Moments as optim.py names them, the carried state of every rank's streams (gathered),
        the generators of every rank (base64 in the metadata) and, untouched, the NumPy engine's."""
        tensors = {}
        for buffer in optim.OPTIMIZERS[self.cfg.optimizer].buffers:
            for name, theirs in self.names.items():
                p = self.params[theirs]
                moment = self.optimizer.state.get(p, {}).get(
                    TORCH_BUFFERS.get(buffer, buffer)
                )  # none before the first update
                tensors[f"optim.{buffer}.{name}"] = _numpy(moment if moment is not None else torch.zeros_like(p))
        for name, s in zip(model.state_names(self.config), state):
            tensors[f"state.{name}"] = _numpy(s if self.ranks is None else self.ranks.gather_streams(s))
        if self.average is not None:
            tensors.update(
                {f"average.{name}": _numpy(self.average.sums[theirs]) for name, theirs in self.names.items()}
            )
        mine, shared = self.drawn or (self.generator.get_state(), self.shared.get_state())  # the last applied step's
        generators = [mine] if self.ranks is None else self.ranks.gather_bytes(mine)
        meta = {
            "optimizer_steps": self.steps,
            "rng": self.numpy_rng,
            "torch_rng": {
                "device": self.device.type,
                "states": [_b64(g) for g in generators],
                "shared": _b64(shared),
            },
        }
        if self.average is not None:
            meta["average_weight"] = self.average.weight
        return tensors, meta

    def load_state(self, resume: Checkpoint) -> tuple[torch.Tensor, ...]:
        """The moments and step count of a resume file of either engine; the generator where the
        file has one for this rank on this kind of device (else one seeded by seed, rank and
        step: dropout's masks then differ from an uninterrupted run's); this rank's streams of
        the carried state."""
        meta = resume.train
        self.steps = int(meta["optimizer_steps"])
        moments: dict[nn.Parameter, dict[str, torch.Tensor]] = {}
        for buffer in optim.OPTIMIZERS[self.cfg.optimizer].buffers:
            for name, theirs in self.names.items():
                saved = resume.extra[f"optim.{buffer}.{name}"]
                p = self.params[theirs]
                if saved.shape != tuple(p.shape):
                    raise ValueError(f"optim.{buffer}.{name} has shape {saved.shape}")
                moments.setdefault(p, {})[TORCH_BUFFERS.get(buffer, buffer)] = torch.as_tensor(
                    saved, dtype=p.dtype, device=self.device
                ).clone()
        if self.steps > 0:
            for p, buffers in moments.items():
                step = {} if self.cfg.optimizer == "sgd" else {"step": torch.tensor(float(self.steps))}
                self.optimizer.state[p] = {**step, **buffers}
        self._load_average(resume)
        self.numpy_rng = meta.get("rng", self.numpy_rng)
        self._load_generator(meta.get("torch_rng"), int(meta.get("step", 0)))
        return tuple(
            torch.as_tensor(resume.extra[f"state.{n}"][:, self.columns], dtype=self.dtype).to(self.device).contiguous()
            for n in model.state_names(self.config)
        )

    def _load_average(self, resume: Checkpoint) -> None:
        """The average's sums and weight from a resume file that has them (else it starts here,
        as on the NumPy engine: --ema new on resume); KeyError naming a missing or misfit sum."""
        if self.average is None or not any(k.startswith("average.") for k in resume.extra):
            return
        with torch.no_grad():
            for name, theirs in self.names.items():
                saved, s = resume.extra.get(f"average.{name}"), self.average.sums[theirs]
                if saved is None or saved.shape != tuple(s.shape):
                    raise KeyError(f"average.{name}")
                s.copy_(torch.as_tensor(saved, dtype=s.dtype))
        self.average.weight = float(resume.train["average_weight"])

    def _load_generator(self, saved: Any, step: int) -> None:
        """Both generators as saved, where the file has them for this device kind (and, for the
        per-rank one, this number of ranks); else seeded by seed, rank (or SHARED) and step."""
        here = isinstance(saved, dict) and saved.get("device") == self.device.type
        states = saved.get("states") if here else None
        if isinstance(states, list) and len(states) == self.team.size:
            _set_state(self.generator, states[self.team.rank])
        else:
            self.generator.manual_seed(_seed(self.cfg.seed, self.team.rank, step))
        if here and isinstance(saved.get("shared"), str):
            _set_state(self.shared, saved["shared"])
        else:
            self.shared.manual_seed(_seed(self.cfg.seed, SHARED, step))

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy (nats/char) of targets y (T, B) under logits (T, B, V), in the weights' dtype."""
        return F.cross_entropy(
            logits.reshape(-1, self.config.vocab_size).to(self.dtype), y.reshape(-1), reduction=reduction
        )

    def _ids(self, ids: np.ndarray) -> torch.Tensor:
        """Ids (T, B) on the device, int64; to a GPU through pinned memory, without waiting."""
        t = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def close(self) -> None:
        if self.ranks is not None:
            self.ranks.close()


def cpu_threads() -> Callable[[int], None]:
    """The torch engine's set-threads on a CPU (`charlstm.nn.threads.Tuner`): PyTorch's intra-op
    threads, and the BLAS and numba kernels (`threads.numpy_threads`), which draw the run's
    samples: left on every core beside a busy process, they made each end of epoch many times
    slower than the steps foretold. PyTorch's own count is kept for `threads.as_before`."""
    if not threads.TORCH_DEFAULT:
        threads.TORCH_DEFAULT.append(torch.get_num_threads())
    numpy_set = threads.numpy_threads()

    def set_threads(n: int) -> None:
        torch.set_num_threads(n)
        numpy_set(n)

    return set_threads


def _b64(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode()


def _set_state(generator: torch.Generator, saved: str) -> None:
    raw = np.frombuffer(base64.b64decode(saved), np.uint8).copy()
    try:
        generator.set_state(torch.from_numpy(raw))
    except RuntimeError:  # not a generator state of this device kind: a damaged file
        raise ValueError("torch_rng") from None


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _seed(*key: int) -> int:
    """A generator seed from the run's seed, the rank (and the step of a resume)."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> 1)
