"""The tables of `inspect` (a checkpoint), `runs` (the runs in a folder) and `eval` (a score),
on stdout and plain when piped; and eval's progress on a long text, on stderr."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from charlstm.cli.ui.console import fmt_duration, fmt_epoch, fmt_rate, print_plain
from charlstm.text.visible import visible
from charlstm.units import nats_to_bits


def checkpoint_table(info: dict[str, Any], console: Console, show_samples: bool = False) -> None:
    """Render `inspect`'s dictionary: config, parameters, vocabulary, training state, history."""
    print_plain(console, Panel(_checkpoint_head(info), title="checkpoint", title_align="left", box=box.ROUNDED))
    print_plain(console, _parameters(info))
    vocab = info["vocab"]
    console.print(Text(f"vocabulary ({len(vocab)} characters)", style="bold"))
    console.print(Text(" ".join(visible(ch) for ch in vocab)))
    history = info.get("history") or []
    if history:
        title = f"loss per epoch ({len(history)} evaluations, nats/char)"
        print_plain(console, Panel(history_chart(history), title=title, title_align="left", box=box.ROUNDED))
        print_plain(console, _history(history))
    for h in history if show_samples else ():
        if h.get("sample"):
            title = f"epoch {fmt_epoch(h['epoch'])} · val loss {h['val_loss']:.3f}"
            print_plain(console, Panel(Text(h["sample"]), title=title, title_align="left", box=box.ROUNDED))


