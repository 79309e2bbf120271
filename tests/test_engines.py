"""The two engines compute the same run: the same losses and weights step by step (float64 to
rounding, float32 to 1e-3), the same learning with dropout, resumes from one onto the other, and a
torch run that also resumes exactly on torch. The torch engine runs on the CPU here, the very code
a GPU runs with the device as a parameter (bench/engines.py checks a GPU where there is one)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from charlstm import engines
from charlstm.config import ModelConfig, TrainConfig
from charlstm.engines.team import Solo
from charlstm.nn import model
from charlstm.store import checkpoint
from charlstm.text.corpus import load_corpus, num_windows, window
from charlstm.training.events import EpochEnd, Started, Step
from charlstm.training.loop import train

from helpers import CELL_NAMES

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

T, B = 16, 4
SMALL = dict(seq_len=T, batch_size=B, sample_length=0, kernels="numpy", device="cpu", threads=1)  # bits: a fixed count


def steps(corpus, config, cfg, n, dtype, lr=4e-3):
    """n steps of `cfg.engine` from model.init_params, at a constant rate: each step's loss, and
    the weights after the last (NumPy arrays, the engine's dtype)."""
    engine = engines.make_engine(config, cfg, model.init_params(config, cfg.seed), dtype)
    state, losses = engine.zero_state(), []
    windows = num_windows(len(corpus.ids), B, T)
    for k in range(n):
        x, y = window(corpus.ids, B, T, k % windows)
        loss, norm, state = engine.forward_backward(x, y, state)
        assert math.isfinite(norm)
        engine.update(lr)
        losses.append(loss)
    return np.array(losses), {k: v.copy() for k, v in engine.params_numpy().items()}


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_in_float64_the_engines_agree_to_rounding(tiny_corpus, cell):
    """50 Adam steps with clipping from the same weights: losses within 1e-8, weights within 1e-6."""
    corpus = load_corpus(tiny_corpus)
    config = ModelConfig(corpus.vocab.size, 16, 2, cell)
    cfg = dict(SMALL, dropout=0.0, clip=1.0, max_steps=50)
    a, wa = steps(corpus, config, TrainConfig(**cfg, engine="numpy"), 50, np.float64)
    b, wb = steps(corpus, config, TrainConfig(**cfg, engine="torch"), 50, np.float64)
    assert a[-1] < a[0] - 0.3  # it learned: the comparison is of something that moved
    np.testing.assert_allclose(b, a, rtol=1e-8)
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=0, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("optimizer", ["rmsprop", "sgd"])
def test_the_other_optimisers_are_the_same_update(tiny_corpus, optimizer):
    """RMSprop (alpha 0.95, eps 1e-8) and SGD with momentum 0.9 — its first step included — are
    charlstm's updates, step for step."""
    corpus = load_corpus(tiny_corpus)
    config = ModelConfig(corpus.vocab.size, 16, 1)
    cfg = dict(SMALL, dropout=0.0, optimizer=optimizer, max_steps=20)
    lr = 0.05 if optimizer == "sgd" else 2e-3
    a, wa = steps(corpus, config, TrainConfig(**cfg, engine="numpy"), 20, np.float64, lr)
    b, wb = steps(corpus, config, TrainConfig(**cfg, engine="torch"), 20, np.float64, lr)
    np.testing.assert_allclose(b, a, rtol=1e-8)
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=0, atol=1e-8, err_msg=k)


def run(corpus, tmp_path, cfg, name, cell="lstm", stop_after=None, resume=None, H=16):
    """train with events collected; `stop_after` steps stops it as Ctrl-C does."""
    events = []
    config = resume.config if resume else ModelConfig(corpus.vocab.size, H, 2, cell)
    count = lambda: sum(isinstance(e, Step) for e in events)  # noqa: E731
    should_stop = (lambda: count() >= stop_after) if stop_after else (lambda: False)
    finished = train(corpus, config, cfg, tmp_path / f"{name}.safetensors", events.append, should_stop, resume)
    return finished, events


def losses(events):
    return np.array([e.loss for e in events if isinstance(e, Step)])


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_in_float32_a_torch_run_follows_a_numpy_run(tiny_corpus, tmp_path, cell):
    """The whole run — schedule, validation, checkpoints — on each engine: 50 steps whose losses
    agree within 1e-3 relative; the banner names the engine."""
    corpus = load_corpus(tiny_corpus)
    cfg = dict(SMALL, dropout=0.0, max_steps=50)
    _, ours = run(corpus, tmp_path, TrainConfig(**cfg), "numpy", cell)
    _, theirs = run(corpus, tmp_path, TrainConfig(**cfg, engine="torch"), "torch", cell)
    a, b = losses(ours), losses(theirs)
    assert len(a) == len(b) == 50
    np.testing.assert_allclose(b, a, rtol=1e-3)
    started = [next(e for e in events if isinstance(e, Started)) for events in (ours, theirs)]
    assert (
        started[0].engine == "numpy (numpy kernels)"
        and started[1].engine.startswith("torch 2.")
        and started[1].engine.endswith(" on cpu")
    )


