"""What the views read: one forward over a text with a single stream (B = 1), copying every
layer's gates and states, and the logits of each step. Nothing here touches a training run's
state: the forward has its own fresh cache, and the parameters are only read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charlstm.nn import model
from charlstm.nn.model import ModelConfig
from charlstm.text.corpus import Vocab


def quantities(config: ModelConfig) -> tuple[str, ...]:
    """The per-unit quantities `trace` records for the model's cell, the views' default first."""
    return model.cell_of(config).QUANTITIES


def sigmoids(config: ModelConfig) -> frozenset[str]:
    """The quantities of the model's cell that lie in (0, 1) (gates); the others are tanh-like,
    in (−1, 1), or unbounded (the LSTM's c)."""
    return model.cell_of(config).SIGMOID


@dataclass(frozen=True)
class TextIds:
    """The part of a text a view traces: the characters the model knows, cut at `max_chars`."""

    ids: np.ndarray  # (N,) in the vocabulary's dtype
    text: str  # the N characters, decoded from ids
    total: int  # characters the model knows in the whole text
    unknown: int  # characters left out because the vocabulary lacks them


def text_ids(vocab: Vocab, text: str, max_chars: int | None) -> TextIds:
    """The known characters of `text` (unknown ones are left out, as `eval` does), at most
    `max_chars` of them."""
    ids, unknown = vocab.encode_known(text)
    total = len(ids)
    if max_chars is not None:
        ids = ids[:max_chars]
    return TextIds(ids, vocab.decode(ids), total, unknown)


@dataclass(frozen=True)
class Trace:
    """One forward over ids (N,) from the zero state, one stream. Step t has read ids[t]."""

    ids: np.ndarray  # (N,)
    layers: tuple[dict[str, np.ndarray], ...]  # per layer {quantity: (N, H)}, see `quantities`
    logits: np.ndarray  # (N, V) float64: the prediction of ids[t + 1] after step t
    sigmoid: frozenset[str]  # the quantities in (0, 1), see `sigmoids`

    def values(self, layer: int, what: str) -> np.ndarray:
        """(N, H) values of one quantity of one layer."""
        return self.layers[layer][what]


def trace(params: dict[str, np.ndarray], config: ModelConfig, ids: np.ndarray) -> Trace:
    """Run the model over ids (N,) with B = 1 and record, per layer, copies of the cell's
    activations (`Cell.activations`) and the logits. Dropout is off, as in evaluation."""
    if len(ids) < 1:
        raise ValueError("trace needs at least one character")
    dtype = params["head.weight"].dtype
    x = np.asarray(ids)[:, None]  # (N, 1)
    logits, _, cache = model.forward(params, config, x, model.zero_state(config, 1, dtype), model.Cache())
    cell = model.cell_of(config)
    layers = tuple(
        {name: np.ascontiguousarray(v[:, 0, :]) for name, v in cell.activations(cache.layers[k]).items()}
        for k in range(config.num_layers)
    )
    return Trace(np.asarray(ids).copy(), layers, logits.astype(np.float64), cell.SIGMOID)
