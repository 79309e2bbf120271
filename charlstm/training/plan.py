"""Planning a training run before any weight moves: fresh, resumed, or started from another
checkpoint's weights; which files it writes (named by `charlstm.store.runs`); its configs and batch
size; the corpus, loaded; and advice on the model's size for that corpus (`size_notes`).

Everything `charlstm train` decides lives here, so the Python API decides it the same way. Bad
choices raise UsageError (or CorpusError, CheckpointError) with a one-line message naming the
option; nothing is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from charlstm import engines
from charlstm.config import AUTO_MIN_STEPS, LIMITS, MAX_VOCAB, ModelConfig, ReadConfig, TrainConfig, default_of, flag
from charlstm.errors import CheckpointError, NothingToDo, UsageError
from charlstm.nn.model import num_params
from charlstm.store import checkpoint as ckpt_io
from charlstm.store import runs, write
from charlstm.store.checkpoint import Checkpoint
from charlstm.text.corpus import Corpus, corpus_files, load_corpus, num_windows, prepare_source
from charlstm.text.reading import check_readable
from charlstm.text.vocab import Vocab, describe_chars
from charlstm.training import speeds
from charlstm.training.jsonlog import LOG_HINT
from charlstm.training.state import check_same_corpus

MODEL_OPTIONS = ("hidden_size", "num_layers", "cell")  # the ModelConfig fields a user chooses
RESUME_FIXED = ("seq_len", "batch_size", "val_fraction", "optimizer", "seed")  # a resumed run keeps these


class Load(Protocol):
    """`load_corpus` with the run's reading options bound: the text(s), the vocabulary to keep
    (None: built from the text), the validation fraction."""

    def __call__(self, path: Path | list[Path], vocab: Vocab | None, *, val_fraction: float) -> Corpus: ...


@dataclass(frozen=True)
class RunPlan:
    """A run ready to start: `train.train_plan(plan)` trains it."""

    corpus: Corpus
    config: ModelConfig
    train: TrainConfig
    model_path: Path
    resume: Checkpoint | None = None  # continue this run exactly
    init: Checkpoint | None = None  # start from these weights and vocabulary
    notes: tuple[str, ...] = ()  # what the plan changed, in words (e.g. resumed options)
    sizing: dict[str, Any] | None = None  # the model the plan chose and why (`speeds.size_model`), for the checkpoint

    @property
    def resume_path(self) -> Path:
        return runs.resume_file(self.model_path)


def plan_run(
    corpus_path: Path | list[Path] | None,
    model_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    *,
    resume: Path | None = None,
    init_from: Path | None = None,
    fresh: bool = False,
    out: Path | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    max_vocab: int = MAX_VOCAB,
    on_progress: Callable[[str, int, int], None] | None = None,
    log_json: Path | None = None,
    measure: speeds.Measure = speeds.measure,
) -> RunPlan:
    """Decide how to train and load the corpus: a text file, a folder of .txt files, several
    files, or a stream (copied into the cache first). Overrides are config fields the user chose
    (None values are ignored, as options not given). Cheap checks come first, so a bad option
    fails before a large corpus is read: among them, the files the run will write (its
    checkpoints, `log_json`) must be files, new or to replace, not a device or a folder
    (`charlstm.store.write`). A resumed run with no step left to do raises NothingToDo.

    A new LSTM run with --max-minutes and no --hidden-size or --layers has its shape (and its
    dropout, unless --dropout is given) chosen for the minutes (`speeds.size_model`, by the rule of
    `sizing`), from this machine's speed as `measure` finds it (default: measured once, cached);
    a resumed run keeps its checkpoint's."""
    given, corpus_path = corpus_path, prepare_source(corpus_path) if corpus_path else None
    model_given = _given(model_overrides)
    train_given = _given(train_overrides)
    ReadConfig(encoding, errors, max_vocab)  # its checks, before anything is read
    _check_options(corpus_path, model_given, train_given, resume, init_from, fresh)
    if out is not None:
        runs.check_model_path(out)
    if log_json is not None:
        write.target(log_json, "--log-json", LOG_HINT)
    load = partial(load_corpus, encoding=encoding, errors=errors, on_progress=on_progress, max_vocab=max_vocab)
    if resume is not None:
        plan = _plan_resume(corpus_path, resume, model_given, train_given, out, load)
    else:
        assert corpus_path is not None
        plan = _plan_new(corpus_path, model_given, train_given, init_from, fresh, out, load, measure)
    _check_sample_seed(plan)
    engines.check(plan.train, tuple(train_given))
    if isinstance(given, Path) and corpus_path != given:
        plan = replace(plan, notes=(f"read the stream {given} into {corpus_path}", *plan.notes))
    return plan


