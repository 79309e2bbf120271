"""The pieces of a profiled step (bench/step_profile.py): cProfile over real steps, then pstats.

A piece is the cumulative time of one or more functions, counted only under the callers that make
it that piece (a (callee, caller) pair: np.matmul called from the LSTM's forward loop is a
recurrent product, from `ops.project` an input projection, from `model.backward` the head).
cProfile times Python functions and C functions of the builtin kind only; NumPy's ufuncs
(np.matmul among them), operators on arrays and numba's compiled kernels would vanish into the
own time of whatever calls them. So, for the profiled steps only (`profiled`), np.matmul is
replaced by a Python function that calls it (`matmul`), and the step's kernels by a copy whose
kernels are Python functions that call the real ones (`visible`): every product and kernel call
then shows, with its caller. Nothing in charlstm/ changes.

The pieces partition the step (`attribute`): none of their functions may run inside another
piece's (checked: "nested" lists any that does), and "the rest" is the step less them — the
Python between the calls and the small NumPy operations that no named function holds;
"rest_by_function" lists its largest own times. "recorded_ms" is all the time the profiler
recorded, per step: beside the step's total and the wall clock, it shows that no second went
unseen.
"""

from __future__ import annotations

import cProfile
import dataclasses
import pstats
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

Key = tuple[str, int, str]  # pstats' name of a function: (file, first line, name)
Source = tuple[Key, tuple[Key, ...] | None]  # a callee, counted under these callers (None: any)
REST = "the rest: Python and small in-place operations"
_MATMUL = np.matmul


def matmul(*args, **kwargs):
    """np.matmul as a Python function, which the profiler sees, with its caller."""
    return _MATMUL(*args, **kwargs)


def visible(k):
    """A copy of the kernels `k` whose kernels are Python functions calling the originals. One
    def per kernel: pstats tells functions apart by their code."""
    fwd, bwd, step, head, draw = k.lstm_forward_gates, k.lstm_backward_gates, k.lstm_step, k.linear_step, k.softmax_draw

    def gate_math_forward(*args, **kwargs):
        return fwd(*args, **kwargs)

    def gate_math_backward(*args, **kwargs):
        return bwd(*args, **kwargs)

    def layer_step(*args, **kwargs):
        return step(*args, **kwargs)

    def head_step(*args, **kwargs):
        return head(*args, **kwargs)

    def softmax_draw(*args, **kwargs):
        return draw(*args, **kwargs)

    return dataclasses.replace(
        k,
        lstm_forward_gates=gate_math_forward,
        lstm_backward_gates=gate_math_backward,
        lstm_step=layer_step,
        linear_step=head_step,
        softmax_draw=softmax_draw,
    )


def key_of(fn: Callable | types.CodeType) -> Key:
    code = fn if isinstance(fn, types.CodeType) else fn.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def inner(fn: Callable, name: str) -> types.CodeType:
    """The code of the function `name` defined inside `fn` (a closure the profiler names)."""
    return next(c for c in fn.__code__.co_consts if isinstance(c, types.CodeType) and c.co_name == name)


@dataclasses.dataclass(frozen=True)
class Piece:
    name: str
    sources: tuple[Source, ...]
    flops: float = 0.0  # per step (products)
    minus: tuple[Source, ...] = ()  # time inside `sources` that another piece counts


def via(*callers: Callable) -> tuple[Source, ...]:
    """np.matmul (the profiled `matmul`) under these callers."""
    return ((key_of(matmul), tuple(key_of(c) for c in callers)),)


def whole(*fns: Callable | types.CodeType) -> tuple[Source, ...]:
    """These functions, under any caller."""
    return tuple((key_of(f), None) for f in fns)


def profiled(fn: Callable[[], object], n: int) -> tuple[pstats.Stats, float]:
    """Run fn n times under cProfile, with np.matmul visible; (stats, wall seconds)."""
    prof = cProfile.Profile()
    np.matmul = matmul
    try:
        t0 = time.perf_counter()
        prof.enable()
        for _ in range(n):
            fn()
        prof.disable()
        wall = time.perf_counter() - t0
    finally:
        np.matmul = _MATMUL
    return pstats.Stats(prof), wall


