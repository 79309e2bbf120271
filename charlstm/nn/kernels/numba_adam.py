"""The Adam update compiled with numba: `numpy_ref.adam_update` in one pass over the flat arrays."""

from __future__ import annotations

import math

import numpy as np

from charlstm.nn.kernels.numba_jit import jit


@jit
def _adam(p, g, m, v, beta1, beta2, inv_sqrt_bc2, eps, step):
    """The update on flat arrays, with the scalars in their dtype (1/√(1 − β2ᵗ), lr / (1 − β1ᵗ))."""
    for k in range(p.size):
        g_k = g[k]
        m_k = (m[k] - g_k) * beta1 + g_k
        g2 = g_k * g_k
        v_k = (v[k] - g2) * beta2 + g2
        m[k] = m_k
        v[k] = v_k
        p[k] -= m_k / (np.sqrt(v_k) * inv_sqrt_bc2 + eps) * step


def adam_update(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    t: int,
) -> None:
    """`numpy_ref.adam_update`, fused (g is left unchanged). p, g, m, v: C-contiguous, one shape."""
    if not (p.flags.c_contiguous and g.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        raise ValueError("adam_update needs C-contiguous arrays")
    real = p.dtype.type
    _adam(
        p.reshape(-1),
        g.reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        real(beta1),
        real(beta2),
        real(1.0 / math.sqrt(1.0 - beta2**t)),
        real(eps),
        real(lr / (1.0 - beta1**t)),
    )
