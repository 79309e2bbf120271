"""The settings table of the report's first section: each run's corpus, model, training settings,
steps, time and best validation loss, a row per run (its checkpoint in the name's tooltip)."""

from __future__ import annotations

from charlstm.insight.report import colours
from charlstm.insight.report.escape import esc
from charlstm.insight.report.gather import RunReport
from charlstm.units import nats_to_bits


def settings_table(runs: list[RunReport]) -> str:
    """The settings of each run, a row each (runs as rows keep a table of fifteen runs within the
    page's width; the columns are few and wrap), the run's line style beside its name and its
    checkpoint's path in the name's tooltip."""
    head = "<tr><th>run</th>" + "".join(f"<th>{label}</th>" for label, _ in SETTINGS) + "</tr>"
    rows = []
    for j, r in enumerate(runs):
        colour, dash = colours.run_style(j)
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        key = (
            f'<svg class="style" width="26" height="8" aria-hidden="true"><line x1="1" x2="25" y1="4" y2="4" '
            f'stroke="{colour}" stroke-width="2.2"{dashes}/></svg>'
        )
        name = f'<td title="{esc(_checkpoint(r))}" data-run="{esc(r.name)}">{key} {esc(r.name)}</td>'
        rows.append("<tr>" + name + "".join(f"<td>{esc(fn(r))}</td>" for _, fn in SETTINGS) + "</tr>")
    return f'<h3>Settings</h3><table class="settings">{head}{"".join(rows)}</table>'


def _checkpoint(r: RunReport) -> str:
    return str(r.weights) + ("" if r.history_from == r.weights else f" (history: {r.history_from.name})")


def _settings(run: RunReport, *keys: str) -> list:
    """Training settings of a run, "–" where the checkpoint has none."""
    config = run.train.get("config") or {}
    return [config.get(k, "–") for k in keys]


def _corpus(run: RunReport) -> str:
    corpus = run.train.get("corpus") or {}
    return f"{corpus['name']}: {corpus.get('chars', 0):,} chars" if "name" in corpus else "–"


def _best(run: RunReport) -> str:
    best = run.train.get("best_val_loss")
    return "–" if best is None else f"{nats_to_bits(best):.3f} bits/char"


def _steps(run: RunReport) -> str:
    step, per_epoch = run.train.get("step", 0), run.train.get("steps_per_epoch") or 0
    return f"{step:,}" + (f" ({step / per_epoch:.2f} epochs)" if per_epoch else "")


SETTINGS = (
    ("corpus", _corpus),
    ("model", lambda r: f"{r.ckpt.config.num_layers}×{r.ckpt.config.hidden_size} {r.ckpt.config.cell.upper()}"),
    ("parameters", lambda r: f"{sum(int(p.size) for p in r.ckpt.params.values()):,}"),
    ("batch × seq", lambda r: "{} × {}".format(*_settings(r, "batch_size", "seq_len"))),
    ("optimiser", lambda r: "{} lr {} ({}), clip {}".format(*_settings(r, "optimizer", "lr", "schedule", "clip"))),
    ("dropout", lambda r: "{}".format(*_settings(r, "dropout"))),
    ("steps", _steps),
    ("time", lambda r: duration(r.train.get("elapsed", 0.0))),
    ("best validation", _best),
    ("status", lambda r: str(r.train.get("status", "–"))),
)


def duration(s: float) -> str:
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
