"""Every default, once: frozen, validated dataclasses whose fields carry their help text.

ModelConfig and TrainConfig (what a model is and how it is trained) are stored in every
checkpoint. The others hold what a command reads or shows and are not stored: ReadConfig (how a
text is decoded), DisplayConfig (train's progress and logs), SampleConfig, EvalConfig, ViewConfig
(neurons, gates, gradients, gradcheck) and ReportConfig. The command line builds each option's
help from these fields (`field_help`) and passes on only the options given, so a default is
written once. Invalid values raise UsageError, naming the option, when a config is made. No
numpy here: the CLI imports this module to draw `--help`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from charlstm.engines import registry as engines
from charlstm.errors import UsageError
from charlstm.nn import cells

OPTIMIZER_NAMES = ("adam", "rmsprop", "sgd")  # the keys of optim.OPTIMIZERS
SCHEDULES = ("constant", "cosine", "linear")
KERNEL_NAMES = ("auto", "numpy", "numba")  # charlstm.nn.kernels.CHOICES
DROPOUT_MASKS = ("step", "window")  # charlstm.nn.model.Dropout
PRECISIONS = ("fp32", "bf16")
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:\d+)?"  # what --device accepts
ENCODING_ERRORS = ("strict", "replace")  # what --errors may do with undecodable bytes
AUTO_MIN_STEPS = 100  # an automatic batch size keeps at least this many windows per epoch
MAX_VOCAB = 10_000  # more distinct characters than this: most likely a binary file
FLAGS = {"num_layers": "--layers", "seed": "--random-seed"}  # where the option is not the field's name
LIMITS = ("epochs", "max_steps", "max_minutes")  # the fields that end a run; see TrainConfig.step_limit


def __getattr__(name: str) -> Any:
    """CELL_NAMES and ENGINE_NAMES: the registered cells' and engines' names (`cells.names()`,
    `engines.names()`), read when asked, so that one registered after this module was imported
    is among them."""
    if name == "CELL_NAMES":
        return cells.names()
    if name == "ENGINE_NAMES":
        return engines.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def flag(name: str) -> str:
    """The command-line option that sets the config field `name`, e.g. `--hidden-size`."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _opt(default: Any, text: str | Callable[[], str], shown: str | Callable[[], str] | None = "{value}") -> Any:
    """A field with its help text. `shown` is how its default reads in help, `{value}` standing
    for the value; a None default shows only when `shown` says in words what it means. Either
    may be a function, called when the help is drawn: text made of the registries (cells,
    engines), so that one registered after this module was imported is in it."""
    return field(default=default, metadata={"help": text, "shown": shown})


def or_list(words: Sequence[str]) -> str:
    """'a, b or c'."""
    return f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else "".join(words)


def _cells_help() -> str:
    return f"Recurrent cell: {or_list(cells.names())}."


def _engines_help() -> str:
    each = [f"{k.name} ({k.about})" for k in engines.kinds()]
    return f"What computes the steps: {or_list(each)}. A run resumes on any."


def _quantities_help() -> str:
    """What each cell records per unit, from its declaration (`cells.declared`)."""
    each = "; ".join(f"{name.upper()} {or_list(cells.declared(name).quantities)}" for name in cells.names())
    return f"Quantity: {each}."


def _quantity_default() -> str:
    """Each cell's default quantity (its first): 'c for the LSTM, h otherwise'."""
    first = {name: cells.declared(name).quantities[0] for name in cells.names()}
    usual = max(set(first.values()), key=list(first.values()).count)
    others = [f"{q} for the {name.upper()}" for name, q in first.items() if q != usual]
    return ", ".join([*others, f"{usual} otherwise" if others else usual])


def default_of(cls: type, name: str) -> Any:
    """The default value of field `name` of a config class."""
    f = {f.name: f for f in fields(cls)}[name]
    if f.default is MISSING:
        raise KeyError(f"{cls.__name__}.{name} has no default")
    return f.default


