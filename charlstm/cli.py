"""The command line: `charlstm train | sample | eval | inspect | runs | report` and the views.

A thin layer: it declares and checks options, calls the library, renders its events through `ui`,
and turns the library's errors — and Typer's own usage errors — into one red line on stderr and
an exit code (1: failed, 2: bad usage, 130: interrupted). Library modules are imported inside the
commands so `--help` is fast.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from charlstm.units import nats_to_bits
from charlstm.config import (
    CELL_NAMES, DROPOUT_MASKS, ENCODING_ERRORS, ENGINE_NAMES, MAX_VOCAB, OPTIMIZER_NAMES, PRECISIONS, SCHEDULES, ModelConfig,
    ReportConfig, TrainConfig, default_of, field_help,
)

app = typer.Typer(
    name="charlstm",
    help="Train a character-level LSTM on any UTF-8 text, then sample from it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _choice(name: str, values: tuple[str, ...]) -> Any:
    """An Enum of `values`, so that help lists them and Typer checks them."""
    return Enum(name, {v: v for v in values}, type=str)


def _metavar(values: tuple[str, ...]) -> str:
    return "[" + "|".join(values) + "]"


def _value(choice: Any) -> str | None:
    return None if choice is None else choice.value


Cell = _choice("Cell", CELL_NAMES)
Optimizer = _choice("Optimizer", OPTIMIZER_NAMES)
Schedule = _choice("Schedule", SCHEDULES)
DropoutMask = _choice("DropoutMask", DROPOUT_MASKS)
Errors = _choice("Errors", ENCODING_ERRORS)
EngineName = _choice("EngineName", ENGINE_NAMES)
Precision = _choice("Precision", PRECISIONS)

MODEL = "Model"
OPTIM = "Optimisation"
DATA = "Data"
OUTPUT = "Output and display"
RUN = "Run control"


def _fail(exc: Exception, code: int | None = None) -> None:
    """Print one error line and exit."""
    from charlstm import ui

    ui.error(ui.make_console(), str(exc))
    raise typer.Exit(code if code is not None else getattr(exc, "exit_code", 1))


def _note(message: str) -> None:
    """A dim diagnostic line on stderr. Rich is imported only here, when there is something to
    say, so `charlstm sample` reaches its first character sooner."""
    from charlstm import ui

    ui.note(ui.make_console(), message)


def _usage(message: str) -> None:
    from charlstm.errors import UsageError

    _fail(UsageError(message))


def version_callback(value: bool) -> None:
    if value:
        from charlstm import __version__

        typer.echo(f"charlstm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Train a character-level LSTM on any UTF-8 text, then sample from it.

    Start with `charlstm train FILE`; then `charlstm sample --seed "The"` writes text in its style.
    """


# ------------------------------------------------------------------------------------------ train


