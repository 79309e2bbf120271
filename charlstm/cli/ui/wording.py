"""What the training display says, as plain strings: the banner's rows, a step as a log line, an
epoch's summary, the one-line messages and the final summary's rows. The live and the plain
renderer (progress.py) draw the same words from here; nothing here knows how they are drawn."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charlstm.cli.ui.console import fmt_duration, fmt_epoch, fmt_losses, fmt_rate, model_name
from charlstm.config import TrainConfig, default_of
from charlstm.units import nats_to_bits

if TYPE_CHECKING:
    from charlstm.training import events

ENDINGS: dict[events.StopReason, str] = {
    "completed": "completed",
    "max_steps": "reached --max-steps",
    "time_budget": "reached --max-minutes",
    "interrupted": "interrupted",
}
"""How the final summary's title says why the run ended: 'training reached --max-steps'."""


def describe_end(e: events.Started) -> str:
    """How the run ends, in words: '10 epochs of 165 steps', '2 minutes or 310 steps, whichever comes first'."""
    t = e.train
    limits = []
    if t.max_minutes is not None:
        limits.append(f"{t.max_minutes:g} minute{'' if t.max_minutes == 1 else 's'}")
    if t.epochs is not None:
        limits.append(f"{t.epochs} epoch{'' if t.epochs == 1 else 's'} of {e.steps_per_epoch:,} steps")
    if t.max_steps is not None:
        limits.append(f"{t.max_steps:,} steps in all")
    return " or ".join(limits) + (", whichever comes first" if len(limits) > 1 else "")


def describe_optimizer(t: TrainConfig) -> str:
    """The optimiser, with Adam's decays when they are not the defaults: 'adam', 'adam (β 0.9, 0.99)'."""
    betas = (t.adam_beta1, t.adam_beta2)
    if t.optimizer == "adam" and betas != (
        default_of(TrainConfig, "adam_beta1"),
        default_of(TrainConfig, "adam_beta2"),
    ):
        return f"adam (β {betas[0]:g}, {betas[1]:g})"
    return t.optimizer


def describe_regularisation(t: TrainConfig) -> str:
    """Dropout and its relatives, those set: 'dropout 0.2', 'dropout 0.2 per window, weight drop
    0.3, EMA 0.99'."""
    parts = [f"dropout {t.dropout:g}" + (" per window" if t.dropout > 0 and t.dropout_mask == "window" else "")]
    if t.weight_drop > 0:
        parts.append(f"weight drop {t.weight_drop:g}")
    if t.ema > 0:
        parts.append(f"EMA {t.ema:g}")
    return ", ".join(parts)


def banner_title(e: events.Started) -> str:
    return "charlstm train" + (" (resumed)" if e.resumed else "")


def banner_rows(e: events.Started, threads: events.ThreadsChanged | None) -> list[tuple[str, str]]:
    """The start banner as (key, value) rows: corpus, model, training, engine, checkpoints, and
    the first choice of threads and where a resumed run resumes, when there are."""
    c, t = e.config, e.train
    sizes = f"{e.corpus_chars:,} chars ({e.train_chars:,} train, {e.val_chars:,} val)"
    training = (
        f"batch {t.batch_size} × seq {t.seq_len}, {describe_optimizer(t)} lr {t.lr:g} ({t.schedule}), "
        f"clip {t.clip:g}, {describe_regularisation(t)}; {describe_end(e)}"
    )
    rows = [
        ("corpus", f"{e.corpus}: {sizes}, vocabulary {e.vocab_size}"),
        ("model", f"{model_name(c)}, {e.num_params:,} parameters"),
        ("training", training),
        *([("engine", e.engine)] if e.engine else []),
        ("checkpoints", f"{e.model_path} (best), {e.resume_path} (resume)"),
    ]
    if threads is not None:
        rows.append(("threads", f"{threads.new} ({threads.why})"))
    if e.resumed:
        val = f", last val loss {e.val_loss:.3f}" if e.val_loss is not None else ""
        rows.append(("resumed", f"at step {e.start_step:,} (epoch {fmt_epoch(e.start_step / e.steps_per_epoch)}{val})"))
    return rows


def step_line(s: events.Step, val_loss: float | None) -> str:
    """A step as one log line: every field, full words."""
    end = f"/{'~' if s.by_time else ''}{s.end_step:,}" if s.end_step else ""
    fields = [
        f"step {s.step:,}{end}",
        f"epoch {s.epoch:.2f}",
        fmt_losses(s.smoothed_loss, "train loss"),
        *([fmt_losses(val_loss, "val loss")] if val_loss is not None else []),
        f"lr {s.lr:.2e}",
        f"{fmt_rate(s.chars_per_s)} chars/s",
        f"elapsed {fmt_duration(s.elapsed)}",
        f"eta {fmt_duration(s.eta)}",
    ]
    return "  ".join(fields)


def epoch_summary(e: events.EpochEnd) -> str:
    """An epoch's losses: 'epoch 2  train loss 1.234 (1.780 bits/char)  val loss ...'."""
    return f"epoch {fmt_epoch(e.epoch)}  {fmt_losses(e.train_loss, 'train loss')}  {fmt_losses(e.val_loss, 'val loss')}"


def epoch_sample_title(e: events.EpochEnd) -> str:
    return f"sample after epoch {fmt_epoch(e.epoch)}"


def sampled_title(s: events.Sampled) -> str:
    return f"sample at step {s.step:,}"


def diverged_message(d: events.Diverged) -> str:
    return f"warning: step {d.step:,} diverged (loss {d.loss:.4g}, gradient norm {d.grad_norm:.4g}): {d.action}"


def threads_message(t: events.ThreadsChanged) -> str:
    return f"threads {t.old} → {t.new}: {t.why}"


def summary_title(f: events.Finished) -> str:
    return "training " + ENDINGS[f.reason]


def summary_rows(f: events.Finished, started: events.Started | None) -> list[tuple[str, str]]:
    """The final summary as (key, value) rows: the best validation, steps, time, speed, the files
    written and how to see the run's report."""
    rows = []
    if f.best_val_loss is not None:
        best = f"{f.best_val_loss:.3f} nats/char, {nats_to_bits(f.best_val_loss):.3f} bits/char"
        rows += [
            ("best val loss", best),
            ("best at epoch", fmt_epoch(f.best_epoch) if f.best_epoch is not None else "–"),
        ]
    rows += [
        ("steps", f"{f.step:,} ({fmt_epoch(f.epoch)} epochs)"),
        ("time", fmt_duration(f.elapsed)),
        ("throughput", f"{fmt_rate(f.chars_per_s)} chars/s (validation and samples included)"),
        *(("wrote", str(path)) for path in f.files),
    ]
    if started is not None:
        rows.append(("report", f"charlstm report {started.model_path}"))
    return rows
