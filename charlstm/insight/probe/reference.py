"""The model computed plainly from each cell's plain `step` and `step_back` (`charlstm.nn.cells.Cell`):
one step at a time, one-hot inputs as real vectors, the input projection, the head and the
softmax written out, every gradient summed by hand — no buffers, no batching over time, no
kernels. The fast model (`model.forward` / `model.backward`) is checked against it, and both
against central differences (`finitediff.gradcheck`, with `reference_grads` for this one) and
PyTorch.

Shapes: ids (T, B); a state is a tuple of (L, B, H) arrays, one per name of the cell's
STATE_NAMES; records[k][t] = (x, rec), the input (B, D) and the plain step's record of layer k at
step t.
"""

from __future__ import annotations

import numpy as np

from charlstm.nn import model
from charlstm.nn.model import ModelConfig, State

Records = tuple[
    list[list[tuple[np.ndarray, dict[str, np.ndarray]]]], np.ndarray
]  # (per layer and step, the head's input)


def forward(
    params: dict[str, np.ndarray], config: ModelConfig, ids: np.ndarray, state0: State
) -> tuple[np.ndarray, State, Records]:
    """Logits (T·B, V), the final state and the records, for ids (T, B) from state0."""
    cell = model.cell_of(config)
    T = ids.shape[0]
    inputs = [np.eye(config.vocab_size)[ids[t]] for t in range(T)]  # one-hot (B, V) per step
    records, final = [], []
    for k in range(config.num_layers):
        W_ih, W_hh, b_ih, b_hh = model.layer_params(params, config, k)
        state, layer = tuple(s[k] for s in state0), []
        for t in range(T):
            state, rec = cell.step(inputs[t] @ W_ih.T + b_ih, state, W_hh, b_hh)
            layer.append((inputs[t], rec))
            inputs[t] = state[0]  # the input of the layer above
        records.append(layer)
        final.append(state)
    top = np.concatenate(inputs)  # (T·B, H), rows in (t, b) order
    logits = top @ params["head.weight"].T + params["head.bias"]
    return logits, tuple(np.stack([f[j] for f in final]) for j in range(len(state0))), (records, top)


def loss_and_dlogits(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of y (N,) under softmax(logits) (N, V), and its gradient."""
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    N = len(y)
    dlogits = probs.copy()
    dlogits[np.arange(N), y] -= 1
    return float(-np.mean(np.log(probs[np.arange(N), y]))), dlogits / N


def backward(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    dlogits: np.ndarray,
    records: Records,
    dstateT: State | None = None,
) -> tuple[dict[str, np.ndarray], State]:
    """Every parameter's gradient and dstate0, from dlogits (T·B, V) and the gradient at the
    final state (None: zero)."""
    cell = model.cell_of(config)
    layers, top = records
    T, L = len(layers[0]), config.num_layers
    B, H = layers[0][0][0].shape[0], config.hidden_size
    dstateT = dstateT if dstateT is not None else tuple(np.zeros((L, B, H)) for _ in cell.STATE_NAMES)
    grads = {"head.weight": dlogits.T @ top, "head.bias": dlogits.sum(axis=0)}
    dh_seq = np.split(dlogits @ params["head.weight"], T)  # (B, H) per step
    dstate0: list[tuple[np.ndarray, ...]] = []
    for k in reversed(range(L)):
        W_ih, W_hh, _, _ = model.layer_params(params, config, k)
        g: dict[str, np.ndarray | float] = {"weight_ih": 0.0, "weight_hh": 0.0, "bias_ih": 0.0, "bias_hh": 0.0}
        dstate = [d[k] for d in dstateT]
        for t in reversed(range(T)):
            x, rec = layers[k][t]
            s = cell.step_back((dstate[0] + dh_seq[t], *dstate[1:]), rec, W_hh)
            g["weight_ih"] += s.dxa.T @ x
            g["bias_ih"] += s.dxa.sum(axis=0)
            g["weight_hh"] += s.dW_hh
            g["bias_hh"] += s.db_hh
            dh_seq[t] = s.dxa @ W_ih  # dx: the gradient reaching the layer below
            dstate = list(s.dstate_prev)
        grads.update({f"{config.cell}.{name}_l{k}": v for name, v in g.items()})
        dstate0.insert(0, tuple(dstate))
    ordered = {name: grads[name] for name in model.param_shapes(config)}
    return ordered, tuple(np.stack([d[j] for d in dstate0]) for j in range(len(dstateT)))
