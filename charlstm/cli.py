"""The command line: `charlstm train | sample | inspect | eval`.

A thin layer: it declares and checks options, calls the library, renders its events through `ui`,
and turns the library's errors into one red line on stderr and an exit code (1: failed, 2: bad
usage, 130: interrupted). Library modules are imported inside the commands so `--help` is fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from charlstm.config import MAX_VOCAB, ModelConfig, TrainConfig, default_of, field_help

app = typer.Typer(
    name="charlstm",
    help="Train a character-level LSTM on any UTF-8 text, then sample from it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

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
    corpus: Annotated[Optional[Path], typer.Argument(readable=False, help="UTF-8 text file to learn from (optional with --resume).", show_default=False)] = None,
    hidden_size: Annotated[Optional[int], typer.Option("--hidden-size", "-H", help=field_help(ModelConfig, "hidden_size"), rich_help_panel=MODEL, show_default=False)] = None,
    layers: Annotated[Optional[int], typer.Option("--layers", "-L", help=field_help(ModelConfig, "num_layers"), rich_help_panel=MODEL, show_default=False)] = None,
    cell: Annotated[Optional[str], typer.Option("--cell", help=field_help(ModelConfig, "cell"), rich_help_panel=MODEL, show_default=False)] = None,
    dropout: Annotated[Optional[float], typer.Option(help=field_help(TrainConfig, "dropout"), rich_help_panel=MODEL, show_default=False)] = None,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", "-T", help=field_help(TrainConfig, "seq_len"), rich_help_panel=OPTIM, show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-B", help=field_help(TrainConfig, "batch_size"), rich_help_panel=OPTIM, show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(help=field_help(TrainConfig, "lr"), rich_help_panel=OPTIM, show_default=False)] = None,
    optimizer: Annotated[Optional[str], typer.Option(help=field_help(TrainConfig, "optimizer"), rich_help_panel=OPTIM, show_default=False)] = None,
    schedule: Annotated[Optional[str], typer.Option(help=field_help(TrainConfig, "schedule"), rich_help_panel=OPTIM, show_default=False)] = None,
    warmup_steps: Annotated[Optional[int], typer.Option("--warmup-steps", help=field_help(TrainConfig, "warmup_steps"), rich_help_panel=OPTIM, show_default=False)] = None,
    min_lr_ratio: Annotated[Optional[float], typer.Option("--min-lr-ratio", help=field_help(TrainConfig, "min_lr_ratio"), rich_help_panel=OPTIM, show_default=False)] = None,
    clip: Annotated[Optional[float], typer.Option(help=field_help(TrainConfig, "clip"), rich_help_panel=OPTIM, show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", help=field_help(TrainConfig, "epochs"), rich_help_panel=RUN, show_default=False)] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help=field_help(TrainConfig, "max_steps"), rich_help_panel=RUN, show_default=False)] = None,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help=field_help(TrainConfig, "max_minutes"), rich_help_panel=RUN, show_default=False)] = None,
    random_seed: Annotated[Optional[int], typer.Option("--random-seed", help=field_help(TrainConfig, "seed"), rich_help_panel=RUN, show_default=False)] = None,
    kernels: Annotated[Optional[str], typer.Option("--kernels", help=field_help(TrainConfig, "kernels"), rich_help_panel=RUN, show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(readable=False, help="Continue a run exactly from its checkpoint (the .safetensors or .resume.safetensors file).", rich_help_panel=RUN, show_default=False)] = None,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", readable=False, help="Start a new run from a checkpoint's weights and vocabulary (fine-tuning).", rich_help_panel=RUN, show_default=False)] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over even if a checkpoint for this corpus exists (it will be overwritten).", rich_help_panel=RUN)] = False,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help=field_help(TrainConfig, "val_fraction"), rich_help_panel=DATA, show_default=False)] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the corpus.", rich_help_panel=DATA)] = "utf-8",
    max_vocab: Annotated[int, typer.Option("--max-vocab", help="Refuse corpora with more distinct characters than this (a binary file read as text has thousands).", rich_help_panel=DATA)] = MAX_VOCAB,
    errors: Annotated[str, typer.Option(help="What to do with undecodable bytes: strict (stop with an error) or replace (use U+FFFD).", rich_help_panel=DATA)] = "strict",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", readable=False, help="Model checkpoint to write (best by validation); the resumable state goes beside it as NAME.resume.safetensors. (default: checkpoints/CORPUS.safetensors)", rich_help_panel=OUTPUT, show_default=False)] = None,
    keep: Annotated[Optional[int], typer.Option(help=field_help(TrainConfig, "keep"), rich_help_panel=OUTPUT, show_default=False)] = None,
    save_minutes: Annotated[Optional[float], typer.Option("--save-minutes", help=field_help(TrainConfig, "save_minutes"), rich_help_panel=OUTPUT, show_default=False)] = None,
    sample_every: Annotated[Optional[int], typer.Option("--sample-every", help=field_help(TrainConfig, "sample_every"), rich_help_panel=OUTPUT, show_default=False)] = None,
    sample_length: Annotated[Optional[int], typer.Option("--sample-length", help=field_help(TrainConfig, "sample_length"), rich_help_panel=OUTPUT, show_default=False)] = None,
    sample_seed: Annotated[Optional[str], typer.Option("--sample-seed", help=field_help(TrainConfig, "sample_seed"), rich_help_panel=OUTPUT, show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary.", rich_help_panel=OUTPUT)] = False,
    log_every: Annotated[int, typer.Option("--log-every", help="Steps between plain log lines and --log-json step records (0: about 10 per epoch).", rich_help_panel=OUTPUT)] = 0,
    log_json: Annotated[Optional[Path], typer.Option("--log-json", readable=False, help="Append one JSON object per step report and per epoch to this file.", rich_help_panel=OUTPUT, show_default=False)] = None,
) -> None:
    """Train a model on a text file, showing progress and a sample after every epoch.

    Checkpoints go to checkpoints/CORPUS.safetensors (best by validation loss) and
    checkpoints/CORPUS.resume.safetensors (latest full state). If a run for the corpus exists,
    pass --resume PATH to continue it or --fresh to start over. Ctrl-C stops after the current
    step with a checkpoint (exit code 130).
    """
    from charlstm import train as tr
    from charlstm import ui
    from charlstm.errors import CharLSTMError
    from charlstm.plan import plan_run

    if log_every < 0:
        _usage("--log-every must be >= 0")
    model_options = {"hidden_size": hidden_size, "num_layers": layers, "cell": cell}
    train_options = {
        "seq_len": seq_len, "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "clip": clip,
        "epochs": epochs, "max_steps": max_steps, "val_fraction": val_fraction, "seed": random_seed,
        "dropout": dropout, "schedule": schedule, "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio,
        "max_minutes": max_minutes, "sample_every": sample_every, "sample_length": sample_length,
        "sample_seed": sample_seed, "keep": keep, "save_minutes": save_minutes, "kernels": kernels,
    }
    console = ui.make_console()
    view: Any = None
    log: Any = None
    progress = ui.EncodingProgress(console)
    try:
        plan = plan_run(
            corpus, model_options, train_options, resume=resume, init_from=init_from, fresh=fresh, out=out,
            encoding=encoding, errors=errors, max_vocab=max_vocab, on_progress=progress,
        )
        progress.close()
        view = ui.TrainView(console, quiet=quiet, log_every=log_every)
        log = _JsonLog(log_json, log_every) if log_json else None

        def on_event(event: Any) -> None:
            if isinstance(event, tr.Started):
                for message in plan.notes:
                    ui.note(console, message)
            view(event)
            if log is not None:
                log(event)

        stop = _StopFlag(console)
        with stop:
            finished = tr.train_plan(plan, on_event, stop.requested)
    except CharLSTMError as exc:
        progress.close()
        if view is not None:
            view.close()
        _fail(exc)
    except KeyboardInterrupt:
        if view is not None:
            view.close()
        ui.error(console, "aborted; the last checkpoint written is intact")
        raise typer.Exit(130)
    finally:
        if log is not None:
            log.close()
    if finished.reason == "interrupted":
        ui.warn(console, f"interrupted at step {finished.step}; continue with: charlstm train --resume {plan.resume_path}")
        raise typer.Exit(130)


class _StopFlag:
    """First Ctrl-C: ask the loop to stop after the current step. Second: abort at once."""

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

        ui.stopping_message(self.console)

    def __enter__(self) -> _StopFlag:
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self.previous)


class _JsonLog:
    """--log-json: one JSON object per line, per step report and per epoch."""

    def __init__(self, path: Path, every: int) -> None:
        try:
            self.file = open(path, "a", encoding="utf-8")
        except OSError as e:
            from charlstm.errors import UsageError

            raise UsageError(f"cannot open --log-json file {path}: {e.strerror or e}") from None
        self.every = every
        self.val_loss: float | None = None

    def __call__(self, event: Any) -> None:
        from charlstm import events as tr

        record: dict[str, Any] | None = None
        if isinstance(event, tr.Started) and self.every <= 0:
            self.every = max(1, event.steps_per_epoch // 10)
        elif isinstance(event, tr.Step) and event.step % max(1, self.every) == 0:
            record = {
                "type": "step", "step": event.step, "epoch": round(event.epoch, 4), "loss": event.loss,
                "smoothed_loss": event.smoothed_loss, "val_loss": self.val_loss,
                "bpc": event.smoothed_loss / 0.6931471805599453, "chars_per_s": round(event.chars_per_s, 1),
                "lr": event.lr, "time": round(event.elapsed, 3), "sample": None,
            }
        elif isinstance(event, tr.EpochEnd):
            self.val_loss = event.val_loss
            record = {
                "type": "epoch", "step": event.step, "epoch": event.epoch, "loss": event.train_loss,
                "val_loss": event.val_loss, "bpc": event.val_bpc, "best": event.best,
                "chars_per_s": None, "lr": None, "time": round(event.elapsed, 3), "sample": event.sample,
            }
        if record is not None:
            self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.file.flush()

    def close(self) -> None:
        self.file.close()


# ----------------------------------------------------------------------------------------- sample


@app.command()
def sample(
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", readable=False, help="Checkpoint to sample from. (default: the newest in ./checkpoints)", show_default=False)] = None,
    seed: Annotated[str, typer.Option("--seed", "-s", help="Text to start from; the model continues it. Empty: start from a zero state primed with a newline.")] = "",
    length: Annotated[int, typer.Option("--length", "-n", help="Characters to generate (after the seed).")] = 500,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="Divide the logits by this (> 0): below 1 is safer, above 1 wilder.")] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Always take the most likely character (argmax); ignores temperature, top-k and top-p.")] = False,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Sample only among the K most likely characters.", show_default=False)] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling: only the smallest set of most likely characters with total probability ≥ P, in (0, 1].", show_default=False)] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-N", help="Independent samples, drawn as one batch; each is printed after a '--- sample i of N ---' line.")] = 1,
    random_seed: Annotated[Optional[int], typer.Option("--random-seed", help="Seed of the sampler: same seed, same text. (default: fresh randomness)", show_default=False)] = None,
    stop: Annotated[Optional[str], typer.Option("--stop", help="End a sample right after this text appears in it (\\n and \\t are understood).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", readable=False, help="Write the text to this file instead of stdout.", show_default=False)] = None,
    no_seed_echo: Annotated[bool, typer.Option("--no-seed-echo", help="Print only the generated characters, not the seed before them.")] = False,
    drop_unknown: Annotated[bool, typer.Option("--drop-unknown", help="Remove seed characters the model does not know (with a warning) instead of stopping.")] = False,
    kernels: Annotated[str, typer.Option("--kernels", help="The per-step math: numpy (starts at once), numba (compiled, ~2× faster per character at batch 1, ~0.5 s more to start; pip install 'charlstm[fast]'), or auto (numba when a run has already compiled it).")] = "numpy",
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
    if stop is not None:
        stop = stop.replace("\\n", "\n").replace("\\t", "\t")
        if not stop:
            _usage("--stop must not be empty")
    out: Any = None
    try:
        import numpy as np

        from charlstm import kernels as kernels_
        from charlstm.corpus import describe_chars
        from charlstm.generate import Sampling, stream_text

        path = checkpoint or ckpt_io.find_latest()
        ckpt = ckpt_io.load(path)
        missing = ckpt.vocab.unknown(seed)
        if missing and not drop_unknown:
            _usage(
                f"--seed has characters not in the model's vocabulary: {describe_chars(missing)} "
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
        if num_samples == 1:
            out.write(prefix)
            out.flush()
            for (ch,) in steps:
                out.write(ch)
                out.flush()
            out.write("\n")
        else:
            texts = [[prefix] for _ in range(num_samples)]
            for chars in steps:
                for text, ch in zip(texts, chars):
                    text.append(ch)
            for i, text in enumerate(texts, 1):
                out.write(f"--- sample {i} of {num_samples} ---\n{''.join(text)}\n")
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
    checkpoint: Annotated[Path, typer.Argument(readable=False, help="Checkpoint to evaluate.", show_default=False)],
    text_file: Annotated[Path, typer.Argument(readable=False, help="Text file to score, all of it.", show_default=False)],
    batch_size: Annotated[int, typer.Option("--batch-size", "-B", help="Parallel streams (speed only; state is carried across windows as in training).")] = default_of(TrainConfig, "batch_size"),
    seq_len: Annotated[int, typer.Option("--seq-len", "-T", help="Characters per window.")] = default_of(TrainConfig, "seq_len"),
    encoding: Annotated[str, typer.Option(help="Text encoding of the file.")] = "utf-8",
    errors: Annotated[str, typer.Option(help="strict or replace (undecodable bytes become U+FFFD).")] = "strict",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    show: Annotated[bool, typer.Option("--show", help="Also show the text with each character coloured by its surprisal in bits (one stream from the zero state; plain rows when piped).")] = False,
    top: Annotated[int, typer.Option("--top", help="With --show: also list the model's K most likely guesses for each character (implies --show).")] = 0,
    max_chars: Annotated[int, typer.Option("--max-chars", help="With --show: show the first N characters the model knows.")] = 2000,
) -> None:
    """Score a text file with a model: loss in nats/char, bits/char and perplexity.

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

        ckpt = ckpt_io.load(checkpoint)
        text = read_text(text_file, encoding, errors)
        ids, unknown = ckpt.vocab.encode_known(text)
        if len(ids) < 2:
            raise CorpusError(f"{text_file}: fewer than two characters the model knows; nothing to score")
        result = evaluate(ckpt.params, ckpt.config, ids, batch_size, seq_len)
    except CharLSTMError as exc:
        _fail(exc)
    report = {
        "checkpoint": str(checkpoint),
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


# ---------------------------------------------------------------------------------------- inspect


@app.command()
def inspect(
    path: Annotated[Optional[Path], typer.Argument(readable=False, help="Checkpoint to describe. (default: the newest in ./checkpoints)", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout instead of tables.")] = False,
    samples: Annotated[bool, typer.Option("--samples", help="Also show the sample drawn after each epoch, oldest first.")] = False,
) -> None:
    """Describe a checkpoint: config, parameters, vocabulary, training history."""
    from charlstm import checkpoint as ckpt_io
    from charlstm import ui
    from charlstm.errors import CharLSTMError

    try:
        target = path or ckpt_io.find_latest()
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
        what = what or probe.QUANTITIES[ckpt.config.cell][0]
        _check_unit_options(ckpt.config, what, layer, unit)
        tr = probe.trace(ckpt.params, ckpt.config, tx.ids)
        if find is not None:
            return _find_units(tr, tx.text, find, what, layer, top, as_json)
    except CharLSTMError as exc:
        _fail(exc)
    assert unit is not None
    _show_unit(tr, ckpt.config, tx.text, what, ckpt.config.num_layers - 1 if layer is None else layer, unit, as_json)


def _check_unit_options(config: Any, what: str, layer: int | None, unit: int | None) -> None:
    from charlstm.probe import QUANTITIES

    if what not in QUANTITIES[config.cell]:
        _usage(f"--what {what!r}: a {config.cell.upper()} has {', '.join(QUANTITIES[config.cell])}")
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
        ui_views.find_view(console, text, find, f, scores, values, what in probe.SIGMOID)


def _show_unit(tr: Any, config: Any, text: str, what: str, layer: int, unit: int, as_json: bool) -> None:
    from charlstm import probe, ui_views

    values = tr.values(layer, what)[:, unit]
    if as_json:
        return _emit_json(ui_views.neuron_record(text, layer, unit, what, values))
    title = f"layer {layer} unit {unit} ({what}) of a {config.num_layers}×{config.hidden_size} {config.cell.upper()}"
    with _report() as console:
        ui_views.neuron_view(console, text, values, title, what in probe.SIGMOID)


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
    if ckpt.config.cell == "rnn":
        _note("a vanilla RNN has no gates; shown instead: how often its tanh output h is below −0.9 or above 0.9")
    if as_json:
        return _emit_json({"cell": ckpt.config.cell, "steps": len(tx.ids), "gates": ui_views.gates_record(rows)})
    with _report() as console:
        ui_views.gates_view(console, rows, len(tx.ids))


@app.command()
def gradients(
    text_file: TextArgument,
    checkpoint: CheckpointOption = None,
    max_lag: Annotated[int, typer.Option("--max-lag", "-K", help="Largest lag k, in steps back.")] = 40,
    positions: Annotated[int, typer.Option("--positions", "-P", help="Steps t to average over, evenly spread over the text.")] = 32,
    max_chars: MaxCharsOption = VIEW_MAX_CHARS,
    as_json: JsonOption = False,
) -> None:
    """How far back the gradient reaches: ‖∂L_t/∂h_(t−k)‖ against k, on a log scale.

    For every layer's h (and the LSTM's cell state c), k = 0..K, averaged over positions t.

    L_t is the cross-entropy of step t; each norm is exact, from one backward pass from step t
    alone over the steps t−K..t (float64). A vanilla RNN's gradient shrinks geometrically with k;
    the LSTM's cell state carries it much further.
    """
    from charlstm import probe, ui_views
    from charlstm.errors import CharLSTMError

    try:
        ckpt, tx = _view_input(checkpoint, text_file, max_chars)
        flow = probe.gradient_flow(ckpt.params, ckpt.config, tx.ids, max_lag, positions)
    except CharLSTMError as exc:
        _fail(exc)
    if as_json:
        return _emit_json({"cell": ckpt.config.cell, "max_lag": max_lag, **ui_views.gradients_record(flow)})
    with _report() as console:
        ui_views.gradients_view(console, flow, ckpt.config.cell)


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


def main() -> None:
    """Entry point of the `charlstm` script."""
    app()


if __name__ == "__main__":
    main()
