"""Helpers shared by the cells: initialisation and the recurrent GEMM operand with its bias row."""

from __future__ import annotations

import math

import numpy as np

from charlstm.ops import scaled_transpose


def uniform_layer(rng: np.random.Generator, G: int, D: int, H: int, first: bool, dtype: type) -> dict[str, np.ndarray]:
    """PyTorch's initialisation, Uniform(±1/√H) weights, but zero biases, and N(0, 1) input
    weights in the first layer: a one-hot input selects one column, which acts as a character
    embedding, initialised like nn.Embedding. (At ±1/√H the input signal is drowned by the
    recurrent term and training idles on the unigram plateau for ~100 steps longer.)"""
    bound = 1.0 / math.sqrt(H)
    if first:
        W_ih = rng.standard_normal(size=(G, D)).astype(dtype)
    else:
        W_ih = rng.uniform(-bound, bound, size=(G, D)).astype(dtype)
    W_hh = rng.uniform(-bound, bound, size=(G, H)).astype(dtype)
    return {"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": np.zeros(G, dtype), "bias_hh": np.zeros(G, dtype)}


def recurrent_operand(W_hh: np.ndarray, b: np.ndarray, scale: np.ndarray | None, out: np.ndarray, pad: np.ndarray) -> np.ndarray:
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
