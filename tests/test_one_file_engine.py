"""An engine defined in one file outside charlstm (tests/twin_engine.py: the NumPy engine under
the name "twin"), registered by importing it, and `charlstm train --engine twin` working with it
through the real command line: trained, resumed, refused where its declaration says so, listed in
help. Each command runs as `python -c "import twin_engine; from charlstm.cli import main; main()"`."""

from __future__ import annotations

import pytest

from charlstm import engines
from charlstm.store import checkpoint

from helpers import TINY_RUN, assert_clean_error, run_cli, run_cli_with

RESUME = "checkpoints/tiny-1x16.resume.safetensors"


def twin(*args: str, cwd, env=None):
    return run_cli_with("twin_engine", *args, cwd=cwd, env=env)


def test_it_trains_resumes_and_its_runs_are_read_by_every_command(tiny_corpus, tmp_path):
    first = twin("train", str(tiny_corpus), *TINY_RUN, "--engine", "twin", "--max-steps", "4", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "engine       twin, numpy (numpy kernels)" in first.stderr  # its own describe(), in the banner
    assert checkpoint.load(tmp_path / RESUME).train["config"]["engine"] == "twin"
    resumed = twin("train", "--resume", RESUME, "--max-steps", "6", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "twin, numpy" in resumed.stderr and checkpoint.load(tmp_path / RESUME).train["step"] == 6
    sampled = run_cli("sample", "--seed", "The", "--length", "10", cwd=tmp_path)  # no engine needed
    assert sampled.returncode == 0 and sampled.stdout.startswith("The")


def test_its_declaration_is_what_is_checked(tiny_corpus, tmp_path):
    """The options it takes (--kernels), the ranks it does not train across, and its name: each
    refused in one line, before anything is written."""
    args = ("train", str(tiny_corpus), *TINY_RUN, "--engine", "twin")
    assert_clean_error(
        twin(*args, "--device", "cpu", cwd=tmp_path), "--device is an option of the torch engine", "twin", code=2
    )
    ranks = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    assert_clean_error(twin(*args, cwd=tmp_path, env=ranks), "only the torch engine trains across ranks", code=2)
    assert_clean_error(run_cli(*args, cwd=tmp_path), "--engine must be one of numpy, torch", code=2)  # not imported
    assert not (tmp_path / "checkpoints").exists()


def test_help_lists_it_with_what_it_says_of_itself(tmp_path):
    shown = twin("train", "--help", cwd=tmp_path, env={"COLUMNS": "400"})
    assert shown.returncode == 0
    assert "twin (the NumPy engine under another name, a test's)" in shown.stdout
    assert "[numpy|torch|twin]" in shown.stdout


def test_a_declaration_is_checked_when_registered():
    make = engines.get("numpy").make
    with pytest.raises(ValueError, match="lower-case"):
        engines.register(engines.EngineKind("Twin", "", make))
    with pytest.raises(ValueError, match="no engine option"):
        engines.register(engines.EngineKind("twin", "", make, options=("gpus",)))
    assert "twin" not in engines.names()
