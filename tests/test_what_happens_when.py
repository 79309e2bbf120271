"""One test per row of README.md's "What happens when…" table, through the real command line.

Every failure must be one line on stderr that says what is wrong and what to do, a non-zero exit
code (2 for bad usage), no traceback — and must never cost the user a checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charlstm.store import checkpoint

from helpers import (
    PANGRAMS,
    ROOT,
    TINY_RUN,
    assert_clean_error,
    assert_ends_with_clean_error,
    run_cli,
    training_at_its_first_step,
)

FAST = TINY_RUN


def cli(*args: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "charlstm", *args]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    """The checkpoints folder of a tiny model trained for one epoch on the tiny text, through the
    CLI, once for the module: the earlier run that many rows need."""
    work = tmp_path_factory.mktemp("first_run")
    (work / "tiny.txt").write_text(PANGRAMS * 40, encoding="utf-8")
    result = run_cli("train", "tiny.txt", *FAST, "--epochs", "1", cwd=work)
    assert result.returncode == 0, result.stderr
    return work / "checkpoints"


@pytest.fixture
def trained(tmp_path, tiny_corpus, first_run) -> tuple[Path, Path]:
    """An earlier run beside tiny_corpus: the first run's checkpoints, copied into
    tmp_path/checkpoints; (model file, resume file)."""
    folder = shutil.copytree(first_run, tmp_path / "checkpoints")
    return folder / "tiny-1x16.safetensors", folder / "tiny-1x16.resume.safetensors"


def without_root_override(args: list[str]) -> list[str]:
    """Run as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so file permissions apply (CI
    runs as root); as another user they apply anyway."""
    if os.geteuid() != 0:
        return args
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *args]


# ---------------------------------------------------------------------------------- the corpus


def test_corpus_missing(tmp_path):
    assert_clean_error(run_cli("train", "nope.txt", cwd=tmp_path), "nope.txt: no such file", code=1)


def test_corpus_misspelt_beside_an_earlier_run(tmp_path, trained):
    """The corpus is looked at before the files of an earlier run: a typo is a typo."""
    result = run_cli("train", "tny.txt", *FAST, cwd=tmp_path)
    assert_clean_error(result, "tny.txt: no such file", code=1)
    assert "earlier run" not in result.stderr


def test_corpus_is_a_checkpoint(tmp_path, trained):
    model, _resume = trained
    result = run_cli("train", str(model.relative_to(tmp_path)), cwd=tmp_path)
    assert_clean_error(
        result,
        "is a checkpoint, not a text",
        f"charlstm sample -c {model.relative_to(tmp_path)}",
        f"charlstm train --resume {model.relative_to(tmp_path)}",
        code=2,
    )
    following = run_cli("train", "--resume", str(model), "--max-steps", "82", cwd=tmp_path)  # what it says works
    assert following.returncode == 0, following.stderr


def test_corpus_is_a_directory(tmp_path):
    assert_clean_error(run_cli("train", str(tmp_path), cwd=tmp_path), "is a directory", code=1)


def test_corpus_empty(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    assert_clean_error(run_cli("train", "empty.txt", cwd=tmp_path), "empty", code=1)


def test_corpus_shorter_than_one_window(tmp_path):
    (tmp_path / "short.txt").write_text("just a few words of text.\n" * 20, encoding="utf-8")
    result = run_cli("train", "short.txt", "-B", "16", "-T", "100", cwd=tmp_path)
    assert_clean_error(result, "too short for one window", "--batch-size 4 or less", code=2)


def test_corpus_not_utf8(tmp_path):
    (tmp_path / "latin.txt").write_bytes("déjà vu\n".encode("latin-1") * 100)
    assert_clean_error(
        run_cli("train", "latin.txt", cwd=tmp_path),
        "not valid utf-8 at byte offset 1",
        "--encoding",
        "--errors replace",
        code=1,
    )
    ok = run_cli("train", "latin.txt", "--encoding", "latin-1", *FAST, "--max-steps", "2", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_corpus_binary(tmp_path):
    (tmp_path / "a.out").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 20)
    assert_clean_error(run_cli("train", "a.out", cwd=tmp_path), "binary file (NUL byte at offset 7)", code=1)


def test_corpus_unreadable(tmp_path, tiny_corpus):
    tiny_corpus.chmod(0)
    try:
        result = subprocess.run(
            without_root_override(cli("train", str(tiny_corpus))),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        tiny_corpus.chmod(0o644)
    assert_clean_error(result, "permission denied", code=1)


def test_corpus_with_a_huge_vocabulary(tmp_path):
    (tmp_path / "wide.txt").write_text("".join(chr(0x3400 + k) for k in range(12_000)), encoding="utf-8")
    assert_clean_error(
        run_cli("train", "wide.txt", cwd=tmp_path), "more than 10,000 distinct characters", "--max-vocab", code=1
    )


# --------------------------------------------------------------------------------- the options


@pytest.mark.parametrize(
    "option, value",
    [
        ("--hidden-size", "0"),
        ("--layers", "-1"),
        ("--seq-len", "0"),
        ("--batch-size", "0"),
        ("--epochs", "0"),
        ("--max-steps", "0"),
        ("--lr", "0"),
        ("--lr", "-0.1"),
        ("--val-fraction", "0"),
        ("--val-fraction", "0.6"),
        ("--dropout", "1"),
        ("--clip", "-1"),
        ("--warmup-steps", "-5"),
        ("--max-minutes", "0"),
        ("--keep", "-1"),
        ("--sample-length", "-1"),
        ("--sample-every", "0"),
        ("--save-minutes", "0"),
        ("--max-vocab", "0"),
        ("--min-lr-ratio", "2"),
        ("--log-every", "-1"),
        ("--weight-drop", "1"),
        ("--ema", "1"),
        ("--adam-beta2", "1"),
    ],
)
def test_numeric_option_out_of_range(tmp_path, tiny_corpus, option, value):
    result = run_cli("train", str(tiny_corpus), option, value, cwd=tmp_path)
    assert_clean_error(result, option, code=2)
    assert not (tmp_path / "checkpoints").exists()


def test_batch_size_larger_than_the_corpus_allows(tmp_path, tiny_corpus):
    result = run_cli("train", str(tiny_corpus), "-B", "5000", "-T", "10", cwd=tmp_path)
    assert_clean_error(result, "too short for one window", "--batch-size", code=2)


# ------------------------------------------------------------------------------- checkpoints


def _bad_checkpoint(tmp_path, first_run, mutate) -> str:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(mutate((first_run / "tiny-1x16.safetensors").read_bytes()))
    return str(bad)


def _edit_header(data: bytes, edit) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def test_checkpoint_missing(tmp_path):
    assert_clean_error(run_cli("sample", "-c", "gone.safetensors", cwd=tmp_path), "no such checkpoint", code=1)


@pytest.mark.parametrize(
    "command, suggested",
    [
        (["sample"], "--checkpoint PATH"),
        (["eval", "t.txt"], "--checkpoint PATH"),
        (["neurons", "t.txt", "--unit", "0"], "--checkpoint PATH"),
        (["inspect"], "charlstm inspect PATH"),
    ],
)
def test_no_checkpoint_in_the_folder(tmp_path, command, suggested):
    """Each command suggests a way to name a checkpoint that it has."""
    (tmp_path / "t.txt").write_text("some text\n", encoding="utf-8")
    result = run_cli(*command, cwd=tmp_path)
    assert_clean_error(result, "no checkpoint in checkpoints/", "charlstm train FILE", suggested, code=1)
    named = run_cli(*command, *(["--checkpoint", "x"] if suggested.startswith("--") else ["x"]), cwd=tmp_path)
    assert_clean_error(named, "x: no such checkpoint", code=1)  # the suggestion is understood


def test_view_of_a_text_the_model_does_not_know(tmp_path, trained):
    """The newest checkpoint was trained on English; the bracket corpus is not in its vocabulary."""
    model, _ = trained
    brackets = ROOT / "corpora" / "brackets.txt"
    result = run_cli("neurons", str(brackets), "--find", "bracket", cwd=tmp_path)
    unknown = sum(ch not in "\n" for ch in brackets.read_text(encoding="utf-8"))  # all but the newlines
    assert_clean_error(
        result,
        f"{unknown:,} of its 60,002 characters are not in the vocabulary of the newest checkpoint",
        str(model.relative_to(tmp_path)),
        "(trained on tiny)",
        "--checkpoint PATH",
        code=1,
    )
    assert result.stdout == ""


def test_checkpoint_not_a_safetensors_file(tmp_path, tiny_corpus):
    for path in (str(tiny_corpus), str(tmp_path)):
        result = run_cli("sample", "-c", path, cwd=tmp_path)
        assert_clean_error(result, code=1)
        assert "safetensors" in result.stderr or "directory" in result.stderr


@pytest.mark.parametrize("cut", [0, 3, 8, 20, 200, -100, -1])
def test_checkpoint_truncated(tmp_path, first_run, cut):
    bad = _bad_checkpoint(tmp_path, first_run, lambda d: d[:cut])
    result = run_cli("inspect", bad, cwd=tmp_path)
    assert_clean_error(result, code=1)
    assert "truncated" in result.stderr or "not a safetensors" in result.stderr or "corrupt" in result.stderr


def test_checkpoint_header_json_corrupted(tmp_path, first_run):
    bad = _bad_checkpoint(tmp_path, first_run, lambda d: d[:20] + b"\x00\xff{" + d[23:])
    assert_clean_error(run_cli("sample", "-c", bad, cwd=tmp_path), "not valid JSON", code=1)


@pytest.mark.parametrize("field, value", [("shape", [3, 3]), ("dtype", "I64")])
def test_checkpoint_tensor_with_wrong_shape_or_dtype(tmp_path, first_run, field, value):
    def edit(header):
        entry = header["head.bias"]
        entry[field] = value
        if field == "dtype":  # keep the byte length consistent so only the dtype is wrong
            entry["shape"] = [(entry["data_offsets"][1] - entry["data_offsets"][0]) // 8]

    bad = _bad_checkpoint(tmp_path, first_run, lambda d: _edit_header(d, edit))
    result = run_cli("sample", "-c", bad, cwd=tmp_path)
    assert_clean_error(result, "head.bias", code=1)


def test_checkpoint_from_a_newer_format_version(tmp_path, first_run):
    bad = _bad_checkpoint(
        tmp_path, first_run, lambda d: _edit_header(d, lambda h: h["__metadata__"].update(format_version="7"))
    )
    assert_clean_error(run_cli("sample", "-c", bad, cwd=tmp_path), "newer charlstm", "upgrade", code=1)


def test_checkpoint_vocabulary_does_not_match_tensors(tmp_path, first_run):
    bad = _bad_checkpoint(
        tmp_path, first_run, lambda d: _edit_header(d, lambda h: h["__metadata__"].update(vocab='["a", "b"]'))
    )
    assert_clean_error(run_cli("sample", "-c", bad, cwd=tmp_path), "vocabulary has 2 characters", code=1)


def test_checkpoint_cannot_run_code(tmp_path, tiny_corpus):
    """A pickle bomb named .safetensors is just a file that is not a checkpoint."""
    import pickle

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps(Boom()))
    assert_clean_error(run_cli("sample", "-c", "evil.safetensors", cwd=tmp_path), code=1)
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------------- output


def test_checkpoint_folder_not_writable(tmp_path, trained):
    model, resume = trained
    before = (model.read_bytes(), resume.read_bytes())
    folder = model.parent
    folder.chmod(0o555)
    try:
        args = cli("train", "--resume", str(resume), "--epochs", "2")
        result = subprocess.run(without_root_override(args), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        folder.chmod(0o755)
    assert_clean_error(result, "permission denied", code=1)
    assert (model.read_bytes(), resume.read_bytes()) == before
    assert not list(folder.glob(".*.tmp"))


def test_disk_full_during_a_checkpoint_write(tmp_path, trained):
    """A real failing write: the file-size limit (RLIMIT_FSIZE) makes write() fail with EFBIG,
    as a full disk makes it fail with ENOSPC."""
    model, resume = trained
    before = (model.read_bytes(), resume.read_bytes())
    limit = len(before[0]) // 2

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        cli("train", "--resume", str(resume), "--epochs", "2"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_disk,
    )
    assert_ends_with_clean_error(result, "cannot write checkpoint", "previous file there is unchanged", code=1)
    assert (model.read_bytes(), resume.read_bytes()) == before
    assert not list(model.parent.glob(".*.tmp"))


def test_log_json_on_a_full_disk(tmp_path, tiny_corpus):
    """A real failing write: the file-size limit (RLIMIT_FSIZE) makes the log's first write fail
    (EFBIG), as a full disk makes it fail with ENOSPC (/dev/full itself is a device, refused
    before the run: tests/test_writes.py). The run stops after the step with its checkpoints
    written, says so in one line, and can be resumed."""
    limit = 1 << 20  # the checkpoints fit; the log, almost full, takes no record more
    (tmp_path / "log.jsonl").write_bytes(b"\n" * (limit - 16))

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        cli("train", str(tiny_corpus), *FAST, "--epochs", "2", "--log-json", "log.jsonl"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_disk,
    )
    assert_ends_with_clean_error(
        result,
        "cannot write --log-json log.jsonl: file too large",
        "training stopped at step 1 with its checkpoints written",
        "continue with: charlstm train --resume checkpoints/tiny-1x16.resume.safetensors",
        code=1,
    )
    assert any(
        "wrote" in line and "tiny-1x16.resume.safetensors" in line for line in result.stderr.splitlines()
    )  # the summary
    resume = tmp_path / "checkpoints" / "tiny-1x16.resume.safetensors"
    assert checkpoint.load(resume).train["status"] == "interrupted"
    again = run_cli("train", "--resume", str(resume), "--log-json", "log2.jsonl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "log2.jsonl").read_text().splitlines()[-1])["reason"] == "completed"


def test_a_run_of_another_cell_or_shape_beside_an_earlier_run(tmp_path, tiny_corpus, trained):
    """Comparing models on one text: another cell or shape is another file; the same one again is
    refused with every way on."""
    rnn = run_cli("train", str(tiny_corpus), *FAST, "--cell", "rnn", "--max-steps", "2", cwd=tmp_path)
    assert rnn.returncode == 0, rnn.stderr
    assert (tmp_path / "checkpoints" / "tiny-rnn-1x16.safetensors").is_file()
    again = run_cli("train", str(tiny_corpus), *FAST, "--cell", "rnn", "--max-steps", "2", cwd=tmp_path)
    assert_clean_error(
        again,
        "exists from an earlier run",
        "--resume checkpoints/tiny-rnn-1x16.resume.safetensors",
        "--fresh",
        "--out FILE",
        code=2,
    )
    beside = run_cli(
        "train", str(tiny_corpus), *FAST, "--cell", "rnn", "--max-steps", "2", "--out", "rnn2.safetensors", cwd=tmp_path
    )
    assert beside.returncode == 0, beside.stderr
    resumed = run_cli("train", "--resume", "checkpoints/tiny-1x16.resume.safetensors", "--cell", "rnn", cwd=tmp_path)
    assert_clean_error(resumed, "--cell rnn conflicts with the checkpoint's lstm", "leave out --resume", code=2)
    assert "--init-from" not in resumed.stderr  # which would refuse the cell in turn


def test_checkpoint_target_is_a_directory(tmp_path, tiny_corpus):
    """Refused before training, as every path that is not a file is (tests/test_writes.py)."""
    (tmp_path / "out.safetensors").mkdir()
    result = run_cli("train", str(tiny_corpus), *FAST, "--out", "out.safetensors", cwd=tmp_path)
    assert_clean_error(result, "is a directory", "nothing was written", code=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors", "tiny.txt"]
    assert not any((tmp_path / "out.safetensors").iterdir())


# ----------------------------------------------------------------------------- process faults


def test_kill_9_at_random_moments_leaves_a_resumable_checkpoint(tmp_path, tiny_corpus):
    rng = random.Random(0)
    resume = tmp_path / "checkpoints" / "tiny-1x16.resume.safetensors"
    kills = 0
    for _attempt in range(6):
        args = ["train", "--resume", str(resume)] if resume.exists() else ["train", str(tiny_corpus), *FAST]
        proc = subprocess.Popen(
            cli(*args, "--epochs", "500", "--save-minutes", "0.0001", "--log-every", "1"),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        while not proc.stderr.readline().startswith("step "):
            assert proc.poll() is None, "training stopped before its first step"
        time.sleep(rng.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        kills += 1
        saved = checkpoint.load(resume)  # whole and valid, whatever the moment of the kill
        assert all(np.isfinite(p).all() for p in saved.params.values())
    step = checkpoint.load(resume).train["step"]
    result = run_cli("train", "--resume", str(resume), "--max-steps", str(step + 2), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert checkpoint.load(resume).train["step"] == step + 2
    assert not list(resume.parent.glob(".*.tmp"))  # leftovers of killed writers were cleaned up
    assert kills == 6


def test_ctrl_c_twice_before_the_first_checkpoint(tmp_path):
    """A step of a 2×512 model takes a while: both Ctrl-Cs land in the first step, before anything
    is written, and the message does not claim a checkpoint."""
    book = ROOT / "corpora" / "lighthouse.txt"
    proc = subprocess.Popen(
        cli("train", str(book), "-H", "512", "-B", "64", "-T", "100", "--kernels", "numpy", "--max-steps", "50"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not proc.stderr.readline().startswith("checkpoints "):  # the banner's last line: training begins
        assert proc.poll() is None, "training stopped before it began"
    proc.send_signal(signal.SIGINT)
    while "stopping after this step" not in proc.stderr.readline():
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: aborted before the first checkpoint was written; nothing was saved"
    assert not list((tmp_path / "checkpoints").glob("*.safetensors"))


def test_two_runs_writing_the_same_checkpoint(tmp_path, tiny_corpus):
    first = training_at_its_first_step(str(tiny_corpus), *FAST, "--epochs", "500", cwd=tmp_path)
    try:
        second = run_cli("train", str(tiny_corpus), *FAST, "--fresh", cwd=tmp_path)
        assert_clean_error(second, "another charlstm train", f"pid {first.pid}", "--out", code=1)
        other = run_cli(
            "train", str(tiny_corpus), *FAST, "--max-steps", "2", "--out", "elsewhere.safetensors", cwd=tmp_path
        )
        assert other.returncode == 0, other.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert checkpoint.load(tmp_path / "checkpoints" / "tiny-1x16.resume.safetensors").train["status"] == "interrupted"


# --------------------------------------------------------------------------------- sampling


def test_sample_into_a_pipe_that_closes(tmp_path, trained):
    pipeline = f"{shlex.quote(sys.executable)} -m charlstm sample -n 1000000 | head -c 50; exit ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", pipeline], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # charlstm's exit status, not head's
    assert len(proc.stdout) == 50
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr


def test_sample_interrupted_with_ctrl_c(tmp_path, trained):
    # SIGINT as a terminal delivers it: a shell's background job (CI under `cmd &`) starts with it
    # ignored, and Python then keeps ignoring it
    proc = subprocess.Popen(
        cli("sample", "-n", "100000000"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    proc.stdout.read(20)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"Traceback" not in err


def test_sample_seed_with_unknown_characters(tmp_path, trained):
    model, _ = trained
    assert_clean_error(
        run_cli("sample", "-c", str(model), "--seed", "Ωmega", cwd=tmp_path), "'Ω'", "--drop-unknown", code=2
    )
