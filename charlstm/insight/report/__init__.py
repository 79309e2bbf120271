"""`charlstm report`: runs and what their models learned, drawn as one self-contained HTML page.

gather   the numbers: learning curves, samples and settings from the checkpoints; surprisal,
         neurons, gates and gradient flow from `charlstm.insight.probe` (as the terminal views)
svg      line charts (linear or log axes, legends) and scatter plots as inline SVG
colours  colour-blind-safe palettes: diverging for signed values, sequential for surprisal
page     the page: sections, coloured text, tooltips; every outside string escaped
assets   the page's inline style sheet and its one script (the tooltips)

from charlstm.insight.report import write_report
written = write_report([Path("checkpoints")])   # every run in the folder, overlaid
print(written.path)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from charlstm.config import ReportConfig
from charlstm.errors import CharLSTMError
from charlstm.insight.report.gather import Report, gather
from charlstm.store import write

SUFFIX = ".report.html"
HTML_HINT = "give a file name ending in .html"


@dataclass(frozen=True)
class Written:
    """What `write_report` did: the page, its size, and what it left out and why."""

    path: Path
    size: int  # bytes
    skipped: list[tuple[str, str]]  # (file, why)
    notes: list[str]  # e.g. a run whose text is not available


def write_report(
    paths: list[Path], text_file: Path | None = None, out: Path | None = None, cfg: ReportConfig = ReportConfig()
) -> Written:
    """Gather the runs that `paths` name (checkpoints or folders; none: the newest in
    ./checkpoints), draw the page and write it to `out` (default: beside the checkpoint,
    NAME.report.html, or report.html in the folder for several runs)."""
    from charlstm import __version__
    from charlstm.insight.report import page

    if out is not None:
        write.target(out, "--out", HTML_HINT)  # a device or a folder is refused before the work
    report = gather(paths, text_file, cfg)
    target = out or default_out(paths, report)
    names = [r.name for r in report.runs]
    title = f"charlstm report: {names[0]}" if len(names) == 1 else f"charlstm report: {len(names)} runs"
    footer = f"Written by charlstm {__version__} on {datetime.now().isoformat(timespec='seconds')}."
    text = page.render(report, title, footer)
    data = text.encode("utf-8")
    write_text(target, data)
    return Written(target, len(data), report.skipped, report.notes)


def default_out(paths: list[Path], report: Report) -> Path:
    """NAME.report.html beside a single run's checkpoint; report.html in the folder named (or the
    first run's folder) for several."""
    if len(report.runs) == 1:
        run = report.runs[0]
        return run.weights.with_name(run.name + SUFFIX)
    folder = next((p for p in paths if p.is_dir()), report.runs[0].weights.parent)
    return folder / "report.html"


def write_text(path: Path, data: bytes) -> None:
    """Write the page atomically (`charlstm.store.write`), so a reader never sees half a page."""
    write.write_atomic(path, data, "the report", CharLSTMError, HTML_HINT)


__all__ = ["ReportConfig", "Written", "write_report"]
