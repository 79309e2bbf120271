"""What a training run reports, made from its state: the events of events.py (Started, Step,
EpochEnd, Finished) and the sample drawn for the display. The loop (loop.py) decides when; this
module says what each event holds. Nothing here prints."""

from __future__ import annotations

import numpy as np

from charlstm.inference.generate import Sampling, sample
from charlstm.nn import model
from charlstm.text.corpus import Corpus
from charlstm.training.events import EpochEnd, Finished, Started, Step, StopReason
from charlstm.training.plan import size_notes
from charlstm.training.schedule import run_outlook
from charlstm.training.state import Run


def started(run: Run, resumed: bool) -> Started:
    """The run as it starts: its data, model, limits, files and engine, with the notes to show
    (the size advice when the run began and the plan did not choose the size; a finished run that
    has nothing left to do)."""
    p = run.progress
    advice = not resumed and run.sizing is None  # said when the run began, unless the plan chose the model
    notes = size_notes(run.config, len(run.train_ids), run.cfg.dropout) if advice else ()
    if run.total_steps is not None and p.step >= run.total_steps:
        notes += (
            f"this run already did {p.step:,} of its {run.total_steps:,} steps; "
            f"pass a larger --epochs or --max-steps, or --max-minutes, to train on",
        )
    c = run.corpus
    last_val = p.history[-1]["val_loss"] if p.history else None
    return Started(
        config=run.config,
        train=run.cfg,
        corpus=c.name,
        corpus_chars=len(c),
        train_chars=len(run.train_ids),
        val_chars=len(run.val_ids),
        vocab_size=c.vocab.size,
        num_params=model.num_params(run.config),
        steps_per_epoch=run.steps_per_epoch,
        total_steps=run.total_steps,
        model_path=run.model_path,
        resume_path=run.resume_path,
        start_step=p.step,
        resumed=resumed,
        notes=notes,
        val_loss=last_val,
        engine=run.engine.describe(),
    )


def report_step(run: Run, loss: float, grad_norm: float, lr: float, seconds: float) -> None:
    """Record an applied step that took `seconds` and report it: the speed is a moving average
    of the step time (the first step, which pays one-time costs, is replaced by the second)."""
    p = run.progress
    chars = run.cfg.batch_size * run.cfg.seq_len
    p.elapsed = run.elapsed_before + run.seconds()
    run.timed_steps += 1
    if run.timed_steps <= 2 or run.step_time is None:  # None: no step timed yet
        run.step_time = seconds
    else:
        run.step_time = 0.9 * run.step_time + 0.1 * seconds
    follow_pace(run, seconds)
    ahead = run_outlook(run)
    speed = chars / run.step_time
    p.record(run.steps_per_epoch, lr, speed)
    step = Step(
        step=p.step,
        epoch=p.step / run.steps_per_epoch,
        loss=loss,
        smoothed_loss=loss if p.smoothed_loss is None else p.smoothed_loss,  # set once `count` booked a step
        lr=lr,
        grad_norm=grad_norm,
        chars_per_s=speed,
        elapsed=p.elapsed,
        eta=ahead.eta,
        end_step=ahead.end_step,
        fraction=ahead.fraction,
        by_time=ahead.by_time,
    )
    run.on_event(step)


def follow_pace(run: Run, seconds: float) -> None:
    """The wall seconds from the last step to this one (a sample drawn, a timed save, the display:
    whatever the run does between steps, but an end of epoch, which the ETA counts apart) into
    the run's pace, smoothed as the step time is. A new thread count starts it afresh: the
    tuner can make steps several times faster or slower at once, and the ETA follows."""
    now = run.clock()
    interval = seconds if run.last_step_at is None else max(seconds, now - run.last_step_at)
    run.last_step_at = now
    if run.pace is None or run.timed_steps <= 2 or run.tuner.threads != run.pace_threads:
        run.pace, run.pace_threads = interval, run.tuner.threads
    else:
        run.pace = 0.9 * run.pace + 0.1 * interval


def epoch_end(run: Run, record: dict) -> EpochEnd:
    """The epoch that `record` (an entry of the run's history) describes."""
    p = run.progress
    return EpochEnd(
        epoch=record["epoch"],
        step=p.step,
        train_loss=record["train_loss"],
        val_loss=record["val_loss"],
        val_bpc=record["val_bpc"],
        best=record["best"],
        sample=record["sample"],
        elapsed=p.elapsed,
        smoothed_loss=p.smoothed_loss,
        lr=record["lr"],
        chars_per_s=record["chars_per_s"],
    )


def finished(run: Run, reason: StopReason) -> Finished:
    """How the run ended, and the files it wrote."""
    p = run.progress
    return Finished(
        reason=reason,
        step=p.step,
        epoch=p.step / run.steps_per_epoch,
        best_val_loss=p.best_val_loss,
        best_epoch=p.best_epoch,
        elapsed=p.elapsed,
        chars_per_s=p.chars / max(p.elapsed, 1e-9),
        files=tuple(sorted(run.files)),
    )


def display_sample(run: Run) -> str:
    """A sample for the progress display, from its own RNG so training is not disturbed."""
    cfg = run.cfg
    if cfg.sample_length == 0:
        return ""
    seed = cfg.sample_seed if cfg.sample_seed is not None else default_sample_seed(run.corpus)
    rng = np.random.default_rng([cfg.seed, run.progress.step])
    params = run.engine.model_numpy()
    how = Sampling(cfg.sample_temperature)
    text = sample(
        params, run.config, run.corpus.vocab, seed, cfg.sample_length, how, rng=rng, kernels=run.engine.kernels
    )
    return text[0]


def default_sample_seed(corpus: Corpus) -> str:
    """The corpus's first word (up to 20 characters), so samples start like the text does."""
    head = corpus.vocab.decode(corpus.ids[:20])
    word = head.split(maxsplit=1)[0] if head.strip() else ""
    return word or head[:1]
