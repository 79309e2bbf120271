"""`charlstm train --log-json FILE`: the run's events as JSON lines, for plots and other programs.

A header, then `step`, `epoch` and `end` records; README.md ("--log-json") has the schema. A log
that cannot be written (a full disk) does not raise: it keeps the reason in `failed`, and the
caller stops the run after the current step, with its checkpoints, as Ctrl-C does. A directory,
device, FIFO or socket is refused (`charlstm.store.write`), a link followed to its file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from charlstm.store import write
from charlstm.training import events as ev
from charlstm.units import nats_to_bits

LOG_HINT = "give the path of a file to append the log to"


class JsonLog:
    """--log-json: JSON lines. A header (config, corpus, vocabulary size, parameter count), a step
    record every --log-every steps, an epoch record per validation, an end record. A key means
    one thing in every record; a value that does not exist yet is left out, never null. The
    schema is in README.md ("--log-json")."""

    def __init__(self, path: Path, every: int) -> None:
        self.file = write.open_append(path, "--log-json", LOG_HINT)  # a device or a folder: refused
        self.every = every
        self.val: dict[str, float] = {}
        self.failed: str | None = None  # why the log could not be written; nothing more is written then

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Started):
            self.every = self.every if self.every > 0 else max(1, event.steps_per_epoch // 10)
            if event.val_loss is not None:
                self.val = self._val(event.val_loss)
            self._write(self._header(event))
        elif isinstance(event, ev.Step) and event.step % self.every == 0:
            self._write(self._step(event))
        elif isinstance(event, ev.EpochEnd):
            self.val = self._val(event.val_loss)
            self._write(self._epoch(event))
        elif isinstance(event, ev.Finished):
            self._write(self._end(event))

    def _step(self, e: ev.Step) -> dict[str, Any]:
        eta = {"eta": round(e.eta, 1)} if e.eta != float("inf") else {}
        return {
            "type": "step", "step": e.step, "epoch": round(e.epoch, 4), "step_loss": e.loss,
            **self._train(e.smoothed_loss), **self.val, "lr": e.lr, "grad_norm": e.grad_norm,
            "chars_per_s": round(e.chars_per_s, 1), "elapsed": round(e.elapsed, 3), **eta,
        }  # fmt: skip

    def _epoch(self, e: ev.EpochEnd) -> dict[str, Any]:
        return {
            "type": "epoch", "step": e.step, "epoch": e.epoch, **self._train(e.smoothed_loss),
            "epoch_train_loss": e.train_loss, **self.val, "best": e.best, "lr": e.lr,
            "chars_per_s": e.chars_per_s, "elapsed": round(e.elapsed, 3), "sample": e.sample,
        }  # fmt: skip

    def _end(self, e: ev.Finished) -> dict[str, Any]:
        best = {}
        if e.best_val_loss is not None:
            best = {
                "best_val_loss": e.best_val_loss,
                "best_val_bpc": nats_to_bits(e.best_val_loss),
                "best_epoch": e.best_epoch,
            }
        return {
            "type": "end", "reason": e.reason, "step": e.step, "epoch": round(e.epoch, 4), **best,
            "chars_per_s": round(e.chars_per_s, 1), "elapsed": round(e.elapsed, 3), "files": [str(f) for f in e.files],
        }  # fmt: skip

    def _header(self, e: ev.Started) -> dict[str, Any]:
        return {
            "type": "header",
            "schema": 1,
            "corpus": {
                "name": e.corpus,
                "chars": e.corpus_chars,
                "train_chars": e.train_chars,
                "val_chars": e.val_chars,
            },
            "vocab_size": e.vocab_size,
            "num_params": e.num_params,
            "model": e.config.to_dict(),
            "train": asdict(e.train),
            "steps_per_epoch": e.steps_per_epoch,
            **({"total_steps": e.total_steps} if e.total_steps is not None else {}),
            "start_step": e.start_step,
            "resumed": e.resumed,
            "model_path": str(e.model_path),
            "resume_path": str(e.resume_path),
            "engine": e.engine,
        }

    def _train(self, loss: float | None) -> dict[str, float]:
        return {} if loss is None else {"train_loss": loss, "train_bpc": nats_to_bits(loss)}

    def _val(self, loss: float) -> dict[str, float]:
        return {"val_loss": loss, "val_bpc": nats_to_bits(loss)}

    def _write(self, record: dict[str, Any]) -> None:
        if self.failed is not None:
            return
        try:
            self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.file.flush()
        except OSError as e:  # a full disk: the caller stops the run and says so
            self.failed = e.strerror or str(e)

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as e:  # what a failed write left in the buffer cannot be written either
            self.failed = self.failed or e.strerror or str(e)
