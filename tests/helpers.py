"""What the tests share besides fixtures (conftest.py): the project's root, small texts, random
models, the sampling reference, and the runners and checks of the real `charlstm` command."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from charlstm.nn import cells, model

ROOT = Path(__file__).resolve().parent.parent

PANGRAMS = (
    "The quick brown fox jumps over the lazy dog.\n"
    "Pack my box with five dozen liquor jugs!\n"
    "How vexingly quick daft zebras jump; the five boxing wizards jump quickly.\n"
)

# the smallest real training run: a 1×16 model on 4 streams of 16 characters, no samples, on the
# NumPy kernels (no ~1 s numba load per run; the numba path has its own tests)
TINY_RUN = ["-H", "16", "-L", "1", "-B", "4", "-T", "16", "--sample-length", "0", "--kernels", "numpy"]

CELL_NAMES = cells.names()  # the registered cells: each test parametrized by them runs on every cell


# ----------------------------------------------------------------------------------- models


def random_model(V: int, H: int, L: int, seed: int = 0, dtype=np.float64, scale: float = 0.5, cell: str = "lstm"):
    """A model with every parameter random (biases too), so no gradient is trivially zero."""
    config = model.ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, cell=cell)
    rng = np.random.default_rng(seed)
    params = {
        k: (rng.standard_normal(v.shape) * scale).astype(dtype) for k, v in model.init_params(config, seed).items()
    }
    return config, params


def assert_same_draws(ids: np.ndarray, cdf: np.ndarray, u: np.ndarray, rtol: float) -> int:
    """The ids (N,) are the inverse-CDF draws of the uniforms u (N,) from the reference CDF (N, V)
    — `generate.draw`'s rule, id = #{v: cdf[v] ≤ u · cdf[V-1]} — except in rows whose threshold
    u · cdf[V-1] lies within rtol · cdf[V-1] of a step of the CDF: there a CDF computed in another
    order, or from logits rounded otherwise, may put it on the other side, so either neighbour is
    right. Returns the number of such near ties (callers check that they are rare)."""
    V = cdf.shape[1]
    threshold = u * cdf[:, -1]
    want = np.minimum((cdf <= threshold[:, None]).sum(axis=1), V - 1)
    near = (np.abs(cdf - threshold[:, None]) <= rtol * cdf[:, -1:]).any(axis=1)
    moved = (ids != want) & ~near
    assert not moved.any(), f"ids {ids[moved]} where the reference draws {want[moved]}, far from a CDF step"
    return int(near.sum())


def assert_sampled_as_reference(
    steps: np.ndarray, params, config, seed_ids, temperature: float, rng, rtol: float
) -> None:
    """`steps` (length, N), the ids that sampling drew after the seed, are what the plain loop
    draws — `stepping.step` on NumPy, `filter_probs`, one uniform per sample per step from `rng` —
    when fed the same ids (so one near tie cannot hide the rest of the sequence). Draws may differ
    only at near ties (`assert_same_draws`), and those must be rare."""
    from charlstm.inference.generate import filter_probs, prime
    from charlstm.nn import stepping

    N = steps.shape[1]
    logits, state = prime(params, config, seed_ids, N)
    stepper = stepping.prepare_stepper(params, config)
    ties = 0
    for ids in steps:
        cdf = np.cumsum(filter_probs(logits, temperature), axis=1)
        ties += assert_same_draws(ids, cdf, rng.random(N), rtol)
        logits, state = stepping.step(stepper, ids, state)
    assert ties <= steps.size // 20, (
        f"{ties} near ties in {steps.size} draws: the tolerance is too loose to test anything"
    )


def started_event(total_steps: int | None = 495, folder: Path = ROOT) -> Any:
    """The Started event of a default 2×256 run on a 10,000-character book, for display tests."""
    from charlstm.config import TrainConfig
    from charlstm.training import events

    config = model.ModelConfig(65)
    return events.Started(
        config=config,
        train=TrainConfig(),
        corpus="book",
        corpus_chars=10_000,
        train_chars=9_500,
        val_chars=500,
        vocab_size=65,
        num_params=model.num_params(config),
        steps_per_epoch=165,
        total_steps=total_steps,
        model_path=folder / "m.safetensors",
        resume_path=folder / "m.resume.safetensors",
        start_step=0,
        resumed=False,
    )


# ------------------------------------------------------------------------------ the real CLI


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None, input: str | None = None
) -> subprocess.CompletedProcess:
    """Run the real `charlstm` command (python -m charlstm) and capture its output."""
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "charlstm", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        input=input,
    )


def run_cli_with(module: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real `charlstm ARGS` with `module` (a one-file extension in tests/, e.g. a cell or an
    engine, that registers itself when imported) imported first, as a user's own script would."""
    tests = str(Path(__file__).resolve().parent)
    full_env = {
        **os.environ,
        "COLUMNS": "120",
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]),
    }
    bootstrap = f"import {module}; from charlstm.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", bootstrap, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=full_env
    )


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> None:
    """A failure the way users should see it: non-zero exit, no traceback, one line naming the problem."""
    assert result.returncode != 0, result
    if code is not None:
        assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment.lower() in result.stderr.lower(), (fragment, result.stderr)


