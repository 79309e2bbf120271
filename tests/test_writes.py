"""Writes that never destroy what they replace (charlstm/store/write.py), through the real command
line: every path charlstm writes — train's checkpoints (--out) and --log-json, the report's --out,
sample's --output — is a regular file or a new path (replaced atomically), a symbolic link
(followed: its file is replaced, the link stays a link), or something else — a directory, a
character device, a FIFO, a socket — refused in one line with exit code 2, nothing replaced and
nothing else written, before a run starts. We run as root, which is how /dev/full once became an
HTML file.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from charlstm.errors import CharLSTMError, UsageError
from charlstm.store import checkpoint, write

from helpers import PANGRAMS, TINY_RUN, assert_clean_error, copy_run_folder, run_cli

KINDS = ("directory", "fifo", "socket", "char device", "link to a char device", "link to a directory")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A folder with tiny.txt and the checkpoints of a tiny model trained on it for a few steps."""
    work = tmp_path_factory.mktemp("writes")
    (work / "tiny.txt").write_text(PANGRAMS * 40, encoding="utf-8")
    result = run_cli("train", "tiny.txt", *TINY_RUN, "--max-steps", "3", cwd=work)
    assert result.returncode == 0, result.stderr
    return work


@pytest.fixture
def work(tmp_path, run_dir) -> Path:
    """A copy of the run's folder, to write into."""
    return copy_run_folder(run_dir, tmp_path)


