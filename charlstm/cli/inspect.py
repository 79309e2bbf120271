"""`charlstm inspect` (what a checkpoint holds) and `charlstm runs` (the runs in a folder): read
from the checkpoints' headers by `charlstm.store.checkpoint`, shown as tables or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charlstm.cli.render import print_json


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def runs(
    folder: Annotated[Path, typer.Argument(readable=False, help="Folder of checkpoints. (default: checkpoints)", show_default=False)] = Path("checkpoints"),
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout instead of a table.")] = False,
) -> None:
# fmt: on
    """List the runs in a folder, newest first: corpus, model, steps, best validation loss, date, size."""
    from charlstm.cli.ui import console as ui
    from charlstm.cli.ui import tables
    from charlstm.store.runs import list_runs

    found = list_runs(folder)
    if as_json:
        return print_json(found, indent=2)
    tables.runs_table(found, str(folder).rstrip("/"), ui.make_console(stdout=True))


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def inspect(
    path: Annotated[Path | None, typer.Argument(readable=False, help="Checkpoint to describe, or a folder to list its runs (as `charlstm runs`). (default: the newest in ./checkpoints)", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout instead of tables.")] = False,
    samples: Annotated[bool, typer.Option("--samples", help="Also show the sample drawn after each epoch, oldest first.")] = False,
) -> None:
# fmt: on
    """Describe a checkpoint: config, parameters, vocabulary, training history."""
    from charlstm.cli.ui import console as ui
    from charlstm.cli.ui import tables
    from charlstm.store import checkpoint
    from charlstm.store.runs import find_latest

    if path is not None and path.is_dir():
        return runs(path, as_json)
    info = checkpoint.describe(checkpoint.load(path or find_latest(name_one="give its path: charlstm inspect PATH")))
    if as_json:
        return print_json(info, indent=2)
    tables.checkpoint_table(info, ui.make_console(stdout=True), show_samples=samples)
