"""`charlstm sample` and `charlstm inspect` through the real command line."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import numpy as np
import pytest

from charlstm.store import checkpoint
from charlstm.text.corpus import Vocab

from helpers import ROOT, assert_clean_error, assert_sampled_as_reference, random_model, run_cli


@pytest.fixture(scope="module")
def unicode_model(tmp_path_factory):
    """A small model trained briefly on the project's multilingual corpus."""
    work = tmp_path_factory.mktemp("uni")
    result = run_cli(
        "train",
        str(ROOT / "corpora" / "unicode.txt"),
        "-H",
        "48",
        "-L",
        "1",
        "-B",
        "8",
        "-T",
        "32",
        "--max-steps",
        "40",
        "--sample-length",
        "0",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    return work, work / "checkpoints" / "unicode-1x48.safetensors"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    work = tmp_path_factory.mktemp("small")
    vocab = Vocab.from_text("abcdefgh .,\n")
    config, params = random_model(vocab.size, 16, 2, dtype=np.float32, scale=0.6)
    path = checkpoint.save(checkpoint.Checkpoint(config, vocab, params), work / "m.safetensors")
    return work, str(path)


def test_unicode_samples_print_correctly(unicode_model):
    work, path = unicode_model
    result = run_cli(
        "sample",
        "-c",
        str(path),
        "--seed",
        "海 🌊 ",
        "--length",
        "200",
        "--random-seed",
        "0",
        cwd=work,
        env={"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("海 🌊 ")
    assert len(result.stdout) == len("海 🌊 ") + 200 + 1
    vocab = set(checkpoint.load(path).vocab.chars)
    assert set(result.stdout) <= vocab | {"\n"}


def test_num_samples_are_delimited(small):
    work, path = small
    result = run_cli("sample", "-c", path, "-N", "3", "-n", "40", "--seed", "ab", "--random-seed", "1", cwd=work)
    assert result.returncode == 0, result.stderr
    parts = result.stdout.split("--- sample ")
    assert parts[0] == "" and [p.split(" ---")[0] for p in parts[1:]] == ["1 of 3", "2 of 3", "3 of 3"]
    bodies = [p.split("---\n", 1)[1] for p in parts[1:]]
    assert all(b.startswith("ab") and len(b) == 2 + 40 + 1 for b in bodies)
    assert len(set(bodies)) == 3


def test_stop_output_and_no_seed_echo(small, tmp_path):
    work, path = small
    result = run_cli("sample", "-c", path, "-n", "2000", "--seed", "a", "--stop", "\\n", "--random-seed", "2", cwd=work)
    assert result.returncode == 0
    body = result.stdout  # ends at the stop newline: no blank line after it
    assert body.endswith("\n") and body.count("\n") == 1 and len(body) < 2001
    out = tmp_path / "gen.txt"
    result = run_cli(
        "sample",
        "-c",
        path,
        "-n",
        "50",
        "--seed",
        "abc",
        "--no-seed-echo",
        "-o",
        str(out),
        "--random-seed",
        "2",
        cwd=work,
    )
    assert result.returncode == 0 and result.stdout == ""
    text = out.read_text(encoding="utf-8")
    assert len(text) == 50 + (
        text[49] != "\n"
    )  # 50 generated characters, no seed; a final newline unless the last was one
    echoed = run_cli("sample", "-c", path, "-n", "50", "--seed", "abc", "--random-seed", "2", cwd=work).stdout
    assert echoed == "abc" + text


def test_drop_unknown_seed_characters(small):
    work, path = small
    assert_clean_error(
        run_cli("sample", "-c", path, "--seed", "abXY", cwd=work), "'X'", "'Y'", "--drop-unknown", code=2
    )
    result = run_cli("sample", "-c", path, "--seed", "abXY", "--drop-unknown", "-n", "10", cwd=work)
    assert result.returncode == 0 and result.stdout.startswith("ab")
    assert "'X'" in result.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--temperature", "0"], "--greedy"),
        (["--temperature", "-1"], "--temperature"),
        (["--top-p", "0"], "--top-p"),
        (["--top-p", "1.5"], "--top-p"),
        (["--length", "-1"], "--length"),
        (["--top-k", "0"], "--top-k"),
        (["--num-samples", "0"], "--num-samples"),
        (["--stop", ""], "--stop must not be empty"),
        (["--seed", "ab", "--seed-file", "seed.txt"], "give --seed or --seed-file, not both"),
    ],
)
def test_bad_values_are_usage_errors(small, args, fragment):
    work, path = small
    assert_clean_error(run_cli("sample", "-c", path, *args, cwd=work), fragment, code=2)


def test_greedy_is_deterministic(small):
    work, path = small
    a = run_cli("sample", "-c", path, "--greedy", "-n", "30", cwd=work)
    b = run_cli("sample", "-c", path, "--greedy", "-n", "30", "--random-seed", "9", cwd=work)
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout == b.stdout and len(a.stdout) == 31  # 30 characters and the final newline


def test_closing_the_pipe_early_is_clean(small):
    work, path = small
    pipeline = f"{shlex.quote(sys.executable)} -m charlstm sample -c {shlex.quote(path)} -n 200000 | head -c 100; exit ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", pipeline], cwd=work, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # charlstm's exit status, not head's
    assert len(proc.stdout) == 100
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