@app.command()
def train(
    corpus: Annotated[Optional[List[Path]], typer.Argument(readable=False, help="UTF-8 text file to learn from, a folder of .txt files, or several files (optional with --resume).", show_default=False)] = None,
    hidden_size: Annotated[Optional[int], typer.Option("--hidden-size", "-H", help=field_help(ModelConfig, "hidden_size"), rich_help_panel=MODEL, show_default=False)] = None,
    layers: Annotated[Optional[int], typer.Option("--layers", "-L", help=field_help(ModelConfig, "num_layers"), rich_help_panel=MODEL, show_default=False)] = None,
    cell: Annotated[Optional[Cell], typer.Option("--cell", metavar=_metavar(CELL_NAMES), help=field_help(ModelConfig, "cell"), rich_help_panel=MODEL, show_default=False)] = None,
    dropout: Annotated[Optional[float], typer.Option(help=field_help(TrainConfig, "dropout"), rich_help_panel=MODEL, show_default=False)] = None,
    dropout_mask: Annotated[Optional[DropoutMask], typer.Option("--dropout-mask", metavar=_metavar(DROPOUT_MASKS), help=field_help(TrainConfig, "dropout_mask"), rich_help_panel=MODEL, show_default=False)] = None,
    weight_drop: Annotated[Optional[float], typer.Option("--weight-drop", help=field_help(TrainConfig, "weight_drop"), rich_help_panel=MODEL, show_default=False)] = None,
    ema: Annotated[Optional[float], typer.Option("--ema", help=field_help(TrainConfig, "ema"), rich_help_panel=MODEL, show_default=False)] = None,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", "-T", help=field_help(TrainConfig, "seq_len"), rich_help_panel=OPTIM, show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-B", help=field_help(TrainConfig, "batch_size"), rich_help_panel=OPTIM, show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(help=field_help(TrainConfig, "lr"), rich_help_panel=OPTIM, show_default=False)] = None,
    optimizer: Annotated[Optional[Optimizer], typer.Option(metavar=_metavar(OPTIMIZER_NAMES), help=field_help(TrainConfig, "optimizer"), rich_help_panel=OPTIM, show_default=False)] = None,
    adam_beta1: Annotated[Optional[float], typer.Option("--adam-beta1", help=field_help(TrainConfig, "adam_beta1"), rich_help_panel=OPTIM, show_default=False)] = None,
    adam_beta2: Annotated[Optional[float], typer.Option("--adam-beta2", help=field_help(TrainConfig, "adam_beta2"), rich_help_panel=OPTIM, show_default=False)] = None,
    schedule: Annotated[Optional[Schedule], typer.Option(metavar=_metavar(SCHEDULES), help=field_help(TrainConfig, "schedule"), rich_help_panel=OPTIM, show_default=False)] = None,
    warmup_steps: Annotated[Optional[int], typer.Option("--warmup-steps", help=field_help(TrainConfig, "warmup_steps"), rich_help_panel=OPTIM, show_default=False)] = None,
    min_lr_ratio: Annotated[Optional[float], typer.Option("--min-lr-ratio", help=field_help(TrainConfig, "min_lr_ratio"), rich_help_panel=OPTIM, show_default=False)] = None,
    clip: Annotated[Optional[float], typer.Option(help=field_help(TrainConfig, "clip"), rich_help_panel=OPTIM, show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", help=field_help(TrainConfig, "epochs"), rich_help_panel=RUN, show_default=False)] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help=field_help(TrainConfig, "max_steps"), rich_help_panel=RUN, show_default=False)] = None,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help=field_help(TrainConfig, "max_minutes"), rich_help_panel=RUN, show_default=False)] = None,
    random_seed: Annotated[Optional[int], typer.Option("--random-seed", help=field_help(TrainConfig, "seed"), rich_help_panel=RUN, show_default=False)] = None,
    kernels: Annotated[Optional[str], typer.Option("--kernels", help=field_help(TrainConfig, "kernels"), rich_help_panel=RUN, show_default=False)] = None,
    engine: Annotated[Optional[EngineName], typer.Option("--engine", metavar=_metavar(ENGINE_NAMES), help=field_help(TrainConfig, "engine"), rich_help_panel=RUN, show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option("--device", help=field_help(TrainConfig, "device"), rich_help_panel=RUN, show_default=False)] = None,
    precision: Annotated[Optional[Precision], typer.Option("--precision", metavar=_metavar(PRECISIONS), help=field_help(TrainConfig, "precision"), rich_help_panel=RUN, show_default=False)] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help=field_help(TrainConfig, "threads"), rich_help_panel=RUN, show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(readable=False, help="Continue a run exactly from its checkpoint (the .safetensors or .resume.safetensors file).", rich_help_panel=RUN, show_default=False)] = None,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", readable=False, help="Start a new run from a checkpoint's weights and vocabulary (fine-tuning).", rich_help_panel=RUN, show_default=False)] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over even if a checkpoint for this corpus exists (it will be overwritten).", rich_help_panel=RUN)] = False,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help=field_help(TrainConfig, "val_fraction"), rich_help_panel=DATA, show_default=False)] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the corpus. (default: utf-8)", rich_help_panel=DATA, show_default=False)] = "utf-8",
    max_vocab: Annotated[int, typer.Option("--max-vocab", help=f"Refuse corpora with more distinct characters than this (a binary file read as text has thousands). (default: {MAX_VOCAB})", rich_help_panel=DATA, show_default=False)] = MAX_VOCAB,
    errors: Annotated[Errors, typer.Option(metavar=_metavar(ENCODING_ERRORS), help="What to do with undecodable bytes: strict (stop with an error) or replace (use U+FFFD). (default: strict)", rich_help_panel=DATA, show_default=False)] = Errors.strict,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", readable=False, help="Model checkpoint to write (best by validation); the resumable state goes beside it as NAME.resume.safetensors. (default: checkpoints/CORPUS.safetensors; a model other than the default adds what differs: CORPUS-rnn.safetensors, CORPUS-gru-3x512.safetensors)", rich_help_panel=OUTPUT, show_default=False)] = None,
    keep: Annotated[Optional[int], typer.Option(help=field_help(TrainConfig, "keep"), rich_help_panel=OUTPUT, show_default=False)] = None,
    save_minutes: Annotated[Optional[float], typer.Option("--save-minutes", help=field_help(TrainConfig, "save_minutes"), rich_help_panel=OUTPUT, show_default=False)] = None,
    sample_every: Annotated[Optional[int], typer.Option("--sample-every", help=field_help(TrainConfig, "sample_every"), rich_help_panel=OUTPUT, show_default=False)] = None,
    sample_length: Annotated[Optional[int], typer.Option("--sample-length", help=field_help(TrainConfig, "sample_length"), rich_help_panel=OUTPUT, show_default=False)] = None,
    sample_seed: Annotated[Optional[str], typer.Option("--sample-seed", help=field_help(TrainConfig, "sample_seed"), rich_help_panel=OUTPUT, show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary.", rich_help_panel=OUTPUT)] = False,
    log_every: Annotated[int, typer.Option("--log-every", help="Steps between plain log lines and --log-json step records. (default: 0, about 10 per epoch)", rich_help_panel=OUTPUT, show_default=False)] = 0,
    log_json: Annotated[Optional[Path], typer.Option("--log-json", readable=False, help="Append JSON lines to this file: a header, then step, epoch and end records (README: the --log-json schema).", rich_help_panel=OUTPUT, show_default=False)] = None,
) -> None:
    """Train a model on a text file, showing progress and a sample after every epoch.

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
    --max-minutes counts this run only and is never kept.

    On GPUs: --engine torch (--device cuda); on several, `torchrun --nproc-per-node K -m charlstm
    train ... --engine torch` (rank 0 prints and writes the checkpoints).
    """
    from charlstm import train as tr
    from charlstm import ui
    from charlstm.engines import rank
    from charlstm.errors import CharLSTMError
    from charlstm.events import Saved
    from charlstm.plan import plan_run

    if log_every < 0:
        _usage("--log-every must be >= 0")
    model_options = {"hidden_size": hidden_size, "num_layers": layers, "cell": _value(cell)}
    train_options = {
        "seq_len": seq_len, "batch_size": batch_size, "lr": lr, "optimizer": _value(optimizer), "clip": clip,
        "epochs": epochs, "max_steps": max_steps, "val_fraction": val_fraction, "seed": random_seed,
        "dropout": dropout, "schedule": _value(schedule), "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio,
        "dropout_mask": _value(dropout_mask), "weight_drop": weight_drop, "ema": ema,
        "adam_beta1": adam_beta1, "adam_beta2": adam_beta2,
        "max_minutes": max_minutes, "sample_every": sample_every, "sample_length": sample_length,
        "sample_seed": sample_seed, "keep": keep, "save_minutes": save_minutes, "kernels": kernels,
        "engine": _value(engine), "device": device, "precision": _value(precision),
        "threads": threads,
    }
    console = ui.make_console()
    plan: Any = None
    view: Any = None
    log: Any = None
    written: list[Path] = []
    progress = ui.EncodingProgress(console)
    leader = True
    try:
        leader = rank() == 0  # under torchrun, rank 0 alone speaks and logs
        plan = plan_run(
            corpus[0] if corpus and len(corpus) == 1 else corpus, model_options, train_options, resume=resume,
            init_from=init_from, fresh=fresh, out=out, encoding=encoding, errors=errors.value, max_vocab=max_vocab,
            on_progress=progress if leader else None,
        )
        progress.close()
        view = ui.TrainView(console, quiet=quiet or not leader, log_every=log_every, plan_notes=plan.notes if leader else ())
        log = _JsonLog(log_json, log_every) if log_json and leader else None

        def on_event(event: Any) -> None:
            view(event)
            if log is not None:
                log(event)
            if isinstance(event, Saved):
                written.append(event.path)

        stop = _StopFlag(console if leader else None)
        with stop:  # a log that cannot be written stops the run as a Ctrl-C does: with its checkpoints
            finished = tr.train_plan(plan, on_event, lambda: stop.requested() or (log is not None and log.failed is not None))
    except CharLSTMError as exc:
        progress.close()
        if view is not None:
            view.close()
        if not leader:
            raise typer.Exit(exc.exit_code)
        _fail(exc)
    except KeyboardInterrupt:
        progress.close()
        if view is not None:
            view.close()
        ui.error(console, _aborted(plan, written))
        raise typer.Exit(130)
    finally:
        if log is not None:
            log.close()
    if log is not None and log.failed is not None:
        again = f"; continue with: charlstm train --resume {plan.resume_path}" if finished.reason == "interrupted" else ""
        _fail(CharLSTMError(f"cannot write --log-json {log_json}: {log.failed}; training stopped at step {finished.step:,} with its checkpoints written{again}"))
    if finished.reason == "interrupted":
        if leader:
            ui.warn(console, f"interrupted at step {finished.step}; continue with: charlstm train --resume {plan.resume_path}")
        raise typer.Exit(130)


def _aborted(plan: Any, written: list[Path]) -> str:
    """What a second Ctrl-C (or one before training began) leaves behind, in words."""
    if written:
        again = f"; continue with: charlstm train --resume {plan.resume_path}" if plan.resume_path.exists() else ""
        return f"aborted; the checkpoints written ({', '.join(sorted(set(map(str, written))))}) are intact{again}"
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
        from charlstm import ui

        if self.console is not None:
            ui.stopping_message(self.console)

    def __enter__(self) -> _StopFlag:
        self.previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class _JsonLog:
    """--log-json: JSON lines. A header (config, corpus, vocabulary size, parameter count), a step
    record every --log-every steps, an epoch record per validation, an end record. A key means
    one thing in every record; a value that does not exist yet is left out, never null. The
    schema is in README.md ("--log-json")."""

    def __init__(self, path: Path, every: int) -> None:
        try:
            self.file = open(path, "a", encoding="utf-8")
        except OSError as e:
            from charlstm.errors import UsageError

            raise UsageError(f"cannot open --log-json file {path}: {e.strerror or e}") from None
        self.every = every
        self.val: dict[str, float] = {}
        self.failed: str | None = None  # why the log could not be written; nothing more is written then

    def __call__(self, event: Any) -> None:
        from charlstm import events as ev

        kind = type(event)
        if kind is ev.Started:
            self.every = self.every if self.every > 0 else max(1, event.steps_per_epoch // 10)
            if event.val_loss is not None:
                self.val = self._val(event.val_loss)
            self._write(self._header(event))
        elif kind is ev.Step and event.step % self.every == 0:
            self._write({
                "type": "step", "step": event.step, "epoch": round(event.epoch, 4), "step_loss": event.loss,
                **self._train(event.smoothed_loss), **self.val, "lr": event.lr, "grad_norm": event.grad_norm,
                "chars_per_s": round(event.chars_per_s, 1), "elapsed": round(event.elapsed, 3),
                **({"eta": round(event.eta, 1)} if event.eta != float("inf") else {}),
            })
        elif kind is ev.EpochEnd:
            self.val = self._val(event.val_loss)
            self._write({
                "type": "epoch", "step": event.step, "epoch": event.epoch, **self._train(event.smoothed_loss),
                "epoch_train_loss": event.train_loss, **self.val, "best": event.best, "lr": event.lr,
                "chars_per_s": event.chars_per_s, "elapsed": round(event.elapsed, 3), "sample": event.sample,
            })
        elif kind is ev.Finished:
            best = {} if event.best_val_loss is None else {"best_val_loss": event.best_val_loss, "best_val_bpc": nats_to_bits(event.best_val_loss), "best_epoch": event.best_epoch}
            self._write({
                "type": "end", "reason": event.reason, "step": event.step, "epoch": round(event.epoch, 4), **best,
                "chars_per_s": round(event.chars_per_s, 1), "elapsed": round(event.elapsed, 3),
                "files": [str(f) for f in event.files],
            })

    def _header(self, e: Any) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "type": "header", "schema": 1, "corpus": {"name": e.corpus, "chars": e.corpus_chars, "train_chars": e.train_chars, "val_chars": e.val_chars},
            "vocab_size": e.vocab_size, "num_params": e.num_params, "model": e.config.to_dict(), "train": asdict(e.train),
            "steps_per_epoch": e.steps_per_epoch, **({"total_steps": e.total_steps} if e.total_steps is not None else {}),
            "start_step": e.start_step, "resumed": e.resumed, "model_path": str(e.model_path), "resume_path": str(e.resume_path),
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


# ----------------------------------------------------------------------------------------- sample


@app.command()
def sample(
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", readable=False, help="Checkpoint to sample from. (default: the newest in ./checkpoints)", show_default=False)] = None,
    seed: Annotated[str, typer.Option("--seed", "-s", help="Text to start from; the model continues it. (default: empty: start from a zero state primed with a newline)", show_default=False)] = "",
    seed_file: Annotated[Optional[Path], typer.Option("--seed-file", readable=False, help="Start from the text of this file instead (a long text primes the model's state; it is not echoed).", show_default=False)] = None,
    length: Annotated[int, typer.Option("--length", "-n", help="Characters to generate (after the seed). (default: 500)", show_default=False)] = 500,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="Divide the logits by this (> 0): below 1 is safer, above 1 wilder. (default: 1)", show_default=False)] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Always take the most likely character (argmax); ignores temperature, top-k and top-p.")] = False,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Sample only among the K most likely characters. (default: all)", show_default=False)] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling: only the smallest set of most likely characters with total probability ≥ P, in (0, 1]. (default: 1, all)", show_default=False)] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-N", help="Independent samples, drawn as one batch; each is printed after a '--- sample i of N ---' line. (default: 1)", show_default=False)] = 1,
    random_seed: Annotated[Optional[int], typer.Option("--random-seed", help="Seed of the sampler: same seed, same text. (default: fresh randomness)", show_default=False)] = None,
    stop: Annotated[Optional[str], typer.Option("--stop", help="End a sample right after this text appears in it (\\n, \\t and \\f are understood). (default: none)", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", readable=False, help="Write the text to this file. (default: stdout)", show_default=False)] = None,
    no_seed_echo: Annotated[bool, typer.Option("--no-seed-echo", help="Print only the generated characters, not the seed before them.")] = False,
    drop_unknown: Annotated[bool, typer.Option("--drop-unknown", help="Remove seed characters the model does not know (with a warning) instead of stopping.")] = False,
    kernels: Annotated[str, typer.Option("--kernels", help="The per-step math: numpy (starts at once), numba (compiled, ~2× faster per character at batch 1, ~0.5 s more to start; pip install 'charlstm[fast]'), or auto (numba when a run has already compiled it).")] = "numpy",
    threads: Annotated[Optional[int], typer.Option("--threads", help="Threads of the BLAS and numba kernels, fixed. (default: automatic, as in charlstm train)", show_default=False)] = None,
) -> None:
    """Generate text from a trained model, streamed to stdout as it is made.

    Only the text goes to stdout; which checkpoint was used and any warnings go to stderr.
    """
    from charlstm import checkpoint as ckpt_io
    from charlstm.errors import CharLSTMError

    if length < 0:
        _usage("--length must be >= 0")
    if not greedy and not temperature > 0:
        _usage("--temperature must be > 0; use --greedy to always take the most likely character")
    if top_k is not None and top_k < 1:
        _usage("--top-k must be at least 1")
    if top_p is not None and not 0 < top_p <= 1:
        _usage("--top-p must be in (0, 1]")
    if num_samples < 1:
        _usage("--num-samples must be at least 1")
    if kernels not in ("auto", "numpy", "numba"):
        _usage("--kernels must be one of auto, numpy, numba")
    if threads is not None and threads < 1:
        _usage("--threads must be at least 1")
    if stop is not None:
        stop = stop.replace("\\n", "\n").replace("\\t", "\t").replace("\\f", "\f")
        if not stop:
            _usage("--stop must not be empty")
    if seed_file is not None and seed:
        _usage("give --seed or --seed-file, not both")
    out: Any = None
    try:
        import numpy as np

        from charlstm import kernels as kernels_
        from charlstm import threads as threads_
        from charlstm.corpus import describe_chars
        from charlstm.generate import Sampling, stream_text

        path = checkpoint or ckpt_io.find_latest()
        ckpt = ckpt_io.load(path)
        if seed_file is not None:
            from charlstm.textio import read_text

            seed, no_seed_echo = read_text(seed_file, allow_empty=True), True
        missing = ckpt.vocab.unknown(seed)
        if missing and not drop_unknown:
            given = f"--seed-file {seed_file}" if seed_file is not None else "--seed"
            _usage(
                f"{given} has characters not in the model's vocabulary: {describe_chars(missing)} "
                f"(--drop-unknown removes them)"
            )
        if missing:
            seed = "".join(ch for ch in seed if ch in ckpt.vocab)
            _note(f"dropped from the seed: {describe_chars(missing)}")
        if checkpoint is None:
            _note(f"sampling from {path}")
        out = _open_output(output)
        prefix = "" if no_seed_echo else seed
        sampling = Sampling(0) if greedy else Sampling(temperature, top_k, top_p)
        rng = np.random.default_rng(random_seed)
        step_kernels = kernels_.for_sampling(kernels)
        steps = stream_text(ckpt.params, ckpt.config, ckpt.vocab, seed, length, sampling, num_samples, rng, stop, step_kernels)
        steps = threads_.timed(steps, threads_.tuner(threads), threads_.SAMPLING_BLOCK)
        if num_samples == 1:
            out.write(prefix)
            out.flush()
            last = prefix[-1:]
            for (ch,) in steps:
                out.write(ch)
                out.flush()
                last = ch or last
            out.write(_end_line(last))
        else:
            texts = [[prefix] for _ in range(num_samples)]
            for chars in steps:
                for text, ch in zip(texts, chars):
                    text.append(ch)
            for i, text in enumerate(texts, 1):
                body = "".join(text)
                out.write(f"--- sample {i} of {num_samples} ---\n{body}{_end_line(body[-1:])}")
        out.flush()
    except CharLSTMError as exc:
        _fail(exc)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except KeyboardInterrupt:
        raise typer.Exit(130)
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    if output is not None:
        _note(f"wrote {output}")


def _end_line(last: str) -> str:
    """The newline that ends a sample's output, unless its last character was one (--stop '\\n')."""
    return "" if last == "\n" else "\n"


def _open_output(path: Path | None) -> Any:
    """The text stream for generated text: a UTF-8 file, or stdout (made UTF-8 if it is not)."""
    if path is None:
        if (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
            sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as e:
        from charlstm.errors import UsageError

        raise UsageError(f"cannot write --output {path}: {e.strerror or e}") from None


def _quiet_broken_pipe() -> None:
    """The reader went away (`| head`): stop quietly, without Python's flush error at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)


# ------------------------------------------------------------------------------------------- eval


@app.command("eval")
def eval_(
    text_file: Annotated[Path, typer.Argument(readable=False, help="Text file to score, all of it.", show_default=False)],
    old_form: Annotated[Optional[Path], typer.Argument(readable=False, hidden=True, show_default=False)] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", readable=False, help="Checkpoint to score with. (default: the newest in ./checkpoints)", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-B", help="Parallel streams (speed only; state is carried across windows as in training).")] = default_of(TrainConfig, "batch_size"),
    seq_len: Annotated[int, typer.Option("--seq-len", "-T", help="Characters per window.")] = default_of(TrainConfig, "seq_len"),
    encoding: Annotated[str, typer.Option(help="Text encoding of the file.")] = "utf-8",
    errors: Annotated[Errors, typer.Option(metavar=_metavar(ENCODING_ERRORS), help="strict, or replace (undecodable bytes become U+FFFD).")] = Errors.strict,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    show: Annotated[bool, typer.Option("--show", help="Also show the text with each character coloured by its surprisal in bits (one stream from the zero state; plain rows when piped).")] = False,
    top: Annotated[int, typer.Option("--top", help="With --show: also list the model's K most likely guesses for each character (implies --show).")] = 0,
    max_chars: Annotated[int, typer.Option("--max-chars", help="With --show: show the first N characters the model knows.")] = 2000,
) -> None:
    """Score a text file with a model: loss in nats/char, bits/char and perplexity.

    `charlstm eval TEXT_FILE` uses the newest checkpoint in ./checkpoints; --checkpoint/-c
    names another (`charlstm eval CHECKPOINT TEXT_FILE` works too).

    The text is cut into --batch-size contiguous streams and read window by window with the
    hidden state carried across windows, exactly as training scores its validation split; every
    character but the first of each stream is predicted and scored. Characters outside the
    model's vocabulary cannot be scored: they are left out (the text around them is scored as if
    they were not there) and counted in the report.

    --show colours the first --max-chars characters by their surprisal, −log2 p of each
    character given the ones before it, read as one stream from the zero state; their mean
    equals this command's bits/char with -B 1 on those characters.
    """
    from charlstm import checkpoint as ckpt_io
    from charlstm import ui
    from charlstm.errors import CharLSTMError

    if old_form is not None:  # `eval CHECKPOINT TEXT_FILE`, as before --checkpoint
        if checkpoint is not None:
            _usage("give the checkpoint once: charlstm eval TEXT_FILE --checkpoint PATH")
        checkpoint, text_file = text_file, old_form
    if batch_size < 1 or seq_len < 1:
        _usage("--batch-size and --seq-len must be at least 1")
    if top < 0 or max_chars < 2:
        _usage("--top must be >= 0 and --max-chars at least 2")
    show = show or top > 0
    if errors not in ("strict", "replace"):
        _usage("--errors must be strict or replace")
    try:
        from charlstm.textio import read_text
        from charlstm.errors import CorpusError
        from charlstm.evaluate import evaluate

        path = checkpoint or ckpt_io.find_latest()
        ckpt = ckpt_io.load(path)
        if checkpoint is None:
            _note(f"scoring with {path}")
        text = read_text(text_file, encoding, errors.value)
        ids, unknown = ckpt.vocab.encode_known(text)
        if len(ids) < 2:
            raise CorpusError(f"{text_file}: fewer than two characters the model knows; nothing to score")
        with ui.ScoringProgress(ui.make_console(), len(ids)) as progress:
            result = evaluate(ckpt.params, ckpt.config, ids, batch_size, seq_len, on_progress=progress)
    except CharLSTMError as exc:
        _fail(exc)
    c = ckpt.config
    report = {
        "checkpoint": str(path),
        "model": _model_name(c),
        "file": str(text_file),
        "chars": len(text),
        "chars_evaluated": result.chars,
        "chars_outside_vocab": unknown,
        "unknown_chars": ckpt.vocab.unknown(text) if unknown else [],
        "loss": result.loss,
        "bits_per_char": result.bits_per_char,
        "perplexity": result.perplexity,
    }
    if show:
        report["surprisal"] = _show_surprisal(ckpt, text, top, max_chars, as_json)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        ui.eval_table(report, ui.make_console(stdout=True))


# ------------------------------------------------------------------------------------------- runs


@app.command()
def runs(
    folder: Annotated[Path, typer.Argument(readable=False, help="Folder of checkpoints. (default: checkpoints)", show_default=False)] = Path("checkpoints"),
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout instead of a table.")] = False,
) -> None:
    """List the runs in a folder, newest first: corpus, model, steps, best validation loss, date, size."""
    from charlstm import checkpoint as ckpt_io
    from charlstm import ui
    from charlstm.errors import CharLSTMError

    try:
        found = ckpt_io.list_runs(folder)
    except CharLSTMError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(found, ensure_ascii=False, indent=2) + "\n")
        return
    ui.runs_table(found, str(folder).rstrip("/"), ui.make_console(stdout=True))


# ---------------------------------------------------------------------------------------- inspect


@app.command()
def inspect(
    path: Annotated[Optional[Path], typer.Argument(readable=False, help="Checkpoint to describe, or a folder to list its runs (as `charlstm runs`). (default: the newest in ./checkpoints)", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout instead of tables.")] = False,
    samples: Annotated[bool, typer.Option("--samples", help="Also show the sample drawn after each epoch, oldest first.")] = False,
) -> None:
    """Describe a checkpoint: config, parameters, vocabulary, training history."""
    from charlstm import checkpoint as ckpt_io
    from charlstm import ui
    from charlstm.errors import CharLSTMError

    if path is not None and path.is_dir():
        return runs(path, as_json)
    try:
        target = path or ckpt_io.find_latest(name_one="give its path: charlstm inspect PATH")
        info = ckpt_io.describe(ckpt_io.load(target))
    except CharLSTMError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(info, ensure_ascii=False, indent=2) + "\n")
        return
    ui.checkpoint_table(info, ui.make_console(stdout=True), show_samples=samples)


# ------------------------------------------------------------------------------------------ views
# neurons, gates, gradients, gradcheck and eval --show (docs/understanding.md). They read a
# checkpoint and a text: the text is the one argument, the checkpoint an option (--checkpoint/-c,
# default: the newest in ./checkpoints), as in `sample`, so `charlstm gates FILE` never has to
# guess which argument is which. (The section's imports are here to keep it self-contained.)

from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

VIEW_MAX_CHARS = 2000
CheckpointOption = Annotated[Optional[Path], typer.Option("--checkpoint", "-c", readable=False, help="Checkpoint to look into (default: the newest in ./checkpoints).", show_default=False)]
TextArgument = Annotated[Path, typer.Argument(readable=False, help="UTF-8 text file to run the model over.", show_default=False)]
MaxCharsOption = Annotated[int, typer.Option("--max-chars", help="Use only the first N characters the model knows (the trace is one stream, step by step).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout instead.")]


def _view_input(checkpoint: Path | None, text_file: Path, max_chars: int) -> tuple[Any, Any]:
    """The checkpoint and the traced part of the text; notes on stderr for what was left out."""
    from charlstm import checkpoint as ckpt_io
    from charlstm.errors import CorpusError
    from charlstm.probe import text_ids
    from charlstm.textio import read_text

    if max_chars < 2:
        _usage("--max-chars must be at least 2")
    path = checkpoint or ckpt_io.find_latest()
    ckpt = ckpt_io.load(path)
    tx = text_ids(ckpt.vocab, read_text(text_file), max_chars)
    if tx.unknown > tx.total:  # most of the text: this model was trained on another kind of text
        which = "the newest checkpoint, " if checkpoint is None else ""
        trained_on = ckpt.train.get("corpus", {}).get("name")
        raise CorpusError(
            f"{text_file}: {tx.unknown:,} of its {tx.unknown + tx.total:,} characters are not in the vocabulary of "
            f"{which}{path}{f' (trained on {trained_on})' if trained_on else ''}; pick a model of this kind of text "
            f"with --checkpoint PATH (charlstm runs lists them)"
        )
    if len(tx.ids) < 2:
        raise CorpusError(f"{text_file}: fewer than two characters the model knows; nothing to show")
    if checkpoint is None:
        _note(f"using {path}")
    if tx.unknown:
        _note(f"left out {tx.unknown:,} characters that are not in the model's vocabulary")
    if tx.total > len(tx.ids):
        _note(f"using the first {len(tx.ids):,} of {tx.total:,} characters (--max-chars)")
    return ckpt, tx


def _emit_json(record: Any) -> None:
    try:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()


@contextmanager
def _report() -> Iterator[Any]:
    """The console a view draws on (stdout, made UTF-8); a reader that goes away (`| head`)
    ends the command quietly."""
    from charlstm import ui_views

    _open_output(None)
    try:
        yield ui_views.make_console()
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()


def _show_surprisal(ckpt: Any, text: str, top: int, max_chars: int, as_json: bool) -> dict[str, Any] | None:
    """eval --show: the surprisal view of the first max_chars characters (or its JSON record)."""
    from charlstm import probe, ui_views

    tx = probe.text_ids(ckpt.vocab, text, max_chars)
    if len(tx.ids) < 2:
        return None
    if tx.total > len(tx.ids):
        _note(f"--show: the first {len(tx.ids):,} of {tx.total:,} characters (--max-chars)")
    s = probe.surprisal(probe.trace(ckpt.params, ckpt.config, tx.ids), top)
    if as_json:
        return ui_views.surprisal_record(tx.text, s, ckpt.vocab.chars)
    with _report() as console:
        ui_views.surprisal_view(console, tx.text, s, ckpt.vocab.chars, top)
    return None


@app.command()
def neurons(
    text_file: TextArgument,
    checkpoint: CheckpointOption = None,
    layer: Annotated[Optional[int], typer.Option("--layer", "-l", help="Layer, from 0 at the bottom (default: the top layer; with --find: every layer).", show_default=False)] = None,
    unit: Annotated[Optional[int], typer.Option("--unit", "-u", help="Unit (cell) of the layer, from 0.", show_default=False)] = None,
    what: Annotated[Optional[str], typer.Option("--what", "-w", help="Quantity: LSTM c, h, i, f, g or o; GRU h, r, z or n; RNN h (default: c for the LSTM, h otherwise).", show_default=False)] = None,
    find: Annotated[Optional[str], typer.Option("--find", help="Rank units by |Pearson r| with a feature of the text: quote (inside \"…\"), bracket (nesting depth of ([{), line (position in the line), indent (leading whitespace), or any other text as a regular expression (inside a match).", show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", "-k", help="With --find: how many units to show.")] = 3,
    max_chars: MaxCharsOption = VIEW_MAX_CHARS,
    as_json: JsonOption = False,
) -> None:
    """Colour a text by one unit's value, or find the units that track a feature of it.

    After Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks".
    `charlstm neurons FILE --unit 17` shows unit 17 of the top layer; `charlstm neurons FILE
    --find bracket` ranks all units by how well they follow the bracket nesting depth. The value
    at a character is the unit's after reading it. Piped, each character is a row with its value.
    """
    from charlstm import probe
    from charlstm.errors import CharLSTMError

    if (unit is None) == (find is None):
        _usage("give --unit N to show a unit, or --find FEATURE to rank units (not both)")
    if top < 1:
        _usage("--top must be at least 1")
    try:
        ckpt, tx = _view_input(checkpoint, text_file, max_chars)
        what = what or probe.quantities(ckpt.config)[0]
        _check_unit_options(ckpt.config, what, layer, unit)
        tr = probe.trace(ckpt.params, ckpt.config, tx.ids)
        if find is not None:
            return _find_units(tr, tx.text, find, what, layer, top, as_json)
    except CharLSTMError as exc:
        _fail(exc)
    assert unit is not None
    _show_unit(tr, ckpt.config, tx.text, what, ckpt.config.num_layers - 1 if layer is None else layer, unit, as_json)


def _model_name(config: Any) -> str:
    """A model in words: '2×256 LSTM'."""
    return f"{config.num_layers}×{config.hidden_size} {config.cell.upper()}"


def _check_unit_options(config: Any, what: str, layer: int | None, unit: int | None) -> None:
    from charlstm.probe import quantities

    if what not in quantities(config):
        _usage(f"--what {what!r}: a {config.cell.upper()} has {', '.join(quantities(config))}")
    if layer is not None and not 0 <= layer < config.num_layers:
        _usage(f"--layer {layer}: the model has layers 0 to {config.num_layers - 1}")
    if unit is not None and not 0 <= unit < config.hidden_size:
        _usage(f"--unit {unit}: the layers have units 0 to {config.hidden_size - 1}")


def _find_units(tr: Any, text: str, find: str, what: str, layer: int | None, top: int, as_json: bool) -> None:
    """neurons --find: rank the units of `what` (in `layer`, or all) by |r| with the feature."""
    from charlstm import probe, ui_views

    layers = list(range(len(tr.layers))) if layer is None else [layer]
    f = probe.feature(text, find)
    scores = probe.rank_units(tr, f, what, layers, top)
    values = [tr.values(s.layer, what)[:, s.unit] for s in scores]
    if as_json:
        return _emit_json(ui_views.find_record(text, find, f, scores, values))
    with _report() as console:
        ui_views.find_view(console, text, find, f, scores, values, what in tr.sigmoid)


def _show_unit(tr: Any, config: Any, text: str, what: str, layer: int, unit: int, as_json: bool) -> None:
    from charlstm import ui_views

    values = tr.values(layer, what)[:, unit]
    if as_json:
        return _emit_json(ui_views.neuron_record(text, layer, unit, what, values))
    title = f"layer {layer} unit {unit} ({what}) of a {_model_name(config)}"
    with _report() as console:
        ui_views.neuron_view(console, text, values, title, what in tr.sigmoid)


@app.command()
def gates(
    text_file: TextArgument,
    checkpoint: CheckpointOption = None,
    max_chars: MaxCharsOption = VIEW_MAX_CHARS,
    as_json: JsonOption = False,
) -> None:
    """How often each gate is shut (< 0.1) or wide open (> 0.9) while the model reads a text.

    Per layer and gate, the fraction of (unit, step) pairs below 0.1 (left-saturated) and above
    0.9 (right-saturated), and a scatter of the units (Karpathy, Johnson & Fei-Fei 2015, fig. 3).

    LSTM gates i, f, o; GRU r, z. A vanilla RNN has no gates: for it, the same counts are made of
    its tanh output h (below −0.9, above 0.9), where the gradient through a unit vanishes.
    """
    from charlstm import probe, ui_views
    from charlstm.errors import CharLSTMError

    try:
        ckpt, tx = _view_input(checkpoint, text_file, max_chars)
        rows = probe.saturation(probe.trace(ckpt.params, ckpt.config, tx.ids), ckpt.config)
    except CharLSTMError as exc:
        _fail(exc)
    if (stand_ins := probe.stand_ins(ckpt.config)) is not None:
        _note(stand_ins)
    if as_json:
        return _emit_json({"cell": ckpt.config.cell, "steps": len(tx.ids), "gates": ui_views.gates_record(rows)})
    with _report() as console:
        ui_views.gates_view(console, rows, len(tx.ids))


@app.command()
def gradients(
    text_file: TextArgument,
    checkpoints: Annotated[Optional[List[Path]], typer.Option("--checkpoint", "-c", readable=False, help="Checkpoint to look into; give it again to draw several models on one scale, e.g. -c lstm.safetensors -c rnn.safetensors (default: the newest in ./checkpoints).", show_default=False)] = None,
    max_lag: Annotated[int, typer.Option("--max-lag", "-K", help="Largest lag k, in steps back. (default: 40)", show_default=False)] = 40,
    positions: Annotated[int, typer.Option("--positions", "-P", help="Steps t to average over, evenly spread over the text. (default: 32)", show_default=False)] = 32,
    max_chars: MaxCharsOption = VIEW_MAX_CHARS,
    as_json: JsonOption = False,
) -> None:
    """How far back the gradient reaches: ‖∂L_t/∂h_(t−k)‖ against k, on a log scale.

    For every layer's h (and the LSTM's cell state c), k = 0..K, averaged over positions t;
    then, for each, the norm at k = K over the one at k = 0 and the steady factor per step back
    that leaves as much. Several --checkpoint options draw their models one after another on
    one shared log scale (with --json: one JSON line per model).

    L_t is the cross-entropy of step t; each norm is exact, from one backward pass from step t
    alone over the steps t−K..t (float64). A vanilla RNN's gradient shrinks geometrically with k;
    the LSTM's cell state carries it much further.
    """
    from charlstm import probe, ui_views
    from charlstm.errors import CharLSTMError

    models = []
    try:
        for checkpoint in checkpoints or [None]:
            ckpt, tx = _view_input(checkpoint, text_file, max_chars)
            flow = probe.gradient_flow(ckpt.params, ckpt.config, tx.ids, max_lag, positions)
            models.append((ckpt, flow))
    except CharLSTMError as exc:
        _fail(exc)
    if as_json:
        for ckpt, flow in models:
            _emit_json({"checkpoint": str(ckpt.path), "cell": ckpt.config.cell, "max_lag": max_lag, **ui_views.gradients_record(flow)})
        return
    with _report() as console:
        ui_views.gradients_view(console, [(f"{ckpt.path}: {_model_name(ckpt.config)}", flow) for ckpt, flow in models])


@app.command()
def gradcheck(
    cell: Annotated[str, typer.Option("--cell", help="lstm, gru, rnn or all.")] = "all",
    random_seed: Annotated[int, typer.Option("--random-seed", help="Seed of the random model and data.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Check the hand-derived gradients live, against central differences.

    model.backward against central differences of the loss, in float64, for every parameter and
    initial state of a small random model (2 layers of 4 units, 5 characters, 6 steps × 2
    streams). Exit code 1 if any tensor disagrees.
    """
    from charlstm import probe, ui_views
    from charlstm.cells import CELLS
    from charlstm.probe.finitediff import EPS

    cells = list(CELLS) if cell == "all" else [cell]
    if any(c not in CELLS for c in cells):
        _usage(f"--cell must be one of {', '.join(CELLS)} or all")
    results = [probe.gradcheck(probe.random_problem(c, random_seed)) for c in cells]
    if as_json:
        _emit_json(ui_views.gradcheck_record(results))
    else:
        with _report() as console:
            ui_views.gradcheck_view(console, results, EPS)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------------- report


