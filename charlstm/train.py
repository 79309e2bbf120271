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
`should_stop()` after every step so the caller can stop it cleanly (Ctrl-C).

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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from charlstm import checkpoint as ckpt_io
from charlstm import engines, model, threads
from charlstm.checkpoint import Checkpoint
from charlstm.config import ModelConfig, TrainConfig  # noqa: F401  (TrainConfig re-exported)
from charlstm.corpus import Corpus, num_windows, window
from charlstm.errors import CheckpointError, TrainingError, UsageError
from charlstm.events import Diverged, EpochEnd, Event, Finished, Sampled, Saved, Started, Step, ThreadsChanged
from charlstm.generate import Sampling, sample
from charlstm.plan import RunPlan, resume_path_for, saved_config
from charlstm.run import Progress, Run, restore, to_checkpoint
from charlstm.run import corpus_fingerprint  # noqa: F401  (re-exported)
from charlstm.schedule import SCHEDULES, learning_rate  # noqa: F401  (re-exported)
from charlstm.schedule import Outlook, Segment, decay_progress, lr_ratio, outlook, warmup_ratio

MAX_RECOVERIES = 4
RELEASE_EVERY = 200  # steps between unmapping the pages of a memory-mapped corpus already read
RESERVE_MARGIN = 1.5  # a time budget keeps back this many times the expected end-of-run work…
RESERVE_SECONDS = 1.0  # …plus this, and one step, for the last validation, sample and checkpoints
FORWARD_SHARE = 0.5  # validation's time per character, as a share of a training step's (about 1/3)


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
) -> Finished:
    """Train on `corpus` and write checkpoints; returns the Finished event (also reported).

    resume: a resumable checkpoint of the same corpus (of either engine); training continues
    exactly where it stopped. init: a checkpoint whose weights start a new run (fine-tuning).
    clock: seconds, for the time budget, the ETA and timed saves (tests pass a fake one). The
    checkpoint path is locked for the run (by rank 0 under torchrun): a second run writing the
    same files is refused.
    """
    cfg.validate()
    for target in (model_path, resume_path_for(model_path)):
        if target.is_dir():
            raise CheckpointError(f"{target}: is a directory; pass --out with a file name ending in {ckpt_io.SUFFIX}")
    with ckpt_io.Lock(model_path) if engines.rank() == 0 else nullcontext(), threads.as_before():
        run = start_run(corpus, config, cfg, model_path, on_event, resume, init, clock)
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
    return train(plan.corpus, plan.config, plan.train, plan.model_path, on_event, should_stop, plan.resume, plan.init)


def _loop(run: Run, should_stop: Callable[[], bool]) -> str:
    """Step through windows until the run is done or stops; returns why it ended."""
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
    if cfg.max_steps is not None and cfg.max_steps <= p.step and (cfg.epochs is None or p.step < cfg.epochs * run.steps_per_epoch):
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
) -> Run:
    """Check that the corpus fits the model and one window, set up the engine (weights,
    optimiser, RNG) and the carried state (fresh, `init`'s weights, or where `resume` stopped)
    and report Started (on rank 0: other ranks report nothing)."""
    if corpus.vocab.size != config.vocab_size:
        raise UsageError("the corpus vocabulary does not match the model config")
    train_ids, val_ids = corpus.split(cfg.val_fraction)
    steps_per_epoch = _steps_per_epoch(len(train_ids), cfg.batch_size, cfg.seq_len)
    total_steps = cfg.step_limit(steps_per_epoch)
    fingerprint = corpus_fingerprint(corpus)
    if resume is not None and fingerprint["sha256"] != resume.train.get("corpus", {}).get("sha256"):
        raise UsageError(
            f"{corpus.path} is not the text this run was trained on; to train on new text, start a "
            f"new run from its weights with --init-from"
        )
    source = resume or init
    engine = engines.make_engine(config, cfg, source.params if source else model.init_params(config, cfg.seed))
    tell = on_event if engine.team.leader else _ignore
    tuner = threads.tuner(cfg.threads, lambda old, new, why: tell(ThreadsChanged(old, new, why))) if cfg.engine == "numpy" else threads.Tuner.off()
    try:
        state, progress = engine.zero_state(), Progress()
        if resume is not None:
            progress, state = restore(resume, engine, config, cfg.batch_size)
            if _new_end(saved_config(resume), cfg, steps_per_epoch):
                start_segment(progress, cfg)
    except BaseException:
        engine.close()
        raise
    run = Run(
        corpus, config, cfg, model_path, train_ids, val_ids, steps_per_epoch, total_steps,
        divergence_limit(config.vocab_size), fingerprint, engine, state, progress,
        tell, clock=clock, tuner=tuner,
    )
    run.on_event(_started(run, resumed=resume is not None))
    run.snapshot = engine.snapshot()
    run.last_save = run.started_at = clock()
    run.elapsed_before = progress.elapsed
    return run


