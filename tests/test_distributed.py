"""Several ranks, one run: `torchrun --nproc-per-node 2 -m charlstm train … --engine torch` on the
CPU (gloo, 127.0.0.1 only). Two ranks with B streams in all compute what one process with B
streams computes; rank 0 alone reports and writes; SIGINT to torchrun stops both with a checkpoint
that resumes on another number of ranks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from charlstm.store import checkpoint
from charlstm.training.events import Step
from charlstm.training.loop import train_plan
from charlstm.training.plan import plan_run

from helpers import run_cli

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODEL = ["-H", "16", "-L", "2", "-B", "4", "-T", "16", "--sample-length", "0", "--dropout", "0"]
TORCH = ["--engine", "torch", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, cwd) -> subprocess.Popen:
    """`torchrun --nproc-per-node 2 -m charlstm ARGS` on this machine's loopback alone."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        "-m",
        "charlstm",
        *args,
    ]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("weight_drop", [0.0, 0.5], ids=["plain", "weight-drop"])
def test_two_ranks_compute_what_one_process_computes(tiny_corpus, tmp_path, weight_drop):
    """With weight drop too: every rank draws the W_hh masks one process draws (a shared generator)."""
    proc = torchrun(
        "train",
        str(tiny_corpus),
        *MODEL,
        *TORCH,
        "--weight-drop",
        str(weight_drop),
        "--max-steps",
        "30",
        "--log-every",
        "1",
        "--log-json",
        "log.jsonl",
        cwd=tmp_path,
    )
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "engine       torch 2." in err and ", 2 ranks" in err
    assert err.count("charlstm train") == 1 and err.count("wrote ") == 2  # rank 0 alone reports
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("header") == 1
    ddp = np.array([r["step_loss"] for r in records if r["type"] == "step"])

    options = {"hidden_size": 16, "num_layers": 2}
    train = {
        "batch_size": 4,
        "seq_len": 16,
        "sample_length": 0,
        "dropout": 0.0,
        "weight_drop": weight_drop,
        "max_steps": 30,
        "engine": "torch",
        "device": "cpu",
    }
    plan = plan_run(tiny_corpus, options, train, out=tmp_path / "one" / "tiny.safetensors")
    events = []
    train_plan(plan, events.append)
    one = np.array([e.loss for e in events if isinstance(e, Step)])
    assert len(ddp) == len(one) == 30
    np.testing.assert_allclose(ddp, one, rtol=1e-5)

    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["tiny-2x16.resume.safetensors", "tiny-2x16.safetensors"]  # no lock, no temporary file left
    saved = checkpoint.load(tmp_path / "checkpoints" / "tiny-2x16.resume.safetensors")
    alone = checkpoint.load(tmp_path / "one" / "tiny.resume.safetensors")
    assert saved.extra["state.h"].shape == (2, 4, 16)  # every rank's streams, gathered
    assert len(saved.train["torch_rng"]["states"]) == 2
    for k, want in alone.extra.items():
        np.testing.assert_allclose(saved.extra[k], want, rtol=1e-4, atol=1e-6, err_msg=k)


def test_sigint_to_torchrun_stops_every_rank_with_a_checkpoint_that_resumes_on_one(tiny_corpus, tmp_path):
    """Under a time budget (the rate follows rank 0's clock, agreed every step), stopped by SIGINT."""
    proc = torchrun("train", str(tiny_corpus), *MODEL, *TORCH, "--max-minutes", "10", "--log-every", "1", cwd=tmp_path)
    seen, deadline = [], time.time() + 240
    while time.time() < deadline and not any(line.startswith("step 3/") for line in seen):
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
    assert any(line.startswith("step 3/") for line in seen), "".join(seen)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does: torchrun passes it to every rank
    _, err = proc.communicate(timeout=120)
    assert "interrupted at step" in err, err
    resume_file = tmp_path / "checkpoints" / "tiny-2x16.resume.safetensors"
    saved = checkpoint.load(resume_file)
    step = saved.train["step"]
    assert saved.train["status"] == "interrupted" and step >= 3
    assert saved.extra["state.h"].shape == (2, 4, 16)

    result = run_cli(
        "train", "--resume", str(resume_file), "--max-steps", str(step + 4), cwd=tmp_path, env={"OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "torch 2." in result.stderr and "ranks" not in result.stderr  # the torch engine kept, one process
    assert checkpoint.load(resume_file).train["step"] == step + 4
