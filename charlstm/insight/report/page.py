"""The report as one HTML page: the numbers of gather.py drawn as inline SVG charts and coloured
text, with CSS and one small script inline. Nothing is loaded from anywhere: a Content Security
Policy forbids every fetch and lets only this page's own script (by its hash) run, and every
string that comes from a corpus, a sample, a file name or a checkpoint is escaped (`esc`). The page
reads without JavaScript; the script adds a tooltip for hover and keyboard focus."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import numpy as np

from charlstm.insight.probe import GradientFlow, sigmoids
from charlstm.insight.report import colours, svg
from charlstm.insight.report.assets import CSS, SCRIPT
from charlstm.insight.report.blocks import (
    TITLES,
    left_out,
    left_out_note,
    no_views,
    per_run,
    run_label,
    section,
    skipped_box,
)
from charlstm.insight.report.curves import curves_section, epoch
from charlstm.insight.report.escape import esc
from charlstm.insight.report.gather import FeatureUnits, Report, RunReport, Views
from charlstm.text.visible import visible

SHOWN = {"\n": "↵", "\t": "⇥", "\r": "␍", " ": " "}  # what a coloured invisible character looks like
FLOW_LAGS = (0, 1, 2, 5, 10, 20, 30, 40)  # the lags k of the gradient table (and the last one)
STATE_DASHES = ("", "5 3", "2 2", "8 3 2 3")  # a cell's states in the gradient plot: h solid, the others dashed


def render(report: Report, title: str, footer: str) -> str:
    """The whole page."""
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    runs = report.runs
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}{colours.css()}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{len(runs)} run{"s" if len(runs) != 1 else ""}: {", ".join(run_label(r) for r in runs)}</p>',
        skipped_box(report.skipped),
        "<nav>" + "".join(f'<a href="#{key}">{name}</a>' for key, name, _ in SECTIONS) + "</nav>",
        *(draw(report) for _, _, draw in SECTIONS),
        f'<p class="note">{esc(footer)}</p><div id="tip" role="tooltip" hidden></div>',
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(p for p in parts if p)


# ------------------------------------------------------------------------------------- curves


# ------------------------------------------------------------------------------------ samples


def samples_section(report: Report) -> str:
    lead = "Every sample the model wrote during training, oldest first, with the step, the epoch and the validation loss then: watch the text improve."
    body = []
    for run in report.runs:
        items = "".join(
            f'<li data-step="{s.step}"><div class="meta">step {s.step:,} · epoch {epoch(s.epoch)} · '
            f"validation {s.val_bpc:.3f} bits/char</div><pre>{esc(s.text)}</pre></li>"
            for s in run.samples
        )
        content = (
            f'<ol class="samples" data-run="{esc(run.name)}">{items}</ol>'
            if items
            else '<p class="note">No samples in this checkpoint (trained with --sample-length 0).</p>'
        )
        body.append(f"<h3>{run_label(run)}</h3>{content}")
    return section("samples", lead, body)


# ---------------------------------------------------------------------------------- surprisal


def glyph(ch: str) -> str:
    """A character as coloured text shows it: a newline as ↵ and a line break, control characters
    as their symbols (U+2400…)."""
    if ch == "\n":
        return "↵\n"
    if ch in SHOWN:
        return SHOWN[ch]
    return chr(0x2400 + ord(ch)) if ord(ch) < 32 else (ch if ch.isprintable() else "�")


def surprisal_section(report: Report) -> str:
    top = report.config.top
    lead = (
        "Each character coloured by its surprisal, −log₂ p of it given the text before it: pale is what "
        f"the model expected, dark red a surprise. Hover over a character, or Tab into the text and move "
        f"with the arrow keys, to see the model's {top} most likely guesses there."
    )
    return section("surprisal", lead, per_run(report.runs, lambda j, run, v: [surprisal_text(run, v)]))


def surprisal_text(run: RunReport, v: Views) -> str:
    """Every predicted character with its bits and guesses in a tooltip (title, which the script
    turns into its own tooltip); the first character is given, not predicted."""
    s, chars, text = v.surprisal, run.ckpt.vocab.chars, v.text.text
    scale = max(1.0, float(np.percentile(s.bits, 99)))
    cells = [f"<i class=g0>{esc(glyph(text[0]))}</i>"]
    for t, bits in enumerate(s.bits):
        ch = text[t + 1]
        guesses = "\n".join(f"{visible(chars[int(g)])} {p:.3f}" for g, p in zip(s.guesses[t], s.probs[t]))
        tip = f"{visible(ch)}: {bits:.2f} bits\n{guesses}"
        cells.append(
            f'<i class=s{colours.sequential_class(float(bits) / scale)} title="{esc(tip)}">{esc(glyph(ch))}</i>'
        )
    label = f"surprisal of {run.name}'s model over the text; arrow keys move"
    return (
        f'<p class="note">Text: {esc(text_words(v))}</p>'
        f'<div class="sx" tabindex="0" role="group" aria-label="{esc(label)}" data-run="{esc(run.name)}">{"".join(cells)}</div>'
        + svg.swatches(colours.SEQUENTIAL, "0", f"{scale:.1f}+ bits", "surprisal")
        + f'<p>mean <b class="mean" data-run="{esc(run.name)}">{s.mean_bits:.4f}</b> bits/char over {len(s.bits):,} predicted characters (one stream, from the zero state)</p>'
    )


def text_words(v: Views) -> str:
    """Which text the views read, and how much of it."""
    tx = v.text
    cut = (
        f"the first {len(tx.ids):,} of {tx.total:,} characters"
        if tx.total > len(tx.ids)
        else f"{len(tx.ids):,} characters"
    )
    unknown = f"; {tx.unknown:,} characters the model does not know left out" if tx.unknown else ""
    return f"{v.source}, {cut}{unknown}"


# ------------------------------------------------------------------------------------ neurons


def neurons_section(report: Report) -> str:
    lead = (
        "Units whose value follows a feature of the text — inside a quotation, the depth of brackets, the "
        "position in the line, the indentation — ranked by |Pearson r|; each character is coloured by the "
        "feature and by each unit's value after reading it: blue below zero (or a gate below 0.5), red above."
    )
    return section("neurons", lead, per_run(report.runs, neuron_blocks))


def neuron_blocks(j: int, run: RunReport, v: Views) -> list[str]:
    """A run's features, the one its best unit tracks best open, and the colour scale."""
    best = max(v.features, key=lambda f: abs(f.scores[0].r) if f.scores else -1.0)
    return [
        *(feature_block(run, v, f, open_=(f is best)) for f in v.features),
        svg.swatches(colours.DIVERGING, "low", "high", "value"),
    ]


