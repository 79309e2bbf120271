"""Rendering with Rich: training progress, sample panels, summaries, checkpoint tables.

Everything goes to stderr, so stdout stays clean for generated text. On a terminal training shows a
live progress bar; otherwise (CI, `| tee`, a log file) it prints plain lines, no control codes.
This is the only module that imports rich.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from charlstm import events as tr

LN2 = math.log(2)


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


def fmt_loss(loss: float | None) -> str:
    return "–" if loss is None else f"{loss:.4f}"


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


class TrainView:
    """Turns training events into a display. `quiet` shows only the final summary."""

    def __init__(self, console: Console, quiet: bool = False, log_every: int = 0) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.log_every = log_every
        self.progress: Progress | None = None
        self.task: Any = None
        self.started: tr.Started | None = None
        self.val_loss: float | None = None
        self.last_step: tr.Step | None = None

    # event dispatch ---------------------------------------------------------------------------
    def __call__(self, event: tr.Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__.lower()}", None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    # handlers ---------------------------------------------------------------------------------
    def _on_started(self, e: tr.Started) -> None:
        self.started = e
        if self.log_every <= 0:
            self.log_every = max(1, e.steps_per_epoch // 10)
        if self.quiet:
            return
        c, t = e.config, e.train
        rows = [
            ("corpus", f"{e.corpus}: {e.corpus_chars:,} chars ({e.train_chars:,} train, {e.val_chars:,} val), vocabulary {e.vocab_size}"),
            ("model", f"{c.num_layers}×{c.hidden_size} {c.cell.upper()}, {e.num_params:,} parameters"),
            (
                "training",
                f"batch {t.batch_size} × seq {t.seq_len}, {t.optimizer} lr {t.lr:g} ({t.schedule}), clip {t.clip:g}, "
                f"dropout {t.dropout:g}, {t.epochs} epochs of {e.steps_per_epoch} steps"
                + (f", at most {e.total_steps} steps" if t.max_steps else ""),
            ),
            ("checkpoints", f"{e.model_path} (best), {e.resume_path} (resume)"),
        ]
        if e.resumed:
            rows.append(("resumed", f"at step {e.start_step}"))
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
        for message in e.notes:
            warn(self.console, "note: " + message)
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("loss [cyan]{task.fields[loss]}"),
                TextColumn("val [magenta]{task.fields[val]}"),
                TextColumn("{task.fields[bpc]} bpc"),
                TextColumn("{task.fields[rate]} chars/s"),
                TextColumn("{task.fields[elapsed]} elapsed, ETA {task.fields[eta]}"),
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=e.steps_per_epoch, completed=e.start_step % e.steps_per_epoch,
                epoch=self._epoch_label(e.start_step), loss="–", val="–", bpc="–", rate="–",
                elapsed=fmt_duration(0), eta="?",
            )

    def _epoch_label(self, step: int) -> str:
        e = self.started
        assert e is not None
        epochs = max(1, math.ceil((e.total_steps or step + 1) / e.steps_per_epoch))
        return f"{min(step // e.steps_per_epoch + 1, epochs)}/{epochs}"

    def _on_step(self, s: tr.Step) -> None:
        self.last_step = s
        e = self.started
        if self.quiet or e is None:
            return
        if self.progress is not None:
            within = s.step % e.steps_per_epoch
            self.progress.update(
                self.task,
                completed=within if within else e.steps_per_epoch,
                epoch=self._epoch_label(s.step - 1),
                loss=f"{s.smoothed_loss:.3f}",
                val=fmt_loss(self.val_loss),
                bpc=f"{s.smoothed_loss / LN2:.3f}",
                rate=fmt_rate(s.chars_per_s),
                elapsed=fmt_duration(s.elapsed),
                eta=fmt_duration(s.eta),
            )
        elif s.step % self.log_every == 0 or s.step == e.total_steps:
            line = (
                f"step {s.step}/{e.total_steps}  epoch {s.epoch:.2f}  loss {s.smoothed_loss:.4f} "
                f"({s.smoothed_loss / LN2:.3f} bpc)  lr {s.lr:.2e}  {fmt_rate(s.chars_per_s)} chars/s  "
                f"elapsed {fmt_duration(s.elapsed)}  eta {fmt_duration(s.eta)}"
            )
            self.console.print(line, soft_wrap=True)

    def _on_epochend(self, ev: tr.EpochEnd) -> None:
        self.val_loss = ev.val_loss
        if self.quiet:
            return
        best = " [green]★ best[/green]" if ev.best and self.live else (" (best)" if ev.best else "")
        summary = f"epoch {ev.epoch:g}  train {ev.train_loss:.4f}  val {ev.val_loss:.4f} ({ev.val_bpc:.3f} bits/char){best}"
        if self.live:
            self.console.print(summary)
            if ev.sample:
                self.console.print(Panel(Text(ev.sample), title=f"sample after epoch {ev.epoch:g}", title_align="left", box=box.ROUNDED))
            if self.progress is not None and self.started is not None and ev.step < self.started.total_steps:
                self.progress.update(self.task, val=fmt_loss(ev.val_loss), completed=0)
        else:
            self.console.print(summary, soft_wrap=True)
            if ev.sample:
                self.console.print(f"--- sample after epoch {ev.epoch:g} ---")
                self.console.print(ev.sample, markup=False, soft_wrap=True)
                self.console.print("---")

    def _on_sampled(self, s: tr.Sampled) -> None:
        if self.quiet:
            return
        if self.live:
            self.console.print(Panel(Text(s.text), title=f"sample at step {s.step}", title_align="left", box=box.ROUNDED))
        else:
            self.console.print(f"--- sample at step {s.step} ---")
            self.console.print(s.text, markup=False, soft_wrap=True)
            self.console.print("---")

    def _on_saved(self, s: tr.Saved) -> None:
        pass  # listed in the final summary

    def _on_diverged(self, d: tr.Diverged) -> None:
        warn(self.console, f"warning: step {d.step} diverged (loss {d.loss:.4g}, gradient norm {d.grad_norm:.4g}): {d.action}")

    def _on_finished(self, f: tr.Finished) -> None:
        self.close()
        e = self.started
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
            table.add_row("best val loss", f"{f.best_val_loss:.4f} nats/char, {f.best_val_loss / LN2:.3f} bits/char")
            table.add_row("best at epoch", f"{f.best_epoch:g}" if f.best_epoch is not None else "–")
        table.add_row("steps", f"{f.step:,}" + (f" ({f.epoch:.2f} epochs)" if e else ""))
        table.add_row("time", fmt_duration(f.elapsed))
        table.add_row("throughput", f"{fmt_rate(f.chars_per_s)} chars/s (validation and samples included)")
        for path in f.files:
            table.add_row("wrote", str(path))
        self.console.print(table)


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
        head.add_row("trained", f"{train.get('step', 0):,} steps, {train.get('epochs', 0):g} epochs in {fmt_duration(elapsed)}, {fmt_rate(rate)} chars/s")
        if info.get("resumable"):
            head.add_row("resumable", f"yes (run {train.get('status', '?')}): charlstm train --resume {info['path']}")
        if train.get("best_val_loss") is not None:
            head.add_row("best val", f"{train['best_val_loss']:.4f} nats/char, {train['best_val_loss'] / LN2:.3f} bits/char (epoch {train.get('best_epoch', 0):g})")
        if train.get("corpus"):
            corpus = train["corpus"]
            head.add_row("corpus", f"{corpus.get('name')}: {corpus.get('chars', 0):,} chars")
        if train.get("config"):
            tc = train["config"]
            head.add_row("settings", ", ".join(f"{k}={v}" for k, v in tc.items() if v is not None))
    console.print(Panel(head, title="checkpoint", title_align="left", box=box.ROUNDED))

    params = Table(title="parameters", box=box.SIMPLE_HEAD, title_justify="left")
    params.add_column("tensor")
    params.add_column("shape")
    params.add_column("count", justify="right")
    for name, entry in info["tensors"].items():
        params.add_row(name, "×".join(map(str, entry["shape"])), f"{entry['count']:,}")
    params.add_row(Text("total", style="bold"), "", Text(f"{info['num_params']:,}", style="bold"))
    console.print(params)

    vocab = info["vocab"]
    console.print(Text(f"vocabulary ({len(vocab)} characters)", style="bold"))
    console.print(Text(" ".join(escape_char(ch) for ch in vocab)))

    history = info.get("history") or []
    if history:
        console.print(Panel(history_chart(history), title=f"loss per epoch ({len(history)} evaluations, nats/char)", title_align="left", box=box.ROUNDED))
        hist = Table(title="history", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("epoch", "step", "train loss", "val loss", "val bits/char", "chars/s", "time", "best"):
            hist.add_column(col, justify="right")
        for h in history:
            hist.add_row(
                f"{h['epoch']:g}", f"{h['step']:,}", f"{h['train_loss']:.4f}", f"{h['val_loss']:.4f}",
                f"{h['val_bpc']:.3f}", fmt_rate(h.get("chars_per_s", 0.0)), fmt_duration(h.get("elapsed", 0.0)),
                "★" if h.get("best") else "",
            )
        console.print(hist)
        if show_samples:
            for h in history:
                if h.get("sample"):
                    console.print(Panel(Text(h["sample"]), title=f"epoch {h['epoch']:g} · val {h['val_loss']:.3f}", title_align="left", box=box.ROUNDED))


def stopping_message(console: Console) -> None:
    warn(console, "stopping after this step and saving (Ctrl-C again to abort at once)…")



def eval_table(report: dict[str, Any], console: Console) -> None:
    """Render the result of `charlstm eval`."""
    table = Table(title=f"{report['file']} under {report['checkpoint']}", box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("loss", f"{report['loss']:.4f} nats/char")
    table.add_row("bits per char", f"{report['bits_per_char']:.4f}")
    table.add_row("perplexity", f"{report['perplexity']:.3f}")
    table.add_row("characters scored", f"{report['chars_evaluated']:,} of {report['chars']:,}")
    if report["chars_outside_vocab"]:
        shown = " ".join(escape_char(ch) for ch in report["unknown_chars"][:20])
        table.add_row("outside vocabulary", f"{report['chars_outside_vocab']:,} left out ({shown})")
    console.print(table)


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
    chart.add_row("val", Text(sparkline(val, lo, hi), style="magenta"), f"{val[0]:.3f} → {val[-1]:.3f}  (best {best['val_loss']:.3f} at epoch {best['epoch']:g})")
    return chart
