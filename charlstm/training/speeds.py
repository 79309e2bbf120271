"""This machine's training speed for each candidate shape (`sizing.CANDIDATES`), measured in a
few seconds when a run starts and cached, and the plan's use of it (`size_model`).

For each shape, an engine of the run's kind (through the engine registry: the NumPy engine on its
kernels, or the torch engine on its device) takes the run's real training step — forward and
backward over a window, then the update, with the run's batch size, dropout and --ema — on
windows of one character per stream and of MEASURE_T (untimed steps first, then the fastest
of TIMED_STEPS on each): their difference is the cost per character, the rest the cost per window
(the update, clipping), so the speed at the run's own window length follows. It runs on the
thread count the run will start with (`threads.tuner`: --threads, the environment, or the cores
free now), and puts the counts back as they were.

The result is cached as JSON in charlstm's cache folder (`SPEEDS_FILE`), keyed by what decides it:
the CPU, the usable cores and the thread count, the engine as it describes itself (its kernels or
device), the precision, the batch size, the vocabulary's size, the cell, the dtype and charlstm's
version; so a second run on the same text and machine starts at once. A measurement taken while
other processes kept the cores busy (more than BUSY_CORES of a core, `threads.OtherLoad`) serves
its run but is not cached: a speed measured under load would size every later run too small. On a GPU the update is
queued without waiting, so its time is counted with the next forward-backward: a little
pessimistic for long windows.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from charlstm import engines
from charlstm.config import ModelConfig, TrainConfig, cache_dir, flag
from charlstm.errors import CharLSTMError
from charlstm.nn import model, threads
from charlstm.store import write
from charlstm.text.corpus import Corpus
from charlstm.training.sizing import CANDIDATES, Choice, Shape, choose

SPEEDS_FILE = "speeds.json"
CACHE_FORMAT = 2
MEASURE_T = 20  # characters per stream of a timed window
WARM_UP = 2  # untimed steps before the timed ones: on the first window length (one on the second)
TIMED_STEPS = 3  # the fastest of these counts
BUSY_CORES = 0.25  # other processes' load (in cores) during a measurement above which it is not cached


@dataclass(frozen=True)
class StepCost:
    """What a training step costs on a shape: seconds per character (of every stream), and the
    seconds of a window that do not grow with its length (the update, clipping, the gradients'
    set-up): a window of B streams × T characters takes per_char·B·T + fixed."""

    per_char: float
    fixed: float

    def chars_per_s(self, B: int, T: int) -> float:
        """Characters per second of steps of B streams × T characters."""
        return B * T / (self.per_char * B * T + self.fixed)


@dataclass(frozen=True)
class Measured:
    """The candidates' speeds (chars/s at the run's window, cheapest first), the thread count they
    were measured on, and whether they all came from the cache."""

    speeds: dict[Shape, float]
    threads: int
    cached: bool = False
    other_load: float | None = None  # other processes' load while measuring, in cores (None: not read)


TimeStep = Callable[[ModelConfig, TrainConfig], StepCost]
Measure = Callable[[ModelConfig, TrainConfig], Measured]


def time_step(config: ModelConfig, cfg: TrainConfig) -> StepCost:
    """The cost of the run's training step (`cfg`'s engine and options) on the model `config`:
    the fastest of TIMED_STEPS steps (after WARM_UP) on windows of min(MEASURE_T, seq_len)
    characters and on windows of one, whose difference is the cost per character."""
    T = min(MEASURE_T, cfg.seq_len)
    engine = engines.make_engine(config, cfg, model.init_params(config, cfg.seed))
    try:
        short, _ = _fastest(engine, config.vocab_size, cfg.batch_size, 1, cfg.lr, WARM_UP) if T > 1 else (0.0, 0.0)
        long, update = _fastest(engine, config.vocab_size, cfg.batch_size, T, cfg.lr, 1)
    finally:
        engine.close()
    step = max(long - short, 0.0) / (T - 1) if T > 1 else long  # seconds per character of the B streams
    if step <= 0:  # noise hid the difference: all of it per character
        step = long / T
    return StepCost(step / cfg.batch_size, max(long - step * T, 0.0) + update)


def _fastest(engine: engines.Engine, V: int, B: int, T: int, lr: float, warm_up: int) -> tuple[float, float]:
    """The fastest forward-backward and update of TIMED_STEPS on random windows of B × T ids,
    after `warm_up` steps (the first steps pay for memory the later ones reuse)."""
    import numpy as np

    ids = np.random.default_rng(0).integers(0, V, (T + 1, B))
    state, forward, update = engine.zero_state(), math.inf, math.inf
    for k in range(warm_up + TIMED_STEPS):
        t0 = time.perf_counter()
        _, _, state = engine.forward_backward(ids[:-1], ids[1:], state)
        t1 = time.perf_counter()
        engine.update(lr)
        if k >= warm_up:
            forward, update = min(forward, t1 - t0), min(update, time.perf_counter() - t1)
    return forward, update


def measure(
    config: ModelConfig,
    cfg: TrainConfig,
    candidates: Sequence[Shape] = CANDIDATES,
    cache: Path | None = None,
    time_one: TimeStep = time_step,
    busy_cores: float = BUSY_CORES,
) -> Measured:
    """Each candidate's chars/s for the run `cfg` on the model `config` (its vocabulary and cell),
    from the cache (`cache`, default SPEEDS_FILE in charlstm's cache folder) or measured now
    (`time_one`) and added to it, unless other processes took more than `busy_cores` of a core
    meanwhile."""
    cache = cache or cache_dir() / SPEEDS_FILE
    with threads.as_before():
        tiny = replace(config, num_layers=1, hidden_size=8)  # asked what it computes on, and how
        probe = engines.make_engine(tiny, cfg, model.init_params(tiny, cfg.seed))
        try:
            control, describe = probe.thread_control(), probe.describe()
        finally:
            probe.close()
        count = threads.tuner(cfg.threads, None, control).threads if control is not None else 0
        key = _key(config, cfg, describe, count)
        saved = _read(cache)
        costs = _entries(saved.get(key))
        todo = [s for s in candidates if str(s) not in costs]
        other = threads.OtherLoad(threads.affinity())
        for shape in todo:
            cost = time_one(replace(config, num_layers=shape.num_layers, hidden_size=shape.hidden_size), cfg)
            costs[str(shape)] = [cost.per_char, cost.fixed]
        busy = other() if todo and other.available() else None
    if todo and (busy is None or busy <= busy_cores):
        _write(cache, {**saved, key: costs})
    speeds = {s: StepCost(*costs[str(s)]).chars_per_s(cfg.batch_size, cfg.seq_len) for s in candidates}
    return Measured(speeds, count, cached=not todo, other_load=busy)


def _key(config: ModelConfig, cfg: TrainConfig, describe: str, count: int) -> str:
    """What decides the speeds, as one line: the cache's key."""
    try:
        version = metadata.version("charlstm")
    except metadata.PackageNotFoundError:
        version = "unknown"
    parts = {
        "cpu": cpu_model(),
        "cores": threads.usable_cores(),
        "threads": count,
        "engine": describe,
        "precision": cfg.precision,
        "batch": cfg.batch_size,
        "vocab": config.vocab_size,
        "cell": config.cell,
        "dtype": "float32",
        "charlstm": version,
    }
    return "; ".join(f"{k} {v}" for k, v in parts.items())


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` says of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _read(cache: Path) -> dict[str, Any]:
    """The cache's entries; an unreadable or foreign file reads as none (it is rewritten)."""
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("speeds"), dict):
        return {}
    return data["speeds"]


def _entries(found: Any) -> dict[str, list[float]]:
    """A key's costs as the cache holds them ({"2x256": [per_char, fixed]}); what is not such is left out."""
    if not isinstance(found, dict):
        return {}
    return {
        k: [float(x) for x in v]
        for k, v in found.items()
        if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) and x >= 0 for x in v) and sum(v) > 0
    }


def _write(cache: Path, entries: dict[str, Any]) -> None:
    """Replace the cache atomically; a cache that cannot be written is left as it is (the next
    run measures again)."""
    text = json.dumps({"format": CACHE_FORMAT, "speeds": entries}, indent=1, sort_keys=True)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write.write_atomic(cache, text.encode("utf-8"), "the speed cache")
    except (OSError, CharLSTMError):
        pass


def size_model(
    config: ModelConfig,
    cfg: TrainConfig,
    model_given: dict[str, Any],
    given: dict[str, Any],
    corpus: Corpus,
    measure: Measure = measure,
) -> tuple[ModelConfig, TrainConfig, dict[str, Any]] | None:
    """The plan's choice for a new run (`model_given`, `given`: the model and training options
    the user gave), or None where the plan does not choose (`chooses`): the model and training
    configs with the chosen shape and dropout (a --dropout given is kept), and the record the
    checkpoint keeps (`ckpt.train["sizing"]`): the reason, the choice and the speeds it came from."""
    if not chooses(config, model_given, given) or cfg.max_minutes is None:
        return None
    train_chars = len(corpus.split(cfg.val_fraction)[0])
    measured = measure(config, cfg)
    cap, limit = _cap(cfg, given, train_chars)
    chosen = choose(train_chars, cfg.max_minutes * 60, measured.speeds, cap, limit, given.get("dropout"))
    config = replace(config, num_layers=chosen.shape.num_layers, hidden_size=chosen.shape.hidden_size)
    return config, replace(cfg, dropout=chosen.dropout), record(chosen, measured)


def chooses(config: ModelConfig, model_given: dict[str, Any], given: dict[str, Any]) -> bool:
    """Does the plan choose a new run's model? With a time budget, none of its sizes given, an
    LSTM (the rule is fitted for it) and one process (under torchrun each rank would measure on
    its own, and might choose another model)."""
    return (
        "max_minutes" in given
        and not any(k in model_given for k in ("hidden_size", "num_layers"))
        and config.cell == "lstm"
        and engines.world_size() == 1
    )


def _cap(cfg: TrainConfig, given: dict[str, Any], train_chars: int) -> tuple[float | None, str]:
    """The passes that a step or epoch limit given with --max-minutes allows, and that limit in words."""
    caps = []
    if "epochs" in given and cfg.epochs is not None:
        caps.append((float(cfg.epochs), f"{flag('epochs')} {cfg.epochs}"))
    if "max_steps" in given and cfg.max_steps is not None:
        chars = cfg.max_steps * cfg.batch_size * cfg.seq_len
        caps.append((chars / max(1, train_chars), f"{flag('max_steps')} {cfg.max_steps:,}"))
    return min(caps) if caps else (None, "")


def record(chosen: Choice, measured: Measured) -> dict[str, Any]:
    """The choice as the checkpoint's train metadata keeps it (JSON)."""
    return {
        "reason": chosen.reason,
        "shape": str(chosen.shape),
        "dropout": chosen.dropout,
        "passes": round(chosen.passes, 3),
        "chars_per_s": round(chosen.chars_per_s, 1),
        "speeds": {str(s): round(v, 1) for s, v in measured.speeds.items()},
        "threads": measured.threads,
        "other_load": None if measured.other_load is None else round(measured.other_load, 2),
    }
