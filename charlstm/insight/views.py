"""What the views compute, from a checkpoint and a text: `charlstm neurons`, `gates`, `gradients`
and `gradcheck` (`docs/understanding.md`).

Each function reads the checkpoint (given, or the newest in ./checkpoints) and the known
characters of the text, checks them, and computes with `charlstm.insight.probe`; `cli/ui/shading` and
`cli/ui/charts` draw what they return. What was chosen or left out is told to `note`, one line at a
time; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm.config import ModelConfig, ViewConfig
from charlstm.errors import CorpusError, UsageError
from charlstm.insight import probe
from charlstm.store import checkpoint as ckpt_io
from charlstm.store.checkpoint import Checkpoint
from charlstm.store.runs import find_latest
from charlstm.text.reading import check_text, read_text

Note = Callable[[str], None]


@dataclass(frozen=True)
class ViewInput:
    """A view's model and the part of the text it runs over."""

    ckpt: Checkpoint
    text: probe.TextIds


def view_input(checkpoint: Path | None, text_file: Path, max_chars: int, note: Note) -> ViewInput:
    """The checkpoint and the first `max_chars` characters of the text that it knows. A text
    mostly outside its vocabulary (a model of another kind of text) is an error, not a view of
    the few characters it knows."""
    path = checkpoint or find_latest()
    ckpt = ckpt_io.load(path)
    tx = probe.text_ids(ckpt.vocab, read_text(text_file), max_chars)
    if tx.unknown > tx.total:  # most of the text: this model was trained on another kind of text
        which = "the newest checkpoint, " if checkpoint is None else ""
        trained_on = ckpt.train.get("corpus", {}).get("name")
        raise CorpusError(
            f"{text_file}: {tx.unknown:,} of its {tx.unknown + tx.total:,} characters are not in the vocabulary of "
            f"{which}{path}{f' (trained on {trained_on})' if trained_on else ''}; pick a model of this kind of text "
            f"with --checkpoint PATH (charlstm runs lists them)"
        )
    if len(tx.ids) < 2:
        raise CorpusError(f"{text_file}: fewer than two characters the model knows; nothing to show")
    if checkpoint is None:
        note(f"using {path}")
    if tx.unknown:
        note(f"left out {tx.unknown:,} characters that are not in the model's vocabulary")
    if tx.total > len(tx.ids):
        note(f"using the first {len(tx.ids):,} of {tx.total:,} characters (--max-chars)")
    return ViewInput(ckpt, tx)


def check_text_first(text_file: Path, command: str) -> None:
    """The text argument is a text (not a checkpoint given in its place, nor a compressed file),
    checked before the checkpoint is looked for, so the advice names what to run."""
    wants = " --unit N" if command == "neurons" else ""
    check_text(text_file, f"to look into a text with it: charlstm {command} TEXT -c {text_file}{wants}")


@dataclass(frozen=True)
class Neurons:
    """`neurons`: one unit's values over the text (`unit`), or the units that track a feature
    best (`find`: the feature's values, and `scores` with each scored unit's `values`)."""

    view: ViewInput
    what: str
    layer: int | None  # the unit's layer; with find, the layer searched (None: all)
    unit: int | None
    feature: np.ndarray | None  # (N,) with find
    scores: list[probe.UnitScore]
    values: list[np.ndarray]  # (N,) per unit shown

    @property
    def sigmoid(self) -> bool:
        return self.what in probe.sigmoids(self.view.ckpt.config)


