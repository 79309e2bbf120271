"""Charts as inline SVG text: line charts on linear or log axes with a legend, and the scatter of
gate saturation. Plain strings in, a self-contained <svg> element out; every label is escaped.
No numpy: the inputs are sequences of floats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 480, 270
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 62, 14, 26, 42
LEGEND_ROW = 16  # px per legend row, below the axes
CHAR_WIDTH = 6.6  # px per character of the 11 px legend font, to lay out entries


@dataclass(frozen=True)
class Line:
    """One series of a line chart. `key` names it for the page's tests and styles
    (e.g. "train", "val"); `run` the run it belongs to."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    colour: str
    dash: str = ""  # an SVG stroke-dasharray, "" for solid
    markers: bool = False
    key: str = ""
    run: str = ""


@dataclass(frozen=True)
class Axis:
    """Where values land on one axis: lo..hi onto pixels p0..p1, linearly or by log10."""

    lo: float
    hi: float
    p0: float
    p1: float
    log: bool

    def __call__(self, v: float) -> float:
        f = (
            (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
            if self.log
            else (v - self.lo) / (self.hi - self.lo)
        )
        return self.p0 + f * (self.p1 - self.p0)


def usable(v: float, log: bool) -> bool:
    return v is not None and math.isfinite(v) and (v > 0 or not log)


def value_range(values: Sequence[float], log: bool, zero: bool) -> tuple[float, float]:
    """The span an axis shows: the data's, widened a little (a decade boundary on a log axis),
    from 0 when `zero`; a single value gets room around it."""
    vs = [v for v in values if usable(v, log)]
    if not vs:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(vs), max(vs)
    if log:
        lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
        return (lo, hi * 10) if lo == hi else (lo, hi)
    if zero:
        lo = min(lo, 0.0)
    if lo == hi:
        return lo - 1, hi + 1
    pad = 0.04 * (hi - lo)
    return (lo if zero and lo == 0 else lo - pad), hi + pad


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2 or 5 × 10^k giving about `count` ticks over `span`."""
    raw = span / max(1, count)
    base = 10 ** math.floor(math.log10(raw))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw)


def ticks(lo: float, hi: float, log: bool, count: int = 5) -> list[float]:
    """Tick positions within lo..hi: every decade on a log axis (every other one or more when
    there are many; 2 and 5 too when the axis spans less than two), else round steps."""
    if log:
        a, b = round(math.log10(lo)), round(math.log10(hi))
        stride = max(1, math.ceil((b - a) / 8))
        out = [10.0**e for e in range(a, b + 1, stride)]
        if b - a < 2:
            out = sorted({m * 10.0**e for e in range(a, b + 1) for m in (1, 2, 5) if lo <= m * 10.0**e <= hi})
        return out
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def fmt_tick(v: float, log: bool) -> str:
    """A tick label: 10⁻³ style powers on a log axis, else a short number (1.2k, 0.004)."""
    if log:
        e = math.log10(v)
        if abs(e - round(e)) < 1e-9:
            return "1" if round(e) == 0 else "10" + str(round(e)).translate(SUPERSCRIPT)
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:.6g}" if abs(v) >= 1e-4 else f"{v:.1e}"


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def frame(
    x: Axis, y: Axis, x_label: str, y_label: str, x_ticks: Sequence[float], y_ticks: Sequence[float]
) -> list[str]:
    """Axes, grid lines at the ticks, tick labels and axis labels."""
    out = [f'<rect class="plot" x="{x.p0}" y="{y.p1}" width="{x.p1 - x.p0}" height="{y.p0 - y.p1}"/>']
    for v in y_ticks:
        py = round(y(v), 1)
        out.append(f'<line class="grid" x1="{x.p0}" x2="{x.p1}" y1="{py}" y2="{py}"/>')
        out.append(
            f'<text class="tick" x="{x.p0 - 5}" y="{py + 4}" text-anchor="end">{escape(fmt_tick(v, y.log))}</text>'
        )
    for v in x_ticks:
        px = round(x(v), 1)
        out.append(f'<line class="grid" x1="{px}" x2="{px}" y1="{y.p1}" y2="{y.p0}"/>')
        out.append(
            f'<text class="tick" x="{px}" y="{y.p0 + 15}" text-anchor="middle">{escape(fmt_tick(v, x.log))}</text>'
        )
    out.append(
        f'<text class="label" x="{(x.p0 + x.p1) / 2}" y="{y.p0 + 31}" text-anchor="middle">{escape(x_label)}</text>'
    )
    cy = (y.p0 + y.p1) / 2
    out.append(
        f'<text class="label" x="12" y="{cy}" text-anchor="middle" transform="rotate(-90 12 {cy})">{escape(y_label)}</text>'
    )
    return out


def legend_rows(lines: Sequence[Line], width: float) -> list[list[tuple[Line, float]]]:
    """Legend entries laid out left to right, wrapping at `width`: rows of (line, x offset)."""
    rows: list[list[tuple[Line, float]]] = [[]]
    x = 0.0
    for line in lines:
        w = 30 + CHAR_WIDTH * len(line.label) + 14
        if rows[-1] and x + w > width:
            rows.append([])
            x = 0.0
        rows[-1].append((line, x))
        x += w
    return rows if rows[0] else []


def legend(lines: Sequence[Line], left: float, top: float, width: float) -> list[str]:
    out = []
    for j, row in enumerate(legend_rows(lines, width)):
        y = top + j * LEGEND_ROW
        for line, dx in row:
            x = left + dx
            dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
            out.append(f'<line class="key" x1="{x}" x2="{x + 24}" y1="{y}" y2="{y}" stroke="{line.colour}"{dash}/>')
            if line.markers:
                out.append(f'<circle cx="{x + 12}" cy="{y}" r="2.5" fill="{line.colour}"/>')
            out.append(f'<text class="legend" x="{x + 30}" y="{y + 4}">{escape(line.label)}</text>')
    return out


def polyline(line: Line, x: Axis, y: Axis) -> list[str]:
    """The series as one polyline (one vertex per point that the axes can show) and, with
    `markers`, a dot per point whose tooltip gives its values."""
    pts = [(px, py) for px, py in zip(line.xs, line.ys) if usable(px, x.log) and usable(py, y.log)]
    coords = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in pts)
    dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
    attrs = f'class="series" data-key="{escape(line.key)}" data-run="{escape(line.run)}" data-points="{len(pts)}"'
    out = [
        f'<polyline {attrs} points="{coords}" stroke="{line.colour}"{dash}><title>{escape(line.label)}</title></polyline>'
    ]
    if line.markers:
        out.extend(
            f'<circle class="dot" cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.5" fill="{line.colour}"><title>{escape(line.label)}: {px:g}, {py:.4g}</title></circle>'
            for px, py in pts
        )
    return out


def line_chart(
    lines: Sequence[Line],
    x_label: str,
    y_label: str,
    title: str,
    log_x: bool = False,
    log_y: bool = False,
    y_from_zero: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """A chart of one or more series, with its legend below the axes."""
    rows = len(legend_rows(lines, width - MARGIN_LEFT))
    total = height + rows * LEGEND_ROW
    xs = [v for line in lines for v in line.xs]
    ys = [v for line in lines for v in line.ys]
    x = Axis(*value_range(xs, log_x, zero=False), MARGIN_LEFT, width - MARGIN_RIGHT, log_x)
    y = Axis(*value_range(ys, log_y, zero=y_from_zero), height - MARGIN_BOTTOM, MARGIN_TOP, log_y)
    ticks_x, ticks_y = ticks(x.lo, x.hi, x.log), ticks(y.lo, y.hi, y.log)
    body = [
        f'<text class="title" x="{MARGIN_LEFT}" y="16">{escape(title)}</text>',
        *frame(x, y, x_label, y_label, ticks_x, ticks_y),
    ]
    for line in lines:
        body.extend(polyline(line, x, y))
    body.extend(legend(lines, MARGIN_LEFT, height + 4, width - MARGIN_LEFT))
    return svg(body, width, total, title)


UNIT_TICKS = (0.0, 0.5, 1.0)


def scatter(xs: Sequence[float], ys: Sequence[float], x_label: str, y_label: str, title: str, size: int = 190) -> str:
    """Points in the unit square (both axes 0..1), one dot each, translucent so that piles show."""
    x = Axis(0.0, 1.0, 40, size - 8, False)
    y = Axis(0.0, 1.0, size - 34, 22, False)
    body = [
        f'<text class="title" x="40" y="14">{escape(title)}</text>',
        *frame(x, y, x_label, y_label, UNIT_TICKS, UNIT_TICKS),
    ]
    body.extend(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="2.6"/>' for a, b in zip(xs, ys))
    return svg(body, size, size, title, "scatter")


def svg(body: list[str], width: float, height: float, label: str, kind: str = "chart") -> str:
    return (
        f'<svg class="{kind}" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">' + "".join(body) + "</svg>"
    )


def swatches(colours: Sequence[str], lo: str, hi: str, label: str) -> str:
    """A colour legend as HTML: the label, the low end, a bar of the palette's colours, the high end."""
    cells = "".join(f'<i style="background:{c}"></i>' for c in colours)
    return f'<div class="scale"><span>{escape(label)}</span> {escape(lo)} <span class="bar">{cells}</span> {escape(hi)}</div>'
