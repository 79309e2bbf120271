"""`charlstm train`: plan the run (`plan.plan_run`), train it (`train.train_plan`) and show its
events (`progress.train_view`, `--log-json`). Ctrl-C or SIGTERM stops it after the current step
with a checkpoint (exit code 130); a second Ctrl-C aborts at once."""

from __future__ import annotations

import signal
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from charlstm.cli.options import choice, given, option
from charlstm.config import (
    CELL_NAMES,
    DROPOUT_MASKS,
    ENCODING_ERRORS,
    ENGINE_NAMES,
    OPTIMIZER_NAMES,
    PRECISIONS,
    SCHEDULES,
    DisplayConfig,
    ModelConfig,
    ReadConfig,
    TrainConfig,
)
from charlstm.errors import CharLSTMError

MODEL, OPTIM, DATA, OUTPUT, RUN = "Model", "Optimisation", "Data", "Output and display", "Run control"  # help panels

if TYPE_CHECKING:  # Enums made at run time are no types to mypy; their members are str
    Cell = str
    Optimizer = str
    Schedule = str
    DropoutMask = str
    Errors = str
    EngineName = str
    Precision = str
else:
    Cell = choice("Cell", CELL_NAMES)
    Optimizer = choice("Optimizer", OPTIMIZER_NAMES)
    Schedule = choice("Schedule", SCHEDULES)
    DropoutMask = choice("DropoutMask", DROPOUT_MASKS)
    Errors = choice("Errors", ENCODING_ERRORS)
    EngineName = choice("EngineName", ENGINE_NAMES)
    Precision = choice("Precision", PRECISIONS)

HELP = """Train a model on a text file, showing progress and a sample after every epoch.

Checkpoints go to checkpoints/CORPUS.safetensors (best by validation loss) and
checkpoints/CORPUS.resume.safetensors (latest full state); another cell or shape than the
default 2×256 LSTM is named in them (CORPUS-rnn, CORPUS-gru-3x512), so models of one text
do not collide. If the run exists, pass --resume PATH to continue it, --fresh to start
over, or --out FILE. Ctrl-C (or SIGTERM) stops after the current step with a checkpoint
(exit code 130).

The run ends at the first of its limits: --epochs (10, unless only --max-minutes is given),
--max-steps, --max-minutes. On --resume, --epochs and --max-steps count the earlier runs'
steps too and are kept; giving any of the three limits sets a new end on its own (the
others kept are dropped), and the learning rate decays from where it is to that end.
--max-minutes counts this run only and is never kept. A new LSTM run with --max-minutes
and no -H/-L has its shape and dropout chosen for the minutes from this machine's measured
speed (a few seconds at the start, cached); the banner says which and why.

On GPUs: --engine torch (--device cuda); on several, `torchrun --nproc-per-node K -m charlstm
train ... --engine torch` (rank 0 prints and writes the checkpoints).
"""

