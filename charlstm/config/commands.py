"""What a command reads or shows, not stored in checkpoints: ReadConfig (how a text is decoded),
DisplayConfig (train's progress and logs), SampleConfig, ViewConfig (neurons, gates, gradients,
gradcheck), EvalConfig and ReportConfig."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from charlstm.config.base import (
    ENCODING_ERRORS,
    KERNEL_NAMES,
    MAX_VOCAB,
    check,
    default_of,
    opt,
    quantities_help,
    quantity_default,
)
from charlstm.config.recipe import TrainConfig
from charlstm.errors import UsageError
from charlstm.nn import cells


@dataclass(frozen=True)
class ReadConfig:
    """How a text file is read: train's corpus, eval's text."""

    # fmt: off
    encoding: str = opt("utf-8", "Text encoding of the text files.")
    errors: str = opt("strict", "What to do with undecodable bytes: strict (stop with an error) or replace (use U+FFFD).")
    max_vocab: int = opt(
        MAX_VOCAB, "Refuse corpora with more distinct characters than this (a binary file read as text has thousands)."
    )
    # fmt: on

    def __post_init__(self) -> None:
        check(
            [
                (self.errors in ENCODING_ERRORS, f"--errors must be {' or '.join(ENCODING_ERRORS)}"),
                (self.max_vocab >= 1, f"--max-vocab must be at least 1, got {self.max_vocab}"),
            ]
        )


@dataclass(frozen=True)
class DisplayConfig:
    """What `charlstm train` shows and logs as it goes."""

    # fmt: off
    quiet: bool = opt(False, "Print only the final summary.", None)
    log_every: int = opt(0, "Steps between plain log lines and --log-json step records.", "{value}, about 10 per epoch")
    # fmt: on

    def __post_init__(self) -> None:
        check([(self.log_every >= 0, "--log-every must be >= 0")])


# dynamic evaluation (`eval --adapt`, `sample --adapt`; charlstm.inference.adapt), shared by both
ADAPT_WINDOW = 50
ADAPT_LR_HELP = (
    "With --adapt: the step of each update, in units of the gradient's RMS so far (0: the model never moves)."
)
ADAPT_DECAY_HELP = "With --adapt: the pull back toward the trained weights per window, in [0, 1] (0: none)."
ADAPT_WINDOW_HELP = "With --adapt: characters per window, each scored and then learned from."


def adapt_checks(lr: float, decay: float, window: int) -> list[tuple[bool, str]]:
    """The checks of the --adapt options (rate, decay, window), for `check`."""
    return [
        (math.isfinite(lr) and lr >= 0, "--adapt-lr must be >= 0"),
        (0 <= decay <= 1, "--adapt-decay must be in [0, 1]"),
        (window >= 1, "--adapt-window must be at least 1"),
    ]


@dataclass(frozen=True)
class SampleConfig:
    """What `charlstm sample` draws, and how."""

    # fmt: off
    seed: str = opt("", "Text to start from; the model continues it.", "empty: start from a zero state primed with a newline")
    seed_file: Path | None = opt(
        None, "Start from the text of this file instead (a long text primes the model's state; it is not echoed).", None
    )
    length: int = opt(500, "Characters to generate (after the seed).")
    temperature: float = opt(1.0, "Divide the logits by this (> 0): below 1 is safer, above 1 wilder.")
    greedy: bool = opt(False, "Always take the most likely character (argmax); ignores temperature, top-k and top-p.", None)
    top_k: int | None = opt(None, "Sample only among the K most likely characters.", "all")
    top_p: float | None = opt(
        None, "Nucleus sampling: only the smallest set of most likely characters with total probability ≥ P, in (0, 1].", "1, all"
    )
    num_samples: int = opt(1, "Independent samples, drawn as one batch; each is printed after a '--- sample i of N ---' line.")
    random_seed: int | None = opt(None, "Seed of the sampler: same seed, same text.", "fresh randomness")
    stop: str | None = opt(None, "End a sample right after this text appears in it (\\n, \\t and \\f are understood).", "none")
    no_seed_echo: bool = opt(False, "Print only the generated characters, not the seed before them.", None)
    drop_unknown: bool = opt(
        False, "Remove seed characters the model does not know (with a warning) instead of stopping.", None
    )
    kernels: str = opt(
        "numpy", "The per-step math: numpy (starts at once), numba (compiled, ~2× faster per character at batch 1, ~0.5 s "
        "more to start; pip install 'charlstm[fast]'), or auto (numba when a run has already compiled it)."
    )
    threads: int | None = opt(None, "Threads of the BLAS and numba kernels, fixed.", "automatic, as in charlstm train")
    adapt: bool = opt(
        False, "Before writing, let the model learn from the seed (dynamic evaluation: windows of --adapt-window "
        "characters, a small gradient step after each), so a long seed in a new style pulls it toward that style.", None,
    )
    adapt_lr: float = opt(0.002, ADAPT_LR_HELP)  # a seed in a new style: larger steps (README, "Adapting to a text")
    adapt_decay: float = opt(0.0, ADAPT_DECAY_HELP)
    adapt_window: int = opt(ADAPT_WINDOW, ADAPT_WINDOW_HELP)
    # fmt: on

    def __post_init__(self) -> None:
        check(
            [
                *adapt_checks(self.adapt_lr, self.adapt_decay, self.adapt_window),
                (self.length >= 0, "--length must be >= 0"),
                (
                    self.greedy or self.temperature > 0,
                    "--temperature must be > 0; use --greedy to always take the most likely character",
                ),
                (self.top_k is None or self.top_k >= 1, "--top-k must be at least 1"),
                (self.top_p is None or 0 < self.top_p <= 1, "--top-p must be in (0, 1]"),
                (self.num_samples >= 1, "--num-samples must be at least 1"),
                (
                    self.kernels in KERNEL_NAMES,
                    f"--kernels must be one of {', '.join(KERNEL_NAMES)}, not {self.kernels!r}",
                ),
                (self.threads is None or self.threads >= 1, "--threads must be at least 1"),
                (self.stop != "", "--stop must not be empty"),
                (self.seed_file is None or not self.seed, "give --seed or --seed-file, not both"),
            ]
        )


@dataclass(frozen=True)
class ViewConfig:
    """What the views read and show: `neurons`, `gates`, `gradients` and `gradcheck`."""

    # fmt: off
    max_chars: int = opt(2000, "Use only the first N characters the model knows (the trace is one stream, step by step).")
    layer: int | None = opt(None, "Layer, from 0 at the bottom.", "the top layer; with --find: every layer")
    unit: int | None = opt(None, "Unit (cell) of the layer, from 0.", None)
    what: str | None = opt(None, quantities_help, quantity_default)
    find: str | None = opt(
        None, "Rank units by |Pearson r| with a feature of the text: quote (inside \"…\"), bracket (nesting depth of "
        "([{), line (position in the line), indent (leading whitespace), or any other text as a regular expression "
        "(inside a match).", None,
    )
    top: int = opt(3, "With --find: how many units to show.")
    max_lag: int = opt(40, "Largest lag k, in steps back.")
    positions: int = opt(32, "Steps t to average over, evenly spread over the text.")
    cell: str = opt("all", lambda: f"The cell whose gradients to check: {', '.join(cells.names())} or all.")
    random_seed: int = opt(0, "Seed of the random model and data.")
    # fmt: on

    def __post_init__(self) -> None:
        check(
            [
                (self.max_chars >= 2, "--max-chars must be at least 2"),
                (self.top >= 1, "--top must be at least 1"),
                (self.max_lag >= 0, "--max-lag must be >= 0"),
                (self.positions >= 1, "--positions must be at least 1"),
                (
                    self.cell in (*cells.names(), "all"),
                    f"--cell must be one of {', '.join(cells.names())} or all, not {self.cell!r}",
                ),
            ]
        )


@dataclass(frozen=True)
class EvalConfig:
    """How `charlstm eval` scores a text (read as ReadConfig says), and what it shows of it."""

    # fmt: off
    batch_size: int = opt(
        default_of(TrainConfig, "batch_size"), "Parallel streams (speed only; state is carried across windows as in training)."
    )
    seq_len: int = opt(default_of(TrainConfig, "seq_len"), "Characters per window.")
    show: bool = opt(
        False, "Also show the text with each character coloured by its surprisal in bits (one stream from the zero "
        "state; plain rows when piped).", None,
    )
    top: int = opt(0, "With --show: also list the model's K most likely guesses for each character (implies --show).")
    max_chars: int = opt(default_of(ViewConfig, "max_chars"), "With --show: show the first N characters the model knows.")
    adapt: bool = opt(
        False, "Also score the text with dynamic evaluation: read as one stream in windows of --adapt-window "
        "characters, each scored before the model takes a small gradient step on it; reported beside the static "
        "loss, never in its place.", None,
    )
    adapt_lr: float = opt(0.0005, ADAPT_LR_HELP)  # held-out text of the kind trained on: small steps
    adapt_decay: float = opt(0.001, ADAPT_DECAY_HELP)
    adapt_window: int = opt(ADAPT_WINDOW, ADAPT_WINDOW_HELP)
    # fmt: on

    def __post_init__(self) -> None:
        check(
            [
                *adapt_checks(self.adapt_lr, self.adapt_decay, self.adapt_window),
                (self.batch_size >= 1 and self.seq_len >= 1, "--batch-size and --seq-len must be at least 1"),
                (self.top >= 0 and self.max_chars >= 2, "--top must be >= 0 and --max-chars at least 2"),
            ]
        )

    @property
    def shows_text(self) -> bool:
        """--show, or --top (which implies it)."""
        return self.show or self.top > 0


@dataclass(frozen=True)
class ReportConfig:
    """What `charlstm report` computes for the views of its page (the training curves and samples
    are read from the checkpoints as they are), with the terminal views' defaults."""

    # fmt: off
    max_chars: int = opt(
        default_of(ViewConfig, "max_chars"),
        "Characters of the text that the model views read (surprisal, neurons, gates, gradients).",
    )
    top: int = opt(5, "Guesses shown for each character of the surprisal view.")
    units: int = opt(default_of(ViewConfig, "top"), "Units shown for each feature in the neurons view, best first.")
    find: str | None = opt(None, "A regular expression: its matches are one more feature for the neurons view.", None)
    max_lag: int = opt(default_of(ViewConfig, "max_lag"), "Largest lag k of the gradient-flow plot, in steps back.")
    positions: int = opt(
        default_of(ViewConfig, "positions"), "Steps t the gradient norms are averaged over, spread over the text."
    )
    views: int = opt(3, "Runs whose model views are drawn: those with the best validation loss (the curves show every run).")
    # fmt: on

    def __post_init__(self) -> None:
        check(
            [
                (self.max_chars >= 2, "--max-chars must be at least 2"),
                (self.top >= 1, "--top must be at least 1"),
                (self.units >= 1, "--units must be at least 1"),
                (self.max_lag >= 0, "--max-lag must be >= 0"),
                (self.positions >= 1, "--positions must be at least 1"),
                (self.views >= 0, "--views must be >= 0"),
                (self.find is None or self.find != "", "--find must not be empty"),
            ]
        )
        if self.find:
            try:
                re.compile(self.find)
            except re.error as e:
                raise UsageError(f"--find {self.find!r} is not a valid regular expression ({e})") from None
