"""bench/gpu_smoke.py, the first thing a session lent a GPU runs, in its reduced dry run on the CPU
(`--device cpu --quick`), so that the script cannot rot between GPU sessions: every row present,
measured or skipped with its reason, none failed, each a JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
ROWS = ["precision", "syncs", "memory", "equivalence", "resume", "ddp", "engines"]


def test_the_gpu_smoke_test_passes_its_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "smoke.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_smoke.py"), "--device", "cpu", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == ROWS
    assert all(r["ok"] and r["device"] == "cpu" for r in rows), rows
    skipped = {r["row"]: r["skipped"] for r in rows if "skipped" in r}
    assert set(skipped) == {"syncs", "ddp", "engines"}  # CUDA's sync mode, two GPUs, the full dry run's
    precision = next(r for r in rows if r["row"] == "precision")
    assert precision["bf16"]["recurrent"] == "torch.float32" and precision["bf16"]["head"] == "torch.bfloat16"
    assert f"{len(ROWS)}/{len(ROWS)} rows ok" in done.stdout
