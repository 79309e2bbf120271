"""Dynamic evaluation (`inference.adapt`, `eval --adapt`, `sample --adapt`): it never looks
ahead, it leaves the static score as it was, and it learns what the text repeats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from charlstm.inference.adapt import EPS, Adapter, adapted_params, evaluate_adaptive
from charlstm.inference.loss import evaluate
from charlstm.store import checkpoint

from helpers import PANGRAMS, TINY_RUN, assert_clean_error, random_model, run_cli

NEW_PATTERN = "jumpy quiz; vexed fog. " * 40  # the pangrams' letters in an order they never take


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1×16 LSTM trained for a few seconds on the pangrams: (folder, checkpoint, text file)."""
    work = tmp_path_factory.mktemp("adapt")
    corpus = work / "pangrams.txt"
    corpus.write_text(PANGRAMS * 40, encoding="utf-8")
    result = run_cli("train", str(corpus), *TINY_RUN, "--epochs", "3", "--lr", "0.01", cwd=work)
    assert result.returncode == 0, result.stderr
    (path,) = (p for p in (work / "checkpoints").glob("pangrams*.safetensors") if ".resume." not in p.name)
    (work / "new.txt").write_text(NEW_PATTERN, encoding="utf-8")
    return work, path, work / "new.txt"


def test_the_update_is_the_rule_as_written():
    """Two updates by hand: MS the running mean of g², θ ← θ − η g/(√MS + ε) + λ(θ_trained − θ)."""
    rng = np.random.default_rng(0)
    trained = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}
    adapter = Adapter(trained, lr=0.1, decay=0.25)
    g1 = {k: rng.standard_normal(v.shape) for k, v in trained.items()}
    g2 = {k: rng.standard_normal(v.shape) for k, v in trained.items()}
    adapter.update(g1)
    adapter.update(g2)
    for k, theta0 in trained.items():
        ms1 = g1[k] ** 2
        theta1 = theta0 - 0.1 * g1[k] / (np.sqrt(ms1) + EPS)  # no pull yet: θ_0 is θ_trained
        ms2 = (g1[k] ** 2 + g2[k] ** 2) / 2
        theta2 = theta1 - 0.1 * g2[k] / (np.sqrt(ms2) + EPS) + 0.25 * (theta0 - theta1)
        np.testing.assert_allclose(adapter.params[k], theta2, rtol=1e-12)
        assert adapter.trained[k] is theta0 and not np.shares_memory(adapter.params[k], theta0)


def test_adaptation_never_looks_ahead():
    """Two texts that share their first 137 characters (over several windows, the last one cut
    in the middle): every character of the shared prefix gets the same adaptive loss, though
    the weights have moved and what follows differs."""
    V, T, P = 9, 16, 137
    config, params = random_model(V, 16, 2, dtype=np.float32, scale=0.4)
    rng = np.random.default_rng(3)
    a = rng.integers(0, V, 300).astype(np.uint8)
    b = a.copy()
    b[P:] = rng.integers(0, V, 300 - P)
    assert (a[P:] != b[P:]).any()
    la = evaluate_adaptive(params, config, a, T, lr=0.01, decay=0.01, per_char=True).char_losses
    lb = evaluate_adaptive(params, config, b, T, lr=0.01, decay=0.01, per_char=True).char_losses
    static = evaluate_adaptive(params, config, a, T, lr=0.0, decay=0.0, per_char=True).char_losses
    assert la.shape == lb.shape == (299,)
    shared = P - 1  # loss j predicts character j+1 from characters 0..j
    np.testing.assert_allclose(la[:shared], lb[:shared], rtol=1e-6, atol=0)
    assert not np.allclose(la[shared:], lb[shared:])  # the texts do differ after the prefix
    assert np.abs(la[T:shared] - static[T:shared]).max() > 1e-3  # and the weights did move


def test_rate_zero_is_the_static_loss_of_one_stream():
    """With --adapt-lr 0 the weights never move (whatever the decay): the loss is `evaluate`'s
    with one stream and windows of the same length."""
    config, params = random_model(11, 16, 2, dtype=np.float32, scale=0.4)
    ids = np.random.default_rng(1).integers(0, 11, 401).astype(np.uint8)
    static = evaluate(params, config, ids, B=1, T=25)
    for decay in (0.0, 0.3):
        adaptive = evaluate_adaptive(params, config, ids, 25, lr=0.0, decay=decay)
        assert adaptive.chars == static.chars == 400
        assert adaptive.loss == pytest.approx(static.loss, rel=1e-6)


