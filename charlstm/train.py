"""The training loop: truncated BPTT over contiguous streams, validation, checkpoints, resume.

For every window: forward T steps from the carried state, backward, clip the global gradient norm,
check the loss and norm are finite, update, carry the final (h, c) into the next window (detached:
nothing flows back across windows). At the end of each epoch the whole validation split is scored,
a sample is drawn, the best-by-validation weights are written to the model file and the full state
(weights, optimiser moments, carried state, counters, RNG, history) to the resume file.

The loop never prints: it reports through `on_event` with the dataclasses below, and checks
`should_stop()` after every step so the caller can stop it cleanly (Ctrl-C).

Divergence policy: a step whose loss or gradient norm is NaN/Inf, or whose loss exceeds
`divergence_limit` (4 × ln V: four times the loss of a uniform guess), is not applied. The weights and
optimiser state go back to the last good snapshot (taken at every checkpoint), the carried state is
reset, and the learning rate is halved; after `MAX_RECOVERIES` such events in one run, training
stops with a TrainingError and the last good checkpoint stays as it was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charlstm import checkpoint as ckpt_io
from charlstm import model
from charlstm.checkpoint import Checkpoint
from charlstm.config import ModelConfig, TrainConfig  # noqa: F401  (TrainConfig re-exported)
from charlstm.corpus import Corpus, num_windows, split, window
from charlstm.errors import CheckpointError, TrainingError, UsageError
from charlstm.evaluate import evaluate
from charlstm.events import Diverged, EpochEnd, Event, Finished, Sampled, Saved, Started, Step
from charlstm.generate import Sampling, sample
from charlstm.optim import clip_grad_norm, make_optimizer
from charlstm.plan import RunPlan, resume_path_for
from charlstm.schedule import SCHEDULES, learning_rate  # noqa: F401  (re-exported)

MAX_RECOVERIES = 4
LOSS_EMA = 0.05
RELEASE_EVERY = 200  # steps between unmapping the pages of a memory-mapped corpus already read


def divergence_limit(V: int) -> float:
    """A loss per character above this is divergence, not learning: 4 × the uniform guess, ln V."""
    return max(10.0, 4.0 * math.log(V))


# ----------------------------------------------------------------------------------- the loop


@dataclass
class _Progress:
    """Everything that, with the weights and optimiser, makes a run resumable exactly."""

    step: int = 0
    window: int = 0  # next window within the epoch
    epoch: int = 0  # completed epochs
    elapsed: float = 0.0
    chars: int = 0
    lr_scale: float = 1.0
    recoveries: int = 0
    smoothed_loss: float | None = None
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    best_val_loss: float | None = None
    best_epoch: float | None = None
    last_eval_step: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)


def corpus_fingerprint(corpus: Corpus) -> dict[str, Any]:
    """What identifies a corpus for resuming: its length in characters and a hash of the file.
    The file is read in chunks rather than hashing the ids, so a memory-mapped corpus is not
    pulled into memory."""
    import hashlib

    h = hashlib.sha256()
    with open(corpus.path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"name": corpus.name, "path": str(corpus.path.resolve()), "chars": len(corpus), "sha256": h.hexdigest()[:16]}


def train(
    corpus: Corpus,
    config: ModelConfig,
    cfg: TrainConfig,
    model_path: Path,
    on_event: Callable[[Event], None] = lambda e: None,
    should_stop: Callable[[], bool] = lambda: False,
    resume: Checkpoint | None = None,
    init: Checkpoint | None = None,
) -> Finished:
    """Train on `corpus` and write checkpoints; returns the Finished event (also reported).

    resume: a resumable checkpoint of the same corpus; training continues exactly where it
    stopped. init: a checkpoint whose weights start a new run (fine-tuning). The checkpoint path
    is locked for the run: a second run writing the same files is refused.
    """
    cfg.validate()
    for target in (model_path, resume_path_for(model_path)):
        if target.is_dir():
            raise CheckpointError(f"{target}: is a directory; pass --out with a file name ending in {ckpt_io.SUFFIX}")
    with ckpt_io.Lock(model_path):
        return _train(corpus, config, cfg, model_path, on_event, should_stop, resume, init)


def train_plan(
    plan: RunPlan,
    on_event: Callable[[Event], None] = lambda e: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Finished:
    """Train the run `plan.plan_run` planned; see `train`."""
    return train(plan.corpus, plan.config, plan.train, plan.model_path, on_event, should_stop, plan.resume, plan.init)


def _train(
    corpus: Corpus,
    config: ModelConfig,
    cfg: TrainConfig,
    model_path: Path,
    on_event: Callable[[Event], None],
    should_stop: Callable[[], bool],
    resume: Checkpoint | None,
    init: Checkpoint | None,
) -> Finished:
    if corpus.vocab.size != config.vocab_size:
        raise UsageError("the corpus vocabulary does not match the model config")
    train_ids, val_ids = split(corpus.ids, cfg.val_fraction)
    B, T = cfg.batch_size, cfg.seq_len
    steps_per_epoch = num_windows(len(train_ids), B, T)
    if steps_per_epoch < 1:
        most = (len(train_ids) - 1) // T
        fix = f"use --batch-size {most} or less" if most >= 1 else f"use --seq-len {len(train_ids) - 2} or less"
        raise UsageError(
            f"the training split ({len(train_ids)} chars) is too short for one window of "
            f"--batch-size {B} × --seq-len {T}; {fix}, or give a longer text"
        )
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    resume_path = resume_path_for(model_path)
    loss_limit = divergence_limit(config.vocab_size)

    fingerprint = corpus_fingerprint(corpus)
    if resume is not None and fingerprint["sha256"] != resume.train.get("corpus", {}).get("sha256"):
        raise UsageError(
            f"{corpus.path} is not the text this run was trained on; to train on new text, start a "
            f"new run from its weights with --init-from"
        )
    source = resume or init
    params = {k: v.copy() for k, v in source.params.items()} if source else model.init_params(config, cfg.seed)
    optimizer = make_optimizer(cfg.optimizer, params)
    rng = np.random.default_rng(cfg.seed)
    state = model.zero_state(config, B)
    progress = _Progress()
    if resume is not None:
        progress, state = _restore(resume, optimizer, rng, config, B)
    notes = _size_notes(config, len(train_ids))
    if progress.step >= total_steps:
        notes += (f"this run already did {progress.step} of its {total_steps} steps; pass a larger --epochs or --max-steps to train on",)

    on_event(
        Started(
            config, cfg, corpus.name, len(corpus), len(train_ids), len(val_ids), corpus.vocab.size,
            model.num_params(config), steps_per_epoch, total_steps, model_path, resume_path,
            progress.step, resume is not None, notes,
        )
    )

    files: set[Path] = set()

    def checkpoint_of(with_state: bool, status: str) -> Checkpoint:
        train_meta = {
            "config": asdict(cfg),
            "corpus": fingerprint,
            "status": status,
            "steps_per_epoch": steps_per_epoch,
            "optimizer_steps": optimizer.steps,
            "rng": rng.bit_generator.state,
            **{k: v for k, v in asdict(progress).items() if k != "history"},
        }
        extra = {}
        if with_state:
            extra = {f"optim.{k}": v for k, v in optimizer.state_tensors().items()}
            extra.update({f"state.{n}": s for n, s in zip(model.state_names(config), state)})
        return Checkpoint(config, corpus.vocab, params, train_meta, list(progress.history), extra)

    def save(path: Path, kind: str, with_state: bool, status: str) -> None:
        ckpt_io.save(checkpoint_of(with_state, status), path)
        files.add(path)
        on_event(Saved(path, kind))

    snapshot = _snapshot(params, optimizer)
    last_save = time.perf_counter()

    def save_resume(status: str) -> None:
        nonlocal snapshot, last_save
        if not _finite(params):
            raise TrainingError("the weights are no longer finite; the last good checkpoint is kept")
        save(resume_path, "resume", True, status)
        snapshot = _snapshot(params, optimizer)
        last_save = time.perf_counter()

    def end_of_epoch(train_loss: float) -> None:
        corpus.release()
        ev = evaluate(params, config, val_ids, B, T, cache)
        corpus.release()
        progress.last_eval_step = progress.step
        best = progress.best_val_loss is None or ev.loss < progress.best_val_loss
        if best:
            progress.best_val_loss = ev.loss
            progress.best_epoch = progress.step / steps_per_epoch
        text = _sample(params, config, corpus, cfg, progress.step)
        record = {
            "epoch": round(progress.step / steps_per_epoch, 4),
            "step": progress.step,
            "train_loss": train_loss,
            "val_loss": ev.loss,
            "val_bpc": ev.bits_per_char,
            "lr": learning_rate(cfg, max(0, progress.step - 1), total_steps) * progress.lr_scale,
            "elapsed": round(progress.elapsed, 3),
            "chars_per_s": round(progress.chars / max(progress.elapsed, 1e-9), 1),
            "best": best,
            "sample": text,
        }
        progress.history.append(record)
        on_event(EpochEnd(record["epoch"], progress.step, train_loss, ev.loss, ev.bits_per_char, best, text, progress.elapsed))
        if best:
            save(model_path, "best", False, "best")
        if cfg.keep > 0:
            _save_snapshot_file(checkpoint_of(False, "snapshot"), model_path, progress.epoch, cfg.keep, files, on_event)

    cache = model.Cache()  # activation buffers, reused by every window and by validation
    reason = "completed"
    run_start_elapsed = progress.elapsed
    run_start = time.perf_counter()
    step_time_ema: float | None = None
    while progress.step < total_steps:
        t0 = time.perf_counter()
        x, y = window(train_ids, B, T, progress.window)
        loss, grads, new_state, cache = model.loss_and_grads(params, config, x, y, state, cache, cfg.dropout, rng)
        norm = clip_grad_norm(grads, cfg.clip)
        lr = learning_rate(cfg, progress.step, total_steps) * progress.lr_scale
        if not (loss <= loss_limit and math.isfinite(norm)):  # also catches NaN
            progress.recoveries += 1
            _restore_snapshot(snapshot, params, optimizer)
            state = model.zero_state(config, B)
            if progress.recoveries >= MAX_RECOVERIES:
                on_event(Diverged(progress.step, loss, norm, "stopped: the loss keeps diverging"))
                raise TrainingError(
                    f"training diverged {progress.recoveries} times (loss {loss}, gradient norm {norm}); "
                    f"the last good checkpoint is kept — try a lower --lr or a smaller --clip"
                )
            progress.lr_scale *= 0.5
            on_event(
                Diverged(
                    progress.step, loss, norm,
                    f"restored the last good weights and halved the learning rate to {lr * 0.5:.3g}",
                )
            )
            _advance(progress, steps_per_epoch)
            continue
        optimizer.step(params, grads, lr)
        state = new_state
        progress.step += 1
        progress.chars += B * T
        progress.epoch_loss_sum += loss
        progress.epoch_loss_count += 1
        ema = progress.smoothed_loss
        progress.smoothed_loss = loss if ema is None else (1 - LOSS_EMA) * ema + LOSS_EMA * loss
        now = time.perf_counter()
        dt = now - t0
        progress.elapsed = run_start_elapsed + (now - run_start)
        step_time_ema = dt if step_time_ema is None else 0.9 * step_time_ema + 0.1 * dt
        on_event(
            Step(
                progress.step, progress.step / steps_per_epoch, loss, progress.smoothed_loss, lr, norm,
                B * T / step_time_ema, progress.elapsed, step_time_ema * (total_steps - progress.step),
            )
        )
        epoch_done = _advance(progress, steps_per_epoch)
        if epoch_done:
            state = model.zero_state(config, B)  # window 0 does not continue the last window
            train_loss = progress.epoch_loss_sum / max(1, progress.epoch_loss_count)
            progress.epoch_loss_sum, progress.epoch_loss_count = 0.0, 0
            end_of_epoch(train_loss)
            save_resume("running")
        elif cfg.sample_every and progress.step % cfg.sample_every == 0 and progress.step < total_steps:
            on_event(Sampled(progress.step, _sample(params, config, corpus, cfg, progress.step)))
        if should_stop():
            reason = "interrupted"
            break
        if cfg.max_minutes is not None and progress.elapsed - run_start_elapsed >= cfg.max_minutes * 60:
            reason = "time_budget"
            break
        if time.perf_counter() - last_save >= cfg.save_minutes * 60:
            save_resume("running")
        if progress.step % RELEASE_EVERY == 0:
            corpus.release()
    else:
        if cfg.max_steps is not None and progress.step >= cfg.max_steps and progress.step < cfg.epochs * steps_per_epoch:
            reason = "max_steps"

    if reason != "interrupted" and progress.last_eval_step != progress.step:
        train_loss = progress.epoch_loss_sum / max(1, progress.epoch_loss_count)
        end_of_epoch(train_loss)
    if not model_path.exists():
        save(model_path, "best", False, "latest")
    save_resume(reason)
    finished = Finished(
        reason,
        progress.step,
        progress.step / steps_per_epoch,
        progress.best_val_loss,
        progress.best_epoch,
        progress.elapsed,
        progress.chars / max(progress.elapsed, 1e-9),
        tuple(sorted(files)),
    )
    on_event(finished)
    return finished


def _advance(progress: _Progress, steps_per_epoch: int) -> bool:
    """Move the data cursor one window on; True when that finished an epoch."""
    progress.window += 1
    if progress.window >= steps_per_epoch:
        progress.window = 0
        progress.epoch += 1
        return True
    return False


def _sample(params: dict[str, np.ndarray], config: ModelConfig, corpus: Corpus, cfg: TrainConfig, step: int) -> str:
    """A sample for the progress display, from its own RNG so training is not disturbed."""
    if cfg.sample_length == 0:
        return ""
    seed = cfg.sample_seed if cfg.sample_seed is not None else default_sample_seed(corpus)
    rng = np.random.default_rng([cfg.seed, step])
    return sample(params, config, corpus.vocab, seed, cfg.sample_length, Sampling(cfg.sample_temperature), rng=rng)[0]


def default_sample_seed(corpus: Corpus) -> str:
    """The corpus's first word (up to 20 characters), so samples start like the text does."""
    head = corpus.vocab.decode(corpus.ids[:20])
    word = head.split(maxsplit=1)[0] if head.strip() else ""
    return word or head[:1]


