"""What the training loop reports, as plain dataclasses: the CLI renders them, tests collect them,
tools can log them. Nothing here knows how they are shown.

Every event is frozen and keyword-only (`Step(step=3, loss=...)`): with a dozen fields of the same
type, a positional call could swap two silently. A field that takes one of a few fixed values has
a `Literal` type below; a field "in words" is free text, for people to read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from charlstm.config import ModelConfig, TrainConfig

StopReason = Literal["completed", "max_steps", "time_budget", "interrupted"]
"""Why a run ended: its --epochs done (or its step limit, when --max-steps is not what binds),
--max-steps reached, --max-minutes reached, or stopped by Ctrl-C / SIGTERM / a log that failed."""

SaveKind = Literal["best", "resume", "snapshot"]
"""Which file a save wrote: the model file (the best weights), the resume file, an epoch snapshot (--keep)."""


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class Sampled:
    step: int
    text: str


@dataclass(frozen=True, kw_only=True)
class Saved:
    path: Path
    kind: SaveKind


@dataclass(frozen=True, kw_only=True)
class Diverged:
    step: int
    loss: float
    grad_norm: float
    action: str  # what was done about it, in words


@dataclass(frozen=True, kw_only=True)
class Finished:
    reason: StopReason
    step: int
    epoch: float
    best_val_loss: float | None
    best_epoch: float | None
    elapsed: float
    chars_per_s: float
    files: tuple[Path, ...]


@dataclass(frozen=True, kw_only=True)
class ThreadsChanged:
    """The thread count of the BLAS and numba kernels (`charlstm.nn.threads`): first its choice at the
    start (`old` None), then every change."""

    old: int | None
    new: int
    why: str  # in words: "--threads", "OPENBLAS_NUM_THREADS", "other processes keep 1.4 of the 2 cores busy"


Event = Started | Step | EpochEnd | Sampled | Saved | Diverged | Finished | ThreadsChanged
