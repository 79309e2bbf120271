"""The settings table of the report's first section: each run's checkpoint, corpus, model,
training settings, steps, time and best validation loss, a column per run."""

from __future__ import annotations

from charlstm.insight.report import colours
from charlstm.insight.report.escape import esc
from charlstm.insight.report.gather import RunReport
from charlstm.units import nats_to_bits


def settings_table(runs: list[RunReport]) -> str:
    """The config of each run, a column each."""
    rows = [("", [f'<span style="color:{colours.run_colour(j)}">■</span> {esc(r.name)}' for j, r in enumerate(runs)])]
    for label, fn in SETTINGS:
        rows.append((label, [esc(fn(r)) for r in runs]))
    body = "".join(
        f"<tr><th>{label}</th>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>" for label, values in rows
    )
    return f'<h3>Settings</h3><table class="settings">{body}</table>'


def _settings(run: RunReport, *keys: str) -> list:
    """Training settings of a run, "–" where the checkpoint has none."""
    config = run.train.get("config") or {}
    return [config.get(k, "–") for k in keys]


def _corpus(run: RunReport) -> str:
    corpus = run.train.get("corpus") or {}
    return f"{corpus['name']}: {corpus.get('chars', 0):,} chars" if "name" in corpus else "–"


def _best(run: RunReport) -> str:
    best = run.train.get("best_val_loss")
    return "–" if best is None else f"{nats_to_bits(best):.3f} bits/char ({best:.3f} nats)"


def _steps(run: RunReport) -> str:
    step, per_epoch = run.train.get("step", 0), run.train.get("steps_per_epoch") or 0
    return f"{step:,}" + (f" ({step / per_epoch:.2f} epochs of {per_epoch:,} steps)" if per_epoch else "")


SETTINGS = (
    (
        "checkpoint",
        lambda r: str(r.weights) + ("" if r.history_from == r.weights else f" (history: {r.history_from.name})"),
    ),
    ("corpus", _corpus),
    (
        "model",
        lambda r: (
            f"{r.ckpt.config.num_layers}×{r.ckpt.config.hidden_size} {r.ckpt.config.cell.upper()}, vocabulary {r.ckpt.config.vocab_size}"
        ),
    ),
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