def _given(overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (overrides or {}).items() if v is not None}


def _check_options(
    corpus_path: Path | list[Path] | None,
    model_given: dict[str, Any],
    train_given: dict[str, Any],
    resume: Path | None,
    init_from: Path | None,
    fresh: bool,
) -> None:
    """Option checks that need no file: the configs' own (made early, a model of one character
    standing in for the corpus's vocabulary) and how the options combine."""
    if resume is not None and (init_from is not None or fresh):
        raise UsageError("--resume cannot be combined with --init-from or --fresh")
    if resume is None and corpus_path is None:
        raise UsageError("give a corpus file to train on, e.g. `charlstm train corpora/lighthouse.txt`")
    unknown = set(model_given) - set(MODEL_OPTIONS)
    if unknown:
        raise UsageError(f"unknown model option(s): {', '.join(sorted(unknown))}")
    ModelConfig(1, **model_given)  # the cell and the sizes, named by option
    try:
        given = TrainConfig(**train_given)  # range checks, named by option
    except TypeError as e:
        raise UsageError(f"unknown training option: {e}") from None
    if "engine" in train_given:  # before a large corpus is read: is its library there, and the device?
        engines.check(given, tuple(train_given), batch=False)


def _plan_resume(
    corpus_path: Path | list[Path] | None,
    resume: Path,
    model_given: dict[str, Any],
    train_given: dict[str, Any],
    out: Path | None,
    load: Load,
) -> RunPlan:
    """Continue a run from its resume file (or the model file beside it)."""
    if runs.is_snapshot(resume):
        raise UsageError(
            f"{resume} is an epoch snapshot: it holds weights, not a run to continue; start a new run from it "
            f"with --init-from {resume}, or continue its run with --resume {runs.resume_file(resume)}"
        )
    resume_file = runs.resume_file(resume)
    model_path = out or runs.model_file(resume_file)
    runs.check_model_path(model_path, "--out" if out else "")
    holder = runs.Lock.holder(runs.model_file(resume_file))
    if holder is not None and not resume_file.exists():
        raise CheckpointError(
            f"{resume_file} is not written yet: another charlstm train (pid {holder}) is starting this run and "
            f"writes it at its first checkpoint; wait for that run to finish, then resume it"
        )
    ckpt = ckpt_io.load(resume_file)
    check_same_shape(
        ckpt.config,
        model_given,
        "the checkpoint's",
        "; a resumed run keeps its model: drop the option, or leave out --resume to train a new model beside it",
    )
    cfg, changes = resume_config(ckpt, train_given)
    if corpus_path is None:  # said before its text is read
        check_steps_left(ckpt, cfg, train_given, resume_file)
    corpus = load(corpus_path or saved_source(ckpt), ckpt.vocab, val_fraction=cfg.val_fraction)
    if corpus_path is not None:  # a text named again: another one is refused first (state.check_same_corpus)
        try:
            check_steps_left(ckpt, cfg, train_given, resume_file)
        except NothingToDo:
            check_same_corpus(ckpt, corpus)
            raise
    notes = tuple(f"resuming with {c}" for c in changes)
    return RunPlan(corpus, ckpt.config, cfg, model_path, resume=ckpt, notes=notes)


def check_steps_left(ckpt: Checkpoint, cfg: TrainConfig, given: dict[str, Any], path: Path) -> None:
    """A resumed run that is already at its end (the saved one, or the one given) would train no
    step: NothingToDo, saying how to give it a later end, before anything is read or written."""
    step, per_epoch = int(ckpt.train.get("step", 0)), int(ckpt.train.get("steps_per_epoch") or 0)
    end = cfg.step_limit(per_epoch) if per_epoch else None
    if end is None or step < end:
        return
    if any(k in given for k in LIMITS):
        why = f"the end you gave ({', '.join(f'{flag(k)} {given[k]:g}' for k in LIMITS if k in given)}) is behind it"
    elif saved_config(ckpt).epochs is None and saved_config(ckpt).max_steps is None:
        why = "where its time budget (--max-minutes, which counts one run only) ended it"
    else:
        why = f"the end of its run ({end:,} steps)"
    raise NothingToDo(
        f"{path} is at step {step:,}, {why}: there is no step to train, and nothing was written; to train on, "
        f"give a later end: --max-minutes M, --epochs {step // per_epoch + 1} or more, or --max-steps "
        f"{step + 1:,} or more"
    )