def test_with_dropout_both_engines_learn_alike(tiny_corpus, tmp_path):
    """Dropout 0.2 draws different masks on each engine, so the curves differ step by step; both
    must fall as far: the mean loss of the last 20 of 100 steps within 0.15 nats of each other
    (on one engine, seeds 0 to 2 end 0.1 nats apart; the engines, 0.0006 to 0.09)."""
    corpus = load_corpus(tiny_corpus)
    cfg = dict(SMALL, dropout=0.2, max_steps=100, lr=0.01)
    a = losses(run(corpus, tmp_path, TrainConfig(**cfg), "numpy", H=32)[1])
    b = losses(run(corpus, tmp_path, TrainConfig(**cfg, engine="torch"), "torch", H=32)[1])
    assert a[-20:].mean() < a[:5].mean() - 1.0 and b[-20:].mean() < b[:5].mean() - 1.0
    assert abs(a[-20:].mean() - b[-20:].mean()) < 0.15, (a[-20:].mean(), b[-20:].mean())


@pytest.mark.parametrize("first, then", [("numpy", "torch"), ("torch", "numpy")])
def test_a_run_moves_between_engines_through_its_resume_file(tiny_corpus, tmp_path, first, then):
    """40 steps on one engine, a stop, 20 more on the other from the resume file: the losses and
    final weights of 60 steps straight on the first engine (Adam's moments and step count, the
    schedule, the data position and the carried state all carried over)."""
    corpus = load_corpus(tiny_corpus)
    cfg = dict(SMALL, dropout=0.0, max_steps=60)
    _, straight = run(corpus, tmp_path, TrainConfig(**cfg, engine=first), "straight")
    stopped, events1 = run(corpus, tmp_path, TrainConfig(**cfg, engine=first), "moved", stop_after=40)
    assert stopped.reason == "interrupted" and stopped.step == 40
    resume = checkpoint.load(tmp_path / "moved.resume.safetensors")
    resumed_cfg = TrainConfig(**{**cfg, "engine": then})
    finished, events2 = run(corpus, tmp_path, resumed_cfg, "moved", resume=resume)
    assert finished.step == 60 and next(e for e in events2 if isinstance(e, Started)).engine.startswith(then)
    np.testing.assert_allclose(np.concatenate([losses(events1), losses(events2)]), losses(straight), rtol=1e-4)
    want = checkpoint.load(tmp_path / "straight.resume.safetensors").params
    got = checkpoint.load(tmp_path / "moved.resume.safetensors").params
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-4, err_msg=k)


def test_a_torch_run_resumes_exactly_on_torch(tiny_corpus, tmp_path):
    """With dropout, across an epoch boundary, to the bit (the same code in the same process):
    the generator's state is in the resume file."""
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(**dict(SMALL, dropout=0.2, max_steps=40, engine="torch"))
    _, straight = run(corpus, tmp_path, cfg, "straight")
    run(corpus, tmp_path, cfg, "split", stop_after=25)
    resume = checkpoint.load(tmp_path / "split.resume.safetensors")
    assert resume.train["torch_rng"]["device"] == "cpu" and len(resume.train["torch_rng"]["states"]) == 1
    _, second = run(corpus, tmp_path, cfg, "split", resume=resume)
    np.testing.assert_array_equal(losses(second), losses(straight)[25:])


def test_the_torch_engine_validates_as_evaluate_scores(tiny_corpus, tmp_path):
    """The validation loss of a torch run is `charlstm.inference.loss` of its saved weights."""
    from charlstm.inference.loss import evaluate

    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(**dict(SMALL, dropout=0.0, max_steps=10, engine="torch"))
    _, events = run(corpus, tmp_path, cfg, "m")
    (end,) = [e for e in events if isinstance(e, EpochEnd)]
    saved = checkpoint.load(tmp_path / "m.safetensors")
    again = evaluate(saved.params, saved.config, corpus.split(cfg.val_fraction)[1], B, T)
    assert end.val_loss == pytest.approx(again.loss, rel=1e-5)


class Follower(Solo):
    """Rank 1 of 2, alone: agrees with itself (what rank 0 would say is what it says)."""

    @property
    def leader(self) -> bool:
        return False


def test_ranks_other_than_0_write_and_report_nothing(tiny_corpus, tmp_path, monkeypatch):
    """A rank that is not the leader trains, saves its snapshots — and writes no file, takes no
    lock, reports no event."""
    make = engines.make_engine

    def as_follower(*args, **kwargs):
        engine = make(*args, **kwargs)
        engine.team = Follower(rank=1, size=2)
        return engine

    monkeypatch.setattr(engines, "make_engine", as_follower)
    monkeypatch.setattr("charlstm.training.loop.rank", lambda: 1)
    corpus = load_corpus(tiny_corpus)
    finished, events = run(corpus, tmp_path, TrainConfig(**SMALL, epochs=2), "m")
    assert finished.step > 0 and events == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.txt"]