def check(checks: list[tuple[bool, str]]) -> None:
    """Raise UsageError with the message of the first check that fails."""
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a model; stored in every checkpoint."""

    # fmt: off
    vocab_size: int
    hidden_size: int = _opt(256, "Hidden units per layer.")
    num_layers: int = _opt(2, "Stacked recurrent layers.")
    cell: str = _opt("lstm", _cells_help)
    # fmt: on

    def __post_init__(self) -> None:
        if self.cell not in cells.names():
            raise UsageError(f"unknown cell {self.cell!r}; choose one of {', '.join(cells.names())}")
        for name in ("vocab_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            what = name if name == "vocab_size" else flag(name)  # the others are options
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"{what} must be a whole number, got {value!r}")
            if value < 1:
                raise UsageError(f"{what} must be at least 1, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**{k: d[k] for k in ("vocab_size", "hidden_size", "num_layers", "cell") if k in d})


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Stored in checkpoints; `--resume` restores it, with lr/epochs/... overridable.
    Invalid values raise UsageError when the config is made."""

    # fmt: off
    seq_len: int = _opt(100, "Characters per window of truncated backpropagation through time.")
    batch_size: int = _opt(
        64, "Parallel streams per step.", f"{{value}}, fewer for small corpora so an epoch has ≥ {AUTO_MIN_STEPS} steps"
    )
    lr: float = _opt(4e-3, "Peak learning rate.")
    optimizer: str = _opt("adam", "adam, rmsprop or sgd (momentum 0.9).")
    adam_beta1: float = _opt(0.9, "Adam's decay of the mean of the gradients (β₁), in [0, 1).")
    adam_beta2: float = _opt(0.999, "Adam's decay of the mean of their squares (β₂), in [0, 1).")
    clip: float = _opt(5.0, "Clip the global gradient norm to this (0: off).")
    epochs: int | None = _opt(
        10, "Passes over the training split, counting earlier runs when resuming.",
        "{value}; no limit when only --max-minutes is given",
    )
    max_steps: int | None = _opt(
        None, "Stop after this many steps in all (default: no limit; earlier runs' steps count when resuming).", None
    )
    val_fraction: float = _opt(0.05, "Fraction of the text, at its end, held out for validation, in (0, 0.5].")
    seed: int = _opt(0, "Seed of initialisation, dropout and samples: same seed, same run.")
    dropout: float = _opt(0.2, "Dropout on each layer's output while training, in [0, 1); 0 turns it off.")
    dropout_mask: str = _opt(
        "step", "Where --dropout draws its masks: step (anew at every character) or window (one per stream and "
        "window: locked dropout, as in AWD-LSTM)."
    )
    weight_drop: float = _opt(
        0.0, "DropConnect on the recurrent weights (weight_hh) while training, a mask per window, in [0, 1); "
        "checkpoints hold the plain weights."
    )
    ema: float = _opt(
        0.995, "Validate, sample and save a moving average of the weights, of this decay per step, in [0, 1) "
        "(0.995: ~the last 200 steps count most); 0: off, the trained weights themselves."
    )
    schedule: str = _opt(
        "cosine", "Learning-rate schedule over the run: cosine, linear or constant (decay ends at --min-lr-ratio × lr)."
    )
    warmup_steps: int = _opt(0, "Steps of linear learning-rate warm-up.")
    min_lr_ratio: float = _opt(0.1, "Final learning rate as a fraction of --lr.")
    max_minutes: float | None = _opt(
        None,
        "Train for this many minutes of this run: the learning rate reaches its floor, and the "
        "last validation and checkpoint are written, within them.",
        "no limit; a resume does not keep it",
    )
    sample_every: int | None = _opt(None, "Also show a sample every N steps (one is always shown per epoch).", "none")
    sample_length: int = _opt(200, "Characters per progress sample (0: none).")
    sample_seed: str | None = _opt(None, "Text that starts each progress sample.", "the corpus's first word")
    sample_temperature: float = _opt(0.8, "Temperature of the progress samples.")
    keep: int = _opt(0, "Also keep the newest N per-epoch snapshots (0: only best and resume files).")
    save_minutes: float = _opt(5.0, "Also write the resume file every this many minutes within an epoch.")
    kernels: str = _opt(
        "auto", "The per-step math: numba (fused, compiled; pip install 'charlstm[fast]'), numpy, or auto (numba when installed)."
    )
    engine: str = _opt("numpy", _engines_help)
    device: str = _opt("auto", "The torch engine's device: auto (a CUDA GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps.")
    precision: str = _opt("fp32", "The torch engine's arithmetic: fp32, or bf16 (CUDA GPUs of compute capability 8.0 on; refused on MPS and the CPU): the output layer in bfloat16 while training, the recurrent layers, validation and weights float32.")
    threads: int | None = _opt(
        None,
        "Threads of the BLAS and numba kernels, fixed for the run.",
        "automatic: the cores other processes leave free, where steps run faster on them; "
        "OPENBLAS_NUM_THREADS, MKL_NUM_THREADS or OMP_NUM_THREADS fix it too",
    )
    # fmt: on

    def __post_init__(self) -> None:
        self.validate()

    def step_limit(self, steps_per_epoch: int) -> int | None:
        """The last step the run may reach by --epochs and --max-steps (None: no step limit)."""
        limits = [n for n in (self.max_steps, self.epochs and self.epochs * steps_per_epoch) if n is not None]
        return min(limits) if limits else None

    def validate(self) -> None:
        """Raise UsageError for values no run can use."""
        checks = [
            (self.seq_len >= 1, "--seq-len must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number"),
            (self.kernels in KERNEL_NAMES, f"--kernels must be one of {', '.join(KERNEL_NAMES)}, not {self.kernels!r}"),
            (
                self.engine in engines.names(),
                f"--engine must be one of {', '.join(engines.names())}, not {self.engine!r}",
            ),
            (
                re.fullmatch(DEVICE_PATTERN, self.device) is not None,
                f"--device must be auto, cpu, cuda, cuda:N (N a number) or mps, not {self.device!r}",
            ),
            (
                self.precision in PRECISIONS,
                f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}",
            ),
            (
                self.optimizer in OPTIMIZER_NAMES,
                f"--optimizer must be one of {', '.join(OPTIMIZER_NAMES)}, not {self.optimizer!r}",
            ),
            (self.clip >= 0, "--clip must be >= 0 (0 disables clipping)"),
            (self.epochs is None or self.epochs >= 1, "--epochs must be at least 1"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be at least 1"),
            (0 < self.val_fraction <= 0.5, "--val-fraction must be in (0, 0.5]"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (
                self.dropout_mask in DROPOUT_MASKS,
                f"--dropout-mask must be one of {', '.join(DROPOUT_MASKS)}, not {self.dropout_mask!r}",
            ),
            (0 <= self.weight_drop < 1, "--weight-drop must be in [0, 1)"),
            (0 <= self.ema < 1, "--ema must be in [0, 1) (0 turns it off)"),
            (0 <= self.adam_beta1 < 1, "--adam-beta1 must be in [0, 1)"),
            (0 <= self.adam_beta2 < 1, "--adam-beta2 must be in [0, 1)"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}"),
            (self.warmup_steps >= 0, "--warmup-steps must be >= 0"),
            (0 <= self.min_lr_ratio <= 1, "--min-lr-ratio must be in [0, 1]"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be positive"),
            (self.sample_every is None or self.sample_every >= 1, "--sample-every must be at least 1"),
            (self.sample_length >= 0, "--sample-length must be >= 0"),
            (self.sample_temperature > 0, "--sample-temperature must be positive"),
            (self.keep >= 0, "--keep must be >= 0"),
            (self.save_minutes > 0, "--save-minutes must be positive"),
            (self.threads is None or self.threads >= 1, "--threads must be at least 1"),
        ]
        check(checks)
        betas = [flag(f) for f in ("adam_beta1", "adam_beta2") if getattr(self, f) != default_of(TrainConfig, f)]
        if betas and self.optimizer != "adam":
            raise UsageError(
                f"{' and '.join(betas)} set Adam's decays; add --optimizer adam, or drop {'them' if len(betas) > 1 else 'it'}"
            )
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            raise UsageError("a run needs an end: give --epochs, --max-steps or --max-minutes")


@dataclass(frozen=True)
class ReadConfig:
    """How a text file is read: train's corpus, eval's text."""

    # fmt: off
    encoding: str = _opt("utf-8", "Text encoding of the text files.")
    errors: str = _opt("strict", "What to do with undecodable bytes: strict (stop with an error) or replace (use U+FFFD).")
    max_vocab: int = _opt(
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
    quiet: bool = _opt(False, "Print only the final summary.", None)
    log_every: int = _opt(0, "Steps between plain log lines and --log-json step records.", "{value}, about 10 per epoch")
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
    seed: str = _opt("", "Text to start from; the model continues it.", "empty: start from a zero state primed with a newline")
    seed_file: Path | None = _opt(
        None, "Start from the text of this file instead (a long text primes the model's state; it is not echoed).", None
    )
    length: int = _opt(500, "Characters to generate (after the seed).")
    temperature: float = _opt(1.0, "Divide the logits by this (> 0): below 1 is safer, above 1 wilder.")
    greedy: bool = _opt(False, "Always take the most likely character (argmax); ignores temperature, top-k and top-p.", None)
    top_k: int | None = _opt(None, "Sample only among the K most likely characters.", "all")
    top_p: float | None = _opt(
        None, "Nucleus sampling: only the smallest set of most likely characters with total probability ≥ P, in (0, 1].", "1, all"
    )
    num_samples: int = _opt(1, "Independent samples, drawn as one batch; each is printed after a '--- sample i of N ---' line.")
    random_seed: int | None = _opt(None, "Seed of the sampler: same seed, same text.", "fresh randomness")
    stop: str | None = _opt(None, "End a sample right after this text appears in it (\\n, \\t and \\f are understood).", "none")
    no_seed_echo: bool = _opt(False, "Print only the generated characters, not the seed before them.", None)
    drop_unknown: bool = _opt(
        False, "Remove seed characters the model does not know (with a warning) instead of stopping.", None
    )
    kernels: str = _opt(
        "numpy", "The per-step math: numpy (starts at once), numba (compiled, ~2× faster per character at batch 1, ~0.5 s "
        "more to start; pip install 'charlstm[fast]'), or auto (numba when a run has already compiled it)."
    )
    threads: int | None = _opt(None, "Threads of the BLAS and numba kernels, fixed.", "automatic, as in charlstm train")
    adapt: bool = _opt(
        False, "Before writing, let the model learn from the seed (dynamic evaluation: windows of --adapt-window "
        "characters, a small gradient step after each), so a long seed in a new style pulls it toward that style.", None,
    )
    adapt_lr: float = _opt(0.002, ADAPT_LR_HELP)  # a seed in a new style: larger steps (README, "Adapting to a text")
    adapt_decay: float = _opt(0.0, ADAPT_DECAY_HELP)
    adapt_window: int = _opt(ADAPT_WINDOW, ADAPT_WINDOW_HELP)
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
    max_chars: int = _opt(2000, "Use only the first N characters the model knows (the trace is one stream, step by step).")
    layer: int | None = _opt(None, "Layer, from 0 at the bottom.", "the top layer; with --find: every layer")
    unit: int | None = _opt(None, "Unit (cell) of the layer, from 0.", None)
    what: str | None = _opt(None, _quantities_help, _quantity_default)
    find: str | None = _opt(
        None, "Rank units by |Pearson r| with a feature of the text: quote (inside \"…\"), bracket (nesting depth of "
        "([{), line (position in the line), indent (leading whitespace), or any other text as a regular expression "
        "(inside a match).", None,
    )
    top: int = _opt(3, "With --find: how many units to show.")
    max_lag: int = _opt(40, "Largest lag k, in steps back.")
    positions: int = _opt(32, "Steps t to average over, evenly spread over the text.")
    cell: str = _opt("all", lambda: f"The cell whose gradients to check: {', '.join(cells.names())} or all.")
    random_seed: int = _opt(0, "Seed of the random model and data.")
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
    batch_size: int = _opt(
        default_of(TrainConfig, "batch_size"), "Parallel streams (speed only; state is carried across windows as in training)."
    )
    seq_len: int = _opt(default_of(TrainConfig, "seq_len"), "Characters per window.")
    show: bool = _opt(
        False, "Also show the text with each character coloured by its surprisal in bits (one stream from the zero "
        "state; plain rows when piped).", None,
    )
    top: int = _opt(0, "With --show: also list the model's K most likely guesses for each character (implies --show).")
    max_chars: int = _opt(default_of(ViewConfig, "max_chars"), "With --show: show the first N characters the model knows.")
    adapt: bool = _opt(
        False, "Also score the text with dynamic evaluation: read as one stream in windows of --adapt-window "
        "characters, each scored before the model takes a small gradient step on it; reported beside the static "
        "loss, never in its place.", None,
    )
    adapt_lr: float = _opt(0.0005, ADAPT_LR_HELP)  # held-out text of the kind trained on: small steps
    adapt_decay: float = _opt(0.001, ADAPT_DECAY_HELP)
    adapt_window: int = _opt(ADAPT_WINDOW, ADAPT_WINDOW_HELP)
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
    max_chars: int = _opt(
        default_of(ViewConfig, "max_chars"),
        "Characters of the text that the model views read (surprisal, neurons, gates, gradients).",
    )
    top: int = _opt(5, "Guesses shown for each character of the surprisal view.")
    units: int = _opt(default_of(ViewConfig, "top"), "Units shown for each feature in the neurons view, best first.")
    find: str | None = _opt(None, "A regular expression: its matches are one more feature for the neurons view.", None)
    max_lag: int = _opt(default_of(ViewConfig, "max_lag"), "Largest lag k of the gradient-flow plot, in steps back.")
    positions: int = _opt(
        default_of(ViewConfig, "positions"), "Steps t the gradient norms are averaged over, spread over the text."
    )
    views: int = _opt(3, "Runs whose model views are drawn: those with the best validation loss (the curves show every run).")
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


def field_help(cls: type, name: str) -> str:
    """A field's help text ending with its default, e.g. 'Peak learning rate. (default: 0.004)'.

    Round brackets on purpose: Typer renders help with Rich, which would read '[default: …]' as
    markup and drop it."""
    f = {f.name: f for f in fields(cls)}[name]
    text, shown = f.metadata["help"], f.metadata.get("shown")
    text, shown = text() if callable(text) else text, shown() if callable(shown) else shown
    if shown is None or f.default is MISSING or (f.default is None and "{value}" in shown):
        return text
    value = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
    return f"{text} (default: {shown.format(value=value)})"


def cache_dir() -> Path:
    """charlstm's cache folder (encoded corpora, compiled kernels): $CHARLSTM_CACHE, else
    $XDG_CACHE_HOME/charlstm, else ~/.cache/charlstm."""
    if os.environ.get("CHARLSTM_CACHE"):
        return Path(os.environ["CHARLSTM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "charlstm"
