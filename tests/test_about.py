"""`charlstm --version`: the version, and the optional parts present, each found without importing
it when it is not installed (charlstm.cli.about)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from charlstm import __version__
from charlstm.cli import about

from helpers import run_cli


def test_version_names_the_optional_parts():
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"charlstm {__version__}"
    assert {line.split()[0] for line in lines[1:]} == {"python", "numpy", "numba", "torch"}
    numba, torch = about.installed("numba"), about.installed("torch")
    numba_line = next(line for line in lines if line.startswith("numba"))
    assert (numba in numba_line) if numba else ("not installed (pip install 'charlstm[fast]'" in numba_line)
    torch_line = next(line for line in lines if line.startswith("torch"))
    if torch is None:
        assert "not installed (pip install 'charlstm[torch]'" in torch_line
    else:
        assert torch in torch_line and "devices: cpu" in torch_line


def test_the_torch_line_counts_its_gpus():
    torch = pytest.importorskip("torch")
    from charlstm import engines

    devices = engines.describe_torch_devices().split(", ")
    assert devices[0] == "cpu"
    assert (f"cuda ×{torch.cuda.device_count()}" in devices) == torch.cuda.is_available()
    assert ("mps" in devices) == torch.backends.mps.is_available()


def test_a_part_not_installed_is_found_so_without_an_import():
    code = (
        "import sys; from charlstm.cli import about\n"
        "assert about.installed('charlstm_no_such_part') is None\n"
        "assert about.installed('numpy') and 'numpy' not in sys.modules\n"
        "assert about.installed('torch') is None or 'torch' not in sys.modules\n"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
