"""The learning rate over a run: linear warm-up, then constant, cosine or linear decay."""

from __future__ import annotations

import math

from charlstm.config import SCHEDULES, TrainConfig  # noqa: F401  (SCHEDULES re-exported)


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The scheduled learning rate for update number `step` (0-based): linear warm-up, then
    constant, cosine or linear decay from lr to lr·min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.warmup_steps - 1)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor = 1.0 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * factor)
