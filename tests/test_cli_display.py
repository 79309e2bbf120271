"""What `charlstm train` shows, and the commands that find and compare runs: the live line on a
terminal of 80 columns, plain lines and summaries when piped, `runs`, `inspect DIR`, `eval`,
`sample --seed-file`."""

from __future__ import annotations

import io
import json
import os
import re
import time
import typing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from charlstm.cli.ui import console as ui
from charlstm.cli.ui import progress
from charlstm.config import ModelConfig
from charlstm.inference.generate import LONG_SEED, prime, read_state
from charlstm.nn import model
from charlstm.training import events

from helpers import PANGRAMS, assert_clean_error, run_cli, run_tty, started_event

FAST = ["-H", "16", "-L", "1", "-B", "4", "-T", "16", "--kernels", "numpy"]  # TINY_RUN with its samples
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def status_frames(screen: str) -> list[str]:
    """The live status lines drawn, without colour codes."""
    frames = [ANSI.sub("", f) for f in re.split(r"\r|\n|\x1b\[2K|\x1b\[1A", screen)]
    return [f for f in frames if (re.search(r"step \d", f) and "elapsed" not in f) or f.startswith("ep ")]


def test_the_live_line_fits_80_columns_and_says_what_is_what(tiny_corpus, tmp_path):
    code, screen = run_tty("train", str(tiny_corpus), *FAST, "--epochs", "2", "--sample-length", "30", cwd=tmp_path)
    assert code == 0, screen
    frames = [f for f in status_frames(screen) if "bpc" in f]
    assert frames and all(len(f) <= 80 for f in frames), max(frames, key=len)
    assert all(re.search(r"step \d+/\d+", f) for f in frames)  # the step counter is never cut
    assert all(" lr " in f and "train " in f for f in frames)
    assert any(re.search(r"val \d\.\d{3} bpc", f) for f in frames)  # after the first validation
    lines = ANSI.sub("", screen).splitlines()
    summary = next(line for line in lines if line.startswith("epoch 1 "))
    assert re.search(
        r"train loss \d\.\d{3} \(\d\.\d{3} bits/char\)  val loss \d\.\d{3} \(\d\.\d{3} bits/char\)", summary
    )


def test_the_live_line_shows_the_last_validation_under_its_summary(tiny_corpus, tmp_path):
    """The one validation of a one-epoch run comes after its last step: the live line drawn under
    the epoch's summary shows it (it was left as `val –`)."""
    code, screen = run_tty("train", str(tiny_corpus), *FAST, "--epochs", "1", "--sample-length", "30", cwd=tmp_path)
    assert code == 0, screen
    after = ANSI.sub("", screen[screen.rindex("epoch 1  train loss") :])
    frames = [f for f in re.split(r"\r|\n", after) if re.search(r"step \d", f)]
    assert frames and all(re.search(r"val \d\.\d{3} bpc", f) for f in frames), frames


def test_the_live_line_keeps_its_clock_running_after_the_last_step():
    """While the run validates and saves after a step, elapsed counts up and the ETA down."""
    view = progress.LiveView(Console(file=open(os.devnull, "w"), width=200))
    view.started = started_event()
    view.last = (step_event(elapsed=45.0, eta=22.0), time.monotonic() - 5.0)
    text = view.live_line().plain
    assert "0:50 elapsed, ETA 0:17" in text, text
    view.last = (step_event(elapsed=45.0, eta=22.0), time.monotonic() - 60.0)
    assert "ETA 0:00" in view.live_line().plain  # never below zero


def step_event(**fields) -> events.Step:
    values = dict(
        step=310,
        epoch=1.88,
        loss=1.5,
        smoothed_loss=1.523,
        lr=1.2e-3,
        grad_norm=1.0,
        chars_per_s=21_300,
        elapsed=45.0,
        eta=75.0,
        end_step=495,
        fraction=310 / 495,
        by_time=False,
    )
    return events.Step(**{**values, **fields})


