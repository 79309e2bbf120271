"""What the training loop reports, as plain dataclasses: the CLI renders them, tests collect them,
tools can log them. Nothing here knows how they are shown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from charlstm.config import ModelConfig, TrainConfig


@dataclass(frozen=True)
class Started:
    config: ModelConfig
    train: TrainConfig
    corpus: str
    corpus_chars: int
    train_chars: int
    val_chars: int
    vocab_size: int
    num_params: int
    steps_per_epoch: int
    total_steps: int | None  # the step limit; None when only the time budget ends the run
    model_path: Path
    resume_path: Path
    start_step: int
    resumed: bool
    notes: tuple[str, ...] = ()
    val_loss: float | None = None  # the last validation loss of a resumed run
    engine: str = ""  # what computes the steps, in words (engines.Engine.describe)


@dataclass(frozen=True)
class Step:
    step: int  # updates done so far, this one included
    epoch: float  # epochs done, fractional
    loss: float
    smoothed_loss: float
    lr: float
    grad_norm: float
    chars_per_s: float
    elapsed: float  # seconds of training, over all runs of this model
    eta: float  # seconds to the end of the run, by whichever limit binds first (inf: unknown yet)
    end_step: int | None = None  # the step the run will end at (estimated under a time budget)
    fraction: float = 0.0  # of the run done, by the binding limit, in [0, 1]
    by_time: bool = False  # the time budget binds, not the step limit


@dataclass(frozen=True)
class EpochEnd:
    epoch: float
    step: int
    train_loss: float  # mean over the epoch's updates
    val_loss: float
    val_bpc: float
    best: bool
    sample: str
    elapsed: float
    smoothed_loss: float | None = None  # the training loss's moving average, as Step reports it
    lr: float | None = None  # the learning rate of the last update
    chars_per_s: float | None = None  # training characters per second over all runs, validation included


@dataclass(frozen=True)
class Sampled:
    step: int
    text: str


@dataclass(frozen=True)
class Saved:
    path: Path
    kind: str  # "best", "resume", "snapshot"


@dataclass(frozen=True)
class Diverged:
    step: int
    loss: float
    grad_norm: float
    action: str  # what was done about it, in words


@dataclass(frozen=True)
class Finished:
    reason: str  # "completed", "max_steps", "time_budget", "interrupted"
    step: int
    epoch: float
    best_val_loss: float | None
    best_epoch: float | None
    elapsed: float
    chars_per_s: float
    files: tuple[Path, ...]


@dataclass(frozen=True)
class ThreadsChanged:
    """The thread count of the BLAS and numba kernels (`charlstm.nn.threads`): first its choice at the
    start (`old` None), then every change."""

    old: int | None
    new: int
    why: str  # in words: "--threads", "OPENBLAS_NUM_THREADS", "other processes keep 1.4 of the 2 cores busy"


Event = Started | Step | EpochEnd | Sampled | Saved | Diverged | Finished | ThreadsChanged