def _size_notes(config: ModelConfig, train_chars: int) -> tuple[str, ...]:
    """char-rnn's rule of thumb: parameters of the same order as training characters."""
    n = model.num_params(config)
    if n > 10 * train_chars:
        return (
            f"{n:,} parameters for {train_chars:,} training characters: the model will likely "
            f"overfit; consider a smaller --hidden-size or --dropout 0.2+",
        )
    if n * 10 < train_chars:
        return (
            f"{n:,} parameters for {train_chars:,} training characters: a larger --hidden-size "
            f"would likely learn more",
        )
    return ()


def _snapshot(params: dict[str, np.ndarray], optimizer: Any) -> tuple[dict, dict, int]:
    return ({k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in optimizer.state.items()}, optimizer.steps)


def _restore_snapshot(snapshot: tuple[dict, dict, int], params: dict[str, np.ndarray], optimizer: Any) -> None:
    saved_params, saved_state, steps = snapshot
    for k, v in saved_params.items():
        params[k][...] = v
    for k, v in saved_state.items():
        optimizer.state[k][...] = v
    optimizer.steps = steps


def _finite(params: dict[str, np.ndarray]) -> bool:
    return all(np.isfinite(p).all() for p in params.values())


def _restore(resume: Checkpoint, optimizer: Any, rng: np.random.Generator, config: ModelConfig, B: int) -> tuple[_Progress, tuple]:
    """Progress, optimiser moments, RNG and carried state from a resumable checkpoint."""
    meta = resume.train
    try:
        optimizer.load_state_tensors(
            {k[len("optim.") :]: v for k, v in resume.extra.items() if k.startswith("optim.")},
            int(meta["optimizer_steps"]),
        )
        rng.bit_generator.state = meta["rng"]
        names = model.state_names(config)
        state = tuple(resume.extra[f"state.{n}"].astype(np.float32) for n in names)
        fields = {k: meta[k] for k in _Progress.__dataclass_fields__ if k in meta and k != "history"}
        progress = _Progress(**fields, history=list(resume.history))
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{resume.path}: not a resumable checkpoint (missing {e}); use --init-from to start from its weights") from None
    if any(s.shape != (config.num_layers, B, config.hidden_size) for s in state):
        raise UsageError(f"{resume.path}: its carried state does not fit --batch-size {B}")
    return progress, state


def _save_snapshot_file(
    ckpt: Checkpoint, model_path: Path, epoch: int, keep: int, files: set[Path], on_event: Callable[[Event], None]
) -> None:
    """Write an epoch snapshot beside the model and delete all but the newest `keep`."""
    stem = model_path.name[: -len(ckpt_io.SUFFIX)] if model_path.name.endswith(ckpt_io.SUFFIX) else model_path.name
    path = model_path.with_name(f"{stem}.epoch{epoch:04d}{ckpt_io.SUFFIX}")
    ckpt_io.save(ckpt, path)
    files.add(path)
    on_event(Saved(path, "snapshot"))
    old = sorted(model_path.parent.glob(f"{stem}.epoch[0-9][0-9][0-9][0-9]{ckpt_io.SUFFIX}"))
    for stale in old[:-keep]:
        stale.unlink(missing_ok=True)
        files.discard(stale)
