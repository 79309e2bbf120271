"""Reading text, the vocabulary, the split and the B-stream windows."""

from __future__ import annotations

import numpy as np
import pytest

from charlstm.errors import CorpusError, VocabularyError
from charlstm.text.corpus import (
    Vocab,
    iter_windows,
    load_corpus,
    num_windows,
    one_hot,
    split,
    stream_length,
    window,
)
from charlstm.text.reading import read_text


def test_vocabulary_is_sorted_and_independent_of_order():
    a = Vocab.from_text("banana bread\n")
    b = Vocab.from_text("\nread bnaaab")
    assert a == b
    assert a.chars == ("\n", " ", "a", "b", "d", "e", "n", "r")


def test_encode_decode_round_trip_and_compact_dtype():
    text = "Grüße, 世界! 🌊\n"
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.uint8
    assert vocab.decode(ids) == text
    big = Vocab(tuple(chr(0x4E00 + k) for k in range(300)))
    assert big.encode("".join(big.chars[::7])).dtype == np.uint16


def test_encode_rejects_unknown_characters_by_name():
    vocab = Vocab.from_text("abc")
    with pytest.raises(VocabularyError, match="'z'"):
        vocab.encode("abz")
    assert vocab.unknown("abzxz") == ["x", "z"]


def test_one_hot():
    ids = np.array([[0, 2], [1, 0]], dtype=np.uint8)
    oh = one_hot(ids, 3)
    assert oh.shape == (2, 2, 3) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.argmax(-1), ids)
    np.testing.assert_array_equal(oh.sum(-1), 1)


def test_split_is_contiguous_tail():
    ids = np.arange(100)
    train, val = split(ids, 0.1)
    np.testing.assert_array_equal(train, np.arange(90))
    np.testing.assert_array_equal(val, np.arange(90, 100))


def test_windows_continue_each_stream_and_targets_are_shifted():
    ids = np.arange(1000)
    B, T = 4, 10
    S = stream_length(len(ids), B)
    assert num_windows(len(ids), B, T) == S // T
    x0, y0 = window(ids, B, T, 0)
    x1, _ = window(ids, B, T, 1)
    assert x0.shape == (T, B)
    np.testing.assert_array_equal(y0, x0 + 1)  # targets: the next character
    np.testing.assert_array_equal(x1[0], x0[-1] + 1)  # window 1 continues window 0, per stream
    np.testing.assert_array_equal(x0[0], np.arange(B) * S)  # streams start S apart


def test_iter_windows_visits_every_character_once():
    ids = np.arange(203)
    seen = np.concatenate([x.T.reshape(-1) for x, _ in iter_windows(ids, 4, 7)])
    B, S = 4, stream_length(203, 4)
    assert sorted(seen.tolist()) == list(range(B * S))


def test_read_text_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(CorpusError, match="is a directory"):
        read_text(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(CorpusError, match="empty"):
        read_text(empty)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(CorpusError, match="byte offset 3"):
        read_text(latin)
    assert read_text(latin, encoding="latin-1") == "café au lait"
    assert read_text(latin, errors="replace") == "caf\ufffd au lait"
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"ELF\x00\x01\x02")
    with pytest.raises(CorpusError, match="binary"):
        read_text(binary)


def test_byte_order_mark_is_not_part_of_the_text(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello")
    assert read_text(path) == "hello"


def test_load_corpus_with_a_given_vocabulary(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcabc", encoding="utf-8")
    corpus = load_corpus(path)
    assert corpus.vocab.chars == ("a", "b", "c") and len(corpus) == 6
    with pytest.raises(VocabularyError, match="'c'"):
        load_corpus(path, Vocab(("a", "b")))
