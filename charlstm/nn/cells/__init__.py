"""Recurrent cells: each one module that declares everything the rest of charlstm needs of it.

A layer of any cell computes, for t = 1..T,

    xa_t = W_ih x_t                      (the input projection: `ops.project`, outside the cell)
    state_t = cell(xa_t, state_{t-1})    (the recurrence: the cell's `forward`)

and `h_t` is the layer's output. The input projection and its gradient live once, in `ops`; a
cell owns only the recurrence. Parameters use PyTorch's names and layouts (gate blocks stacked
along the rows of `weight_ih`/`weight_hh`, in PyTorch's gate order), so a checkpoint loads into
`torch.nn.LSTM` / `nn.GRU` / `nn.RNN` unchanged.

The contract, `Cell`, is all that the model, training, evaluation, sampling, checkpoints, the
views, the report and the engines use: nothing outside this package asks which cell it is. A new
cell is one module that provides it (its fast path may start as `stepwise`, its plain step in a
loop) and one `register(name, module)`.

The registry maps names to modules and imports a module only when it is first used (`get`), so
that `config` and `charlstm --help` list the names, and each cell's quantities (`declared`),
without importing NumPy.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import re
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

SIGMOID_SATURATION = (0.1, 0.9)  # a sigmoid gate below this is shut, above it wide open (`GATES`)


@dataclass(frozen=True)
class StepGrads:
    """What one plain step back (`Cell.step_back`) yields, for B rows. dxa is the gradient of the
    step's xa = W_ih x + b_ih, so dx = dxa @ W_ih, dW_ih = dxa^T x and db_ih = Σ dxa."""

    dxa: np.ndarray  # (B, G)
    dW_hh: np.ndarray  # (G, H) this step's share of the recurrent weights' gradient
    db_hh: np.ndarray  # (G,)
    dstate_prev: tuple[np.ndarray, ...]  # (B, H) each: the gradient reaching state_{t-1} through this step
    dstate: tuple[np.ndarray, ...]  # (B, H) each: the whole gradient at state_t (every path, inside the step too)


class Cell(Protocol):
    """What every cell module provides. Shapes: T steps, B batch, H hidden, G = NUM_GATES·H.

    First what it is, for the model, the views, the report and the engines; then its plain step,
    one line per equation, the reference that the tests, the gradient-flow view and
    `probe.reference` use; then its fast path for training and sampling.
    """

    NUM_GATES: int  # blocks of H rows in weight_ih / weight_hh: LSTM 4, GRU 3, RNN 1
    STATE_NAMES: tuple[str, ...]  # the recurrent state, h first: ("h", "c") or ("h",)
    # what `activations` and `step` record per unit, the views' default first; ⊇ STATE_NAMES
    QUANTITIES: tuple[str, ...]
    SIGMOID: frozenset[str]  # the quantities in (0, 1): the views colour them on a fixed scale
    GATES: dict[str, tuple[float, float]]  # what `charlstm gates` counts: quantity → (low, high) saturation thresholds
    # the torch.nn module that computes the cell and its options; None: none does
    TORCH: tuple[str, dict[str, Any]] | None

    def step(
        self, xa: np.ndarray, state: tuple[np.ndarray, ...], W_hh: np.ndarray, b_hh: np.ndarray
    ) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
        """One step from xa (B, G) = W_ih x + b_ih and the state ((B, H) each): the new state and
        the step's record, every quantity of QUANTITIES (B, H) and what `step_back` needs."""

    def step_back(self, dstate: tuple[np.ndarray, ...], rec: dict[str, np.ndarray], W_hh: np.ndarray) -> StepGrads:
        """Back through one step: dstate, the gradient at the new state from outside the step
        (h: from above and from step t+1; the others: from step t+1), and the step's record."""

    def init_layer(self, rng: np.random.Generator, D: int, H: int, first: bool, dtype: type) -> dict[str, np.ndarray]:
        """A layer's parameters {"weight_ih": (G, D), "weight_hh": (G, H), "bias_ih": (G,), "bias_hh": (G,)}."""

    def input_scale(self, H: int, dtype: np.dtype) -> np.ndarray | None:
        """Per-row factor (G,) that `ops.project` applies to W_ih for this cell, or None."""

    def forward(
        self,
        xa: np.ndarray,
        state0: tuple[np.ndarray, ...],
        W_hh: np.ndarray,
        b_ih: np.ndarray,
        b_hh: np.ndarray,
        cache: Any = None,
        kernels: Any = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...], Any]:
        """Run T steps from state0 ((B, H) each) given xa (T, B, G) = W_ih x (scaled by
        `input_scale`, without b_ih), which the cell may keep and overwrite. Returns h_seq
        (T, B, H) (a view into the cache), the final state (fresh arrays) and the cache (pass it
        back next window to reuse its buffers). `kernels` (`charlstm.nn.kernels.Kernels`, None: NumPy)
        is the compiled per-step math, for the cells that have it (the LSTM)."""

    def backward(
        self,
        dh_seq: np.ndarray,
        cache: Any,
        dstateT: tuple[np.ndarray | None, ...] | None = None,
        kernels: Any = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[np.ndarray, ...]]:
        """From dL/dh_t (T, B, H) and the gradient at the final state (None: zero): dxa (T, B, G),
        the gradient of W_ih x_t (unscaled); {"weight_hh", "bias_ih", "bias_hh"}; dstate0."""

    def activations(self, cache: Any) -> dict[str, np.ndarray]:
        """Copies of every quantity of QUANTITIES in the last forward, (T, B, H) each. Valid only
        between forward and backward (backward may overwrite the buffers they are copied from)."""

    def prepare(self, W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, ids: bool) -> Any:
        """The layer's weights laid out for `step_into`."""

    def step_work(self, H: int, N: int, dtype: np.dtype) -> Any:
        """Scratch buffers of `step_into` for N streams."""

    def step_into(
        self,
        z: np.ndarray,
        rest: tuple[np.ndarray, ...],
        p: Any,
        work: Any,
        ids: np.ndarray | None = None,
        kernels: Any = None,
    ) -> None:
        """One step in place, batch-minor: z (D+H, N) is the input stacked on h — or h alone,
        (H, N), with ids (N,) as input — and its last H rows become the new h; `rest` holds the
        other state tensors, (H, N) each, updated in place. `kernels` as in `forward`."""