def _plan_new(
    corpus_path: Path | list[Path],
    model_given: dict[str, Any],
    train_given: dict[str, Any],
    init_from: Path | None,
    fresh: bool,
    out: Path | None,
    load: Load,
    measure: speeds.Measure,
) -> RunPlan:
    """A new run: fresh weights, or those of `init_from` (fine-tuning). The corpus is checked
    first, so a misspelt path is reported as such; then an earlier run writing the same files is
    not overwritten unless `fresh`. Its model file is named from the options given (a shape the
    plan chooses leaves it CORPUS.safetensors)."""
    check_source(corpus_path)
    init = ckpt_io.load(init_from) if init_from is not None else None
    if init is not None:
        check_same_shape(
            init.config, model_given, "--init-from's", "; --init-from keeps the checkpoint's model: drop the option"
        )
    model_path = out or runs.default_model_path(corpus_path, init.config.to_dict() if init else model_given)
    runs.check_model_path(model_path, "--out" if out else "")
    existing = runs.resume_file(model_path)
    if existing.exists() and not fresh:
        raise UsageError(
            f"{existing} exists from an earlier run; pass --resume {existing} to continue it, --fresh to start "
            f"over, or --out FILE to train beside it"
        )
    cfg = TrainConfig(**new_run_options(train_given))
    corpus = load(corpus_path, init.vocab if init else None, val_fraction=cfg.val_fraction)
    config = init.config if init else ModelConfig(corpus.vocab.size, **model_given)
    if "batch_size" not in train_given:
        n_train = len(corpus.split(cfg.val_fraction)[0])
        K = engines.world_size()  # under torchrun, the ranks share the streams equally
        cfg = replace(cfg, batch_size=max(K, auto_batch_size(n_train, cfg.seq_len) // K * K))
    sized = None if init else speeds.size_model(config, cfg, model_given, train_given, corpus, measure)
    if sized is not None:
        config, cfg, sizing = sized
        return RunPlan(corpus, config, cfg, model_path, notes=(sizing["reason"],), sizing=sizing)
    return RunPlan(corpus, config, cfg, model_path, init=init)


def _check_sample_seed(plan: RunPlan) -> None:
    seed = plan.train.sample_seed
    missing = plan.corpus.vocab.unknown(seed) if seed else []
    if missing:
        raise UsageError(f"--sample-seed has characters not in the vocabulary: {describe_chars(missing)}")


def check_same_shape(config: ModelConfig, model_given: dict[str, Any], whose: str, advice: str = "") -> None:
    """A model shape or cell chosen by the user must match the checkpoint the run starts from."""
    for name, value in model_given.items():
        have = getattr(config, name)
        if value != have:
            raise UsageError(f"{flag(name)} {value} conflicts with {whose} {have}{advice}")


def new_run_options(given: dict[str, Any]) -> dict[str, Any]:
    """A new run's training options: with --max-minutes alone, epochs are unlimited (the time
    budget ends the run); with --epochs too, whichever comes first."""
    if "max_minutes" in given and "epochs" not in given:
        return {**given, "epochs": None}
    return given


def saved_config(ckpt: Checkpoint) -> TrainConfig:
    """The TrainConfig a checkpoint was trained with (fields it lacks take their defaults)."""
    return TrainConfig(
        **{k: v for k, v in ckpt.train.get("config", {}).items() if k in TrainConfig.__dataclass_fields__}
    )


def resume_limits(saved: TrainConfig, overrides: dict[str, Any], step: int) -> dict[str, Any]:
    """Where a resumed run ends. Any of --epochs, --max-steps, --max-minutes given sets a new
    end on its own (the saved limits not given are dropped). Otherwise the saved --epochs and
    --max-steps stay; --max-minutes never does (it counts one run), so a run that only a time
    budget ended is complete at `step`."""
    if any(k in overrides for k in LIMITS):
        return {k: overrides.get(k) for k in LIMITS}
    if saved.epochs is None and saved.max_steps is None:
        return {"epochs": None, "max_steps": step, "max_minutes": None}
    return {"epochs": saved.epochs, "max_steps": saved.max_steps, "max_minutes": None}


def resume_config(resume: Checkpoint, overrides: dict[str, Any]) -> tuple[TrainConfig, list[str]]:
    """The resumed run's TrainConfig: the checkpoint's, with the compatible overrides applied
    and its end decided by `resume_limits` (--threads, a setting for the machine as it was then,
    is kept only when given again). Returns it and a list of the changes, in words
    (`--max-steps: none → 310`). Incompatible overrides raise UsageError."""
    saved = saved_config(resume)
    for key, value in overrides.items():
        old = getattr(saved, key)
        if key in RESUME_FIXED and value != old:
            raise UsageError(
                f"{flag(key)} {value} conflicts with the checkpoint's {old}; "
                f"a resumed run keeps it (drop the option, or start anew with --init-from)"
            )
    limits = resume_limits(saved, overrides, int(resume.train.get("step", 0)))
    machine = {"threads": overrides.get("threads")}  # this machine's now, never kept
    cfg = TrainConfig(**{**asdict(saved), **overrides, **limits, **machine})
    unsaid = ("max_minutes", "threads", *(() if any(k in overrides for k in LIMITS) else LIMITS))
    changes = [
        f"{flag(key)}: {_shown(getattr(saved, key))} → {_shown(getattr(cfg, key))}"
        for key in TrainConfig.__dataclass_fields__
        if key not in unsaid and getattr(cfg, key) != getattr(saved, key)
    ]
    return cfg, changes


def _shown(value: Any) -> str:
    """An option's value as a person types it: 0.002, 10, none."""
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def auto_batch_size(n_train: int, T: int, preferred: int = default_of(TrainConfig, "batch_size")) -> int:
    """The preferred batch size, reduced for small corpora so an epoch has ≥ AUTO_MIN_STEPS
    windows (never below 1)."""
    return max(1, min(preferred, (n_train - 1) // (T * AUTO_MIN_STEPS)))


def windows_per_epoch(n_train: int, B: int, T: int) -> int:
    """Full windows per epoch; a training split too short for one is a UsageError saying what fits."""
    steps = num_windows(n_train, B, T)
    if steps < 1:
        most = (n_train - 1) // T
        fix = f"use --batch-size {most} or less" if most >= 1 else f"use --seq-len {n_train - 2} or less"
        raise UsageError(
            f"the training split ({n_train} chars) is too short for one window of "
            f"--batch-size {B} × --seq-len {T}; {fix}, or give a longer text"
        )
    return steps


def check_source(corpus_path: Path | list[Path]) -> None:
    """Every file of the corpus can be read as text; a checkpoint given as the corpus is
    recognised, and the commands that were probably meant are named."""
    for path in corpus_files(corpus_path):
        check_readable(path)
        if ckpt_io.is_safetensors(path):
            raise UsageError(
                f"{path} is a checkpoint, not a text to train on; to sample from it: charlstm sample -c {path}; "
                f"to continue its run: charlstm train --resume {path}"
            )


def saved_source(ckpt: Checkpoint) -> Path | list[Path]:
    """The corpus a checkpoint was trained on, as recorded: its file or folder, or its files."""
    corpus = ckpt.train.get("corpus", {})
    path = Path(corpus.get("path", ""))
    files = corpus.get("files")
    return [Path(f) for f in files] if files and not path.is_dir() else path


def size_notes(config: ModelConfig, train_chars: int, dropout: float = 0.0) -> tuple[str, ...]:
    """Advice on the model's size for the corpus, by char-rnn's rule of thumb: parameters of the
    same order as training characters (within a factor of 10). The advice names a hidden size
    that fits, and more dropout only above the `dropout` already set."""
    n = num_params(config)
    fits = hidden_size_that_fits(config, train_chars)
    if n > 10 * train_chars:
        advice = (
            [f"a smaller --hidden-size (-H {fits}: {num_params(replace(config, hidden_size=fits)):,} parameters)"]
            if fits < config.hidden_size
            else []
        )
        if dropout < 0.5:
            advice.append(f"more dropout (--dropout {min(0.5, dropout + 0.2):g})")
        remedy = " or ".join(advice) or "a longer text"
        return (
            f"{n:,} parameters for {train_chars:,} training characters: the model will memorise "
            f"the text in long runs (the best checkpoint by validation is kept); if val loss "
            f"climbs early, {remedy} would suit it better",
        )
    if n * 10 < train_chars:
        return (
            f"{n:,} parameters for {train_chars:,} training characters: a larger --hidden-size "
            f"(-H {fits}) would likely learn more",
        )
    return ()


def hidden_size_that_fits(config: ModelConfig, train_chars: int) -> int:
    """The largest power-of-two hidden size (16 to 2048) whose model has no more parameters than
    training characters: the middle of the rule of thumb's range."""
    fits = 16
    for H in (32, 64, 128, 256, 512, 1024, 2048):
        if num_params(replace(config, hidden_size=H)) <= train_chars:
            fits = H
    return fits
