"""The schedule follows the run's end: a time budget on a fake clock, and resumes that move the end."""

from __future__ import annotations

import itertools
import math

import pytest

from charlstm.config import TrainConfig, default_of
from charlstm.engines.numpy_engine import NumpyEngine
from charlstm.nn import model
from charlstm.store import checkpoint
from charlstm.text.corpus import load_corpus
from charlstm.training import plan
from charlstm.training.events import EpochEnd, Saved, Step
from charlstm.training.loop import train
from charlstm.training.schedule import learning_rate, outlook

LR = default_of(TrainConfig, "lr")  # the default peak; the floor is 0.1 × it
SMALL = dict(seq_len=16, batch_size=4, sample_length=0)


class FakeClock:
    """Seconds that pass only when the engine computes: `step` per training window, `validation`
    per scored split. Installed over the NumPy engine's forward_backward and evaluate."""

    def __init__(self, monkeypatch, step: float, validation: float) -> None:
        self.now = 1000.0

        def timed(seconds, fn):
            def wrapped(*args, **kwargs):
                self.now += seconds
                return fn(*args, **kwargs)

            return wrapped

        for name, seconds in (("forward_backward", step), ("evaluate", validation)):
            monkeypatch.setattr(NumpyEngine, name, timed(seconds, getattr(NumpyEngine, name)))

    def __call__(self) -> float:
        return self.now


def run(corpus, tmp_path, cfg, clock=None, resume=None, stop_after=None, name="m", H=16):
    events = []
    config = resume.config if resume else model.ModelConfig(corpus.vocab.size, H, 1)
    steps = lambda: sum(isinstance(e, Step) for e in events)  # noqa: E731
    should_stop = (lambda: steps() >= stop_after) if stop_after else (lambda: False)
    kwargs = {"clock": clock} if clock else {}
    finished = train(
        corpus, config, cfg, tmp_path / f"{name}.safetensors", events.append, should_stop, resume, **kwargs
    )
    return finished, events


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_a_time_budget_ends_at_its_deadline_with_the_rate_at_its_floor(tiny_corpus, tmp_path, monkeypatch):
    clock = FakeClock(monkeypatch, step=0.2, validation=1.5)
    start = clock.now
    cfg = TrainConfig(**SMALL, epochs=None, max_minutes=1.0, lr=0.01, warmup_steps=5)
    finished, events = run(load_corpus(tiny_corpus), tmp_path, cfg, clock)
    assert finished.reason == "time_budget"
    assert 55 < clock.now - start <= 60  # the last validation and checkpoint inside the minute
    steps, ends = of(events, Step), of(events, EpochEnd)
    assert ends[-1].step == finished.step and len(ends) >= 2  # validated at the end, and per epoch before
    assert isinstance(events[-2], Saved) and events[-2].kind == "resume"
    lrs = [s.lr for s in steps]
    assert lrs[4] == pytest.approx(0.01)  # the peak, at the end of the warm-up
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))  # then only down…
    assert lrs[-1] == pytest.approx(0.001, rel=1e-3)  # …to the floor on the last update
    assert checkpoint.load(tmp_path / "m.resume.safetensors").train["status"] == "time_budget"
    # the ETA counts down to the budget: elapsed + ETA is the minute, step after step
    assert all(abs(s.elapsed + s.eta - 60) < 1e-6 for s in steps)
    assert all(s.by_time and s.end_step is not None for s in steps[1:])
    assert steps[-1].end_step == pytest.approx(finished.step, abs=3)  # the final step, foreseen
    assert steps[-1].fraction == pytest.approx((clock.now - start - 1.5) / 60, abs=0.05)


def test_epochs_are_unlimited_under_a_time_budget_and_the_first_limit_wins(tiny_corpus, tmp_path, monkeypatch):
    quick = dict(seq_len=16, batch_size=16, sample_length=0)  # 23 steps an epoch
    planned = plan.plan_run(tiny_corpus, {}, {**quick, "max_minutes": 0.5}, out=tmp_path / "p.safetensors")
    assert planned.train.epochs is None  # --max-minutes alone: no epoch limit
    clock = FakeClock(monkeypatch, step=0.1, validation=0.2)
    corpus = load_corpus(tiny_corpus)
    finished, events = run(corpus, tmp_path, planned.train, clock, name="unlimited")
    assert finished.reason == "time_budget" and finished.epoch > 10  # past the default 10 epochs
    finished, events = run(corpus, tmp_path, TrainConfig(**quick, epochs=3, max_minutes=0.5), clock, name="both")
    assert finished.reason == "completed" and finished.epoch == 3  # the epochs came first
    lrs = [s.lr for s in of(events, Step)]
    assert lrs[-1] == pytest.approx(0.1 * LR, rel=1e-3) and not any(s.by_time for s in of(events, Step)[1:])


