"""The training display: the start banner, a live status line that fits the terminal (plain
lines when piped), a sample after each epoch, the final summary, and the progress of encoding a
large corpus. Everything goes to stderr, so stdout stays clean."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from charlstm.cli.ui import wording as say
from charlstm.cli.ui.console import fmt_duration, fmt_losses, fmt_rate, note, print_plain, warn
from charlstm.training import events
from charlstm.units import nats_to_bits


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

    def fields(self, s: events.Step, e: events.Started, val: float | None) -> dict[str, tuple[tuple[str, str], ...]]:
        """Each field's variants, longest first, as (text, style); `val` is the last validation loss."""
        about = "~" if s.by_time else ""
        end = f"/{about}{s.end_step:,}" if s.end_step else ""
        epoch = (s.step - 1) // e.steps_per_epoch + 1  # the epoch of the update just done
        epochs = ""
        if s.end_step:
            total = max(1, math.ceil(s.end_step / e.steps_per_epoch))
            epoch, epochs = min(epoch, total), f"/{about}{total}"
        train = s.smoothed_loss
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

    def render(self, s: events.Step, e: events.Started, val: float | None, width: int) -> Text:
        """The line for step `s`, at most `width` characters, with `val` the last validation loss."""
        variants = self.fields(s, e, val)
        chosen: dict[str, int | None] = dict.fromkeys(self.ORDER, 0)
        chosen["gap"] = 2
        for name, level in ((None, 0), *self.REDUCTIONS):
            if name is not None:
                chosen[name] = level
            gap = chosen["gap"] or 1
            texts = [variants[n][i][0] for n in self.ORDER if n != "bar" and (i := chosen[n]) is not None]
            room = width - sum(map(len, texts)) - gap * len(texts)  # left for a bar and the gap before it
            if room >= (self.BAR_MIN if chosen["bar"] is not None else -gap):
                break
        line = Text()
        for name in self.ORDER:
            if (i := chosen[name]) is None:
                continue
            if line:
                line.append(" " * gap)
            if name == "bar":
                line.append_text(bar(s.fraction, min(self.BAR_MAX, room)))
            else:
                text, style = variants[name][i]
                line.append(text, style=style)
        return line


def bar(fraction: float, width: int) -> Text:
    """A progress bar of `width` cells: done heavy and coloured, to do thin and dim (readable
    without colour too)."""
    done = max(0, min(width, round(fraction * width)))
    return Text("━" * done, style="bar.complete") + Text("─" * (width - done), style="bar.back")


