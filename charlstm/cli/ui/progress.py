"""The training display: the start banner, a live status line that fits the terminal (plain
lines when piped), a sample after each epoch, the final summary, and the progress of encoding a
large corpus. Everything goes to stderr, so stdout stays clean."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from charlstm.cli.ui.console import fmt_duration, fmt_epoch, fmt_losses, fmt_rate, model_name, note, print_plain, warn
from charlstm.config import TrainConfig, default_of
from charlstm.units import nats_to_bits

if TYPE_CHECKING:
    from charlstm.training import events


class EncodingProgress:
    """Progress of encoding a large corpus, `(phase, bytes_done, bytes_total)` callbacks: a bar
    on a terminal, a line per phase otherwise. Files under 8 MiB pass silently."""

    MIN_BYTES = 8 << 20

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        if total < self.MIN_BYTES:
            return
        if phase != self.phase:
            self.phase = phase
            if self.console.is_terminal:
                if self.progress is None:
                    self.progress = Progress(
                        TextColumn("{task.description}"),
                        BarColumn(bar_width=30),
                        TextColumn("{task.fields[mb]}"),
                        console=self.console,
                        transient=True,
                    )
                    self.progress.start()
                    self.task = self.progress.add_task(phase, total=total, mb="")
                self.progress.update(self.task, description=f"{phase} corpus", completed=0)
            else:
                self.console.print(f"{phase} corpus ({total / 1e6:,.0f} MB)…", soft_wrap=True)
        if self.progress is not None:
            self.progress.update(self.task, completed=done, mb=f"{done / 1e6:,.0f}/{total / 1e6:,.0f} MB")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


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


class StatusLine:
    """The live line under the training panels, fitted to the terminal's width: fields are
    abbreviated, then dropped, least useful first; the step counter always stays."""

    # (field, variant) reductions in order: a variant index of None drops the field; "gap" is
    # the number of spaces between fields
    REDUCTIONS = (
        ("rate", 1),
        ("time", 1),
        ("train", 1),
        ("val", 1),
        ("epoch", 1),
        ("gap", 1),
        ("rate", None),
        ("lr", 1),
        ("epoch", None),
        ("bar", None),
        ("lr", None),
        ("time", None),
        ("val", None),
        ("train", None),
    )
    ORDER = ("epoch", "bar", "step", "train", "val", "lr", "rate", "time")  # left to right
    BAR_MIN, BAR_MAX = 8, 30  # cells

    def __init__(self) -> None:
        self.val_loss: float | None = None

    def fields(self, s: events.Step, e: events.Started) -> dict[str, tuple[tuple[str, str], ...]]:
        """Each field's variants, longest first, as (text, style)."""
        about = "~" if s.by_time else ""
        end = f"/{about}{s.end_step:,}" if s.end_step else ""
        epoch = (s.step - 1) // e.steps_per_epoch + 1  # the epoch of the update just done
        epochs = ""
        if s.end_step:
            total = max(1, math.ceil(s.end_step / e.steps_per_epoch))
            epoch, epochs = min(epoch, total), f"/{about}{total}"
        train = s.smoothed_loss
        val = self.val_loss
        return {
            "epoch": ((f"epoch {epoch}{epochs}", "bold"), (f"ep {epoch}{epochs}", "bold")),
            "step": ((f"step {s.step:,}{end}", ""),),
            "train": ((fmt_losses(train, "train", "bpc"), "cyan"), (f"train {nats_to_bits(train):.3f} bpc", "cyan")),
            "val": (
                (fmt_losses(val, "val", "bpc") if val is not None else "val –", "magenta"),
                (f"val {nats_to_bits(val):.3f} bpc" if val is not None else "val –", "magenta"),
            ),
            "lr": ((f"lr {s.lr:.2e}", ""), (f"lr {s.lr:.1e}", "")),
            "rate": ((f"{fmt_rate(s.chars_per_s)} chars/s", ""), (f"{fmt_rate(s.chars_per_s)} c/s", "")),
            "time": (
                (f"{fmt_duration(s.elapsed)} elapsed, ETA {fmt_duration(s.eta)}", ""),
                (f"ETA {fmt_duration(s.eta)}", ""),
            ),
        }

    def render(self, s: events.Step, e: events.Started, width: int) -> Text:
        """The line for step `s`, at most `width` characters."""
        variants = self.fields(s, e)
        chosen: dict[str, int | None] = {name: 0 for name in self.ORDER} | {"gap": 2}
        for name, level in ((None, 0), *self.REDUCTIONS):
            if name is not None:
                chosen[name] = level
            gap = chosen["gap"] or 1
            texts = [variants[n][chosen[n]][0] for n in self.ORDER if n != "bar" and chosen[n] is not None]
            room = width - sum(map(len, texts)) - gap * len(texts)  # left for a bar and the gap before it
            if room >= (self.BAR_MIN if chosen["bar"] is not None else -gap):
                break
        line = Text()
        for name in self.ORDER:
            if chosen[name] is None:
                continue
            if line:
                line.append(" " * gap)
            if name == "bar":
                line.append_text(bar(s.fraction, min(self.BAR_MAX, room)))
            else:
                text, style = variants[name][chosen[name]]
                line.append(text, style=style)
        return line


