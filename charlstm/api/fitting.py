"""`charlstm.train("book.txt", max_minutes=5)`: `charlstm train` from Python, returning a Model.

The keywords are the command line's options (keywords.py); the run is planned and trained by the
same calls the CLI makes (`training.plan.plan_run`, `training.loop.train_plan`), so a bad option
or a bad file is the same one-line CharLSTMError. Ctrl-C (in Jupyter: interrupting the kernel)
stops after the current step with a checkpoint, as in the terminal, and the model so far is
returned; a second one aborts.

The progress shown is the CLI's own display (`cli.ui.progress.train_view`), fed the loop's events:
a live line in a terminal, plain lines elsewhere, and Rich's output cells in Jupyter. It is the
one place where the library reaches the command line's drawing, an edge as the CLI is, and only
when something is to be shown: with quiet=True neither it nor Rich is imported.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charlstm.api import keywords
from charlstm.api.trained import Model, front_door
from charlstm.config import DisplayConfig, ReadConfig
from charlstm.errors import CharLSTMError, UsageError

if TYPE_CHECKING:
    from charlstm.training.events import Event, Finished
    from charlstm.training.plan import RunPlan

Source = str | PathLike | Sequence[str | PathLike]


def train(corpus: Any = None, *args: Any, **options: Any) -> Any:
    """Train a model on `corpus` (a text file, a folder of .txt files, or a list of files; None
    with resume=) and return it as a Model. The options are `charlstm train`'s long options as
    keywords: hidden_size, layers, cell, epochs, max_steps, max_minutes, out, engine, fresh,
    resume, quiet, ...; a bad one raises the CLI's one-line error as a CharLSTMError.

    The older form `train(corpus, model_config, train_config, model_path, ...)`, whose first
    argument is a loaded `Corpus`, is `training.loop.train` and returns its Finished event."""
    from charlstm.text.corpus import Corpus

    if isinstance(corpus, Corpus):
        from charlstm.training import loop

        return loop.train(corpus, *args, **options)
    return _train_from_python(corpus, args, options)


@front_door
def _train_from_python(corpus: Source | None, args: tuple[Any, ...], options: dict[str, Any]) -> Model:
    if args:
        raise UsageError(
            "charlstm.train takes the corpus, then options as keywords: charlstm.train('book.txt', epochs=2)"
        )
    given = keywords.parse(options, keywords.TRAIN, "charlstm.train")
    read, display, run = ReadConfig(**given["read"]), DisplayConfig(**given["display"]), given["run"]
    shown = _Shown(display)
    try:
        plan = _plan(_source(corpus), given, read, run, shown)
        shown.start(plan, run.get("log_json"))
        with _StopOnInterrupt(shown.console) as stop:
            finished = _train_plan(plan, shown, stop)
    finally:
        shown.close()
    shown.check_log(finished)
    from charlstm.store import checkpoint as ckpt_io

    return Model(ckpt_io.load(plan.model_path), finished)


def _plan(source: Path | list[Path] | None, given: dict, read: ReadConfig, run: dict, shown: _Shown) -> RunPlan:
    from charlstm.training.plan import plan_run

    return plan_run(
        source, given["model"], given["train"], resume=run.get("resume"), init_from=run.get("init_from"),
        fresh=run.get("fresh", False), out=run.get("out"), encoding=read.encoding, errors=read.errors,
        max_vocab=read.max_vocab, on_progress=shown.encoding,
    )  # fmt: skip


def _train_plan(plan: RunPlan, shown: _Shown, stop: _StopOnInterrupt) -> Finished:
    from charlstm.training.loop import train_plan

    return train_plan(plan, shown, lambda: stop.requested or shown.log_failed())


def _source(corpus: Source | None) -> Path | list[Path] | None:
    """The corpus as plan_run takes it: one path, or a list of them."""
    if corpus is None:
        return None
    if isinstance(corpus, str | PathLike):
        return Path(corpus)
    if isinstance(corpus, list | tuple) and corpus and all(isinstance(p, str | PathLike) for p in corpus):
        return [Path(p) for p in corpus] if len(corpus) > 1 else Path(corpus[0])
    raise UsageError(
        f"the corpus must be a text file's path, a folder of .txt files or a list of files, not {corpus!r}"
    )


class _Shown:
    """Where the run's events go: the CLI's training display (unless quiet) and the log_json log."""

    def __init__(self, display: DisplayConfig) -> None:
        self.display = display
        self.view: Any = None
        self.log: Any = None
        self.log_path: Path | None = None
        self.encoding: Any = None  # the progress of encoding a large corpus
        self.console: Any = None
        if not display.quiet:
            from charlstm.cli.ui import console, progress  # the edge to Rich: see the module's docstring

            self.console = console.make_console()
            self.encoding = progress.EncodingProgress(self.console)

    def start(self, plan: RunPlan, log_json: Path | None) -> None:
        from charlstm.training.jsonlog import JsonLog

        if self.encoding is not None:
            self.encoding.close()
            from charlstm.cli.ui import progress

            self.view = progress.train_view(self.console, False, self.display.log_every, plan.notes)
        self.log = JsonLog(log_json, self.display.log_every) if log_json else None
        self.log_path = log_json

    def __call__(self, event: Event) -> None:
        if self.view is not None:
            self.view(event)
        if self.log is not None:
            self.log(event)

    def log_failed(self) -> bool:
        return self.log is not None and self.log.failed is not None

    def check_log(self, finished: Finished) -> None:
        """A log that could not be written stopped the run: the CLI's error, after the run."""
        if self.log_failed():
            raise CharLSTMError(
                f"cannot write --log-json {self.log_path}: {self.log.failed}; "
                f"training stopped at step {finished.step:,} with its checkpoints written"
            )

    def close(self) -> None:
        for part in (self.encoding, self.view, self.log):
            if part is not None:
                part.close()


class _StopOnInterrupt:
    """The first Ctrl-C asks the loop to stop after the current step (it then writes its
    checkpoints and returns); a second raises KeyboardInterrupt at once. Signal handlers can be
    set in the main thread only: elsewhere Ctrl-C is Python's own."""

    def __init__(self, console: Any) -> None:
        self.console = console  # where to say so; None: quiet
        self.requested = False
        self.previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.console is not None:
            from charlstm.cli.ui import progress

            progress.stopping_message(self.console)

    def __enter__(self) -> _StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
