"""The `charlstm` command: the Typer app with its commands, in the order help lists them, and
`main`, the entry point, which shows help one way everywhere and turns every error into one line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from charlstm.cli.eval import eval_
from charlstm.cli.exits import run
from charlstm.cli.help import plain_flags, plain_help
from charlstm.cli.inspect import inspect, runs
from charlstm.cli.report import report
from charlstm.cli.sample import sample
from charlstm.cli.train import HELP as TRAIN_HELP
from charlstm.cli.train import train
from charlstm.cli.understanding import VIEWS

app = typer.Typer(
    name="charlstm",
    help="Train a character-level LSTM on any UTF-8 text, then sample from it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_callback(value: bool) -> None:
    """--version: charlstm's version, and the optional parts present (numba; torch and its devices)."""
    if value:
        from charlstm.cli.about import describe

        typer.echo("\n".join(describe()))
        raise typer.Exit()


@app.callback()
# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback,
            is_eager=True,
            help="Show the version and the optional parts installed.",
        ),
    ] = False,
) -> None:
    # fmt: on
    """Train a character-level LSTM on any UTF-8 text, then sample from it.

    Start with `charlstm train FILE`; then `charlstm sample --seed "The"` writes text in its style.
    """


app.command(help=TRAIN_HELP)(train)
app.command()(sample)
app.command("eval")(eval_)
for command in (runs, inspect, *VIEWS, report):
    app.command()(command)


def main() -> None:
    """Entry point of the `charlstm` script: the Typer app, with flags shown without a value
    placeholder and defaults one way (`help`), and every error — the library's and Typer's usage
    errors (a wrong type, an unknown option) — as one line with its exit code (`errors.run`)."""
    command = typer.main.get_command(app)
    plain_flags(command)
    plain_help(command)
    sys.exit(run(command, sys.argv[1:]))
