"""The average of the weights (--ema): its arithmetic against a plain loop, that validation,
samples and the model file use it while training goes on undisturbed, and that a diverged step
takes it back with the weights."""

from __future__ import annotations

import numpy as np
import pytest

from charlstm.config import TrainConfig
from charlstm.engines.numpy_engine import NumpyEngine
from charlstm.inference.loss import evaluate
from charlstm.nn import model
from charlstm.nn.average import WeightAverage
from charlstm.store import checkpoint
from charlstm.text.corpus import load_corpus, split
from charlstm.training.events import EpochEnd, Step
from charlstm.training.loop import train

SMALL = dict(seq_len=16, batch_size=4, sample_length=20, kernels="numpy")


def plain_average(thetas: list[dict[str, np.ndarray]], decays: list[float]) -> dict[str, np.ndarray]:
    """Σ c_i θ_i / Σ c_i, with c_i = (1 − d_i) ∏_{j>i} d_j: each update's share of the EMA."""
    c = [(1 - d) * np.prod(decays[i + 1 :]) for i, d in enumerate(decays)]
    return {k: sum(ci * th[k] for ci, th in zip(c, thetas)) / sum(c) for k in thetas[0]}


def test_the_average_is_the_bias_corrected_ema_even_when_the_decay_changes():
    rng = np.random.default_rng(0)
    thetas = [{"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)} for _ in range(9)]
    decays = [0.8] * 5 + [0.5] * 4  # a resumed run with another --ema
    avg = WeightAverage(thetas[0], 0.8)
    assert avg.value(thetas[0]) is thetas[0]  # before any update: the weights themselves
    for i, (theta, d) in enumerate(zip(thetas, decays)):
        avg.decay = d
        avg.update(theta)
        expected = plain_average(thetas[: i + 1], decays[: i + 1])
        for k, v in avg.value(theta).items():
            np.testing.assert_allclose(v, expected[k], rtol=1e-12, atol=1e-14)
    assert avg.weight == pytest.approx(1 - 0.8**5 * 0.5**4)
    fresh = WeightAverage(thetas[0], 0.5)
    fresh.load(avg.sums, avg.weight)
    for k, v in fresh.value(thetas[0]).items():
        np.testing.assert_array_equal(v, avg.value(thetas[0])[k])
    with pytest.raises(KeyError, match="average.b"):
        fresh.load({"w": avg.sums["w"]}, avg.weight)


def run(corpus, tmp_path, cfg, name, **kwargs):
    events = []
    config = model.ModelConfig(corpus.vocab.size, 24, 2)
    train(corpus, config, cfg, tmp_path / f"{name}.safetensors", events.append, **kwargs)
    return events


def test_validation_and_the_model_file_use_the_average_and_training_is_undisturbed(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    plain = run(corpus, tmp_path, TrainConfig(**SMALL, epochs=2, dropout=0.1), "plain")
    averaged = run(corpus, tmp_path, TrainConfig(**SMALL, epochs=2, dropout=0.1, ema=0.9), "ema")
    steps = lambda events: [e.loss for e in events if isinstance(e, Step)]  # noqa: E731
    assert steps(averaged) == steps(plain)  # the same training, to the bit
    ends = [e for e in averaged if isinstance(e, EpochEnd)]
    assert ends[-1].best and ends[-1].val_loss != [e for e in plain if isinstance(e, EpochEnd)][-1].val_loss

    resume = checkpoint.load(tmp_path / "ema.resume.safetensors")
    average = {k: np.divide(resume.extra[f"average.{k}"], resume.train["average_weight"]) for k in resume.params}
    _, val_ids = split(corpus.ids, 0.05)
    assert evaluate(average, resume.config, val_ids, 4, 16).loss == ends[-1].val_loss
    best = checkpoint.load(tmp_path / "ema.safetensors")
    assert not best.extra and best.train["best_val_loss"] == ends[-1].val_loss
    for k, v in best.params.items():
        np.testing.assert_array_equal(v, average[k])  # the model file is the average…
        assert not np.array_equal(resume.params[k], v)  # …the resume file the weights trained
    plain_resume = checkpoint.load(tmp_path / "plain.resume.safetensors")
    for k, v in resume.params.items():
        np.testing.assert_array_equal(v, plain_resume.params[k])


def test_restoring_a_snapshot_takes_the_average_back_too():
    config = model.ModelConfig(6, 8, 1)
    engine = NumpyEngine(
        config, TrainConfig(batch_size=2, ema=0.7, kernels="numpy"), model.init_params(config), np.float64
    )
    x = np.random.default_rng(1).integers(0, 6, (5, 2)).astype(np.uint8)
    engine.forward_backward(x, x, engine.zero_state())
    engine.update(0.01)
    snap = engine.snapshot()
    kept = {k: v.copy() for k, v in engine.model_numpy().items()}
    for _ in range(3):
        engine.forward_backward(x, x, engine.zero_state())
        engine.update(0.01)
    assert not np.array_equal(engine.model_numpy()["head.weight"], kept["head.weight"])
    engine.restore(snap)
    for k, v in engine.model_numpy().items():
        np.testing.assert_array_equal(v, kept[k])
