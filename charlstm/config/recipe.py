"""What a model is and how it is trained: ModelConfig and TrainConfig, stored in every checkpoint."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from charlstm.config.base import (
    AUTO_MIN_STEPS,
    DEVICE_PATTERN,
    DROPOUT_MASKS,
    KERNEL_NAMES,
    OPTIMIZER_NAMES,
    PRECISIONS,
    SCHEDULES,
    cells_help,
    check,
    default_of,
    engines_help,
    flag,
    opt,
)
from charlstm.engines import registry as engines
from charlstm.errors import UsageError
from charlstm.nn import cells


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a model; stored in every checkpoint."""

    # fmt: off
    vocab_size: int
    hidden_size: int = opt(256, "Hidden units per layer.")
    num_layers: int = opt(2, "Stacked recurrent layers.")
    cell: str = opt("lstm", cells_help)
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
    seq_len: int = opt(100, "Characters per window of truncated backpropagation through time.")
    batch_size: int = opt(
        64, "Parallel streams per step.", f"{{value}}, fewer for small corpora so an epoch has ≥ {AUTO_MIN_STEPS} steps"
    )
    lr: float = opt(4e-3, "Peak learning rate.")
    optimizer: str = opt("adam", "adam, rmsprop or sgd (momentum 0.9).")
    adam_beta1: float = opt(0.9, "Adam's decay of the mean of the gradients (β₁), in [0, 1).")
    adam_beta2: float = opt(0.999, "Adam's decay of the mean of their squares (β₂), in [0, 1).")
    clip: float = opt(5.0, "Clip the global gradient norm to this (0: off).")
    epochs: int | None = opt(
        10, "Passes over the training split, counting earlier runs when resuming.",
        "{value}; no limit when only --max-minutes is given",
    )
    max_steps: int | None = opt(
        None, "Stop after this many steps in all (default: no limit; earlier runs' steps count when resuming).", None
    )
    val_fraction: float = opt(0.05, "Fraction of the text, at its end, held out for validation, in (0, 0.5].")
    seed: int = opt(0, "Seed of initialisation, dropout and samples: same seed, same run.")
    dropout: float = opt(0.2, "Dropout on each layer's output while training, in [0, 1); 0 turns it off.")
    dropout_mask: str = opt(
        "step", "Where --dropout draws its masks: step (anew at every character) or window (one per stream and "
        "window: locked dropout, as in AWD-LSTM)."
    )
    weight_drop: float = opt(
        0.0, "DropConnect on the recurrent weights (weight_hh) while training, a mask per window, in [0, 1); "
        "checkpoints hold the plain weights."
    )
    ema: float = opt(
        0.995, "Validate, sample and save a moving average of the weights, of this decay per step, in [0, 1) "
        "(0.995: ~the last 200 steps count most); 0: off, the trained weights themselves."
    )
    schedule: str = opt(
        "cosine", "Learning-rate schedule over the run: cosine, linear or constant (decay ends at --min-lr-ratio × lr)."
    )
    warmup_steps: int = opt(0, "Steps of linear learning-rate warm-up.")
    min_lr_ratio: float = opt(0.1, "Final learning rate as a fraction of --lr.")
    max_minutes: float | None = opt(
        None,
        "Train for this many minutes of this run, the last validation and checkpoint within them; "
        "without -H/-L, a new LSTM run's shape and dropout are chosen to suit them on this machine.",
        "no limit; a resume does not keep it",
    )
    sample_every: int | None = opt(None, "Also show a sample every N steps (one is always shown per epoch).", "none")
    sample_length: int = opt(200, "Characters per progress sample (0: none).")
    sample_seed: str | None = opt(None, "Text that starts each progress sample.", "the corpus's first word")
    sample_temperature: float = opt(0.8, "Temperature of the progress samples.")
    keep: int = opt(0, "Also keep the newest N per-epoch snapshots (0: only best and resume files).")
    save_minutes: float = opt(5.0, "Also write the resume file every this many minutes within an epoch.")
    kernels: str = opt(
        "auto", "The per-step math: numba (fused, compiled; pip install 'charlstm[fast]'), numpy, or auto (numba when installed)."
    )
    engine: str = opt("numpy", engines_help)
    device: str = opt("auto", "The torch engine's device: auto (a CUDA GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps.")
    precision: str = opt("fp32", "The torch engine's arithmetic: fp32, or bf16 (CUDA, capability ≥ 8.0): the output layer in bfloat16 while training; recurrences, validation, weights fp32.")
    threads: int | None = opt(
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
