"""The views drawn as charts and tables (`gates`, `gradients`, `gradcheck`) with Rich.

On a terminal in colour; otherwise (a pipe, a file) the same characters without escape codes.
The `*_record` functions give the JSON-compatible dictionaries of `--json`. `charlstm.insight.views`
computes (with `charlstm.insight.probe`); this module only draws.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from charlstm.insight.probe.gradflow import decay

if TYPE_CHECKING:
    from charlstm.insight.probe import GateSaturation, GradcheckResult, GradientFlow


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
        table.add_row(
            str(g.layer),
            g.gate,
            f"{g.low:g}",
            f"{g.high:g}",
            f"{g.left_fraction:.1%}",
            f"{g.right_fraction:.1%}",
            f"{neither:.1%}",
        )
    console.print(table)
    levels = dot_levels(len(rows[0].left))
    key = ", ".join(f"{d} {m}+" for d, m in zip(DOTS, levels))
    console.print(
        Text(
            f"per unit: x = fraction of steps left-saturated, y = right-saturated (units per cell: {key})", style="dim"
        ),
        soft_wrap=True,
    )
    for layer in sorted({g.layer for g in rows}):
        gates = [g for g in rows if g.layer == layer]
        plots = [scatter(g.left, g.right) for g in gates]
        width = SCATTER_W + 6
        console.print(
            Text("".join(f"layer {layer} {g.gate}".ljust(width) for g in gates), style="bold"), soft_wrap=True
        )
        for parts in zip(*plots):
            line = Text()
            for part in parts:
                line.append(part.ljust(width), style="cyan" if console.is_terminal else "")
            console.print(line, soft_wrap=True)


def gates_record(rows: list[GateSaturation]) -> list[dict[str, Any]]:
    return [
        {
            "layer": g.layer,
            "gate": g.gate,
            "low": g.low,
            "high": g.high,
            "left_fraction": g.left_fraction,
            "right_fraction": g.right_fraction,
            "left_per_unit": g.left.tolist(),
            "right_per_unit": g.right.tolist(),
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
    """(name, (K+1,) mean norms) for every layer's states, each that the cell declares (h; the
    LSTM's c), layer by layer."""
    means = {name: flow.mean(name) for name in flow.states}
    layers = len(means["h"])
    return [(f"{name} l{layer}", m[layer]) for layer in range(layers) for name, m in means.items()]


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
    console.print(
        Text(
            f"mean ‖∂L_t/∂state_(t−k)‖ over positions t; bars on {'one' if len(models) > 1 else 'a'} log scale "
            f"from {lo:.1e} to {hi:.1e}",
            style="bold",
        ),
        soft_wrap=True,
    )
    colours = ["cyan", "magenta", "green", "yellow"]
    for (label, flow), series in zip(models, all_series):
        console.print(Text(f"\n{label}, over {len(flow.positions)} positions", style="bold"), soft_wrap=True)
        console.print(
            (f"{'k':>4}  " + "  ".join(f"{name:<{width + 9}}" for name, _ in series)).rstrip(),
            markup=False,
            soft_wrap=True,
        )
        for k in range(len(series[0][1])):
            row = Text(f"{k:>4}")
            for j, (_, s) in enumerate(series):
                row.append("  ")
                row.append(
                    log_bar(float(s[k]), lo, hi, width), style=colours[j % len(colours)] if console.is_terminal else ""
                )
                row.append(f" {s[k]:.2e}")
            console.print(row, soft_wrap=True)
        for name, s in series:
            left = decay(s)
            if left is not None:
                K = len(s) - 1
                console.print(
                    f"{name}: k={K} / k=0 = {left[0]:.2e}, ×{left[1]:.3f} per step back", markup=False, soft_wrap=True
                )


def gradients_record(flow: GradientFlow) -> dict[str, Any]:
    """The norms of each state the cell declares ("states": h, and the LSTM's c), under its
    name, (L, K+1); and per layer how much is left at the last lag (`probe.decay`: the ratio to
    k = 0 and the factor per step back; null where a norm is 0)."""

    def left(norms: np.ndarray) -> list[dict[str, float] | None]:
        kept = [decay(n) for n in norms]
        return [None if d is None else {"ratio": d[0], "per_step": d[1]} for d in kept]

    means = {name: flow.mean(name) for name in flow.states}
    return {
        "positions": flow.positions.tolist(),
        "states": list(flow.states),
        **{name: m.tolist() for name, m in means.items()},
        "decay": {name: left(m) for name, m in means.items()},
    }


# ------------------------------------------------------------------------------------ gradcheck


def gradcheck_view(console: Console, results: list[GradcheckResult], eps: float) -> None:
    """A table per cell: tensor, shape, largest error, ok/MISMATCH; then one verdict line each."""
    for r in results:
        console.print(
            Text(f"{r.cell.upper()}: analytic vs central differences (ε = {eps:g}, float64)", style="bold"),
            soft_wrap=True,
        )
        table = Table()
        columns: list[tuple[str, JustifyMethod]] = [
            ("tensor", "left"),
            ("shape", "left"),
            ("max rel. error", "right"),
            ("", "left"),
        ]
        for col, justify in columns:
            table.add_column(col, justify=justify)
        for t in r.tensors:
            verdict = Text("ok", style="green") if t.passed else Text("MISMATCH", style="bold red")
            table.add_row(t.name, "×".join(map(str, t.shape)), f"{t.max_error:.1e}", verdict)
        console.print(table)
    for r in results:
        worst = max(t.max_error for t in r.tensors)
        if r.passed:
            console.print(
                Text(
                    f"{r.cell}: all {len(r.tensors)} tensors agree (largest error {worst:.1e} < {r.tolerance:g})",
                    style="green",
                )
            )
        else:
            bad = ", ".join(t.name for t in r.tensors if not t.passed)
            console.print(
                Text(f"{r.cell}: MISMATCH in {bad} (tolerance {r.tolerance:g})", style="bold red"), soft_wrap=True
            )


def gradcheck_record(results: list[GradcheckResult]) -> list[dict[str, Any]]:
    return [
        {
            "cell": r.cell,
            "passed": r.passed,
            "tolerance": r.tolerance,
            "tensors": [
                {"name": t.name, "shape": list(t.shape), "max_error": t.max_error, "passed": t.passed}
                for t in r.tensors
            ],
        }
        for r in results
    ]
