"""How an option is declared: from a config field (its help ends with the field's default, and
the option has no default of its own, so a default is written once, in charlstm/config.py),
choices as an Enum that help lists and Typer checks, and the options several commands share."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from charlstm.config import ViewConfig, field_help, flag


def choice(name: str, values: tuple[str, ...]) -> Any:
    """An Enum of `values`, so that help lists them and Typer checks them."""
    return Enum(name, {v: v for v in values}, type=str)


def metavar(values: tuple[str, ...]) -> str:
    return "[" + "|".join(values) + "]"


def option(cls: type, name: str, *names: str, choices: tuple[str, ...] | None = None, **kwargs: Any) -> Any:
    """The option that sets field `name` of the config `cls`: `--field-name` (or `names`), with
    the field's help. Its value is None unless given; `given` leaves it out then, so the field's
    default holds."""
    if choices is not None:
        kwargs["metavar"] = metavar(choices)
    return typer.Option(*(names or (flag(name),)), help=field_help(cls, name), show_default=False, **kwargs)


def given(cls: type, **options: Any) -> Any:
    """A `cls` config made of the options given: None (not given) keeps the field's default, and
    a choice gives its value."""
    return cls(**{k: getattr(v, "value", v) for k, v in options.items() if v is not None})


CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        "-c",
        readable=False,
        help="Checkpoint to look into (default: the newest in ./checkpoints).",
        show_default=False,
    ),
]
TextArgument = Annotated[
    Path, typer.Argument(readable=False, help="UTF-8 text file to run the model over.", show_default=False)
]
MaxCharsOption = Annotated[int | None, option(ViewConfig, "max_chars")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout instead.")]
