"""Rendering of the views (`neurons`, `eval --show`, `gates`, `gradients`, `gradcheck`) with Rich.

On a terminal: characters on coloured backgrounds, bars and charts in colour. Otherwise (a pipe,
a file) the same information as plain aligned rows of numbers, with no escape codes. The `*_record`
functions give the JSON-compatible dictionaries of `--json`. The library (`charlstm.probe`)
computes; this module only draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.color import Color
from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from charlstm.probe.gradflow import decay
from charlstm.ui import escape_char

if TYPE_CHECKING:
    from charlstm.probe import GateSaturation, GradcheckResult, GradientFlow, Surprisal, UnitScore

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


def make_console() -> Console:
    """The report console, on stdout; Rich turns colour off when stdout is not a terminal."""
    return ReportConsole(highlight=False)


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
    return f"{escape_char(ch):<3}"


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
    console: Console, text: str, name: str, f: np.ndarray, scores: list[UnitScore], values: list[np.ndarray], sigmoid: bool
) -> None:
    """The units that track a feature best: a ranked table, then each unit over the text
    (terminal), or the table and `t  char  feature  unit1  unit2 …` rows (plain)."""
    console.print(Text(f"units that track '{name}' (|Pearson r| over {len(text):,} characters)", style="bold"), soft_wrap=True)
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
    console.print(f"{'t':>5}  {'char':<4} {'feature':>8} " + " ".join(f"{h:>8}" for h in heads), markup=False, soft_wrap=True)
    for t, ch in enumerate(text):
        cells = " ".join(f"{float(v[t]):>+8.4f}" for v in values)
        console.print(f"{t:>5}  {char_cell(ch):<4} {f[t]:>8g} {cells}", markup=False, soft_wrap=True)


def neuron_record(text: str, layer: int, unit: int, what: str, values: np.ndarray) -> dict[str, Any]:
    return {"text": text, "layer": layer, "unit": unit, "what": what, "values": [round(float(v), 6) for v in values]}


def find_record(text: str, name: str, f: np.ndarray, scores: list[UnitScore], values: list[np.ndarray]) -> dict[str, Any]:
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
        Text(f"mean {s.mean_bits:.4f} bits/char over {len(s.bits):,} predicted characters (one stream, from the zero state)", style="bold"),
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
        "guesses": [[[chars[int(g)], round(float(p), 6)] for g, p in zip(gs, ps)] for gs, ps in zip(s.guesses, s.probs)],
    }


# --------------------------------------------------------------------------------- saturation

SCATTER_W, SCATTER_H = 21, 9
DOTS = "·•●█"


def dot_levels(H: int) -> list[int]:
    """Fewest units in a plot cell for each glyph of DOTS: 1, then ≥ 1%, 5% and 20% of the units."""
    return [1, max(2, math.ceil(0.01 * H)), max(3, math.ceil(0.05 * H)), max(4, math.ceil(0.2 * H))]


def scatter(left: np.ndarray, right: np.ndarray) -> list[str]:
    """Per-unit (left fraction, right fraction) as a character plot, like figure 3 of Karpathy et
    al. 2015: x = fraction of steps left-saturated, y = right-saturated, both 0..1."""
    counts = np.zeros((SCATTER_H, SCATTER_W), int)
    for x, y in zip(left, right):
        counts[SCATTER_H - 1 - round(y * (SCATTER_H - 1)), round(x * (SCATTER_W - 1))] += 1
    levels = dot_levels(len(left))
    rows = []
    for j, row in enumerate(counts):
        axis = "1 ┤" if j == 0 else ("0 ┤" if j == SCATTER_H - 1 else "  │")
        rows.append(axis + "".join(" " if n == 0 else DOTS[sum(n >= m for m in levels) - 1] for n in row))
    rows.append("  └" + "─" * SCATTER_W)
    rows.append("   0" + " " * (SCATTER_W - 2) + "1")
    return rows


def gates_view(console: Console, rows: list[GateSaturation], steps: int) -> None:
    """A table of saturation fractions, then the per-unit scatter of each gate, a layer per line."""
    console.print(Text(f"gate saturation over {steps:,} steps", style="bold"))
    table = Table()
    for col in ("layer", "gate", "left <", "right >", "left-saturated", "right-saturated", "neither"):
        table.add_column(col, justify="right")
    for g in rows:
        neither = 1.0 - g.left_fraction - g.right_fraction
        table.add_row(str(g.layer), g.gate, f"{g.low:g}", f"{g.high:g}", f"{g.left_fraction:.1%}", f"{g.right_fraction:.1%}", f"{neither:.1%}")
    console.print(table)
    levels = dot_levels(len(rows[0].left))
    key = ", ".join(f"{d} {m}+" for d, m in zip(DOTS, levels))
    console.print(Text(f"per unit: x = fraction of steps left-saturated, y = right-saturated (units per cell: {key})", style="dim"), soft_wrap=True)
    for layer in sorted({g.layer for g in rows}):
        gates = [g for g in rows if g.layer == layer]
        plots = [scatter(g.left, g.right) for g in gates]
        width = SCATTER_W + 6
        console.print(Text("".join(f"layer {layer} {g.gate}".ljust(width) for g in gates), style="bold"), soft_wrap=True)
        for parts in zip(*plots):
            line = Text()
            for part in parts:
                line.append(part.ljust(width), style="cyan" if console.is_terminal else "")
            console.print(line, soft_wrap=True)


def gates_record(rows: list[GateSaturation]) -> list[dict[str, Any]]:
    return [
        {
            "layer": g.layer, "gate": g.gate, "low": g.low, "high": g.high,
            "left_fraction": g.left_fraction, "right_fraction": g.right_fraction,
            "left_per_unit": g.left.tolist(), "right_per_unit": g.right.tolist(),
        }
        for g in rows
    ]


# ------------------------------------------------------------------------------ gradient flow

BAR = 16
EIGHTHS = " ▏▎▍▌▋▊▉█"


def log_bar(value: float, lo: float, hi: float, width: int = BAR) -> str:
    """A bar whose length is log10(value) on the scale log10(lo) .. log10(hi), in eighths."""
    if not value > 0:
        return " " * width
    span = math.log10(hi) - math.log10(lo) or 1.0
    eighths = round(max(0.0, min(1.0, (math.log10(value) - math.log10(lo)) / span)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width)


def flow_series(flow: GradientFlow) -> list[tuple[str, np.ndarray]]:
    """(name, (K+1,) mean norms) for every layer's h, and c for the LSTM."""
    series = []
    for layer, h in enumerate(flow.mean_h):
        series.append((f"h l{layer}", h))
        if flow.mean_c is not None:
            series.append((f"c l{layer}", flow.mean_c[layer]))
    return series


