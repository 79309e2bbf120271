"""Forward paths agree with each other; the model learns; shapes and names are PyTorch's."""

from __future__ import annotations

import math

import numpy as np

from charlstm.inference.generate import prime
from charlstm.nn import model, optim, stepping

from helpers import random_model


def test_step_by_step_equals_whole_window_forward():
    """Sampling steps one character at a time; training runs whole windows. Same hidden states."""
    V, H, L, T, B = 9, 8, 3, 12, 2
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (T, B)).astype(np.uint8)
    state0 = tuple((rng.standard_normal((L, B, H)) * 0.3).astype(np.float32) for _ in range(2))
    logits, final, _ = model.forward(params, config, x, state0)
    logits = logits.reshape(T, B, V).copy()

    stepper = stepping.prepare_stepper(params, config)
    state = state0
    for t in range(T):
        step_logits, state = stepping.step(stepper, x[t], state)
        np.testing.assert_allclose(step_logits, logits[t], rtol=1e-5, atol=1e-5)
    for a, b in zip(state, final):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_forward_reusing_a_cache_gives_identical_results():
    V, H, L, T, B = 7, 6, 2, 5, 3
    config, params = random_model(V, H, L, dtype=np.float32)
    rng = np.random.default_rng(1)
    x1, x2 = (rng.integers(0, V, (T, B)).astype(np.uint8) for _ in range(2))
    state = model.zero_state(config, B)
    fresh, _, _ = model.forward(params, config, x2, state)
    fresh = fresh.copy()
    _, _, cache = model.forward(params, config, x1, state)
    reused, _, cache2 = model.forward(params, config, x2, state, cache)
    assert cache2 is cache
    np.testing.assert_array_equal(reused, fresh)


def test_prime_with_seed_equals_stepping_through_it():
    V, H, L = 6, 5, 2
    config, params = random_model(V, H, L, dtype=np.float32)
    ids = np.array([1, 4, 2, 2, 5], dtype=np.uint8)
    logits, state = prime(params, config, ids, num_samples=2)
    stepper = stepping.prepare_stepper(params, config)
    s = model.zero_state(config, 1)
    for i in ids:
        step_logits, s = stepping.step(stepper, np.array([i]), s)
    np.testing.assert_allclose(logits[0], step_logits[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits[1], step_logits[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state[0][:, :1], s[0], rtol=1e-5, atol=1e-6)


def test_parameter_names_and_shapes_follow_pytorch():
    config = model.ModelConfig(vocab_size=65, hidden_size=32, num_layers=2)
    shapes = model.param_shapes(config)
    assert shapes == {
        "lstm.weight_ih_l0": (128, 65),
        "lstm.weight_hh_l0": (128, 32),
        "lstm.bias_ih_l0": (128,),
        "lstm.bias_hh_l0": (128,),
        "lstm.weight_ih_l1": (128, 32),
        "lstm.weight_hh_l1": (128, 32),
        "lstm.bias_ih_l1": (128,),
        "lstm.bias_hh_l1": (128,),
        "head.weight": (65, 32),
        "head.bias": (65,),
    }
    params = model.init_params(config, seed=3)
    assert all(p.dtype == np.float32 for p in params.values())
    np.testing.assert_array_equal(params["lstm.bias_ih_l0"][32:64], 1.0)  # forget gate
    assert model.num_params(config) == sum(p.size for p in params.values())


def test_init_is_reproducible_and_seed_dependent():
    config = model.ModelConfig(vocab_size=10, hidden_size=8, num_layers=2)
    a, b, c = model.init_params(config, 1), model.init_params(config, 1), model.init_params(config, 2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["lstm.weight_hh_l0"], c["lstm.weight_hh_l0"])


def test_tiny_sequence_is_memorised():
    """A 2-layer model trained by the real loop pieces drives the loss far below ln V."""
    text = "hello world, hello charlstm. " * 4
    chars = sorted(set(text))
    ids = np.array([chars.index(ch) for ch in text], dtype=np.uint8)
    V = len(chars)
    config = model.ModelConfig(vocab_size=V, hidden_size=32, num_layers=2)
    params = model.init_params(config, seed=0)
    opt = optim.Adam(params)
    x, y = ids[:-1, None], ids[1:, None]  # one stream, one window of T = len - 1
    state = model.zero_state(config, 1)
    cache = None
    for _ in range(150):
        loss, grads, _, cache = model.loss_and_grads(params, config, x, y, state, cache)
        optim.clip_grad_norm(grads, 5.0)
        opt.step(params, grads, 1e-2)
    assert loss < 0.1 * math.log(V), loss


def test_dropout_is_inverted_and_only_in_training():
    V, H, L, T, B = 5, 64, 2, 4, 8
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.3)
    x = np.zeros((T, B), dtype=np.uint8)
    state = model.zero_state(config, B)
    plain, _, _ = model.forward(params, config, x, state)
    plain = plain.copy()
    dropped, _, cache = model.forward(params, config, x, state, dropout=0.5, rng=np.random.default_rng(0))
    mask = cache.masks[0]
    assert set(np.unique(mask)) == {0.0, 2.0}  # kept units are scaled by 1/(1-p)
    assert abs(float((mask == 0).mean()) - 0.5) < 0.05
    assert not np.allclose(plain, dropped)


def test_public_api_is_importable_lazily():
    import subprocess
    import sys

    code = "import sys, charlstm; assert 'numpy' not in sys.modules; from charlstm import train, load_checkpoint, sample, ModelConfig; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