def _ignore(event: Event) -> None:
    """The events of a rank other than 0: rank 0 reports the run."""


def _new_end(saved: TrainConfig, cfg: TrainConfig, steps_per_epoch: int) -> bool:
    """Does a resumed run end elsewhere than the run it continues? A time budget (then or now)
    always counts as a new end: it counts the seconds of one process."""
    moved = saved.step_limit(steps_per_epoch) != cfg.step_limit(steps_per_epoch)
    return moved or saved.max_minutes is not None or cfg.max_minutes is not None


def start_segment(p: Progress, cfg: TrainConfig) -> None:
    """Begin a new decay segment at the current step, from the rate the run has reached (see
    schedule.py). During the warm-up nothing changes: the decay begins when it ends."""
    if p.step >= cfg.warmup_steps and p.schedule_ratio is not None:
        p.segment_step, p.segment_ratio = p.step, p.schedule_ratio


def scheduled_ratio(run: Run) -> float:
    """The learning rate of the next update as a fraction of the peak: warm-up, then the decay of
    the current segment by steps and by time, whichever is further along."""
    p, cfg = run.progress, run.cfg
    warm = warmup_ratio(cfg, p.step)
    if warm is not None:
        return warm
    if p.segment_step is None:  # the warm-up ends here (or ended before this run kept segments)
        p.segment_step, p.segment_ratio = cfg.warmup_steps, 1.0
        run.segment_seconds = run.seconds() if p.step == cfg.warmup_steps else 0.0
    segment = Segment(p.segment_step, p.segment_ratio, run.segment_seconds)
    q = decay_progress(p.step, segment, run.total_steps, run.seconds(), deadline(run))
    run.decay = max(run.decay, q)
    return lr_ratio(cfg, run.decay, segment.ratio)


def deadline(run: Run) -> float | None:
    """When, in this process's seconds, training must stop so that the last validation, sample
    and checkpoints still end within --max-minutes: the budget less a reserve of RESERVE_MARGIN
    times their expected time, RESERVE_SECONDS and one step."""
    if run.budget is None:
        return None
    return run.budget - (RESERVE_MARGIN * wrapup_estimate(run) + RESERVE_SECONDS + (run.step_time or 0.0))


def wrapup_estimate(run: Run) -> float:
    """Seconds an end of epoch takes (validation, sample, saves): as last measured in this
    process, or, before that, the validation split at FORWARD_SHARE of the time a training step
    takes per character (validation runs forward only, a third of a step's work: this errs long)."""
    if run.wrapup_time is not None:
        return run.wrapup_time
    if run.step_time is None or run.timed_steps < 2:  # not until a step free of one-time costs
        return 0.0
    return FORWARD_SHARE * len(run.val_ids) * run.step_time / (run.cfg.batch_size * run.cfg.seq_len)


def run_outlook(run: Run) -> Outlook:
    """The run's ETA, final step and fraction done (schedule.outlook) as of now."""
    p = run.progress
    return outlook(
        p.step, run.total_steps, run.steps_per_epoch, run.step_time, wrapup_estimate(run),
        run.seconds(), run.budget, deadline(run),
    )


def train_step(run: Run, x: np.ndarray, y: np.ndarray) -> StepResult:
    """One window (x, y: (T, B) ids): forward and backward from the carried state, clip, and — if
    the loss and gradient norm are sane — update the weights, carry the state and report a Step.
    The rate is decided after the backward pass, so that under a time budget the last update is
    the one at the floor (under torchrun: rank 0's rate, by its clock)."""
    t0 = run.clock()
    p, cfg = run.progress, run.cfg
    loss, norm, new_state = run.engine.forward_backward(x, y, run.state)
    ratio = scheduled_ratio(run)
    if run.budget is not None:  # the rate follows a clock: every rank takes rank 0's
        (ratio,), _ = run.engine.team.agree(lead=[ratio])
    lr = cfg.lr * ratio * p.lr_scale
    if not (loss <= run.loss_limit and math.isfinite(norm)):  # also catches NaN
        return StepResult(loss, norm, lr, applied=False)
    run.engine.update(lr)
    run.state = new_state
    p.count(loss, cfg.batch_size * cfg.seq_len)
    p.schedule_ratio = ratio
    result = StepResult(loss, norm, lr, applied=True)
    seconds = run.clock() - t0
    _report_step(run, result, seconds)
    run.tuner.after_step(seconds)  # may change the thread count of the next steps
    return result


