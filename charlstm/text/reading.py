"""Reading text files in bounded memory, with an error that says what to do for every failure.

A file is decoded chunk by chunk by an incremental decoder, so a 1 GB corpus never becomes one
Python string. A UTF-8 byte-order mark is dropped. With UTF-8, a NUL byte marks a binary file; bytes
that do not decode are reported with their byte offset and the options that get past them. A
compressed file (gzip, bzip2, xz, zip, zstd) or a checkpoint, given where a text belongs, is
recognised by its first bytes and said to be one, with what to give instead.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from charlstm.errors import CharLSTMError, CorpusError, UsageError

CHUNK_BYTES = 1 << 22  # 4 MiB of file per chunk
COMPRESSED = (  # how the file begins, what made it, the command that prints its text
    (rb"\x1f\x8b", "gzip", "zcat"),
    (rb"BZh[1-9](1AY&SY|\x17rE8P\x90)", "bzip2", "bzcat"),
    (rb"\xfd7zXZ\x00", "xz", "xzcat"),
    (rb"PK(\x03\x04|\x05\x06)", "zip", "unzip -p"),
    (rb"\x28\xb5\x2f\xfd", "zstd", "zstdcat"),
)
_MAX_HEADER = 100 * 1024 * 1024  # as charlstm.store.checkpoint's

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")


def check_readable(path: Path) -> int:
    """The size of the file at `path`, or a CorpusError saying why it cannot be a corpus."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise IsADirectoryError
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file; give the path of a UTF-8 text file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory; give the path of a text file inside it") from None
    except PermissionError:
        raise CorpusError(f"{path}: permission denied; make the file readable (chmod +r) or copy it") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror or e})") from None
    if size == 0 and path.is_file():  # a stream (`<(zcat book.gz)`) has no size: its reader sees what is in it
        raise CorpusError(f"{path}: the file is empty; give a file with text in it")
    return size


def not_text(path: Path, head: bytes, use: str = "") -> CharLSTMError | None:
    """Why a file that begins with the bytes `head` is no text to read, or None: a charlstm
    checkpoint (UsageError; `use`, how the command at hand takes a checkpoint, is the advice), or a
    compressed file (CorpusError, with the command that reads it uncompressed)."""
    for magic, kind, cat in COMPRESSED:
        if re.match(magic, head):
            return CorpusError(
                f"{path}: is {kind}-compressed, not text; give its text, e.g. <({cat} {path}), or decompress it first"
            )
    if len(head) >= 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") <= _MAX_HEADER:
        advice = use or f"give a text file, and the checkpoint with --checkpoint {path}"
        return UsageError(f"{path} is a checkpoint, not a text; {advice}")
    return None


def check_text(path: Path, use: str = "") -> None:
    """Before a command does anything else: is `path` a readable text (see `check_readable` and
    `not_text`)? A stream is left to its reader, which checks the same (its first bytes would be
    gone)."""
    check_readable(path)
    if not path.is_file():
        return
    with open(path, "rb") as f:
        head = f.read(16)
    problem = not_text(path, head, use)
    if problem is not None:
        raise problem


def decoded_chunks(
    path: str | os.PathLike,
    encoding: str = "utf-8",
    errors: str = "strict",
    on_progress: Progress | None = None,
    chunk_bytes: int | None = None,
) -> Iterator[str]:
    """Yield the text of the file in pieces of about `chunk_bytes` (default CHUNK_BYTES) bytes each."""
    path = Path(path)
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    size = check_readable(path)
    utf8 = _is_utf8(encoding)
    try:
        decoder = codecs.getincrementaldecoder("utf-8-sig" if utf8 else encoding)(errors)
    except LookupError:
        raise CorpusError(f"unknown text encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None
    offset = 0
    produced = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_bytes)
            final = not chunk
            problem = not_text(path, chunk[:16]) if offset == 0 else None
            if problem is not None:
                raise problem
            nul = chunk.find(b"\x00") if utf8 else -1
            if nul >= 0:
                raise CorpusError(
                    f"{path}: looks like a binary file (NUL byte at offset {offset + nul}); give a text file"
                )
            pending = decoder.getstate()[0]
            try:
                text = decoder.decode(chunk, final)
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"{path}: not valid {e.encoding} at byte offset {_error_offset(pending + chunk, encoding, offset - len(pending))}; "
                    f"pass --encoding with the file's encoding, or --errors replace"
                ) from None
            offset += len(chunk)
            if text:
                produced += len(text)
                yield text
            if on_progress is not None:
                on_progress(offset, size)
            if final:
                break
    if produced == 0:
        raise CorpusError(f"{path}: the file holds no text after decoding")


def _error_offset(data: bytes, encoding: str, base: int) -> int:
    """The absolute offset of the first undecodable byte in `data`, which starts at `base`."""
    try:
        data.decode("utf-8" if _is_utf8(encoding) else encoding)
    except UnicodeDecodeError as e:
        return base + e.start
    return base + len(data)  # an incomplete sequence at the very end of the file


def read_text(
    path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict", allow_empty: bool = False
) -> str:
    """The whole text of a (small) file; large corpora go through `decoded_chunks`. An empty
    regular file is an error (nothing to learn from or look at) unless `allow_empty` (a seed)."""
    if allow_empty:
        try:
            st = os.stat(path)
        except OSError:
            st = None  # decoded_chunks says what is wrong with it
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == 0:
            return ""
    return "".join(decoded_chunks(path, encoding, errors))
