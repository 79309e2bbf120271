"""The learning rate over a run, and how far a run has come: by steps, by a time budget, or both.

The rate is linear warm-up over `warmup_steps` updates, then a decay (cosine, linear, or none for
"constant") from the peak `lr` to the floor `lr × min_lr_ratio`, driven by the run's progress
q ∈ [0, 1] through its current *segment*:

    q_steps = (step − s0) / (N − 1 − s0)          N: the run's last step (epochs, --max-steps)
    q_time  = (t − t0) / (D − t0)                  t: this process's training seconds, D: its deadline
    q       = max(q_steps, q_time)                 whichever limit comes first ends the decay

so the rate reaches its floor on the last update whichever limit binds. A segment is where the
decay starts: the step s0 (and, within this process, the second t0) and the rate there, as a
fraction r0 of the peak:

    lr = lr_peak · (floor + (r0 − floor) · shape(q)),   shape(q) = ½(1 + cos πq) or 1 − q

The first segment starts when the warm-up ends, at the peak (r0 = 1); for a run without a time
budget this is exactly warm-up then decay over the remaining steps, so a step-based run is
reproducible to the bit, resumed or not. When a resumed run is given a new end (`--epochs`,
`--max-steps` or `--max-minutes`), or the run before it had a time budget, a new segment starts at
the resume step with the rate it had reached: the rate goes on smoothly from there down to the
floor at the new end, instead of jumping back up the old curve. A changed `--lr` scales the whole
curve, as r0 is relative to the peak. A time budget counts seconds of one process only, so it is
never bit-reproducible: q_time depends on the machine's speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from charlstm.config import SCHEDULES, TrainConfig  # noqa: F401  (SCHEDULES re-exported)


@dataclass(frozen=True)
class Segment:
    """Where the current decay starts: the step s0, the rate there as a fraction of the peak
    (r0), and this process's training seconds at that moment (t0; 0 for a segment begun earlier)."""

    step: int
    ratio: float = 1.0
    seconds: float = 0.0


def decay_progress(
    step: int, segment: Segment, total_steps: int | None, seconds: float = 0.0, deadline: float | None = None
) -> float:
    """q ∈ [0, 1]: how far update `step` (0-based) is through the segment, by steps towards the
    last step `total_steps − 1`, by this process's training `seconds` towards `deadline`, or by
    whichever is further along when both are set."""
    q = 0.0
    if total_steps is not None:
        q = (step - segment.step) / max(1, total_steps - 1 - segment.step)
    if deadline is not None:
        q = max(q, (seconds - segment.seconds) / max(1e-9, deadline - segment.seconds))
    return min(1.0, max(0.0, q))


def lr_ratio(cfg: TrainConfig, q: float, start_ratio: float = 1.0) -> float:
    """The rate as a fraction of the peak at decay progress q, starting from `start_ratio`."""
    if cfg.schedule == "constant":
        return start_ratio
    shape = 0.5 * (1.0 + math.cos(math.pi * q)) if cfg.schedule == "cosine" else 1.0 - q
    return cfg.min_lr_ratio + (start_ratio - cfg.min_lr_ratio) * shape


def warmup_ratio(cfg: TrainConfig, step: int) -> float | None:
    """The warm-up's fraction of the peak for update `step`, or None once the warm-up is over."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return None


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The scheduled learning rate for update number `step` (0-based) of a fresh step-based run
    of `total_steps` updates: linear warm-up, then constant, cosine or linear decay from lr to
    lr·min_lr_ratio at the last step."""
    warm = warmup_ratio(cfg, step)
    if warm is not None:
        return cfg.lr * warm
    q = decay_progress(step, Segment(cfg.warmup_steps), total_steps)
    return cfg.lr * lr_ratio(cfg, q)


@dataclass(frozen=True)
class Outlook:
    """Where a run is heading, by whichever of its limits ends it first."""

    eta: float  # seconds to the end, the last validation and checkpoint included (inf: unknown yet)
    end_step: int | None  # the step it will end at; estimated when the time budget binds
    fraction: float  # of the run done, in [0, 1]
    by_time: bool  # the time budget ends it, not the step limit


def outlook(
    step: int,
    total_steps: int | None,
    steps_per_epoch: int,
    step_time: float | None,
    wrapup_time: float,
    seconds: float,
    budget: float | None,
    deadline: float | None,
) -> Outlook:
    """The ETA, the final step and the fraction done. By steps: the remaining steps at
    `step_time` each plus a `wrapup_time` (validation, sample, saves) for every end of epoch
    still to come. By time: what is left of `budget` (seconds of this process); the steps that
    fit before `deadline` (the budget less the final wrap-up) estimate the final step."""
    by_steps = math.inf
    if total_steps is not None and step_time is not None:
        ends = total_steps // steps_per_epoch - step // steps_per_epoch + (total_steps % steps_per_epoch > 0)
        by_steps = max(0, total_steps - step) * step_time + max(0, ends) * wrapup_time
    if budget is None or (total_steps is not None and by_steps <= budget - seconds):
        fraction = step / total_steps if total_steps else 0.0
        return Outlook(by_steps, total_steps, min(1.0, fraction), False)
    end_step = None
    if step_time is not None and deadline is not None:
        per_step = step_time + wrapup_time / steps_per_epoch
        end_step = step + max(0, int((deadline - seconds) / per_step))
        if total_steps is not None:
            end_step = min(end_step, total_steps)
    return Outlook(max(0.0, budget - seconds), end_step, min(1.0, seconds / budget), True)
