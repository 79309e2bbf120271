"""The pieces every config is made of: the choices and limits, a field with its help text
(`opt`), the help drawn from the registries, and the checks a config runs when it is made."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any

from charlstm.engines import registry as engines
from charlstm.errors import UsageError
from charlstm.nn import cells

OPTIMIZER_NAMES = ("adam", "rmsprop", "sgd")  # the keys of optim.OPTIMIZERS
SCHEDULES = ("constant", "cosine", "linear")
KERNEL_NAMES = ("auto", "numpy", "numba")  # charlstm.nn.kernels.CHOICES
DROPOUT_MASKS = ("step", "window")  # charlstm.nn.model.Dropout
PRECISIONS = ("fp32", "bf16")
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:\d+)?"  # what --device accepts
ENCODING_ERRORS = ("strict", "replace")  # what --errors may do with undecodable bytes
AUTO_MIN_STEPS = 100  # an automatic batch size keeps at least this many windows per epoch
MAX_VOCAB = 10_000  # more distinct characters than this: most likely a binary file
FLAGS = {"num_layers": "--layers", "seed": "--random-seed"}  # where the option is not the field's name
LIMITS = ("epochs", "max_steps", "max_minutes")  # the fields that end a run; see TrainConfig.step_limit


def __getattr__(name: str) -> Any:
    """CELL_NAMES and ENGINE_NAMES: the registered cells' and engines' names (`cells.names()`,
    `engines.names()`), read when asked, so that one registered after this module was imported
    is among them."""
    if name == "CELL_NAMES":
        return cells.names()
    if name == "ENGINE_NAMES":
        return engines.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def flag(name: str) -> str:
    """The command-line option that sets the config field `name`, e.g. `--hidden-size`."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def opt(default: Any, text: str | Callable[[], str], shown: str | Callable[[], str] | None = "{value}") -> Any:
    """A field with its help text. `shown` is how its default reads in help, `{value}` standing
    for the value; a None default shows only when `shown` says in words what it means. Either
    may be a function, called when the help is drawn: text made of the registries (cells,
    engines), so that one registered after this module was imported is in it."""
    return field(default=default, metadata={"help": text, "shown": shown})


def or_list(words: Sequence[str]) -> str:
    """'a, b or c'."""
    return f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else "".join(words)


def cells_help() -> str:
    return f"Recurrent cell: {or_list(cells.names())}."


def engines_help() -> str:
    each = [f"{k.name} ({k.about})" for k in engines.kinds()]
    return f"What computes the steps: {or_list(each)}. A run resumes on any."


def quantities_help() -> str:
    """What each cell records per unit, from its declaration (`cells.declared`)."""
    each = "; ".join(f"{name.upper()} {or_list(cells.declared(name).quantities)}" for name in cells.names())
    return f"Quantity: {each}."


def quantity_default() -> str:
    """Each cell's default quantity (its first): 'c for the LSTM, h otherwise'."""
    first = {name: cells.declared(name).quantities[0] for name in cells.names()}
    usual = max(set(first.values()), key=list(first.values()).count)
    others = [f"{q} for the {name.upper()}" for name, q in first.items() if q != usual]
    return ", ".join([*others, f"{usual} otherwise" if others else usual])


def default_of(cls: type, name: str) -> Any:
    """The default value of field `name` of a config class."""
    f = {f.name: f for f in fields(cls)}[name]
    if f.default is MISSING:
        raise KeyError(f"{cls.__name__}.{name} has no default")
    return f.default


def check(checks: list[tuple[bool, str]]) -> None:
    """Raise UsageError with the message of the first check that fails."""
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def field_help(cls: type, name: str) -> str:
    """A field's help text ending with its default, e.g. 'Peak learning rate. (default: 0.004)'.

    Round brackets on purpose: Typer renders help with Rich, which would read '[default: …]' as
    markup and drop it."""
    f = {f.name: f for f in fields(cls)}[name]
    text, shown = f.metadata["help"], f.metadata.get("shown")
    text, shown = text() if callable(text) else text, shown() if callable(shown) else shown
    if shown is None or f.default is MISSING or (f.default is None and "{value}" in shown):
        return text
    value = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
    return f"{text} (default: {shown.format(value=value)})"


def cache_dir() -> Path:
    """charlstm's cache folder (encoded corpora, compiled kernels): $CHARLSTM_CACHE, else
    $XDG_CACHE_HOME/charlstm, else ~/.cache/charlstm."""
    if os.environ.get("CHARLSTM_CACHE"):
        return Path(os.environ["CHARLSTM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "charlstm"