@app.command()
def report(
    paths: Annotated[Optional[List[Path]], typer.Argument(readable=False, help="Checkpoints, or folders of them, to report; several runs are overlaid. (default: the newest run in ./checkpoints)", show_default=False)] = None,
    text: Annotated[Optional[Path], typer.Option("--text", readable=False, help="Text file the model views read. (default: each run's own validation text, if its corpus is still where it was)", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", readable=False, help="The HTML file to write. (default: NAME.report.html beside the checkpoint; report.html in the folder for several runs)", show_default=False)] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in the web browser when it is written.")] = False,
    max_chars: Annotated[Optional[int], typer.Option("--max-chars", help=field_help(ReportConfig, "max_chars"), show_default=False)] = None,
    top: Annotated[Optional[int], typer.Option("--top", help=field_help(ReportConfig, "top"), show_default=False)] = None,
    units: Annotated[Optional[int], typer.Option("--units", help=field_help(ReportConfig, "units"), show_default=False)] = None,
    find: Annotated[Optional[str], typer.Option("--find", help=field_help(ReportConfig, "find"), show_default=False)] = None,
    max_lag: Annotated[Optional[int], typer.Option("--max-lag", "-K", help=field_help(ReportConfig, "max_lag"), show_default=False)] = None,
    positions: Annotated[Optional[int], typer.Option("--positions", "-P", help=field_help(ReportConfig, "positions"), show_default=False)] = None,
) -> None:
    """Draw runs and what their models learned as one HTML page, and print its path.

    The page holds the learning curves, every sample drawn during training, the text coloured by
    surprisal (hover for the top guesses), the units that track features of the text, gate
    saturation and gradient flow. It is one file that opens offline in any browser: no server,
    nothing loaded from the network. Files that are not charlstm checkpoints are left out and
    named.
    """
    from charlstm.errors import CharLSTMError

    options = {"max_chars": max_chars, "top": top, "units": units, "find": find, "max_lag": max_lag, "positions": positions}
    try:
        from charlstm.report import write_report

        cfg = ReportConfig(**{k: v for k, v in options.items() if v is not None})
        written = write_report(paths or [], text, out, cfg)
    except CharLSTMError as exc:
        _fail(exc)
    for _, why in written.skipped:
        _note(f"left out: {why}")
    for message in written.notes:
        _note(message)
    typer.echo(str(written.path))
    if open_page:
        import webbrowser

        webbrowser.open(written.path.resolve().as_uri())


