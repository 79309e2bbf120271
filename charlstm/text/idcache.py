"""Encoding a text file into compact ids in bounded memory, cached on disk and memory-mapped.

Two streaming passes over the decoded text: the first collects the vocabulary, the second writes
ids (uint8 for V ≤ 256, else uint16/uint32). A corpus of at least `CACHE_MIN_BYTES` is written to
an id file in the cache folder and memory-mapped, so its pages are read from disk as windows need
them and a second run starts in the time it takes to open a file. The cache entry is keyed by the
file's size, mtime and a hash of its first and last MiB (plus the encoding options and, when the
ids must follow a given vocabulary, that vocabulary), and is written atomically.

Cache folder: $CHARLSTM_CACHE, else $XDG_CACHE_HOME/charlstm, else ~/.cache/charlstm.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np

from charlstm.config import MAX_VOCAB
from charlstm.config import cache_dir as default_cache_dir
from charlstm.errors import CharLSTMError, CorpusError, UsageError, VocabularyError
from charlstm.store import write
from charlstm.text.reading import check_readable, decoded_chunks
from charlstm.text.vocab import Vocab, code_points, describe_chars

CACHE_MIN_BYTES = 8 << 20
SAMPLE_BYTES = 1 << 20
CHUNK_IDS = 1 << 22  # ids per chunk when remapping a cached corpus to another vocabulary
FORMAT = 1

Progress = Callable[[str, int, int], None]  # (phase, bytes done, bytes in all)


def cache_key(path: Path, encoding: str, errors: str) -> str:
    """Identifies the file's content cheaply: size, mtime, first and last MiB, decoding options."""
    st = path.stat()
    h = hashlib.sha256(f"{FORMAT}|{st.st_size}|{st.st_mtime_ns}|{encoding}|{errors}".encode())
    with open(path, "rb") as f:
        h.update(f.read(SAMPLE_BYTES))
        f.seek(max(0, st.st_size - SAMPLE_BYTES))
        h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()[:20]


def scan_vocab(path: Path, encoding: str, errors: str, on_progress: Progress | None, max_vocab: int) -> Vocab:
    """The sorted set of the file's characters, in one streaming pass."""
    seen = np.empty(0, dtype=np.uint32)
    report = (lambda done, total: on_progress("scanning", done, total)) if on_progress else None
    for text in decoded_chunks(path, encoding, errors, report):
        seen = np.union1d(seen, np.unique(code_points(text)))
        if len(seen) > max_vocab:
            raise too_many_characters(path, max_vocab)
    return Vocab(tuple(chr(int(p)) for p in seen))


def too_many_characters(path: Path, max_vocab: int) -> CorpusError:
    return CorpusError(
        f"{path}: more than {max_vocab:,} distinct characters — is it a binary file? "
        f"If it really is text, raise the limit with --max-vocab"
    )


def spool_stream(path: Path, cache_dir: Path | None = None) -> Path:
    """A pipe or other stream (`<(zcat book.txt.gz)`, /dev/stdin) copied once into the cache
    folder as stream-HASH.txt, so it can be read as often as a file must be (vocabulary, ids,
    fingerprint) and a resume finds it again. A regular file (or a path that is not there) is
    returned as it is; the text readers report what is wrong with it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return path
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return path
    folder = cache_dir or default_cache_dir()
    h = hashlib.sha256()
    tmp = folder / f".stream.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                dst.write(block)
        target = folder / f"stream-{h.hexdigest()[:12]}.txt"
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CorpusError(
            f"{path}: is a stream, and copying it into the cache folder {folder} failed "
            f"({e.strerror or e}); save it to a file first, or set CHARLSTM_CACHE"
        ) from None
    return target


def _check_known(path: Path, own: Vocab, vocab: Vocab) -> None:
    missing = sorted(set(own.chars) - set(vocab.chars))
    if missing:
        raise VocabularyError(
            f"{path}: {len(missing)} character(s) are not in the model's vocabulary: {describe_chars(missing)}"
        )


def encode_file(
    path: str | os.PathLike,
    vocab: Vocab | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    on_progress: Progress | None = None,
    max_vocab: int = MAX_VOCAB,
    cache_dir: Path | None = None,
    cache_min_bytes: int = CACHE_MIN_BYTES,
) -> tuple[Vocab, np.ndarray]:
    """(vocabulary, ids) of a text file. With `vocab`, every character must be in it and ids follow
    it; otherwise the vocabulary is the file's own. Large files are cached and memory-mapped."""
    path = Path(path)
    size = check_readable(path)

    def encoded(target: Vocab):
        report = (lambda done, total: on_progress("encoding", done, total)) if on_progress else None
        return (target.encode(text) for text in decoded_chunks(path, encoding, errors, report))

    if size < cache_min_bytes:
        own = scan_vocab(path, encoding, errors, on_progress, max_vocab)
        if vocab is not None:
            _check_known(path, own, vocab)
        target = vocab or own
        return target, np.concatenate(list(encoded(target)))

    folder = cache_dir or default_cache_dir()
    stem = f"{path.stem[:40]}-{cache_key(path, encoding, errors)}"
    cached = _open_cached(folder, stem)
    if cached is None:
        own = scan_vocab(path, encoding, errors, on_progress, max_vocab)
        cached = own, _store(folder, stem, own, lambda: encoded(own))
    own, ids = cached
    if vocab is None or vocab == own:
        return own, ids
    _check_known(path, own, vocab)
    table = vocab.encode("".join(own.chars))  # (V_own,) own id -> id in `vocab`
    derived = f"{stem}-{hashlib.sha256(json.dumps(vocab.chars).encode()).hexdigest()[:8]}"
    remapped = _open_cached(folder, derived)
    if remapped is not None:
        return remapped
    step = CHUNK_IDS
    return vocab, _store(folder, derived, vocab, lambda: (table[ids[i : i + step]] for i in range(0, len(ids), step)))