@pytest.fixture
def short_dir():
    """A folder with a short path: a unix socket's path must fit in 108 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="cw"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def make(kind: str, folder: Path) -> tuple[Path, int]:
    """A path of that kind, and the file type its stat() must still have afterwards."""
    path = folder / "target.out"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))  # the socket file stays after the socket is closed
    elif kind == "char device":
        path = Path("/dev/null")
    elif kind == "link to a char device":
        path.symlink_to("/dev/full")
    elif kind == "link to a directory":
        (folder / "elsewhere").mkdir()
        path.symlink_to(folder / "elsewhere")
    return path, stat.S_IFMT(os.stat(path).st_mode)


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder` by relative path: a file's bytes, else its kind."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        found[key] = (
            path.read_bytes() if path.is_file() and not path.is_symlink() else stat.filemode(path.lstat().st_mode)
        )
    return found


COMMANDS = {
    "train --out": lambda t: ["train", "tiny.txt", *TINY_RUN, "--max-steps", "2", "--fresh", "--out", str(t)],
    "train --log-json": lambda t: ["train", "tiny.txt", *TINY_RUN, "--max-steps", "2", "--fresh", "--log-json", str(t)],
    "report --out": lambda t: ["report", "checkpoints/tiny-1x16.safetensors", "--out", str(t)],
    "sample --output": lambda t: ["sample", "-n", "20", "--output", str(t)],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_path_that_is_not_a_file_is_refused_and_nothing_is_written(work, short_dir, command, kind):
    target, file_type = make(kind, short_dir)
    before, beside = snapshot(work), snapshot(short_dir)
    result = run_cli(*COMMANDS[command](target), cwd=work)
    described = {
        "directory": "is a directory", "fifo": "is a fifo", "socket": "is a socket", "char device":
        "is a character device", "link to a char device": "is a link to /dev/full, a character device",
        "link to a directory": "is a link to",
    }  # fmt: skip
    assert_clean_error(result, str(target), described[kind], code=2)
    assert "nothing was written" in result.stderr
    assert "step" not in result.stderr.split("error:")[0]  # refused before training
    assert stat.S_IFMT(os.stat(target).st_mode) == file_type
    assert target.is_symlink() == kind.startswith("link")
    assert snapshot(work) == before and snapshot(short_dir) == beside  # nothing else written either
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_link_is_followed_and_its_file_replaced_for_every_command(work, tmp_path_factory):
    """A link to a file in another folder (another disk, say): the file it leads to gets the new
    contents, the link stays a link, and nothing else appears beside the file."""
    other = tmp_path_factory.mktemp("other_disk")
    old_model = (work / "checkpoints" / "tiny-1x16.safetensors").read_bytes()
    files = {name: other / name for name in ("model.safetensors", "page.html", "sample.txt", "log.jsonl")}
    for path in files.values():
        path.write_bytes(old_model if path.suffix == ".safetensors" else b"old\n")
    links = {name: work / f"link-{name}" for name in files}
    for name, link in links.items():
        link.symlink_to(files[name])

    trained = run_cli("train", "tiny.txt", *TINY_RUN, "--max-steps", "2", "--fresh", "--out",
                      str(links["model.safetensors"]), "--log-json", str(links["log.jsonl"]), cwd=work)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    reported = run_cli("report", str(links["model.safetensors"]), "--out", str(links["page.html"]), cwd=work)
    assert reported.returncode == 0, reported.stderr
    sampled = run_cli(
        "sample", "-c", str(links["model.safetensors"]), "-n", "30", "-o", str(links["sample.txt"]), cwd=work
    )
    assert sampled.returncode == 0, sampled.stderr

    assert all(link.is_symlink() and link.resolve() == files[name] for name, link in links.items())
    assert checkpoint.load(files["model.safetensors"]).train["step"] == 2
    assert checkpoint.load(work / "link-model.resume.safetensors").train["step"] == 2  # beside the link
    assert files["page.html"].read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    assert len(files["sample.txt"].read_text(encoding="utf-8")) > 20
    log = files["log.jsonl"].read_text(encoding="utf-8").splitlines()
    assert log[0] == "old" and '"type": "end"' in log[-1]  # appended to
    assert sorted(p.name for p in other.iterdir()) == sorted(files)  # no temporary left beside them


def test_a_link_to_a_file_not_there_yet_makes_that_file(work, tmp_path_factory):
    other = tmp_path_factory.mktemp("not_yet")
    link = work / "page.html"
    link.symlink_to(other / "made.html")
    result = run_cli("report", "checkpoints/tiny-1x16.safetensors", "--out", "page.html", cwd=work)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and (other / "made.html").stat().st_size > 1000


def test_a_link_that_loops_is_refused(work):
    (work / "a.html").symlink_to(work / "b.html")
    (work / "b.html").symlink_to(work / "a.html")
    result = run_cli("report", "checkpoints/tiny-1x16.safetensors", "--out", "a.html", cwd=work)
    assert_clean_error(result, "a.html", "cannot write there", code=2)


def test_a_full_disk_while_the_report_is_written_keeps_the_earlier_page(work):
    """A real failing write: the file-size limit (RLIMIT_FSIZE) makes write() fail with EFBIG, as
    a full disk makes it fail with ENOSPC. One line; the earlier page is intact, no temporary left."""
    page = work / "page.html"
    page.write_bytes(b"<p>the earlier page</p>")
    limit = 20_000  # a report page is larger

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = [sys.executable, "-m", "charlstm", "report", "checkpoints/tiny-1x16.safetensors", "--out", "page.html"]
    result = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=300, preexec_fn=small_disk)
    assert_clean_error(result, "cannot write the report page.html", "file too large", "unchanged", code=1)
    assert page.read_bytes() == b"<p>the earlier page</p>"
    assert not list(work.glob(".*.tmp"))


def without_root_override(args: list[str]) -> list[str]:
    """As root, without the capabilities that ignore file permissions (CI runs as root)."""
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *args] if os.geteuid() == 0 else args


def test_a_read_only_folder_is_one_line_and_the_earlier_files_stay(work, tmp_path_factory):
    """The report into a read-only folder, and a run whose --out links into one (the folder of
    the file the link leads to is checked before training): one line each, the files there intact."""
    ro = tmp_path_factory.mktemp("read_only")
    (ro / "page.html").write_bytes(b"<p>the earlier page</p>")
    model = ro / "model.safetensors"
    model.write_bytes((work / "checkpoints" / "tiny-1x16.safetensors").read_bytes())
    (work / "link.safetensors").symlink_to(model)
    before = snapshot(ro)
    ro.chmod(0o555)
    try:
        cli = [sys.executable, "-m", "charlstm"]
        report = [*cli, "report", "checkpoints/tiny-1x16.safetensors", "--out", str(ro / "page.html")]
        train = [*cli, "train", "tiny.txt", *TINY_RUN, "--max-steps", "2", "--fresh", "--out", "link.safetensors"]
        results = [
            subprocess.run(without_root_override(a), cwd=work, capture_output=True, text=True, timeout=300)
            for a in (report, train)
        ]
    finally:
        ro.chmod(0o755)
    assert_clean_error(results[0], "cannot write the report", "permission denied", "unchanged", code=1)
    assert_clean_error(results[1], f"cannot write checkpoints in {ro}", "permission denied", code=1)
    assert "step" not in results[1].stderr  # before training
    assert snapshot(ro) == before


# --------------------------------------------------------------------- the writer, in-process


def test_no_space_left_while_writing_keeps_the_previous_file(tmp_path, monkeypatch):
    """ENOSPC from the write itself and from fsync: the earlier file is intact, the temporary
    file gone, and the error names the file and says the earlier one is unchanged."""
    path = tmp_path / "m.bin"
    path.write_bytes(b"earlier")

    with pytest.raises(CharLSTMError, match="No space left on device; the previous file there is unchanged"):
        with write.replacing(path, "checkpoint") as f:
            f.write(b"half of the new")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert path.read_bytes() == b"earlier" and [p.name for p in tmp_path.iterdir()] == ["m.bin"]

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(write.os, "fsync", full_disk)
    with pytest.raises(CharLSTMError, match=f"cannot write checkpoint {path}: No space left"):
        write.write_atomic(path, b"new", "checkpoint")
    assert path.read_bytes() == b"earlier" and [p.name for p in tmp_path.iterdir()] == ["m.bin"]


def test_a_read_only_file_system_keeps_the_previous_file(tmp_path, monkeypatch):
    """EROFS from the rename (as root, permissions alone cannot make a folder read-only; the
    read-only folder through the CLI is test_a_read_only_folder_is_one_line_and_the_earlier_files_stay)."""
    path = tmp_path / "m.bin"
    path.write_bytes(b"earlier")

    def read_only(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(write.os, "replace", read_only)
    with pytest.raises(CharLSTMError, match="Read-only file system; the previous file there is unchanged"):
        write.write_atomic(path, b"new")
    assert path.read_bytes() == b"earlier" and [p.name for p in tmp_path.iterdir()] == ["m.bin"]


def test_a_replaced_file_keeps_its_permissions_and_a_new_file_is_made(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"earlier")
    path.chmod(0o600)
    write.write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write.write_atomic(tmp_path / "sub" / "n.bin", b"x") == tmp_path / "sub" / "n.bin"


def test_an_exception_inside_the_block_leaves_the_old_file(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"earlier")
    with pytest.raises(KeyError), write.replacing(path) as f:
        f.write(b"new")
        raise KeyError("stop")
    assert path.read_bytes() == b"earlier" and [p.name for p in tmp_path.iterdir()] == ["m.bin"]


def test_the_kinds_refused_in_process(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path, tmp_path / "fifo", Path("/dev/null")):
        with pytest.raises(UsageError, match="not a file, so nothing was written"):
            write.write_atomic(path, b"x", "--out")
        with pytest.raises(UsageError, match="not a file"):
            write.open_append(path, "--log-json")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