def gradients_view(console: Console, models: list[tuple[str, GradientFlow]]) -> None:
    """For each model (a label and its flow), one row per lag k: for every series a log-scale
    bar and the mean norm; then how much of each is left at the last lag. Every model's bars are
    on one log scale and of one width, so they compare by eye."""
    all_series = [flow_series(flow) for _, flow in models]
    positive = [v for series in all_series for _, s in series for v in s if v > 0]
    hi = max(positive, default=1.0)
    lo = max(min(positive, default=1.0), hi * 1e-12)
    most = max(len(series) for series in all_series)
    width = max(8, min(BAR, (console.width - 6) // most - 11))  # 4 series fit 80 columns
    console.print(Text(
        f"mean ‖∂L_t/∂state_(t−k)‖ over positions t; bars on {'one' if len(models) > 1 else 'a'} log scale "
        f"from {lo:.1e} to {hi:.1e}", style="bold"), soft_wrap=True)
    colours = ["cyan", "magenta", "green", "yellow"]
    for (label, flow), series in zip(models, all_series):
        console.print(Text(f"\n{label}, over {len(flow.positions)} positions", style="bold"), soft_wrap=True)
        console.print((f"{'k':>4}  " + "  ".join(f"{name:<{width + 9}}" for name, _ in series)).rstrip(), markup=False, soft_wrap=True)
        for k in range(len(series[0][1])):
            row = Text(f"{k:>4}")
            for j, (_, s) in enumerate(series):
                row.append("  ")
                row.append(log_bar(float(s[k]), lo, hi, width), style=colours[j % len(colours)] if console.is_terminal else "")
                row.append(f" {s[k]:.2e}")
            console.print(row, soft_wrap=True)
        for name, s in series:
            left = decay(s)
            if left is not None:
                K = len(s) - 1
                console.print(f"{name}: k={K} / k=0 = {left[0]:.2e}, ×{left[1]:.3f} per step back", markup=False, soft_wrap=True)


def gradients_record(flow: GradientFlow) -> dict[str, Any]:
    """The norms, and per layer how much is left at the last lag (`probe.decay`: the ratio to
    k = 0 and the factor per step back; null where a norm is 0)."""

    def left(norms: np.ndarray) -> list[dict[str, float] | None]:
        kept = [decay(n) for n in norms]
        return [None if d is None else {"ratio": d[0], "per_step": d[1]} for d in kept]

    return {
        "positions": flow.positions.tolist(),
        "h": flow.mean_h.tolist(),
        "c": None if flow.mean_c is None else flow.mean_c.tolist(),
        "decay": {"h": left(flow.mean_h), "c": None if flow.mean_c is None else left(flow.mean_c)},
    }


# ------------------------------------------------------------------------------------ gradcheck


def gradcheck_view(console: Console, results: list[GradcheckResult], eps: float) -> None:
    """A table per cell: tensor, shape, largest error, ok/MISMATCH; then one verdict line each."""
    for r in results:
        console.print(Text(f"{r.cell.upper()}: analytic vs central differences (ε = {eps:g}, float64)", style="bold"), soft_wrap=True)
        table = Table()
        for col, justify in (("tensor", "left"), ("shape", "left"), ("max rel. error", "right"), ("", "left")):
            table.add_column(col, justify=justify)
        for t in r.tensors:
            verdict = Text("ok", style="green") if t.passed else Text("MISMATCH", style="bold red")
            table.add_row(t.name, "×".join(map(str, t.shape)), f"{t.max_error:.1e}", verdict)
        console.print(table)
    for r in results:
        worst = max(t.max_error for t in r.tensors)
        if r.passed:
            console.print(Text(f"{r.cell}: all {len(r.tensors)} tensors agree (largest error {worst:.1e} < {r.tolerance:g})", style="green"))
        else:
            bad = ", ".join(t.name for t in r.tensors if not t.passed)
            console.print(Text(f"{r.cell}: MISMATCH in {bad} (tolerance {r.tolerance:g})", style="bold red"), soft_wrap=True)


def gradcheck_record(results: list[GradcheckResult]) -> list[dict[str, Any]]:
    return [
        {
            "cell": r.cell, "passed": r.passed, "tolerance": r.tolerance,
            "tensors": [{"name": t.name, "shape": list(t.shape), "max_error": t.max_error, "passed": t.passed} for t in r.tensors],
        }
        for r in results
    ]
