"""The training loop as small named steps: truncated BPTT over contiguous streams, validation,
checkpoints, resume.

`start_run` sets a run up (fresh, from `init`'s weights, or exactly where `resume` stopped) on the
engine its config names (engines/: NumPy or PyTorch), which does all the computing. Then, for every
window, `train_step` has the engine run forward T steps from the carried state and backward and
clip the global gradient norm and, if the step is sane, update the weights; the final state is
carried into the next window (detached: nothing flows back across windows). At the end of each
epoch `end_epoch` scores the whole validation split, draws a sample and `save`s the
best-by-validation weights to the model file and the full state (weights, optimiser moments,
carried state, counters, RNG, history) to the resume file. `finish` writes the last checkpoint.

The loop never prints: it reports through `on_event` with the dataclasses of events.py, and checks
`should_stop()` after every step so the caller can stop it cleanly (Ctrl-C). It carries a `Run`
(state.py, which also writes its checkpoints); the rate and the time budget's deadline are
schedule.py's, the names and lock of its files store/runs.py's, the checks before it starts
(windows per epoch, size advice) plan.py's.

Under torchrun every rank runs this loop on its share of the streams, and the engine's team makes
each decision the same on all of them: the loss the divergence guard sees is the mean over ranks,
and what depends on a clock or a signal (the rate under a time budget, the deadline, timed saves,
stopping) is rank 0's verdict, or any rank's stop request. Rank 0 alone validates, samples,
writes checkpoints (holding their lock) and reports events.

Divergence policy (`recover`): a step whose loss or gradient norm is NaN/Inf, or whose loss exceeds
`divergence_limit` (4 × ln V: four times the loss of a uniform guess), is not applied. The weights and
optimiser state go back to the last good snapshot (taken at every checkpoint), the carried state is
reset, and the learning rate is halved; after `MAX_RECOVERIES` such events in one run, training
stops with a TrainingError and the last good checkpoint stays as it was.

On a GPU the guard looks one step late (`_loop_late`, for an engine that is `late`): step n's
update is queued before its loss is read, which happens once step n+1 is queued, so the device
never idles while the host waits. A diverged step n then goes back to the same snapshot, with the
same carried state, rate and generators, as the guard that looks at once: what step n's update
and step n+1 changed is thrown away with it. Before anything that is not one more window — an
epoch's end, the run's last step — the step's numbers are read first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charlstm import engines
from charlstm.config import ModelConfig, TrainConfig
from charlstm.engines.team import rank
from charlstm.errors import TrainingError, UsageError
from charlstm.nn import model, threads
from charlstm.store import runs
from charlstm.store.checkpoint import Checkpoint
from charlstm.text.corpus import Corpus, window
from charlstm.training import emit
from charlstm.training.events import (
    Diverged,
    Event,
    Finished,
    Sampled,
    StopReason,
    ThreadsChanged,
)
from charlstm.training.plan import RunPlan, saved_config, windows_per_epoch
from charlstm.training.schedule import advance_schedule, deadline, new_end, start_segment
from charlstm.training.state import Progress, Run, check_same_corpus, corpus_fingerprint, restore, save

MAX_RECOVERIES = 4
RELEASE_EVERY = 200  # steps between unmapping the pages of a memory-mapped corpus already read


@dataclass(frozen=True)
class StepResult:
    """What one window did. Not `applied`: the step diverged and changed nothing; `recover` runs."""

    loss: float
    grad_norm: float
    lr: float
    applied: bool


def train(
    corpus: Corpus,
    config: ModelConfig,
    cfg: TrainConfig,
    model_path: Path,
    on_event: Callable[[Event], None] = lambda e: None,
    should_stop: Callable[[], bool] = lambda: False,
    resume: Checkpoint | None = None,
    init: Checkpoint | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sizing: dict[str, Any] | None = None,
) -> Finished:
    """Train on `corpus` and write checkpoints; returns the Finished event (also reported).

    resume: a resumable checkpoint of the same corpus (of either engine); training continues
    exactly where it stopped. init: a checkpoint whose weights start a new run (fine-tuning).
    clock: seconds, for the time budget, the ETA and timed saves (tests pass a fake one). sizing:
    the plan's choice of the model, kept in the checkpoints (a resumed run keeps its own). The
    checkpoint path is locked for the run (by rank 0 under torchrun): a second run writing the
    same files is refused.
    """
    runs.check_model_path(model_path)
    with runs.Lock(model_path) if rank() == 0 else nullcontext(), threads.as_before():
        run = start_run(corpus, config, cfg, model_path, on_event, resume, init, clock, sizing)
        try:
            return finish(run, _loop(run, should_stop))
        finally:
            run.engine.close()


def train_plan(
    plan: RunPlan,
    on_event: Callable[[Event], None] = lambda e: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Finished:
    """Train the run that `plan.plan_run` planned; see `train`."""
    return train(
        plan.corpus, plan.config, plan.train, plan.model_path, on_event, should_stop, plan.resume, plan.init,
        sizing=plan.sizing,
    )  # fmt: skip


def _loop(run: Run, should_stop: Callable[[], bool]) -> StopReason:
    """Step through windows until the run is done or stops; returns why it ended."""
    if isinstance(run.engine, engines.LateGuard) and run.engine.late:
        return _loop_late(run, run.engine, should_stop)
    p, cfg = run.progress, run.cfg
    while run.total_steps is None or p.step < run.total_steps:
        x, y = window(run.train_ids, cfg.batch_size, cfg.seq_len, p.window)
        result = train_step(run, x, y)
        if not result.applied:
            recover(run, result)
            continue
        reason = _after_step(run, should_stop)
        if reason is not None:
            return reason
    return _why_done(run)


@dataclass(frozen=True)
class _Queued:
    """A step whose update is queued on the device before its loss and norm are read."""

    numbers: engines.Pending  # `get()` waits for (loss, norm)
    lr: float
    ratio: float
    t0: float


def _loop_late(run: Run, engine: engines.LateGuard, should_stop: Callable[[], bool]) -> StopReason:
    """`_loop` with the guard one step late (see the module's docstring); the same decisions.
    `engine`: the run's engine."""
    p, cfg = run.progress, run.cfg
    queued: _Queued | None = None
    while queued is not None or run.total_steps is None or p.step < run.total_steps:
        ahead = p.window + 1 < run.steps_per_epoch and (run.total_steps is None or p.step + 1 < run.total_steps)
        if queued is not None and not ahead:  # the queued step ends an epoch or the run: read it first
            result, queued = _settle(run, queued), None
            if not result.applied:
                recover(run, result)
            elif (reason := _after_step(run, should_stop)) is not None:
                return reason
            continue
        x, y = window(run.train_ids, cfg.batch_size, cfg.seq_len, p.window + (queued is not None))
        t0 = run.clock()
        numbers, new_state = engine.queue_step(x, y, run.state)
        if queued is not None:
            result, queued = _settle(run, queued), None
            if not result.applied:
                engine.rewind()  # the step just queued came from the diverged one's weights
                recover(run, result)
                continue
            if (reason := _after_step(run, should_stop)) is not None:
                return reason
        lr, ratio = _rate(run)
        run.engine.update(lr)
        run.state = new_state
        queued = _Queued(numbers, lr, ratio, t0)
    return _why_done(run)


def _settle(run: Run, queued: _Queued) -> StepResult:
    """Read a queued step's numbers: book and report it if sane; if not, `recover` undoes it."""
    loss, norm = queued.numbers.get()
    if not (loss <= run.loss_limit and math.isfinite(norm)):
        return StepResult(loss, norm, queued.lr, applied=False)
    _book(run, loss, norm, queued.lr, queued.ratio, queued.t0)
    return StepResult(loss, norm, queued.lr, applied=True)


def _why_done(run: Run) -> StopReason:
    """Why a run that reached its step limit ended: --max-steps, or its epochs completed."""
    cfg, p = run.cfg, run.progress
    if (
        cfg.max_steps is not None
        and cfg.max_steps <= p.step
        and (cfg.epochs is None or p.step < cfg.epochs * run.steps_per_epoch)
    ):
        return "max_steps"
    return "completed"


def start_run(
    corpus: Corpus,
    config: ModelConfig,
    cfg: TrainConfig,
    model_path: Path,
    on_event: Callable[[Event], None] = lambda e: None,
    resume: Checkpoint | None = None,
    init: Checkpoint | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sizing: dict[str, Any] | None = None,
) -> Run:
    """Check that the corpus fits the model and one window, set up the engine (weights,
    optimiser, RNG) and the carried state (fresh, `init`'s weights, or where `resume` stopped)
    and report Started (on rank 0: other ranks report nothing)."""
    if corpus.vocab.size != config.vocab_size:
        raise UsageError("the corpus vocabulary does not match the model config")
    train_ids, val_ids = corpus.split(cfg.val_fraction)
    steps_per_epoch = windows_per_epoch(len(train_ids), cfg.batch_size, cfg.seq_len)
    total_steps = cfg.step_limit(steps_per_epoch)
    fingerprint = corpus_fingerprint(corpus)
    if resume is not None:
        check_same_corpus(resume, corpus, fingerprint)
    source = resume or init
    engine = engines.make_engine(config, cfg, source.params if source else model.init_params(config, cfg.seed))
    tell = on_event if engine.team.leader else _ignore
    tuner = thread_tuner(engine, cfg, tell)
    try:
        state, progress = engine.zero_state(), Progress()
        if resume is not None:
            progress, state = restore(resume, engine, config, cfg.batch_size)
            if new_end(saved_config(resume), cfg, steps_per_epoch):
                start_segment(progress, cfg)
    except BaseException:
        engine.close()
        raise
    run = Run(
        corpus, config, cfg, model_path, train_ids, val_ids, steps_per_epoch, total_steps,
        divergence_limit(config.vocab_size), fingerprint, engine, state, progress, tell, clock=clock, tuner=tuner,
        sizing=resume.train.get("sizing") if resume is not None else sizing,
    )  # fmt: skip
    run.on_event(emit.started(run, resumed=resume is not None))
    run.snapshot = engine.snapshot()
    run.last_save = run.started_at = clock()
    run.elapsed_before = progress.elapsed
    return run


def thread_tuner(engine: engines.Engine, cfg: TrainConfig, tell: Callable[[Event], None]) -> threads.Tuner:
    """The run's thread count (`charlstm.nn.threads`), its choices told as ThreadsChanged: on the
    CPU math of either engine; off where the engine has none to choose (a GPU, several ranks)."""
    control = engine.thread_control()
    if control is None:
        return threads.Tuner.off()

    def report(old: int | None, new: int, why: str) -> None:
        tell(ThreadsChanged(old=old, new=new, why=why))

    return threads.tuner(cfg.threads, report, control)


def _ignore(event: Event) -> None:
    """The events of a rank other than 0: rank 0 reports the run."""


def train_step(run: Run, x: np.ndarray, y: np.ndarray) -> StepResult:
    """One window (x, y: (T, B) ids): forward and backward from the carried state, clip, and — if
    the loss and gradient norm are sane — update the weights, carry the state and report a Step.
    The rate is decided after the backward pass, so that under a time budget the last update is
    the one at the floor (under torchrun: rank 0's rate, by its clock)."""
    t0 = run.clock()
    loss, norm, new_state = run.engine.forward_backward(x, y, run.state)
    lr, ratio = _rate(run)
    if not (loss <= run.loss_limit and math.isfinite(norm)):  # also catches NaN
        return StepResult(loss, norm, lr, applied=False)
    run.engine.update(lr)
    run.state = new_state
    _book(run, loss, norm, lr, ratio, t0)
    return StepResult(loss, norm, lr, applied=True)


def _rate(run: Run) -> tuple[float, float]:
    """The learning rate of the next update, and its scheduled ratio to the peak (halvings apart)."""
    ratio = advance_schedule(run)
    if run.budget is not None:  # the rate follows a clock: every rank takes rank 0's
        (ratio,), _ = run.engine.team.agree(lead=[ratio])
    return run.cfg.lr * ratio * run.progress.lr_scale, ratio


def _book(run: Run, loss: float, norm: float, lr: float, ratio: float, t0: float) -> None:
    """Count an applied update and report its Step (started at `t0` on the run's clock)."""
    p = run.progress
    p.count(loss, run.cfg.batch_size * run.cfg.seq_len)
    p.schedule_ratio = ratio
    seconds = run.clock() - t0
    emit.report_step(run, loss, norm, lr, seconds)
    run.tuner.after_step(seconds)  # may change the thread count of the next steps


def recover(run: Run, result: StepResult) -> None:
    """A diverged step: back to the last good weights with a zero carried state and half the
    learning rate, skipping the window; at the MAX_RECOVERIES-th time, stop with TrainingError."""
    p = run.progress
    p.recoveries += 1
    run.engine.restore(run.snapshot)
    run.state = run.engine.zero_state()
    if p.recoveries >= MAX_RECOVERIES:
        run.on_event(
            Diverged(
                step=p.step, loss=result.loss, grad_norm=result.grad_norm, action="stopped: the loss keeps diverging"
            )
        )
        raise TrainingError(
            f"training diverged {p.recoveries} times (loss {result.loss}, gradient norm {result.grad_norm}); "
            f"the last good checkpoint is kept — try a lower --lr or a smaller --clip"
        )
    p.lr_scale *= 0.5
    action = f"restored the last good weights and halved the learning rate to {result.lr * 0.5:.3g}"
    run.on_event(Diverged(step=p.step, loss=result.loss, grad_norm=result.grad_norm, action=action))
    p.next_window(run.steps_per_epoch)


def end_epoch(run: Run, train_loss: float) -> None:
    """Score the validation split, draw a sample, record and report the epoch, and save the
    weights if they are the best so far (and an epoch snapshot with --keep). Rank 0's work:
    other ranks only note that the step was scored."""
    p, cfg = run.progress, run.cfg
    p.last_eval_step = p.step
    if not run.leader:
        return
    run.corpus.release()
    ev = run.engine.evaluate(run.val_ids, cfg.batch_size, cfg.seq_len)
    run.corpus.release()
    best = p.best_val_loss is None or ev.loss < p.best_val_loss
    if best:
        p.best_val_loss = ev.loss
        p.best_epoch = p.step / run.steps_per_epoch
    text = emit.display_sample(run)
    record = {
        "epoch": round(p.step / run.steps_per_epoch, 4),
        "step": p.step,
        "train_loss": train_loss,
        "val_loss": ev.loss,
        "val_bpc": ev.bits_per_char,
        "lr": current_lr(run),
        "elapsed": round(p.elapsed, 3),
        "chars_per_s": round(p.chars / max(p.elapsed, 1e-9), 1),
        "best": best,
        "sample": text,
    }
    p.history.append(record)
    run.on_event(emit.epoch_end(run, record))
    if best:
        save(run, "best")
    if cfg.keep > 0:
        save(run, "snapshot")


def finish(run: Run, reason: StopReason) -> Finished:
    """End the run: score the last partial epoch (unless interrupted), make sure a model file
    exists, write the resume file with `reason` as its status, and report Finished."""
    p = run.progress
    if reason != "interrupted" and p.last_eval_step != p.step:
        end_epoch(run, p.epoch_loss())
    if not run.model_path.exists():
        save(run, "best", "latest")
    p.elapsed = run.elapsed_before + run.seconds()
    save(run, "resume", reason)
    finished = emit.finished(run, reason)
    run.on_event(finished)
    return finished


def _after_step(run: Run, should_stop: Callable[[], bool]) -> StopReason | None:
    """Advance the data cursor and do what is due after an applied step: the end of an epoch, a
    sample, a timed save, releasing corpus pages. Returns a reason to stop, or None."""
    p, cfg = run.progress, run.cfg
    if p.next_window(run.steps_per_epoch):
        run.state = run.engine.zero_state()  # window 0 does not continue the last window
        t0 = run.clock()
        end_epoch(run, p.take_epoch_loss())
        save(run, "resume")
        run.wrapup_time = run.clock() - t0
        run.last_step_at = run.clock()  # the ETA counts ends of epoch apart from the pace
    elif (
        cfg.sample_every
        and p.step % cfg.sample_every == 0
        and (run.total_steps is None or p.step < run.total_steps)
        and run.leader
    ):
        run.on_event(Sampled(step=p.step, text=emit.display_sample(run)))
    end = deadline(run)
    time_up, save_due = end is not None and run.seconds() >= end, run.clock() - run.last_save >= cfg.save_minutes * 60
    lead, (stop,) = run.engine.team.agree(lead=[time_up, save_due], flags=[should_stop()])
    time_up, save_due = (v > 0 for v in lead)  # the leader's verdicts, 1.0 or 0.0
    if stop:
        return "interrupted"
    if time_up:
        return "time_budget"
    if save_due:
        save(run, "resume")
    if p.step % RELEASE_EVERY == 0:
        run.corpus.release()
    return None


def current_lr(run: Run) -> float:
    """The learning rate of the last update (halvings after divergence included)."""
    p = run.progress
    return run.cfg.lr * (p.schedule_ratio if p.schedule_ratio is not None else 1.0) * p.lr_scale


def divergence_limit(V: int) -> float:
    """A loss per character above this is divergence, not learning: 4 × the uniform guess, ln V."""
    return max(10.0, 4.0 * math.log(V))
