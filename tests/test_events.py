"""The training events: frozen, keyword-only dataclasses, built by keyword everywhere, their fixed
values typed; and the --log-json records made from them, key for key as README.md documents."""

from __future__ import annotations

import ast
import dataclasses
import json
import typing
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from charlstm.cli.ui import wording as train_text
from charlstm.training import events as ev
from charlstm.training.jsonlog import JsonLog
from charlstm.units import nats_to_bits

from helpers import ROOT, started_event

EVENTS = typing.get_args(ev.Event)


def test_every_event_is_frozen_and_keyword_only():
    assert {e.__name__ for e in EVENTS} == {n for n, c in vars(ev).items() if dataclasses.is_dataclass(c)}
    for event in EVENTS:
        params = dataclasses.fields(event)
        assert all(f.kw_only for f in params), event
        assert event.__dataclass_params__.frozen, event  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        ev.Sampled(3, "text")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.Sampled(step=3, text="text").step = 4  # type: ignore[misc]


def test_no_event_is_built_positionally_anywhere():
    """Every call of an event's class in charlstm/, tests/ and bench/ names its arguments (bench
    scripts and rare paths, such as divergence, are not all run by the tests)."""
    names = {e.__name__ for e in EVENTS}
    positional = []
    for folder in ("charlstm", "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and node.args:
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                    if name in names and not path.name == "test_events.py":
                        positional.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert positional == []


def test_every_reason_to_stop_has_its_words():
    assert set(typing.get_args(ev.StopReason)) == set(train_text.ENDINGS)
    assert typing.get_args(ev.SaveKind) == ("best", "resume", "snapshot")


def _log(tmp_path: Path) -> list[dict]:
    """The JSON lines a resumed run's events make, every second step logged."""
    log = JsonLog(tmp_path / "log.jsonl", 2)
    started = replace(
        started_event(folder=Path("/runs")), engine="numpy (numpy kernels)", resumed=True, start_step=3, val_loss=1.75
    )
    step = dict(epoch=0.0364, loss=2.5, smoothed_loss=2.25, lr=1e-3, grad_norm=0.5, chars_per_s=12345.67, end_step=495)
    for event in (
        ev.ThreadsChanged(old=None, new=2, why="--threads"),
        started,
        ev.Step(step=4, elapsed=1.2, eta=float("inf"), **step),
        ev.Step(step=5, elapsed=1.2, eta=50.0, **step),
        ev.Step(step=6, elapsed=1.23456, eta=99.94, **step),
        ev.Sampled(step=6, text="abc"),
        ev.Saved(path=Path("/runs/m.safetensors"), kind="best"),
        ev.Diverged(step=7, loss=99.0, grad_norm=1e6, action="halved"),
        ev.EpochEnd(
            epoch=1.0,
            step=165,
            train_loss=2.0,
            val_loss=1.5,
            val_bpc=2.164,
            best=True,
            sample="the",
            elapsed=10.00049,
            smoothed_loss=1.9,
            lr=5e-4,
            chars_per_s=999.9,
        ),
        ev.Finished(
            reason="max_steps",
            step=200,
            epoch=200 / 165,
            best_val_loss=1.5,
            best_epoch=1.0,
            elapsed=12.34567,
            chars_per_s=888.88,
            files=(Path("/runs/m.safetensors"),),
        ),
    ):
        log(event)
    log.close()
    return [json.loads(line) for line in (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def test_the_json_log_keeps_its_records_key_for_key(tmp_path):
    header, *records = _log(tmp_path)
    started = started_event()
    assert header == {
        "type": "header", "schema": 1,
        "corpus": {"name": "book", "chars": 10_000, "train_chars": 9_500, "val_chars": 500},
        "vocab_size": 65, "num_params": started.num_params, "model": started.config.to_dict(),
        "train": json.loads(json.dumps(asdict(started.train))), "steps_per_epoch": 165, "total_steps": 495,
        "start_step": 3, "resumed": True, "model_path": "/runs/m.safetensors",
        "resume_path": "/runs/m.resume.safetensors", "engine": "numpy (numpy kernels)",
    }  # fmt: skip
    bits = nats_to_bits

    def step(n: int, elapsed: float, **eta: float) -> dict:
        return {
            "type": "step", "step": n, "epoch": 0.0364, "step_loss": 2.5, "train_loss": 2.25,
            "train_bpc": bits(2.25), "val_loss": 1.75, "val_bpc": bits(1.75), "lr": 1e-3, "grad_norm": 0.5,
            "chars_per_s": 12345.7, "elapsed": elapsed, **eta,
        }  # fmt: skip

    expected = [
        step(4, 1.2),  # an unknown ETA is left out
        step(6, 1.235, eta=99.9),
        {
            "type": "epoch", "step": 165, "epoch": 1.0, "train_loss": 1.9, "train_bpc": bits(1.9),
            "epoch_train_loss": 2.0, "val_loss": 1.5, "val_bpc": bits(1.5), "best": True, "lr": 5e-4,
            "chars_per_s": 999.9, "elapsed": 10.0, "sample": "the",
        },
        {
            "type": "end", "reason": "max_steps", "step": 200, "epoch": 1.2121, "best_val_loss": 1.5,
            "best_val_bpc": bits(1.5), "best_epoch": 1.0, "chars_per_s": 888.9, "elapsed": 12.346,
            "files": ["/runs/m.safetensors"],
        },
    ]  # fmt: skip
    assert records == expected
    assert [list(r) for r in records] == [list(r) for r in expected]  # and in this order
