"""Fixtures: small real corpora written to tmp dirs, PyTorch on one thread, and the report's runs.
What tests share besides fixtures is in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import HOSTILE, PANGRAMS, REPORT_CELLS, REPORT_TEXT, REPORT_VAL_FRACTION, run_cli


@pytest.fixture
def tiny_text() -> str:
    """A few KB of repetitive English: enough for a small model to overfit in seconds."""
    return PANGRAMS * 40


@pytest.fixture
def tiny_corpus(tmp_path: Path, tiny_text: str) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(tiny_text, encoding="utf-8")
    return path


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for tiny models: its thread pool spinning beside other busy processes
    (CI shares two cores) makes their steps many times slower, and the tests check numbers, not
    speed. Subprocesses get OMP_NUM_THREADS=1 instead."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory) -> Path:
    """A folder `runs/` of three tiny models — an LSTM, a GRU and a vanilla RNN, 2×16 — each
    trained for 3 epochs (about 150 steps, a second) on a text that holds markup, with samples
    that start with markup; the corpus `text.txt` beside the folder, and `val.txt`: the text of
    its validation split, which the report's model views read by default."""
    from charlstm.config import ModelConfig, TrainConfig
    from charlstm.text.corpus import load_corpus
    from charlstm.training.loop import train

    root = tmp_path_factory.mktemp("report")
    corpus_path = root / "text.txt"
    corpus_path.write_text(REPORT_TEXT, encoding="utf-8")
    corpus = load_corpus(corpus_path)
    cfg = TrainConfig(
        seq_len=20,
        batch_size=4,
        epochs=3,
        lr=0.01,
        dropout=0.0,
        val_fraction=REPORT_VAL_FRACTION,
        sample_length=60,
        sample_seed=HOSTILE,
        kernels="numpy",
    )
    for cell in REPORT_CELLS:
        train(corpus, ModelConfig(corpus.vocab.size, 16, 2, cell), cfg, root / "runs" / f"{cell}.safetensors")
    _, val = corpus.split(REPORT_VAL_FRACTION)
    (root / "val.txt").write_text(corpus.vocab.decode(val), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def report_page(report_runs) -> Path:
    """`charlstm report runs/`: the three runs overlaid, on their validation text."""
    result = run_cli("report", str(report_runs / "runs"))
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == report_runs / "runs" / "report.html"
    return path
