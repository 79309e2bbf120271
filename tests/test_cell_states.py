"""A cell whose states are not h and c (tests/mcell.py: an LSTM whose cell state is named m) is
drawn whole: `gradients` and the report show every state the cell declares, and the help of
`neurons --what` lists its quantities, read from its declaration."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import PANGRAMS, run_cli_with

MODEL = ["--cell", "mcell", "-H", "8", "-L", "2", "-B", "4", "-T", "16", "--kernels", "numpy"]
CHECKPOINT = "checkpoints/tiny-mcell-2x8.safetensors"


def mcell(*args: str, cwd: Path, env: dict | None = None):
    return run_cli_with("mcell", *args, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mcell")
    (root / "tiny.txt").write_text(PANGRAMS * 40, encoding="utf-8")
    result = mcell("train", "tiny.txt", *MODEL, "--max-steps", "4", "--sample-length", "0", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def test_gradients_draws_every_state_the_cell_declares(trained):
    args = ("gradients", "tiny.txt", "-K", "4", "-P", "3", "--max-chars", "200")
    flow = json.loads(mcell(*args, "--json", cwd=trained).stdout)
    assert flow["states"] == ["h", "m"] and "c" not in flow
    for name in ("h", "m"):
        assert len(flow[name]) == 2 and len(flow[name][0]) == 5 and all(v > 0 for v in flow[name][0])
        assert len(flow["decay"][name]) == 2
    drawn = mcell(*args, cwd=trained)
    assert drawn.returncode == 0, drawn.stderr
    assert re.search(r"h l0\s+m l0\s+h l1\s+m l1", drawn.stdout), drawn.stdout  # a column each
    assert "m l1: k=4 / k=0 = " in drawn.stdout


def test_the_report_draws_every_state_the_cell_declares(trained):
    result = mcell("report", CHECKPOINT, "--max-lag", "4", "--positions", "3", cwd=trained)
    assert result.returncode == 0, result.stderr
    page = (trained / result.stdout.strip()).read_text(encoding="utf-8")
    for layer in (0, 1):
        assert f'data-series="h l{layer}"' in page and f'data-series="m l{layer}"' in page  # the table
    assert "tiny-mcell-2x8 m" in page  # the plot's legend: the run and the state
    assert 'data-series="c l0"' not in page


def test_help_lists_the_quantities_the_cells_declare(tmp_path):
    shown = mcell("neurons", "--help", cwd=tmp_path, env={"COLUMNS": "400"}).stdout
    text = " ".join(shown.split())
    assert "MCELL m, h, i, f, g or o" in text and "LSTM c, h, i, f, g or o" in text
    assert "(default: c for the LSTM, m for the MCELL, h otherwise)" in text
