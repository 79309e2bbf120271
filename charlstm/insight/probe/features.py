"""Features of a text that a unit may track, and the units that track them best.

Each feature is a number per character, the state of the text *after* reading that character
(as a unit's value at step t is after reading character t):

    quote    1 inside a quotation, else 0: '"' toggles, '“' opens, '”' closes (quotes included
             at the opening, excluded at the closing)
    bracket  nesting depth of ( [ {  (an opening bracket counts, a closing one does not)
    line     position within the line: characters since the last newline (0 on the newline)
    indent   leading whitespace of the current line read so far (0 on the newline)
    REGEX    anything else is a regular expression: 1 on the characters of each match, else 0

A unit's score is the Pearson correlation of its values with the feature, over the characters;
ranking is by |r| (a unit may track a feature with either sign).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from charlstm.errors import UsageError
from charlstm.insight.probe.tracing import Trace

NAMED = ("quote", "bracket", "line", "indent")
OPENERS, CLOSERS = "([{", ")]}"


def quote_feature(text: str) -> np.ndarray:
    """(N,) 1.0 inside a quotation, else 0."""
    out = np.zeros(len(text))
    inside = False
    for t, ch in enumerate(text):
        inside = (not inside) if ch == '"' else (True if ch == "“" else (False if ch == "”" else inside))
        out[t] = inside
    return out


def bracket_feature(text: str) -> np.ndarray:
    """(N,) nesting depth of ( [ { after each character (never below 0)."""
    out = np.zeros(len(text))
    depth = 0
    for t, ch in enumerate(text):
        depth = depth + 1 if ch in OPENERS else (max(0, depth - 1) if ch in CLOSERS else depth)
        out[t] = depth
    return out


def line_feature(text: str) -> np.ndarray:
    """(N,) characters since the last newline; 0 on the newline itself."""
    out = np.zeros(len(text))
    column = 0
    for t, ch in enumerate(text):
        column = 0 if ch == "\n" else column + 1
        out[t] = column
    return out


def indent_feature(text: str) -> np.ndarray:
    """(N,) leading spaces and tabs of the current line read so far; 0 on the newline."""
    out = np.zeros(len(text))
    indent, leading = 0, True
    for t, ch in enumerate(text):
        if ch == "\n":
            indent, leading = 0, True
        elif leading and ch in " \t":
            indent += 1
        else:
            leading = False
        out[t] = indent
    return out


def regex_feature(text: str, pattern: str) -> np.ndarray:
    """(N,) 1.0 on the characters of every match of `pattern`, else 0."""
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise UsageError(
            f"--find {pattern!r} is not one of {', '.join(NAMED)} nor a valid regular expression ({e})"
        ) from None
    out = np.zeros(len(text))
    for m in compiled.finditer(text):
        out[m.start() : m.end()] = 1.0
    return out


def feature(text: str, name: str) -> np.ndarray:
    """The feature `name` (one of NAMED, else a regular expression) of `text`: (N,) float64."""
    named = {"quote": quote_feature, "bracket": bracket_feature, "line": line_feature, "indent": indent_feature}
    return named[name](text) if name in named else regex_feature(text, name)


def correlations(values: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Pearson r of every column of values (N, H) with f (N,): (H,). A constant column scores 0."""
    v = values.astype(np.float64) - values.mean(axis=0)
    g = f - f.mean()
    denom = np.sqrt((v * v).sum(axis=0) * (g @ g))
    r = np.zeros(values.shape[1])
    ok = denom > 0
    r[ok] = (g @ v)[ok] / denom[ok]
    return r


@dataclass(frozen=True)
class UnitScore:
    """How well one unit tracks a feature: Pearson r of its values with it."""

    layer: int
    unit: int
    what: str
    r: float


def rank_units(tr: Trace, f: np.ndarray, what: str, layers: list[int], top: int) -> list[UnitScore]:
    """The `top` units of quantity `what` in `layers` with the largest |r| with f (N,), best first."""
    if np.ptp(f) == 0:
        raise UsageError("the feature is constant over this text (nothing to track); try another --find or text")
    scores = [
        UnitScore(k, int(u), what, float(r)) for k in layers for u, r in enumerate(correlations(tr.values(k, what), f))
    ]
    scores.sort(key=lambda s: (-abs(s.r), s.layer, s.unit))
    return scores[:top]
