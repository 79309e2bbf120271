"""Large corpora: streaming decode across chunk boundaries, the id cache, memory mapping."""

from __future__ import annotations

import os

import numpy as np
import pytest

from charlstm.errors import CorpusError, VocabularyError
from charlstm.text import idcache, reading
from charlstm.text.vocab import Vocab

TEXT = "Grüße aus Köln! 世界は広い 🌊🐟\nΑβγ δέλτα — ещё раз.\n" * 50


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 bytes, so multi-byte characters straddle chunk boundaries everywhere."""
    monkeypatch.setattr(reading, "CHUNK_BYTES", 7)


def test_chunked_decoding_equals_whole_decoding(tmp_path, small_chunks):
    path = tmp_path / "u.txt"
    path.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())
    pieces = list(reading.decoded_chunks(path))
    assert len(pieces) > 100
    assert "".join(pieces) == TEXT  # the byte-order mark is dropped


def test_decode_error_offset_is_exact_across_chunks(tmp_path, small_chunks):
    data = TEXT.encode()
    bad = 1000 + data[1000:].index(b"\xc3")  # the start of a 2-byte character
    path = tmp_path / "bad.txt"
    path.write_bytes(data[:bad] + b"\xff" + data[bad + 1 :])
    with pytest.raises(CorpusError, match=f"byte offset {bad};"):
        list(reading.decoded_chunks(path))
    path.write_bytes(data + b"\xe4\xb8")  # a character cut off at the end of the file
    with pytest.raises(CorpusError, match=f"byte offset {len(data)};"):
        list(reading.decoded_chunks(path))
    path.write_bytes(data[:500] + b"\x00" + data[500:])
    with pytest.raises(CorpusError, match="NUL byte at offset 500"):
        list(reading.decoded_chunks(path))


def test_cached_encoding_is_memory_mapped_and_reused(tmp_path, small_chunks):
    path = tmp_path / "big.txt"
    path.write_text(TEXT, encoding="utf-8")
    cache = tmp_path / "cache"
    vocab, ids = idcache.encode_file(path, cache_dir=cache, cache_min_bytes=0)
    assert idcache.is_mapped(ids) and ids.dtype == np.uint8 and not ids.flags.writeable
    assert vocab == Vocab.from_text(TEXT) and vocab.decode(ids) == TEXT
    files = sorted(p.suffix for p in cache.iterdir())
    assert files == [".ids", ".json"]
    phases = []
    _vocab2, ids2 = idcache.encode_file(
        path, cache_dir=cache, cache_min_bytes=0, on_progress=lambda *a: phases.append(a)
    )
    assert phases == []  # second run: nothing decoded again
    np.testing.assert_array_equal(ids2, ids)


def test_changed_file_invalidates_the_cache(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text(TEXT, encoding="utf-8")
    cache = tmp_path / "cache"
    idcache.encode_file(path, cache_dir=cache, cache_min_bytes=0)
    path.write_text(TEXT.replace("Köln", "Kiel"), encoding="utf-8")
    os.utime(path, ns=(1, 1))
    vocab, ids = idcache.encode_file(path, cache_dir=cache, cache_min_bytes=0)
    assert "Kiel" in vocab.decode(ids)


def test_given_vocabulary_remaps_through_a_derived_cache(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("abcabc\n" * 100, encoding="utf-8")
    cache = tmp_path / "cache"
    wider = Vocab(tuple("\nabcdz"))
    vocab, ids = idcache.encode_file(path, wider, cache_dir=cache, cache_min_bytes=0)
    assert vocab == wider and vocab.decode(ids) == "abcabc\n" * 100
    with pytest.raises(VocabularyError, match="'c'"):
        idcache.encode_file(path, Vocab(tuple("\nab")), cache_dir=cache, cache_min_bytes=0)


def test_unwritable_cache_falls_back_to_memory(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text(TEXT, encoding="utf-8")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    vocab, ids = idcache.encode_file(path, cache_dir=blocker / "cache", cache_min_bytes=0)
    assert not idcache.is_mapped(ids) and vocab.decode(ids) == TEXT


def test_huge_vocabulary_is_refused_before_allocating(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_text("".join(chr(0x4E00 + k) for k in range(3000)), encoding="utf-8")
    with pytest.raises(CorpusError, match="more than 1,000 distinct characters.*--max-vocab"):
        idcache.encode_file(path, max_vocab=1000)
    vocab, _ = idcache.encode_file(path, max_vocab=5000)
    assert vocab.size == 3000 and vocab.dtype == np.uint16


def test_released_pages_leave_the_ids_intact(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text(TEXT * 20, encoding="utf-8")
    _vocab, ids = idcache.encode_file(path, cache_dir=tmp_path / "cache", cache_min_bytes=0)
    before = ids[::97].copy()
    idcache.release_pages(ids[10:])  # a view: the mapping behind it is found
    np.testing.assert_array_equal(ids[::97], before)
    idcache.release_pages(np.arange(5))  # an in-memory array: nothing to do