def test_inspect_shows_history_chart_and_samples(unicode_model):
    work, _ = unicode_model
    resume = work / "checkpoints" / "unicode-1x48.resume.safetensors"
    out = run_cli("inspect", str(resume), "--samples", cwd=work).stdout
    assert "loss per epoch" in out and any(ch in out for ch in "▁▂▃▄▅▆▇█")
    assert "resumable" in out and "--resume" in out
    info = json.loads(run_cli("inspect", str(resume), "--json", cwd=work).stdout)
    assert info["resumable"] and info["num_params"] == sum(t["count"] for t in info["tensors"].values())
    assert info["history"] and "val_loss" in info["history"][0]
    assert info["vocab"] == list(checkpoint.load(resume).vocab.chars)


def test_kernels_choose_the_step_and_draw_the_same_text(small):
    """--kernels numpy (the default: nothing compiled to load), numba and auto sample the same text
    from the same seed — to float rounding: every character is the plain NumPy loop's draw after
    the same text, except where its uniform fell within ~1e-5 of a CDF step; an unknown name is a
    clean usage error."""
    work, path = small
    args = ("sample", "-c", path, "-N", "2", "-n", "60", "--seed", "ab", "--random-seed", "4")
    default = run_cli(*args, cwd=work)
    assert default.returncode == 0, default.stderr
    names = ["numpy", "auto"] + (["numba"] if kernels_available() else [])
    ckpt = checkpoint.load(path)
    for name in names:
        result = run_cli(*args, "--kernels", name, cwd=work)
        assert result.returncode == 0, (name, result.stderr)
        if name == "numpy":
            assert result.stdout == default.stdout
        steps = sampled_ids(result.stdout, ckpt.vocab, "ab", 2)
        assert_sampled_as_reference(
            steps, ckpt.params, ckpt.config, ckpt.vocab.encode("ab"), 1.0, np.random.default_rng(4), rtol=1e-5
        )
    assert_clean_error(
        run_cli(*args, "--kernels", "fortran", cwd=work), "--kernels must be one of auto, numpy, numba", code=2
    )


def sampled_ids(stdout: str, vocab: Vocab, seed: str, num_samples: int) -> np.ndarray:
    """The ids each of `num_samples` samples printed after its seed, as (length, num_samples)."""
    texts = [body.split(" ---\n", 1)[1].removesuffix("\n") for body in ("\n" + stdout).split("\n--- sample ")[1:]]
    assert len(texts) == num_samples and all(t.startswith(seed) for t in texts), stdout
    return np.stack([vocab.encode(t[len(seed) :]) for t in texts], axis=1)


def kernels_available() -> bool:
    from charlstm.nn import kernels

    return kernels.available()
