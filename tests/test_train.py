"""The training loop: reproducibility, exact resume, best checkpoint, divergence, snapshots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from charlstm.config import TrainConfig
from charlstm.errors import TrainingError, UsageError
from charlstm.inference.loss import evaluate
from charlstm.nn import model
from charlstm.store import checkpoint
from charlstm.text.corpus import load_corpus, split
from charlstm.training import plan
from charlstm.training.events import Diverged, EpochEnd, Sampled, Step
from charlstm.training.loop import train
from charlstm.training.plan import size_notes
from charlstm.training.schedule import learning_rate

SMALL = dict(seq_len=16, batch_size=4, sample_length=20)


def run(corpus, tmp_path, cfg, stop_after=None, resume=None, init=None, H=32, L=2, name="m", cell="lstm"):
    """Train and collect events; `stop_after` steps simulates Ctrl-C."""
    events = []
    config = resume.config if resume else model.ModelConfig(corpus.vocab.size, H, L, cell)
    steps = lambda: sum(isinstance(e, Step) for e in events)  # noqa: E731
    should_stop = (lambda: steps() >= stop_after) if stop_after else (lambda: False)
    finished = train(corpus, config, cfg, tmp_path / f"{name}.safetensors", events.append, should_stop, resume, init)
    return finished, events


def losses(events):
    return [e.loss for e in events if isinstance(e, Step)]


def val_losses(events):
    return [e.val_loss for e in events if isinstance(e, EpochEnd)]


def test_same_seed_same_losses(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(**SMALL, max_steps=15, dropout=0.1)
    _, a = run(corpus, tmp_path, cfg, name="a")
    _, b = run(corpus, tmp_path, cfg, name="b")
    _, c = run(corpus, tmp_path, TrainConfig(**SMALL, max_steps=15, dropout=0.1, seed=1), name="c")
    assert losses(a) == losses(b)
    assert losses(a) != losses(c)


LEVERS = dict(dropout_mask="window", weight_drop=0.25, ema=0.0, adam_beta1=0.85, adam_beta2=0.99)


@pytest.mark.parametrize("levers", [False, True], ids=["defaults", "levers"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_resume_is_exact(tiny_corpus, tmp_path, cell, levers):
    """N steps straight equal N/2 steps, a stop, a resume from the checkpoint, and N/2 more —
    across an epoch boundary, with dropout (RNG), the cosine schedule, Adam's moments and the
    cell's carried state and the average of the weights (what validation scores; on by default);
    with `levers`, dropout per window, weight drop, Adam's decays and no average instead."""
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(**SMALL, epochs=2, dropout=0.2, **(LEVERS if levers else {}))
    _straight, events = run(corpus, tmp_path, cfg, name="straight", cell=cell)
    full = losses(events)
    N = len(full)
    steps_per_epoch = N // 2
    half = steps_per_epoch + 7  # stop inside the second epoch

    first, events1 = run(corpus, tmp_path, cfg, stop_after=half, name="split", cell=cell)
    assert first.reason == "interrupted" and first.step == half
    resumed = checkpoint.load(tmp_path / "split.resume.safetensors")
    second, events2 = run(corpus, tmp_path, cfg, resume=resumed, name="split")
    assert second.reason == "completed" and second.step == N
    np.testing.assert_allclose(losses(events1) + losses(events2), full, rtol=1e-6)
    np.testing.assert_allclose(val_losses(events1) + val_losses(events2), val_losses(events), rtol=1e-6)
    final_straight = checkpoint.load(tmp_path / "straight.resume.safetensors")
    final_split = checkpoint.load(tmp_path / "split.resume.safetensors")
    assert final_split.extra.keys() == final_straight.extra.keys()
    assert any(k.startswith("average.") for k in final_split.extra) == (cfg.ema > 0)
    for k, v in {**final_straight.params, **final_straight.extra}.items():
        np.testing.assert_allclose({**final_split.params, **final_split.extra}[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_best_checkpoint_keeps_the_best_validation_weights(tmp_path):
    """Training text that repeats one phrase, validation text that does not: the model overfits,
    validation loss rises after the first epochs, and the model file keeps the best weights."""
    rng = np.random.default_rng(0)
    train_text = "the cat sat on the mat. " * 300
    val_text = "".join(rng.choice(list("the cat sonm."), size=800))
    path = tmp_path / "overfit.txt"
    path.write_text(train_text + val_text, encoding="utf-8")
    corpus = load_corpus(path)
    cfg = TrainConfig(
        seq_len=24, batch_size=4, epochs=6, lr=0.01, val_fraction=800 / (len(train_text) + 800), sample_length=0
    )
    _, events = run(corpus, tmp_path, cfg, H=48, L=1)
    ends = [e for e in events if isinstance(e, EpochEnd)]
    vals = [e.val_loss for e in ends]
    best = int(np.argmin(vals))
    assert best < len(vals) - 1, vals  # it did get worse later: the test means something
    assert [e.best for e in ends] == [v <= min(vals[: i + 1]) for i, v in enumerate(vals)]
    saved = checkpoint.load(tmp_path / "m.safetensors")
    _, val_ids = split(corpus.ids, cfg.val_fraction)
    again = evaluate(saved.params, saved.config, val_ids, cfg.batch_size, cfg.seq_len)
    assert again.loss == pytest.approx(vals[best], rel=1e-5)
    assert saved.train["best_val_loss"] == pytest.approx(vals[best])
    assert len(saved.history) == best + 1


def test_divergence_never_reaches_a_checkpoint(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    _good, _ = run(corpus, tmp_path, TrainConfig(**SMALL, epochs=1))
    resume_file = tmp_path / "m.resume.safetensors"
    before = resume_file.read_bytes()
    model_before = (tmp_path / "m.safetensors").read_bytes()
    resumed = checkpoint.load(resume_file)
    cfg, _ = plan.resume_config(resumed, {"lr": 1e30, "optimizer": "adam", "epochs": 3})
    with pytest.raises(TrainingError, match="diverged"):
        run(corpus, tmp_path, cfg, resume=resumed)
    assert resume_file.read_bytes() == before  # the last good checkpoint survives untouched
    assert (tmp_path / "m.safetensors").read_bytes() == model_before
    assert all(np.isfinite(p).all() for p in checkpoint.load(resume_file).params.values())


def test_divergence_recovery_lowers_the_learning_rate(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(**SMALL, max_steps=30, lr=0.002)
    events = []
    config = model.ModelConfig(corpus.vocab.size, 16, 1)
    original = model.loss_and_grads
    calls = {"n": 0}

    def nan_once(*args, **kwargs):  # a real forward/backward, with one NaN gradient injected
        loss, grads, state, cache = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 10:
            grads["head.bias"][0] = np.nan
        return loss, grads, state, cache

    model.loss_and_grads = nan_once
    try:
        train(corpus, config, cfg, tmp_path / "m.safetensors", events.append)
    finally:
        model.loss_and_grads = original
    diverged = [e for e in events if isinstance(e, Diverged)]
    assert len(diverged) == 1 and "halved" in diverged[0].action
    lrs = [e.lr for e in events if isinstance(e, Step)]
    assert lrs[-1] < 0.5 * learning_rate(cfg, 28, 30) + 1e-12
    saved = checkpoint.load(tmp_path / "m.resume.safetensors")
    assert all(np.isfinite(p).all() for p in saved.params.values())
    assert saved.train["lr_scale"] == 0.5


def test_keep_bounds_the_snapshots(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    run(corpus, tmp_path, TrainConfig(seq_len=16, batch_size=16, epochs=4, keep=2, sample_length=0), H=16, L=1)
    names = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert names == ["m.epoch0003.safetensors", "m.epoch0004.safetensors", "m.resume.safetensors", "m.safetensors"]


def test_resume_rejects_conflicting_and_reports_compatible_changes(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    run(corpus, tmp_path, TrainConfig(**SMALL, max_steps=3))
    resumed = checkpoint.load(tmp_path / "m.resume.safetensors")
    cfg, changes = plan.resume_config(resumed, {"lr": 0.01, "epochs": 5})
    assert cfg.lr == 0.01 and cfg.epochs == 5 and cfg.seq_len == 16
    assert any("lr" in c for c in changes)
    with pytest.raises(UsageError, match="--batch-size"):
        plan.resume_config(resumed, {"batch_size": 8})


def test_learning_rate_schedules():
    cfg = TrainConfig(lr=1.0, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 110) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 110) == pytest.approx(1.0)
    assert learning_rate(cfg, 109, 110) == pytest.approx(0.1)
    mid = learning_rate(cfg, 10 + 49, 110)
    assert 0.5 < mid < 0.6
    assert learning_rate(TrainConfig(lr=0.5, schedule="constant"), 1000, 10) == 0.5
    lin = TrainConfig(lr=1.0, schedule="linear", min_lr_ratio=0.0)
    assert learning_rate(lin, 50, 101) == pytest.approx(0.5)


def test_auto_batch_size_keeps_enough_steps_per_epoch():
    assert plan.auto_batch_size(1_000_000, 100) == 64
    assert plan.auto_batch_size(45_000, 100) == 4
    assert plan.auto_batch_size(500, 100) == 1
    n_train = 45_000
    assert (n_train - 1) // (plan.auto_batch_size(n_train, 100) * 100) >= plan.AUTO_MIN_STEPS


def test_too_short_for_one_window_is_a_usage_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("hello there, general kenobi\n" * 3, encoding="utf-8")
    with pytest.raises(UsageError, match="too short"):
        run(load_corpus(path), tmp_path, TrainConfig(seq_len=50, batch_size=8))


def test_val_loss_is_in_nats_and_bits(tiny_corpus, tmp_path):
    _, events = run(load_corpus(tiny_corpus), tmp_path, TrainConfig(**SMALL, epochs=1))
    (end,) = [e for e in events if isinstance(e, EpochEnd)]
    assert end.val_bpc == pytest.approx(end.val_loss / math.log(2))
    assert end.sample.startswith("The")  # default sample seed: the corpus's first word


def test_time_budget_ends_cleanly_with_a_checkpoint(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    finished, _ = run(corpus, tmp_path, TrainConfig(**SMALL, epochs=10_000, max_minutes=0.02))
    assert finished.reason == "time_budget" and 0 < finished.step < 10_000 * 95
    saved = checkpoint.load(tmp_path / "m.resume.safetensors")
    assert saved.train["status"] == "time_budget" and saved.train["step"] == finished.step


def test_sample_every_reports_samples_between_epochs(tiny_corpus, tmp_path):
    _, events = run(load_corpus(tiny_corpus), tmp_path, TrainConfig(**SMALL, max_steps=30, sample_every=10))
    sampled = [e for e in events if isinstance(e, Sampled)]
    assert [e.step for e in sampled] == [10, 20] and all(e.text.startswith("The") for e in sampled)


def test_size_warning_follows_the_rule_of_thumb():
    big = model.ModelConfig(vocab_size=65, hidden_size=512, num_layers=3)
    small = model.ModelConfig(vocab_size=65, hidden_size=16, num_layers=1)
    assert "memorise" in size_notes(big, 50_000)[0]
    assert "larger --hidden-size" in size_notes(small, 10_000_000)[0]
    assert size_notes(model.ModelConfig(vocab_size=65), 1_000_000) == ()
