"""Planning a run in the library: the decisions `charlstm train` makes, made the same way from Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from charlstm.errors import UsageError
from charlstm.store import checkpoint
from charlstm.training.loop import train_plan
from charlstm.training.plan import plan_run

SMALL = {"seq_len": 16, "batch_size": 4, "sample_length": 0}
SHAPE = {"hidden_size": 16, "num_layers": 1}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default checkpoints go to ./checkpoints, as from the CLI
    return tmp_path


def first_run(corpus: Path, steps: int = 2, **model) -> Path:
    """Plan and train a short run; returns its resume file."""
    plan = plan_run(corpus, {**SHAPE, **model}, {**SMALL, "max_steps": steps})
    train_plan(plan)
    return plan.resume_path


def test_a_fresh_plan_uses_the_defaults_and_an_automatic_batch_size(tiny_corpus, in_tmp):
    plan = plan_run(tiny_corpus, {"hidden_size": None}, {"epochs": 2, "lr": None})
    assert plan.model_path == Path("checkpoints/tiny.safetensors")
    assert plan.resume_path == Path("checkpoints/tiny.resume.safetensors")
    assert (plan.config.hidden_size, plan.config.num_layers, plan.config.cell) == (256, 2, "lstm")
    assert plan.config.vocab_size == plan.corpus.vocab.size
    assert plan.train.epochs == 2 and plan.train.lr == 0.004
    assert plan.train.batch_size < 64  # a tiny corpus: fewer streams, so an epoch has enough steps
    assert plan.resume is None and plan.init is None


def test_an_existing_run_needs_resume_or_fresh(tiny_corpus, in_tmp):
    resume_file = first_run(tiny_corpus)
    with pytest.raises(UsageError, match="exists from an earlier run; pass --resume .*, --fresh .*, or --out FILE"):
        plan_run(tiny_corpus, SHAPE, SMALL)
    assert plan_run(tiny_corpus, SHAPE, SMALL, fresh=True).resume is None
    assert plan_run(tiny_corpus, SHAPE, SMALL, out=in_tmp / "other.safetensors").resume is None
    assert resume_file.is_file()


def test_resume_keeps_the_run_and_reports_changed_options(tiny_corpus, in_tmp):
    resume_file = first_run(tiny_corpus)
    plan = plan_run(None, {}, {"max_steps": 5, "lr": 0.01}, resume=resume_file)
    assert plan.resume is not None and plan.model_path == Path("checkpoints/tiny-1x16.safetensors")
    assert plan.corpus.path.resolve() == tiny_corpus.resolve()  # found from the checkpoint
    assert plan.train.lr == 0.01 and plan.train.batch_size == 4
    assert "resuming with --lr: 0.004 → 0.01" in plan.notes  # options as typed, not fields
    assert "resuming with --max-steps: 2 → 5" in plan.notes
    finished = train_plan(plan)
    assert finished.step == 5
    with pytest.raises(UsageError, match="--hidden-size 64 conflicts with the checkpoint's 16"):
        plan_run(None, {"hidden_size": 64}, {}, resume=resume_file)
    with pytest.raises(UsageError, match="--seq-len 8 conflicts"):
        plan_run(None, {}, {"seq_len": 8}, resume=resume_file)


def test_a_resume_does_not_keep_the_thread_count(tiny_corpus, in_tmp):
    """--threads suits the machine as it was when given: a resume uses it only if given again."""
    plan = plan_run(tiny_corpus, SHAPE, {**SMALL, "max_steps": 2, "threads": 1})
    assert plan.train.threads == 1
    train_plan(plan)
    again = plan_run(None, {}, {"max_steps": 3}, resume=plan.resume_path)
    assert again.train.threads is None and not any("--threads" in note for note in again.notes)
    assert plan_run(None, {}, {"max_steps": 3, "threads": 2}, resume=plan.resume_path).train.threads == 2


def test_cell_is_stored_and_must_match_on_resume(tiny_corpus, in_tmp):
    resume_file = first_run(tiny_corpus, cell="lstm")
    assert checkpoint.load(resume_file).config.cell == "lstm"
    with pytest.raises(UsageError, match="--cell gru conflicts with the checkpoint's lstm"):
        plan_run(None, {"cell": "gru"}, {}, resume=resume_file)
    with pytest.raises(UsageError, match="unknown cell 'transformer'; choose one of lstm, gru, rnn"):
        plan_run(tiny_corpus, {"cell": "transformer"}, SMALL)


def test_init_from_takes_weights_vocabulary_and_shape(tiny_corpus, in_tmp):
    first_run(tiny_corpus)
    other = in_tmp / "other.txt"
    other.write_text("the quick fox jumps over the lazy dog.\n" * 30, encoding="utf-8")
    plan = plan_run(other, {}, SMALL, init_from=Path("checkpoints/tiny-1x16.safetensors"))
    assert plan.init is not None and plan.config == plan.init.config and plan.corpus.vocab == plan.init.vocab
    with pytest.raises(UsageError, match="--layers 3 conflicts with --init-from's 1"):
        plan_run(other, {"num_layers": 3}, SMALL, init_from=Path("checkpoints/tiny-1x16.safetensors"))


@pytest.mark.parametrize(
    "corpus, model, train, kwargs, match",
    [
        ("tiny", {"hidden_size": 0}, {}, {}, "--hidden-size must be at least 1"),
        ("tiny", {"num_layers": -1}, {}, {}, "--layers must be at least 1"),
        ("tiny", {}, {"lr": 0}, {}, "--lr must be a positive number"),
        ("tiny", {}, {}, {"max_vocab": 0}, "--max-vocab must be at least 1"),
        ("tiny", {}, {}, {"errors": "ignore"}, "--errors must be strict or replace"),
        ("tiny", {}, {}, {"resume": Path("x"), "fresh": True}, "--resume cannot be combined"),
        (None, {}, {}, {}, "give a corpus file"),
        ("tiny", {}, {"sample_seed": "Ωmega"}, {}, "--sample-seed has characters not in the vocabulary: 'Ω'"),
    ],
)
def test_bad_choices_are_usage_errors_before_any_file_is_written(
    tiny_corpus, in_tmp, corpus, model, train, kwargs, match
):
    with pytest.raises(UsageError, match=match):
        plan_run(tiny_corpus if corpus else None, model, train, **kwargs)
    assert not (in_tmp / "checkpoints").exists()


def test_a_cell_registered_after_the_planner_is_imported_is_planned(tiny_corpus, tmp_path):
    """The planner asks the registry when it plans (no copy of the names made at import)."""
    code = (
        "from pathlib import Path\nfrom charlstm.training.plan import plan_run\nimport mgu\n"
        f"plan = plan_run(Path({str(tiny_corpus)!r}), {{'cell': 'mgu', 'hidden_size': 8}}, {{'max_steps': 1}})\n"
        "print(plan.config.cell, plan.model_path.name)"
    )
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.stdout.split() == ["mgu", "tiny-mgu-2x8.safetensors"], done.stderr