def timed(fn: Callable[[], object], n: int) -> float:
    """Seconds of n calls of fn, no profiler."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def _measure(st: dict, sources: tuple[Source, ...]) -> tuple[float, int]:
    """(cumulative seconds, calls) of the sources: each callee's time under its callers."""
    seconds, calls = 0.0, 0
    for callee, callers in sources:
        for caller, (_, nc, _, ct) in st.get(callee, (0, 0, 0, 0, {}))[4].items():
            if callers is None or caller in callers:
                seconds, calls = seconds + ct, calls + nc
    return seconds, calls


def _reachable(st: dict, roots: set[Key]) -> set[Key]:
    """Every function called, at any depth, from the roots (the roots included)."""
    children: dict[Key, set[Key]] = {}
    for callee, entry in st.items():
        for caller in entry[4]:
            children.setdefault(caller, set()).add(callee)
    seen, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def label(key: Key) -> str:
    file, _, name = key
    return name if file == "~" else f"{Path(file).stem}.{name}"


def _rest(st: dict, pieces: list[Piece], step: Key, inside: set[Key]) -> dict[Key, float]:
    """The rest counted function by function (seconds): the own time of every function under the
    step that no piece reaches, and the calls such functions make to the others that no piece
    counts. Beside the step less the pieces, it checks that they partition the step."""
    counted = {(callee, c) for p in pieces for callee, callers in p.sources if callers for c in callers}
    anywhere = {callee for p in pieces for callee, callers in p.sources if callers is None}
    outside = _reachable(st, {step}) - inside
    rest = {key: st[key][2] for key in outside}
    for callee, entry in st.items():
        if callee in outside or callee in anywhere:
            continue
        for caller, (_, _, _, ct) in entry[4].items():
            if caller in outside and (callee, caller) not in counted:
                rest[callee] = rest.get(callee, 0.0) + ct
    return rest


def _nested(st: dict, pieces: list[Piece], inside: set[Key]) -> list[str]:
    """The sources called from inside a piece (other than the `minus` ones): should be none."""
    given = {source for p in pieces for source in p.minus}
    return [
        f"{label(callee)} under {label(caller)}"
        for p in pieces
        for callee, callers in p.sources
        if (callee, callers) not in given
        for caller in st.get(callee, (0, 0, 0, 0, {}))[4]
        if (callers is None or caller in callers) and caller in inside
    ]


def _row(p: Piece, seconds: float, calls: int, steps: int, total: float, gemm: float | None) -> dict:
    per_step = seconds / steps
    gflops = p.flops / per_step / 1e9 if p.flops and per_step > 0 else None
    return {
        "piece": p.name,
        "ms": round(per_step * 1e3, 4),
        "share": round(seconds / total, 4),
        "calls": round(calls / steps, 1),
        "gflops": round(gflops, 1) if gflops else None,
        "of_gemm": round(gflops / gemm, 3) if gflops and gemm else None,
    }


def attribute(
    stats: pstats.Stats, pieces: list[Piece], step: Callable, gemm: float | None, steps: int | None = None
) -> dict:
    """The pieces of the profiled function `step` (the whole of `steps` steps; default: one a
    call), per step, and the rest: the step less the pieces ("the rest" row), and the same counted
    function by function ("rest_counted_ms", "rest_by_function")."""
    st = stats.stats  # type: ignore[attr-defined]
    _, calls, _, total, _ = st[key_of(step)]
    steps = steps or calls
    rows, named = [], 0.0
    for p in pieces:
        seconds, calls = _measure(st, p.sources)
        seconds -= _measure(st, p.minus)[0]
        named += seconds
        rows.append(_row(p, seconds, calls, steps, total, gemm))
    rows.append({"piece": REST, "ms": round((total - named) / steps * 1e3, 4), "share": round(1 - named / total, 4)})
    inside = _reachable(st, {callee for p in pieces for callee, _ in p.sources})
    rest = _rest(st, pieces, key_of(step), inside)
    largest = sorted(((s, key) for key, s in rest.items() if s > 1e-4 * total), reverse=True)[:8]
    return {
        "steps": steps,
        "step_ms": round(total / steps * 1e3, 4),
        "pieces": rows,
        "named_ms": round(named / steps * 1e3, 4),
        "rest_counted_ms": round(sum(rest.values()) / steps * 1e3, 4),
        "recorded_ms": round(stats.total_tt / steps * 1e3, 4),  # type: ignore[attr-defined]
        "nested": _nested(st, pieces, inside),
        "rest_by_function": {label(key): round(s / steps * 1e3, 4) for s, key in largest},
    }
