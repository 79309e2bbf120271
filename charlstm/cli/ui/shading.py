"""The views drawn over the text (`neurons`, `eval --show`), and the console every view draws on.

On a terminal: each character on a background coloured by a value (a palette that keeps its order
on a 16-colour terminal too). Otherwise (a pipe, a file) the same information as plain aligned
rows of numbers, with no escape codes. The `*_record` functions give the JSON-compatible
dictionaries of `--json`. `charlstm.insight.views` computes (with `charlstm.insight.probe`); this
module, and `charts` for gates, gradients and gradcheck, only draw.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.color import Color
from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from charlstm.text.visible import visible

if TYPE_CHECKING:
    from charlstm.insight.probe import Surprisal, UnitScore

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLUE: RGB = (33, 102, 172)
RED: RGB = (178, 24, 43)
SHOWN = {"\n": "↵", "\t": "⇥", "\r": "␍"}  # what a coloured invisible character looks like


class ReportConsole(Console):
    """A console whose closed pipe (`| head`) is the caller's to handle: Rich's own handler
    exits with status 1, but a reader that has seen enough is no failure."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


SIXTEEN_COLOURS = ("linux", "vt100", "vt102", "vt220", "ansi", "cons25", "dumb")  # TERMs that mean it


def make_console() -> Console:
    """The report console, on stdout; Rich turns colour off when stdout is not a terminal. A
    terminal that Rich takes for 16 colours because nothing says more (TERM=xterm, no
    COLORTERM: most emulators, over ssh, in containers) draws the 256-colour palette: the
    16-colour fallback, a ramp of four greys, shows as two colours in most themes. Only a
    terminal that says it has 16 (TERM=linux, *-16color, …) keeps the greys."""
    console = ReportConsole(highlight=False)
    term = os.environ.get("TERM", "")
    if console.color_system == "standard" and term not in SIXTEEN_COLOURS and not term.endswith("16color"):
        console = ReportConsole(highlight=False, color_system="256")
    return console


# ------------------------------------------------------------------------------------- colours


def mix(a: RGB, b: RGB, t: float) -> RGB:
    t = min(1.0, max(0.0, t))
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def diverging(x: float) -> RGB:
    """x in [−1, 1]: blue (−1) through white (0) to red (+1)."""
    return mix(WHITE, BLUE, -x) if x < 0 else mix(WHITE, RED, x)


def sequential(x: float) -> RGB:
    """x in [0, 1]: white (0) to red (1)."""
    return mix(WHITE, RED, x)


def background(rgb: RGB) -> Style:
    """A background colour with black or white text, whichever reads better on it."""
    luminance = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255
    return Style(bgcolor=Color.from_rgb(*rgb), color="black" if luminance > 0.55 else "white")


GREYS = ("black", "bright_black", "white", "bright_white")  # a 16-colour terminal's ordered scale, dark to light


@dataclass(frozen=True)
class Palette:
    """Background colours for values x in lo..hi: `colour(x)` on a terminal of 256 colours or
    more. A 16-colour terminal has no ordered run of colours (Rich maps each RGB to the nearest
    of its 16, and blue–white–red comes out cyan, white, bright white, bright red, yellow, red):
    there the scale is a grey ramp, black (lo) to bright white (hi), lighter meaning higher."""

    colour: Callable[[float], RGB]
    lo: float
    hi: float
    greys: bool = False

    def style(self, x: float) -> Style:
        if not self.greys:
            return background(self.colour(x))
        i = min(len(GREYS) - 1, max(0, int((x - self.lo) / (self.hi - self.lo) * len(GREYS))))
        return Style(bgcolor=GREYS[i], color="white" if i < 2 else "black")


def palette(console: Console, colour: Callable[[float], RGB], lo: float, hi: float) -> Palette:
    """The palette `colour` over lo..hi as this console can show it in order (see Palette)."""
    return Palette(colour, lo, hi, console.color_system in ("standard", "windows"))


