"""The rule by which a run with a time budget (--max-minutes) and no -H/-L chooses its model.

Pure: given the training characters, the seconds of the budget and this machine's measured speed
of each candidate shape (`charlstm.training.speeds` measures it), `choose` says which shape, which
dropout, and why in one line. The plan (`charlstm.training.plan`) applies it to a new LSTM run.

The rule: a candidate gets `passes(shape)` = its chars/s × seconds × USABLE / training characters
passes over the text (capped by --epochs or --max-steps when given too). The costliest candidate
whose passes reach its MIN_PASSES is chosen, else the cheapest, with its DROPOUT.

The tables below are the one place to refit: they were fitted with bench/sizing_sweep.py on three
corpora at 2 and 10 minutes on a 2-core AMD EPYC, and checked on a fourth (bench/README.md, "The
sizing rule, as fitted"; README.md, "How charlstm chooses the model").
USABLE was measured: a 10-minute 2×256 run made 1,877 steps of 6,400 characters at a bare 24.1k
chars/s (validation, samples, checkpoints and the deadline's reserve take the rest of the time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Shape:
    """A model's shape: stacked layers of hidden units."""

    num_layers: int
    hidden_size: int

    def __str__(self) -> str:
        return f"{self.num_layers}x{self.hidden_size}"

    @classmethod
    def parse(cls, text: str) -> Shape:
        """'2x256' → Shape(2, 256), as `str` writes it (the key in caches and checkpoints)."""
        layers, _, hidden = text.partition("x")
        return cls(int(layers), int(hidden))


# ---------------------------------------------------------------- the tables (fitted: bench/README.md)
CANDIDATES: tuple[Shape, ...] = (Shape(2, 128), Shape(2, 256), Shape(2, 384))
"""The shapes the rule chooses among, cheapest first. Only shapes measured by the fit are here:
3×256 lost to 2×384 by 0.10 nats at equal time on tinyshakespeare, and 2×512 was not measured."""

MIN_PASSES: dict[Shape, float] = {Shape(2, 128): 0.0, Shape(2, 256): 4.0, Shape(2, 384): 9.0}
"""Passes over the training text a candidate needs within the budget to be chosen. Fitted at
equal time: 2×256 beat 2×128 with 5.0 passes (Python source, 2 minutes) and lost with 2.4
(tinyshakespeare, 2 minutes); 2×384 beat 2×256 with 12.7 and 14.8 passes (Python source and the
Python reference, 10 minutes) and lost with 6.2 (tinyshakespeare, 10 minutes). Each minimum lies
between its win and its loss."""

DROPOUT: dict[Shape, float] = {Shape(2, 128): 0.1, Shape(2, 256): 0.2, Shape(2, 384): 0.3}
"""Each candidate's dropout: a larger model needs more. (2×256 with 12 passes: 0.2 beat 0.3 by
0.015 nats on tinyshakespeare; 2×128 at 0.1 and 2×384 at 0.3 are the runs that won above.)"""

USABLE = 0.83
"""The share of a time budget spent in training steps (the rest: validation, samples, checkpoints,
the deadline's reserve)."""
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """What `choose` chose: the shape, its dropout, the passes it gets and its speed, and why."""

    shape: Shape
    dropout: float
    passes: float
    chars_per_s: float
    reason: str  # one line for the banner


def passes(chars_per_s: float, seconds: float, train_chars: int, max_passes: float | None = None) -> float:
    """Passes over `train_chars` training characters that `seconds` of budget buy at this speed,
    capped by `max_passes` (a step or epoch limit given too)."""
    fit = chars_per_s * seconds * USABLE / max(1, train_chars)
    return fit if max_passes is None else min(fit, max_passes)


def dropout_for(shape: Shape) -> float:
    """The dropout of `shape`: DROPOUT (the default's 0.2 for a shape the table does not know)."""
    return DROPOUT.get(shape, 0.2)


def choose(
    train_chars: int,
    seconds: float,
    speeds: Mapping[Shape, float],
    max_passes: float | None = None,
    limit: str = "",
    dropout: float | None = None,
    min_passes: Mapping[Shape, float] = MIN_PASSES,
) -> Choice:
    """The model for `train_chars` training characters and `seconds` of budget. speeds: chars/s
    of each candidate, cheapest first (CANDIDATES' order). max_passes: the cap of a step or epoch
    limit given too, which `limit` names for the reason ('--epochs 3'). dropout: the user's own,
    kept (None: chosen by the passes). min_passes: the table (a candidate missing from it is a
    ValueError)."""
    if not speeds:
        raise ValueError("no candidate speeds to choose from")
    if missing := [str(s) for s in speeds if s not in min_passes]:
        raise ValueError(f"no MIN_PASSES for {', '.join(missing)}")
    shapes = list(speeds)
    fits = [s for s in shapes if passes(speeds[s], seconds, train_chars, max_passes) >= min_passes[s]]
    shape = fits[-1] if fits else shapes[0]
    p = passes(speeds[shape], seconds, train_chars, max_passes)
    chosen = dropout_for(shape) if dropout is None else dropout
    reason = _reason(shape, chosen, p, train_chars, seconds, speeds[shape], limit, dropout is not None)
    return Choice(shape, chosen, p, speeds[shape], reason)


def _reason(
    shape: Shape, dropout: float, p: float, chars: int, seconds: float, speed: float, limit: str, theirs: bool
) -> str:
    """'2×384, dropout 0.3: ~6 passes over 1.0 M chars fit in 10 minutes at 12k chars/s; give
    -H/-L/--dropout to choose yourself'."""
    capped = f" (as {limit} allows)" if limit else ""
    minutes = seconds / 60
    what = f"{shape.num_layers}×{shape.hidden_size}, dropout {dropout:g}" + (" (yours)" if theirs else "")
    return (
        f"{what}: ~{_passes(p)} passes{capped} over {_chars(chars)} chars fit in {minutes:g} "
        f"minute{'' if minutes == 1 else 's'} at {_speed(speed)} chars/s; "
        f"give -H/-L{'' if theirs else '/--dropout'} to choose yourself"
    )


def _passes(p: float) -> str:
    return f"{p:.0f}" if p >= 1.95 else f"{p:.1f}"


def _chars(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    return f"{n / 1e3:.0f} k" if n >= 1e4 else f"{n:,}"


def _speed(s: float) -> str:
    if s >= 1e4:
        return f"{s / 1e3:.0f}k"
    return f"{s / 1e3:.1f}k" if s >= 1e3 else f"{s:.0f}"
