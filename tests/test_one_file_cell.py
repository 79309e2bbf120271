"""A cell defined in one file outside charlstm (tests/mgu.py, a minimal gated unit), registered by
importing it, and the whole tool working with it through the real command line: train, resume,
sample, eval, inspect, runs, neurons, gates, gradients, gradcheck and report — and the torch
engine refusing it in one line, since no torch.nn module computes it.

Each command runs as `python -c "import mgu; from charlstm.cli import main; main()" ARGS`: the
`charlstm` command, with the cell's module imported first (which registers it). No file of
charlstm knows the cell.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PANGRAMS, assert_clean_error, assert_ends_with_clean_error, run_cli

TESTS = Path(__file__).resolve().parent
BOOTSTRAP = "import mgu; from charlstm.cli import main; main()"
MODEL = ["--cell", "mgu", "-H", "16", "-L", "2", "-B", "4", "-T", "16", "--kernels", "numpy"]
CHECKPOINT = "checkpoints/tiny-mgu-2x16.safetensors"


def mgu_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`charlstm ARGS` in `cwd`, with the MGU registered."""
    env = {
        **os.environ,
        "COLUMNS": "120",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def json_of(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """A folder with tiny.txt and a 2×16 MGU trained on it for 6 steps, then resumed to 10: the
    folder and both runs' results."""
    root = tmp_path_factory.mktemp("mgu")
    (root / "tiny.txt").write_text(PANGRAMS * 40, encoding="utf-8")
    first = mgu_cli("train", "tiny.txt", *MODEL, "--max-steps", "6", "--sample-length", "20", cwd=root)
    resumed = mgu_cli(
        "train",
        "--resume",
        "checkpoints/tiny-mgu-2x16.resume.safetensors",
        "--max-steps",
        "10",
        "--sample-length",
        "20",
        cwd=root,
    )
    return root, first, resumed


def test_it_trains_and_resumes_on_the_numpy_engine(run):
    root, first, resumed = run
    assert first.returncode == 0, first.stderr
    assert "2×16 MGU" in first.stderr and "--- sample after epoch" in first.stderr
    assert resumed.returncode == 0, resumed.stderr
    info = json_of(mgu_cli("inspect", "--json", cwd=root))
    assert info["config"]["cell"] == "mgu"
    assert info["tensors"]["mgu.weight_ih_l0"]["shape"] == [32, 34]  # two gate blocks of 16, PyTorch's layout
    assert info["tensors"]["mgu.weight_hh_l1"]["shape"] == [32, 16]
    assert [r["step"] for r in info["history"]] == [6, 10]  # the resume continued the run


def test_sample_eval_and_runs(run):
    root, _, _ = run
    sampled = mgu_cli("sample", "--seed", "The", "--length", "30", "--random-seed", "1", cwd=root)
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("The") and len(sampled.stdout.rstrip("\n")) >= 33
    evaluated = json_of(mgu_cli("eval", "tiny.txt", "--json", cwd=root))
    assert evaluated["model"] == "2×16 MGU" and 0 < evaluated["loss"] < 1.1 * math.log(34)
    listed = mgu_cli("runs", cwd=root)
    assert listed.returncode == 0 and "tiny-mgu-2x16" in listed.stdout and "2×16 MGU" in listed.stdout


def test_the_views_read_what_the_cell_declares(run):
    """neurons shows its quantities (f, a sigmoid, in (0, 1)) and refuses others, gates counts its
    one gate f at 0.1 / 0.9 with no note, gradients draws its one state h."""
    root, _, _ = run
    unit = json_of(
        mgu_cli("neurons", "tiny.txt", "--unit", "3", "--what", "f", "--max-chars", "60", "--json", cwd=root)
    )
    assert (unit["what"], len(unit["values"])) == ("f", 60) and all(0 < v < 1 for v in unit["values"])
    assert_ends_with_clean_error(
        mgu_cli("neurons", "tiny.txt", "--unit", "3", "--what", "c", cwd=root), "a MGU has h, f, n", code=2
    )
    found = json_of(mgu_cli("neurons", "tiny.txt", "--find", "line", "--max-chars", "300", "--json", cwd=root))
    assert {u["what"] for u in found["units"]} == {"h"}  # the cell's default quantity
    gates = mgu_cli("gates", "tiny.txt", "--max-chars", "300", "--json", cwd=root)
    assert [(g["layer"], g["gate"], g["low"], g["high"]) for g in json_of(gates)["gates"]] == [
        (0, "f", 0.1, 0.9),
        (1, "f", 0.1, 0.9),
    ]
    assert "no gates" not in gates.stderr
    flow = json_of(mgu_cli("gradients", "tiny.txt", "-K", "5", "-P", "3", "--max-chars", "300", "--json", cwd=root))
    assert (
        flow["states"] == ["h"] and len(flow["h"]) == 2 and len(flow["h"][0]) == 6 and all(v > 0 for v in flow["h"][0])
    )


def test_its_gradients_pass_gradcheck():
    """Central differences in float64 against its backward (here its plain step_back, run by
    `stepwise`) for every parameter and the initial state, as for the built-in cells."""
    (result,) = json_of(mgu_cli("gradcheck", "--cell", "mgu", "--json", cwd=TESTS))
    assert result["cell"] == "mgu" and result["passed"]
    names = {t["name"] for t in result["tensors"]}
    assert {"mgu.weight_ih_l0", "mgu.weight_hh_l1", "mgu.bias_hh_l0", "head.weight", "state0.h"} <= names
    assert max(t["max_error"] for t in result["tensors"]) < 1e-4


def test_report(run):
    root, _, _ = run
    result = mgu_cli("report", CHECKPOINT, cwd=root)
    assert result.returncode == 0, result.stderr
    page = Path(root, result.stdout.strip()).read_text(encoding="utf-8")
    assert "2×16 MGU" in page and 'data-run="tiny-mgu-2x16"' in page


def test_the_torch_engine_refuses_it_in_one_line(run):
    root, _, _ = run
    result = mgu_cli(
        "train",
        "tiny.txt",
        *MODEL[:-2],
        "--engine",
        "torch",
        "--max-steps",
        "2",
        "--out",
        "torch.safetensors",
        cwd=root,
    )
    torch_here = importlib.util.find_spec("torch") is not None
    assert_clean_error(
        result, "PyTorch has no module that computes the mgu cell" if torch_here else "needs PyTorch", code=2
    )
    assert not (root / "torch.safetensors").exists()


def test_without_its_module_the_checkpoint_is_refused_in_one_line(run):
    root, _, _ = run
    assert_clean_error(run_cli("sample", "-c", CHECKPOINT, cwd=root), "unknown cell 'mgu'")