def main() -> None:
    """Entry point of the `charlstm` script: the Typer app, with flags shown without a value
    placeholder, and Typer's usage errors (a wrong type, an unknown option) as one line with a
    hint, exit code 2, like the library's."""
    command = typer.main.get_command(app)
    _plain_flags(command)
    _plain_help(command)
    args = sys.argv[1:]
    try:
        code = command.main(args, prog_name="charlstm", standalone_mode=False)
    except typer.Abort:
        code = 1
    except Exception as exc:
        if not isinstance(exc, _USAGE_ERROR) or type(exc).__name__ == "NoArgsIsHelpError":
            if isinstance(exc, _USAGE_ERROR):  # `charlstm` alone: the help
                exc.show()
                sys.exit(exc.exit_code)
            raise
        from charlstm import ui

        ui.error(ui.make_console(), f"{usage_message(exc, args)}; see {_command_path(command, args)} --help")
        code = 2
    sys.exit(code if isinstance(code, int) else 0)


_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")  # click's, wherever Typer keeps it


def _plain_flags(command: Any) -> None:
    """Show on/off options (and -h/--help) in help without a value placeholder such as <bool>."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    get_help_option = command.get_help_option

    def plain_help_option(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = plain_help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)


_MARKUP = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")  # what Rich would read as a style tag, as rich.markup.escape finds it


def _plain_help(command: Any) -> None:
    """One way to show help everywhere: every default as '(default: X)' at the end of its
    option's help, as config.field_help writes them (not Typer's '[default: X]'); brackets in
    help shown as typed ('charlstm[fast]', which Rich would read as a style tag and drop); and
    arguments in usage lines as TEXT_FILE or [PATH] (not Typer's '{text_file}'), a hidden one
    not at all."""
    for param in command.params:
        if param.help:
            param.help = _MARKUP.sub(r"\1\1\\\2", param.help)
        if getattr(param, "show_default", False) is True and not getattr(param, "is_flag", False) and param.default is not None:
            shown = getattr(param.default, "value", param.default)
            param.help = f"{param.help or ''} (default: {shown})".lstrip()
            param.show_default = False
        if param.param_type_name == "argument":
            param.get_usage_pieces = partial(_usage_pieces, param)
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def _usage_pieces(param: Any, ctx: Any) -> list[str]:
    """An argument as a usage line shows it: TEXT_FILE, [PATH], [CORPUS]...; a hidden one not at all."""
    if param.hidden:
        return []
    name = param.name.upper() + ("..." if param.nargs != 1 else "")
    return [name if param.required else f"[{name}]"]


def _command_path(command: Any, args: list[str]) -> str:
    """`charlstm train`: the command the arguments name, for the hint after a usage error."""
    sub = next((a for a in args if not a.startswith("-")), None)
    return f"charlstm {sub}" if sub in getattr(command, "commands", {}) else "charlstm"


def usage_message(exc: Any, args: list[str]) -> str:
    """A usage error as one plain sentence that names the option: `--lr: 'abc' is not a number`."""
    param = getattr(exc, "param", None)
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    if param is not None and getattr(param, "opts", None):
        name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if type(exc).__name__ == "MissingParameter":
            return f"missing {name.upper()}" if getattr(param, "param_type_name", "") == "argument" else f"{name} needs a value"
        value = _given_value(args, param.opts)
        metavar = getattr(param, "metavar", None) or ""
        if metavar.startswith("[") and "|" in metavar:
            return f"{name} must be one of {', '.join(metavar.strip('[]').split('|'))}, not {value!r}"
        lowered = text.lower()
        if "integer" in lowered or "valid int" in lowered:  # click: "integer"; typer 0.28: "valid int"
            return f"{name}: {value!r} is not a whole number"
        if "float" in lowered or "number" in lowered:
            return f"{name}: {value!r} is not a number"
        return f"{name}: {getattr(exc, 'message', text)}"
    option = getattr(exc, "option_name", None)
    if option and "requires an argument" in text:
        return f"{option} needs a value"
    if option and "no such option" in text.lower():
        import difflib

        close = difflib.get_close_matches(option, getattr(exc, "possibilities", None) or [], cutoff=0.75)
        return f"no such option {option}" + (f" (did you mean {' or '.join(sorted(close))}?)" if close else "")
    text = text.replace(". Did you mean", " (did you mean").replace("?", "?)") if ". Did you mean" in text else text
    return text[:1].lower() + text[1:].rstrip(".")


def _given_value(args: list[str], opts: list[str]) -> str:
    """The value given on the command line for an option (the last time it appears)."""
    value = ""
    for i, arg in enumerate(args):
        if arg in opts and i + 1 < len(args):
            value = args[i + 1]
        elif any(arg.startswith(o + "=") for o in opts if o.startswith("--")):
            value = arg.split("=", 1)[1]
    return value


if __name__ == "__main__":
    main()
