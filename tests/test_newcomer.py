"""What a newcomer tripped on (issue 28), through the real command line: a resume with no step left
to do, a resume of a run that is still starting, a checkpoint or a compressed file given where a
text belongs, what `eval` leaves unscored and why, and a mistyped choice."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from charlstm.store import checkpoint

from helpers import PANGRAMS, TINY_RUN, assert_clean_error, copy_run_folder, run_cli, training_at_its_first_step

MODEL = "checkpoints/tiny-1x16.safetensors"
RESUME = "checkpoints/tiny-1x16.resume.safetensors"


@pytest.fixture(scope="module")
def ended_by_time(tmp_path_factory) -> Path:
    """A folder with tiny.txt and a tiny run that its time budget (--max-minutes alone) ended."""
    work = tmp_path_factory.mktemp("ended_by_time")
    (work / "tiny.txt").write_text(PANGRAMS * 40, encoding="utf-8")
    result = run_cli("train", "tiny.txt", *TINY_RUN, "--max-minutes", "0.02", cwd=work)
    assert result.returncode == 0, result.stderr
    assert checkpoint.load(work / RESUME).train["status"] == "time_budget"
    return work


@pytest.fixture
def work(tmp_path, ended_by_time) -> Path:
    return copy_run_folder(ended_by_time, tmp_path)


def files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------ a resume with nothing to do


@pytest.mark.parametrize("extra", [[], ["--lr", "0.003", "--kernels", "auto"]], ids=["plain", "with-options"])
def test_a_resume_that_would_train_nothing_writes_nothing_and_says_how_to_go_on(work, extra):
    """The run ended by its time budget: with no new end there is no step to do. Nothing is
    written (the options given are not saved either), no "--max-steps: none → N" that nobody
    gave, exit 0, and one line naming the three ways on."""
    before = files(work / "checkpoints")
    step = checkpoint.load(work / RESUME).train["step"]
    result = run_cli("train", "--resume", RESUME, *extra, cwd=work)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in (
        f"at step {step:,}",
        "time budget",
        "nothing was written",
        "--max-minutes",
        "--epochs",
        "--max-steps",
    ):
        assert fragment in lines[0], (fragment, lines[0])
    assert "resuming with" not in result.stderr and "error" not in result.stderr
    assert files(work / "checkpoints") == before  # not a byte, not a timestamp
    again = run_cli("train", "--resume", RESUME, "--max-steps", str(step + 2), cwd=work)  # what it says works
    assert again.returncode == 0, again.stderr
    assert checkpoint.load(work / RESUME).train["step"] == step + 2


def test_a_resume_whose_given_end_is_behind_it_writes_nothing(work):
    before = files(work / "checkpoints")
    result = run_cli("train", "--resume", RESUME, "--max-steps", "1", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "the end you gave (--max-steps 1) is behind it" in result.stderr
    assert files(work / "checkpoints") == before


# --------------------------------------------------------------- a resume of a run still starting


def test_resuming_a_run_that_is_still_starting_names_the_pid(tmp_path):
    """The first run holds the lock and has not written its resume file yet (it is stopped with
    SIGSTOP at its first step, so it cannot get there): --resume of that file names its pid."""
    (tmp_path / "big.txt").write_text(PANGRAMS * 2000, encoding="utf-8")  # a first epoch of thousands of steps
    first = training_at_its_first_step("big.txt", *TINY_RUN, "--epochs", "50", cwd=tmp_path)
    try:
        first.send_signal(signal.SIGSTOP)
        resume = tmp_path / "checkpoints" / "big-1x16.resume.safetensors"
        assert not resume.exists()
        result = run_cli("train", "--resume", str(resume), cwd=tmp_path)
        assert_clean_error(result, f"pid {first.pid}", "is starting this run", "not written yet", code=1)
        assert "no such checkpoint" not in result.stderr
    finally:
        first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    gone = run_cli("train", "--resume", "checkpoints/nothing.resume.safetensors", cwd=tmp_path)
    assert_clean_error(gone, "no such checkpoint", code=1)  # no run starting there: as before


# ------------------------------------------------------------- a checkpoint where a text belongs


@pytest.mark.parametrize(
    "command, advice",
    [
        (["eval"], "to score a text with it: charlstm eval TEXT -c {ckpt}"),
        (["neurons"], "charlstm neurons TEXT -c {ckpt} --unit N"),
        (["neurons", "--unit", "0"], "charlstm neurons TEXT -c {ckpt} --unit N"),
        (["gates"], "charlstm gates TEXT -c {ckpt}"),
        (["gradients"], "charlstm gradients TEXT -c {ckpt}"),
    ],
)
def test_a_checkpoint_given_as_the_text_says_what_to_run(work, tmp_path, command, advice):
    """Even with no checkpoint folder to find the newest in: the text is looked at first."""
    ckpt = str(work / MODEL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli(command[0], ckpt, *command[1:], cwd=elsewhere)
    assert_clean_error(result, f"{ckpt} is a checkpoint, not a text", advice.format(ckpt=ckpt), code=2)
    text = str(work / "tiny.txt")
    following = run_cli(
        command[0], text, "-c", ckpt, *(["--unit", "0"] if command[0] == "neurons" else []), cwd=elsewhere
    )
    assert following.returncode == 0, following.stderr  # what it says works


def _zip(path: Path, data: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tiny.txt", data)


@pytest.mark.parametrize(
    "suffix, compress, cat",
    [
        (".gz", gzip.compress, "zcat"),
        (".bz2", bz2.compress, "bzcat"),
        (".xz", lzma.compress, "xzcat"),
        (".zip", None, "unzip -p"),
    ],
)
def test_a_compressed_text_is_recognised_and_a_pipe_suggested(work, suffix, compress, cat):
    data = (work / "tiny.txt").read_bytes()
    path = work / f"tiny.txt{suffix}"
    if compress is None:
        _zip(path, data)
    else:
        path.write_bytes(compress(data))
    name = path.name
    for command in (["eval", name], ["train", name, *TINY_RUN, "--out", "z.safetensors"], ["gates", name]):
        result = run_cli(*command, cwd=work)
        assert_clean_error(result, f"{name}: is", "-compressed, not text", f"<({cat} {name})", code=1)
        assert "NUL byte" not in result.stderr


def test_the_pipe_it_suggests_works_for_eval(work):
    """`charlstm eval <(zcat FILE)`: a stream has no size, and is not taken for an empty file."""
    (work / "tiny.txt.gz").write_bytes(gzip.compress((work / "tiny.txt").read_bytes()))
    line = f"{sys.executable} -m charlstm eval <(zcat tiny.txt.gz) --json"
    result = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chars"] == len(PANGRAMS * 40)


# ------------------------------------------------------------------------------------ small


def test_eval_says_which_characters_are_not_scored_and_why(work):
    text = (work / "tiny.txt").read_text(encoding="utf-8")
    result = run_cli("eval", "tiny.txt", "-B", "7", cwd=work)
    assert result.returncode == 0, result.stderr
    left = 1 + (len(text) - 1) % 7
    assert f"{len(text) - left:,} of {len(text):,}" in result.stdout
    assert (
        f"not scored: the first character (nothing comes before it) and the last {left - 1:,}, left over when the "
        f"text is cut into 7 equal streams (--batch-size)"
    ) in " ".join(result.stdout.split())
    record = json.loads(run_cli("eval", "tiny.txt", "-B", "7", "--json", cwd=work).stdout)
    assert record["chars_not_scored"] == left and record["streams"] == 7


@pytest.mark.parametrize(
    "args, hint",
    [
        (["train", "tiny.txt", "--kernels", "numbaa"], "--kernels must be one of auto, numpy, numba, not 'numbaa'; see charlstm train --help"),
        (["sample", "--kernels", "numbaa"], "not 'numbaa'; see charlstm sample --help"),
        (["train", "tiny.txt", "--device", "gpu"], "not 'gpu'; see charlstm train --help"),
        (["gradcheck", "--cell", "tree"], "--cell must be one of lstm, gru, rnn or all, not 'tree'; see charlstm gradcheck --help"),
        (["train", "tiny.txt", "--cell", "tree"], "not 'tree'; see charlstm train --help"),  # click's, as before
    ],
)  # fmt: skip
def test_a_mistyped_choice_names_it_and_points_to_help(work, args, hint):
    assert_clean_error(run_cli(*args, cwd=work), hint, code=2)


def test_a_resume_lists_only_the_changes_that_were_asked_for(ended_by_time):
    """The end a run without --epochs or --max-steps keeps (its step) is no change anybody asked
    for: never "resuming with --max-steps: none → N"."""
    from charlstm.training.plan import resume_config

    ckpt = checkpoint.load(ended_by_time / RESUME)
    cfg, changes = resume_config(ckpt, {"lr": 0.003})
    assert cfg.max_steps == ckpt.train["step"]  # where it ends: here
    assert changes == ["--lr: 0.004 → 0.003"]
    assert resume_config(ckpt, {"epochs": 3})[1] == ["--epochs: none → 3"]
