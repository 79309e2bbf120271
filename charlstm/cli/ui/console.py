"""What every display shares: the consoles (stderr for progress and diagnostics, stdout for a
command's own report), one-line messages (error, warning, note), and how numbers, durations,
losses and characters are written.

The ui modules are the only ones that import rich: this one, progress (the training display),
tables (the tables of inspect, runs and eval), shading (the views coloured over the text:
neurons, eval --show) and charts (gates, gradients, gradcheck). A character is shown as
`charlstm.text.visible` writes it, as in the report. Library modules never print;
the command line (charlstm/cli/) renders what they return through these.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from charlstm.units import nats_to_bits

if TYPE_CHECKING:
    from charlstm.config import ModelConfig


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


def model_name(config: ModelConfig) -> str:
    """A model in words: '2×256 LSTM'."""
    return f"{config.num_layers}×{config.hidden_size} {config.cell.upper()}"


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_rate(chars_per_s: float) -> str:
    return f"{chars_per_s / 1000:.1f}k" if chars_per_s >= 1000 else f"{chars_per_s:.0f}"


def fmt_epoch(epoch: float) -> str:
    """An epoch count as people read it: 3 when whole, else two decimals (2.73)."""
    return str(round(epoch)) if abs(epoch - round(epoch)) < 5e-3 else f"{epoch:.2f}"


def fmt_losses(loss: float, label: str, unit: str = "bits/char") -> str:
    """A loss in nats beside its bits per character, at the same precision: 'val loss 1.234 (1.780 bits/char)'."""
    return f"{label} {loss:.3f} ({nats_to_bits(loss):.3f} {unit})"


def print_plain(console: Console, renderable: Any) -> None:
    """Print a table or panel; when the stream is not a terminal, without the trailing spaces
    Rich pads lines with."""
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
