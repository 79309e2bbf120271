"""`charlstm report`: the options into a ReportConfig, the page written by `charlstm.insight.report`, and
its path printed (and opened, with --open)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charlstm.cli.options import given, option
from charlstm.cli.render import note
from charlstm.config import ReportConfig


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def report(
    paths: Annotated[list[Path] | None, typer.Argument(readable=False, help="Checkpoints, or folders of them, to report; several runs are overlaid. (default: the newest run in ./checkpoints)", show_default=False)] = None,
    text: Annotated[Path | None, typer.Option("--text", readable=False, help="Text file the model views read. (default: each run's own validation text, if its corpus is still where it was)", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", readable=False, help="The HTML file to write. (default: NAME.report.html beside the checkpoint; report.html in the folder for several runs)", show_default=False)] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in the web browser when it is written.")] = False,
    max_chars: Annotated[int | None, option(ReportConfig, "max_chars")] = None,
    top: Annotated[int | None, option(ReportConfig, "top")] = None,
    units: Annotated[int | None, option(ReportConfig, "units")] = None,
    find: Annotated[str | None, option(ReportConfig, "find")] = None,
    max_lag: Annotated[int | None, option(ReportConfig, "max_lag", "--max-lag", "-K")] = None,
    positions: Annotated[int | None, option(ReportConfig, "positions", "--positions", "-P")] = None,
    views: Annotated[int | None, option(ReportConfig, "views")] = None,
) -> None:
# fmt: on
    """Draw runs and what their models learned as one HTML page, and print its path.

    The page holds the learning curves, every sample drawn during training, the text coloured by
    surprisal (hover for the top guesses), the units that track features of the text, gate
    saturation and gradient flow. It is one file that opens offline in any browser: no server,
    nothing loaded from the network. Files that are not charlstm checkpoints are left out and
    named.
    """
    cfg = given(ReportConfig, max_chars=max_chars, top=top, units=units, find=find, max_lag=max_lag, positions=positions, views=views)
    from charlstm.insight.report import write_report

    written = write_report(paths or [], text, out, cfg)
    for _, why in written.skipped:
        note(f"left out: {why}")
    for message in written.notes:
        note(message)
    typer.echo(str(written.path))
    if open_page:
        import webbrowser

        webbrowser.open(written.path.resolve().as_uri())