def coloured_text(text: str, shades: Sequence[float | None], pal: Palette) -> Text:
    """Each character on the colour of its shade (None: no colour); a newline shows as ↵ and
    then breaks."""
    out = Text()
    for ch, x in zip(text, shades):
        glyph = SHOWN.get(ch, ch)
        out.append(glyph, style=pal.style(x) if x is not None else "dim")
        if ch == "\n":
            out.append("\n")
    return out


def legend(lo: str, hi: str, pal: Palette, label: str) -> Text:
    """A colour bar over the palette's range, labelled at both ends."""
    out = Text(f"{label}  {lo} ")
    for j in range(24):
        out.append(" ", style=pal.style(pal.lo + (pal.hi - pal.lo) * j / 23))
    out.append(f" {hi}")
    return out


def value_scale(values: np.ndarray, sigmoid: bool) -> tuple[float, float]:
    """The range a unit's colours span: (0, 1) for a gate, centred 0.5; else ±max|v|, centred 0."""
    if sigmoid:
        return 0.0, 1.0
    m = float(np.abs(values).max()) or 1.0
    return -m, m


def unit_shades(values: np.ndarray, lo: float, hi: float) -> list[float]:
    """Values on the diverging scale, −1 at lo to +1 at hi."""
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    return [(float(v) - mid) / half for v in values]


def char_cell(ch: str) -> str:
    """A character as a table cell: visible, and 3 wide."""
    return f"{visible(ch):<3}"


# ------------------------------------------------------------------------------------- neurons


def neuron_view(console: Console, text: str, values: np.ndarray, title: str, sigmoid: bool) -> None:
    """One unit over the text: coloured backgrounds on a terminal, `t  char  value` rows otherwise."""
    lo, hi = value_scale(values, sigmoid)
    if console.is_terminal:
        console.print(Text(title, style="bold"))
        pal = palette(console, diverging, -1.0, 1.0)
        console.print(coloured_text(text, unit_shades(values, lo, hi), pal))
        console.print(legend(f"{lo:+.2f}", f"{hi:+.2f}", pal, "value"))
        console.print(Text(f"range of this unit here: {values.min():+.3f} .. {values.max():+.3f}", style="dim"))
        return
    console.print(f"# {title}; values {values.min():+.4f} .. {values.max():+.4f}", soft_wrap=True, markup=False)
    console.print(f"{'t':>5}  {'char':<4} value", markup=False, soft_wrap=True)
    for t, (ch, v) in enumerate(zip(text, values)):
        console.print(f"{t:>5}  {char_cell(ch):<4} {v:+.4f}", markup=False, soft_wrap=True)


def find_view(
    console: Console,
    text: str,
    name: str,
    f: np.ndarray,
    scores: list[UnitScore],
    values: list[np.ndarray],
    sigmoid: bool,
) -> None:
    """The units that track a feature best: a ranked table, then each unit over the text
    (terminal), or the table and `t  char  feature  unit1  unit2 …` rows (plain)."""
    console.print(
        Text(f"units that track '{name}' (|Pearson r| over {len(text):,} characters)", style="bold"), soft_wrap=True
    )
    table = Table()
    for col in ("rank", "layer", "unit", "quantity", "r"):
        table.add_column(col, justify="right")
    for rank, s in enumerate(scores, 1):
        table.add_row(str(rank), str(s.layer), str(s.unit), s.what, f"{s.r:+.3f}")
    console.print(table)
    if console.is_terminal:
        console.print(Text(f"feature '{name}'", style="bold"))
        fmax = float(np.abs(f).max()) or 1.0
        pal = palette(console, diverging, -1.0, 1.0)
        console.print(coloured_text(text, [float(v) / fmax for v in f], pal))
        for rank, (s, v) in enumerate(zip(scores, values), 1):
            lo, hi = value_scale(v, sigmoid)
            console.print(Text(f"\n#{rank}  layer {s.layer} unit {s.unit} ({s.what})  r = {s.r:+.3f}", style="bold"))
            console.print(coloured_text(text, unit_shades(v, lo, hi), pal))
        console.print(legend("low", "high", pal, "value"))
        return
    heads = [f"L{s.layer}u{s.unit}" for s in scores]
    console.print(
        f"{'t':>5}  {'char':<4} {'feature':>8} " + " ".join(f"{h:>8}" for h in heads), markup=False, soft_wrap=True
    )
    for t, ch in enumerate(text):
        cells = " ".join(f"{float(v[t]):>+8.4f}" for v in values)
        console.print(f"{t:>5}  {char_cell(ch):<4} {f[t]:>8g} {cells}", markup=False, soft_wrap=True)


