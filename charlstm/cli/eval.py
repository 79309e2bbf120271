"""`charlstm eval`: score a text with a model (`inference.score_text`) and show the score as a
table or JSON, with --show the text coloured by surprisal before it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from charlstm.cli.options import choice, given, option
from charlstm.cli.render import note, print_json, report_console
from charlstm.config import ENCODING_ERRORS, EvalConfig, ReadConfig
from charlstm.errors import UsageError

if TYPE_CHECKING:  # an Enum made at run time is no type to mypy; its members are str
    Errors = str
else:
    Errors = choice("Errors", ENCODING_ERRORS)


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def eval_(
    text_file: Annotated[Path, typer.Argument(readable=False, help="Text file to score, all of it.", show_default=False)],
    old_form: Annotated[Path | None, typer.Argument(readable=False, hidden=True, show_default=False)] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", readable=False, help="Checkpoint to score with. (default: the newest in ./checkpoints)", show_default=False)] = None,
    batch_size: Annotated[int | None, option(EvalConfig, "batch_size", "--batch-size", "-B")] = None,
    seq_len: Annotated[int | None, option(EvalConfig, "seq_len", "--seq-len", "-T")] = None,
    encoding: Annotated[str | None, option(ReadConfig, "encoding")] = None,
    errors: Annotated[Errors | None, option(ReadConfig, "errors", choices=ENCODING_ERRORS)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    show: Annotated[bool, option(EvalConfig, "show")] = False,
    top: Annotated[int | None, option(EvalConfig, "top")] = None,
    max_chars: Annotated[int | None, option(EvalConfig, "max_chars")] = None,
    adapt: Annotated[bool, option(EvalConfig, "adapt")] = False,
    adapt_lr: Annotated[float | None, option(EvalConfig, "adapt_lr")] = None,
    adapt_decay: Annotated[float | None, option(EvalConfig, "adapt_decay")] = None,
    adapt_window: Annotated[int | None, option(EvalConfig, "adapt_window")] = None,
) -> None:
# fmt: on
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

    --adapt also scores the text by dynamic evaluation (Krause et al. 2018): one stream, each
    window scored before the model learns from it; shown beside the static loss, not instead.
    """
    from charlstm.cli.ui import console as ui
    from charlstm.cli.ui import tables
    from charlstm.inference.tasks import score_text

    if old_form is not None:  # `eval CHECKPOINT TEXT_FILE`, as before --checkpoint
        if checkpoint is not None:
            raise UsageError("give the checkpoint once: charlstm eval TEXT_FILE --checkpoint PATH")
        checkpoint, text_file = text_file, old_form
    cfg = given(EvalConfig, **{k: v for k, v in locals().items() if k in EvalConfig.__dataclass_fields__})
    read = given(ReadConfig, encoding=encoding, errors=errors)
    progress = tables.ScoringProgress(ui.make_console())
    try:
        score = score_text(cfg, read, text_file, checkpoint, note, on_progress=progress)
    finally:
        progress.close()
    record = _record(score, text_file, cfg)
    if cfg.shows_text:
        record["surprisal"] = _surprisal(score, cfg.top, as_json)
    if as_json:
        print_json(record, indent=2)
    else:
        tables.eval_table(record, ui.make_console(stdout=True))


def _record(score: Any, text_file: Path, cfg: EvalConfig) -> dict[str, Any]:
    """The score as `--json` prints it and the table shows it (with --adapt, the time it took and the
    adaptive score under "adapt"). Of the characters the model knows, the layout leaves some
    unscored: the first (nothing comes before it) and the (N − 1) mod B left over when the text is
    cut into B equal streams (`streams`, B ≤ N − 1)."""
    from charlstm.cli.ui.console import model_name

    adapt = {} if score.adaptive is None else {"seconds": score.seconds, "adapt": _adaptive_record(score, cfg)}
    known, batch_size = len(score.text) - score.unknown, cfg.batch_size
    return {
        "checkpoint": str(score.path),
        "model": model_name(score.ckpt.config),
        "file": str(text_file),
        "chars": len(score.text),
        "chars_evaluated": score.result.chars,
        "chars_outside_vocab": score.unknown,
        "chars_not_scored": known - score.result.chars,
        "streams": max(1, min(batch_size, known - 1)),
        "unknown_chars": score.ckpt.vocab.unknown(score.text) if score.unknown else [],
        "loss": score.result.loss,
        "bits_per_char": score.result.bits_per_char,
        "perplexity": score.result.perplexity,
        **adapt,
    }


def _adaptive_record(score: Any, cfg: EvalConfig) -> dict[str, Any]:
    """eval --adapt: dynamic evaluation's score and how it was made, beside the static one."""
    result = score.adaptive
    return {
        "loss": result.loss,
        "bits_per_char": result.bits_per_char,
        "perplexity": result.perplexity,
        "chars_evaluated": result.chars,
        "seconds": score.adaptive_seconds,
        "lr": cfg.adapt_lr,
        "decay": cfg.adapt_decay,
        "window": cfg.adapt_window,
    }


def _surprisal(score: Any, top: int, as_json: bool) -> dict[str, Any] | None:
    """eval --show: the surprisal view, drawn before the score (or, with --json, its record;
    None where the text had fewer than two characters to show)."""
    from charlstm.cli.ui import shading

    if score.surprisal is None:
        return None
    chars = score.ckpt.vocab.chars
    if as_json:
        return shading.surprisal_record(score.shown.text, score.surprisal, chars)
    with report_console() as console:
        shading.surprisal_view(console, score.shown.text, score.surprisal, chars, top)
    return None
