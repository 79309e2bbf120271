"""Where the commands' output goes: dim notes on stderr, JSON and reports on stdout (made UTF-8),
the generated text to stdout or a file, and a reader that goes away (`| head`) ending a command
quietly. Rich is imported only when there is something to draw, so `charlstm sample` reaches its
first character sooner."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import typer


def note(message: str) -> None:
    """A dim diagnostic line on stderr."""
    from charlstm.cli.ui import console as ui

    ui.note(ui.make_console(), message)


def print_json(record: Any, indent: int | None = None) -> None:
    """`record` as JSON on stdout: one line, or indented."""
    try:
        sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=indent) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()


@contextmanager
def report_console() -> Iterator[Any]:
    """The console a view draws on (stdout, made UTF-8); a reader that goes away (`| head`)
    ends the command quietly."""
    from charlstm.cli.ui import shading

    utf8_stdout()
    try:
        yield shading.make_console()
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()


def utf8_stdout() -> TextIO:
    """stdout, made UTF-8 if it is not."""
    if (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
        sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    return sys.stdout


@contextmanager
def output(path: Path | None) -> Iterator[TextIO]:
    """The text stream for generated text: stdout (made UTF-8), or a UTF-8 file that takes the
    place of the one at `path` when the block ends (`charlstm.store.write`: atomically, a link
    followed, a device or folder refused)."""
    if path is None:
        yield utf8_stdout()
        return
    from charlstm.store import write

    with write.replacing(path, "--output", text=True) as f:
        yield f


def quiet_broken_pipe() -> None:
    """The reader went away (`| head`): stop quietly, without Python's flush error at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)
