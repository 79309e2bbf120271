"""A run told only its minutes chooses its model: the rule (`training.sizing`), the measured and
cached speeds it is fed (`training.speeds`), and when the plan applies it (`training.plan`)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charlstm.config import ModelConfig, TrainConfig, default_of
from charlstm.nn import threads
from charlstm.store import checkpoint
from charlstm.training import sizing, speeds
from charlstm.training.loop import train_plan
from charlstm.training.plan import plan_run
from charlstm.training.sizing import CANDIDATES, Shape, choose, dropout_for

SMALL = {"seq_len": 16, "sample_length": 0, "kernels": "numpy", "threads": 1}
# chars/s, cheapest first: about what a 2-core machine steps at batch 64 (2×256: 24k)
SPEEDS = dict(zip(CANDIDATES, (60_000.0, 24_000.0, 12_000.0)))
TABLE = {Shape(1, 8): 0.0, Shape(1, 16): 4.0, Shape(2, 16): 10.0}  # a table of our own, for the rule's mechanism


# ------------------------------------------------------------------------------ the rule


def test_the_costliest_candidate_whose_passes_reach_its_minimum_is_chosen():
    fast = {Shape(1, 8): 4000.0, Shape(1, 16): 2000.0, Shape(2, 16): 1000.0}
    chars = 100_000
    for seconds, expected in ((1500, Shape(2, 16)), (300, Shape(1, 16)), (100, Shape(1, 8))):
        chosen = choose(chars, seconds, fast, min_passes=TABLE)
        assert chosen.shape == expected, seconds
        assert chosen.chars_per_s == fast[expected]
        assert chosen.passes == pytest.approx(fast[expected] * seconds * sizing.USABLE / chars)
    # a costlier model is slower, so it gets fewer passes: it is taken only once they reach its minimum
    at_edge = 10 * chars / (1000.0 * sizing.USABLE)  # seconds at which 2×16 makes exactly 10 passes
    assert choose(chars, at_edge * 1.001, fast, min_passes=TABLE).shape == Shape(2, 16)
    assert choose(chars, at_edge * 0.999, fast, min_passes=TABLE).shape == Shape(1, 16)


def test_none_reaching_its_minimum_falls_back_to_the_cheapest():
    table = {s: 100.0 for s in TABLE}
    chosen = choose(10**9, 60, {s: 1000.0 for s in TABLE}, min_passes=table)
    assert chosen.shape == Shape(1, 8) and chosen.passes < 1


def test_the_reason_says_what_was_chosen_and_why_in_one_line():
    chosen = choose(1_000_000, 600, SPEEDS)
    reason = chosen.reason
    assert "\n" not in reason
    assert reason.startswith(f"{chosen.shape.num_layers}×{chosen.shape.hidden_size}, dropout {chosen.dropout:g}: ~")
    assert "passes over 1.0 M chars fit in 10 minutes at " in reason
    assert reason.endswith("chars/s; give -H/-L/--dropout to choose yourself")
    one = choose(50_000, 60, SPEEDS).reason
    assert "over 50 k chars fit in 1 minute at" in one


def test_a_bigger_budget_never_picks_a_cheaper_model():
    for cap in (None, 3.0):
        order = [CANDIDATES.index(choose(2_000_000, 10 * 1.3**k, SPEEDS, cap).shape) for k in range(40)]
        assert order == sorted(order), cap
        assert len(set(order)) > 1 or cap is not None  # the sweep crosses the table's steps


def test_dropout_grows_with_the_model():
    drops = [dropout_for(shape) for shape in CANDIDATES]
    assert drops == sorted(drops) and len(set(drops)) == len(drops)
    chosen = choose(1_000_000, 600, SPEEDS)
    assert chosen.dropout == dropout_for(chosen.shape)


def test_the_fitted_table_picks_what_won_in_the_fit():
    """The sweep's winners (bench/README.md): at 24k chars/s for 2×256, 10 minutes on 1.0 M
    characters is 2×256 and 2 minutes 2×128; on 488 k characters 10 minutes is 2×384."""
    assert choose(1_003_855, 600, SPEEDS).shape == Shape(2, 256)
    assert choose(1_003_855, 120, SPEEDS).shape == Shape(2, 128)
    assert choose(487_907, 600, SPEEDS).shape == Shape(2, 384)
    assert choose(487_907, 120, SPEEDS).shape == Shape(2, 256)


def test_a_dropout_given_is_kept_and_said_to_be_yours():
    chosen = choose(1_000_000, 600, SPEEDS, dropout=0.05)
    assert chosen.dropout == 0.05
    assert "dropout 0.05 (yours)" in chosen.reason and chosen.reason.endswith("give -H/-L to choose yourself")


def test_a_step_or_epoch_limit_caps_the_passes_and_is_named():
    free = choose(1_000_000, 6000, SPEEDS)
    capped = choose(1_000_000, 6000, SPEEDS, max_passes=1.5, limit="--epochs 1")
    assert free.passes > 1.5 and capped.passes == 1.5
    assert "~1.5 passes (as --epochs 1 allows)" in capped.reason


def test_every_candidate_is_in_the_table_and_the_table_is_checked():
    assert set(CANDIDATES) == set(sizing.MIN_PASSES)
    with pytest.raises(ValueError, match="1x8"):
        choose(1000, 60, {Shape(1, 8): 100.0})
    assert Shape.parse(str(Shape(3, 256))) == Shape(3, 256)


# ------------------------------------------------------------------------------ the speeds, measured and cached


def counting(calls: list[str]) -> speeds.TimeStep:
    """The real `speeds.time_step`, counting the shapes it times."""

    def time_one(config: ModelConfig, cfg: TrainConfig) -> speeds.StepCost:
        calls.append(f"{config.num_layers}x{config.hidden_size}")
        return speeds.time_step(config, cfg)

    return time_one


def test_speeds_are_measured_once_and_then_read_from_the_cache(tmp_path):
    cache = tmp_path / "cache" / "speeds.json"
    config, cfg = ModelConfig(30), TrainConfig(batch_size=4, **SMALL)
    shapes = (Shape(1, 8), Shape(1, 16))
    calls: list[str] = []
    first = speeds.measure(config, cfg, shapes, cache, counting(calls), busy_cores=math.inf)
    assert calls == ["1x8", "1x16"] and not first.cached and first.threads == 1
    assert list(first.speeds) == list(shapes) and all(v > 0 for v in first.speeds.values())
    written = cache.stat().st_mtime_ns
    again = speeds.measure(config, cfg, shapes, cache, counting(calls))
    assert calls == ["1x8", "1x16"] and again.cached and again.speeds == first.speeds
    assert cache.stat().st_mtime_ns == written  # read, not written
    more = speeds.measure(config, cfg, (*shapes, Shape(2, 8)), cache, counting(calls), busy_cores=math.inf)
    assert calls[2:] == ["2x8"] and more.speeds[Shape(1, 8)] == first.speeds[Shape(1, 8)]  # only the new one
    speeds.measure(config, TrainConfig(batch_size=8, **SMALL), shapes, cache, counting(calls), busy_cores=math.inf)
    assert calls[3:] == ["1x8", "1x16"]  # another batch size: measured again
    cache.write_text("{not json", encoding="utf-8")
    speeds.measure(config, cfg, shapes, cache, counting(calls), busy_cores=math.inf)
    assert calls[5:] == ["1x8", "1x16"] and '"format"' in cache.read_text(encoding="utf-8")
    broken = cache.read_text(encoding="utf-8").replace('"1x8": [', '"1x8": ["x", ')  # an entry spoilt by hand
    cache.write_text(broken, encoding="utf-8")
    speeds.measure(config, cfg, shapes, cache, counting(calls), busy_cores=math.inf)
    assert calls[7:] == ["1x8"]  # measured again, the good entry kept


def test_a_speed_measured_while_another_process_keeps_a_core_busy_is_not_cached(tmp_path):
    cache = tmp_path / "speeds.json"
    config, cfg = ModelConfig(30), TrainConfig(batch_size=4, **SMALL)
    if not threads.OtherLoad(threads.affinity()).available():
        pytest.skip("other processes' CPU time cannot be read here (/proc/stat, or a CPU quota)")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:

        def busy_while_timing(config: ModelConfig, cfg: TrainConfig) -> speeds.StepCost:
            time.sleep(0.5)  # the other process spins meanwhile: about a core of other load
            return speeds.time_step(config, cfg)

        measured = speeds.measure(config, cfg, (Shape(1, 8),), cache, busy_while_timing)
    finally:
        spinner.kill()
        spinner.wait()
    assert measured.other_load is not None and measured.other_load > speeds.BUSY_CORES
    assert measured.speeds[Shape(1, 8)] > 0 and not cache.exists()  # used for this run, not kept


def test_the_speed_follows_the_window_length():
    cost = speeds.StepCost(per_char=1e-5, fixed=0.01)
    assert cost.chars_per_s(4, 100) > cost.chars_per_s(4, 20)  # the fixed part is shared by more characters
    assert cost.chars_per_s(4, 100) == pytest.approx(400 / (400e-5 + 0.01))


# ------------------------------------------------------------------------------ when the plan chooses


class Fake:
    """An injected `measure`: SPEEDS scaled by `scale`, counting its calls."""

    def __init__(self, scale: float = 1.0) -> None:
        self.calls = 0
        self.scale = scale

    def __call__(self, config: ModelConfig, cfg: TrainConfig) -> speeds.Measured:
        self.calls += 1
        return speeds.Measured({s: v * self.scale for s, v in SPEEDS.items()}, threads=1)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


DEFAULT_SHAPE = (default_of(ModelConfig, "num_layers"), default_of(ModelConfig, "hidden_size"))
DEFAULT_DROPOUT = default_of(TrainConfig, "dropout")


def shape_of(plan) -> tuple[int, int]:
    return plan.config.num_layers, plan.config.hidden_size


def test_the_minutes_alone_choose_the_model_and_dropout(tiny_corpus, in_tmp):
    fake = Fake(scale=1e-3)  # a slow machine: the cheapest shape, few passes
    plan = plan_run(tiny_corpus, {}, {**SMALL, "max_minutes": 1}, measure=fake)
    assert fake.calls == 1 and plan.sizing is not None
    chosen = Shape.parse(plan.sizing["shape"])
    assert shape_of(plan) == (chosen.num_layers, chosen.hidden_size) == (2, 128)
    assert plan.train.dropout == plan.sizing["dropout"] == dropout_for(chosen)
    assert plan.notes == (plan.sizing["reason"],)
    assert plan.model_path == Path("checkpoints/tiny.safetensors")  # named from the options given
    fast = plan_run(tiny_corpus, {}, {**SMALL, "max_minutes": 1}, fresh=True, measure=Fake(scale=10))
    assert shape_of(fast) == (2, 384) and fast.train.dropout == sizing.DROPOUT[Shape(2, 384)]


@pytest.mark.parametrize(
    "model, train",
    [
        ({"hidden_size": 64}, {"max_minutes": 1}),
        ({"num_layers": 1}, {"max_minutes": 1}),
        ({"cell": "gru"}, {"max_minutes": 1}),  # the rule is fitted for the LSTM
        ({}, {"max_steps": 5}),
        ({}, {"epochs": 1}),
    ],
    ids=["hidden-size", "layers", "gru", "max-steps", "epochs"],
)
def test_no_choice_without_the_minutes_or_with_a_size_given(tiny_corpus, in_tmp, model, train):
    fake = Fake()
    plan = plan_run(tiny_corpus, model, {**SMALL, **train}, measure=fake)
    assert fake.calls == 0 and plan.sizing is None and plan.notes == ()
    expected = (model.get("num_layers", DEFAULT_SHAPE[0]), model.get("hidden_size", DEFAULT_SHAPE[1]))
    assert shape_of(plan) == expected and plan.train.dropout == DEFAULT_DROPOUT


def test_a_dropout_given_is_kept_while_the_shape_is_chosen(tiny_corpus, in_tmp):
    plan = plan_run(tiny_corpus, {}, {**SMALL, "max_minutes": 1, "dropout": 0.05}, measure=Fake(scale=10))
    assert shape_of(plan) == (2, 384) and plan.train.dropout == 0.05 and "(yours)" in plan.notes[0]


def test_a_step_limit_with_the_minutes_caps_the_passes(tiny_corpus, in_tmp):
    plan = plan_run(tiny_corpus, {}, {**SMALL, "max_minutes": 10, "max_steps": 2}, measure=Fake())
    B, T = plan.train.batch_size, plan.train.seq_len
    train_chars = len(plan.corpus.split(plan.train.val_fraction)[0])
    assert plan.sizing["passes"] == pytest.approx(2 * B * T / train_chars, abs=1e-3)
    assert "(as --max-steps 2 allows)" in plan.notes[0]


def test_the_choice_is_stored_and_a_resume_keeps_it_without_measuring(tiny_corpus, in_tmp):
    plan = plan_run(tiny_corpus, {}, {**SMALL, "max_minutes": 1, "max_steps": 2}, measure=Fake(scale=1e-3))
    train_plan(plan)
    saved = checkpoint.load(plan.resume_path)
    assert saved.train["sizing"] == plan.sizing
    assert (saved.config.num_layers, saved.config.hidden_size) == shape_of(plan)
    assert saved.train["config"]["dropout"] == plan.train.dropout
    assert checkpoint.load(plan.model_path).train["sizing"]["reason"] == plan.notes[0]
    fake = Fake(scale=10)  # were it measured again, it would choose 2×384
    again = plan_run(None, {}, {"max_steps": 3, "max_minutes": 1}, resume=plan.resume_path, measure=fake)
    assert fake.calls == 0 and again.sizing is None
    assert shape_of(again) == shape_of(plan) and again.train.dropout == plan.train.dropout
    train_plan(again)
    assert checkpoint.load(plan.resume_path).train["sizing"] == plan.sizing  # still there after the resume


def test_init_from_keeps_its_model(tiny_corpus, in_tmp):
    first = plan_run(tiny_corpus, {"hidden_size": 16, "num_layers": 1}, {**SMALL, "max_steps": 1})
    train_plan(first)
    fake = Fake()
    plan = plan_run(
        tiny_corpus,
        {},
        {**SMALL, "max_minutes": 1},
        init_from=first.model_path,
        out=in_tmp / "ft.safetensors",
        measure=fake,
    )
    assert fake.calls == 0 and shape_of(plan) == (1, 16) and plan.sizing is None
