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

Under a time budget B (--max-minutes) training stops at the deadline D, early enough for the last
validation, sample and checkpoints to end within it:

    D = B − (RESERVE_MARGIN · wrap-up + RESERVE_SECONDS + one step)

where the wrap-up is the measured time of an end of epoch (before one is measured: the validation
split at FORWARD_SHARE of a training step's time per character). The functions at the end of
this module apply these rules to a training run (`charlstm.training.state.Run`) as it goes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from charlstm.config import TrainConfig

if TYPE_CHECKING:
    from charlstm.training.state import Progress, Run

DECAYS: dict[str, Callable[[float], float]] = {
    "cosine": lambda q: 0.5 * (1.0 + math.cos(math.pi * q)),
    "linear": lambda q: 1.0 - q,
}
"""shape(q) of each decaying schedule, from 1 at q = 0 to 0 at q = 1; "constant" does not decay."""
RESERVE_MARGIN = 1.5  # a time budget keeps back this many times the expected end-of-run work…
RESERVE_SECONDS = 1.0  # …plus this, and one step, for the last validation, sample and checkpoints
FORWARD_SHARE = 0.5  # validation's time per character, as a share of a training step's (about 1/3)


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
    return cfg.min_lr_ratio + (start_ratio - cfg.min_lr_ratio) * DECAYS[cfg.schedule](q)


def warmup_ratio(cfg: TrainConfig, step: int) -> float | None:
    """The warm-up's fraction of the peak for update `step`, or None once the warm-up is over."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return None


def scheduled(
    cfg: TrainConfig,
    step: int,
    total_steps: int | None,
    segment: Segment | None = None,
    seconds: float = 0.0,
    deadline: float | None = None,
    reached: float = 0.0,
) -> tuple[float, float]:
    """The rate of update `step` (0-based) as a fraction of the peak, and the decay progress q it
    is at: the warm-up, then the decay of `segment` (default: the first, from the end of the
    warm-up at the peak) by steps and by time (`decay_progress`), never behind `reached`, the q
    of an earlier update (by time q may not go back). The one rule of the loop and `learning_rate`."""
    warm = warmup_ratio(cfg, step)
    if warm is not None:
        return warm, reached
    segment = segment or Segment(cfg.warmup_steps)
    q = max(reached, decay_progress(step, segment, total_steps, seconds, deadline))
    return lr_ratio(cfg, q, segment.ratio), q


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of update `step` (0-based) of a fresh step-based run of `total_steps`
    updates (`scheduled`): linear warm-up, then constant, cosine or linear decay from lr to
    lr·min_lr_ratio at the last step."""
    return cfg.lr * scheduled(cfg, step, total_steps)[0]


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


# ------------------------------------------------------------------------- a run, as it goes


def new_end(saved: TrainConfig, cfg: TrainConfig, steps_per_epoch: int) -> bool:
    """Does a resumed run end elsewhere than the run it continues? A time budget (then or now)
    always counts as a new end: it counts the seconds of one process."""
    moved = saved.step_limit(steps_per_epoch) != cfg.step_limit(steps_per_epoch)
    return moved or saved.max_minutes is not None or cfg.max_minutes is not None


def start_segment(p: Progress, cfg: TrainConfig) -> None:
    """Begin a new decay segment at the current step, from the rate the run has reached. During
    the warm-up nothing changes: the decay begins when it ends."""
    if p.step >= cfg.warmup_steps and p.schedule_ratio is not None:
        p.segment_step, p.segment_ratio = p.step, p.schedule_ratio


def advance_schedule(run: Run) -> float:
    """Move the run's schedule on to its next update and return that update's rate as a
    fraction of the peak (`scheduled`): after the warm-up, the first call starts the first decay
    segment, and every call records the decay progress reached (`run.decay`)."""
    p, cfg = run.progress, run.cfg
    if warmup_ratio(cfg, p.step) is None and p.segment_step is None:
        # the warm-up ends here (or ended before this run kept segments)
        p.segment_step, p.segment_ratio = cfg.warmup_steps, 1.0
        run.segment_seconds = run.seconds() if p.step == cfg.warmup_steps else 0.0
    segment = None if p.segment_step is None else Segment(p.segment_step, p.segment_ratio, run.segment_seconds)
    ratio, run.decay = scheduled(cfg, p.step, run.total_steps, segment, run.seconds(), deadline(run), run.decay)
    return ratio


def deadline(run: Run) -> float | None:
    """When, in this process's seconds, training must stop so that the last validation, sample
    and checkpoints still end within --max-minutes: the budget less a reserve of RESERVE_MARGIN
    times their expected time, RESERVE_SECONDS and one step. None without a time budget."""
    if run.budget is None:
        return None
    return run.budget - (RESERVE_MARGIN * wrapup_estimate(run) + RESERVE_SECONDS + (run.step_time or 0.0))


def wrapup_estimate(run: Run) -> float:
    """Seconds an end of epoch takes (validation, sample, saves): as last measured in this
    process, or, before that, the validation split at FORWARD_SHARE of the time a training step
    takes per character (validation runs forward only, a third of a step's work: this errs long)."""
    if run.wrapup_time is not None:
        return run.wrapup_time
    if run.step_time is None or run.timed_steps < 2:  # not until a step free of one-time costs
        return 0.0
    return FORWARD_SHARE * len(run.val_ids) * run.step_time / (run.cfg.batch_size * run.cfg.seq_len)


def run_outlook(run: Run) -> Outlook:
    """The run's ETA, final step and fraction done (`outlook`) as of now, at the run's pace (the
    wall time from step to step, not only the steps' own: `emit.follow_pace`)."""
    p = run.progress
    return outlook(
        p.step,
        run.total_steps,
        run.steps_per_epoch,
        run.pace or run.step_time,
        wrapup_estimate(run),
        run.seconds(),
        run.budget,
        deadline(run),
    )
