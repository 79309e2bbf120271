"""Sampling: temperature, top-k, top-p, reproducibility, stop strings, batches, Unicode."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from charlstm.inference.generate import Sampling, draw, filter_probs, sample, stream_text
from charlstm.text.corpus import Vocab

from helpers import random_model


@pytest.fixture
def logits():
    return np.random.default_rng(0).standard_normal((8, 30)) * 2.0


def entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


def test_lower_temperature_lowers_entropy():
    """Measured on a real model's next-character distributions."""
    config, params = random_model(12, 16, 2, dtype=np.float32, scale=0.8)
    from charlstm.inference.generate import prime

    model_logits, _ = prime(params, config, np.array([1, 2, 3], dtype=np.uint8), num_samples=1)
    entropies = [entropy(filter_probs(model_logits, t))[0] for t in (2.0, 1.0, 0.7, 0.4, 0.1)]
    assert all(a > b for a, b in itertools.pairwise(entropies)), entropies
    assert entropy(filter_probs(model_logits, 0))[0] == 0  # greedy: all mass on the argmax


def test_top_k_support_is_exactly_the_k_most_likely(logits):
    for k in (1, 3, 10):
        probs = filter_probs(logits, 1.0, top_k=k)
        top = np.argsort(-logits, axis=1)[:, :k]
        for row in range(len(logits)):
            assert set(np.flatnonzero(probs[row])) == set(top[row])
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    rng = np.random.default_rng(1)
    probs = filter_probs(logits, 1.0, top_k=3)
    top3 = np.argsort(-logits, axis=1)[:, :3]
    for _ in range(2000):
        ids = draw(probs, rng)
        assert all(ids[r] in top3[r] for r in range(len(ids)))


def test_top_p_keeps_the_smallest_set_reaching_p(logits):
    full = filter_probs(logits, 1.0)
    for p in (0.1, 0.5, 0.9, 0.99):
        probs = filter_probs(logits, 1.0, top_p=p)
        for row in range(len(logits)):
            order = np.argsort(-full[row])
            cum = np.cumsum(full[row][order])
            m = int(np.searchsorted(cum, p) + 1)  # smallest m with cum[m-1] >= p
            kept = set(np.flatnonzero(probs[row]))
            assert kept == set(order[:m])
            assert full[row][order[: m - 1]].sum() < p <= full[row][order[:m]].sum() + 1e-12
            np.testing.assert_allclose(probs[row][order[:m]], full[row][order[:m]] / cum[m - 1])
    np.testing.assert_allclose(filter_probs(logits, 1.0, top_p=1.0), full)


def test_draw_follows_the_distribution():
    probs = np.array([[0.1, 0.0, 0.6, 0.3]])
    rng = np.random.default_rng(2)
    counts = np.bincount([draw(probs, rng)[0] for _ in range(20000)], minlength=4) / 20000
    assert counts[1] == 0
    np.testing.assert_allclose(counts, probs[0], atol=0.015)


def model_and_vocab(text="abcdefgh \n"):
    vocab = Vocab.from_text(text)
    config, params = random_model(vocab.size, 16, 2, dtype=np.float32, scale=0.5)
    return config, params, vocab


def test_same_random_seed_reproduces_and_batches_are_independent():
    config, params, vocab = model_and_vocab()
    a = sample(params, config, vocab, "ab", 50, num_samples=3, rng=np.random.default_rng(5))
    b = sample(params, config, vocab, "ab", 50, num_samples=3, rng=np.random.default_rng(5))
    c = sample(params, config, vocab, "ab", 50, num_samples=3, rng=np.random.default_rng(6))
    assert a == b and a != c
    assert len(set(a)) == 3 and all(s.startswith("ab") and len(s) == 52 for s in a)


def test_top_k_one_is_greedy():
    config, params, vocab = model_and_vocab()
    greedy = sample(params, config, vocab, "abc", 40, Sampling(temperature=0))
    k1 = sample(params, config, vocab, "abc", 40, Sampling(top_k=1), rng=np.random.default_rng(9))
    assert greedy == k1


def test_stop_string_ends_each_sample_after_it():
    config, params, vocab = model_and_vocab("ab")
    texts = ["", "", "", ""]
    for chars in stream_text(params, config, vocab, "a", 500, num_samples=4, rng=np.random.default_rng(3), stop="bb"):
        for i, ch in enumerate(chars):
            texts[i] += ch
    for text in texts:
        assert (text.endswith("bb") and text.count("bb") == 1) or (len(text) == 500 and "bb" not in text)
    assert any(len(t) < 500 for t in texts)


def test_empty_seed_and_unicode():
    text = "Grüße 🌊 世界 ça\n"
    config, params, vocab = model_and_vocab(text)
    out = sample(params, config, vocab, "", 30, rng=np.random.default_rng(0))[0]
    assert len(out) == 30 and set(out) <= set(text)
    seeded = sample(params, config, vocab, "世界🌊", 10, rng=np.random.default_rng(0))[0]
    assert seeded.startswith("世界🌊") and len(seeded) == 13