class TrainView:
    """A run's display, fed its events: the dispatch table (which event each handler draws; Saved
    has none, as the final summary lists the files written), what the events leave for later
    ones, and what every display shows alike (warnings, changes of threads, the final summary).
    Its renderers: `LiveView`, `PlainView`, `QuietView`."""

    def __init__(self, console: Console, plan_notes: tuple[str, ...] = ()) -> None:
        self.console = console
        self.plan_notes = plan_notes  # what planning decided (resumed options, a stream read into the cache)
        self.started: events.Started | None = None
        self.val_loss: float | None = None  # the last validation loss
        self.threads: events.ThreadsChanged | None = None  # the first choice of threads, for the banner
        self.handlers: dict[type[events.Event], Callable[[Any], None]] = {
            events.Started: self.on_started,
            events.Step: self.on_step,
            events.EpochEnd: self.on_epoch_end,
            events.Sampled: self.on_sampled,
            events.Diverged: self.on_diverged,
            events.ThreadsChanged: self.on_threads_changed,
            events.Finished: self.on_finished,
        }

    def __call__(self, event: events.Event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def close(self) -> None:
        """Stop drawing (the live line); idempotent."""

    def remember(self, e: events.Started) -> None:
        self.started, self.val_loss = e, e.val_loss

    def on_started(self, e: events.Started) -> None:
        self.remember(e)

    def show_notes(self, e: events.Started) -> None:
        """Under the banner: the plan's notes, dim, then the run's (size advice, nothing left to do)."""
        for message in self.plan_notes:
            note(self.console, message)
        for message in e.notes:
            warn(self.console, "note: " + message)

    def on_step(self, s: events.Step) -> None:
        pass

    def on_epoch_end(self, e: events.EpochEnd) -> None:
        self.val_loss = e.val_loss

    def on_sampled(self, s: events.Sampled) -> None:
        pass

    def on_diverged(self, d: events.Diverged) -> None:
        warn(self.console, say.diverged_message(d))

    def on_threads_changed(self, t: events.ThreadsChanged) -> None:
        """The first choice goes into the banner (it comes before it); a change is a dim line."""
        if self.started is None:
            self.threads = t
        else:
            note(self.console, say.threads_message(t))

    def on_finished(self, f: events.Finished) -> None:
        self.close()
        table = Table(title=say.summary_title(f), box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for row in say.summary_rows(f, self.started):
            table.add_row(*row)
        print_plain(self.console, table)


class QuietView(TrainView):
    """--quiet, and the ranks other than 0: the plan's notes, warnings and the final summary."""

    def on_started(self, e: events.Started) -> None:
        self.remember(e)
        for message in self.plan_notes:
            note(self.console, message)

    def on_threads_changed(self, t: events.ThreadsChanged) -> None:
        pass


class PlainView(TrainView):
    """The display when stderr is not a terminal: unwrapped lines for log files. A step line every
    `log_every` steps (0: ten an epoch) and at the last step; samples between --- lines."""

    def __init__(self, console: Console, log_every: int = 0, plan_notes: tuple[str, ...] = ()) -> None:
        super().__init__(console, plan_notes)
        self.log_every = log_every

    def on_started(self, e: events.Started) -> None:
        self.remember(e)
        if self.log_every <= 0:
            self.log_every = max(1, e.steps_per_epoch // 10)
        self.console.print(say.banner_title(e))
        for key, value in say.banner_rows(e, self.threads):
            self.console.print(f"{key:<12} {value}", soft_wrap=True)
        self.show_notes(e)

    def on_step(self, s: events.Step) -> None:
        if self.started is None:
            return
        if s.step % self.log_every == 0 or (s.step == s.end_step and not s.by_time):
            self.console.print(say.step_line(s, self.val_loss), soft_wrap=True, markup=False)

    def on_epoch_end(self, e: events.EpochEnd) -> None:
        super().on_epoch_end(e)
        self.console.print(say.epoch_summary(e) + ("  (best)" if e.best else ""), soft_wrap=True, markup=False)
        self.show_sample(say.epoch_sample_title(e), e.sample)

    def on_sampled(self, s: events.Sampled) -> None:
        self.show_sample(say.sampled_title(s), s.text)

    def show_sample(self, title: str, text: str) -> None:
        if text:
            self.console.print(f"--- {title} ---")
            self.console.print(text.rstrip("\n"), markup=False, soft_wrap=True)
            self.console.print("---")


class LiveView(TrainView):
    """The display on a terminal: the banner and samples in panels, and under them a status line
    redrawn four times a second, fitted to the terminal's width (`StatusLine`)."""

    def __init__(self, console: Console, plan_notes: tuple[str, ...] = ()) -> None:
        super().__init__(console, plan_notes)
        self.status = StatusLine()
        self.display: Live | None = None
        self.last: tuple[events.Step, float] | None = None  # the last step, and when it came (time.monotonic)

    def close(self) -> None:
        if self.display is not None:
            self.display.stop()
            self.display = None

    def on_started(self, e: events.Started) -> None:
        self.remember(e)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for row in say.banner_rows(e, self.threads):
            grid.add_row(*row)
        self.console.print(Panel(grid, title=say.banner_title(e), title_align="left", box=box.ROUNDED))
        self.show_notes(e)
        self.display = Live(console=self.console, refresh_per_second=4, transient=True, get_renderable=self.live_line)
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
        return self.status.render(s, e, self.val_loss, self.console.width - 1)

    def on_step(self, s: events.Step) -> None:
        self.last = (s, time.monotonic())

    def on_epoch_end(self, e: events.EpochEnd) -> None:
        super().on_epoch_end(e)
        if self.display is not None:
            self.display.refresh()  # the line under the summary shows this validation, not the one before
        self.console.print(say.epoch_summary(e) + (" [green]★ best[/green]" if e.best else ""))
        self.show_sample(say.epoch_sample_title(e), e.sample)

    def on_sampled(self, s: events.Sampled) -> None:
        self.show_sample(say.sampled_title(s), s.text)

    def show_sample(self, title: str, text: str) -> None:
        if text:
            self.console.print(Panel(Text(text), title=title, title_align="left", box=box.ROUNDED))


def train_view(
    console: Console, quiet: bool = False, log_every: int = 0, plan_notes: tuple[str, ...] = ()
) -> TrainView:
    """The display for `console`: quiet, live on a terminal, plain lines otherwise."""
    if quiet:
        return QuietView(console, plan_notes)
    if console.is_terminal:
        return LiveView(console, plan_notes)
    return PlainView(console, log_every, plan_notes)


def stopping_message(console: Console) -> None:
    warn(console, "stopping after this step and saving (Ctrl-C again to abort at once)…")