def test_adaptation_learns_a_pattern_the_model_never_saw(trained):
    """On a text that repeats a pattern not in the training text, the adaptive loss is well below
    the static one; the trained weights are left as they were."""
    work, path, _ = trained
    ckpt = checkpoint.load(path)
    before = {k: v.copy() for k, v in ckpt.params.items()}
    ids = ckpt.vocab.encode(NEW_PATTERN)
    static = evaluate(ckpt.params, ckpt.config, ids, B=1, T=50)
    adaptive = evaluate_adaptive(ckpt.params, ckpt.config, ids, 50, lr=0.002, decay=0.0)
    assert adaptive.loss < 0.9 * static.loss, (adaptive.loss, static.loss)
    assert all(np.array_equal(before[k], v) for k, v in ckpt.params.items())


def test_adapting_to_a_seed_pulls_the_model_toward_it(trained):
    """`sample --adapt`'s weights: after reading a seed of the new pattern, the model predicts
    more of that pattern better than the trained model does."""
    _, path, _ = trained
    ckpt = checkpoint.load(path)
    seed, more = ckpt.vocab.encode(NEW_PATTERN[:500]), ckpt.vocab.encode(NEW_PATTERN[500:])
    adapted = adapted_params(ckpt.params, ckpt.config, seed, 50, lr=0.002, decay=0.0)
    assert set(adapted) == set(ckpt.params)
    before = evaluate(ckpt.params, ckpt.config, more, B=1, T=50).loss
    after = evaluate(adapted, ckpt.config, more, B=1, T=50).loss
    assert after < 0.9 * before, (after, before)
    unchanged = adapted_params(ckpt.params, ckpt.config, seed[:1], 50, 0.002, 0.0)  # nothing to learn from
    assert all(np.array_equal(unchanged[k], v) for k, v in ckpt.params.items())


def test_eval_adapt_reports_both_and_keeps_the_static_loss(trained):
    """`eval --adapt --json`: the static loss is exactly plain eval's; the adaptive one beside it,
    in nats and bits, with the time each took; the table shows both."""
    work, path, text = trained
    plain = run_cli("eval", str(text), "-c", str(path), "--json", cwd=work)
    both = run_cli("eval", str(text), "-c", str(path), "--json", "--adapt", cwd=work)
    assert plain.returncode == both.returncode == 0, (plain.stderr, both.stderr)
    plain, both = json.loads(plain.stdout), json.loads(both.stdout)
    assert "adapt" not in plain
    assert both["loss"] == plain["loss"] and both["bits_per_char"] == plain["bits_per_char"]
    adapt = both["adapt"]
    assert adapt["loss"] < both["loss"]
    assert adapt["bits_per_char"] == pytest.approx(adapt["loss"] / np.log(2))
    assert adapt["chars_evaluated"] == len(NEW_PATTERN) - 1
    assert adapt["seconds"] > 0 and both["seconds"] > 0
    table = run_cli("eval", str(text), "-c", str(path), "--adapt", cwd=work)
    assert table.returncode == 0, table.stderr
    for row in ("loss", "adaptive loss", "adaptive bits per char", "time"):
        assert row in table.stdout, table.stdout
    assert f"{plain['loss']:.4f} nats/char" in table.stdout


def test_eval_adapt_at_rate_zero_matches_one_stream(trained):
    work, path, text = trained
    result = run_cli("eval", str(text), "-c", str(path), "--json", "--adapt", "--adapt-lr", "0", "-B", "1", "-T", "50")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["adapt"]["loss"] == pytest.approx(report["loss"], rel=1e-6)


def test_sample_adapts_to_the_seed_file(trained):
    work, path, text = trained
    result = run_cli("sample", "-c", str(path), "--seed-file", str(text), "--adapt", "-n", "40", "--random-seed", "1")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.rstrip("\n")) == 40
    assert "adapting to the seed" in result.stderr


@pytest.mark.parametrize(
    ("command", "args", "fragment"),
    [
        ("eval", ["--adapt-lr", "-0.1"], "--adapt-lr"),
        ("eval", ["--adapt-decay", "1.5"], "--adapt-decay"),
        ("eval", ["--adapt-window", "0"], "--adapt-window"),
        ("sample", ["--adapt-lr", "-1"], "--adapt-lr"),
        ("sample", ["--adapt-decay", "-0.5"], "--adapt-decay"),
        ("sample", ["--adapt-lr", "nan"], "--adapt-lr"),
    ],
)
def test_bad_adapt_options_are_usage_errors(trained, command, args, fragment):
    work, path, text = trained
    where = [str(text)] if command == "eval" else ["--seed-file", str(text)]
    result = run_cli(command, *where, "-c", str(path), "--adapt", *args, cwd=work)
    assert_clean_error(result, fragment, code=2)
