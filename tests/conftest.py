"""Fixtures: small real corpora written to tmp dirs, PyTorch on one thread, and the report's runs;
and the markers each test file carries (`MARKS`). What tests share besides fixtures is in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import HOSTILE, PANGRAMS, REPORT_CELLS, REPORT_TEXT, REPORT_VAL_FRACTION, run_cli

# The markers (declared in pyproject.toml), one table for the whole suite: `cli` for files that drive the
# command line in subprocesses, `torch` for the PyTorch engine and reference, `browser` for Chromium,
# and `slow` for the single tests that take several seconds. README's quick run leaves all four out.
MARKS: dict[str, set[str]] = {
    "cli": {
        "test_cli.py",
        "test_cli_display.py",
        "test_cli_engines.py",
        "test_cli_messages.py",
        "test_cli_sample.py",
        "test_cli_train.py",
        "test_one_file_cell.py",
        "test_views.py",
        "test_what_happens_when.py",
        "test_corpus_sources.py",
        "test_report.py",
        "test_newcomer.py",
        "test_writes.py",
        "test_one_file_engine.py",
        "test_cell_states.py",
        "test_about.py",
        "test_api.py",
        "test_readme_python.py",
    },
    "torch": {
        "test_torch_reference.py",
        "test_engines.py",
        "test_distributed.py",
        "test_cli_engines.py",
        "test_torch_gpu_paths.py",
        "test_gpu_smoke.py",
    },
    "browser": {"test_report_browser.py"},
}
SLOW = {
    "test_distributed.py::test_sigint_to_torchrun_stops_every_rank_with_a_checkpoint_that_resumes_on_one",
    "test_distributed.py::test_two_ranks_compute_what_one_process_computes",
    "test_kernels.py::test_numba_caches_compiled_code_in_charlstms_cache_folder",
    "test_kernels.py::test_sampling_on_auto_takes_numba_only_once_compiled",
    "test_kernels.py::test_numba_works_silently_without_a_writable_cache_folder",
    "test_report.py::test_three_large_runs_with_a_long_text_stay_under_2_mb",
    "test_what_happens_when.py::test_kill_9_at_random_moments_leaves_a_resumable_checkpoint",
    "test_cli_messages.py::test_the_readme_first_command",
    "test_gpu_smoke.py::test_the_gpu_smoke_test_passes_its_dry_run_on_the_cpu",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        file = item.path.name
        for mark, files in MARKS.items():
            if file in files:
                item.add_marker(getattr(pytest.mark, mark))
        if f"{file}::{item.originalname}" in SLOW:
            item.add_marker(pytest.mark.slow)


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
def many_runs_page(tmp_path_factory) -> tuple[Path, str]:
    """`charlstm report` of 15 small runs on two texts (`helpers.many_runs`): the page and what
    the command said on stderr."""
    from helpers import many_runs

    folder = tmp_path_factory.mktemp("many") / "runs"
    folder.mkdir()
    text = many_runs(folder, 15)
    out = folder.parent / "many.html"
    result = run_cli("report", str(folder), "--text", str(text), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out, result.stderr


@pytest.fixture(scope="session")
def report_page(report_runs) -> Path:
    """`charlstm report runs/`: the three runs overlaid, on their validation text."""
    result = run_cli("report", str(report_runs / "runs"))
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == report_runs / "runs" / "report.html"
    return path
