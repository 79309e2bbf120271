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

from typing import Any

from charlstm.config.base import (
    AUTO_MIN_STEPS,
    DEVICE_PATTERN,
    DROPOUT_MASKS,
    ENCODING_ERRORS,
    FLAGS,
    KERNEL_NAMES,
    LIMITS,
    MAX_VOCAB,
    OPTIMIZER_NAMES,
    PRECISIONS,
    SCHEDULES,
    cache_dir,
    check,
    default_of,
    field_help,
    flag,
    or_list,
)
from charlstm.config.base import __getattr__ as _registry_names
from charlstm.config.commands import (
    ADAPT_DECAY_HELP,
    ADAPT_LR_HELP,
    ADAPT_WINDOW,
    ADAPT_WINDOW_HELP,
    DisplayConfig,
    EvalConfig,
    ReadConfig,
    ReportConfig,
    SampleConfig,
    ViewConfig,
    adapt_checks,
)
from charlstm.config.recipe import ModelConfig, TrainConfig


def __getattr__(name: str) -> Any:
    """CELL_NAMES and ENGINE_NAMES, read from the registries when asked (`base.__getattr__`)."""
    return _registry_names(name)


__all__ = [
    "OPTIMIZER_NAMES",
    "SCHEDULES",
    "KERNEL_NAMES",
    "DROPOUT_MASKS",
    "PRECISIONS",
    "DEVICE_PATTERN",
    "ENCODING_ERRORS",
    "AUTO_MIN_STEPS",
    "MAX_VOCAB",
    "FLAGS",
    "LIMITS",
    "flag",
    "or_list",
    "default_of",
    "check",
    "field_help",
    "cache_dir",
    "ModelConfig",
    "TrainConfig",
    "ReadConfig",
    "DisplayConfig",
    "ADAPT_WINDOW",
    "ADAPT_LR_HELP",
    "ADAPT_DECAY_HELP",
    "ADAPT_WINDOW_HELP",
    "adapt_checks",
    "SampleConfig",
    "ViewConfig",
    "EvalConfig",
    "ReportConfig",
]
