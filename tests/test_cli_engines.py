"""`charlstm train --engine torch` as a person types it: the banner, a checkpoint that every other
command reads without PyTorch, the NumPy path that never imports it, and the bad choices — each
one line, nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from charlstm.store import checkpoint

from helpers import assert_clean_error, run_cli

FAST = ["-H", "16", "-L", "1", "-B", "4", "-T", "16", "--sample-length", "0"]
NUMPY = ["--kernels", "numpy"]  # no ~1 s numba load per run
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # see test_engines.one_torch_thread


def hidden_torch(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment in which `import torch` fails as if it were not installed (a module of that
    name first on the path), and the file that module leaves behind when anything imports it."""
    folder = tmp_path / "no-torch"
    (folder / "torch").mkdir(parents=True)
    marker = folder / "imported"
    (folder / "torch" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    )
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}, marker


def test_a_torch_run_is_read_by_every_command_without_torch(tiny_corpus, tmp_path):
    pytest.importorskip("torch")
    result = run_cli(
        "train",
        str(tiny_corpus),
        *FAST,
        "--max-steps",
        "12",
        "--engine",
        "torch",
        "--device",
        "cpu",
        cwd=tmp_path,
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    assert "engine       torch 2." in result.stderr and " on cpu" in result.stderr  # the banner row, piped
    model_file = tmp_path / "checkpoints" / "tiny-1x16.safetensors"
    assert checkpoint.load(model_file.with_name("tiny-1x16.resume.safetensors")).train["config"]["engine"] == "torch"

    env, marker = hidden_torch(tmp_path)
    text, ckpt = str(tiny_corpus), str(model_file)
    commands = [
        ("sample", "-c", ckpt, "--seed", "The", "--length", "30", "--random-seed", "1"),
        ("eval", ckpt, text, "--json"),
        ("inspect", ckpt, "--json"),
        ("runs", "--json"),
        ("neurons", text, "-c", ckpt, "--unit", "3", "--max-chars", "100"),
        ("gates", text, "-c", ckpt, "--max-chars", "100", "--json"),
        ("gradients", text, "-c", ckpt, "-K", "5", "--max-chars", "100", "--json"),
    ]
    for command in commands:
        done = run_cli(*command, cwd=tmp_path, env=env)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip(), command
    assert json.loads(run_cli("inspect", ckpt, "--json", cwd=tmp_path, env=env).stdout)["train"]["step"] == 12
    assert not marker.exists()  # nothing imported torch


def test_the_numpy_engine_never_imports_torch(tiny_corpus, tmp_path):
    env, marker = hidden_torch(tmp_path)
    result = run_cli("train", str(tiny_corpus), *FAST, *NUMPY, "--max-steps", "3", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "engine       numpy (numpy kernels)" in result.stderr
    assert run_cli("sample", "--seed", "The", "--length", "10", cwd=tmp_path, env=env).returncode == 0
    assert not marker.exists()


def test_the_torch_engine_without_torch_says_how_to_install_it(tiny_corpus, tmp_path):
    env, _ = hidden_torch(tmp_path)
    result = run_cli("train", str(tiny_corpus), *FAST, "--engine", "torch", cwd=tmp_path, env=env)
    assert_clean_error(result, "the torch engine needs PyTorch", "pip install 'charlstm[torch]'", code=2)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    "options, fragments",
    [
        (["--engine", "torch", "--device", "cuda"], ["--device cuda: no CUDA GPU", "use --device cpu"]),
        (
            ["--engine", "torch", "--device", "cpu", "--precision", "bf16"],
            ["--precision bf16 runs on CUDA GPUs", "use --precision fp32"],
        ),
        (["--device", "cpu"], ["--device is an option of the torch engine", "add --engine torch"]),
        (["--precision", "bf16", "--device", "cuda"], ["--device and --precision are options of the torch engine"]),
        (["--engine", "torch", "--device", "tpu"], ["--device must be auto, cpu, cuda, cuda:N"]),
        (
            ["--engine", "torch", "--kernels", "numba"],
            ["--kernels is an option of the numpy engine, not of the torch engine", "drop it"],
        ),
    ],
)
def test_an_engine_that_cannot_run_here_is_one_line_and_nothing_written(tiny_corpus, tmp_path, options, fragments):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: these choices would run")
    result = run_cli("train", str(tiny_corpus), *FAST, *options, cwd=tmp_path, env=ONE_THREAD)
    assert_clean_error(result, *fragments, code=2)
    assert not (tmp_path / "checkpoints").exists()


def test_ranks_that_cannot_share_the_batch_are_one_line_from_rank_0(tiny_corpus, tmp_path):
    """torchrun's environment, WORLD_SIZE 2 with --batch-size 3: rank 0 says so, the other rank is
    silent, both fail and nothing is written (before any process group: no torchrun needed)."""
    pytest.importorskip("torch")
    args = ("train", str(tiny_corpus), *FAST, "-B", "3", "--engine", "torch", "--device", "cpu")
    ranks = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", **ONE_THREAD}
    leader = run_cli(*args, cwd=tmp_path, env={**ranks, "RANK": "0", "LOCAL_RANK": "0"})
    assert_clean_error(leader, "--batch-size 3 does not divide among 2 ranks", code=2)
    other = run_cli(*args, cwd=tmp_path, env={**ranks, "RANK": "1", "LOCAL_RANK": "1"})
    assert other.returncode == 2 and other.stderr == "" and other.stdout == ""
    numpy = run_cli(
        "train", str(tiny_corpus), *FAST, *NUMPY, cwd=tmp_path, env={**ranks, "RANK": "0", "LOCAL_RANK": "0"}
    )
    assert_clean_error(numpy, "only the torch engine trains across ranks; add --engine torch", code=2)
    assert not (tmp_path / "checkpoints").exists()
