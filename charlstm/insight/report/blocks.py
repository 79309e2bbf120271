"""The pieces every section of the report's page is made of: the sections' titles, a section, a
run's label and heading, the note on runs whose views were left out. Every outside string escaped."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from charlstm.insight.report.escape import esc
from charlstm.insight.report.gather import RunReport, Views

# The page's sections, in order: their ids and headings (page.SECTIONS says what draws each).
TITLES = {
    "curves": "Learning curves",
    "samples": "Watch the text improve",
    "surprisal": "Surprisal over a text",
    "neurons": "Neurons",
    "gates": "Gates",
    "gradients": "Gradient flow",
}


def run_label(run: RunReport) -> str:
    c = run.ckpt.config
    return f"{esc(run.name)} ({c.num_layers}×{c.hidden_size} {c.cell.upper()})"


def skipped_box(skipped: list[tuple[str, str]]) -> str:
    if not skipped:
        return ""
    items = "".join(f"<li><code>{esc(path)}</code>: {esc(why)}</li>" for path, why in skipped)
    return f'<div class="warn" id="skipped">Not in this report:<ul>{items}</ul></div>'


def per_run(runs: list[RunReport], draw: Callable[[int, RunReport, Views], list[str]]) -> list[str]:
    """For each run (j-th, for its colour), a heading and what `draw` makes of its views, or why
    it has none; the runs whose views were left out (`gather.best_runs`) are named once."""
    body = []
    for j, run in enumerate(runs):
        if left_out(run):
            continue
        body.append(f"<h3>{run_label(run)}</h3>")
        body.extend(no_views(run) if run.views is None else draw(j, run, run.views))
    return [*body, *left_out_note(runs)]


def left_out(run: RunReport) -> bool:
    """A run past the best `--views` (it has neither views nor a reason for having none)."""
    return run.views is None and run.no_views is None


def left_out_note(runs: list[RunReport]) -> list[str]:
    names = [r.name for r in runs if left_out(r)]
    if not names:
        return []
    drawn = len(runs) - len(names)
    return [
        f'<p class="note views-left-out">Drawn for the {drawn} runs with the best validation loss; not for '
        f"{esc(', '.join(names))} (<code>--views {len(runs)}</code> draws every run, or report one run alone).</p>"
    ]


def section(key: str, lead: str, body: Sequence[str]) -> str:
    """A section of the page: its heading (`TITLES`), the lead paragraph and what it draws."""
    return f'<section id="{key}"><h2>{TITLES[key]}</h2><p class="lead">{lead}</p>' + "\n".join(body) + "</section>"


def no_views(run: RunReport) -> list[str]:
    return [f'<p class="note">No text to show this model on: {esc(run.no_views)}.</p>']