def test_adams_decays_and_the_average_are_the_same_on_both_engines(tiny_corpus):
    """--adam-beta1/2 and --ema in float64: the same losses, weights, average (the model the run
    validates and saves) and validation loss of that average."""
    corpus = load_corpus(tiny_corpus)
    config = ModelConfig(corpus.vocab.size, 16, 2)
    cfg = dict(SMALL, dropout=0.0, max_steps=30, adam_beta1=0.85, adam_beta2=0.99, ema=0.9)
    made = {}
    for name in ("numpy", "torch"):
        made[name] = engines.make_engine(
            config, TrainConfig(**cfg, engine=name), model.init_params(config, 0), np.float64
        )
    got = {}
    for name, engine in made.items():
        state, got[name] = engine.zero_state(), []
        for k in range(30):
            loss, _, state = engine.forward_backward(*window(corpus.ids, B, T, k), state)
            engine.update(4e-3)
            got[name].append(loss)
    np.testing.assert_allclose(got["torch"], got["numpy"], rtol=1e-8)
    a, b = made["numpy"], made["torch"]
    for k, v in a.model_numpy().items():
        np.testing.assert_allclose(b.model_numpy()[k], v, rtol=0, atol=1e-8, err_msg=k)
        assert not np.allclose(v, a.params_numpy()[k])  # the average is not the weights
    val = corpus.ids[-300:]
    assert b.evaluate(val, B, T).loss == pytest.approx(a.evaluate(val, B, T).loss, rel=1e-10)


LEVERS = dict(dropout=0.2, dropout_mask="window", weight_drop=0.3, ema=0.9)


def test_with_every_lever_both_engines_learn_alike(tiny_corpus, tmp_path):
    """Window masks, weight drop and the average draw different masks on each engine: both fall
    as far (as the dropout test above)."""
    corpus = load_corpus(tiny_corpus)
    cfg = dict(SMALL, max_steps=100, lr=0.01, **LEVERS)
    a = losses(run(corpus, tmp_path, TrainConfig(**cfg), "numpy", H=32)[1])
    b = losses(run(corpus, tmp_path, TrainConfig(**cfg, engine="torch"), "torch", H=32)[1])
    assert a[-20:].mean() < a[:5].mean() - 1.0 and b[-20:].mean() < b[:5].mean() - 1.0
    assert abs(a[-20:].mean() - b[-20:].mean()) < 0.15, (a[-20:].mean(), b[-20:].mean())


def test_a_torch_run_with_every_lever_resumes_exactly(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(**dict(SMALL, max_steps=40, engine="torch", **LEVERS))
    _, straight = run(corpus, tmp_path, cfg, "straight")
    run(corpus, tmp_path, cfg, "split", stop_after=25)
    resume = checkpoint.load(tmp_path / "split.resume.safetensors")
    assert any(k.startswith("average.") for k in resume.extra)
    _, second = run(corpus, tmp_path, cfg, "split", resume=resume)
    np.testing.assert_array_equal(losses(second), losses(straight)[25:])
    ends = [e.val_loss for e in straight if isinstance(e, EpochEnd)]
    assert [e.val_loss for e in second if isinstance(e, EpochEnd)][-1] == ends[-1]


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_the_torch_nets_masks_are_the_numpy_models(cell):
    """Weight drop: each layer computes with W_hh ⊙ m, one (G, H) mask a window, kept entries
    scaled by 1 / (1 − p); window dropout: one (B, H) mask for every step of the window."""
    import torch

    from charlstm.engines.torch_net import Net

    config = ModelConfig(7, 8, 2, cell)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 7, (5, 3)))
    state = tuple(torch.zeros(2, 3, 8, dtype=torch.float64) for _ in model.state_names(config))
    gen = torch.Generator().manual_seed(1)
    net = Net(config, model.Dropout(0.0, "step", 0.4), gen).double().train()
    start = gen.get_state()
    dropped, _ = net(x, state)
    gen.set_state(start)
    plain = Net(config, model.Dropout(), gen).double().eval()
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        for layer in plain.layers:
            W = layer.weight_hh_l0
            keep = torch.empty_like(W).bernoulli_(0.6, generator=gen)
            assert set(torch.unique(keep).tolist()) == {0.0, 1.0}
            W.mul_(keep / 0.6)
        np.testing.assert_allclose(plain(x, state)[0].numpy(), dropped.detach().numpy(), rtol=1e-12)

    seen = []
    net = Net(config, model.Dropout(0.5, "window"), gen).double().train()
    net.head.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    net(x, state)
    zero = seen[0] == 0  # (T, B, H): the units dropped before the head
    assert zero.any() and (zero == zero[0]).all()  # the same at every step
