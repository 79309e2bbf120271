"""Rendering with Rich: training progress, sample panels, summaries, checkpoint tables.

Everything goes to stderr, so stdout stays clean for generated text. On a terminal training shows a
live progress bar; otherwise (CI, `| tee`, a log file) it prints plain lines, no control codes.
This is the only module that imports rich.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.live import Live
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from charlstm.units import nats_to_bits
from charlstm.config import TrainConfig, default_of

if TYPE_CHECKING:
    from charlstm import events as tr



def make_console(stdout: bool = False) -> Console:
    """A console on stderr (or stdout, for a command's own report). Rich turns colour and live
    display off by itself when the stream is not a terminal."""
    return Console(stderr=not stdout, highlight=False)


def error(console: Console, message: str) -> None:
    """One red line: what went wrong and what to do."""
    console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def warn(console: Console, message: str) -> None:
    """One yellow line, never wrapped."""
    console.print(Text(message, style="yellow"), soft_wrap=True)


def note(console: Console, message: str) -> None:
    console.print(Text(message, style="dim"), soft_wrap=True)


def escape_char(ch: str) -> str:
    """A character as it can be seen in a table: '\\n' for newline, '␠' for space, U+XXXX for
    other invisible characters."""
    special = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␠"}
    if ch in special:
        return special[ch]
    if not ch.isprintable():
        return f"U+{ord(ch):04X}"
    return ch


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_rate(chars_per_s: float) -> str:
    return f"{chars_per_s / 1000:.1f}k" if chars_per_s >= 1000 else f"{chars_per_s:.0f}"


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
                        TextColumn("{task.description}"), BarColumn(bar_width=30),
                        TextColumn("{task.fields[mb]}"), console=self.console, transient=True,
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


def fmt_epoch(epoch: float) -> str:
    """An epoch count as people read it: 3 when whole, else two decimals (2.73)."""
    return str(int(round(epoch))) if abs(epoch - round(epoch)) < 5e-3 else f"{epoch:.2f}"


def fmt_losses(loss: float, label: str, unit: str = "bits/char") -> str:
    """A loss in nats beside its bits per character, at the same precision: 'val loss 1.234 (1.780 bits/char)'."""
    return f"{label} {loss:.3f} ({nats_to_bits(loss):.3f} {unit})"


def describe_end(e: tr.Started) -> str:
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
    if t.optimizer == "adam" and betas != (default_of(TrainConfig, "adam_beta1"), default_of(TrainConfig, "adam_beta2")):
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


def print_plain(console: Console, renderable: Any) -> None:
    """Print a table or panel; when the stream is not a terminal, without the trailing spaces
    Rich pads lines with."""
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


class StatusLine:
    """The live line under the training panels, fitted to the terminal's width: fields are
    abbreviated, then dropped, least useful first; the step counter always stays."""

    # (field, variant) reductions in order: a variant index of None drops the field; "gap" is
    # the number of spaces between fields
    REDUCTIONS = (
        ("rate", 1), ("time", 1), ("train", 1), ("val", 1), ("epoch", 1), ("gap", 1), ("rate", None),
        ("lr", 1), ("epoch", None), ("bar", None), ("lr", None), ("time", None), ("val", None), ("train", None),
    )
    ORDER = ("epoch", "bar", "step", "train", "val", "lr", "rate", "time")  # left to right
    BAR_MIN, BAR_MAX = 8, 30  # cells

    def __init__(self) -> None:
        self.val_loss: float | None = None

    def fields(self, s: tr.Step, e: tr.Started) -> dict[str, tuple[tuple[str, str], ...]]:
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
            "time": ((f"{fmt_duration(s.elapsed)} elapsed, ETA {fmt_duration(s.eta)}", ""), (f"ETA {fmt_duration(s.eta)}", "")),
        }

    def render(self, s: tr.Step, e: tr.Started, width: int) -> Text:
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

    def __init__(self, console: Console, quiet: bool = False, log_every: int = 0, plan_notes: tuple[str, ...] = ()) -> None:
        self.console = console
        self.quiet = quiet
        self.plan_notes = plan_notes
        self.live = console.is_terminal and not quiet
        self.log_every = log_every
        self.status = StatusLine()
        self.display: Live | None = None
        self.started: tr.Started | None = None
        self.last: tuple[tr.Step, float] | None = None  # the last step shown, and when (time.monotonic)
        self.threads: tr.ThreadsChanged | None = None  # the first choice of threads, for the banner

    # event dispatch ---------------------------------------------------------------------------
    def __call__(self, event: tr.Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__.lower()}", None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        if self.display is not None:
            self.display.stop()
            self.display = None

    # handlers ---------------------------------------------------------------------------------
    def _on_started(self, e: tr.Started) -> None:
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
            ("corpus", f"{e.corpus}: {e.corpus_chars:,} chars ({e.train_chars:,} train, {e.val_chars:,} val), vocabulary {e.vocab_size}"),
            ("model", f"{c.num_layers}×{c.hidden_size} {c.cell.upper()}, {e.num_params:,} parameters"),
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
            rows.append(("resumed", f"at step {e.start_step:,} (epoch {fmt_epoch(e.start_step / e.steps_per_epoch)}{val})"))
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
        return self.status.render(s, e, self.console.width - 1)

    def _on_step(self, s: tr.Step) -> None:
        e = self.started
        if self.quiet or e is None:
            return
        if self.display is not None:
            self.last = (s, time.monotonic())
        elif s.step % self.log_every == 0 or (s.step == s.end_step and not s.by_time):  # and the last step
            self.console.print(self.plain_step_line(s), soft_wrap=True, markup=False)

    def plain_step_line(self, s: tr.Step) -> str:
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

    def _on_epochend(self, ev: tr.EpochEnd) -> None:
        self.status.val_loss = ev.val_loss
        if self.quiet:
            return
        if self.display is not None:
            self.display.refresh()  # the line under the summary shows this validation, not the one before
        best = " [green]★ best[/green]" if ev.best and self.live else ("  (best)" if ev.best else "")
        summary = f"epoch {fmt_epoch(ev.epoch)}  {fmt_losses(ev.train_loss, 'train loss')}  {fmt_losses(ev.val_loss, 'val loss')}"
        self._print_sample(f"sample after epoch {fmt_epoch(ev.epoch)}", ev.sample, summary + best)

    def _on_sampled(self, s: tr.Sampled) -> None:
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

    def _on_saved(self, s: tr.Saved) -> None:
        pass  # listed in the final summary

    def _on_diverged(self, d: tr.Diverged) -> None:
        warn(self.console, f"warning: step {d.step} diverged (loss {d.loss:.4g}, gradient norm {d.grad_norm:.4g}): {d.action}")

    def _on_threadschanged(self, t: tr.ThreadsChanged) -> None:
        """The first choice goes into the banner (it comes before it); a change is a dim line."""
        if self.started is None:
            self.threads = t
        elif not self.quiet:
            note(self.console, f"threads {t.old} → {t.new}: {t.why}")

    def _on_finished(self, f: tr.Finished) -> None:
        self.close()
        reasons = {
            "completed": "completed",
            "max_steps": "reached --max-steps",
            "time_budget": "reached --max-minutes",
            "interrupted": "interrupted",
        }
        table = Table(title="training " + reasons.get(f.reason, f.reason), box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        if f.best_val_loss is not None:
            table.add_row("best val loss", f"{f.best_val_loss:.3f} nats/char, {nats_to_bits(f.best_val_loss):.3f} bits/char")
            table.add_row("best at epoch", fmt_epoch(f.best_epoch) if f.best_epoch is not None else "–")
        table.add_row("steps", f"{f.step:,} ({fmt_epoch(f.epoch)} epochs)")
        table.add_row("time", fmt_duration(f.elapsed))
        table.add_row("throughput", f"{fmt_rate(f.chars_per_s)} chars/s (validation and samples included)")
        for path in f.files:
            table.add_row("wrote", str(path))
        if self.started is not None:
            table.add_row("report", f"charlstm report {self.started.model_path}")
        print_plain(self.console, table)


def checkpoint_table(info: dict[str, Any], console: Console, show_samples: bool = False) -> None:
    """Render `inspect`'s dictionary: config, parameters, vocabulary, training state, history."""
    cfg = info["config"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("file", info["path"])
    head.add_row("format", f"{info['format']} v{info['format_version']}")
    head.add_row("model", f"{cfg['num_layers']}×{cfg['hidden_size']} {cfg['cell'].upper()}, vocabulary {cfg['vocab_size']}")
    train = info.get("train") or {}
    if train:
        elapsed = train.get("elapsed", 0.0)
        rate = train.get("chars", 0) / elapsed if elapsed else 0.0
        head.add_row("trained", f"{train.get('step', 0):,} steps, {fmt_epoch(train.get('epochs', 0))} epochs in {fmt_duration(elapsed)}, {fmt_rate(rate)} chars/s")
        if info.get("resumable"):
            head.add_row("resumable", f"yes (run {train.get('status', '?')}): charlstm train --resume {info['path']}")
        if train.get("best_val_loss") is not None:
            head.add_row("best val", f"{train['best_val_loss']:.3f} nats/char, {nats_to_bits(train['best_val_loss']):.3f} bits/char (epoch {fmt_epoch(train.get('best_epoch', 0))})")
        if train.get("corpus"):
            corpus = train["corpus"]
            head.add_row("corpus", f"{corpus.get('name')}: {corpus.get('chars', 0):,} chars")
        if train.get("config"):
            tc = train["config"]
            head.add_row("settings", ", ".join(f"{k}={v}" for k, v in tc.items() if v is not None))
    print_plain(console, Panel(head, title="checkpoint", title_align="left", box=box.ROUNDED))

    params = Table(title="parameters", box=box.SIMPLE_HEAD, title_justify="left")
    params.add_column("tensor")
    params.add_column("shape")
    params.add_column("count", justify="right")
    for name, entry in info["tensors"].items():
        params.add_row(name, "×".join(map(str, entry["shape"])), f"{entry['count']:,}")
    params.add_row(Text("total", style="bold"), "", Text(f"{info['num_params']:,}", style="bold"))
    print_plain(console, params)

    vocab = info["vocab"]
    console.print(Text(f"vocabulary ({len(vocab)} characters)", style="bold"))
    console.print(Text(" ".join(escape_char(ch) for ch in vocab)))

    history = info.get("history") or []
    if history:
        print_plain(console, Panel(history_chart(history), title=f"loss per epoch ({len(history)} evaluations, nats/char)", title_align="left", box=box.ROUNDED))
        hist = Table(title="history", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("epoch", "step", "train loss", "val loss", "val bits/char", "chars/s", "time", "best"):
            hist.add_column(col, justify="right")
        for h in history:
            hist.add_row(
                fmt_epoch(h["epoch"]), f"{h['step']:,}", f"{h['train_loss']:.3f}", f"{h['val_loss']:.3f}",
                f"{h['val_bpc']:.3f}", fmt_rate(h.get("chars_per_s", 0.0)), fmt_duration(h.get("elapsed", 0.0)),
                "★" if h.get("best") else "",
            )
        print_plain(console, hist)
        if show_samples:
            for h in history:
                if h.get("sample"):
                    print_plain(console, Panel(Text(h["sample"]), title=f"epoch {fmt_epoch(h['epoch'])} · val loss {h['val_loss']:.3f}", title_align="left", box=box.ROUNDED))


def stopping_message(console: Console) -> None:
    warn(console, "stopping after this step and saving (Ctrl-C again to abort at once)…")



class ScoringProgress:
    """`charlstm eval`'s progress on a long text (MIN_CHARS or more), on stderr: a bar on a
    terminal, one line otherwise. Called with (characters scored, characters to score)."""

    MIN_CHARS = 100_000

    def __init__(self, console: Console, chars: int) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        if chars < self.MIN_CHARS:
            return
        if not console.is_terminal:
            console.print(f"scoring {chars:,} characters…", soft_wrap=True)
            return
        self.progress = Progress(TextColumn("scoring"), BarColumn(bar_width=30), TextColumn("{task.percentage:>3.0f}%"), console=console, transient=True)
        self.task = self.progress.add_task("scoring", total=chars)
        self.progress.start()

    def __call__(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total)

    def __enter__(self) -> ScoringProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def eval_table(report: dict[str, Any], console: Console) -> None:
    """Render the result of `charlstm eval`: the text and the model named in the title."""
    title = f"{report['file']}, scored by the {report['model']} in {report['checkpoint']}"
    console.print(Text(title, style="bold"), soft_wrap=True)  # one line, however long the paths
    table = Table(box=box.SIMPLE_HEAD, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("loss", f"{report['loss']:.4f} nats/char")
    table.add_row("bits per char", f"{report['bits_per_char']:.4f}")
    table.add_row("perplexity", f"{report['perplexity']:.3f}")
    table.add_row("characters scored", f"{report['chars_evaluated']:,} of {report['chars']:,}")
    if report["chars_outside_vocab"]:
        from charlstm.vocab import describe_chars

        table.add_row("outside vocabulary", f"{report['chars_outside_vocab']:,} left out ({describe_chars(report['unknown_chars'])})")
    print_plain(console, table)


RUN_COLUMNS = ("run", "corpus", "model", "steps", "epochs", "best val loss", "bits/char", "date", "size")
RUN_COLUMNS_DROPPED = ("size", "epochs", "best val loss", "corpus", "date", "steps")  # in this order, to fit
"""`charlstm runs` never cuts the run's name, its model (the cell) or its best bits/char: narrower than
the whole table, it leaves out the other columns, least useful first."""


def runs_table(runs: list[dict[str, Any]], folder: str, console: Console) -> None:
    """Render `charlstm runs`: one row per run, newest first, as many columns as fit."""
    if not runs:
        console.print(f"no runs in {folder}/; train one with `charlstm train FILE`", soft_wrap=True)
        return
    rows = []
    for r in runs:
        best = r.get("best_val_loss")
        rows.append(dict(zip(RUN_COLUMNS, (
            r["name"], r.get("corpus") or "?", r["model"], f"{r.get('step', 0):,}", fmt_epoch(r.get("epochs", 0)),
            f"{best:.3f}" if best is not None else "–", f"{nats_to_bits(best):.3f}" if best is not None else "–",
            r["date"][:16].replace("T", " "), fmt_size(r["bytes"]),
        ))))
    columns = list(RUN_COLUMNS)
    table = _runs_grid(rows, columns, folder)
    unlimited = console.options.update_width(1 << 16)  # the width the table wants, not the one it gets
    for dropped in RUN_COLUMNS_DROPPED:
        if Measurement.get(console, unlimited, table).maximum <= console.width:
            break
        columns.remove(dropped)
        table = _runs_grid(rows, columns, folder)
    print_plain(console, table)


def _runs_grid(rows: list[dict[str, str]], columns: list[str], folder: str) -> Table:
    table = Table(title=f"runs in {folder}/, newest first", box=box.SIMPLE_HEAD, title_justify="left")
    for name in columns:
        left = name in ("run", "corpus", "model", "date")
        table.add_column(name, justify="left" if left else "right", no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*(row[name] for name in columns))
    return table


def fmt_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], lo: float, hi: float) -> str:
    """Values as block characters on a shared scale lo..hi (higher value, taller block)."""
    span = hi - lo or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - lo) / span * (len(SPARKS) - 1) + 0.5))] for v in values)


def history_chart(history: list[dict[str, Any]]) -> Table:
    """Train and validation loss per epoch as two sparklines on one scale, first → last."""
    train = [h["train_loss"] for h in history]
    val = [h["val_loss"] for h in history]
    lo, hi = min(train + val), max(train + val)
    best = min(history, key=lambda h: h["val_loss"])
    chart = Table.grid(padding=(0, 2))
    chart.add_column(style="bold")
    chart.add_column()
    chart.add_column()
    chart.add_row("train", Text(sparkline(train, lo, hi), style="cyan"), f"{train[0]:.3f} → {train[-1]:.3f}")
    chart.add_row("val", Text(sparkline(val, lo, hi), style="magenta"), f"{val[0]:.3f} → {val[-1]:.3f}  (best {best['val_loss']:.3f} at epoch {fmt_epoch(best['epoch'])})")
    return chart
