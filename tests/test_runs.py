"""A run's files: one rule names them, snapshots are pruned by epoch, the newest model is found."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from charlstm.errors import CheckpointError, UsageError
from charlstm.store import runs
from charlstm.training.plan import plan_run


def touch(folder: Path, *names: str) -> list[Path]:
    """Empty files: naming, finding and pruning look at names and dates only."""
    paths = [folder / name for name in names]
    for path in paths:
        path.write_bytes(b"")
    return paths


def test_every_file_of_a_run_names_the_run(tmp_path):
    model = tmp_path / "book-gru.safetensors"
    files = [
        model,
        tmp_path / "book-gru.resume.safetensors",
        tmp_path / "book-gru.epoch0007.safetensors",
        tmp_path / "book-gru.epoch10000.safetensors",
    ]
    assert [runs.stem(f) for f in files] == ["book-gru"] * 4
    assert {runs.model_file(f) for f in files} == {model}
    assert {runs.resume_file(f) for f in files} == {files[1]}
    assert runs.snapshot_file(files[1], 7) == files[2] and runs.snapshot_file(model, 10000) == files[3]
    assert [runs.is_snapshot(f) for f in files] == [False, False, True, True]
    # names that only look like a snapshot's, and a model file without the suffix, are runs of their own
    assert runs.stem(tmp_path / "book.epoch.safetensors") == "book.epoch"
    assert runs.stem(tmp_path / "model.bin") == "model.bin"
    assert runs.resume_file(tmp_path / "model.bin") == tmp_path / "model.bin.resume.safetensors"


def test_the_files_of_a_folder_by_run(tmp_path):
    touch(
        tmp_path,
        "a.safetensors",
        "a.resume.safetensors",
        "a.epoch0001.safetensors",
        "ab.epoch0001.safetensors",
        "b.resume.safetensors",
        "notes.txt",
    )
    found = runs.run_files(tmp_path)
    assert {name: [p.name for p in files] for name, files in found.items()} == {
        "a": ["a.epoch0001.safetensors", "a.resume.safetensors", "a.safetensors"],
        "ab": ["ab.epoch0001.safetensors"],
        "b": ["b.resume.safetensors"],
    }
    with pytest.raises(CheckpointError, match="no such folder"):
        runs.run_files(tmp_path / "missing")


def test_pruning_keeps_the_newest_epochs_of_its_own_run(tmp_path):
    model = tmp_path / "a.safetensors"
    touch(
        tmp_path,
        "a.safetensors",
        "a.epoch0001.safetensors",
        "a.epoch0002.safetensors",
        "a.epoch0003.safetensors",
        "a.epoch10000.safetensors",
        "ab.epoch0001.safetensors",
    )
    assert [p.name for p in runs.snapshots(model)] == [
        "a.epoch0001.safetensors",
        "a.epoch0002.safetensors",
        "a.epoch0003.safetensors",
        "a.epoch10000.safetensors",
    ]  # by epoch, not by name
    deleted = runs.prune_snapshots(model, keep=2)
    assert [p.name for p in deleted] == ["a.epoch0001.safetensors", "a.epoch0002.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.epoch0003.safetensors",
        "a.epoch10000.safetensors",
        "a.safetensors",
        "ab.epoch0001.safetensors",
    ]


def test_find_latest_prefers_model_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        runs.find_latest(tmp_path)
    model, resume = touch(tmp_path, "a.safetensors", "a.resume.safetensors")
    os.utime(model, ns=(1, 1))
    os.utime(resume, ns=(2, 2))
    assert runs.find_latest(tmp_path) == model


def test_a_model_file_is_not_named_as_a_resume_file_or_a_snapshot(tmp_path, tiny_corpus):
    """Its resume file would be itself, or its run another one: refused, naming the model file
    to give instead, before the corpus is read."""
    for name in ("m.resume.safetensors", "m.epoch0002.safetensors"):
        with pytest.raises(UsageError, match=re.escape(f"--out {tmp_path / 'm.safetensors'}")):
            plan_run(tiny_corpus, {}, {}, out=tmp_path / name)
    (tmp_path / "d.resume.safetensors").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        runs.check_model_path(tmp_path / "d.safetensors")
    runs.check_model_path(tmp_path / "m.safetensors")


def test_a_snapshot_cannot_be_resumed_and_says_what_can(tmp_path):
    snapshot = tmp_path / "m.epoch0002.safetensors"
    with pytest.raises(
        UsageError,
        match=f"{re.escape(f'--init-from {snapshot}')}.*{re.escape(f'--resume {tmp_path}/m.resume.safetensors')}",
    ):
        plan_run(None, {}, {}, resume=snapshot)


def test_runs_tells_cells_of_one_size_apart_by_parameters_and_engine(tmp_path):
    """Three cells of one size (2×32): `charlstm runs` shows each one's parameters (its weights in
    the file) and the engine its last run used, in the table and in --json."""
    import json

    from charlstm.nn import model
    from charlstm.store import checkpoint
    from charlstm.text.vocab import Vocab

    from helpers import run_cli

    folder = tmp_path / "checkpoints"
    vocab = Vocab.from_text("abcdefghij klmnop")
    for cell, engine in (("lstm", "torch"), ("gru", "numpy"), ("rnn", "numpy")):
        config = model.ModelConfig(vocab.size, 32, 2, cell=cell)
        train = {"step": 10, "steps_per_epoch": 5, "config": {"engine": engine}, "corpus": {"name": "t"}}
        ckpt = checkpoint.Checkpoint(config, vocab, model.init_params(config, 0), train, [])
        checkpoint.save(ckpt, folder / f"{cell}.safetensors")
    found = {r["name"]: r for r in json.loads(run_cli("runs", "--json", cwd=tmp_path).stdout)}
    for cell in ("lstm", "gru", "rnn"):
        config = model.ModelConfig(vocab.size, 32, 2, cell=cell)
        assert found[cell]["parameters"] == model.num_params(config)
    assert found["lstm"]["engine"] == "torch" and found["gru"]["engine"] == "numpy"
    table = run_cli("runs", cwd=tmp_path, env={"COLUMNS": "120"}).stdout
    shown = {cell: next(line for line in table.splitlines() if line.split()[:1] == [cell]) for cell in found}
    counts = {cell: re.search(r"2×32 \w+ · (\S+)", line).group(1) for cell, line in shown.items()}
    assert len(set(counts.values())) == 3, counts  # the same shape, three sizes
    assert "torch" in shown["lstm"] and "numpy" in shown["gru"] and "engine" in table
