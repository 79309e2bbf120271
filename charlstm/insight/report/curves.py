"""The report's learning curves: loss by step and by time, one chart per text the runs were trained
on, each run in its own colour and dash; the learning rate and the speed."""

from __future__ import annotations

import math
from dataclasses import replace

from charlstm.insight.report import colours, svg
from charlstm.insight.report.blocks import section
from charlstm.insight.report.escape import esc
from charlstm.insight.report.gather import Report, RunReport, Series
from charlstm.insight.report.settings import settings_table


def curves_section(report: Report) -> str:
    runs = report.runs
    lead = (
        "How each run learned: bits per character (lower is better) on the training text (a moving "
        "average, a plain line) and on held-out validation text (dots), by step and by time, with the "
        "learning rate and the speed. Each run has its own colour and dash."
    )
    groups = by_text(runs)
    lr, speed, drawn = [], [], []
    for j, run in enumerate(runs):
        colour, dash = colours.run_style(j)
        c = run.curves
        lr.append(svg.Line(run.name, c.lr.steps, c.lr.values, colour, dash, key="lr", run=run.name))
        speed.append(svg.Line(run.name, c.speed.steps, c.speed.values, colour, dash, key="speed", run=run.name))
    for text, members in groups:
        if len(groups) > 1:
            drawn.append(f'<h3 class="text-group">Trained on {esc(text)}</h3>')
        drawn.append('<div class="charts">' + "".join(loss_charts(members)) + "</div>")
    if len(groups) > 1:
        drawn.insert(
            0,
            f'<p class="note">The runs were trained on {len(groups)} texts: their losses are charted apart, '
            "as bits/char on one text do not compare with another's.</p>",
        )
    drawn.append(
        '<div class="charts">'
        + svg.line_chart(lr, "step", "learning rate", "Learning rate", y_from_zero=True)
        + svg.line_chart(speed, "step", "characters/s", "Training speed", y_from_zero=True)
        + "</div>"
    )
    old = [r.name for r in runs if not r.curves.per_step and r.curves.val.steps]
    none = [r.name for r in runs if not r.curves.val.steps and not r.curves.train.steps]
    notes = (
        [f"{esc(', '.join(old))}: one point per epoch (checkpoint written before per-step curves were kept)."]
        if old
        else []
    )
    notes += [f"{esc(', '.join(none))}: no training history in the checkpoint."] if none else []
    drawn = drawn if len(none) < len(runs) else []
    return section("curves", lead, [*drawn, *(f'<p class="note">{n}</p>' for n in notes), settings_table(runs)])


def by_text(runs: list[RunReport]) -> list[tuple[str, list[tuple[int, RunReport]]]]:
    """The runs (with their index, for their style) by the text they were trained on (its hash,
    named by the corpus), in order of first appearance."""
    groups: dict[str, tuple[str, list[tuple[int, RunReport]]]] = {}
    for j, run in enumerate(runs):
        corpus = run.train.get("corpus") or {}
        key = str(corpus.get("sha256") or corpus.get("name") or "?")
        name = f"{corpus.get('name', 'an unnamed text')} ({corpus.get('chars', 0):,} characters)"
        groups.setdefault(key, (name, []))[1].append((j, run))
    return list(groups.values())


def loss_charts(members: list[tuple[int, RunReport]]) -> list[str]:
    """Loss by step and by time of the runs of one text."""
    loss = []
    for j, run in members:
        (colour, dash), c = colours.run_style(j), run.curves
        kind = "train" if c.per_step else "train, per epoch"
        loss.append(
            svg.Line(f"{run.name} {kind}", c.train.steps, c.train.values, colour, dash, key="train", run=run.name)
        )
        loss.append(svg.Line(f"{run.name} val", c.val.steps, c.val.values, colour, dash, True, "val", run.name))
    by_time, unit = time_lines(loss, [s for _, r in members for s in (r.curves.train, r.curves.val)])
    return [
        svg.line_chart(loss, "step", "bits/char", "Loss by step"),
        svg.line_chart(by_time, unit, "bits/char", "Loss by time of training"),
    ]


def time_lines(lines: list[svg.Line], series: list[Series]) -> tuple[list[svg.Line], str]:
    """The loss lines against the seconds of training of each point (minutes when the longest
    run took more than five), and the axis label. A point without a time is left out."""
    times = [[math.nan if t is None else t for t in s.seconds] for s in series]
    longest = max((t for ts in times for t in ts if math.isfinite(t)), default=0.0)
    unit, scale = ("minutes of training", 60.0) if longest > 300 else ("seconds of training", 1.0)
    out = [replace(line, xs=[t / scale for t in ts], key=line.key + "-time") for line, ts in zip(lines, times)]
    return out, unit


def epoch(e: float) -> str:
    """An epoch count as people read it: 3 when whole, else two decimals (2.73)."""
    return str(round(e)) if abs(e - round(e)) < 5e-3 else f"{e:.2f}"