def feature_block(run: RunReport, v: Views, f: FeatureUnits, open_: bool) -> str:
    """One feature: a table of its best units, then the feature and each unit over the text."""
    head = f"'{f.name}': " + (
        f.problem or f"best unit layer {f.scores[0].layer} unit {f.scores[0].unit} ({v.what}), r = {f.scores[0].r:+.3f}"
    )
    if f.problem or f.values is None:
        return f"<details><summary>{esc(head)}</summary></details>"
    rows = "".join(
        f"<tr><td>{rank}</td><td>{s.layer}</td><td>{s.unit}</td><td>{esc(s.what)}</td><td>{s.r:+.3f}</td></tr>"
        for rank, s in enumerate(f.scores, 1)
    )
    table = (
        f'<table class="units" data-run="{esc(run.name)}" data-feature="{esc(f.name)}"><tr><th>rank</th><th>layer</th>'
        f"<th>unit</th><th>quantity</th><th>r</th></tr>{rows}</table>"
    )
    peak = float(np.abs(f.values).max()) or 1.0
    lines = [text_row(f"feature '{f.name}'", v.text.text, [colours.diverging_class(float(x) / peak) for x in f.values])]
    sigmoid = v.what in sigmoids(run.ckpt.config)
    for s, values in zip(f.scores, f.units):
        mid, half = colours.centred_scale([float(x) for x in values], sigmoid)
        classes = [colours.diverging_class((float(x) - mid) / half) for x in values]
        lines.append(text_row(f"layer {s.layer} unit {s.unit} ({s.what}), r = {s.r:+.3f}", v.text.text, classes))
    return f"<details{' open' if open_ else ''}><summary>{esc(head)}</summary>{table}{''.join(lines)}</details>"


def text_row(label: str, text: str, classes: list[int]) -> str:
    """The text with each character on its class of DIVERGING; equal neighbours share one element."""
    out, start = [], 0
    for t in range(1, len(text) + 1):
        if t == len(text) or classes[t] != classes[start]:
            out.append(f"<i class=d{classes[start]}>{esc(''.join(glyph(ch) for ch in text[start:t]))}</i>")
            start = t
    return f'<div class="row"><div class="lab">{esc(label)}</div><div class="tx">{"".join(out)}</div></div>'


# -------------------------------------------------------------------------------------- gates


def gates_section(report: Report) -> str:
    lead = (
        "How often each gate is nearly shut (below 0.1: left-saturated) or wide open (above 0.9: "
        "right-saturated) while the model reads the text: one dot per unit, as in Karpathy, Johnson and "
        "Fei-Fei (2015), figure 3. A vanilla RNN has no gates: its tanh output h is counted beyond ±0.9 instead."
    )
    return section("gates", lead, per_run(report.runs, gate_blocks))


