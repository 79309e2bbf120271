"""Text in, integer ids out: reading a corpus, its vocabulary, the train/validation split, and the
contiguous B-stream windows that truncated BPTT walks through.

The vocabulary is the sorted set of the corpus's characters (by code point), so it is the same on
every run and machine; it is stored in every checkpoint. Ids are kept in the most compact unsigned
dtype that fits V; the model never sees a one-hot matrix of the whole corpus, only the ids of one
window (the first layer gathers columns of W_ih, which equals multiplying by the one-hot vector).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm.errors import CorpusError, VocabularyError
from charlstm.text.idcache import MAX_VOCAB, encode_file, release_pages, spool_stream, too_many_characters
from charlstm.text.reading import read_text
from charlstm.text.vocab import Vocab, describe_chars


def one_hot(ids: np.ndarray, V: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """One-hot vectors of `ids`: shape ids.shape + (V,). For one window at a time, never a corpus."""
    out = np.zeros((*ids.shape, V), dtype=dtype)  # (..., V)
    np.put_along_axis(out, np.asarray(ids, dtype=np.intp)[..., None], 1, axis=-1)
    return out


def split(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split ids into (train, val): the last `val_fraction` of the text, contiguous, is validation."""
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(2, round(len(ids) * val_fraction))
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
    """A text encoded with a vocabulary: ids (N,) in the vocabulary's compact dtype.

    One file (`path`), or several joined (`files`, with `path` their folder or the first of
    them): then the ids are the files' training parts, then their validation parts, and
    `val_start` says where the second begin (see `load_files`)."""

    path: Path
    vocab: Vocab
    ids: np.ndarray
    files: tuple[Path, ...] = ()
    val_start: int | None = None

    @property
    def name(self) -> str:
        return source_name(self.files if self.files and not self.path.is_dir() else self.path)

    def __len__(self) -> int:
        return len(self.ids)

    def split(self, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """(train, val) ids: the last `val_fraction` of the text, or for several files the
        validation parts chosen when they were read."""
        if self.val_start is None:
            return split(self.ids, val_fraction)
        return self.ids[: self.val_start], self.ids[self.val_start :]

    def release(self) -> None:
        """Let go of the pages of a memory-mapped corpus read so far, so a long epoch's resident
        memory stays bounded (they come back from the page cache when touched again). No-op when
        the ids are in memory."""
        release_pages(self.ids)


def load_corpus(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    vocab: Vocab | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    on_progress=None,
    max_vocab: int | None = None,
    val_fraction: float = 0.05,
) -> Corpus:
    """Read and encode a corpus: a text file, a folder of .txt files, or several files (see
    `load_files`; `val_fraction` is used for those). With `vocab` (fine-tuning, resuming) every
    character must be in it; otherwise the vocabulary is built from the text. A stream (a pipe,
    `<(zcat book.gz)`) is first copied into the cache folder and then read as a file. Large files
    are encoded once, cached and memory-mapped (see idcache); `on_progress(phase, bytes_done,
    bytes_total)` follows the work."""
    files = corpus_files(path)
    one_path = Path(path) if isinstance(path, (str, os.PathLike)) else None
    if len(files) == 1 and not (one_path and one_path.is_dir()):
        vocab, ids = encode_file(files[0], vocab, encoding, errors, on_progress, max_vocab or MAX_VOCAB)
        return Corpus(files[0], vocab, ids)
    where = one_path or files[0]
    return load_files(files, where, vocab, encoding, errors, max_vocab, val_fraction)


def corpus_files(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The files a corpus argument names: a file (a stream copied into the cache first), the .txt
    files of a folder (at any depth, hidden ones left out, in order of their paths), or each of
    several such arguments in turn."""
    if not isinstance(path, (str, os.PathLike)):
        return [f for p in path for f in corpus_files(p)]
    path = Path(path)
    if path.is_dir():
        found = sorted(
            p
            for p in path.rglob("*.txt")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not found:
            raise CorpusError(
                f"{path}: is a directory with no .txt files in it; give a text file, or a folder of .txt files"
            )
        return found
    return [spool_stream(path)]


def prepare_source(source: str | os.PathLike | Sequence[str | os.PathLike]) -> Path | list[Path]:
    """A corpus argument with every stream replaced by its copy in the cache (so it can be read
    again), and a list of one path as that path."""
    if isinstance(source, (str, os.PathLike)):
        return spool_stream(Path(source))
    paths = [spool_stream(Path(p)) for p in source]
    return paths[0] if len(paths) == 1 else paths


def source_name(source: str | os.PathLike | Sequence[str | os.PathLike]) -> str:
    """What a corpus is called (its checkpoints' names): a file's stem, a folder's name, and
    'first+2' for three files."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return path.name if path.is_dir() else path.stem
    files = corpus_files(source)
    return files[0].stem if len(files) == 1 else f"{files[0].stem}+{len(files) - 1}"


SEPARATOR = "\f"  # joins the files of a corpus: a form feed, which ordinary text never holds


def load_files(
    files: Sequence[Path],
    path: Path,
    vocab: Vocab | None,
    encoding: str,
    errors: str,
    max_vocab: int | None,
    val_fraction: float,
) -> Corpus:
    """Several text files as one corpus, read into memory. Each file's last `val_fraction` is
    held out for validation, so every file is scored in proportion to its length and none is
    left out of training. The ids are the files' training parts, then their validation parts,
    each group joined by SEPARATOR: a character of its own (it is in the vocabulary), so the
    model learns where one document ends and the next begins and a blank line stays a
    paragraph break; `charlstm sample --stop '\\f'` writes one document."""
    texts = [read_text(f, encoding, errors) for f in files]
    cuts = [len(t) - round(len(t) * val_fraction) for t in texts]
    train = SEPARATOR.join(t[:c] for t, c in zip(texts, cuts))
    val = SEPARATOR.join(t[c:] for t, c in zip(texts, cuts) if c < len(t))
    if len(val) < 2:
        raise CorpusError(f"{path}: its files are too short to hold out {val_fraction:g} of each for validation")
    own = Vocab.from_text(train + SEPARATOR + val)
    if own.size > (max_vocab or MAX_VOCAB):
        raise too_many_characters(path, max_vocab or MAX_VOCAB)
    missing = vocab.unknown("".join(own.chars)) if vocab is not None else []
    if missing:
        raise VocabularyError(
            f"{path}: {len(missing)} character(s) are not in the model's vocabulary: {describe_chars(missing)}"
        )
    target = vocab or own
    return Corpus(path, target, np.concatenate([target.encode(train), target.encode(val)]), tuple(files), len(train))
