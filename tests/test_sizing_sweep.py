"""bench/sizing_sweep.py --from-logs, on logs of the real --log-json schema (one tiny real run's log,
its header's shape, steps and corpus size and its losses rewritten for each case): the rule's pick
is compared with the default run and the best, an unfinished run is marked and never the best, a
file not named as a sweep's log is left out, and a bad command line is one line of error. The
runs themselves (speeds, steps, parallel training) are not run here: they take minutes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from charlstm.training import sizing

from helpers import ROOT, TINY_RUN, run_cli

SCRIPT = ROOT / "bench" / "sizing_sweep.py"
TRAIN_CHARS = 1_000_000
STEPS = {"2x128": 956, "2x256": 376}  # 2 minutes at ~61k and ~24k chars/s, batch 64 × 100


def sweep(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> list[dict]:
    """The records of a real run's --log-json: header, step, epoch and end records."""
    folder = tmp_path_factory.mktemp("real")
    log = folder / "log.jsonl"
    args = ["train", str(ROOT / "corpora" / "lighthouse.txt"), "--val-fraction", "0.1", "--max-steps", "3"]
    done = run_cli(*args, *TINY_RUN, "--out", str(folder / "m.safetensors"), "--log-json", str(log), "--quiet")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def write_log(folder: Path, template: list[dict], shape: str, dropout: float, losses: list[float], end: bool) -> str:
    """ts2_SHAPE_dD.jsonl: the template's records with this shape, dropout, steps and validation losses."""
    header, epoch = dict(template[0]), next(r for r in template if r["type"] == "epoch")
    layers, hidden = (int(x) for x in shape.split("x"))
    steps = STEPS[shape]
    header.update(
        model={**header["model"], "num_layers": layers, "hidden_size": hidden},
        train={**header["train"], "batch_size": 64, "seq_len": 100, "max_steps": steps, "dropout": dropout},
        corpus={**header["corpus"], "name": "tinyshakespeare", "train_chars": TRAIN_CHARS},
        total_steps=steps,
    )
    records = [header] + [{**epoch, "step": (k + 1) * 100, "val_loss": v} for k, v in enumerate(losses)]
    if end:
        ends = next(r for r in template if r["type"] == "end")
        records.append({**ends, "reason": "max_steps", "step": steps, "best_val_loss": min(losses)})
    name = f"ts2_{shape}_d{dropout * 10:g}"
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return name


def test_the_rules_pick_is_compared_with_the_default_and_the_best(tmp_path, template):
    dropouts = sorted(set(sizing.DROPOUT.values()) | {0.1, 0.2})
    loss = {}
    for shape in STEPS:
        for k, d in enumerate(dropouts):
            loss[shape, d] = 1.80 - 0.01 * k - (0.05 if shape == "2x128" else 0.0)
            write_log(tmp_path, template, shape, d, [loss[shape, d] + 0.3, loss[shape, d]], end=True)
    unfinished = write_log(tmp_path, template, "2x256", 0.05, [2.5, 1.0], end=False)  # lowest, but not done
    (tmp_path / "notes.jsonl").write_text("{}\n")
    out = tmp_path / "sweep.json"
    done = sweep("--from-logs", str(tmp_path), "--tag", "ts=/somewhere/tinyshakespeare.txt", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["skipped"] == ["notes.jsonl: not named TAG MINUTES_SHAPE_dDROPOUT"]
    (group,) = report["groups"]
    assert (group["corpus"], group["minutes"], group["train_chars"]) == ("tinyshakespeare.txt", 2.0, TRAIN_CHARS)
    implied = {s: steps * 6400 / (120 * sizing.USABLE) for s, steps in STEPS.items()}
    assert group["speeds"] == pytest.approx(implied, rel=1e-4)
    runs = {r["name"]: r for r in group["runs"]}
    assert runs[unfinished]["status"] == f"incomplete: step 200 of {STEPS['2x256']}"
    chosen = sizing.choose(TRAIN_CHARS, 120, {sizing.Shape.parse(s): v for s, v in implied.items()})
    rule = group["rule"]
    assert (rule["shape"], rule["dropout"]) == (str(chosen.shape), chosen.dropout)
    best = min(loss.values())
    assert rule["best_run"] == f"ts2_2x128_d{dropouts[-1] * 10:g}" and rule["default_run"] == "ts2_2x256_d2"
    assert rule["vs_default"] == pytest.approx(loss[str(chosen.shape), chosen.dropout] - loss["2x256", 0.2])
    assert rule["vs_best"] == pytest.approx(loss[str(chosen.shape), chosen.dropout] - best)
    diff = rule["vs_default"]
    assert report["check"] == {"groups": 1, "worst": diff, "mean": diff, "holds": diff <= 0.005 and diff < 0}
    assert "← best" in next(line for line in done.stdout.splitlines() if line.strip().startswith(rule["best_run"]))
    assert "[incomplete: step 200 of 376]" in done.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["corpora/lighthouse.txt", "--shapes", "2by256"], "'2by256' is not a shape"),
        (["corpora/lighthouse.txt", "--shapes", "2x16", "1x16", "--dropouts", "0.1"], "one per shape"),
        (["--from-logs", "no/such/folder"], "not a folder"),
        ([], "give one or more corpora"),
    ],
)
def test_a_bad_command_line_is_one_line_of_error(args, fragment):
    done = sweep(*args)
    assert done.returncode == 2 and fragment in done.stderr.splitlines()[-1] and "Traceback" not in done.stderr
