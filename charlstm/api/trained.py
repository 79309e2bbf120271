"""`Model`: a trained model as one object, what `charlstm.train` and `charlstm.load` return.

Its methods are the commands that use a model, with their options as keywords (keywords.py):
`sample` and `stream` (`charlstm sample`), `evaluate` (`charlstm eval`), `report` (`charlstm
report`). They call what the commands call (`inference.tasks`, `insight.report`) on the
checkpoint held in memory. A mistake is the CLI's one-line CharLSTMError, raised from the front
door (`front_door`: its traceback starts there, not deep inside). What a command would note on
stderr (a seed character dropped, a run's text not found) is a Python warning.
"""

from __future__ import annotations

import functools
import html
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from charlstm.api import keywords
from charlstm.config import EvalConfig, ReadConfig, ReportConfig, SampleConfig
from charlstm.errors import CharLSTMError, UsageError
from charlstm.units import nats_to_bits

if TYPE_CHECKING:
    from charlstm.config import ModelConfig
    from charlstm.store.checkpoint import Checkpoint
    from charlstm.text.vocab import Vocab
    from charlstm.training.events import Finished

F = TypeVar("F", bound=Callable[..., Any])


def front_door(function: F) -> F:
    """Raise a CharLSTMError from here, without the frames inside charlstm that raised it: the
    user reads their call and the one line that says what is wrong."""

    @functools.wraps(function)
    def called(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except CharLSTMError as e:
            raise e.with_traceback(None) from None

    return called  # type: ignore[return-value]


def _warn(message: str) -> None:
    """A note as a warning, attributed to the user's line that called charlstm."""
    package = str(Path(__file__).resolve().parent.parent)
    frame: FrameType | None = sys._getframe(1)  # None: past the outermost frame
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


@front_door
def load(path: str | Path | None = None) -> Model:
    """The model in the checkpoint at `path` (default: the newest in ./checkpoints, as the
    commands choose)."""
    from charlstm.store import checkpoint as ckpt_io
    from charlstm.store.runs import find_latest

    return Model(ckpt_io.load(path if path is not None else find_latest(name_one="pass its path")))


@dataclass(frozen=True)
class Score:
    """How well a model predicts a text (`Model.evaluate`): the mean loss over the characters
    scored, as nats and bits per character and as perplexity (e^nats)."""

    text_file: Path
    nats_per_char: float
    bits_per_char: float
    perplexity: float
    chars: int  # characters in the text
    scored: int  # characters predicted and scored (the streams' layout leaves up to B−1 out)
    unknown: int  # characters outside the model's vocabulary, left out


class Model:
    """A trained model and what is known of its training, read from its checkpoint."""

    def __init__(self, checkpoint: Checkpoint, finished: Finished | None = None) -> None:
        self.checkpoint = checkpoint
        self.finished = finished  # how the training that made it ended (charlstm.train), else None

    # what it is -------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self.checkpoint.path

    @property
    def config(self) -> ModelConfig:
        return self.checkpoint.config

    @property
    def vocab(self) -> Vocab:
        return self.checkpoint.vocab

    @property
    def num_params(self) -> int:
        return sum(int(p.size) for p in self.checkpoint.params.values())

    @property
    def corpus(self) -> str | None:
        """The name of the text it was trained on."""
        return self.checkpoint.train.get("corpus", {}).get("name")

    @property
    def steps(self) -> int:
        """Training steps behind these weights."""
        return int(self.checkpoint.train.get("step", 0))

    @property
    def best_bits_per_char(self) -> float | None:
        """The best validation loss of its run, in bits per character (None: never validated)."""
        best = self.checkpoint.train.get("best_val_loss")
        return None if best is None else nats_to_bits(best)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One record per validation: epoch, step, train_loss, val_loss, val_bpc, lr, sample, ..."""
        return list(self.checkpoint.history)

    def summary(self) -> dict[str, str]:
        """The model in words, as its repr and its Jupyter summary show it."""
        c = self.config
        rows = {"model": f"{c.num_layers}×{c.hidden_size} {c.cell.upper()}", "parameters": f"{self.num_params:,}"}
        rows["vocabulary"] = f"{self.vocab.size} characters"
        if self.corpus:
            rows["corpus"] = self.corpus
        rows["steps"] = f"{self.steps:,}"
        if self.best_bits_per_char is not None:
            rows["best val"] = f"{self.best_bits_per_char:.3f} bits/char"
        if self.path is not None:
            rows["file"] = str(self.path)
        return rows

    def __repr__(self) -> str:
        rows = self.summary()
        parts = [rows["model"], f"{rows['parameters']} parameters"]
        trained = f"trained on {rows['corpus']}" if "corpus" in rows else "trained"
        parts.append(f"{trained} for {rows['steps']} steps")
        if "best val" in rows:
            parts.append(f"best val {rows['best val']}")
        if "file" in rows:
            parts.append(rows["file"])
        return f"<charlstm.Model {', '.join(parts)}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self.summary().items()
        )
        return f"<table><caption style='text-align:left'><b>charlstm model</b></caption>{rows}</table>"

    # what it does -----------------------------------------------------------------------------
    @front_door
    def sample(
        self, seed: str = "", length: int | None = None, temperature: float | None = None, **options: Any
    ) -> str:
        """`length` characters (default 500) drawn after `seed`, returned with the seed before
        them. Keywords as `charlstm sample`'s options: temperature (default 1.0), greedy, top_k,
        top_p, random_seed (same seed, same text), stop, seed_file, drop_unknown, kernels, threads."""
        return "".join(self.stream(seed, length, temperature, **options))

    @front_door
    def stream(
        self, seed: str = "", length: int | None = None, temperature: float | None = None, **options: Any
    ) -> Iterator[str]:
        """`sample`'s text piece by piece as it is drawn: the seed (unless empty or from a
        seed_file), then one character at a time. The options and the seed are checked now,
        not at the first piece."""
        options = {"seed": seed, "length": length, "temperature": temperature, **options}
        cfg = SampleConfig(**keywords.parse(options, keywords.SAMPLE, "charlstm.Model.sample")["sample"])
        pieces = _pieces(self.checkpoint, cfg)
        next(pieces)  # sets the sampler up: a seed it cannot take raises here
        return pieces

    @front_door
    def evaluate(self, text_file: str | Path, **options: Any) -> Score:
        """Score a text file as `charlstm eval` does (B streams, the state carried across
        windows, as training scores its validation split). Keywords: batch_size, seq_len,
        encoding, errors."""
        from charlstm.inference.tasks import score_with

        given = keywords.parse(options, keywords.EVALUATE, "charlstm.Model.evaluate")
        path = keywords.checked("text_file", text_file, "Path")
        eval_cfg, read = EvalConfig(**given["eval"]), ReadConfig(**given["read"])
        score = score_with(self.checkpoint, self.path or Path("model"), eval_cfg, read, path, _warn)
        r = score.result
        return Score(path, r.loss, r.bits_per_char, r.perplexity, len(score.text), r.chars, score.unknown)

    @front_door
    def report(self, out: str | Path | None = None, **options: Any) -> Path:
        """Write `charlstm report`'s page for this model's run and return its path (default:
        NAME.report.html beside the checkpoint). Keywords: text (the text its views read), and
        max_chars, top, units, find, max_lag, positions."""
        from charlstm.insight.report import write_report

        given = keywords.parse(options, keywords.REPORT, "charlstm.Model.report")
        target = None if out is None else keywords.checked("out", out, "Path")
        written = write_report([self._saved()], given["run"].get("text"), target, ReportConfig(**given["report"]))
        for _, why in written.skipped:
            _warn(f"left out: {why}")
        for message in written.notes:
            _warn(message)
        return written.path

    def _saved(self) -> Any:
        """The checkpoint's file (the report reads the run from there)."""
        if self.path is None:
            raise UsageError("this model has no checkpoint file: save it with charlstm.save_checkpoint first")
        return self.path


def _pieces(ckpt: Checkpoint, cfg: SampleConfig) -> Iterator[str]:
    """ "" once the sampler is set up, then the seed and the characters drawn. Sampling picks the
    BLAS's thread count as `charlstm sample` does; the session's comes back when the stream ends
    or is dropped."""
    from charlstm.inference.tasks import sampler_for
    from charlstm.nn import threads

    with threads.as_before():
        sampler = sampler_for(ckpt, cfg, _warn)
        yield ""
        if sampler.prefix:
            yield sampler.prefix
        for (ch,) in sampler.steps:
            if ch:
                yield ch