def neuron_record(text: str, layer: int, unit: int, what: str, values: np.ndarray) -> dict[str, Any]:
    return {"text": text, "layer": layer, "unit": unit, "what": what, "values": [round(float(v), 6) for v in values]}


def find_record(
    text: str, name: str, f: np.ndarray, scores: list[UnitScore], values: list[np.ndarray]
) -> dict[str, Any]:
    units = [
        {"layer": s.layer, "unit": s.unit, "what": s.what, "r": s.r, "values": [round(float(x), 6) for x in v]}
        for s, v in zip(scores, values)
    ]
    return {"text": text, "feature": name, "feature_values": f.tolist(), "units": units}


# ------------------------------------------------------------------------------------ surprisal


def surprisal_view(console: Console, text: str, s: Surprisal, chars: Sequence[str], top: int) -> None:
    """Each predicted character coloured by its bits (white 0 → red at the top of the scale);
    with `top`, one row per character with the model's guesses. The first character is given,
    not predicted, and is shown dim."""
    scale = max(1.0, float(np.percentile(s.bits, 99)))
    if console.is_terminal and not top:
        pal = palette(console, sequential, 0.0, 1.0)
        shades: list[float | None] = [None] + [float(b) / scale for b in s.bits]
        console.print(coloured_text(text, shades, pal))
        console.print(legend("0", f"{scale:.1f}+ bits", pal, "surprisal"))
    else:
        _surprisal_rows(console, text, s, chars, top, scale)
    console.print(
        Text(
            f"mean {s.mean_bits:.4f} bits/char over {len(s.bits):,} predicted characters (one stream, from the zero state)",
            style="bold",
        ),
        soft_wrap=True,
    )


def _surprisal_rows(console: Console, text: str, s: Surprisal, chars: Sequence[str], top: int, scale: float) -> None:
    """`t  char  bits  guess1 p1  guess2 p2 …`, the char cell coloured on a terminal."""
    head = f"{'t':>5}  {'char':<4} {'bits':>6}" + "".join(f"  {'guess' + str(j + 1):<5} {'p':>5}" for j in range(top))
    console.print(head, markup=False, soft_wrap=True)
    pal = palette(console, sequential, 0.0, 1.0)
    for t in range(len(s.bits)):
        ch = text[t + 1]
        row = Text(f"{t + 1:>5}  ")
        row.append(f"{char_cell(ch):<4}", style=pal.style(float(s.bits[t]) / scale) if console.is_terminal else "")
        row.append(f" {s.bits[t]:>6.2f}")
        for g, p in zip(s.guesses[t], s.probs[t]):
            row.append(f"  {char_cell(chars[int(g)]):<5} {p:>5.3f}")
        console.print(row, soft_wrap=True)


def surprisal_record(text: str, s: Surprisal, chars: Sequence[str]) -> dict[str, Any]:
    return {
        "text": text,
        "mean_bits": s.mean_bits,
        "bits": [round(float(b), 6) for b in s.bits],
        "guesses": [
            [[chars[int(g)], round(float(p), 6)] for g, p in zip(gs, ps)] for gs, ps in zip(s.guesses, s.probs)
        ],
    }
