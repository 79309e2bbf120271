"""Per-character surprisal: how many bits the model needed for each character it predicted.

After step t the logits predict character t + 1, so a text of N characters has N − 1 scored
characters, ids[1:]; the first one is given, not predicted. Their mean surprisal is the loss in
bits per character that `evaluate(..., B=1)` reports for the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charlstm.insight.probe.tracing import Trace
from charlstm.units import nats_to_bits


@dataclass(frozen=True)
class Surprisal:
    """Surprisal of ids[1:] and the model's top guesses for each of those positions."""

    targets: np.ndarray  # (N-1,) ids of the scored characters, ids[1:]
    bits: np.ndarray  # (N-1,) −log2 p(target | the characters before it)
    guesses: np.ndarray  # (N-1, k) ids of the k most likely characters, most likely first
    probs: np.ndarray  # (N-1, k) their probabilities

    @property
    def mean_bits(self) -> float:
        return float(self.bits.mean())


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p (N, V) from logits (N, V), in float64."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def surprisal(tr: Trace, top: int = 0) -> Surprisal:
    """Bits of every predicted character of the trace, and the `top` guesses at each position."""
    if len(tr.ids) < 2:
        raise ValueError("surprisal needs at least two characters")
    logp = log_softmax(tr.logits[:-1])  # (N-1, V)
    targets = np.asarray(tr.ids[1:], np.intp)
    bits = nats_to_bits(-logp[np.arange(len(targets)), targets])
    k = min(top, logp.shape[1])
    guesses = np.argsort(-logp, axis=1, kind="stable")[:, :k]  # (N-1, k)
    probs = np.exp(np.take_along_axis(logp, guesses, axis=1))
    return Surprisal(targets, bits, guesses, probs)
