"""Plain reference implementations, written straight from the equations, with no speed tricks:
one step at a time, one-hot inputs as real vectors, explicit sigmoids, every gradient by hand.
The fast code in `charlstm` is checked against these (and against finite differences, and against
PyTorch where it is installed), so the correctness of each cell does not rest on PyTorch.

Shapes: x (B, D), h and c (B, H); weights as PyTorch stores them, gate blocks stacked on rows.
"""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def split(a: np.ndarray, n: int) -> list[np.ndarray]:
    return np.split(a, n, axis=1)


# ------------------------------------------------------------------------------------- the cells
# step(x, state, p) -> (state, cache); back(dh, dstate_rest, cache, p) -> (dx, dp, dstate_prev)
# p = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}; state = (h, c) or (h,)


def lstm_step(x, state, p):
    h_prev, c_prev = state
    a = x @ p["weight_ih"].T + p["bias_ih"] + h_prev @ p["weight_hh"].T + p["bias_hh"]
    a_i, a_f, a_g, a_o = split(a, 4)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return (h, c), (x, h_prev, c_prev, i, f, g, o, c)


def lstm_back(dh, drest, cache, p):
    (dc,) = drest
    x, h_prev, c_prev, i, f, g, o, c = cache
    tc = np.tanh(c)
    do = dh * tc
    dc = dc + dh * o * (1 - tc**2)
    di, df, dg = dc * g, dc * c_prev, dc * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1)
    return _affine_back(da, da, x, h_prev, p), (da @ p["weight_hh"], dc * f)


def gru_step(x, state, p):
    (h_prev,) = state
    W_ir, W_iz, W_in = np.split(p["weight_ih"], 3)
    W_hr, W_hz, W_hn = np.split(p["weight_hh"], 3)
    b_ir, b_iz, b_in = np.split(p["bias_ih"], 3)
    b_hr, b_hz, b_hn = np.split(p["bias_hh"], 3)
    r = sigmoid(x @ W_ir.T + b_ir + h_prev @ W_hr.T + b_hr)
    z = sigmoid(x @ W_iz.T + b_iz + h_prev @ W_hz.T + b_hz)
    hn = h_prev @ W_hn.T + b_hn
    n = np.tanh(x @ W_in.T + b_in + r * hn)
    h = (1 - z) * n + z * h_prev
    return (h,), (x, h_prev, r, z, n, hn)


def gru_back(dh, drest, cache, p):
    x, h_prev, r, z, n, hn = cache
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    da_n = dn * (1 - n**2)
    dr = da_n * hn
    da_r, da_z = dr * r * (1 - r), dz * z * (1 - z)
    dxa = np.concatenate([da_r, da_z, da_n], axis=1)  # gradient of W_ih x + b_ih
    dhh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # gradient of W_hh h + b_hh
    dh_prev = dh * z + dhh @ p["weight_hh"]
    return _affine_back(dxa, dhh, x, h_prev, p), (dh_prev,)


def rnn_step(x, state, p):
    (h_prev,) = state
    h = np.tanh(x @ p["weight_ih"].T + p["bias_ih"] + h_prev @ p["weight_hh"].T + p["bias_hh"])
    return (h,), (x, h_prev, h)


def rnn_back(dh, drest, cache, p):
    x, h_prev, h = cache
    da = dh * (1 - h**2)
    return _affine_back(da, da, x, h_prev, p), (da @ p["weight_hh"],)


def _affine_back(dxa, dhh, x, h_prev, p):
    """dx and the parameter gradients of W_ih x + b_ih (gradient dxa) and W_hh h + b_hh (dhh)."""
    dp = {
        "weight_ih": dxa.T @ x,
        "weight_hh": dhh.T @ h_prev,
        "bias_ih": dxa.sum(axis=0),
        "bias_hh": dhh.sum(axis=0),
    }
    return dxa @ p["weight_ih"], dp


CELLS = {"lstm": (lstm_step, lstm_back), "gru": (gru_step, gru_back), "rnn": (rnn_step, rnn_back)}


# ------------------------------------------------------------------------------------- the model


def layer(params, cell, k):
    return {name: params[f"{cell}.{name}_l{k}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def forward(params, cell, L, V, ids, state0):
    """Logits (T·B, V), every layer's outputs, final state and step caches, for ids (T, B) from
    state0: a tuple of (L, B, H) arrays."""
    step, _ = CELLS[cell]
    T, B = ids.shape
    inputs = [np.eye(V)[ids[t]] for t in range(T)]  # one-hot (B, V) per step
    caches, final = [], []
    for k in range(L):
        p = layer(params, cell, k)
        state = tuple(s[k] for s in state0)
        outputs, layer_caches = [], []
        for t in range(T):
            state, cache = step(inputs[t], state, p)
            outputs.append(state[0])
            layer_caches.append(cache)
        caches.append(layer_caches)
        final.append(state)
        inputs = outputs
    top = np.concatenate(inputs)  # (T·B, H), rows in (t, b) order
    logits = top @ params["head.weight"].T + params["head.bias"]
    stateT = tuple(np.stack([f[j] for f in final]) for j in range(len(state0)))
    return logits, stateT, (caches, top)


def loss_and_dlogits(logits, y):
    """Mean cross-entropy of y (N,) under softmax(logits) and its gradient."""
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    N = len(y)
    loss = -np.mean(np.log(probs[np.arange(N), y]))
    dlogits = probs.copy()
    dlogits[np.arange(N), y] -= 1
    return loss, dlogits / N


def backward(params, cell, L, dlogits, caches, dstateT):
    """Every parameter's gradient and dstate0, from dlogits (T·B, V) and the gradient at the
    final state (a tuple of (L, B, H) arrays)."""
    _, back = CELLS[cell]
    layer_caches, top = caches
    T = len(layer_caches[0])
    grads = {"head.weight": dlogits.T @ top, "head.bias": dlogits.sum(axis=0)}
    dh_seq = np.split(dlogits @ params["head.weight"], T)  # (B, H) per step
    dstate0 = []
    for k in reversed(range(L)):
        p = layer(params, cell, k)
        g = {name: np.zeros_like(v) for name, v in p.items()}
        dh, *drest = (d[k].copy() for d in dstateT)
        dx_seq = [None] * T
        for t in reversed(range(T)):
            (dx_seq[t], dp), (dh, *drest) = back(dh + dh_seq[t], drest, layer_caches[k][t], p)
            for name in g:
                g[name] += dp[name]
        grads.update({f"{cell}.{name}_l{k}": v for name, v in g.items()})
        dstate0.insert(0, (dh, *drest))
        dh_seq = dx_seq
    return grads, tuple(np.stack([d[j] for d in dstate0]) for j in range(len(dstateT)))
