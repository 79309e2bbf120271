"""Loss of a model on a whole text, exactly as training measures it: the ids are cut into B
contiguous streams, the state is carried across windows, and every character is scored once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from charlstm.nn import model
from charlstm.nn.kernels import Kernels
from charlstm.nn.model import ModelConfig
from charlstm.nn.ops import cross_entropy_sum
from charlstm.text.corpus import iter_windows, stream_length
from charlstm.units import nats_to_bits


@dataclass(frozen=True)
class Evaluation:
    """Mean negative log-likelihood over `chars` scored characters."""

    loss: float  # nats per character
    chars: int

    @property
    def bits_per_char(self) -> float:
        return nats_to_bits(self.loss)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


def evaluate(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    ids: np.ndarray,
    B: int = 64,
    T: int = 100,
    cache: model.Cache | None = None,
    kernels: Kernels | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Score every character of `ids` (N,) but the up to B−1 left over by the stream layout.
    Fewer streams are used when the text is shorter than B+1 characters. Passing the training
    loop's cache lets evaluation reuse its buffers instead of allocating a second set.
    `on_progress(scored, to_score)` is called after every window, in characters."""
    B = max(1, min(B, len(ids) - 1))
    if stream_length(len(ids), B) < 1:
        raise ValueError("evaluation needs at least two characters")
    state = model.zero_state(config, B)
    total, count = 0.0, 0
    for x, y in iter_windows(ids, B, T):
        logits, state, cache = model.forward(params, config, x, state, cache, kernels=kernels)
        total += cross_entropy_sum(logits, y.reshape(-1))
        count += y.size
        if on_progress is not None:
            on_progress(count, B * stream_length(len(ids), B))
    return Evaluation(total / count, count)