def _checkpoint_head(info: dict[str, Any]) -> Table:
    """What the file is: its format, the model, and how it was trained."""
    cfg = info["config"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("file", info["path"])
    head.add_row("format", f"{info['format']} v{info['format_version']}")
    head.add_row(
        "model", f"{cfg['num_layers']}×{cfg['hidden_size']} {cfg['cell'].upper()}, vocabulary {cfg['vocab_size']}"
    )
    train = info.get("train") or {}
    if not train:
        return head
    if train.get("sizing"):  # the model the plan chose for the time budget, and why
        head.add_row("chosen", str(train["sizing"].get("reason", "")))
    elapsed = train.get("elapsed", 0.0)
    rate = train.get("chars", 0) / elapsed if elapsed else 0.0
    steps, epochs = f"{train.get('step', 0):,}", fmt_epoch(train.get("epochs", 0))
    head.add_row("trained", f"{steps} steps, {epochs} epochs in {fmt_duration(elapsed)}, {fmt_rate(rate)} chars/s")
    if info.get("resumable"):
        head.add_row("resumable", f"yes (run {train.get('status', '?')}): charlstm train --resume {info['path']}")
    if train.get("best_val_loss") is not None:
        best, epoch = train["best_val_loss"], fmt_epoch(train.get("best_epoch", 0))
        head.add_row("best val", f"{best:.3f} nats/char, {nats_to_bits(best):.3f} bits/char (epoch {epoch})")
    if train.get("corpus"):
        corpus = train["corpus"]
        head.add_row("corpus", f"{corpus.get('name')}: {corpus.get('chars', 0):,} chars")
    if train.get("config"):
        head.add_row("settings", ", ".join(f"{k}={v}" for k, v in train["config"].items() if v is not None))
    return head


def _parameters(info: dict[str, Any]) -> Table:
    """Every tensor's name, shape and size, and their total."""
    params = Table(title="parameters", box=box.SIMPLE_HEAD, title_justify="left")
    params.add_column("tensor")
    params.add_column("shape")
    params.add_column("count", justify="right")
    for name, entry in info["tensors"].items():
        params.add_row(name, "×".join(map(str, entry["shape"])), f"{entry['count']:,}")
    params.add_row(Text("total", style="bold"), "", Text(f"{info['num_params']:,}", style="bold"))
    return params


def _history(history: list[dict[str, Any]]) -> Table:
    """One row per evaluation: losses, speed, time, and a star where the model was best so far."""
    hist = Table(title="history", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("epoch", "step", "train loss", "val loss", "val bits/char", "chars/s", "time", "best"):
        hist.add_column(col, justify="right")
    for h in history:
        hist.add_row(
            fmt_epoch(h["epoch"]), f"{h['step']:,}", f"{h['train_loss']:.3f}", f"{h['val_loss']:.3f}",
            f"{h['val_bpc']:.3f}", fmt_rate(h.get("chars_per_s", 0.0)), fmt_duration(h.get("elapsed", 0.0)),
            "★" if h.get("best") else "",
        )  # fmt: skip
    return hist


class ScoringProgress:
    """`charlstm eval`'s progress on a long text (MIN_CHARS or more), on stderr: a bar on a
    terminal, one line otherwise. Called with (characters scored, characters to score); the
    first call, (0, characters), says how long the text is."""

    MIN_CHARS = 100_000

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.started = False

    def __call__(self, done: int, total: int) -> None:
        if not self.started:
            self._start(total)
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total)

    def _start(self, chars: int) -> None:
        self.started = True
        if chars < self.MIN_CHARS:
            return
        if not self.console.is_terminal:
            self.console.print(f"scoring {chars:,} characters…", soft_wrap=True)
            return
        self.progress = Progress(
            TextColumn("scoring"),
            BarColumn(bar_width=30),
            TextColumn("{task.percentage:>3.0f}%"),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("scoring", total=chars)
        self.progress.start()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


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
    left = report["chars_not_scored"]
    if left:
        table.add_row("not scored", f"{left:,} (see below)")
    if report["chars_outside_vocab"]:
        from charlstm.text.vocab import describe_chars

        table.add_row(
            "outside vocabulary",
            f"{report['chars_outside_vocab']:,} left out ({describe_chars(report['unknown_chars'])})",
        )
    if "adapt" in report:
        _adaptive_rows(table, report)
    print_plain(console, table)
    if left:
        rest = (
            f" and the last {left - 1:,}, left over when the text is cut into {report['streams']:,} equal streams "
            f"(--batch-size)"
            if left > 1
            else ""
        )
        console.print(f"not scored: the first character (nothing comes before it){rest}", soft_wrap=True)


def _adaptive_rows(table: Table, report: dict[str, Any]) -> None:
    """eval --adapt: the time of the static score, then dynamic evaluation's score beside it."""
    adapt = report["adapt"]
    table.add_row("time", _seconds(report["seconds"]))
    table.add_section()
    table.add_row("adaptive loss", f"{adapt['loss']:.4f} nats/char")
    table.add_row("adaptive bits per char", f"{adapt['bits_per_char']:.4f}")
    table.add_row("change", f"{adapt['loss'] - report['loss']:+.4f} nats/char")
    table.add_row("characters scored", f"{adapt['chars_evaluated']:,}, one stream")
    table.add_row("adaptation", f"lr {adapt['lr']:g}, decay {adapt['decay']:g}, windows of {adapt['window']}")
    table.add_row("time", _seconds(adapt["seconds"]))


def _seconds(seconds: float) -> str:
    """A time to a tenth of a second, or as m:ss from a minute on."""
    return f"{seconds:.1f} s" if seconds < 60 else fmt_duration(seconds)


RUN_COLUMNS = ("run", "corpus", "model", "engine", "steps", "epochs", "best val loss", "bits/char", "date", "size")
RUN_COLUMNS_DROPPED = ("size", "epochs", "best val loss", "engine", "corpus", "date", "steps")  # in this order, to fit
"""`charlstm runs` never cuts the run's name, its model (layers × units, the cell and its parameters:
"2×256 LSTM · 800k", as runs of three cells of one size differ by their parameters) or its best
bits/char: narrower than the whole table, it leaves out the other columns, least useful first."""


def runs_table(runs: list[dict[str, Any]], folder: str, console: Console) -> None:
    """Render `charlstm runs`: one row per run, newest first, as many columns as fit."""
    if not runs:
        console.print(f"no runs in {folder}/; train one with `charlstm train FILE`", soft_wrap=True)
        return
    rows = []
    for r in runs:
        best = r.get("best_val_loss")
        rows.append(
            dict(
                zip(
                    RUN_COLUMNS,
                    (
                        r["name"],
                        r.get("corpus") or "?",
                        r["model"] + (f" · {fmt_count(r['parameters'])}" if r.get("parameters") else ""),
                        str(r.get("engine") or "?"),
                        f"{r.get('step', 0):,}",
                        fmt_epoch(r.get("epochs", 0)),
                        f"{best:.3f}" if best is not None else "–",
                        f"{nats_to_bits(best):.3f}" if best is not None else "–",
                        r["date"][:16].replace("T", " "),
                        fmt_size(r["bytes"]),
                    ),
                )
            )
        )
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
        left = name in ("run", "corpus", "model", "engine", "date")
        table.add_column(name, justify="left" if left else "right", no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*(row[name] for name in columns))
    return table


def fmt_count(n: int) -> str:
    """A parameter count as people say it: 950, 12.3k, 800k, 1.2M."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1e3:.1f}k" if n < 10_000 else f"{n / 1e3:.0f}k"
    return f"{n / 1e6:.1f}M" if n < 10**7 else f"{n / 1e6:.0f}M"


def fmt_size(n: int) -> str:
    """A byte count in words: 950 B, 12.3 KB, 1.2 GB."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
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
    chart.add_row(
        "val",
        Text(sparkline(val, lo, hi), style="magenta"),
        f"{val[0]:.3f} → {val[-1]:.3f}  (best {best['val_loss']:.3f} at epoch {fmt_epoch(best['epoch'])})",
    )
    return chart
