"""Dropout per window (locked) and weight drop (DropConnect on W_hh): the masks' shape and scale,
gradients by finite differences with the masks fixed, PyTorch autograd on the same weights and
masks, a training step against a hand-built one, and checkpoints that hold the plain weights."""

from __future__ import annotations

import numpy as np
import pytest

from charlstm.config import TrainConfig
from charlstm.engines.numpy_engine import NumpyEngine
from charlstm.inference.loss import evaluate
from charlstm.insight.probe.finitediff import TOLERANCE, max_error, numeric_grad
from charlstm.nn import model
from charlstm.nn.cells import CELLS
from charlstm.nn.ops import softmax_cross_entropy
from charlstm.store import checkpoint
from charlstm.text.corpus import load_corpus, split
from charlstm.training.loop import train

from helpers import CELL_NAMES, random_model

LEVERS = model.Dropout(p=0.4, mask="window", weight_hh=0.3)


def problem(cell: str, V=5, H=4, L=2, T=5, B=3, seed=3):
    config, params = random_model(V, H, L, seed=seed, cell=cell)
    rng = np.random.default_rng(seed + 1)
    x = rng.integers(0, V, (T, B)).astype(np.uint8)
    y = rng.integers(0, V, (T, B)).astype(np.uint8)
    return config, params, x, y


def dropped_loss(params, config, x, y, drop, cache=None):
    """Loss, dlogits and cache of a forward whose masks are drawn from the same seed every time:
    the masks are fixed across calls."""
    state = model.zero_state(config, x.shape[1], np.float64)
    logits, _, cache = model.forward(params, config, x, state, cache, drop, np.random.default_rng(11))
    loss, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
    return loss, dlogits, cache


def test_window_masks_are_one_per_stream_shared_by_the_steps_and_inverted():
    V, H, L, T, B, p = 5, 64, 2, 6, 8, 0.5
    config, params = random_model(V, H, L, dtype=np.float32, scale=0.3)
    x = np.random.default_rng(0).integers(0, V, (T, B)).astype(np.uint8)
    state = model.zero_state(config, B)
    _, _, cache = model.forward(params, config, x, state, None, model.Dropout(p, "window"), np.random.default_rng(0))
    for k in range(L):
        mask, out = cache.masks[k], cache.dropped[k]
        h = CELLS["lstm"].activations(cache.layers[k])["h"]  # (T, B, H), the layer's output
        assert mask.shape == (B, H) and set(np.unique(mask)) == {0.0, 1 / (1 - p)}
        assert abs(float((mask == 0).mean()) - p) < 0.1
        np.testing.assert_array_equal(out, h * mask)  # every step, the same mask
        assert ((out == 0) == (mask == 0)).all(axis=(1, 2)).all()  # the same units dropped at every step
    _, _, step_cache = model.forward(params, config, x, state, None, model.Dropout(p, "step"), np.random.default_rng(0))
    assert step_cache.masks[0].shape == (T, B, H)


def test_weight_drop_masks_W_hh_once_per_window_and_leaves_the_weights_alone():
    config, params = random_model(5, 8, 2, dtype=np.float32, scale=0.3)
    before = {k: v.copy() for k, v in params.items()}
    x = np.zeros((4, 3), np.uint8)
    _, _, cache = model.forward(
        params, config, x, model.zero_state(config, 3), None, model.Dropout(weight_hh=0.5), np.random.default_rng(1)
    )
    for k in range(2):
        W = params[f"lstm.weight_hh_l{k}"]
        mask = cache.hh_masks[k]
        assert mask.shape == W.shape and set(np.unique(mask)) == {0.0, 2.0}
        np.testing.assert_array_equal(cache.layers[k].W_hh, W * mask)  # what the cell computed with
        assert cache.masks[k] is None  # no output dropout asked for
    for k, v in params.items():
        np.testing.assert_array_equal(v, before[k])
    _, _, again = model.forward(params, config, x, model.zero_state(config, 3), cache)  # evaluation: nothing dropped
    assert all(m is None for m in again.hh_masks) and again.layers[0].W_hh is params["lstm.weight_hh_l0"]


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradients_with_window_dropout_and_weight_drop_match_finite_differences(cell):
    """The gradient of every plain weight (W_hh included: the cell sees W_hh ⊙ mask), masks fixed."""
    config, params, x, y = problem(cell)
    _, dlogits, cache = dropped_loss(params, config, x, y, LEVERS)
    assert all((m == 0).any() for m in cache.masks) and all((m == 0).any() for m in cache.hh_masks)
    grads, _ = model.backward(params, config, dlogits, cache)
    grads = {k: v.copy() for k, v in grads.items()}
    for name, p in params.items():
        err = max_error(grads[name], numeric_grad(lambda: dropped_loss(params, config, x, y, LEVERS)[0], p))
        assert err < TOLERANCE, f"{cell} {name}: error {err:.2e}"