OUT_HELP = (
    "Model checkpoint to write (best by validation); the resumable state goes beside it as NAME.resume.safetensors. "
    "(default: checkpoints/CORPUS.safetensors; a model other than the default adds what differs: "
    "CORPUS-rnn.safetensors, CORPUS-gru-3x512.safetensors)"
)


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def train(
    corpus: Annotated[list[Path] | None, typer.Argument(readable=False, help="UTF-8 text file to learn from, a folder of .txt files, or several files (optional with --resume).", show_default=False)] = None,
    hidden_size: Annotated[int | None, option(ModelConfig, "hidden_size", "--hidden-size", "-H", rich_help_panel=MODEL)] = None,
    num_layers: Annotated[int | None, option(ModelConfig, "num_layers", "--layers", "-L", rich_help_panel=MODEL)] = None,
    cell: Annotated[Cell | None, option(ModelConfig, "cell", choices=CELL_NAMES, rich_help_panel=MODEL)] = None,
    dropout: Annotated[float | None, option(TrainConfig, "dropout", rich_help_panel=MODEL)] = None,
    dropout_mask: Annotated[DropoutMask | None, option(TrainConfig, "dropout_mask", choices=DROPOUT_MASKS, rich_help_panel=MODEL)] = None,
    weight_drop: Annotated[float | None, option(TrainConfig, "weight_drop", rich_help_panel=MODEL)] = None,
    ema: Annotated[float | None, option(TrainConfig, "ema", rich_help_panel=MODEL)] = None,
    seq_len: Annotated[int | None, option(TrainConfig, "seq_len", "--seq-len", "-T", rich_help_panel=OPTIM)] = None,
    batch_size: Annotated[int | None, option(TrainConfig, "batch_size", "--batch-size", "-B", rich_help_panel=OPTIM)] = None,
    lr: Annotated[float | None, option(TrainConfig, "lr", rich_help_panel=OPTIM)] = None,
    optimizer: Annotated[Optimizer | None, option(TrainConfig, "optimizer", choices=OPTIMIZER_NAMES, rich_help_panel=OPTIM)] = None,
    adam_beta1: Annotated[float | None, option(TrainConfig, "adam_beta1", rich_help_panel=OPTIM)] = None,
    adam_beta2: Annotated[float | None, option(TrainConfig, "adam_beta2", rich_help_panel=OPTIM)] = None,
    schedule: Annotated[Schedule | None, option(TrainConfig, "schedule", choices=SCHEDULES, rich_help_panel=OPTIM)] = None,
    warmup_steps: Annotated[int | None, option(TrainConfig, "warmup_steps", rich_help_panel=OPTIM)] = None,
    min_lr_ratio: Annotated[float | None, option(TrainConfig, "min_lr_ratio", rich_help_panel=OPTIM)] = None,
    clip: Annotated[float | None, option(TrainConfig, "clip", rich_help_panel=OPTIM)] = None,
    epochs: Annotated[int | None, option(TrainConfig, "epochs", "--epochs", "-e", rich_help_panel=RUN)] = None,
    max_steps: Annotated[int | None, option(TrainConfig, "max_steps", rich_help_panel=RUN)] = None,
    max_minutes: Annotated[float | None, option(TrainConfig, "max_minutes", rich_help_panel=RUN)] = None,
    seed: Annotated[int | None, option(TrainConfig, "seed", rich_help_panel=RUN)] = None,
    kernels: Annotated[str | None, option(TrainConfig, "kernels", rich_help_panel=RUN)] = None,
    engine: Annotated[EngineName | None, option(TrainConfig, "engine", choices=ENGINE_NAMES, rich_help_panel=RUN)] = None,
    device: Annotated[str | None, option(TrainConfig, "device", rich_help_panel=RUN)] = None,
    precision: Annotated[Precision | None, option(TrainConfig, "precision", choices=PRECISIONS, rich_help_panel=RUN)] = None,
    threads: Annotated[int | None, option(TrainConfig, "threads", rich_help_panel=RUN)] = None,
    resume: Annotated[Path | None, typer.Option(readable=False, help="Continue a run exactly from its checkpoint (the .safetensors or .resume.safetensors file).", rich_help_panel=RUN, show_default=False)] = None,
    init_from: Annotated[Path | None, typer.Option("--init-from", readable=False, help="Start a new run from a checkpoint's weights and vocabulary (fine-tuning).", rich_help_panel=RUN, show_default=False)] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over even if a checkpoint for this corpus exists (it will be overwritten).", rich_help_panel=RUN)] = False,
    val_fraction: Annotated[float | None, option(TrainConfig, "val_fraction", rich_help_panel=DATA)] = None,
    encoding: Annotated[str | None, option(ReadConfig, "encoding", rich_help_panel=DATA)] = None,
    max_vocab: Annotated[int | None, option(ReadConfig, "max_vocab", rich_help_panel=DATA)] = None,
    errors: Annotated[Errors | None, option(ReadConfig, "errors", choices=ENCODING_ERRORS, rich_help_panel=DATA)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", readable=False, help=OUT_HELP, rich_help_panel=OUTPUT, show_default=False)] = None,
    keep: Annotated[int | None, option(TrainConfig, "keep", rich_help_panel=OUTPUT)] = None,
    save_minutes: Annotated[float | None, option(TrainConfig, "save_minutes", rich_help_panel=OUTPUT)] = None,
    sample_every: Annotated[int | None, option(TrainConfig, "sample_every", rich_help_panel=OUTPUT)] = None,
    sample_length: Annotated[int | None, option(TrainConfig, "sample_length", rich_help_panel=OUTPUT)] = None,
    sample_seed: Annotated[str | None, option(TrainConfig, "sample_seed", rich_help_panel=OUTPUT)] = None,
    quiet: Annotated[bool, option(DisplayConfig, "quiet", "--quiet", "-q", rich_help_panel=OUTPUT)] = False,
    log_every: Annotated[int | None, option(DisplayConfig, "log_every", rich_help_panel=OUTPUT)] = None,
    log_json: Annotated[Path | None, typer.Option("--log-json", readable=False, help="Append JSON lines to this file: a header, then step, epoch and end records (README: the --log-json schema).", rich_help_panel=OUTPUT, show_default=False)] = None,
) -> None:
# fmt: on
    """`charlstm train` (its help is HELP, above): the parameters are named as the config fields they set."""
    _train(dict(locals()))


def _train(o: dict[str, Any]) -> None:
    """Read the options `o` into configs, plan the run, train it; every event is shown and logged."""
    from charlstm.cli.ui import console as ui
    from charlstm.engines.team import rank
    from charlstm.training.loop import train_plan
    from charlstm.training.plan import plan_run

    display = given(DisplayConfig, quiet=o["quiet"], log_every=o["log_every"])
    read = given(ReadConfig, encoding=o["encoding"], errors=o["errors"], max_vocab=o["max_vocab"])
    corpus = o["corpus"]
    session = _Session(ui.make_console())
    try:
        session.leader = rank() == 0  # under torchrun, rank 0 alone speaks and logs
        plan = plan_run(
            corpus[0] if corpus and len(corpus) == 1 else corpus, _fields(ModelConfig, o), _fields(TrainConfig, o),
            resume=o["resume"], init_from=o["init_from"], fresh=o["fresh"], out=o["out"], encoding=read.encoding,
            errors=read.errors, max_vocab=read.max_vocab, on_progress=session.progress if session.leader else None,
            log_json=o["log_json"],
        )
        session.start(plan, display, o["log_json"])
        with _StopFlag(session.console if session.leader else None) as stop:
            finished = train_plan(plan, session.on_event, lambda: stop.requested() or session.log_failed())
    except CharLSTMError as exc:
        session.close()
        if not session.leader:
            raise typer.Exit(exc.exit_code) from None
        raise
    except KeyboardInterrupt:
        session.close()
        ui.error(session.console, session.aborted())
        raise typer.Exit(130) from None
    finally:
        session.close_log()
    session.finish(finished)


def _fields(cls: type, o: dict[str, Any]) -> dict[str, Any]:
    """The options that set fields of the config `cls` (None: not given), a choice by its value."""
    return {f.name: getattr(o[f.name], "value", o[f.name]) for f in fields(cls) if f.name in o}


class _Session:
    """What one `charlstm train` shows and writes: the corpus's encoding progress, the training
    display, the --log-json log, and the checkpoints written so far."""

    def __init__(self, console: Any) -> None:
        from charlstm.cli.ui import progress

        self.console = console
        self.progress = progress.EncodingProgress(console)
        self.leader = True
        self.plan: Any = None
        self.view: Any = None
        self.log: Any = None
        self.log_path: Path | None = None
        self.written: list[Path] = []

    def start(self, plan: Any, display: DisplayConfig, log_json: Path | None) -> None:
        """The run is planned: stop the encoding progress, start the display and the log."""
        from charlstm.cli.ui import progress
        from charlstm.training.jsonlog import JsonLog

        self.plan = plan
        self.progress.close()
        notes = plan.notes if self.leader else ()
        self.view = progress.train_view(self.console, display.quiet or not self.leader, display.log_every, notes)
        self.log = JsonLog(log_json, display.log_every) if log_json and self.leader else None
        self.log_path = log_json

    def on_event(self, event: Any) -> None:
        from charlstm.training.events import Saved

        self.view(event)
        if self.log is not None:
            self.log(event)
        if isinstance(event, Saved):
            self.written.append(event.path)

    def log_failed(self) -> bool:
        """A log that cannot be written stops the run as a Ctrl-C does: with its checkpoints."""
        return self.log is not None and self.log.failed is not None

    def close(self) -> None:
        self.progress.close()
        if self.view is not None:
            self.view.close()

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()

    def finish(self, finished: Any) -> None:
        """After the run: why a log that failed stopped it (an error), or how to go on after Ctrl-C."""
        from charlstm.cli.ui import console as ui

        again = f"continue with: charlstm train --resume {self.plan.resume_path}"
        if self.log_failed():
            stopped = f"training stopped at step {finished.step:,} with its checkpoints written"
            raise CharLSTMError(
                f"cannot write --log-json {self.log_path}: {self.log.failed}; {stopped}"
                + (f"; {again}" if finished.reason == "interrupted" else "")
            )
        if finished.reason == "interrupted":
            if self.leader:
                ui.warn(self.console, f"interrupted at step {finished.step:,}; {again}")
            raise typer.Exit(130)

    def aborted(self) -> str:
        """What a second Ctrl-C (or one before training began) leaves behind, in words."""
        plan = self.plan
        if self.written:
            again = f"; continue with: charlstm train --resume {plan.resume_path}" if plan.resume_path.exists() else ""
            return f"aborted; the checkpoints written ({', '.join(sorted(set(map(str, self.written))))}) are intact{again}"
        if plan is not None and plan.resume_path.exists():
            return f"aborted before this run wrote a checkpoint; {plan.resume_path} is as it was"
        return "aborted before the first checkpoint was written; nothing was saved"


class _StopFlag:
    """First Ctrl-C (or SIGTERM, as torchrun and batch schedulers send): ask the loop to stop
    after the current step. Second: abort at once. `console`: where to say so (None: say nothing)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.count = 0
        self.previous: Any = None

    def requested(self) -> bool:
        return self.count > 0

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        from charlstm.cli.ui import progress

        if self.console is not None:
            progress.stopping_message(self.console)

    def __enter__(self) -> _StopFlag:
        self.previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
