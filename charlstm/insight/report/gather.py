"""The numbers of a report: the runs, read from their checkpoints (learning curves, samples,
settings), and what the model views compute over a text, from `charlstm.insight.probe` — the same
functions, called the same way, as the terminal views and `eval --show`. Nothing here draws
(page.py does) or prints: what could not be read is returned, with the reason, in `skipped` and
`notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from charlstm.config import ReportConfig
from charlstm.errors import CharLSTMError, CheckpointError, UsageError
from charlstm.insight import probe
from charlstm.store import checkpoint as ckpt_io
from charlstm.store import runs
from charlstm.store.checkpoint import CURVE_FIELDS, SUFFIX, Checkpoint
from charlstm.units import nats_to_bits


@dataclass(frozen=True)
class Series:
    """One quantity of one run, in order: the step, the seconds of training (None where a
    checkpoint did not record them) and the value at each point."""

    steps: list[float]
    seconds: list[float | None]
    values: list[float]


@dataclass(frozen=True)
class Curves:
    """A run's learning curves. `per_step`: the training loss, lr and speed come from the
    checkpoint's curve, a point every tenth of an epoch or so; else (a checkpoint from before
    the curve was kept) one point per epoch from its history."""

    train: Series  # bits/char: the smoothed training loss, or the epoch's mean
    val: Series  # bits/char at every validation
    lr: Series
    speed: Series  # training characters per second
    per_step: bool


@dataclass(frozen=True)
class Sample:
    step: int
    epoch: float
    val_bpc: float
    text: str


@dataclass(frozen=True)
class FeatureUnits:
    """The units that track one feature best (`probe.rank_units`), or why there are none."""

    name: str
    values: np.ndarray | None  # (N,) the feature over the text
    scores: list[probe.UnitScore]
    units: list[np.ndarray]  # (N,) each scored unit's values
    problem: str | None = None


@dataclass(frozen=True)
class Views:
    """What the model computes over the view text."""

    source: str  # where the text comes from, in words
    text: probe.TextIds
    surprisal: probe.Surprisal
    what: str  # the quantity the neurons are ranked by (c for the LSTM, else h)
    features: list[FeatureUnits]
    gates: list[probe.GateSaturation]
    flow: probe.GradientFlow
    max_lag: int


@dataclass(frozen=True)
class RunReport:
    """One run: its settings, curves and samples, and the model views of its weights."""

    name: str
    weights: Path  # the checkpoint the views read
    history_from: Path  # the checkpoint the curves and samples come from
    ckpt: Checkpoint
    train: dict[str, Any]
    curves: Curves
    samples: list[Sample]
    views: Views | None
    no_views: str | None = None  # why there are no views, in one line


@dataclass(frozen=True)
class Report:
    runs: list[RunReport]
    skipped: list[tuple[str, str]]  # (file, why it is not in the report)
    config: ReportConfig
    notes: list[str] = field(default_factory=list)
    without_views: list[str] = field(default_factory=list)  # runs past the best `config.views`: curves only


@dataclass(frozen=True)
class RunFiles:
    """Where a run's numbers are read from: the weights for the views (the best, as `sample`
    uses) and the history (the resume file's, which goes on past the best epoch)."""

    name: str
    weights: Path
    history: Path


def gather(paths: list[Path], text_file: Path | None, cfg: ReportConfig) -> Report:
    """Everything a report shows, for the runs that `paths` name (checkpoints or folders of
    them; none: the newest in ./checkpoints). `text_file` is the text of the model views
    (default: each run's own validation text). Files that are not good checkpoints are
    skipped and named; if none is good, the first one's CheckpointError is raised."""
    found, skipped = find_runs(paths)
    text = None
    if text_file is not None:
        from charlstm.text.reading import read_text

        text = read_text(text_file)
    reports = []
    for files in found:
        try:
            reports.append(read_run(files, skipped))
        except CheckpointError as e:
            skipped.append((str(files.weights), str(e)))
    if not reports:
        raise CheckpointError(
            skipped[0][1]
            if len(skipped) == 1
            else f"no charlstm checkpoint could be read: {'; '.join(why for _, why in skipped)}"
        )
    drawn = set(best_runs(reports, cfg.views))
    notes, without = [], []
    for j, run in enumerate(reports):
        if j not in drawn:
            without.append(run.name)
            continue
        reports[j] = run = with_views(run, text, text_file, cfg)
        if run.no_views:
            notes.append(f"{run.name}: no model views: {run.no_views}")
    if without:
        notes.append(
            f"model views drawn for the {len(drawn)} of {len(reports)} runs with the best validation loss; "
            f"--views {len(reports)} draws them all"
        )
    return Report(reports, skipped, cfg, notes, without)


def best_runs(reports: list[RunReport], count: int) -> list[int]:
    """The indices of the `count` runs with the lowest best validation loss (runs without one last),
    in their order on the page. The views are what costs a report its time and size (the text
    coloured character by character for each unit): fifteen runs of them made a 6 MB page."""
    rank = sorted(
        range(len(reports)),
        key=lambda j: (reports[j].train.get("best_val_loss") is None, reports[j].train.get("best_val_loss") or 0.0, j),
    )
    return sorted(rank[:count])


def find_runs(paths: list[Path]) -> tuple[list[RunFiles], list[tuple[str, str]]]:
    """The runs that paths name, each once, and the paths that name none."""
    if not paths:
        try:
            paths = [runs.find_latest()]
        except CheckpointError:
            raise CheckpointError(
                "no checkpoint in checkpoints/; train one with `charlstm train FILE`, or name a checkpoint or a folder of them"
            ) from None
    found: list[RunFiles] = []
    skipped: list[tuple[str, str]] = []
    for path in paths:
        if path.is_dir():
            groups = runs.run_files(path)
            if not groups:
                skipped.append((str(path), f"{path}: no .safetensors files in this folder"))
            found.extend(folder_run(path, name) for name in sorted(groups))
        elif path.is_file():
            found.append(file_run(path))
        else:
            skipped.append((str(path), f"{path}: no such checkpoint or folder"))
    seen: set[Path] = set()
    unique = []
    for run in found:  # a run named twice (a folder and a file in it) is reported once
        if run.weights.resolve() not in seen:
            seen.add(run.weights.resolve())
            unique.append(run)
    return unique, skipped


def folder_run(folder: Path, name: str) -> RunFiles:
    model, resume = folder / (name + SUFFIX), folder / (name + runs.RESUME_SUFFIX)
    return RunFiles(name, model if model.is_file() else resume, resume if resume.is_file() else model)


def file_run(path: Path) -> RunFiles:
    """A checkpoint named on its own: its weights; the history of the resume file beside it, if
    it is a run's model file that has one (an epoch snapshot keeps its own history)."""
    if path.name.endswith(runs.RESUME_SUFFIX):
        return RunFiles(runs.stem(path), path, path)
    resume = runs.resume_file(path)
    if path == runs.model_file(path) and resume.is_file():
        return RunFiles(runs.stem(path), path, resume)
    return RunFiles(path.name.removesuffix(SUFFIX), path, path)


def read_run(files: RunFiles, skipped: list[tuple[str, str]]) -> RunReport:
    """Load a run's checkpoints: its settings, curves and samples (the views come later, for the
    runs that show them: `with_views`). A history file that cannot be read is skipped (named),
    and the weights' own history is used."""
    ckpt = ckpt_io.load(files.weights)
    source = ckpt
    if files.history != files.weights:
        try:
            source = ckpt_io.load(files.history)
        except CheckpointError as e:
            skipped.append((str(files.history), str(e)))
    history = source.history
    samples = [Sample(h["step"], h["epoch"], h["val_bpc"], h["sample"]) for h in history if h.get("sample")]
    return RunReport(
        files.name,
        files.weights,
        source.path or files.weights,
        ckpt,
        source.train,
        curves(source.train, history),
        samples,
        None,
    )


def with_views(run: RunReport, text: str | None, text_file: Path | None, cfg: ReportConfig) -> RunReport:
    """The run with the model views of its weights over `text` (default: its own validation
    text), or the reason it has none."""
    if text is None:
        text, where = validation_text(run.ckpt, cfg.max_chars)
    else:
        where = f"{text_file}"
    if text is None:
        return replace(run, no_views=where)
    views, no_views = model_views(run.ckpt, text, where, cfg)
    return replace(run, views=views, no_views=no_views)


def curves(train: dict[str, Any], history: list[dict[str, Any]]) -> Curves:
    """The learning curves from a checkpoint's curve and history (see Curves)."""
    val = Series([h["step"] for h in history], [h.get("elapsed") for h in history], [h["val_bpc"] for h in history])
    rows = train.get("curve") or []
    if rows:
        col = {name: [row[k] for row in rows] for k, name in enumerate(CURVE_FIELDS)}
        steps, seconds = col["step"], col["elapsed"]
        train_bpc = [nats_to_bits(loss) for loss in col["train_loss"]]
        return Curves(
            Series(steps, seconds, train_bpc),
            val,
            Series(steps, seconds, col["lr"]),
            Series(steps, seconds, col["chars_per_s"]),
            True,
        )
    epochs = Series(val.steps, val.seconds, [nats_to_bits(h["train_loss"]) for h in history])
    with_lr = [h for h in history if "lr" in h]
    with_speed = [h for h in history if "chars_per_s" in h]
    return Curves(
        epochs,
        val,
        Series([h["step"] for h in with_lr], [h.get("elapsed") for h in with_lr], [h["lr"] for h in with_lr]),
        Series(
            [h["step"] for h in with_speed],
            [h.get("elapsed") for h in with_speed],
            [h["chars_per_s"] for h in with_speed],
        ),
        False,
    )


def validation_text(ckpt: Checkpoint, max_chars: int) -> tuple[str | None, str]:
    """The first `max_chars` characters of the run's validation split, and where they come from
    in words; or None and why not (the corpus moved, changed, or is not recorded)."""
    from charlstm.text.corpus import load_corpus
    from charlstm.training.state import corpus_fingerprint

    corpus = ckpt.train.get("corpus") or {}
    settings = ckpt.train.get("config") or {}
    source = corpus.get("files") or corpus.get("path")
    if not source or "val_fraction" not in settings:
        return None, "the checkpoint does not say which text it was trained on; give one with --text FILE"
    missing = [p for p in ([source] if isinstance(source, str) else source) if not Path(p).is_file()]
    if missing:
        return None, f"its corpus is no longer at {shown(missing[0])}; give a text with --text FILE"
    try:
        loaded = load_corpus(source, vocab=ckpt.vocab, val_fraction=settings["val_fraction"])
        same = corpus_fingerprint(loaded)["sha256"] == corpus.get("sha256")
    except CharLSTMError as e:
        return None, f"its corpus cannot be read ({e}); give a text with --text FILE"
    if not same:
        return None, f"its corpus {shown(corpus.get('path'))} has changed since training; give a text with --text FILE"
    _, val = loaded.split(settings["val_fraction"])
    return ckpt.vocab.decode(
        val[:max_chars]
    ), f"the validation text of {corpus.get('name', 'its corpus')} ({shown(corpus.get('path'))})"


def shown(path: str | None) -> str:
    """A path as the reader knows it: relative to the current folder when it lies below it."""
    if path is None:
        return "?"
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def model_views(ckpt: Checkpoint, text: str, source: str, cfg: ReportConfig) -> tuple[Views | None, str | None]:
    """Surprisal, neurons, gates and gradient flow of the model over the first cfg.max_chars
    characters of `text` that it knows: one trace, read by each view as its command reads it."""
    tx = probe.text_ids(ckpt.vocab, text, cfg.max_chars)
    if len(tx.ids) < 2:
        return None, f"{source} has fewer than two characters this model knows"
    config = ckpt.config
    tr = probe.trace(ckpt.params, config, tx.ids)
    what = probe.quantities(config)[0]
    names = list(probe.NAMED_FEATURES) + ([cfg.find] if cfg.find and cfg.find not in probe.NAMED_FEATURES else [])
    max_lag = min(cfg.max_lag, len(tx.ids) - 2)
    views = Views(
        source,
        tx,
        probe.surprisal(tr, cfg.top),
        what,
        [feature_units(tr, tx.text, name, what, cfg.units) for name in names],
        probe.saturation(tr, config),
        probe.gradient_flow(ckpt.params, config, tx.ids, max_lag, cfg.positions),
        max_lag,
    )
    return views, None


def feature_units(tr: probe.Trace, text: str, name: str, what: str, top: int) -> FeatureUnits:
    """`neurons --find NAME --top TOP` over every layer: the feature, the best units and their values."""
    f = probe.feature(text, name)
    try:
        scores = probe.rank_units(tr, f, what, list(range(len(tr.layers))), top)
    except UsageError:
        return FeatureUnits(name, f, [], [], "constant over this text: nothing to track")
    return FeatureUnits(name, f, scores, [tr.values(s.layer, what)[:, s.unit] for s in scores])
