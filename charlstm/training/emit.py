"""What a training run reports, made from its state: the events of events.py (Started, Step,
EpochEnd, Finished) and the sample drawn for the display. The loop (train.py) decides when; this
module says what each event holds. Nothing here prints."""

from __future__ import annotations

import numpy as np

from charlstm.inference.generate import Sampling, sample
from charlstm.nn import model
from charlstm.text.corpus import Corpus
from charlstm.training.events import EpochEnd, Finished, Started, Step
from charlstm.training.plan import size_notes
from charlstm.training.schedule import run_outlook
from charlstm.training.state import Run


def started(run: Run, resumed: bool) -> Started:
    """The run as it starts: its data, model, limits, files and engine, with the notes to show
    (the size advice when the run began; a finished run that has nothing left to do)."""
    p = run.progress
    notes = () if resumed else size_notes(run.config, len(run.train_ids), run.cfg.dropout)  # said when the run began
    if run.total_steps is not None and p.step >= run.total_steps:
        notes += (
            f"this run already did {p.step:,} of its {run.total_steps:,} steps; "
            f"pass a larger --epochs or --max-steps, or --max-minutes, to train on",
        )
    c = run.corpus
    last_val = p.history[-1]["val_loss"] if p.history else None
    sizes = (len(c), len(run.train_ids), len(run.val_ids), c.vocab.size, model.num_params(run.config))
    return Started(
        run.config, run.cfg, c.name, *sizes, run.steps_per_epoch, run.total_steps,
        run.model_path, run.resume_path, p.step, resumed, notes, last_val, run.engine.describe(),
    )  # fmt: skip


def report_step(run: Run, loss: float, grad_norm: float, lr: float, seconds: float) -> None:
    """Record an applied step that took `seconds` and report it: the speed is a moving average
    of the step time (the first step, which pays one-time costs, is replaced by the second)."""
    p = run.progress
    chars = run.cfg.batch_size * run.cfg.seq_len
    p.elapsed = run.elapsed_before + run.seconds()
    run.timed_steps += 1
    if run.timed_steps <= 2:
        run.step_time = seconds
    else:
        run.step_time = 0.9 * run.step_time + 0.1 * seconds
    ahead = run_outlook(run)
    speed = chars / run.step_time
    p.record(run.steps_per_epoch, lr, speed)
    step = Step(
        p.step, p.step / run.steps_per_epoch, loss, p.smoothed_loss, lr, grad_norm, speed, p.elapsed,
        ahead.eta, ahead.end_step, ahead.fraction, ahead.by_time,
    )  # fmt: skip
    run.on_event(step)


def epoch_end(run: Run, record: dict) -> EpochEnd:
    """The epoch that `record` (an entry of the run's history) describes."""
    p = run.progress
    return EpochEnd(
        record["epoch"], p.step, record["train_loss"], record["val_loss"], record["val_bpc"], record["best"],
        record["sample"], p.elapsed, p.smoothed_loss, record["lr"], record["chars_per_s"],
    )  # fmt: skip


def finished(run: Run, reason: str) -> Finished:
    """How the run ended, and the files it wrote."""
    p = run.progress
    speed = p.chars / max(p.elapsed, 1e-9)
    return Finished(
        reason, p.step, p.step / run.steps_per_epoch, p.best_val_loss, p.best_epoch, p.elapsed, speed,
        tuple(sorted(run.files)),
    )  # fmt: skip


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