def bar(fraction: float, width: int) -> Text:
    """A progress bar of `width` cells: done heavy and coloured, to do thin and dim (readable
    without colour too)."""
    done = max(0, min(width, round(fraction * width)))
    return Text("━" * done, style="bar.complete") + Text("─" * (width - done), style="bar.back")


class TrainView:
    """Turns training events into a display: on a terminal, panels and a live status line that
    fits its width; otherwise plain lines. `quiet` shows only the final summary. `plan_notes` are
    what planning decided (resumed options, a stream read into the cache), shown under the banner."""

    def __init__(
        self, console: Console, quiet: bool = False, log_every: int = 0, plan_notes: tuple[str, ...] = ()
    ) -> None:
        self.console = console
        self.quiet = quiet
        self.plan_notes = plan_notes
        self.live = console.is_terminal and not quiet
        self.log_every = log_every
        self.status = StatusLine()
        self.display: Live | None = None
        self.started: events.Started | None = None
        self.last: tuple[events.Step, float] | None = None  # the last step shown, and when (time.monotonic)
        self.threads: events.ThreadsChanged | None = None  # the first choice of threads, for the banner

    # event dispatch ---------------------------------------------------------------------------
    def __call__(self, event: events.Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__.lower()}", None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        if self.display is not None:
            self.display.stop()
            self.display = None

    # handlers ---------------------------------------------------------------------------------
    def _on_started(self, e: events.Started) -> None:
        self.started = e
        self.status.val_loss = e.val_loss
        if self.log_every <= 0:
            self.log_every = max(1, e.steps_per_epoch // 10)
        if self.quiet:
            for message in self.plan_notes:
                note(self.console, message)
            return
        c, t = e.config, e.train
        rows = [
            (
                "corpus",
                f"{e.corpus}: {e.corpus_chars:,} chars ({e.train_chars:,} train, {e.val_chars:,} val), vocabulary {e.vocab_size}",
            ),
            ("model", f"{model_name(c)}, {e.num_params:,} parameters"),
            (
                "training",
                f"batch {t.batch_size} × seq {t.seq_len}, {describe_optimizer(t)} lr {t.lr:g} ({t.schedule}), clip {t.clip:g}, "
                f"{describe_regularisation(t)}; {describe_end(e)}",
            ),
            ("checkpoints", f"{e.model_path} (best), {e.resume_path} (resume)"),
        ]
        if e.engine:
            rows.insert(3, ("engine", e.engine))
        if self.threads is not None:
            rows.append(("threads", f"{self.threads.new} ({self.threads.why})"))
        if e.resumed:
            val = f", last val loss {e.val_loss:.3f}" if e.val_loss is not None else ""
            rows.append(
                ("resumed", f"at step {e.start_step:,} (epoch {fmt_epoch(e.start_step / e.steps_per_epoch)}{val})")
            )
        title = "charlstm train" + (" (resumed)" if e.resumed else "")
        if self.live:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold")
            grid.add_column()
            for row in rows:
                grid.add_row(*row)
            self.console.print(Panel(grid, title=title, title_align="left", box=box.ROUNDED))
        else:  # one unwrapped line per row, for log files
            self.console.print(title)
            for key, value in rows:
                self.console.print(f"{key:<12} {value}", soft_wrap=True)
        for message in self.plan_notes:
            note(self.console, message)
        for message in e.notes:
            warn(self.console, "note: " + message)
        if self.live:
            self.display = Live(
                console=self.console, refresh_per_second=4, transient=True, get_renderable=self.live_line
            )
            self.display.start()

    def live_line(self) -> Text:
        """The live line, drawn at every refresh: the last step's, with its clock running on while
        the run validates, samples and saves after it (elapsed counts up, the ETA down to 0:00),
        and the val field as of the last validation."""
        e, last = self.started, self.last
        if e is None or last is None:
            return Text(f"step {e.start_step if e else 0:,}")
        s, at = last
        waited = time.monotonic() - at
        s = replace(s, elapsed=s.elapsed + waited, eta=max(0.0, s.eta - waited))
        return self.status.render(s, e, self.console.width - 1)

    def _on_step(self, s: events.Step) -> None:
        e = self.started
        if self.quiet or e is None:
            return
        if self.display is not None:
            self.last = (s, time.monotonic())
        elif s.step % self.log_every == 0 or (s.step == s.end_step and not s.by_time):  # and the last step
            self.console.print(self.plain_step_line(s), soft_wrap=True, markup=False)

    def plain_step_line(self, s: events.Step) -> str:
        """A step as one log line: every field, full words."""
        end = f"/{'~' if s.by_time else ''}{s.end_step}" if s.end_step else ""
        val = self.status.val_loss
        fields = [
            f"step {s.step}{end}",
            f"epoch {s.epoch:.2f}",
            fmt_losses(s.smoothed_loss, "train loss"),
            *([fmt_losses(val, "val loss")] if val is not None else []),
            f"lr {s.lr:.2e}",
            f"{fmt_rate(s.chars_per_s)} chars/s",
            f"elapsed {fmt_duration(s.elapsed)}",
            f"eta {fmt_duration(s.eta)}",
        ]
        return "  ".join(fields)

    def _on_epochend(self, ev: events.EpochEnd) -> None:
        self.status.val_loss = ev.val_loss
        if self.quiet:
            return
        if self.display is not None:
            self.display.refresh()  # the line under the summary shows this validation, not the one before
        best = " [green]★ best[/green]" if ev.best and self.live else ("  (best)" if ev.best else "")
        summary = f"epoch {fmt_epoch(ev.epoch)}  {fmt_losses(ev.train_loss, 'train loss')}  {fmt_losses(ev.val_loss, 'val loss')}"
        self._print_sample(f"sample after epoch {fmt_epoch(ev.epoch)}", ev.sample, summary + best)

    def _on_sampled(self, s: events.Sampled) -> None:
        if not self.quiet:
            self._print_sample(f"sample at step {s.step:,}", s.text)

    def _print_sample(self, title: str, text: str, summary: str | None = None) -> None:
        """A summary line and a sample: in a panel on a terminal, between --- lines otherwise."""
        if self.live:
            if summary:
                self.console.print(summary)
            if text:
                self.console.print(Panel(Text(text), title=title, title_align="left", box=box.ROUNDED))
            return
        if summary:
            self.console.print(summary, soft_wrap=True, markup=False)
        if text:
            self.console.print(f"--- {title} ---")
            self.console.print(text.rstrip("\n"), markup=False, soft_wrap=True)
            self.console.print("---")

    def _on_saved(self, s: events.Saved) -> None:
        pass  # listed in the final summary

    def _on_diverged(self, d: events.Diverged) -> None:
        warn(
            self.console,
            f"warning: step {d.step} diverged (loss {d.loss:.4g}, gradient norm {d.grad_norm:.4g}): {d.action}",
        )

    def _on_threadschanged(self, t: events.ThreadsChanged) -> None:
        """The first choice goes into the banner (it comes before it); a change is a dim line."""
        if self.started is None:
            self.threads = t
        elif not self.quiet:
            note(self.console, f"threads {t.old} → {t.new}: {t.why}")

    def _on_finished(self, f: events.Finished) -> None:
        self.close()
        reasons = {
            "completed": "completed",
            "max_steps": "reached --max-steps",
            "time_budget": "reached --max-minutes",
            "interrupted": "interrupted",
        }
        table = Table(
            title="training " + reasons.get(f.reason, f.reason),
            box=box.SIMPLE_HEAD,
            show_header=False,
            title_justify="left",
        )
        table.add_column(style="bold")
        table.add_column()
        if f.best_val_loss is not None:
            table.add_row(
                "best val loss", f"{f.best_val_loss:.3f} nats/char, {nats_to_bits(f.best_val_loss):.3f} bits/char"
            )
            table.add_row("best at epoch", fmt_epoch(f.best_epoch) if f.best_epoch is not None else "–")
        table.add_row("steps", f"{f.step:,} ({fmt_epoch(f.epoch)} epochs)")
        table.add_row("time", fmt_duration(f.elapsed))
        table.add_row("throughput", f"{fmt_rate(f.chars_per_s)} chars/s (validation and samples included)")
        for path in f.files:
            table.add_row("wrote", str(path))
        if self.started is not None:
            table.add_row("report", f"charlstm report {self.started.model_path}")
        print_plain(self.console, table)


def stopping_message(console: Console) -> None:
    warn(console, "stopping after this step and saving (Ctrl-C again to abort at once)…")