def map_ids(path: Path, dtype: np.dtype, n: int) -> np.ndarray:
    """The id file memory-mapped read-only, as an (n,) array.

    The mapping is advised MADV_RANDOM (training reads B streams far apart, so read-ahead around
    each of them is wasted). Each page touched can still map a whole page-cache folio — on Linux
    6.18 here, ~0.7 MB per stream, 43 MB for the 64 streams of one window whatever the corpus
    size — so `release_pages` unmaps what has been read every few hundred steps."""
    if n == 0:
        return np.empty(0, dtype)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mm.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mm, dtype=dtype, count=n)


def is_mapped(ids: np.ndarray) -> bool:
    """True when `ids` (or the array it is a view of) is backed by a memory-mapped id file."""
    return _mapping(ids) is not None


def release_pages(ids: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped corpus that have been read so far (they stay in the
    page cache and come back on the next touch). Keeps the resident memory of a long epoch
    bounded by what a few hundred windows touch, not by the corpus size. No-op in memory."""
    mm = _mapping(ids)
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def _mapping(ids: np.ndarray) -> mmap.mmap | None:
    base: object = ids  # ndarray views → the frombuffer array → its memoryview → the mmap
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base


def _open_cached(folder: Path, stem: str) -> tuple[Vocab, np.ndarray] | None:
    """The cached (vocab, memory-mapped ids), or None if absent or not intact."""
    meta_path, ids_path = folder / f"{stem}.json", folder / f"{stem}.ids"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        vocab = Vocab(tuple(meta["vocab"]))
        n = int(meta["length"])
        if meta.get("format") != FORMAT or ids_path.stat().st_size != n * vocab.dtype.itemsize:
            return None
        return vocab, map_ids(ids_path, vocab.dtype, n)
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _Unwritable(CharLSTMError):
    """The id cache cannot be written here; the ids stay in memory."""


def _store(folder: Path, stem: str, vocab: Vocab, make_chunks: Callable) -> np.ndarray:
    """Write the ids from `make_chunks()` to the cache atomically and return them memory-mapped.
    If the cache cannot be written (read-only, disk full), the ids are kept in memory instead:
    slower to start next time, but this run goes on."""
    ids_path, meta_path = folder / f"{stem}.ids", folder / f"{stem}.json"
    try:
        n = 0
        with write.replacing(ids_path, "the id cache", error=_Unwritable) as f:
            for ids in make_chunks():
                f.write(ids.tobytes())
                n += len(ids)
        meta = json.dumps({"format": FORMAT, "vocab": list(vocab.chars), "length": n})
        write.write_atomic(meta_path, meta.encode("utf-8"), "the id cache", _Unwritable)
    except (_Unwritable, UsageError):  # a folder there, a full disk: kept in memory instead
        return np.concatenate(list(make_chunks()))
    return map_ids(ids_path, vocab.dtype, n)
