"""`evaluate` and `charlstm eval` agree with the training loop's own loss computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from charlstm.inference.loss import evaluate
from charlstm.nn import model
from charlstm.store import checkpoint
from charlstm.text.corpus import num_windows, window
from charlstm.text.vocab import Vocab

from helpers import assert_clean_error, random_model, run_cli


def test_evaluate_equals_the_training_loss_over_an_epoch():
    """With fixed weights, the mean of the per-window losses that training computes over one
    epoch (carrying state across windows) equals evaluate() on the same ids."""
    V, B, T = 10, 4, 8
    config, params = random_model(V, 16, 2, dtype=np.float32, scale=0.4)
    ids = np.random.default_rng(0).integers(0, V, B * T * 5 + 1).astype(np.uint8)  # 5 full windows
    state = model.zero_state(config, B)
    losses = []
    for k in range(num_windows(len(ids), B, T)):
        x, y = window(ids, B, T, k)
        loss, _, state, _ = model.loss_and_grads(params, config, x, y, state)
        losses.append(loss)
    result = evaluate(params, config, ids, B, T)
    assert result.chars == B * T * 5
    assert result.loss == pytest.approx(float(np.mean(losses)), rel=1e-5)
    assert result.bits_per_char == pytest.approx(result.loss / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(result.loss))


def test_evaluate_does_not_depend_on_the_window_length():
    config, params = random_model(7, 8, 1, dtype=np.float64)
    ids = np.random.default_rng(1).integers(0, 7, 301).astype(np.uint8)
    a = evaluate(params, config, ids, B=3, T=7)
    b = evaluate(params, config, ids, B=3, T=100)
    assert a.chars == b.chars == 300
    assert a.loss == pytest.approx(b.loss, rel=1e-10)


def test_eval_cli_matches_the_library(tmp_path):
    vocab = Vocab.from_text("abcdefgh .\n")
    config, params = random_model(vocab.size, 16, 2, dtype=np.float32, scale=0.4)
    path = checkpoint.save(checkpoint.Checkpoint(config, vocab, params), tmp_path / "m.safetensors")
    text = "a bad cafe. " * 60 + "ZZ ü\n"
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    result = run_cli("eval", str(path), str(tmp_path / "t.txt"), "--json", "-B", "8", "-T", "20")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ids, unknown = vocab.encode_known(text)
    expected = evaluate(params, config, ids, 8, 20)
    assert report["loss"] == pytest.approx(expected.loss, rel=1e-6)
    assert report["chars_evaluated"] == expected.chars
    assert report["chars_outside_vocab"] == unknown == 3 and report["unknown_chars"] == ["Z", "ü"]
    assert report["bits_per_char"] == pytest.approx(expected.loss / math.log(2), rel=1e-6)
    table = run_cli("eval", str(path), str(tmp_path / "t.txt"), "-B", "8", "-T", "20")
    assert "bits per char" in table.stdout and "outside vocabulary" in table.stdout


def test_eval_errors(tmp_path):
    vocab = Vocab.from_text("ab")
    config, params = random_model(2, 4, 1, dtype=np.float32)
    path = checkpoint.save(checkpoint.Checkpoint(config, vocab, params), tmp_path / "m.safetensors")
    (tmp_path / "other.txt").write_text("xyz", encoding="utf-8")
    assert_clean_error(run_cli("eval", str(path), str(tmp_path / "other.txt")), "nothing to score")
    assert_clean_error(run_cli("eval", str(path), str(tmp_path / "nope.txt")), "no such file")
    assert_clean_error(
        run_cli("eval", str(tmp_path / "nope.safetensors"), str(tmp_path / "other.txt")), "no such checkpoint"
    )
