"""The ranks that train one run together, and how they agree: `Solo` for one process; under
torchrun `distributed.Ranks`. Who is who comes from torchrun's environment (no torch import)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from charlstm.errors import UsageError


class Team(Protocol):
    """The processes that train one run together: `size` ranks, this one `rank` (read-only: `Solo`
    is frozen; `distributed.Ranks` learns them from its process group)."""

    @property
    def rank(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def leader(self) -> bool:
        """Rank 0: the one that validates, samples, writes checkpoints and reports."""

    def agree(self, lead: Sequence[float] = (), flags: Sequence[bool] = ()) -> tuple[list[float], list[bool]]:
        """The same values on every rank, in one exchange: the leader's `lead` (what its clock
        says), and for each of `flags` whether any rank raised it."""


@dataclass(frozen=True)
class Solo:
    """The team of a run in one process: every agreement is what it was given."""

    rank: int = 0
    size: int = 1

    @property
    def leader(self) -> bool:
        return True

    def agree(self, lead: Sequence[float] = (), flags: Sequence[bool] = ()) -> tuple[list[float], list[bool]]:
        return list(lead), list(flags)


def world_size() -> int:
    """How many ranks train this run: torchrun's WORLD_SIZE, 1 without it."""
    return _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's rank on its machine under torchrun (LOCAL_RANK), 0 without it."""
    return _env_int("LOCAL_RANK", 0)


def rank() -> int:
    """This process's rank under torchrun (RANK), 0 without it."""
    return _env_int("RANK", 0)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise UsageError(
            f"${name} is {os.environ[name]!r}, not a whole number; run under torchrun, or unset it"
        ) from None
