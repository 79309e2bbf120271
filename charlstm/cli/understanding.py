"""The views (docs/understanding.md): `charlstm neurons`, `gates`, `gradients`, `gradcheck`.

They read a checkpoint and a text: the text is the one argument, the checkpoint an option
(--checkpoint/-c, default: the newest in ./checkpoints), as in `sample`, so `charlstm gates FILE`
never has to guess which argument is which. `charlstm.insight.views` computes; `shading` and
`charts` draw, or give the --json record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charlstm.cli.options import CheckpointOption, JsonOption, MaxCharsOption, TextArgument, given, option
from charlstm.cli.render import note, print_json, report_console
from charlstm.config import ViewConfig


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def neurons(
    text_file: TextArgument,
    checkpoint: CheckpointOption = None,
    layer: Annotated[int | None, option(ViewConfig, "layer", "--layer", "-l")] = None,
    unit: Annotated[int | None, option(ViewConfig, "unit", "--unit", "-u")] = None,
    what: Annotated[str | None, option(ViewConfig, "what", "--what", "-w")] = None,
    find: Annotated[str | None, option(ViewConfig, "find")] = None,
    top: Annotated[int | None, option(ViewConfig, "top", "--top", "-k")] = None,
    max_chars: MaxCharsOption = None,
    as_json: JsonOption = False,
) -> None:
# fmt: on
    """Colour a text by one unit's value, or find the units that track a feature of it.

    After Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks".
    `charlstm neurons FILE --unit 17` shows unit 17 of the top layer; `charlstm neurons FILE
    --find bracket` ranks all units by how well they follow the bracket nesting depth. The value
    at a character is the unit's after reading it. Piped, each character is a row with its value.
    """
    from charlstm.cli.ui import shading
    from charlstm.cli.ui.console import model_name
    from charlstm.insight import views

    cfg = given(ViewConfig, layer=layer, unit=unit, what=what, find=find, top=top, max_chars=max_chars)
    n = views.neurons(cfg, checkpoint, text_file, note)
    text = n.view.text.text
    if n.feature is not None and as_json:
        return print_json(shading.find_record(text, cfg.find, n.feature, n.scores, n.values))
    if n.feature is not None:
        with report_console() as console:
            return shading.find_view(console, text, cfg.find, n.feature, n.scores, n.values, n.sigmoid)
    assert n.layer is not None and n.unit is not None  # without --find, `views.neurons` names one unit
    if as_json:
        return print_json(shading.neuron_record(text, n.layer, n.unit, n.what, n.values[0]))
    title = f"layer {n.layer} unit {n.unit} ({n.what}) of a {model_name(n.view.ckpt.config)}"
    with report_console() as console:
        shading.neuron_view(console, text, n.values[0], title, n.sigmoid)


def gates(
    text_file: TextArgument,
    checkpoint: CheckpointOption = None,
    max_chars: MaxCharsOption = None,
    as_json: JsonOption = False,
) -> None:
    """How often each gate is shut (< 0.1) or wide open (> 0.9) while the model reads a text.

    Per layer and gate, the fraction of (unit, step) pairs below 0.1 (left-saturated) and above
    0.9 (right-saturated), and a scatter of the units (Karpathy, Johnson & Fei-Fei 2015, fig. 3).

    LSTM gates i, f, o; GRU r, z. A vanilla RNN has no gates: for it, the same counts are made of
    its tanh output h (below −0.9, above 0.9), where the gradient through a unit vanishes.
    """
    from charlstm.cli.ui import charts
    from charlstm.insight import views

    view, rows = views.gates(given(ViewConfig, max_chars=max_chars), checkpoint, text_file, note)
    ckpt, tx = view.ckpt, view.text
    if as_json:
        return print_json({"cell": ckpt.config.cell, "steps": len(tx.ids), "gates": charts.gates_record(rows)})
    with report_console() as console:
        charts.gates_view(console, rows, len(tx.ids))


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def gradients(
    text_file: TextArgument,
    checkpoints: Annotated[list[Path] | None, typer.Option("--checkpoint", "-c", readable=False, help="Checkpoint to look into; give it again to draw several models on one scale, e.g. -c lstm.safetensors -c rnn.safetensors (default: the newest in ./checkpoints).", show_default=False)] = None,
    max_lag: Annotated[int | None, option(ViewConfig, "max_lag", "--max-lag", "-K")] = None,
    positions: Annotated[int | None, option(ViewConfig, "positions", "--positions", "-P")] = None,
    max_chars: MaxCharsOption = None,
    as_json: JsonOption = False,
) -> None:
# fmt: on
    """How far back the gradient reaches: ‖∂L_t/∂h_(t−k)‖ against k, on a log scale.

    For every layer's states (h, and each other state the cell declares: the LSTM's cell state
    c), k = 0..K, averaged over positions t; then, for each, the norm at k = K over the one at
    k = 0 and the steady factor per step back that leaves as much. Several --checkpoint options draw their models one after another on
    one shared log scale (with --json: one JSON line per model).

    L_t is the cross-entropy of step t; each norm is exact, from one backward pass from step t
    alone over the steps t−K..t (float64). A vanilla RNN's gradient shrinks geometrically with k;
    the LSTM's cell state carries it much further.
    """
    from charlstm.cli.ui import charts
    from charlstm.cli.ui.console import model_name
    from charlstm.insight import views

    cfg = given(ViewConfig, max_lag=max_lag, positions=positions, max_chars=max_chars)
    models = views.gradients(cfg, checkpoints or [None], text_file, note)
    if as_json:
        for ckpt, flow in models:
            print_json({"checkpoint": str(ckpt.path), "cell": ckpt.config.cell, "max_lag": cfg.max_lag, **charts.gradients_record(flow)})
        return
    with report_console() as console:
        charts.gradients_view(console, [(f"{ckpt.path}: {model_name(ckpt.config)}", flow) for ckpt, flow in models])


# a command's options, one a line as --help lists them: not reflowed by the formatter
# fmt: off
def gradcheck(
    cell: Annotated[str | None, option(ViewConfig, "cell")] = None,
    random_seed: Annotated[int | None, option(ViewConfig, "random_seed")] = None,
    as_json: JsonOption = False,
) -> None:
# fmt: on
    """Check the hand-derived gradients live, against central differences.

    model.backward against central differences of the loss, in float64, for every parameter and
    initial state of a small random model (2 layers of 4 units, 5 characters, 6 steps × 2
    streams). Exit code 1 if any tensor disagrees.
    """
    from charlstm.cli.ui import charts
    from charlstm.insight import views
    from charlstm.insight.probe.finitediff import EPS

    results = views.gradcheck(given(ViewConfig, cell=cell, random_seed=random_seed))
    if as_json:
        print_json(charts.gradcheck_record(results))
    else:
        with report_console() as console:
            charts.gradcheck_view(console, results, EPS)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


# The view commands, in the order help lists them (cli/app.py adds each): a new view is its
# command above and its name here.
VIEWS = (neurons, gates, gradients, gradcheck)
