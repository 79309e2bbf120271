"""The state of a training run, and how it goes into a checkpoint and comes back out.

`Run` is what the named steps in loop.py share instead of closures: the engine (which holds the
weights, optimiser and RNG), the carried state, counters, files and the last good snapshot.
Everything that makes a resumed run compute exactly the losses of an uninterrupted one is written
by `to_checkpoint` and read back by `restore`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charlstm.config import ModelConfig, TrainConfig
from charlstm.engines import Engine, State
from charlstm.errors import TrainingError, UsageError
from charlstm.nn import model
from charlstm.nn.threads import Tuner
from charlstm.store import checkpoint as ckpt_io
from charlstm.store import runs
from charlstm.store.checkpoint import Checkpoint
from charlstm.text.corpus import Corpus
from charlstm.training.events import Event, Saved, SaveKind

LOSS_EMA = 0.05
CURVE_PER_EPOCH = 10  # points of the learning curve per epoch, as --log-every's default
MAX_CURVE = 2000  # past this many points, the curve keeps every other one


@dataclass
class Progress:
    """The counters that, with the weights, optimiser and RNG, make a run resumable exactly.
    Stored field by field in the resume file's metadata."""

    step: int = 0
    window: int = 0  # next window within the epoch
    epoch: int = 0  # completed epochs
    elapsed: float = 0.0
    chars: int = 0
    lr_scale: float = 1.0
    recoveries: int = 0
    smoothed_loss: float | None = None
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    best_val_loss: float | None = None
    best_epoch: float | None = None
    last_eval_step: int = -1
    schedule_ratio: float | None = None  # the last update's scheduled rate / peak (halvings apart)
    segment_step: int | None = None  # where the learning-rate decay starts (schedule.Segment)
    segment_ratio: float = 1.0  # the rate there / peak
    history: list[dict[str, Any]] = field(default_factory=list)
    curve: list[list[float]] = field(default_factory=list)  # rows of checkpoint.CURVE_FIELDS
    curve_stride: int = 1  # the curve has a point every curve_stride × (steps per epoch / 10) steps

    def count(self, loss: float, chars: int) -> None:
        """Book an applied update of `chars` characters with this loss."""
        self.step += 1
        self.chars += chars
        self.epoch_loss_sum += loss
        self.epoch_loss_count += 1
        ema = self.smoothed_loss
        self.smoothed_loss = loss if ema is None else (1 - LOSS_EMA) * ema + LOSS_EMA * loss

    def record(self, steps_per_epoch: int, lr: float, chars_per_s: float) -> None:
        """Add this step to the learning curve if it falls on the curve's interval (about
        CURVE_PER_EPOCH points an epoch). A curve longer than MAX_CURVE doubles its interval and keeps
        the points on it, so a long run's metadata stays small."""
        every = max(1, steps_per_epoch // CURVE_PER_EPOCH) * self.curve_stride
        if self.step % every or self.smoothed_loss is None:
            return
        point = [
            self.step,
            round(self.elapsed, 3),
            round(self.smoothed_loss, 6),
            float(f"{lr:.6g}"),
            round(chars_per_s, 1),
        ]  # CURVE_FIELDS
        self.curve.append(point)
        if len(self.curve) > MAX_CURVE:
            self.curve_stride *= 2
            self.curve = [row for row in self.curve if row[0] % (2 * every) == 0]

    def next_window(self, steps_per_epoch: int) -> bool:
        """Move the data cursor one window on; True when that finished an epoch."""
        self.window += 1
        if self.window >= steps_per_epoch:
            self.window = 0
            self.epoch += 1
            return True
        return False

    def epoch_loss(self) -> float:
        """Mean training loss of the updates since the epoch began."""
        return self.epoch_loss_sum / max(1, self.epoch_loss_count)

    def take_epoch_loss(self) -> float:
        """The epoch's mean training loss, starting the count of the next epoch."""
        loss = self.epoch_loss()
        self.epoch_loss_sum, self.epoch_loss_count = 0.0, 0
        return loss


@dataclass
class Run:
    """One training run in progress. Made by `train.start_run`, changed only by its steps."""

    corpus: Corpus
    config: ModelConfig
    cfg: TrainConfig
    model_path: Path
    train_ids: np.ndarray
    val_ids: np.ndarray
    steps_per_epoch: int
    total_steps: int | None  # the step limit (epochs, --max-steps); None: only the time budget ends the run
    loss_limit: float  # a loss above this is divergence
    fingerprint: dict[str, Any]  # identifies the corpus for a resume
    engine: Engine  # weights, optimiser, RNG: what computes the steps (engines/)
    state: State  # carried from window to window, the engine's arrays
    progress: Progress
    on_event: Callable[[Event], None]
    files: set[Path] = field(default_factory=set)  # written by this run
    snapshot: Any = (
        None  # the last good weights and optimiser state (engine.snapshot), taken at every resume checkpoint
    )
    clock: Callable[[], float] = time.perf_counter  # seconds; tests pass a fake one
    last_save: float = 0.0  # clock() at the last resume checkpoint
    started_at: float = 0.0  # clock() when this process began stepping
    elapsed_before: float = 0.0  # seconds of training before this process
    step_time: float | None = None  # seconds per step, smoothed
    timed_steps: int = 0  # steps timed in this process
    pace: float | None = None  # wall seconds from step to step (what passes between them too), smoothed: the ETA's
    last_step_at: float | None = None  # clock() at the last step reported (after an end of epoch: when it ended)
    pace_threads: int = 0  # the thread count the pace was measured on (a new count starts it afresh)
    wrapup_time: float | None = None  # seconds of the last end of epoch (validation, sample, saves)
    segment_seconds: float = 0.0  # seconds() when the current decay segment began in this process
    decay: float = 0.0  # the decay progress q reached in this process (never goes back)
    tuner: Tuner = field(default_factory=Tuner.off)  # the thread count, told every step's time (charlstm.nn.threads)
    sizing: dict[str, Any] | None = None  # the plan's choice of the model and why (training.speeds.record)

    @property
    def resume_path(self) -> Path:
        return runs.resume_file(self.model_path)

    @property
    def leader(self) -> bool:
        """This process validates, samples, writes checkpoints and reports (rank 0 under torchrun)."""
        return self.engine.team.leader

    def seconds(self) -> float:
        """Seconds since this process began stepping: what --max-minutes counts."""
        return self.clock() - self.started_at

    @property
    def budget(self) -> float | None:
        """This process's time budget in seconds (--max-minutes), or None."""
        return None if self.cfg.max_minutes is None else self.cfg.max_minutes * 60


def to_checkpoint(run: Run, with_state: bool, status: str) -> Checkpoint:
    """The run as a checkpoint: weights, configs, counters and history. Without `with_state`
    (the model files) the weights are the model the run validates (the average with --ema);
    with it (the resume file) they are the weights being trained, with the optimiser moments,
    the average, the carried state and the RNG. Under torchrun, `with_state` gathers every
    rank's carried state: all ranks call it together."""
    train_meta = {
        "config": asdict(run.cfg),
        "corpus": run.fingerprint,
        "status": status,
        "steps_per_epoch": run.steps_per_epoch,
        **{k: v for k, v in asdict(run.progress).items() if k != "history"},
    }
    if run.sizing is not None:
        train_meta["sizing"] = run.sizing
    extra: dict[str, np.ndarray] = {}
    if with_state:
        extra, engine_meta = run.engine.save_state(run.state)
        train_meta.update(engine_meta)
        params = run.engine.params_numpy()
    else:
        params = run.engine.model_numpy()
    return Checkpoint(run.config, run.corpus.vocab, params, train_meta, list(run.progress.history), extra)


def restore(resume: Checkpoint, engine: Engine, config: ModelConfig, B: int) -> tuple[Progress, State]:
    """Progress and carried state from a resume file; the optimiser moments and the RNG are
    restored in the engine. Either engine's resume file resumes on either engine."""
    meta = resume.train
    shape = (config.num_layers, B, config.hidden_size)
    try:
        if any(resume.extra[f"state.{n}"].shape != shape for n in model.state_names(config)):
            raise UsageError(f"{resume.path}: its carried state does not fit --batch-size {B}")
        state = engine.load_state(resume)
        fields = {k: meta[k] for k in Progress.__dataclass_fields__ if k in meta and k != "history"}
        progress = Progress(**fields, history=list(resume.history))
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(
            f"{resume.path}: not a resumable checkpoint (missing {e}); use --init-from to start from its weights"
        ) from None
    return progress, state


def check_same_corpus(resume: Checkpoint, corpus: Corpus, fingerprint: dict[str, Any] | None = None) -> None:
    """A resumed run goes on with the text it was trained on (its `corpus_fingerprint`, or the
    one given, already made): another text is a UsageError that says how to train on it."""
    fingerprint = fingerprint or corpus_fingerprint(corpus)
    if fingerprint["sha256"] != resume.train.get("corpus", {}).get("sha256"):
        raise UsageError(
            f"{corpus.path} is not the text this run was trained on; to train on new text, start a "
            f"new run from its weights with --init-from"
        )


def corpus_fingerprint(corpus: Corpus) -> dict[str, Any]:
    """What identifies a corpus for resuming: its length in characters and a hash of its file,
    or of every file's name and bytes for a corpus of several. Files are read in chunks rather
    than hashing the ids, so a memory-mapped corpus is not pulled into memory."""
    h = hashlib.sha256()
    for path in corpus.files or (corpus.path,):
        if corpus.files:
            h.update(f"{path.name}\0".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    found = {
        "name": corpus.name,
        "path": str(corpus.path.resolve()),
        "chars": len(corpus),
        "sha256": h.hexdigest()[:16],
    }
    if corpus.files:
        found["files"] = [str(p.resolve()) for p in corpus.files]
    return found


def save(run: Run, kind: SaveKind, status: str | None = None) -> None:
    """Write one of the run's files and report it. kind "best": the weights, to the model file;
    "resume": everything, to the resume file (refused if the weights are not finite; it becomes
    the good snapshot a diverged step returns to); "snapshot": this epoch's weights beside the
    model, keeping the newest `keep`. `status` (default: the kind, or "running") is recorded.
    Under torchrun every rank saves "resume" at the same step (the carried state of all ranks is
    gathered, the snapshot taken everywhere) and rank 0 writes; the other kinds are rank 0's."""
    status = status or ("running" if kind == "resume" else kind)
    if kind == "resume":
        if not run.engine.params_finite():
            raise TrainingError("the weights are no longer finite; the last good checkpoint is kept")
        ckpt = to_checkpoint(run, True, status)
        if run.leader:
            _write(run, ckpt, run.resume_path, kind)
        run.snapshot = run.engine.snapshot()
        run.last_save = run.clock()
    elif not run.leader:
        return
    elif kind == "best":
        _write(run, to_checkpoint(run, False, status), run.model_path, kind)
    elif kind == "snapshot":
        _write(run, to_checkpoint(run, False, status), runs.snapshot_file(run.model_path, run.progress.epoch), kind)
        run.files.difference_update(runs.prune_snapshots(run.model_path, run.cfg.keep))
    else:
        raise ValueError(f"unknown checkpoint kind {kind!r}")


def _write(run: Run, ckpt: Checkpoint, path: Path, kind: SaveKind) -> None:
    ckpt_io.save(ckpt, path)
    run.files.add(path)
    run.on_event(Saved(path=path, kind=kind))
