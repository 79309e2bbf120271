"""The engines' registry: what each engine declares of itself (`EngineKind`), by name.

A leaf, so that `config` can check `--engine` against `names()` without importing any engine: the
built-in engines register in `charlstm.engines` (which Python imports before this module), an
engine of one's own with `charlstm.engines.register`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charlstm.errors import UsageError

if TYPE_CHECKING:
    from charlstm.engines import Engine

ENGINE_OPTIONS = ("kernels", "device", "precision")  # the TrainConfig fields that only some engines take


@dataclass(frozen=True)
class EngineKind:
    """What an engine declares of itself, so that nothing else asks which engine it is: `register`
    it and `--engine NAME` trains with it, its options are checked and its help is written.

    `make` imports the engine's module (and its library) only when a run starts with it, so that
    `charlstm --help` and the NumPy engine never import PyTorch."""

    name: str
    about: str  # what computes, for --engine's help: "this package's own code, on the CPU"
    make: Callable[[], Callable[..., Engine]]  # the engine's class: Class(config, cfg, params, dtype) is an Engine
    options: tuple[str, ...] = ()  # the engine options (ENGINE_OPTIONS) it takes; given to another engine, refused
    ranks: bool = False  # trains across torchrun's ranks
    library: str | None = None  # the top-level module it imports beyond NumPy ("torch"); None: none
    needs: str = ""  # that library in words, for the message when it is missing: "PyTorch"
    install: str = ""  # one line: how to install it, "pip install 'charlstm[torch]'"
    check_device: Callable[[str, str, int], Any] | None = None  # (device, precision, ranks): UsageError if not here


_REGISTRY: dict[str, EngineKind] = {}


def register(kind: EngineKind) -> None:
    """Make `kind` the engine `kind.name`: then `--engine NAME` trains with it. Registering a name
    again replaces it. ValueError for a name that is no identifier or an option no engine has."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", kind.name):
        raise ValueError(f"engine name {kind.name!r}: lower-case letters, digits and _, starting with a letter")
    if unknown := set(kind.options) - set(ENGINE_OPTIONS):
        raise ValueError(f"engine {kind.name!r}: no engine option {', '.join(sorted(unknown))} ({ENGINE_OPTIONS})")
    _REGISTRY[kind.name] = kind


def names() -> tuple[str, ...]:
    """The registered engines' names, the default (numpy) first."""
    return tuple(_REGISTRY)


def kinds() -> tuple[EngineKind, ...]:
    """Every registered engine's declaration, in the order of `names()`."""
    return tuple(_REGISTRY.values())


def get(name: str) -> EngineKind:
    """The engine `name`'s declaration; a UsageError naming the engines there are for any other."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"--engine must be one of {', '.join(names())}") from None