_REGISTRY: dict[str, str | ModuleType] = {
    "lstm": "charlstm.nn.cells.lstm",
    "gru": "charlstm.nn.cells.gru",
    "rnn": "charlstm.nn.cells.rnn",
}


def register(name: str, cell: str | ModuleType) -> None:
    """Make `cell` (a module providing `Cell`, or its dotted import path) the cell `name`: then
    `--cell name` trains it and its checkpoints load. Registering a name again replaces it.
    ValueError for a name that is no identifier; TypeError for a module that breaks the contract
    (a path is checked when it is first imported)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"cell name {name!r}: lower-case letters, digits and _, starting with a letter")
    if isinstance(cell, ModuleType):
        check(name, cell)
    _REGISTRY[name] = cell


def names() -> tuple[str, ...]:
    """The registered cells' names, the built-in ones first (imports none of them)."""
    return tuple(_REGISTRY)


def get(name: str) -> Cell:
    """The cell module `name`, imported on first use; KeyError for a name not registered."""
    cell = _REGISTRY[name]
    if isinstance(cell, str):
        module = importlib.import_module(cell)
        check(name, module)
        cell = _REGISTRY[name] = module
    return cell


@dataclass(frozen=True)
class Declared:
    """What help text and option checks need of a cell, read without importing it."""

    quantities: tuple[str, ...]  # QUANTITIES: the views' default first
    state_names: tuple[str, ...]  # STATE_NAMES


def declared(name: str) -> Declared:
    """Cell `name`'s QUANTITIES and STATE_NAMES. A cell not imported yet is read from its source
    (its literal tuples: the cell modules import NumPy, and `charlstm --help` must not); a module
    whose declarations are not literals is imported. KeyError for a name not registered."""
    cell = _REGISTRY[name]
    if isinstance(cell, str):
        found = _literals(cell, ("QUANTITIES", "STATE_NAMES"))
        if len(found) == 2:
            return Declared(tuple(found["QUANTITIES"]), tuple(found["STATE_NAMES"]))
    module = get(name)
    return Declared(module.QUANTITIES, module.STATE_NAMES)


@functools.cache
def _literals(module: str, wanted: tuple[str, ...]) -> dict[str, Any]:
    """The top-level `NAME = <literal>` assignments of `module`'s source among `wanted` (read once:
    the help of several options asks)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not (spec.origin or "").endswith(".py"):
        return {}
    found = {}
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:  # type: ignore[arg-type]
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in wanted:
            with suppress(ValueError):  # not a literal
                found[target.id] = ast.literal_eval(node.value)
    return found


def check(name: str, cell: ModuleType) -> None:
    """Nothing when the module `cell` provides all of `Cell` and its declarations agree, else a
    TypeError that says what it lacks or which of them disagree."""
    wanted = [*Cell.__annotations__, *(n for n, v in vars(Cell).items() if callable(v) and not n.startswith("_"))]
    missing = [n for n in wanted if not hasattr(cell, n)]
    if missing:
        raise TypeError(f"cell {name!r} ({cell.__name__}) lacks {', '.join(missing)} (see charlstm.nn.cells.Cell)")
    unknown = {
        what: set(names) - set(cell.QUANTITIES)
        for what, names in (("STATE_NAMES", cell.STATE_NAMES), ("SIGMOID", cell.SIGMOID), ("GATES", cell.GATES))
    }
    problems = [f"{what} names {', '.join(sorted(q))}, not in QUANTITIES" for what, q in unknown.items() if q]
    if cell.STATE_NAMES[:1] != ("h",):
        problems.append("STATE_NAMES must start with h")
    if problems:
        raise TypeError(f"cell {name!r} ({cell.__name__}): {'; '.join(problems)}")


class _Cells(Mapping[str, Cell]):
    """The registry as a read-only mapping, name → cell module (imported when looked up)."""

    def __getitem__(self, name: str) -> Cell:
        return get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(_REGISTRY)


CELLS: Mapping[str, Cell] = _Cells()