@pytest.mark.parametrize("width", [30, 50, 60, 79, 80, 100, 120, 160, 200])
def test_the_status_line_drops_fields_by_width_but_never_the_step_counter(width):
    line = progress.StatusLine()
    for step in (step_event(), step_event(step=12_345, end_step=99_999, by_time=True, fraction=0.3)):
        text = line.render(step, started_event(), 1.6, width).plain
        assert len(text) <= width and re.search(r"step [\d,]+/~?[\d,]+", text), (width, text)
        if width >= 79:
            assert all(part in text for part in ("━", "train ", "2.197", "val ", "2.308", "lr ", "ETA 1:15")), text
        if width >= 150:
            assert "train 1.523 (2.197 bpc)" in text and "val 1.600 (2.308 bpc)" in text and "chars/s" in text


def test_the_epoch_counter_bar_and_eta_follow_a_time_budget():
    line = progress.StatusLine()
    text = line.render(
        step_event(step=200, end_step=400, by_time=True, fraction=0.5, eta=60.0), started_event(None), None, 160
    ).plain
    assert "epoch 2/~3" in text and "step 200/~400" in text and "ETA 1:00" in text
    assert text.count("━") == 15 and text.count("─") == 15  # a full-width bar, half of it done


def test_piped_lines_resume_with_the_last_val_loss_and_round_epochs(tiny_corpus, tmp_path):
    first = run_cli("train", str(tiny_corpus), *FAST, "--max-steps", "150", "--sample-length", "20", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    err = first.stderr
    assert not re.search(r"epoch \d+\.\d{3,}", err) and "epoch 1.58" in err  # 150 of 95 steps an epoch
    assert "best at epoch   1.58" in err
    assert all(line == line.rstrip() for line in err.splitlines())  # no trailing spaces
    resume = str(tmp_path / "checkpoints" / "tiny-1x16.resume.safetensors")
    again = run_cli("train", "--resume", resume, "--max-steps", "152", "--log-every", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    steps = [line for line in again.stderr.splitlines() if line.startswith("step ")]
    assert steps and all(re.search(r"val loss \d\.\d{3} \(\d\.\d{3} bits/char\)", line) for line in steps)
    assert "last val loss" in again.stderr


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny runs in one folder: `tiny` (interrupted by --max-steps) and `other`, newer."""
    work = tmp_path_factory.mktemp("runs")
    for name, text in (("tiny", PANGRAMS * 40), ("other", PANGRAMS[::-1] * 40)):
        (work / f"{name}.txt").write_text(text, encoding="utf-8")
        result = run_cli("train", f"{name}.txt", *FAST, "--max-steps", "20", "--sample-length", "0", cwd=work)
        assert result.returncode == 0, result.stderr
    return work


def test_runs_lists_the_runs_newest_first_and_no_lock_is_left(two_runs):
    work = two_runs
    assert not list((work / "checkpoints").glob(".*lock*"))  # lock files go when a run ends
    found = json.loads(run_cli("runs", "--json", cwd=work).stdout)
    assert [r["name"] for r in found] == ["other-1x16", "tiny-1x16"]
    assert found[0]["corpus"] == "other" and found[0]["model"] == "1×16 LSTM" and found[0]["step"] == 20
    assert found[0]["best_val_bpc"] == pytest.approx(found[0]["best_val_loss"] / np.log(2))
    assert found[0]["bytes"] == sum(os.path.getsize(work / f) for f in found[0]["files"])
    table = run_cli("runs", cwd=work).stdout
    assert table.index("other") < table.index("tiny") and "1×16 LSTM" in table and "bits/char" in table
    assert all(line == line.rstrip() for line in table.splitlines())
    assert run_cli("inspect", "checkpoints/", cwd=work).stdout == table  # a folder: its runs
    (work / "empty").mkdir()
    assert "no runs in empty/" in run_cli("runs", "empty", cwd=work).stdout
    assert_clean_error(run_cli("runs", "missing", cwd=work), "no such folder", code=1)


@pytest.fixture(scope="module")
def compared_runs(tmp_path_factory):
    """Three models of one text, as when comparing cells: lighthouse-1x16 (an LSTM),
    lighthouse-rnn-1x16 and lighthouse-gru-3x8."""
    work = tmp_path_factory.mktemp("compared")
    (work / "lighthouse.txt").write_text(PANGRAMS * 40, encoding="utf-8")
    for shape in (
        FAST,
        [*FAST, "--cell", "rnn"],
        ["-H", "8", "-L", "3", "-B", "4", "-T", "16", "--kernels", "numpy", "--cell", "gru"],
    ):
        result = run_cli("train", "lighthouse.txt", *shape, "--max-steps", "20", "--sample-length", "0", cwd=work)
        assert result.returncode == 0, result.stderr
    return work


@pytest.mark.parametrize("columns", [80, 100])
def test_runs_never_cuts_the_name_the_cell_or_the_bits_per_char(compared_runs, columns):
    found = json.loads(run_cli("runs", "--json", cwd=compared_runs).stdout)
    assert sorted(r["name"] for r in found) == ["lighthouse-1x16", "lighthouse-gru-3x8", "lighthouse-rnn-1x16"]
    code, screen = run_tty("runs", cwd=compared_runs, columns=columns)
    assert code == 0, screen
    lines = ANSI.sub("", screen).replace("\r", "").splitlines()
    assert all(len(line) <= columns for line in lines) and "…" not in screen
    header = next(line.split() for line in lines if line.split()[:1] == ["run"])
    assert "bits/char" in header and "model" in header
    for r in found:
        row = next(line for line in lines if line.split()[:1] == [r["name"]])
        assert r["model"] in row and f"{r['best_val_bpc']:.3f}" in row.split(), row
    if columns == 100:
        assert "date" in header and "steps" in header  # room for more, then


def test_eval_quotes_the_characters_it_leaves_out(two_runs, tmp_path):
    text = tmp_path / "q.txt"
    text.write_text("why? who knows? " * 20, encoding="utf-8")
    table = run_cli("eval", str(text), "-c", "checkpoints/tiny-1x16.safetensors", cwd=two_runs).stdout
    assert "outside vocabulary   40 left out ('?')" in table


def test_eval_uses_the_newest_checkpoint_and_names_text_and_model(two_runs, tmp_path):
    work = two_runs
    text = work / "tiny.txt"
    newest = run_cli("eval", str(text), "--json", cwd=work)
    assert newest.returncode == 0, newest.stderr
    assert "scoring with checkpoints/other-1x16.safetensors" in newest.stderr
    report = json.loads(newest.stdout)
    assert report["checkpoint"] == "checkpoints/other-1x16.safetensors" and report["model"] == "1×16 LSTM"
    named = json.loads(run_cli("eval", str(text), "-c", "checkpoints/tiny-1x16.safetensors", "--json", cwd=work).stdout)
    old = json.loads(run_cli("eval", "checkpoints/tiny-1x16.safetensors", str(text), "--json", cwd=work).stdout)
    assert named == old and named["checkpoint"] == "checkpoints/tiny-1x16.safetensors"
    table = run_cli("eval", str(text), "-c", "checkpoints/tiny-1x16.safetensors", cwd=work).stdout
    assert f"{text}, scored by the 1×16 LSTM in checkpoints/tiny-1x16.safetensors" in table
    long_text = tmp_path / "long.txt"
    long_text.write_text(PANGRAMS * 700, encoding="utf-8")  # > 100,000 characters: progress on stderr
    result = run_cli("eval", str(long_text), "-c", "checkpoints/tiny-1x16.safetensors", cwd=work)
    assert result.returncode == 0 and f"scoring {len(PANGRAMS) * 700:,} characters" in result.stderr


def test_sample_primes_from_a_seed_file(two_runs, tmp_path):
    work = two_runs
    seed = tmp_path / "seed.txt"
    seed.write_text(PANGRAMS * 20, encoding="utf-8")
    result = run_cli(
        "sample",
        "-c",
        "checkpoints/tiny-1x16.safetensors",
        "--seed-file",
        str(seed),
        "-n",
        "40",
        "--random-seed",
        "1",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    assert 40 <= len(result.stdout) <= 41 and "Pack my box" not in result.stdout  # the long seed is not echoed
    both = run_cli(
        "sample", "-c", "checkpoints/tiny-1x16.safetensors", "--seed-file", str(seed), "--seed", "The", cwd=work
    )
    assert_clean_error(both, "--seed or --seed-file", code=2)
    (tmp_path / "empty.txt").write_bytes(b"")  # an empty seed, as `--seed ""`: a zero state primed with a newline
    empty = run_cli(
        "sample",
        "-c",
        "checkpoints/tiny-1x16.safetensors",
        "--seed-file",
        str(tmp_path / "empty.txt"),
        "-n",
        "40",
        "--random-seed",
        "1",
        cwd=work,
    )
    assert empty.returncode == 0, empty.stderr
    assert (
        empty.stdout
        == run_cli(
            "sample",
            "-c",
            "checkpoints/tiny-1x16.safetensors",
            "--seed",
            "",
            "-n",
            "40",
            "--random-seed",
            "1",
            cwd=work,
        ).stdout
    )


def test_a_long_seed_is_read_in_windows_as_stepping_would():
    config = ModelConfig(7, 12, 2)
    params = model.init_params(config, 3)
    ids = np.random.default_rng(0).integers(0, 7, LONG_SEED * 2 + 37)
    _, stepped = prime(params, config, ids)
    read = read_state(params, config, ids)
    for a, b in zip(stepped, read):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_the_size_note_is_given_when_a_run_begins_not_on_every_resume(tiny_corpus, tmp_path):
    first = run_cli(
        "train",
        str(tiny_corpus),
        "-H",
        "128",
        "-L",
        "1",
        "-B",
        "4",
        "-T",
        "16",
        "--max-steps",
        "2",
        "--sample-length",
        "0",
        cwd=tmp_path,
    )
    assert first.returncode == 0 and "will memorise the text" in first.stderr, first.stderr
    resume = tmp_path / "checkpoints" / "tiny-1x128.resume.safetensors"
    again = run_cli("train", "--resume", str(resume), "--max-steps", "4", cwd=tmp_path)
    assert again.returncode == 0 and "resumed" in again.stderr
    assert "memorise" not in again.stderr


def test_size_advice_never_suggests_what_is_set():
    from charlstm.training.plan import size_notes

    big = ModelConfig(vocab_size=74, hidden_size=256, num_layers=2)
    (note,) = size_notes(big, 44_000, dropout=0.2)
    assert "--dropout 0.4" in note and "--dropout 0.2" not in note and "-H 32" in note
    (note,) = size_notes(big, 44_000, dropout=0.5)
    assert "dropout" not in note and "-H 32" in note


def test_the_summary_is_plain_when_piped():
    console = Console(file=open(os.devnull, "w"), width=100)
    assert not console.is_terminal
    out = []
    console.file = type("F", (), {"write": lambda self, s: out.append(s), "flush": lambda self: None})()
    ui.print_plain(console, Table("a", "b"))
    assert all(line == line.rstrip() for line in "".join(out).splitlines())


EVENT_TYPES = set(typing.get_args(events.Event))


def test_each_display_draws_its_events_from_one_table():
    """Every display answers every event but Saved (the summary lists the files written), and the
    right display is chosen: quiet, live on a terminal, plain lines when piped."""
    piped, terminal = Console(file=io.StringIO()), Console(file=io.StringIO(), force_terminal=True)
    views = [progress.train_view(piped, quiet=True), progress.train_view(terminal), progress.train_view(piped)]
    assert [type(v) for v in views] == [progress.QuietView, progress.LiveView, progress.PlainView]
    for view in views:
        assert set(view.handlers) == EVENT_TYPES - {events.Saved}, type(view)


def plain_display(*sequence: events.Event, **options) -> list[str]:
    console = Console(file=io.StringIO(), width=120)
    view = progress.train_view(console, **options)
    for event in sequence:
        view(event)
    view.close()
    return console.file.getvalue().splitlines()


def test_the_piped_display_line_by_line():
    runs = Path("/runs")  # a short path: the summary table is not wrapped
    started = replace(started_event(total_steps=1_650, folder=runs), notes=("a note",), engine="numpy")
    finished = events.Finished(
        reason="max_steps",
        step=1_650,
        epoch=10.0,
        best_val_loss=1.5,
        best_epoch=9.0,
        elapsed=75.0,
        chars_per_s=21_300,
        files=(runs / "m.safetensors",),
    )
    lines = plain_display(
        events.ThreadsChanged(old=None, new=2, why="--threads"),
        started,
        step_event(step=1_083, end_step=1_650, epoch=6.56),
        step_event(step=1_084, end_step=1_650),  # not every step is a line
        events.Saved(path=runs / "m.resume.safetensors", kind="resume"),
        events.Sampled(step=1_100, text="a sample\n"),
        events.Diverged(step=1_200, loss=99.0, grad_norm=1e6, action="halved the learning rate"),
        events.ThreadsChanged(old=2, new=1, why="busy"),
        events.EpochEnd(
            epoch=10.0, step=1_650, train_loss=1.6, val_loss=1.5, val_bpc=2.164, best=True, sample="ab", elapsed=70.0
        ),
        finished,
        log_every=1_083,
        plan_notes=("a plan note",),
    )
    assert lines[0] == "charlstm train" and lines[4:8] == [
        "engine       numpy",
        f"checkpoints  {runs / 'm.safetensors'} (best), {runs / 'm.resume.safetensors'} (resume)",
        "threads      2 (--threads)",
        "a plan note",
    ]
    assert lines[8:] == [
        "note: a note",
        "step 1,083/1,650  epoch 6.56  train loss 1.523 (2.197 bits/char)  lr 1.20e-03  21.3k chars/s  "
        "elapsed 0:45  eta 1:15",
        "--- sample at step 1,100 ---",
        "a sample",
        "---",
        "warning: step 1,200 diverged (loss 99, gradient norm 1e+06): halved the learning rate",
        "threads 2 → 1: busy",
        "epoch 10  train loss 1.600 (2.308 bits/char)  val loss 1.500 (2.164 bits/char)  (best)",
        "--- sample after epoch 10 ---",
        "ab",
        "---",
        "training reached --max-steps",
        "",
        "  best val loss   1.500 nats/char, 2.164 bits/char",
        "  best at epoch   9",
        "  steps           1,650 (10 epochs)",
        "  time            1:15",
        "  throughput      21.3k chars/s (validation and samples included)",
        f"  wrote           {runs / 'm.safetensors'}",
        f"  report          charlstm report {runs / 'm.safetensors'}",
        "",
    ]
    quiet = plain_display(
        events.ThreadsChanged(old=None, new=2, why="--threads"),
        started,
        step_event(step=1_083),
        events.ThreadsChanged(old=2, new=1, why="busy"),
        finished,
        quiet=True,
        plan_notes=("a plan note",),
    )
    assert quiet[:2] == ["a plan note", "training reached --max-steps"]


def test_a_run_with_nothing_left_to_do_says_so_with_its_counts(tiny_corpus, tmp_path):
    from charlstm.config import TrainConfig
    from charlstm.text.corpus import load_corpus
    from charlstm.training import emit
    from charlstm.training.loop import start_run

    corpus = load_corpus(tiny_corpus)
    config = ModelConfig(corpus.vocab.size, 8, 1)
    cfg = TrainConfig(seq_len=8, batch_size=2, max_steps=1_200, epochs=None, sample_length=0)
    run = start_run(corpus, config, cfg, tmp_path / "m.safetensors")
    try:
        run.progress.step = 1_200
        (note,) = emit.started(run, resumed=True).notes
    finally:
        run.engine.close()
    assert note.startswith("this run already did 1,200 of its 1,200 steps; pass a larger --epochs"), note
