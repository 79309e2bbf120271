"""charlstm against PyTorch's own nn.LSTM / nn.GRU / nn.RNN + nn.Linear, loaded from a real
charlstm checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from charlstm.nn import model, optim
from charlstm.nn.cells import CELLS
from charlstm.nn.ops import softmax_cross_entropy
from charlstm.store import checkpoint
from charlstm.text.corpus import Vocab

from helpers import CELL_NAMES, random_model

torch = pytest.importorskip("torch")

TORCH_CELLS = [cell for cell in CELL_NAMES if CELLS[cell].TORCH is not None]  # the cells a torch.nn module computes


def torch_model(cell: str, V: int, H: int, L: int, state_dict: dict, dtype) -> torch.nn.ModuleDict:
    """PyTorch's own recurrent module (the cell's TORCH) + Linear head, loaded strictly from
    charlstm's tensors."""
    name, options = CELLS[cell].TORCH
    rnn = getattr(torch.nn, name)(V, H, L, **options)
    net = torch.nn.ModuleDict({cell: rnn, "head": torch.nn.Linear(H, V)}).to(dtype)
    net.load_state_dict(state_dict)  # strict: every name and shape must match
    return net


def torch_loss_and_grads(net, cell, x, y, state0, V, dtype):
    """Loss and gradients by autograd, with one-hot input exactly as charlstm defines it."""
    xt = torch.nn.functional.one_hot(torch.from_numpy(x.astype(np.int64)), V).to(dtype)
    st = [torch.tensor(s, dtype=dtype, requires_grad=True) for s in state0]
    out, _ = net[cell](xt, tuple(st) if len(st) > 1 else st[0])
    logits = net["head"](out).reshape(-1, V)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y.astype(np.int64)).reshape(-1))
    net.zero_grad()
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in net.named_parameters()}
    return loss.item(), grads, [s.grad.numpy() for s in st]


def charlstm_loss_and_grads(params, config, x, y, state0):
    logits, _, cache = model.forward(params, config, x, state0)
    loss, dlogits = softmax_cross_entropy(logits, y.reshape(-1))
    grads, dstate0 = model.backward(params, config, dlogits, cache)
    return loss, grads, dstate0


def problem(cell="lstm", V=11, H=16, L=2, T=7, B=3, dtype=np.float32):
    config, params = random_model(V, H, L, seed=5, dtype=dtype, scale=0.3, cell=cell)
    rng = np.random.default_rng(6)
    x = rng.integers(0, V, (T, B)).astype(np.uint8)
    y = rng.integers(0, V, (T, B)).astype(np.uint8)
    state0 = tuple((rng.standard_normal((L, B, H)) * 0.5).astype(dtype) for _ in model.state_names(config))
    return config, params, x, y, state0


def close(a, b, rtol):
    scale = max(np.abs(b).max(), 1e-30)
    assert np.abs(a - b).max() <= rtol * scale, f"max abs diff {np.abs(a - b).max():.3e} vs scale {scale:.3e}"


@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_checkpoint_loads_into_torch_and_matches_loss_and_grads_float32(tmp_path, cell):
    config, params, x, y, state0 = problem(cell)
    vocab = Vocab(tuple("abcdefghijk"))
    path = checkpoint.save(checkpoint.Checkpoint(config, vocab, params), tmp_path / "m.safetensors")

    from safetensors.torch import load_file

    net = torch_model(cell, config.vocab_size, config.hidden_size, config.num_layers, load_file(path), torch.float32)
    t_loss, t_grads, t_dstate0 = torch_loss_and_grads(net, cell, x, y, state0, config.vocab_size, torch.float32)
    loaded = checkpoint.load(path)
    assert loaded.config.cell == cell
    loss, grads, dstate0 = charlstm_loss_and_grads(loaded.params, config, x, y, state0)

    assert abs(loss - t_loss) <= 1e-4 * abs(t_loss)
    assert set(grads) == set(t_grads)
    for name in grads:
        close(grads[name], t_grads[name], 1e-4)
    for d, t in zip(dstate0, t_dstate0, strict=True):
        close(d, t, 1e-4)


@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_matches_torch_in_float64(cell):
    config, params, x, y, state0 = problem(cell, dtype=np.float64)
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    net = torch_model(cell, config.vocab_size, config.hidden_size, config.num_layers, state, torch.float64)
    t_loss, t_grads, t_dstate0 = torch_loss_and_grads(net, cell, x, y, state0, config.vocab_size, torch.float64)
    loss, grads, dstate0 = charlstm_loss_and_grads(params, config, x, y, state0)
    assert abs(loss - t_loss) <= 1e-8 * abs(t_loss)
    for name in grads:
        close(grads[name], t_grads[name], 1e-8)
    for d, t in zip(dstate0, t_dstate0, strict=True):
        close(d, t, 1e-8)


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd"])
def test_optimizer_steps_match_torch(name):
    """Five clipped updates of charlstm's optimisers equal torch.optim's on the same gradients."""
    rng = np.random.default_rng(7)
    params = {"a": rng.standard_normal((4, 3)), "b": rng.standard_normal(5)}
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = optim.make_optimizer(name, params)
    topt = {
        "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
        "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.95, eps=1e-8),
        "sgd": lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9),
    }[name](list(tparams.values()))
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) * 3 for k, v in params.items()}
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        torch.nn.utils.clip_grad_norm_(list(tparams.values()), 2.0)
        topt.step()
        optim.clip_grad_norm(grads, 2.0)
        opt.step(params, grads, 0.01)
    for k in params:
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernels_name", ["numpy", "numba"])
@pytest.mark.parametrize("betas", [(0.9, 0.99), (0.8, 0.95)])
def test_adam_with_other_decays_matches_torch(betas, kernels_name):
    """--adam-beta1/--adam-beta2: six updates of charlstm's Adam (NumPy and fused kernels) equal
    torch.optim.Adam(betas=…) on the same gradients."""
    from charlstm.nn import kernels

    if kernels_name == "numba" and not kernels.available():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(8)
    params = {"a": rng.standard_normal((4, 3)), "b": rng.standard_normal(5)}
    tparams = [torch.tensor(v, requires_grad=True) for v in params.values()]
    opt = optim.make_optimizer("adam", params, kernels.load(kernels_name), betas)
    topt = torch.optim.Adam(tparams, lr=0.01, betas=betas)
    for _ in range(6):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        for t, g in zip(tparams, grads.values()):
            t.grad = torch.tensor(g)
        topt.step()
        opt.step(params, grads, 0.01)
    for k, t in zip(params, tparams):
        np.testing.assert_allclose(params[k], t.detach().numpy(), rtol=1e-10, atol=1e-12)
