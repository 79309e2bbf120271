"""`charlstm train` as a process: Ctrl-C, resume, plain logs, JSON logs, the live display."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from charlstm.store import checkpoint
from charlstm.training import speeds

from helpers import ROOT, assert_clean_error, run_cli, run_tty

FAST = ["-H", "32", "-L", "1", "-B", "4", "-T", "16", "--kernels", "numpy"]  # numpy: no ~1 s numba load per run


def start(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "charlstm", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc, prefix: str, timeout: float = 60) -> list[str]:
    """Read stderr lines until one starts with `prefix`."""
    lines = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError("never saw " + prefix + ":\n" + "".join(lines))


def test_ctrl_c_saves_exits_130_and_resume_continues(tiny_corpus, tmp_path):
    proc = start(
        "train", str(tiny_corpus), *FAST, "--epochs", "1000", "--log-every", "1", "--sample-length", "0", cwd=tmp_path
    )
    wait_for_line(proc, "step 3/")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    resume_file = tmp_path / "checkpoints" / "tiny-1x32.resume.safetensors"
    assert f"charlstm train --resume {resume_file.relative_to(tmp_path)}" in err
    saved = checkpoint.load(resume_file)
    step = saved.train["step"]
    assert step >= 3 and saved.train["status"] == "interrupted"
    assert not list(resume_file.parent.glob(".*.lock"))  # the lock goes with the run
    assert (tmp_path / "checkpoints" / "tiny-1x32.safetensors").is_file()  # something to sample from

    result = run_cli(
        "train", "--resume", str(resume_file), "--max-steps", str(step + 5), "--sample-length", "0", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "resumed" in result.stderr
    assert checkpoint.load(resume_file).train["step"] == step + 5


def test_second_ctrl_c_aborts_and_keeps_the_last_checkpoint(tiny_corpus, tmp_path):
    assert run_cli("train", str(tiny_corpus), *FAST, "--epochs", "1", cwd=tmp_path).returncode == 0
    resume_file = tmp_path / "checkpoints" / "tiny-1x32.resume.safetensors"
    before = resume_file.read_bytes()
    proc = start(
        "train",
        "--resume",
        str(resume_file),
        "--epochs",
        "1000",
        "--log-every",
        "1",
        "--sample-length",
        "0",
        cwd=tmp_path,
    )
    wait_for_line(proc, "step ")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    after = checkpoint.load(resume_file)  # the old one, or the one the first Ctrl-C wrote: whole either way
    assert resume_file.read_bytes() == before or after.train["status"] == "interrupted"


def test_plain_log_lines_when_not_a_terminal(tiny_corpus, tmp_path):
    result = run_cli("train", str(tiny_corpus), *FAST, "--epochs", "2", "--log-every", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "\x1b" not in err and "\r" not in err  # no control characters
    step_lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert len(step_lines) >= 4
    assert all("loss" in line and "chars/s" in line and "eta" in line for line in step_lines)
    epoch_lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("val" in line and "bits/char" in line for line in epoch_lines)
    assert "--- sample after epoch 1 ---" in err
    assert "best val loss" in err and "training completed" in err


def test_log_json_records(tiny_corpus, tmp_path):
    """A header, then step, epoch and end records; a key means one thing everywhere, and no
    value that exists is null (README: the --log-json schema)."""
    log = tmp_path / "log.jsonl"
    result = run_cli(
        "train",
        str(tiny_corpus),
        *FAST,
        "--epochs",
        "2",
        "--log-every",
        "10",
        "--log-json",
        str(log),
        "-q",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    header, *body, end = records
    assert header["type"] == "header" and header["corpus"]["name"] == "tiny" and header["vocab_size"] == 34
    assert header["num_params"] > 0 and header["model"]["hidden_size"] == 32 and header["train"]["epochs"] == 2
    steps = [r for r in body if r["type"] == "step"]
    epochs = [r for r in body if r["type"] == "epoch"]
    assert len(steps) + len(epochs) == len(body) and end["type"] == "end" and end["reason"] == "completed"
    assert len(steps) >= 10 and [r["step"] for r in steps] == sorted(r["step"] for r in steps)
    for r in steps:
        assert {"step", "epoch", "step_loss", "train_loss", "train_bpc", "lr", "chars_per_s", "elapsed"} <= set(r)
        assert r["train_bpc"] == pytest.approx(r["train_loss"] / np.log(2)) and r["chars_per_s"] > 0 and r["lr"] > 0
    after_first_epoch = [r for r in steps if r["step"] > epochs[0]["step"]]
    assert all(r["val_loss"] == epochs[0]["val_loss"] for r in after_first_epoch[:1])  # the last validation
    assert all("val_loss" not in r for r in steps if r["step"] < epochs[0]["step"])  # none yet: left out, not null
    assert len(epochs) == 2
    for r in epochs:
        assert {
            "train_loss",
            "train_bpc",
            "epoch_train_loss",
            "val_loss",
            "val_bpc",
            "lr",
            "chars_per_s",
            "sample",
            "best",
        } <= set(r)
        assert r["val_bpc"] == pytest.approx(r["val_loss"] / np.log(2)) and isinstance(r["sample"], str)
    assert not [k for r in records for k, v in r.items() if v is None and k != "train"]
    assert end["best_val_loss"] == min(r["val_loss"] for r in epochs) and end["step"] == epochs[-1]["step"]
    # --quiet prints only the final summary
    assert "step " not in result.stderr and "best val loss" in result.stderr


def test_live_display_on_a_terminal(tiny_corpus, tmp_path):
    """Under a pseudo-terminal: a start panel, a progress bar and a sample panel per epoch."""
    returncode, screen = run_tty("train", str(tiny_corpus), *FAST, "--epochs", "2", cwd=tmp_path, columns=160)
    assert returncode == 0, screen
    assert "charlstm train" in screen and "╭" in screen  # the start panel
    assert "━" in screen and "chars/s" in screen and "ETA" in screen  # the progress bar
    assert "sample after epoch 2" in screen
    assert "best val loss" in screen


def test_existing_run_needs_resume_or_fresh(tiny_corpus, tmp_path):
    assert run_cli("train", str(tiny_corpus), *FAST, "--max-steps", "2", cwd=tmp_path).returncode == 0
    again = run_cli("train", str(tiny_corpus), *FAST, "--max-steps", "2", cwd=tmp_path)
    assert_clean_error(again, "--resume", "--fresh", code=2)
    assert run_cli("train", str(tiny_corpus), *FAST, "--max-steps", "2", "--fresh", cwd=tmp_path).returncode == 0


def test_resume_with_a_different_shape_is_refused(tiny_corpus, tmp_path):
    assert run_cli("train", str(tiny_corpus), *FAST, "--max-steps", "2", cwd=tmp_path).returncode == 0
    ckpt = tmp_path / "checkpoints" / "tiny-1x32.resume.safetensors"
    assert_clean_error(
        run_cli("train", "--resume", str(ckpt), "-H", "64", cwd=tmp_path), "--hidden-size 64", "32", code=2
    )
    assert_clean_error(run_cli("train", "--resume", str(ckpt), "-T", "8", cwd=tmp_path), "--seq-len", code=2)


def test_fine_tuning_lists_characters_outside_the_vocabulary(tiny_corpus, tmp_path):
    assert run_cli("train", str(tiny_corpus), *FAST, "--max-steps", "2", cwd=tmp_path).returncode == 0
    other = tmp_path / "other.txt"
    other.write_text("Zoë says: 100% naïve!\n" * 50, encoding="utf-8")
    result = run_cli("train", str(other), "--init-from", "checkpoints/tiny-1x32.safetensors", cwd=tmp_path)
    assert_clean_error(result, "not in the model's vocabulary", "'ë'", "'%'", "'1'")
    ok = tmp_path / "ok.txt"
    ok.write_text("the quick fox jumps over the lazy dog.\n" * 30, encoding="utf-8")
    result = run_cli(
        "train",
        str(ok),
        "--init-from",
        "checkpoints/tiny-1x32.safetensors",
        "-B",
        "4",
        "-T",
        "16",
        "--max-steps",
        "3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    tuned = checkpoint.load(tmp_path / "checkpoints" / "ok-1x32.safetensors")
    base = checkpoint.load(tmp_path / "checkpoints" / "tiny-1x32.safetensors")
    assert tuned.vocab == base.vocab and tuned.config == base.config
    assert not np.array_equal(tuned.params["head.bias"], base.params["head.bias"])


def test_resuming_a_finished_run_says_how_to_continue(tiny_corpus, tmp_path):
    assert (
        run_cli("train", str(tiny_corpus), *FAST, "--epochs", "1", "--sample-length", "0", cwd=tmp_path).returncode == 0
    )
    resume = tmp_path / "checkpoints" / "tiny-1x32.resume.safetensors"
    before = resume.read_bytes()
    again = run_cli("train", "--resume", str(resume), cwd=tmp_path)
    assert again.returncode == 0 and "the end of its run" in again.stderr and "--epochs 2 or more" in again.stderr
    assert resume.read_bytes() == before  # a run that trains nothing writes nothing
    more = run_cli("train", "--resume", str(resume), "--epochs", "2", cwd=tmp_path)
    assert more.returncode == 0 and "resuming with --epochs: 1 → 2" in more.stderr
    assert checkpoint.load(resume).train["epoch"] == 2


def test_resume_on_a_different_text_is_refused(tiny_corpus, tmp_path):
    assert run_cli("train", str(tiny_corpus), *FAST, "--max-steps", "2", cwd=tmp_path).returncode == 0
    other = tmp_path / "other.txt"
    other.write_text(tiny_corpus.read_text(encoding="utf-8")[::-1], encoding="utf-8")  # same characters, other text
    resume = tmp_path / "checkpoints" / "tiny-1x32.resume.safetensors"
    result = run_cli("train", str(other), "--resume", str(resume), cwd=tmp_path)
    assert_clean_error(result, "is not the text this run was trained on", "--init-from", code=2)


def test_cell_is_stored_and_a_resume_keeps_it(tiny_corpus, tmp_path):
    assert run_cli("train", str(tiny_corpus), *FAST, "--cell", "lstm", "--max-steps", "2", cwd=tmp_path).returncode == 0
    resume = tmp_path / "checkpoints" / "tiny-1x32.resume.safetensors"
    assert checkpoint.load(resume).config.cell == "lstm"
    assert checkpoint.load(tmp_path / "checkpoints" / "tiny-1x32.safetensors").config.cell == "lstm"
    result = run_cli("train", "--resume", str(resume), "--cell", "gru", cwd=tmp_path)
    assert_clean_error(result, "--cell gru conflicts with the checkpoint's lstm", code=2)
    assert_clean_error(
        run_cli("train", str(tiny_corpus), "--cell", "tree", cwd=tmp_path), "--cell must be one of", code=2
    )


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells_train_sample_eval_and_inspect(tmp_path, cell):
    """The GRU and the vanilla RNN go everywhere the LSTM goes: training with a sample each epoch,
    the checkpoint (torch names), sample, eval and inspect."""
    book = ROOT / "corpora" / "lighthouse.txt"
    result = run_cli(
        "train",
        str(book),
        "--cell",
        cell,
        "-H",
        "48",
        "-L",
        "2",
        "-B",
        "32",
        "-T",
        "32",
        "--epochs",
        "2",
        "--sample-length",
        "40",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert cell.upper() in result.stderr
    ckpt = checkpoint.load(tmp_path / "checkpoints" / f"lighthouse-{cell}-2x48.safetensors")
    assert ckpt.config.cell == cell and f"{cell}.weight_hh_l1" in ckpt.params
    history = ckpt.history
    assert len(history) == 2 and all(len(r["sample"]) > 40 for r in history)
    assert history[-1]["val_loss"] < 0.75 * np.log(ckpt.vocab.size)  # it learned something
    sampled = run_cli("sample", "--seed", "The", "--length", "50", "--random-seed", "1", cwd=tmp_path)
    assert sampled.returncode == 0 and sampled.stdout.startswith("The") and len(sampled.stdout) >= 53
    evaluated = run_cli("eval", f"checkpoints/lighthouse-{cell}-2x48.safetensors", str(book), "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0 < json.loads(evaluated.stdout)["loss"] < np.log(ckpt.vocab.size)
    shown = run_cli("inspect", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["config"]["cell"] == cell


def test_the_levers_from_the_command_line(tiny_corpus, tmp_path):
    """Dropout per window, weight drop, the average of the weights and Adam's decays: set on the
    command line, shown in the banner, stored in the checkpoints, kept by a resume, and refused
    where they cannot apply."""
    levers = [
        "--dropout-mask",
        "window",
        "--weight-drop",
        "0.3",
        "--ema",
        "0.95",
        "--adam-beta1",
        "0.85",
        "--adam-beta2",
        "0.99",
    ]
    result = run_cli("train", str(tiny_corpus), *FAST, *levers, "--max-steps", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "adam (β 0.85, 0.99) lr" in result.stderr
        and "dropout 0.2 per window, weight drop 0.3, EMA 0.95" in result.stderr
    )
    resume = checkpoint.load(tmp_path / "checkpoints" / "tiny-1x32.resume.safetensors")
    saved = resume.train["config"]
    assert (saved["dropout_mask"], saved["weight_drop"], saved["ema"], saved["adam_beta1"], saved["adam_beta2"]) == (
        "window",
        0.3,
        0.95,
        0.85,
        0.99,
    )
    assert resume.train["average_weight"] > 0 and "average.head.bias" in resume.extra
    again = run_cli(
        "train",
        "--resume",
        str(tmp_path / "checkpoints" / "tiny-1x32.resume.safetensors"),
        "--max-steps",
        "5",
        "--ema",
        "0.9",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert "--ema: 0.95 → 0.9" in again.stderr and "weight drop 0.3" in again.stderr
    refused = run_cli("train", str(tiny_corpus), "--optimizer", "sgd", "--adam-beta2", "0.99", cwd=tmp_path)
    assert_clean_error(refused, "--adam-beta2 set Adam's decays; add --optimizer adam", code=2)
    refused = run_cli("train", str(tiny_corpus), "--dropout-mask", "unit", cwd=tmp_path)
    assert_clean_error(refused, "--dropout-mask must be one of step, window", code=2)


def test_the_minutes_alone_choose_the_model_and_the_banner_says_why(tmp_path):
    """--max-minutes with no -H/-L: the plan measures this machine's speed, chooses the shape and
    dropout, says so in one line (under --quiet too) and the checkpoint holds the choice."""
    corpus = ROOT / "corpora" / "lighthouse.txt"
    env = {"CHARLSTM_CACHE": str(tmp_path / "cache")}
    args = ("train", str(corpus), "--max-minutes", "0.02", "--kernels", "numpy", "--sample-length", "0", "-q")
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    reasons = [line for line in result.stderr.splitlines() if "give -H/-L/--dropout to choose yourself" in line]
    assert len(reasons) == 1, result.stderr
    saved = checkpoint.load(tmp_path / "checkpoints" / "lighthouse.safetensors")
    sizing = saved.train["sizing"]
    assert reasons[0].strip() == sizing["reason"]
    layers, hidden = (int(n) for n in sizing["shape"].split("x"))
    assert (saved.config.num_layers, saved.config.hidden_size) == (layers, hidden)
    assert reasons[0].startswith(f"{layers}×{hidden}, dropout {sizing['dropout']:g}: ~")
    assert saved.train["config"]["dropout"] == sizing["dropout"]
    quiet = sizing["other_load"] is None or sizing["other_load"] <= speeds.BUSY_CORES
    assert (tmp_path / "cache" / "speeds.json").is_file() == quiet  # the next run reads it, unless measured under load
    shown = run_cli("inspect", "checkpoints/lighthouse.safetensors", cwd=tmp_path, env={"COLUMNS": "400"})
    assert shown.returncode == 0 and sizing["reason"] in shown.stdout, shown.stdout
