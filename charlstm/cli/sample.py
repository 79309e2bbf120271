"""`charlstm sample`: the options into a SampleConfig, the sampler (`inference.open_sampler`), and
its characters streamed to stdout (or --output) as they come; notes go to stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from charlstm.cli import render
from charlstm.cli.options import given, option
from charlstm.cli.render import note, quiet_broken_pipe
from charlstm.config import SampleConfig


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def sample(
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", readable=False, help="Checkpoint to sample from. (default: the newest in ./checkpoints)", show_default=False)] = None,
    seed: Annotated[str | None, option(SampleConfig, "seed", "--seed", "-s")] = None,
    seed_file: Annotated[Path | None, option(SampleConfig, "seed_file", readable=False)] = None,
    length: Annotated[int | None, option(SampleConfig, "length", "--length", "-n")] = None,
    temperature: Annotated[float | None, option(SampleConfig, "temperature", "--temperature", "-t")] = None,
    greedy: Annotated[bool, option(SampleConfig, "greedy")] = False,
    top_k: Annotated[int | None, option(SampleConfig, "top_k")] = None,
    top_p: Annotated[float | None, option(SampleConfig, "top_p")] = None,
    num_samples: Annotated[int | None, option(SampleConfig, "num_samples", "--num-samples", "-N")] = None,
    random_seed: Annotated[int | None, option(SampleConfig, "random_seed")] = None,
    stop: Annotated[str | None, option(SampleConfig, "stop")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", readable=False, help="Write the text to this file. (default: stdout)", show_default=False)] = None,
    no_seed_echo: Annotated[bool, option(SampleConfig, "no_seed_echo")] = False,
    drop_unknown: Annotated[bool, option(SampleConfig, "drop_unknown")] = False,
    kernels: Annotated[str | None, option(SampleConfig, "kernels")] = None,
    threads: Annotated[int | None, option(SampleConfig, "threads")] = None,
    adapt: Annotated[bool, option(SampleConfig, "adapt")] = False,
    adapt_lr: Annotated[float | None, option(SampleConfig, "adapt_lr")] = None,
    adapt_decay: Annotated[float | None, option(SampleConfig, "adapt_decay")] = None,
    adapt_window: Annotated[int | None, option(SampleConfig, "adapt_window")] = None,
) -> None:
# fmt: on
    """Generate text from a trained model, streamed to stdout as it is made.

    Only the text goes to stdout; which checkpoint was used and any warnings go to stderr.
    """
    options = dict(locals())
    from charlstm.inference.tasks import open_sampler

    checkpoint, output = options.pop("checkpoint"), options.pop("output")
    if stop is not None:
        options["stop"] = stop.replace("\\n", "\n").replace("\\t", "\t").replace("\\f", "\f")
    cfg = given(SampleConfig, **options)
    if output is not None:
        from charlstm.store import write

        write.target(output, "--output")  # a device or a folder is refused before the model is read
    interrupted = False
    try:
        sampler = open_sampler(cfg, checkpoint, note)
        with render.output(output) as out:
            try:
                if cfg.num_samples == 1:
                    _write_one(out, sampler.prefix, sampler.steps)
                else:
                    _write_all(out, sampler.prefix, sampler.steps, cfg.num_samples)
            except KeyboardInterrupt:  # what was drawn so far is kept
                interrupted = True
    except BrokenPipeError:
        quiet_broken_pipe()
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if interrupted:
        raise typer.Exit(130)
    if output is not None:
        note(f"wrote {output}")


def _write_one(out: TextIO, prefix: str, steps: Any) -> None:
    """One sample, each character written as it comes."""
    out.write(prefix)
    out.flush()
    last = prefix[-1:]
    for (ch,) in steps:
        out.write(ch)
        out.flush()
        last = ch or last
    out.write(_end_line(last))
    out.flush()


def _write_all(out: TextIO, prefix: str, steps: Any, n: int) -> None:
    """n samples drawn as one batch, each written whole after a '--- sample i of n ---' line."""
    texts = [[prefix] for _ in range(n)]
    for chars in steps:
        for text, ch in zip(texts, chars):
            text.append(ch)
    for i, text in enumerate(texts, 1):
        body = "".join(text)
        out.write(f"--- sample {i} of {n} ---\n{body}{_end_line(body[-1:])}")
    out.flush()


def _end_line(last: str) -> str:
    """The newline that ends a sample's output, unless its last character was one (--stop '\\n')."""
    return "" if last == "\n" else "\n"
