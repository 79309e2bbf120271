"""The kernels of `numpy_ref`, compiled with numba — gathered here for `charlstm.nn.kernels.load`
and `threads`, from the modules that compute them:

    numba_lstm_math the LSTM's gate math: training's forward and backward, sampling's fused step
    numba_adam      the Adam update
    numba_sampling  the head of a sampling step and the draw from the softmax
    numba_jit       what they share: compile options, the disk cache, the thread count

Importing this module imports numba (slow: do it only when the kernels are used).
"""

from __future__ import annotations

import numpy as np

from charlstm.nn.kernels.numba_adam import adam_update
from charlstm.nn.kernels.numba_jit import default_threads, get_threads, set_threads
from charlstm.nn.kernels.numba_lstm_math import FUSED_MAX_N, lstm_backward_gates, lstm_forward_gates, lstm_step
from charlstm.nn.kernels.numba_sampling import linear_step, softmax_draw

__all__ = [
    "adam_update",
    "default_threads",
    "get_threads",
    "linear_step",
    "lstm_backward_gates",
    "lstm_forward_gates",
    "lstm_step",
    "set_threads",
    "softmax_draw",
    "warm_up",
]


def warm_up(dtype: np.dtype) -> None:
    """Compile (or load from the disk cache) the kernels for `dtype` with the argument layouts that
    training passes — contiguous arrays, and h a view of a (B, H+1) buffer — and sampling's
    (sampling loads its kernels on first use: it needs no warm-up, but this compiles them once)."""
    B, H = 2, 3
    a = np.zeros((B, 4 * H), dtype)
    state = [np.zeros((B, H), dtype) for _ in range(4)]
    h = np.zeros((B, H + 1), dtype)[:, :H]
    lstm_forward_gates(a, state[0], state[1], state[2], h)
    lstm_backward_gates(a, state[0], state[1], state[2], state[3], h)
    p, g, m, v = (np.zeros(4, dtype) for _ in range(4))
    adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
    for N in (1, 2, FUSED_MAX_N + 1):  # sampling: each path of lstm_step and linear_step
        z, c = np.zeros((2 * H, N), dtype), np.zeros((H, N), dtype)
        scratch = (
            np.zeros((4 * H, N), dtype),
            np.zeros((N, 4 * H), dtype),
            np.zeros((N, 2 * H), dtype),
            np.zeros((H, N), dtype),
        )
        rows = np.zeros(N, np.intp)
        for bias in (np.zeros((5, 4 * H), dtype), np.zeros((1, 4 * H), dtype)):
            lstm_step(np.zeros((4 * H, H), dtype), bias, rows, z[H:], c, *scratch)
            lstm_step(np.zeros((4 * H, 2 * H), dtype), bias, rows, z, c, *scratch)
        linear_step(np.zeros((5, H), dtype), z[H:], np.zeros((5, 1), dtype), np.zeros((5, N), dtype))