def assert_ends_with_clean_error(result: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> None:
    """A failure after some progress output: no traceback, and the last line is the error."""
    assert result.returncode != 0, result
    if code is not None:
        assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    last = [line for line in result.stderr.strip().splitlines() if line.strip()][-1]
    assert last.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment.lower() in last.lower(), (fragment, last)


def run_tty(*args: str, cwd, columns: int = 80, term: str = "xterm-256color") -> tuple[int, str]:
    """Run `charlstm ARGS` on a pseudo-terminal `columns` wide, of the colours `term` has (TERM;
    xterm: 16); the bytes it drew, as text."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": term}
    for name in ("NO_COLOR", "COLORTERM", "FORCE_COLOR"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlstm", *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks = []
    while select.select([master], [], [], 60)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


# ---------------------------------------------------------------------------------- the report

HOSTILE = "<script>alert(1)</script></textarea>"
REPORT_TEXT = (
    'She said "open the (old) door" and left.\n'
    "    <script>alert(1)</script> is text, not code;\n"
    '  so is </textarea> [here] & "there" {too}.\n'
) * 36
REPORT_CELLS = ("lstm", "gru", "rnn")
REPORT_VAL_FRACTION = 0.1


def many_runs(folder: Path, count: int = 15) -> Path:
    """`count` small checkpoints of the three cells on two texts, with ten epochs of history and a
    curve each, written directly (a report of many runs, without training them); and the text
    their views read, `view.txt` beside the folder."""
    import math

    from charlstm.nn import model
    from charlstm.store import checkpoint
    from charlstm.text.vocab import Vocab

    text = (REPORT_TEXT * 2)[:2000]
    (folder.parent / "view.txt").write_text(text, encoding="utf-8")
    vocab = Vocab.from_text(text)
    for j in range(count):
        cell = REPORT_CELLS[j % 3]
        config = model.ModelConfig(vocab.size, 32, 2, cell)
        corpus = {"name": ("book", "code")[j % 2], "chars": 50_000 + j % 2, "sha256": f"{j % 2:016x}"}
        val = [2.0 + 0.05 * j + 1 / e for e in range(1, 11)]
        history = [
            {"epoch": e, "step": 50 * e, "train_loss": v, "val_loss": v, "val_bpc": v / math.log(2), "lr": 0.004,
             "elapsed": 10.0 * e, "chars_per_s": 9000.0, "best": True, "sample": "The (old) door"}
            for e, v in zip(range(1, 11), val)
        ]  # fmt: skip
        curve = [[s, 0.2 * s, 2.0 + 0.05 * j + 5 / s, 0.004, 9000.0] for s in range(5, 501, 5)]
        train = {"step": 500, "steps_per_epoch": 50, "curve": curve, "best_val_loss": val[-1], "corpus": corpus,
                 "config": {"batch_size": 32, "seq_len": 64, "optimizer": "adam", "lr": 0.004}}  # fmt: skip
        params = model.init_params(config, j)
        checkpoint.save(
            checkpoint.Checkpoint(config, vocab, params, train, history), folder / f"run{j:02d}-{cell}.safetensors"
        )
    return folder.parent / "view.txt"


def training_at_its_first_step(*args: str, cwd: Path) -> subprocess.Popen:
    """`charlstm train ARGS --log-every 1` started in `cwd` (stderr piped, as text), returned once it
    has printed its first step: it holds its run's lock and is training."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlstm", "train", *args, "--log-every", "1"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    while not proc.stderr.readline().startswith("step "):
        assert proc.poll() is None, "training stopped before its first step"
    return proc


def copy_run_folder(src: Path, dst: Path) -> Path:
    """dst with a copy of the run folder src (its tiny.txt and checkpoints/), to write into."""
    shutil.copy(src / "tiny.txt", dst / "tiny.txt")
    shutil.copytree(src / "checkpoints", dst / "checkpoints")
    return dst
