"""The per-step LSTM gate math and the Adam update, in one of two implementations:

- "numpy" (`numpy_ref`): plain NumPy, the readable reference, always there;
- "numba" (`numba_impl`): the same math fused into one compiled pass per kernel, when numba is
  installed (`pip install 'charlstm[fast]'`).

"auto" picks numba when it can be imported. Nothing here imports numba or the kernels until asked:

    k = kernels.load("auto")
    k.lstm_forward_gates(a, c_prev, c, tanh_c, h)
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from charlstm.errors import UsageError

CHOICES = ("auto", "numpy", "numba")


@dataclass(frozen=True)
class Kernels:
    """One implementation's kernels (see `numpy_ref` for their arguments)."""

    name: str  # "numpy" or "numba"
    lstm_forward_gates: Callable[..., None]
    lstm_backward_gates: Callable[..., None]
    adam_update: Callable[..., None]
    warm_up: Callable[[Any], None]  # compile for a dtype now (numba); nothing to do for numpy


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


def load(name: str = "auto") -> Kernels:
    """The kernels of `resolve(name)`, importing (for numba) the compiled module."""
    path = resolve(name)
    if path == "numba":
        module = importlib.import_module("charlstm.kernels.numba_impl")
        warm_up = module.warm_up
    else:
        module = importlib.import_module("charlstm.kernels.numpy_ref")
        warm_up = _nothing
    return Kernels(path, module.lstm_forward_gates, module.lstm_backward_gates, module.adam_update, warm_up)


def _nothing(dtype: Any) -> None:
    pass
