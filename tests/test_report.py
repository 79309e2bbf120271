"""`charlstm report` without a browser: the numbers on the page are those of the terminal views
and `eval` (their --json, through the real command line), the per-step curve in checkpoints, the
size of a large report, bad files among good ones, and escaping. In a real browser:
test_report_browser.py."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from htmlpage import parse

from charlstm.config import TrainConfig
from charlstm.errors import CheckpointError
from charlstm.nn import model
from charlstm.store import checkpoint
from charlstm.text.corpus import load_corpus
from charlstm.text.vocab import Vocab
from charlstm.training.loop import train

from helpers import HOSTILE, REPORT_CELLS, REPORT_TEXT, assert_clean_error, run_cli

TOP = 5  # the report's default number of guesses (ReportConfig.top)


def page_of(path: Path):
    return parse(path.read_text(encoding="utf-8"))


def tooltips(page, run: str) -> list[str]:
    """The tooltip texts of the surprisal view of `run`, one per predicted character."""
    box = page.find("div", class_="sx", data_run=run)
    return [i.attrs["title"] for i in box.find_all("i") if "title" in i.attrs]


def visible(ch: str) -> str:
    return {"\n": "\\n", " ": "␠"}.get(ch, ch)


def test_a_character_is_written_one_way_on_the_page_and_the_terminal():
    """The tooltips' rule (`charlstm.text.visible`), which the terminal's tables use too."""
    from charlstm.text.visible import visible as shown

    assert [shown(ch) for ch in "\n\t\r a\x00é\u200b"] == ["\\n", "\\t", "\\r", "␠", "a", "U+0000", "é", "U+200B"]


# ------------------------------------------------------------------------ the same numbers


def test_surprisal_on_the_page_is_eval_shows(report_runs, report_page):
    """Every predicted character's bits and top guesses, and the mean, as `eval --show --top 5
    --json` gives them for the validation text (the page's default text)."""
    page = page_of(report_page)
    for cell in REPORT_CELLS:
        ckpt = report_runs / "runs" / f"{cell}.safetensors"
        result = run_cli("eval", str(report_runs / "val.txt"), "-c", str(ckpt), "--top", str(TOP), "--json")
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)["surprisal"]
        tips = tooltips(page, cell)
        assert len(tips) == len(shown["bits"]) == len(shown["text"]) - 1
        for t, (tip, bits, guesses) in enumerate(zip(tips, shown["bits"], shown["guesses"])):
            head, *rows = tip.split("\n")
            assert head.startswith(f"{visible(shown['text'][t + 1])}: ") and head.endswith(" bits"), (t, head)
            # the page is computed here and eval in its own process, on another BLAS thread count:
            # the printed figures agree to the last digit, give or take one where a value sits at
            # a rounding boundary
            assert abs(float(head.split()[-2]) - bits) <= 0.005 + 1e-9, (t, head, bits)
            assert [r.rsplit(" ", 1)[0] for r in rows] == [visible(g) for g, _ in guesses], (t, rows)
            for r, (_, p) in zip(rows, guesses):
                assert abs(float(r.rsplit(" ", 1)[1]) - p) <= 0.0005 + 1e-9, (t, r, p)
        assert page.find("b", class_="mean", data_run=cell).text() == f"{shown['mean_bits']:.4f}"


def test_neurons_gates_and_gradients_on_the_page_are_the_views(report_runs, report_page):
    page = page_of(report_page)
    ckpt, text = str(report_runs / "runs" / "lstm.safetensors"), str(report_runs / "val.txt")
    for feature in ("bracket", "line"):
        out = json.loads(run_cli("neurons", text, "-c", ckpt, "--find", feature, "--top", "3", "--json").stdout)
        rows = page.find("table", class_="units", data_run="lstm", data_feature=feature).find_all("tr")[1:]
        cells = [[td.text() for td in row.find_all("td")] for row in rows]
        assert cells == [
            [str(k), str(u["layer"]), str(u["unit"]), u["what"], f"{u['r']:+.3f}"]
            for k, u in enumerate(out["units"], 1)
        ]
    gates = json.loads(run_cli("gates", text, "-c", ckpt, "--json").stdout)["gates"]
    rows = page.find("table", class_="gates", data_run="lstm").find_all("tr")[1:]
    assert [[td.text() for td in row.find_all("td")][:6] for row in rows] == [
        [
            str(g["layer"]),
            g["gate"],
            f"{g['low']:g}",
            f"{g['high']:g}",
            f"{g['left_fraction']:.1%}",
            f"{g['right_fraction']:.1%}",
        ]
        for g in gates
    ]
    flow = json.loads(run_cli("gradients", text, "-c", ckpt, "--json").stdout)
    table = page.find("table", class_="flow")
    heads = [th.attrs.get("data-series") for th in table.find_all("th")[1:]]
    runs = [th.attrs.get("data-run") for th in table.find_all("th")[1:]]
    for row in table.find_all("tr")[1:]:
        k, *values = [td.text() for td in row.find_all("td")]
        lstm = {s: v for r, s, v in zip(runs, heads, values) if r == "lstm"}
        for layer in range(2):
            assert lstm[f"h l{layer}"] == f"{flow['h'][layer][int(k)]:.2e}"
            assert lstm[f"c l{layer}"] == f"{flow['c'][layer][int(k)]:.2e}"


def test_the_curves_have_a_point_per_logged_step_and_validation(report_runs, report_page):
    page = page_of(report_page)
    for cell in REPORT_CELLS:
        saved = checkpoint.load(report_runs / "runs" / f"{cell}.resume.safetensors")
        curve, history = saved.train["curve"], saved.history
        assert len(curve) >= 25 and len(history) == 3
        for key, n in (
            ("train", len(curve)),
            ("val", len(history)),
            ("train-time", len(curve)),
            ("val-time", len(history)),
            ("lr", len(curve)),
        ):
            line = page.find("polyline", data_key=key, data_run=cell)
            assert int(line.attrs["data-points"]) == n == len(line.attrs["points"].split()), (cell, key)
        samples = page.find("ol", class_="samples", data_run=cell).find_all("li")
        assert [int(li.attrs["data-step"]) for li in samples] == [h["step"] for h in history]
        assert [li.find("pre").text() for li in samples] == [h["sample"] for h in history]
        assert all(li.find("pre").text().startswith(HOSTILE) for li in samples)


# ----------------------------------------------------------------------------- the curve


def test_checkpoints_keep_a_curve_point_each_tenth_of_an_epoch(tiny_corpus, tmp_path):
    """The curve's points are the steps --log-json logs by default, with the smoothed loss, lr and
    speed the Step events report; a resumed run goes on with the same curve."""
    corpus = load_corpus(tiny_corpus)
    cfg = TrainConfig(seq_len=16, batch_size=4, epochs=2, sample_length=0, kernels="numpy")
    events: list = []
    stop_at = 40
    train(
        corpus,
        model.ModelConfig(corpus.vocab.size, 16, 1),
        cfg,
        tmp_path / "m.safetensors",
        events.append,
        lambda: sum(type(e).__name__ == "Step" for e in events) >= stop_at,
    )
    resumed = checkpoint.load(tmp_path / "m.resume.safetensors")
    train(corpus, resumed.config, cfg, tmp_path / "m.safetensors", events.append, resume=resumed)
    saved = checkpoint.load(tmp_path / "m.resume.safetensors")
    every = saved.train["steps_per_epoch"] // 10
    steps = [e for e in events if type(e).__name__ == "Step" and e.step % every == 0]
    assert [row[0] for row in saved.train["curve"]] == [e.step for e in steps]
    assert len(steps) == saved.train["step"] // every >= 20
    for row, e in zip(saved.train["curve"], steps):
        assert row[2] == pytest.approx(e.smoothed_loss, abs=1e-6)
        assert row[3] == pytest.approx(e.lr, rel=1e-5) and row[4] == pytest.approx(e.chars_per_s, abs=0.1)
        assert row[1] == pytest.approx(e.elapsed, abs=1e-3)


def test_a_long_curve_halves_its_points(monkeypatch):
    from charlstm.training import state

    monkeypatch.setattr(state, "MAX_CURVE", 8)
    p = state.Progress()
    for _ in range(200):
        p.count(1.0, 10)
        p.record(50, 0.01, 100.0)  # a point every 5 steps, until the curve passes 8 points
    steps = [row[0] for row in p.curve]
    assert len(steps) <= 8 and steps[-1] == 200
    assert len({b - a for a, b in itertools.pairwise(steps)}) == 1  # evenly spaced
    assert steps[1] - steps[0] == 5 * p.curve_stride


def test_a_malformed_curve_is_a_corrupt_checkpoint(tmp_path):
    vocab = Vocab(("a", "b"))
    config = model.ModelConfig(2, 4, 1)
    bad = [{"curve": c} for c in ([[1, 2, "x", 4, 5]], [[1, 2, 3]], "rows", [[1, 2, float("nan"), 4, 5]])]
    for train_meta in [*bad, {"curve_stride": 0}, {"curve_stride": 1.5}]:
        ckpt = checkpoint.Checkpoint(config, vocab, model.init_params(config, 0), train_meta)
        path = tmp_path / "bad.safetensors"
        try:
            checkpoint.save(ckpt, path)
        except CheckpointError:
            continue  # NaN cannot even be written
        with pytest.raises(CheckpointError, match="malformed training metadata"):
            checkpoint.load(path)


# ------------------------------------------------------------------------ runs and files


def big_run(folder: Path, cell: str, vocab: Vocab, seed: int) -> None:
    """A 2×256 checkpoint with 20 epochs of history (a 200-character sample each) and a curve of
    ten points an epoch, written directly: the size of a long run's report without training it."""
    config = model.ModelConfig(vocab.size, 256, 2, cell)
    rng = np.random.default_rng(seed)
    history = [
        {
            "epoch": e,
            "step": 100 * e,
            "train_loss": 2.0,
            "val_loss": 2.1,
            "val_bpc": 2.1 / math.log(2),
            "lr": 0.004,
            "elapsed": 30.0 * e,
            "chars_per_s": 20000.0,
            "best": True,
            "sample": "".join(rng.choice(list(vocab.chars), 200)),
        }
        for e in range(1, 21)
    ]
    curve = [[s, 0.3 * s, 2.0 + 1 / s, 0.004, 20000.0] for s in range(10, 2001, 10)]
    train_meta = {"step": 2000, "steps_per_epoch": 100, "curve": curve, "config": {"batch_size": 64, "seq_len": 100}}
    checkpoint.save(
        checkpoint.Checkpoint(config, vocab, model.init_params(config, seed), train_meta, history),
        folder / f"{cell}.safetensors",
    )


def test_three_large_runs_with_a_long_text_stay_under_2_mb(tmp_path):
    text = (REPORT_TEXT * 2)[:2000]
    (tmp_path / "view.txt").write_text(text, encoding="utf-8")
    vocab = Vocab.from_text(text + "xyz")
    for seed, cell in enumerate(REPORT_CELLS):
        big_run(tmp_path / "runs", cell, vocab, seed)
    result = run_cli(
        "report", str(tmp_path / "runs"), "--text", str(tmp_path / "view.txt"), "-o", str(tmp_path / "big.html")
    )
    assert result.returncode == 0, result.stderr
    size = (tmp_path / "big.html").stat().st_size
    assert size < 2_000_000, size
    page = page_of(tmp_path / "big.html")
    assert len(tooltips(page, "lstm")) == 1999 and len(page.find_all("svg")) > 10


def test_a_folder_with_a_corrupt_and_a_foreign_file_reports_the_good_runs(report_runs, tmp_path):
    from safetensors.numpy import save_file

    folder = tmp_path / "runs"
    shutil.copytree(report_runs / "runs", folder, ignore=shutil.ignore_patterns("*.html"))
    data = (folder / "gru.safetensors").read_bytes()
    (folder / "broken.safetensors").write_bytes(data[: len(data) // 2])
    save_file({"weight": np.zeros((2, 2), np.float32)}, str(folder / "foreign.safetensors"))
    (folder / "notes.safetensors").write_text("not a checkpoint at all")
    result = run_cli("report", str(folder), "--text", str(report_runs / "val.txt"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    for name in ("broken", "foreign", "notes"):
        assert re.search(rf"left out: .*{name}\.safetensors", result.stderr), result.stderr
    page = page_of(folder / "report.html")
    skipped = page.find("div", id="skipped").text()
    assert all(f"{name}.safetensors" in skipped for name in ("broken", "foreign", "notes"))
    assert {ol.attrs["data-run"] for ol in page.find_all("ol", class_="samples")} == set(REPORT_CELLS)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    shutil.move(folder / "broken.safetensors", only_bad)
    assert_clean_error(run_cli("report", str(only_bad)), "broken.safetensors", code=1)


def test_without_its_corpus_a_run_reports_its_curves_and_says_why_there_are_no_views(report_runs, tmp_path):
    ckpt = checkpoint.load(report_runs / "runs" / "rnn.safetensors")
    ckpt.train = {**ckpt.train, "corpus": {**ckpt.train["corpus"], "path": str(tmp_path / "gone.txt")}}
    ckpt.train.pop("curve")  # and a checkpoint from before the per-step curve
    path = checkpoint.save(ckpt, tmp_path / "moved.safetensors")
    result = run_cli("report", str(path))
    assert result.returncode == 0, result.stderr
    assert "gone.txt" in result.stderr and "--text" in result.stderr
    page = page_of(tmp_path / "moved.report.html")
    for section in ("surprisal", "neurons", "gates", "gradients"):
        assert "no longer at" in page.find("section", id=section).text()
    assert int(page.find("polyline", data_key="train", data_run="moved").attrs["data-points"]) == len(ckpt.history)
    assert "one point per epoch" in page.find("section", id="curves").text()
    with_text = run_cli("report", str(path), "--text", str(report_runs / "val.txt"), "-o", str(tmp_path / "t.html"))
    assert with_text.returncode == 0 and len(tooltips(page_of(tmp_path / "t.html"), "moved")) > 100


def test_markup_in_a_sample_a_name_and_the_text_is_escaped(report_runs, tmp_path):
    ckpt = checkpoint.load(report_runs / "runs" / "lstm.safetensors")
    ckpt.history[0]["sample"] = 'x</pre></textarea><script>alert("s")</script><img src=x onerror=alert(2)>'
    odd = tmp_path / '<b>"q"&\'.safetensors'
    checkpoint.save(ckpt, odd)
    result = run_cli("report", str(odd), "--text", str(report_runs / "val.txt"), "-o", str(tmp_path / "p.html"))
    assert result.returncode == 0, result.stderr
    raw = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert raw.count("<script") == 1 and "<img" not in raw and "</textarea>" not in raw and "<b>" not in raw
    page = parse(raw)
    assert page.find("pre").text() == ckpt.history[0]["sample"]
    assert HOSTILE[:25] in page.find("div", class_="sx").text()


# --------------------------------------------------------------------------- command line


def test_report_usage_errors_are_one_line(report_runs):
    runs = str(report_runs / "runs")
    assert_clean_error(run_cli("report", runs, "--top", "0"), "--top", code=2)
    assert_clean_error(run_cli("report", runs, "--find", "(unclosed"), "regular expression", code=2)
    assert_clean_error(run_cli("report", str(report_runs / "nothing-here")), "nothing-here", code=1)
    assert_clean_error(run_cli("report", runs, "--text", str(report_runs / "missing.txt")), "missing.txt", code=1)
    assert_clean_error(run_cli("report", cwd=report_runs), "no checkpoint in checkpoints/", code=1)


def test_report_help_imports_nothing_heavy():
    code = (
        "import sys; sys.argv = ['charlstm', 'report', '--help']\nfrom charlstm import cli\ntry:\n    cli.main()\n"
        "except SystemExit:\n    pass\n"
        "print([m for m in ('numpy', 'charlstm.insight.report', 'playwright', 'rich.live') if m in sys.modules], file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    assert "--max-chars" in result.stdout and "(default: 2000)" in result.stdout
    assert result.stderr.strip().endswith("[]"), result.stderr


def test_fifteen_runs_on_two_texts_keep_apart_and_stay_small(many_runs_page):
    """15 runs of two texts: each run's lines have their own colour and dash, each text its own
    loss charts under a heading, the settings a row per run, and the model views only for the
    three best runs (the others named): a page under 2 MB."""
    out, stderr = many_runs_page
    assert "--views 15" in stderr  # the note says how to draw them all
    size = out.stat().st_size
    assert size < 2_000_000, size
    page = page_of(out)
    styles = {}
    for line in page.find_all("polyline", data_key="train"):
        styles.setdefault(line.attrs["data-run"], set()).add(
            (line.attrs["stroke"], line.attrs.get("stroke-dasharray", ""))
        )
    assert len(styles) == 15 and all(len(s) == 1 for s in styles.values())  # one style a run, by step and time
    assert len({next(iter(s)) for s in styles.values()}) == 15  # and no two alike
    headings = [h.text() for h in page.find_all("h3", class_="text-group")]
    assert len(headings) == 2 and "book" in headings[0] and "code" in headings[1]
    assert len(page.find_all("svg", aria_label="Loss by step")) == 2
    assert len(page.find("table", class_="settings").find_all("tr")) == 1 + 15
    drawn = [box.attrs["data-run"] for box in page.find_all("div", class_="sx")]
    assert drawn == ["run00-lstm", "run01-gru", "run02-rnn"]  # the lowest validation loss
    assert "run14-rnn" in page.find("p", class_="views-left-out").text()
