"""Text in, integer ids out: reading a corpus, its vocabulary, the train/validation split, and the
contiguous B-stream windows that truncated BPTT walks through.

The vocabulary is the sorted set of the corpus's characters (by code point), so it is the same on
every run and machine; it is stored in every checkpoint. Ids are kept in the most compact unsigned
dtype that fits V; the model never sees a one-hot matrix of the whole corpus, only the ids of one
window (the first layer gathers columns of W_ih, which equals multiplying by the one-hot vector).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm.errors import CorpusError
from charlstm.idcache import MAX_VOCAB, encode_file, release_pages
from charlstm.vocab import Vocab, code_points, describe_chars, id_dtype  # noqa: F401  (re-exported)


def one_hot(ids: np.ndarray, V: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """One-hot vectors of `ids`: shape ids.shape + (V,). For one window at a time, never a corpus."""
    out = np.zeros(ids.shape + (V,), dtype=dtype)  # (..., V)
    np.put_along_axis(out, np.asarray(ids, dtype=np.intp)[..., None], 1, axis=-1)
    return out


def split(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split ids into (train, val): the last `val_fraction` of the text, contiguous, is validation."""
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(2, int(round(len(ids) * val_fraction)))
    if len(ids) - n_val < 2:
        raise CorpusError(f"a corpus of {len(ids)} characters is too short to split for validation")
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def stream_length(n_ids: int, B: int) -> int:
    """Characters per stream when `n_ids` ids are cut into B contiguous streams (targets need +1)."""
    return (n_ids - 1) // B


def num_windows(n_ids: int, B: int, T: int) -> int:
    """Full (T, B) windows per pass over `n_ids` ids."""
    return stream_length(n_ids, B) // T


def window(ids: np.ndarray, B: int, T: int, k: int, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Window k of the B-stream layout: inputs x and targets y, both (T, B) ids.

    Stream b is the contiguous run ids[b*S : b*S + S + 1] (S = stream_length), so window k+1 of
    stream b continues window k of it and the hidden state carried across windows is meaningful.
    Targets are the inputs shifted by one character. `length` (≤ T) cuts a shorter last window.
    """
    S = stream_length(len(ids), B)
    steps = T if length is None else length
    start = k * T
    if B < 1 or steps < 1 or start + steps > S:
        raise IndexError(f"window {k} (T={T}, length {steps}) is outside streams of length {S}")
    index = np.arange(B)[None, :] * S + (start + np.arange(steps))[:, None]  # (T, B)
    return np.asarray(ids[index]), np.asarray(ids[index + 1])


def iter_windows(ids: np.ndarray, B: int, T: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every window of the B-stream layout in order, with a shorter last one, so all B*S
    characters are visited once (evaluation; training uses only full windows)."""
    S = stream_length(len(ids), B)
    for k in range(-(-S // T)):
        yield window(ids, B, T, k, length=min(T, S - k * T))


@dataclass(frozen=True)
class Corpus:
    """A text file encoded with a vocabulary: ids (N,) in the vocabulary's compact dtype."""

    path: Path
    vocab: Vocab
    ids: np.ndarray

    @property
    def name(self) -> str:
        return self.path.stem

    def __len__(self) -> int:
        return len(self.ids)

    def release(self) -> None:
        """Let go of the pages of a memory-mapped corpus read so far, so a long epoch's resident
        memory stays bounded (they come back from the page cache when touched again). No-op when
        the ids are in memory."""
        release_pages(self.ids)


def load_corpus(
    path: str | os.PathLike,
    vocab: Vocab | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    on_progress=None,
    max_vocab: int | None = None,
) -> Corpus:
    """Read and encode a corpus. With `vocab` (fine-tuning, resuming) every character must be in
    it; otherwise the vocabulary is built from the text. Large files are encoded once, cached and
    memory-mapped (see idcache); `on_progress(phase, bytes_done, bytes_total)` follows the work."""
    vocab, ids = encode_file(path, vocab, encoding, errors, on_progress, max_vocab or MAX_VOCAB)
    return Corpus(Path(path), vocab, ids)