def recover(run: Run, result: StepResult) -> None:
    """A diverged step: back to the last good weights with a zero carried state and half the
    learning rate, skipping the window; at the MAX_RECOVERIES-th time, stop with TrainingError."""
    p = run.progress
    p.recoveries += 1
    run.engine.restore(run.snapshot)
    run.state = run.engine.zero_state()
    if p.recoveries >= MAX_RECOVERIES:
        run.on_event(Diverged(p.step, result.loss, result.grad_norm, "stopped: the loss keeps diverging"))
        raise TrainingError(
            f"training diverged {p.recoveries} times (loss {result.loss}, gradient norm {result.grad_norm}); "
            f"the last good checkpoint is kept — try a lower --lr or a smaller --clip"
        )
    p.lr_scale *= 0.5
    action = f"restored the last good weights and halved the learning rate to {result.lr * 0.5:.3g}"
    run.on_event(Diverged(p.step, result.loss, result.grad_norm, action))
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
    text = _sample(run)
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
    run.on_event(EpochEnd(
        record["epoch"], p.step, train_loss, ev.loss, ev.bits_per_char, best, text, p.elapsed,
        p.smoothed_loss, record["lr"], record["chars_per_s"],
    ))
    if best:
        save(run, "best")
    if cfg.keep > 0:
        save(run, "snapshot")


def save(run: Run, kind: str, status: str | None = None) -> None:
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
        _write(run, to_checkpoint(run, False, status), _epoch_path(run.model_path, run.progress.epoch), kind)
        _prune_snapshots(run)
    else:
        raise ValueError(f"unknown checkpoint kind {kind!r}")


def finish(run: Run, reason: str) -> Finished:
    """End the run: score the last partial epoch (unless interrupted), make sure a model file
    exists, write the resume file with `reason` as its status, and report Finished."""
    p = run.progress
    if reason != "interrupted" and p.last_eval_step != p.step:
        end_epoch(run, p.epoch_loss())
    if not run.model_path.exists():
        save(run, "best", "latest")
    p.elapsed = run.elapsed_before + run.seconds()
    save(run, "resume", reason)
    finished = Finished(
        reason, p.step, p.step / run.steps_per_epoch, p.best_val_loss, p.best_epoch, p.elapsed,
        p.chars / max(p.elapsed, 1e-9), tuple(sorted(run.files)),
    )
    run.on_event(finished)
    return finished


def _after_step(run: Run, should_stop: Callable[[], bool]) -> str | None:
    """Advance the data cursor and do what is due after an applied step: the end of an epoch, a
    sample, a timed save, releasing corpus pages. Returns a reason to stop, or None."""
    p, cfg = run.progress, run.cfg
    if p.next_window(run.steps_per_epoch):
        run.state = run.engine.zero_state()  # window 0 does not continue the last window
        t0 = run.clock()
        end_epoch(run, p.take_epoch_loss())
        save(run, "resume")
        run.wrapup_time = run.clock() - t0
    elif cfg.sample_every and p.step % cfg.sample_every == 0 and (run.total_steps is None or p.step < run.total_steps) and run.leader:
        run.on_event(Sampled(p.step, _sample(run)))
    end = deadline(run)
    time_up, save_due = end is not None and run.seconds() >= end, run.clock() - run.last_save >= cfg.save_minutes * 60
    (time_up, save_due), (stop,) = run.engine.team.agree(lead=[time_up, save_due], flags=[should_stop()])
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


def _report_step(run: Run, result: StepResult, seconds: float) -> None:
    p = run.progress
    chars = run.cfg.batch_size * run.cfg.seq_len
    p.elapsed = run.elapsed_before + run.seconds()
    run.timed_steps += 1
    if run.timed_steps <= 2:  # the first step pays one-time costs (allocation): the second replaces it
        run.step_time = seconds
    else:
        run.step_time = 0.9 * run.step_time + 0.1 * seconds
    ahead = run_outlook(run)
    p.record(run.steps_per_epoch, result.lr, chars / run.step_time)
    run.on_event(
        Step(p.step, p.step / run.steps_per_epoch, result.loss, p.smoothed_loss, result.lr, result.grad_norm,
             chars / run.step_time, p.elapsed, ahead.eta, ahead.end_step, ahead.fraction, ahead.by_time)
    )