def gate_blocks(j: int, run: RunReport, v: Views) -> list[str]:
    """A run's table of saturation fractions, then a row of scatters per layer."""
    rows = "".join(
        f"<tr><td>{g.layer}</td><td>{esc(g.gate)}</td><td>{g.low:g}</td><td>{g.high:g}</td><td>{g.left_fraction:.1%}</td>"
        f"<td>{g.right_fraction:.1%}</td><td>{1 - g.left_fraction - g.right_fraction:.1%}</td></tr>"
        for g in v.gates
    )
    body = [
        f'<table class="gates" data-run="{esc(run.name)}"><tr><th>layer</th><th>gate</th><th>left &lt;</th><th>right &gt;</th>'
        f"<th>left-saturated</th><th>right-saturated</th><th>neither</th></tr>{rows}</table>"
    ]
    for layer in sorted({g.layer for g in v.gates}):
        plots = [
            svg.scatter(
                g.left.tolist(), g.right.tolist(), "left-saturated", "right-saturated", f"layer {g.layer} {g.gate}"
            )
            for g in v.gates
            if g.layer == layer
        ]
        body.append(f'<div class="charts" style="--c:{colours.run_style(j)[0]}">' + "".join(plots) + "</div>")
    return body


# ---------------------------------------------------------------------------------- gradients


def gradients_section(report: Report) -> str:
    runs = report.runs
    lead = (
        "How far back the gradient reaches: the size of ∂L_t/∂h_(t−k), the loss at one step against the state "
        "k steps before it, averaged over positions t, on a log axis. Through a vanilla RNN it tends to fall steeply, "
        "in a straight line; gates can carry it much further. A cell's h is solid, its other states (an LSTM's "
        "cell state c) dashed."
    )
    with_views = [(j, r, r.views.flow) for j, r in enumerate(runs) if r.views is not None]
    body = [note for r in runs if r.views is None and not left_out(r) for note in no_views(r)]
    layers = max((r.ckpt.config.num_layers for _, r, _ in with_views), default=0)
    charts = []
    for layer in range(layers):
        lines = []
        for j, run, flow in with_views:
            colour, _ = colours.run_style(j)
            for k, name in enumerate(flow.states):
                mean = flow.mean(name)
                if layer < len(mean):
                    dash = STATE_DASHES[k % len(STATE_DASHES)]
                    ks = list(range(mean.shape[1]))
                    line = svg.Line(
                        f"{run.name} {name}", ks, mean[layer].tolist(), colour, dash, key=name, run=run.name
                    )
                    lines.append(line)
        charts.append(svg.line_chart(lines, "k, steps back", "mean ‖∂L_t/∂state‖", f"layer {layer}", log_y=True))
    if charts:
        body.append('<div class="charts">' + "".join(charts) + "</div>")
        body.append(flow_table([(r.name, flow) for _, r, flow in with_views]))
    return section("gradients", lead, [*body, *left_out_note(runs)])


def flow_table(flows: list[tuple[str, GradientFlow]]) -> str:
    """The plotted means at a few lags of each (run's name, its gradient flow), as `charlstm
    gradients` prints them (2 significant digits)."""
    columns: list[tuple[str, str, np.ndarray]] = []  # (run, series, (K + 1,) means)
    for run_name, flow in flows:
        means = {name: flow.mean(name) for name in flow.states}
        for layer in range(len(means["h"])):
            columns.extend((run_name, f"{name} l{layer}", m[layer]) for name, m in means.items())
    K = max(len(values) for _, _, values in columns) - 1
    lags = sorted({k for k in FLOW_LAGS if k <= K} | {K})
    head = (
        "<tr><th>k</th>"
        + "".join(f'<th data-run="{esc(name)}" data-series="{s}">{esc(name)} {s}</th>' for name, s, _ in columns)
        + "</tr>"
    )
    rows = "".join(
        f"<tr><td>{k}</td>"
        + "".join(f"<td>{values[k]:.2e}</td>" if k < len(values) else "<td></td>" for _, _, values in columns)
        + "</tr>"
        for k in lags
    )
    return f'<table class="flow">{head}{rows}</table>'


# The page's sections, in order: (key: the section's id, heading, what draws it). A new view of
# the report is its numbers in gather.py (a field of Views, computed in `model_views`), a
# function here that draws them, its heading in blocks.TITLES, and its line below.
SECTIONS: tuple[tuple[str, str, Callable[[Report], str]], ...] = tuple(
    (key, TITLES[key], draw)
    for key, draw in (
        ("curves", curves_section),
        ("samples", samples_section),
        ("surprisal", surprisal_section),
        ("neurons", neurons_section),
        ("gates", gates_section),
        ("gradients", gradients_section),
    )
)
