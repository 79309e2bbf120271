"""What every numba kernel module shares: the compile options, the disk cache, the thread count.

Importing this module imports numba (slow: import the kernels only when they are used).
`error_model="numpy"` keeps divisions free of zero checks, which would stop vectorisation.

Compiled code is cached on disk, in `<charlstm cache folder>/numba` unless NUMBA_CACHE_DIR is set
(numba then falls back to its own places); without any writable place the kernels are compiled in
memory, and a cache that fails to read or write is given up quietly. numba names a cache entry
after the file, the function and the line of its first decorator, and checks it against its own
file only: a kernel module calls no compiled function of another, so an edit never leaves a stale
kernel behind (the LSTM's tanh lives beside the gate math that inlines it).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from numba import get_num_threads, njit, set_num_threads
from numba.core import config

from charlstm.config import cache_dir

REASSOC = {"reassoc", "contract"}  # sums in any order (vectorised dot products), fused multiply-add
JIT_OPTIONS = {"fastmath": False, "error_model": "numpy", "boundscheck": False, "nogil": True}


class _QuietCache:
    """A dispatcher's disk cache that never fails a call: an error reading or writing it disables
    it (the kernel is then compiled in memory, as without a cache)."""

    def __init__(self, cache) -> None:
        self._cache = cache

    def load_overload(self, sig, target_context):
        try:
            return self._cache.load_overload(sig, target_context)
        except Exception:
            self._cache.disable()
            return None

    def save_overload(self, sig, data) -> None:
        try:
            self._cache.save_overload(sig, data)
        except Exception:
            self._cache.disable()

    def __getattr__(self, name: str):
        return getattr(self._cache, name)


@contextlib.contextmanager
def _charlstm_cache_dir() -> Iterator[None]:
    """numba's cache folder is charlstm's while the kernels are defined (numba keeps the folder a
    function was defined with), unless the user has chosen one with NUMBA_CACHE_DIR."""
    saved = config.CACHE_DIR
    if not saved:
        config.CACHE_DIR = str(cache_dir() / "numba")
    try:
        yield
    finally:
        config.CACHE_DIR = saved


def jit(fn: Callable | None = None, **options: Any) -> Callable:
    """njit with JIT_OPTIONS (`options` override them), cached on disk where any cache folder is
    writable. A decorator, bare or with options: `@jit` or `@jit(parallel=True)`."""
    if fn is None:
        return functools.partial(jit, **options)
    options = {**JIT_OPTIONS, **options}
    try:
        with _charlstm_cache_dir():
            kernel = njit(cache=True, **options)(fn)
    except (RuntimeError, OSError):  # no writable cache folder anywhere
        return njit(**options)(fn)
    if hasattr(kernel, "_cache"):
        kernel._cache = _QuietCache(kernel._cache)
    return kernel


_THREADS: list[int] = []


def get_threads() -> int:
    """The threads the sampling kernels' parallel loops run on now: numba's thread count, read
    once and then kept by `set_threads` (`numba.get_num_threads()` takes a lock, ~1 µs, and a
    sampling step asks three times). A `numba.set_num_threads` made elsewhere is not seen: the
    units are then still split in this many parts, which fewer threads run in turn (the result
    is the same: each unit's sums are one thread's)."""
    if not _THREADS:
        _THREADS.append(get_num_threads())
    return _THREADS[0]


def set_threads(n: int) -> None:
    """The threads of the sampling kernels' parallel loops (at most numba's NUMBA_NUM_THREADS)."""
    n = max(1, min(int(n), config.NUMBA_NUM_THREADS))
    set_num_threads(n)
    _THREADS[:] = [n]


def default_threads() -> int:
    """numba's own default: NUMBA_NUM_THREADS, the cores unless that variable says otherwise."""
    return config.NUMBA_NUM_THREADS
