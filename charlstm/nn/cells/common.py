"""Helpers shared by the cells: initialisation and the recurrent GEMM operand with its bias row."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from charlstm.nn.ops import scaled_transpose


def uniform_layer(rng: np.random.Generator, G: int, D: int, H: int, first: bool, dtype: type) -> dict[str, np.ndarray]:
    """PyTorch's initialisation, Uniform(±1/√H) weights, but zero biases, and N(0, 1) input
    weights in the first layer: a one-hot input selects one column, which acts as a character
    embedding, initialised like nn.Embedding. (At ±1/√H the input signal is drowned by the
    recurrent term and training idles on the unigram plateau for ~100 steps longer.)"""
    bound = 1.0 / math.sqrt(H)
    W_ih: np.ndarray
    if first:
        W_ih = rng.standard_normal(size=(G, D)).astype(dtype)
    else:
        W_ih = rng.uniform(-bound, bound, size=(G, D)).astype(dtype)
    W_hh: np.ndarray = rng.uniform(-bound, bound, size=(G, H)).astype(dtype)
    return {"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": np.zeros(G, dtype), "bias_hh": np.zeros(G, dtype)}


def recurrent_operand(
    W_hh: np.ndarray, b: np.ndarray, scale: np.ndarray | None, out: np.ndarray, pad: np.ndarray
) -> np.ndarray:
    """[s ⊙ W_hh^T; s ⊙ b] (H+1, G): with a column of ones after h, [h_{t-1}, 1] @ this is the
    recurrent term and the bias in one GEMM, and the weight-gradient GEMM over [h, 1] yields the
    bias gradient as its last column."""
    H = W_hh.shape[1]
    scaled_transpose(W_hh, scale, out[:H], pad)
    if scale is None:
        np.copyto(out[H], b)
    else:
        np.multiply(b, scale, out=out[H])
    return out


def hidden_with_ones(T: int, B: int, H: int, dtype: np.dtype) -> np.ndarray:
    """(T+1, B, H+1) buffer for h_0..h_T, each row followed by a 1 (see `recurrent_operand`)."""
    h = np.empty((T + 1, B, H + 1), dtype)
    h[:, :, H] = 1
    return h


def recurrent_grads(dhh: np.ndarray, h: np.ndarray, cache: Any) -> dict[str, np.ndarray]:
    """The backward of `recurrent_operand` over a window: one GEMM d(hh)^T @ [h_{t-1}, 1] gives
    dW_hh (G, H) and, from the ones column, db_hh (G,). dhh: (T, B, G) the gradient of each step's
    W_hh h_{t-1} + b_hh; h: (T+1, B, H+1) with its ones column. bias_ih gets the same sum, which is
    its gradient when both biases enter the pre-activation alike (LSTM, RNN; the GRU overwrites
    it). The arrays are buffers of `cache` (fields `grads`, `dWb`), made on first use."""
    T, B, G = dhh.shape
    H = h.shape[2] - 1
    if cache.grads is None:
        cache.grads = {
            "weight_hh": np.empty((G, H), dhh.dtype),
            "bias_ih": np.empty(G, dhh.dtype),
            "bias_hh": np.empty(G, dhh.dtype),
        }
        cache.dWb = np.empty((G, H + 1), dhh.dtype)
    grads = cache.grads
    dWb = np.matmul(dhh.reshape(T * B, G).T, h[:T].reshape(T * B, H + 1), out=cache.dWb)  # (G, H+1)
    np.copyto(grads["weight_hh"], dWb[:, :H])
    np.copyto(grads["bias_hh"], dWb[:, H])
    np.copyto(grads["bias_ih"], dWb[:, H])
    return dict(grads)
