"""The page's colours, all safe for colour-blind readers: ColorBrewer's RdBu (diverging, for
signed values: blue below zero, red above) and YlOrRd (sequential, for surprisal), and the
Okabe–Ito palette for the runs' lines. Values are put into the palettes' classes here; the page
draws them as CSS classes."""

from __future__ import annotations

import math

DIVERGING = (
    "#053061",
    "#2166ac",
    "#4393c3",
    "#92c5de",
    "#d1e5f0",
    "#f7f7f7",
    "#fddbc7",
    "#f4a582",
    "#d6604d",
    "#b2182b",
    "#67001f",
)  # RdBu, 11 classes, from −1 to +1
SEQUENTIAL = (
    "#ffffcc",
    "#ffeda0",
    "#fed976",
    "#feb24c",
    "#fd8d3c",
    "#fc4e2a",
    "#e31a1c",
    "#bd0026",
    "#800026",
)  # YlOrRd, 9
DARK_DIVERGING = {0, 1, 9, 10}  # classes whose characters are drawn in white
DARK_SEQUENTIAL = {6, 7, 8}
RUNS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")  # Okabe–Ito, yellow left out


DASHES = ("", "7 3", "2 3", "10 3 2 3", "4 4", "12 3 2 3 2 3")  # SVG stroke-dasharrays, solid first


def run_style(index: int) -> tuple[str, str]:
    """The colour and dash of the index-th run's lines. Seven colours and six dashes, stepped
    together: no two of the first 42 runs share both (seven colours alone repeat at the eighth)."""
    return RUNS[index % len(RUNS)], DASHES[index % len(DASHES)]


def diverging_class(x: float) -> int:
    """x in [−1, 1] (clipped) to a class of DIVERGING; 0 is the middle, white."""
    x = 0.0 if not math.isfinite(x) else max(-1.0, min(1.0, x))
    return round((x + 1) / 2 * (len(DIVERGING) - 1))


def sequential_class(x: float) -> int:
    """x in [0, 1] (clipped) to a class of SEQUENTIAL."""
    x = 0.0 if not math.isfinite(x) else max(0.0, min(1.0, x))
    return min(len(SEQUENTIAL) - 1, int(x * len(SEQUENTIAL)))


def centred_scale(values: list[float], sigmoid: bool) -> tuple[float, float]:
    """The centre and half-width that map a unit's values onto [−1, 1]: a gate's (0, 1) around
    0.5, anything else ±max|v| around 0 (as the terminal view colours them)."""
    if sigmoid:
        return 0.5, 0.5
    return 0.0, max((abs(v) for v in values), default=0.0) or 1.0


def css() -> str:
    """The classes d0..d10 and s0..s8: a background each, white text on the dark ones."""
    rules = [f".d{k}{{background:{c}}}" for k, c in enumerate(DIVERGING)]
    rules += [f".s{k}{{background:{c}}}" for k, c in enumerate(SEQUENTIAL)]
    dark = [f".d{k}" for k in sorted(DARK_DIVERGING)] + [f".s{k}" for k in sorted(DARK_SEQUENTIAL)]
    return "".join(rules) + ",".join(dark) + "{color:#fff}"
