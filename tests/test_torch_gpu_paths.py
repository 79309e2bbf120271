"""The torch engine's GPU paths, checked on the CPU: bf16 on the chosen GPU alone (its compute
capability, monkeypatched), each torchrun rank's GPU, the recurrence out of autocast, validation
without float64 (MPS has none) and in float32, and the divergence guard one step late (as on a GPU)
deciding and restoring exactly what the guard that looks at once does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from charlstm.config import ModelConfig, TrainConfig
from charlstm.errors import TrainingError, UsageError
from charlstm.inference.loss import evaluate
from charlstm.nn import model
from charlstm.store import checkpoint
from charlstm.text.corpus import load_corpus
from charlstm.training import loop
from charlstm.training.events import Diverged, Step

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from charlstm.engines import torch_devices, torch_engine  # noqa: E402
from charlstm.engines.torch_net import Net  # noqa: E402


@pytest.fixture
def gpus(monkeypatch):
    """A machine with two CUDA GPUs as PyTorch's queries describe it: an A100 (8.0) and a V100
    (7.0), which emulates bfloat16 (so `is_bf16_supported()`, by default, says yes)."""
    cards = {0: ("NVIDIA A100-SXM4-40GB", (8, 0)), 1: ("Tesla V100-SXM2-16GB", (7, 0))}
    index = lambda d: torch.device(d).index or 0  # noqa: E731
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(cards))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: cards[index(d)][1])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: cards[index(d)][0])
    return cards


def test_bf16_is_checked_on_the_chosen_gpu_without_emulation(gpus):
    assert torch_devices.check_device("cuda:0", "bf16") == torch.device("cuda", 0)
    with pytest.raises(UsageError, match=r"Tesla V100.*compute capability 7\.0.*use --precision fp32"):
        torch_devices.check_device("cuda:1", "bf16")
    assert torch_devices.check_device("cuda:1", "fp32") == torch.device("cuda", 1)


@pytest.mark.parametrize("visible, local, want", [(2, "1", 1), (1, "1", 0), (1, "0", 0), (2, "3", 1)])
def test_each_rank_takes_its_local_rank_among_the_gpus_it_sees(gpus, monkeypatch, visible, local, want):
    """One GPU visible per rank (SLURM's --gpus-per-task) or all of them: LOCAL_RANK mod the count."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setenv("LOCAL_RANK", local)
    assert torch_devices.resolve_device("cuda", ranks=4) == torch.device("cuda", want)


def test_with_bf16_the_recurrence_stays_float32_and_validation_too():
    """Only the head computes in bfloat16, and only in training (on the CPU's autocast here)."""
    config = ModelConfig(11, 8, 2, "lstm")
    net = Net(config, model.Dropout(0.0, "step", 0.0), torch.Generator(), bf16_head=True)
    seen = []
    for layer in net.layers:
        layer.register_forward_hook(lambda _m, _i, out: seen.append(out[0].dtype))
    x = torch.randint(0, 11, (5, 3))
    state = tuple(torch.zeros(2, 3, 8) for _ in model.state_names(config))
    logits, final = net(x, state)
    assert seen == [torch.float32] * 2 and logits.dtype == torch.bfloat16
    assert all(s.dtype == torch.float32 for s in final)
    logits.float().sum().backward()
    assert all(p.grad.dtype == torch.float32 for p in net.parameters())
    net.eval()
    assert net(x, state)[0].dtype == torch.float32


class NoFloat64(torch.utils._python_dispatch.TorchDispatchMode):
    """Every aten op the block runs: an error if any tensor in or out of it is float64 (as on MPS)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = torch.utils._pytree.tree_leaves((args, kwargs, out))
        if any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in flat) or (
            (kwargs or {}).get("dtype") == torch.float64
        ):
            raise AssertionError(f"{func} made or took a float64 tensor")
        return out


def test_training_and_validation_never_compute_in_float64(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    config = ModelConfig(corpus.vocab.size, 16, 2, "lstm")
    cfg = TrainConfig(seq_len=16, batch_size=4, engine="torch", device="cpu", ema=0.9, weight_drop=0.2)
    engine = torch_engine.TorchEngine(config, cfg, model.init_params(config, 0))
    with pytest.raises(AssertionError, match="float64"), NoFloat64():
        torch.zeros(1, dtype=torch.float64)  # the guard itself works
    with NoFloat64():
        x = corpus.ids[: 16 * 4].reshape(4, 16).T
        engine.forward_backward(x, x, engine.zero_state())
        engine.update(0.01)
        got = engine.evaluate(corpus.ids[:2000], 8, 16)
    want = evaluate(engine.model_numpy(), config, corpus.ids[:2000], 8, 16)
    assert got.chars == want.chars and got.loss == pytest.approx(want.loss, rel=1e-5)


def late_or_not(corpus, tmp_path, late: bool, stop_after: int | None = None):
    """A torch run on the CPU with the guard at once or one step late (as on a GPU), over two
    epochs: lr 3 makes an early step diverge; a resume file is written after every step (the
    clock jumps 1000 s a call).
    Its events, and the weights and generators right after each recovery."""
    cfg = TrainConfig(
        seq_len=32, batch_size=8, sample_length=0, max_steps=60, lr=3.0, engine="torch", device="cpu",
        dropout=0.2, weight_drop=0.3, ema=0.9, threads=1,  # a fixed count: no ThreadsChanged timed by the load
    )  # fmt: skip
    events, restored, holder = [], [], {}

    def on_event(e):
        events.append(e)
        if isinstance(e, Diverged):
            eng = holder["run"].engine
            restored.append((eng.params_numpy(), eng.generator.get_state(), eng.shared.get_state()))

    ticks = itertools.count(0, 1000.0)
    path = tmp_path / f"late{late}.safetensors"
    run = loop.start_run(corpus, ModelConfig(corpus.vocab.size, 16, 1), cfg, path, on_event, clock=lambda: next(ticks))
    holder["run"], run.engine.late = run, late
    steps = lambda: sum(isinstance(e, Step) for e in events)  # noqa: E731
    reason = loop.finish(run, loop._loop(run, (lambda: steps() >= stop_after) if stop_after else (lambda: False)))
    return events, restored, checkpoint.load(path.with_name(f"late{late}.resume.safetensors")), reason


@pytest.mark.parametrize("stop_after", [None, 7], ids=["diverges-and-goes-on", "stopped"])
def test_the_guard_one_step_late_restores_what_the_guard_at_once_restores(tiny_corpus, tmp_path, stop_after):
    corpus = load_corpus(tiny_corpus)
    now, then = (late_or_not(corpus, tmp_path, late, stop_after) for late in (False, True))
    assert now[3].reason == then[3].reason == ("interrupted" if stop_after else "max_steps")
    kinds = lambda events: [(type(e).__name__, getattr(e, "step", None)) for e in events]  # noqa: E731
    assert kinds(now[0]) == kinds(then[0])
    np.testing.assert_allclose(
        [e.loss for e in then[0] if isinstance(e, Step)], [e.loss for e in now[0] if isinstance(e, Step)], rtol=1e-6
    )
    if stop_after is None:
        assert any(isinstance(e, Diverged) for e in now[0])  # the run meets its guard, and goes on
    for (w_now, *gens_now), (w_then, *gens_then) in zip(now[1], then[1], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(gens_now, gens_then))
        for k in w_now:
            np.testing.assert_allclose(w_then[k], w_now[k], rtol=1e-6, atol=1e-7, err_msg=k)
    a, b = now[2], then[2]
    assert a.train["torch_rng"] == b.train["torch_rng"] and a.train["step"] == b.train["step"]
    for k in a.extra:
        np.testing.assert_allclose(b.extra[k], a.extra[k], rtol=1e-5, atol=1e-7, err_msg=k)


def test_the_late_guard_stops_a_run_that_keeps_diverging(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(seq_len=16, batch_size=4, sample_length=0, max_steps=30, lr=50.0, engine="torch", device="cpu")
    run = loop.start_run(corpus, ModelConfig(corpus.vocab.size, 16, 1), cfg, tmp_path / "m.safetensors")
    run.engine.late = True
    with pytest.raises(TrainingError, match="diverged 4 times"):
        loop._loop(run, lambda: False)
    assert run.engine.params_finite()
