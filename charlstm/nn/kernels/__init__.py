"""The per-step LSTM gate math, the Adam update and a sampling step, in one of two implementations:

- "numpy" (`numpy_ref`): plain NumPy, the readable reference, always there;
- "numba" (`numba_impl`, which gathers `numba_lstm_math`, `numba_adam` and `numba_sampling`): the
  same math fused into one compiled pass per kernel, when numba is installed
  (`pip install 'charlstm[fast]'`).

"auto" picks numba when it can be imported (`load`); sampling's auto (`for_sampling`) only when its
compiled code is on disk already. Nothing here imports numba or the kernels until asked:

    k = kernels.load("auto")
    k.lstm_forward_gates(a, c_prev, c, tanh_c, h)

Training uses lstm_forward_gates, lstm_backward_gates and adam_update; sampling (`generate`)
lstm_step, linear_step and softmax_draw.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charlstm.config import KERNEL_NAMES as CHOICES
from charlstm.config import cache_dir
from charlstm.errors import UsageError


@dataclass(frozen=True)
class Kernels:
    """One implementation's kernels (see `numpy_ref` for their arguments)."""

    name: str  # "numpy" or "numba"
    lstm_forward_gates: Callable[..., None]
    lstm_backward_gates: Callable[..., None]
    adam_update: Callable[..., None]
    warm_up: Callable[[Any], None]  # compile for a dtype now (numba); nothing to do for numpy
    lstm_step: Callable[..., None]  # one sampling step of an LSTM layer (product and gates)
    linear_step: Callable[..., None]  # the head of a sampling step
    softmax_draw: Callable[..., None]  # a draw from softmax(logits / temperature), inverse CDF


@functools.cache
def available() -> bool:
    """True when numba can be imported (it is, by this call: the first one takes a moment)."""
    if importlib.util.find_spec("numba") is None:
        return False
    try:
        import numba  # noqa: F401
    except Exception:  # installed but unusable, e.g. built for another NumPy
        return False
    return True


def resolve(name: str) -> str:
    """The implementation that `name` ("auto", "numpy" or "numba") stands for: "numpy" or "numba"."""
    if name not in CHOICES:
        raise UsageError(f"unknown kernels {name!r}; choose one of {', '.join(CHOICES)}")
    if name == "auto":
        return "numba" if available() else "numpy"
    if name == "numba" and not available():
        raise UsageError("the numba kernels need numba, which cannot be imported: pip install 'charlstm[fast]'")
    return name


def compiled_on_disk() -> bool:
    """True when numba is installed and the sampling kernels' compiled code is in the disk cache
    (a run on the numba kernels has compiled them): then loading them skips the compile. Looks at
    numba's cache index files, without importing numba."""
    if importlib.util.find_spec("numba") is None:
        return False
    folder = Path(os.environ.get("NUMBA_CACHE_DIR") or cache_dir() / "numba")
    module, kernel = "numba_lstm_math", "_lstm_step_fused"
    try:
        # numba names an index file after the file, the function and the line of its first decorator
        lines = Path(__file__).with_name(f"{module}.py").read_text(encoding="utf-8").splitlines()
        first = next(n for n, line in enumerate(lines) if line.startswith(f"def {kernel}("))
        while first > 0 and lines[first - 1].startswith("@"):
            first -= 1
        name = f"{module}.{kernel}-{first + 1}.py{sys.version_info.major}{sys.version_info.minor}.nbi"
        return any(folder.rglob(name))
    except (OSError, StopIteration):
        return False


def for_sampling(name: str) -> Kernels:
    """The kernels `charlstm sample --kernels name` steps on: "numpy", "numba", or "auto" — numba
    when its compiled sampling kernels are on disk already (`compiled_on_disk`), else NumPy. Even
    cached, numba's import and load take ~0.5 s, which short samples do not win back."""
    if name == "auto":
        return load("numba") if compiled_on_disk() and available() else numpy()
    return load(name)


def load(name: str = "auto") -> Kernels:
    """The kernels of `resolve(name)`, importing (for numba) the compiled module."""
    return _load(resolve(name))


@functools.cache
def _load(path: str) -> Kernels:
    if path == "numba":
        module = importlib.import_module("charlstm.nn.kernels.numba_impl")
        backward = module.lstm_backward_gates

        def lstm_backward_gates(gates, dh, dc_next, c_prev, tanh_c, h, work=None):
            backward(gates, dh, dc_next, c_prev, tanh_c, h)  # fused: needs no scratch

        return Kernels(
            path,
            module.lstm_forward_gates,
            lstm_backward_gates,
            module.adam_update,
            module.warm_up,
            module.lstm_step,
            module.linear_step,
            module.softmax_draw,
        )
    module = importlib.import_module("charlstm.nn.kernels.numpy_ref")
    return Kernels(
        path,
        module.lstm_forward_gates,
        module.lstm_backward_gates,
        module.adam_update,
        _nothing,
        module.lstm_step,
        module.linear_step,
        module.softmax_draw,
    )


def _nothing(dtype: Any) -> None:
    pass


def numpy() -> Kernels:
    """The NumPy kernels: the reference, and the default wherever no kernels are passed."""
    return _load("numpy")