def neurons(cfg: ViewConfig, checkpoint: Path | None, text_file: Path, note: Note) -> Neurons:
    """Trace the text, then rank the units by |r| with `cfg.find`, or take unit `cfg.unit`."""
    check_text_first(text_file, "neurons")
    if (cfg.unit is None) == (cfg.find is None):
        raise UsageError("give --unit N to show a unit, or --find FEATURE to rank units (not both)")
    view = view_input(checkpoint, text_file, cfg.max_chars, note)
    config = view.ckpt.config
    what = cfg.what or probe.quantities(config)[0]
    check_unit_options(config, what, cfg.layer, cfg.unit)
    trace = probe.trace(view.ckpt.params, config, view.text.ids)
    if cfg.find is None:
        layer = config.num_layers - 1 if cfg.layer is None else cfg.layer
        return Neurons(view, what, layer, cfg.unit, None, [], [trace.values(layer, what)[:, cfg.unit]])
    layers = list(range(len(trace.layers))) if cfg.layer is None else [cfg.layer]
    f = probe.feature(view.text.text, cfg.find)
    if np.ptp(f) == 0:
        raise UsageError(constant_feature(cfg.find, view.text))
    scores = probe.rank_units(trace, f, what, layers, cfg.top)
    values = [trace.values(s.layer, what)[:, s.unit] for s in scores]
    return Neurons(view, what, cfg.layer, None, f, scores, values)


def constant_feature(find: str, tx: probe.TextIds) -> str:
    """Why `--find` has nothing to rank: the feature never changes over what was read, and, if
    the text goes on, how to read more of it."""
    if tx.total <= len(tx.ids):
        return f"the feature '{find}' is constant over this text (nothing to track); try another --find or text"
    return (
        f"the feature '{find}' is constant over the first {len(tx.ids):,} characters, all that was read of "
        f"{tx.total:,}; read more with --max-chars {min(tx.total, 20 * len(tx.ids))}, or try another --find"
    )


def check_unit_options(config: ModelConfig, what: str, layer: int | None, unit: int | None) -> None:
    """--what, --layer and --unit against the model they look into."""
    if what not in probe.quantities(config):
        raise UsageError(f"--what {what!r}: a {config.cell.upper()} has {', '.join(probe.quantities(config))}")
    if layer is not None and not 0 <= layer < config.num_layers:
        raise UsageError(f"--layer {layer}: the model has layers 0 to {config.num_layers - 1}")
    if unit is not None and not 0 <= unit < config.hidden_size:
        raise UsageError(f"--unit {unit}: the layers have units 0 to {config.hidden_size - 1}")


def gates(
    cfg: ViewConfig, checkpoint: Path | None, text_file: Path, note: Note
) -> tuple[ViewInput, list[probe.GateSaturation]]:
    """`gates`: how often each gate of each layer is shut or wide open over the text (with a note
    when what the cell counts is no gate: the vanilla RNN's h)."""
    check_text_first(text_file, "gates")
    view = view_input(checkpoint, text_file, cfg.max_chars, note)
    if (stand_ins := probe.stand_ins(view.ckpt.config)) is not None:
        note(stand_ins)
    return view, probe.saturation(probe.trace(view.ckpt.params, view.ckpt.config, view.text.ids), view.ckpt.config)


def gradients(
    cfg: ViewConfig, checkpoints: Sequence[Path | None], text_file: Path, note: Note
) -> list[tuple[Checkpoint, probe.GradientFlow]]:
    """`gradients`: the gradient flow of each model over the same text."""
    check_text_first(text_file, "gradients")
    models = []
    for checkpoint in checkpoints:
        view = view_input(checkpoint, text_file, cfg.max_chars, note)
        models.append(
            (
                view.ckpt,
                probe.gradient_flow(view.ckpt.params, view.ckpt.config, view.text.ids, cfg.max_lag, cfg.positions),
            )
        )
    return models


def gradcheck(cfg: ViewConfig) -> list[probe.GradcheckResult]:
    """`gradcheck`: the hand-written backward of each cell (or `cfg.cell`) against central
    differences, on a small random model."""
    from charlstm.nn.cells import CELLS

    cells = list(CELLS) if cfg.cell == "all" else [cfg.cell]
    return [probe.gradcheck(probe.random_problem(c, cfg.random_seed)) for c in cells]