def test_a_step_based_run_takes_the_rates_of_learning_rate(tiny_corpus, tmp_path):
    """The loop's rule (`advance_schedule`) and `learning_rate` are one: warm-up, then the decay."""
    cfg = TrainConfig(**SMALL, max_steps=25, warmup_steps=5, schedule="cosine")
    _, events = run(load_corpus(tiny_corpus), tmp_path, cfg)
    expected = [learning_rate(cfg, k, 25) for k in range(25)]
    assert [s.lr for s in of(events, Step)] == pytest.approx(expected, rel=1e-12)
    assert expected[0] < expected[4] == pytest.approx(LR) and expected[-1] == pytest.approx(0.1 * LR)


def test_raising_max_steps_on_resume_continues_the_rate_smoothly(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(**SMALL, max_steps=60, warmup_steps=5)
    _, before = run(corpus, tmp_path, cfg, stop_after=30)
    resumed = checkpoint.load(tmp_path / "m.resume.safetensors")
    new_cfg, notes = plan.resume_config(resumed, {"max_steps": 120})
    assert "--max-steps: 60 → 120" in notes
    _, after = run(corpus, tmp_path, new_cfg, resume=resumed)
    lr_before, lr_after = [s.lr for s in of(before, Step)], [s.lr for s in of(after, Step)]
    assert lr_after[0] == pytest.approx(lr_before[-1], rel=0.01)  # no jump back towards the peak
    assert lr_after[0] < learning_rate(new_cfg, 30, 120)  # where the old rule would have put it
    assert all(a >= b for a, b in itertools.pairwise(lr_after))
    assert lr_after[-1] == pytest.approx(0.1 * LR, rel=1e-3) and len(lr_after) == 90


def test_a_capped_run_resumed_with_epochs_trains_on(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    _, first = run(corpus, tmp_path, TrainConfig(**SMALL, max_steps=10))
    resumed = checkpoint.load(tmp_path / "m.resume.safetensors")
    new_cfg, notes = plan.resume_config(resumed, {"epochs": 2})
    assert new_cfg.max_steps is None and "--max-steps: 10 → none" in notes
    finished, after = run(corpus, tmp_path, new_cfg, resume=resumed)
    assert finished.reason == "completed" and finished.epoch == 2
    assert of(after, Step)[0].lr == pytest.approx(of(first, Step)[-1].lr, rel=0.01)


def test_a_new_time_budget_on_resume_continues_the_rate_and_is_not_carried(tiny_corpus, tmp_path, monkeypatch):
    clock = FakeClock(monkeypatch, step=0.2, validation=0.5)
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(**SMALL, epochs=None, max_minutes=1.0)
    _, before = run(corpus, tmp_path, cfg, clock, stop_after=100)  # Ctrl-C a third of the way
    resumed = checkpoint.load(tmp_path / "m.resume.safetensors")
    again, _ = plan.resume_config(resumed, {})
    assert again.max_minutes is None and again.max_steps == 100  # not carried: this run is done
    new_cfg, _ = plan.resume_config(resumed, {"max_minutes": 0.5})
    start = clock.now
    finished, after = run(corpus, tmp_path, new_cfg, clock, resume=resumed)
    lr_before, lr_after = [s.lr for s in of(before, Step)], [s.lr for s in of(after, Step)]
    assert 0.25 * LR < lr_before[-1] < 0.95 * LR
    assert lr_after[0] == pytest.approx(lr_before[-1], rel=0.01)
    assert all(a >= b for a, b in itertools.pairwise(lr_after))
    assert lr_after[-1] == pytest.approx(0.1 * LR, rel=1e-3)
    assert finished.reason == "time_budget" and clock.now - start <= 30


def test_outlook_follows_the_limit_that_binds_first():
    # 10 steps of 1 s and two epoch ends of 3 s to go; a budget with 100 s left: steps bind
    ahead = outlook(90, 100, 50, 1.0, 3.0, seconds=20.0, budget=120.0, deadline=110.0)
    assert not ahead.by_time and ahead.eta == pytest.approx(10 + 3) and ahead.end_step == 100
    assert ahead.fraction == pytest.approx(0.9)
    # 500 steps to go but 100 s left: the time binds; the steps that fit before the deadline
    ahead = outlook(100, 600, 50, 1.0, 5.0, seconds=20.0, budget=120.0, deadline=110.0)
    assert ahead.by_time and ahead.eta == pytest.approx(100.0) and ahead.fraction == pytest.approx(20 / 120)
    assert ahead.end_step == 100 + math.floor(90 / (1 + 5 / 50))
    # no step limit; before the first step nothing is known but the budget
    ahead = outlook(0, None, 50, None, 0.0, seconds=0.0, budget=60.0, deadline=59.0)
    assert ahead.by_time and ahead.eta == 60.0 and ahead.end_step is None
