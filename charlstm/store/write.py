"""Every file charlstm writes goes through here: checkpoints (model, resume, epoch snapshots), the
report, `--log-json`, `sample --output` and the id cache. What is at the path decides what happens:

    nothing, or a regular file   replaced atomically: a temporary file beside it, fsync, rename
    a symbolic link              followed: the file it leads to is replaced atomically (the
                                 temporary file beside that file), and the link stays a link
    a directory, a device,       refused with a UsageError (exit code 2) before anything is
    a FIFO or a socket           written: nothing is replaced, nothing else is written

The rename that makes a write atomic replaces whatever is at the path: run as root, `--out
/dev/null` would put a file where the device was, and `--out link` a file where the link was. So
the path is looked at first (`target`), and the commands that run long (`charlstm train`) look
before they start. An append (`open_append`, the --log-json log) follows the same rules.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

from charlstm.errors import CharLSTMError, UsageError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)
FILE_HINT = "give the path of a file (a new one, or one to replace)"


def target(path: str | os.PathLike, what: str = "", hint: str = FILE_HINT) -> Path:
    """The file that writing `path` replaces: `path` itself (a regular file, or nothing there
    yet), or the file its symbolic link leads to (which need not exist yet). A directory, device,
    FIFO or socket, at the path or at the end of its link, raises UsageError naming it: `what`
    (an option, e.g. "--out") and `hint` (what to give instead) make the message."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    linked = path.is_symlink()
    dest = Path(os.path.realpath(path)) if linked else path
    try:
        mode = os.stat(dest).st_mode
    except FileNotFoundError:
        return dest
    except OSError as e:  # a link that leads round in a loop, a folder we may not look into
        raise UsageError(f"{label}: cannot write there ({e.strerror or e}); {hint}") from None
    if stat.S_ISREG(mode):
        return dest
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    where = f"is a link to {dest}, {kind}" if linked else f"is {kind}"
    raise UsageError(f"{label} {where}, not a file, so nothing was written; {hint}")


def write_atomic(
    path: str | os.PathLike,
    data: bytes,
    what: str = "file",
    error: type[CharLSTMError] = CharLSTMError,
    hint: str = FILE_HINT,
) -> Path:
    """Write `data` in place of the file at `path` (see `target`) atomically: whatever happens,
    either the old file or the complete new one is there. Returns the file written. A failed
    write (a full disk, a read-only folder) raises `error`, saying the old file is unchanged."""
    with replacing(path, what, error=error, hint=hint) as f:
        f.write(data)
    return target(path)


@overload
def replacing(
    path: str | os.PathLike,
    what: str = ...,
    *,
    text: Literal[True],
    error: type[CharLSTMError] = ...,
    hint: str = ...,
) -> AbstractContextManager[TextIO]: ...


@overload
def replacing(
    path: str | os.PathLike,
    what: str = ...,
    *,
    text: Literal[False] = ...,
    error: type[CharLSTMError] = ...,
    hint: str = ...,
) -> AbstractContextManager[BinaryIO]: ...


@contextlib.contextmanager
def replacing(
    path: str | os.PathLike,
    what: str = "file",
    *,
    text: bool = False,
    error: type[CharLSTMError] = CharLSTMError,
    hint: str = FILE_HINT,
) -> Iterator[Any]:  # the overloads say which: TextIO with `text`, else BinaryIO
    """A file to write (binary, or UTF-8 text) that takes the place of the one at `path` (see
    `target`) when the block ends without an exception, atomically; on an exception the
    temporary file is removed and the old file stays. `what` names the file in messages (an
    option such as "--out", or "checkpoint")."""
    label = what if what.startswith("-") else ""
    dest = target(path, label, hint)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"cannot create the folder {dest.parent} for {what} {path}: {e.strerror or e}") from None
    _remove_stale_temporaries(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        f = open(tmp, "w", encoding="utf-8") if text else open(tmp, "wb")  # noqa: SIM115 (closed below)
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IMODE(os.stat(dest).st_mode))  # a replaced file keeps its permissions
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        kept = "the previous file there is unchanged" if dest.exists() else "nothing was written"
        shown = f"{path} (the file {dest})" if dest != Path(path) else str(path)
        raise error(f"cannot write {what} {shown}: {e.strerror or e}; {kept}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_folder(dest.parent)


def open_append(path: str | os.PathLike, what: str, hint: str = FILE_HINT) -> IO[str]:
    """The file at `path` (or the one its link leads to) opened to append UTF-8 text; created if
    it is not there. A directory, device, FIFO or socket is refused as `target` refuses it; a
    file that cannot be opened raises UsageError."""
    dest = target(path, what, hint)
    try:
        return open(dest, "a", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot open {what} file {path}: {e.strerror or e}") from None


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems cannot fsync a folder (the rename is atomic anyway)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files that a killed writer (kill -9, power loss) left beside `path`."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            pid = int(tmp.name[len(path.name) + 2 : -len(".tmp")])
            os.kill(pid, 0)  # still running: leave it alone
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError, OSError):
            pass