def _started(run: Run, resumed: bool) -> Started:
    p = run.progress
    notes = () if resumed else _size_notes(run.config, len(run.train_ids), run.cfg.dropout)  # said when the run began
    if run.total_steps is not None and p.step >= run.total_steps:
        notes += (
            f"this run already did {p.step} of its {run.total_steps} steps; "
            f"pass a larger --epochs or --max-steps, or --max-minutes, to train on",
        )
    c = run.corpus
    last_val = p.history[-1]["val_loss"] if p.history else None
    return Started(
        run.config, run.cfg, c.name, len(c), len(run.train_ids), len(run.val_ids), c.vocab.size,
        model.num_params(run.config), run.steps_per_epoch, run.total_steps, run.model_path, run.resume_path,
        p.step, resumed, notes, last_val, run.engine.describe(),
    )


def _steps_per_epoch(n_train: int, B: int, T: int) -> int:
    """Full windows per epoch; a training split too short for one is a UsageError saying what fits."""
    steps = num_windows(n_train, B, T)
    if steps < 1:
        most = (n_train - 1) // T
        fix = f"use --batch-size {most} or less" if most >= 1 else f"use --seq-len {n_train - 2} or less"
        raise UsageError(
            f"the training split ({n_train} chars) is too short for one window of "
            f"--batch-size {B} × --seq-len {T}; {fix}, or give a longer text"
        )
    return steps


def divergence_limit(V: int) -> float:
    """A loss per character above this is divergence, not learning: 4 × the uniform guess, ln V."""
    return max(10.0, 4.0 * math.log(V))


def _write(run: Run, ckpt: Checkpoint, path: Path, kind: str) -> None:
    ckpt_io.save(ckpt, path)
    run.files.add(path)
    run.on_event(Saved(path, kind))


def _epoch_path(model_path: Path, epoch: int) -> Path:
    return model_path.with_name(f"{_stem(model_path)}.epoch{epoch:04d}{ckpt_io.SUFFIX}")


def _prune_snapshots(run: Run) -> None:
    """Delete all but the newest `keep` epoch snapshots beside the model."""
    pattern = f"{_stem(run.model_path)}.epoch[0-9][0-9][0-9][0-9]{ckpt_io.SUFFIX}"
    for stale in sorted(run.model_path.parent.glob(pattern))[: -run.cfg.keep]:
        stale.unlink(missing_ok=True)
        run.files.discard(stale)


def _stem(model_path: Path) -> str:
    name = model_path.name
    return name[: -len(ckpt_io.SUFFIX)] if name.endswith(ckpt_io.SUFFIX) else name


def _sample(run: Run) -> str:
    """A sample for the progress display, from its own RNG so training is not disturbed."""
    cfg = run.cfg
    if cfg.sample_length == 0:
        return ""
    seed = cfg.sample_seed if cfg.sample_seed is not None else default_sample_seed(run.corpus)
    rng = np.random.default_rng([cfg.seed, run.progress.step])
    text = sample(
        run.engine.model_numpy(), run.config, run.corpus.vocab, seed, cfg.sample_length, Sampling(cfg.sample_temperature),
        rng=rng, kernels=run.engine.kernels,
    )
    return text[0]


def default_sample_seed(corpus: Corpus) -> str:
    """The corpus's first word (up to 20 characters), so samples start like the text does."""
    head = corpus.vocab.decode(corpus.ids[:20])
    word = head.split(maxsplit=1)[0] if head.strip() else ""
    return word or head[:1]


def _size_notes(config: ModelConfig, train_chars: int, dropout: float = 0.0) -> tuple[str, ...]:
    """char-rnn's rule of thumb: parameters of the same order as training characters (within a
    factor of 10). The advice names a hidden size that fits, and more dropout only above the
    `dropout` already set."""
    n = model.num_params(config)
    fits = _hidden_size_that_fits(config, train_chars)
    if n > 10 * train_chars:
        advice = [f"a smaller --hidden-size (-H {fits}: {model.num_params(replace(config, hidden_size=fits)):,} parameters)"] if fits < config.hidden_size else []
        if dropout < 0.5:
            advice.append(f"more dropout (--dropout {min(0.5, dropout + 0.2):g})")
        remedy = " or ".join(advice) or "a longer text"
        return (
            f"{n:,} parameters for {train_chars:,} training characters: the model will memorise "
            f"the text in long runs (the best checkpoint by validation is kept); if val loss "
            f"climbs early, {remedy} would suit it better",
        )
    if n * 10 < train_chars:
        return (
            f"{n:,} parameters for {train_chars:,} training characters: a larger --hidden-size "
            f"(-H {fits}) would likely learn more",
        )
    return ()


def _hidden_size_that_fits(config: ModelConfig, train_chars: int) -> int:
    """The largest power-of-two hidden size (16 to 2048) whose model has no more parameters than
    training characters: the middle of the rule of thumb's range."""
    fits = 16
    for H in (32, 64, 128, 256, 512, 1024, 2048):
        if model.num_params(replace(config, hidden_size=H)) <= train_chars:
            fits = H
    return fits
