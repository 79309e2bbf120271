"""The Python API's keywords: the command line's long options spelt as Python names
(`--max-minutes` → max_minutes, `--layers` → layers, `--random-seed` → random_seed).

Each keyword is checked here for its type (what Typer checks on the command line) and then for
its value by the config dataclass it sets, exactly as the CLI's are, so both say the same thing
about a bad value. An unknown keyword is a UsageError naming the closest known one. No NumPy.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from charlstm.config import (
    CELL_NAMES,
    DROPOUT_MASKS,
    ENCODING_ERRORS,
    ENGINE_NAMES,
    OPTIMIZER_NAMES,
    PRECISIONS,
    SCHEDULES,
    DisplayConfig,
    EvalConfig,
    ModelConfig,
    ReadConfig,
    ReportConfig,
    SampleConfig,
    TrainConfig,
    flag,
)
from charlstm.errors import UsageError


@dataclass(frozen=True)
class Keyword:
    """One keyword: the group of settings it belongs to (a config, or "run" for the options that
    are not config fields), the field it sets, and its type as the field declares it."""

    name: str  # max_minutes
    group: str  # "model", "train", "read", "display", "sample", "eval", "report", "run"
    field: str  # num_layers
    kind: str  # "int | None"


def _of(cls: type, group: str, cli_names: bool = False, leave_out: tuple[str, ...] = ()) -> dict[str, Keyword]:
    """The keywords that set fields of `cls`: named as the command line names them (`cli_names`:
    through `config.flag`, for train's options) or as the fields are."""
    found = {}
    for f in fields(cls):
        if f.name in leave_out:
            continue
        name = flag(f.name)[2:].replace("-", "_") if cli_names else f.name
        found[name] = Keyword(name, group, f.name, str(f.type))
    return found


# the options whose values the command line lists (an Enum there), with the same error
CHOICES = {
    "cell": CELL_NAMES, "dropout_mask": DROPOUT_MASKS, "errors": ENCODING_ERRORS, "engine": ENGINE_NAMES,
    "optimizer": OPTIMIZER_NAMES, "precision": PRECISIONS, "schedule": SCHEDULES,
}  # fmt: skip


def _run(**kinds: str) -> dict[str, Keyword]:
    return {name: Keyword(name, "run", name, kind) for name, kind in kinds.items()}


# `charlstm train`'s options: the configs' fields, and what says which run to make
TRAIN = {
    **_of(ModelConfig, "model", cli_names=True, leave_out=("vocab_size",)),
    **_of(TrainConfig, "train", cli_names=True),
    **_of(ReadConfig, "read"),
    **_of(DisplayConfig, "display"),
    **_run(resume="Path | None", init_from="Path | None", fresh="bool", out="Path | None", log_json="Path | None"),
}
# Model.sample and Model.stream: `charlstm sample`'s, less what shapes the output of the command
# (several samples, the seed not echoed, --output): they return the text
SAMPLE = _of(SampleConfig, "sample", leave_out=("num_samples", "no_seed_echo"))
# Model.evaluate: `charlstm eval`'s, less --show and its options (a view drawn in the terminal)
EVALUATE = {
    **_of(EvalConfig, "eval", leave_out=("show", "top", "max_chars")),
    **_of(ReadConfig, "read", leave_out=("max_vocab",)),
}
REPORT = {**_of(ReportConfig, "report"), **_run(text="Path | None")}


def parse(options: dict[str, Any], table: dict[str, Keyword], where: str) -> dict[str, dict[str, Any]]:
    """The keywords given to `where` (e.g. "charlstm.train", "charlstm.Model.sample"), by group: {group: {field: value}},
    each value of its field's type. None stands for a keyword not given (the default holds)."""
    groups: dict[str, dict[str, Any]] = {k.group: {} for k in table.values()}
    for name, value in options.items():
        keyword = table.get(name)
        if keyword is None:
            raise UsageError(unknown(name, table, where))
        if value is None:
            continue
        value = checked(name, value, keyword.kind)
        choices = CHOICES.get(keyword.field) if table is TRAIN else None
        if choices is not None and value not in choices:
            raise UsageError(f"{flag(keyword.field)} must be one of {', '.join(choices)}, not {value!r}")
        groups[keyword.group][keyword.field] = value
    return groups


def unknown(name: str, table: dict[str, Keyword], where: str) -> str:
    """An unknown keyword in words, with the keyword meant: by spelling, or the field's name
    given where the command line's is the keyword (num_layers → layers)."""
    meant = [k.name for k in table.values() if k.field == name and k.name != name]
    meant = meant or difflib.get_close_matches(name, list(table), n=2, cutoff=0.6)
    hint = f" (did you mean {' or '.join(meant)}?)" if meant else ""
    return f"{where}() has no option {name!r}{hint}; see help({where})"


def checked(name: str, value: Any, kind: str) -> Any:
    """`value` as the type `kind` names (an int is a float too, a str a Path); a UsageError
    naming the keyword otherwise, as the CLI names an option whose value is not a number."""
    base = kind.replace(" | None", "").strip()
    if base == "bool" and isinstance(value, bool):
        return value
    if isinstance(value, bool):  # True is an int in Python; never a size or a rate here
        raise UsageError(f"{name}={value!r} is not {_WANTED.get(base, base)}")
    if base == "int" and isinstance(value, int):
        return value
    if base == "float" and isinstance(value, int | float):
        return float(value)
    if base == "str" and isinstance(value, str):
        return value
    if base == "Path" and isinstance(value, str | os.PathLike):
        return Path(value)
    raise UsageError(f"{name}={value!r} is not {_WANTED.get(base, base)}")


_WANTED = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "True or False", "Path": "a path"}