# ----------------------------------------------------------------------------- against PyTorch


def torch_masked_loss(torch, params, config, x, y, masks, hh_masks):
    """The same model built by hand in PyTorch, one single-layer module per layer: layer k runs
    with weight_hh_l0 = W_hh ⊙ hh_masks[k] (torch.func.functional_call) and its output times
    masks[k] ((B, H), every step); autograd gives the gradients of the plain weights."""
    cell, V, H = config.cell, config.vocab_size, config.hidden_size
    make = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    inp = torch.nn.functional.one_hot(torch.from_numpy(x.astype(np.int64)), V).double()
    for k in range(config.num_layers):
        layer = make(V if k == 0 else H, H, 1).double()
        weights = {f"{n}_l0": leaves[f"{cell}.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        weights["weight_hh_l0"] = weights["weight_hh_l0"] * torch.from_numpy(hh_masks[k])
        out, _ = torch.func.functional_call(layer, weights, (inp,))
        inp = out * torch.from_numpy(masks[k])
    logits = inp.reshape(-1, H) @ leaves["head.weight"].T + leaves["head.bias"]
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y.astype(np.int64)).reshape(-1))
    loss.backward()
    return loss.item(), leaves


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradients_match_torch_autograd_on_the_same_weights_and_masks(cell):
    torch = pytest.importorskip("torch")
    config, params, x, y = problem(cell, V=7, H=6, T=6, B=3)
    loss, dlogits, cache = dropped_loss(params, config, x, y, LEVERS)
    grads, _ = model.backward(params, config, dlogits, cache)
    t_loss, leaves = torch_masked_loss(torch, params, config, x, y, cache.masks, cache.hh_masks)
    assert loss == pytest.approx(t_loss, rel=1e-12)
    for name, leaf in leaves.items():
        np.testing.assert_allclose(grads[name], leaf.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_training_step_equals_a_hand_built_one():
    """The engine's step with every lever of the step on (dropout per window, weight drop, Adam's
    β₂ 0.99) equals PyTorch on the same masks: autograd, clipping, torch.optim.Adam."""
    torch = pytest.importorskip("torch")
    config, params, x, y = problem("lstm", V=7, H=6, T=6, B=3)
    cfg = TrainConfig(
        batch_size=3, dropout=0.4, dropout_mask="window", weight_drop=0.3, adam_beta2=0.99, clip=0.5, kernels="numpy"
    )
    engine = NumpyEngine(config, cfg, params, np.float64)
    loss, norm, _ = engine.forward_backward(x, y, engine.zero_state())
    engine.update(0.01)
    t_loss, leaves = torch_masked_loss(torch, params, config, x, y, engine.cache.masks, engine.cache.hh_masks)
    t_norm = torch.nn.utils.clip_grad_norm_(list(leaves.values()), 0.5).item()
    torch.optim.Adam(list(leaves.values()), lr=0.01, betas=(0.9, 0.99)).step()
    assert (loss, norm) == pytest.approx((t_loss, t_norm), rel=1e-10)
    assert norm > 0.5  # the clip did act
    for name, leaf in leaves.items():
        np.testing.assert_allclose(engine.params[name], leaf.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoints_hold_the_plain_weights(tiny_corpus, tmp_path):
    """Trained with weight drop 0.5, the model file's W_hh has no dropped entries, it is the model
    validation scored, and it loads into torch.nn.LSTM."""
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(
        seq_len=16, batch_size=4, sample_length=0, max_steps=40, weight_drop=0.5, dropout_mask="window", kernels="numpy"
    )
    config = model.ModelConfig(corpus.vocab.size, 16, 2)
    train(corpus, config, cfg, tmp_path / "m.safetensors")
    saved = checkpoint.load(tmp_path / "m.safetensors")
    for k in range(2):
        assert (saved.params[f"lstm.weight_hh_l{k}"] == 0).mean() < 0.01
    _, val_ids = split(corpus.ids, cfg.val_fraction)
    again = evaluate(saved.params, saved.config, val_ids, cfg.batch_size, cfg.seq_len)
    assert again.loss == pytest.approx(saved.train["best_val_loss"], rel=1e-6)
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    net = torch.nn.ModuleDict(
        {"lstm": torch.nn.LSTM(config.vocab_size, 16, 2), "head": torch.nn.Linear(16, config.vocab_size)}
    )
    net.load_state_dict(load_file(tmp_path / "m.safetensors"))  # strict
