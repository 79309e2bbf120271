"""`charlstm report`: how long a report takes to write, how big it is, how fast a browser shows it,
and what the command costs at start-up.

    python bench/report.py [--repeats 3] [--quick]

Writes, in a temporary folder, checkpoints of three 2×256 models (an LSTM, a GRU and a vanilla
RNN, random weights) each with 20 epochs of history (a 200-character sample an epoch) and a
learning curve of ten points an epoch, and a 2,000-character view text. Then measures:
- the report of one run and of the three overlaid: seconds to write (median of --repeats, in
  this process: the probe's forward pass, gradient flow and page), and the page's size;
- each page in the distribution's headless Chromium (Playwright, `chromium` on PATH): the
  navigation's load event and first contentful paint, from the browser's Performance API;
- `charlstm report --help` and `charlstm --help`, wall seconds of a fresh process (median).
Prints a table and writes bench/results/report.json. `--quick` uses 2×32 models (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def make_runs(folder: Path, hidden: int) -> tuple[Path, Path]:
    """Three checkpoints in folder/runs and a view text; returns (runs folder, text file)."""
    from charlstm.nn import model
    from charlstm.store import checkpoint
    from charlstm.text.vocab import Vocab

    text = (ROOT / "corpora" / "lighthouse.txt").read_text(encoding="utf-8")
    vocab = Vocab.from_text(text)
    rng = np.random.default_rng(0)
    for seed, cell in enumerate(("lstm", "gru", "rnn")):
        config = model.ModelConfig(vocab.size, hidden, 2, cell)
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
        meta = {"step": 2000, "steps_per_epoch": 100, "curve": curve, "config": {"batch_size": 64, "seq_len": 100}}
        ckpt = checkpoint.Checkpoint(config, vocab, model.init_params(config, seed), meta, history)
        checkpoint.save(ckpt, folder / "runs" / f"{cell}.safetensors")
    view = folder / "view.txt"
    view.write_text(text[:2000], encoding="utf-8")
    return folder / "runs", view


def time_report(paths: list[Path], view: Path, out: Path, repeats: int) -> tuple[float, int]:
    from charlstm.insight.report import write_report

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        written = write_report(paths, view, out)
        times.append(time.perf_counter() - t)
    return statistics.median(times), written.size


def browser_times(pages: list[Path]) -> list[dict]:
    """Load event and first contentful paint of each page, in ms, offline."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return [{} for _ in pages]
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        for page_path in pages:
            context = browser.new_context(offline=True)
            page = context.new_page()
            page.goto(page_path.as_uri(), wait_until="load")
            nav = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            paint = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null")
            out.append({"load_ms": round(nav, 1), "first_paint_ms": paint and round(paint, 1)})
            context.close()
        browser.close()
    return out


def start_time(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "charlstm", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2×32 models: checks the script end to end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs, view = make_runs(folder, 32 if args.quick else 256)
        one, three = folder / "one.html", folder / "three.html"
        rows = {
            "one run": time_report([runs / "lstm.safetensors"], view, one, args.repeats),
            "three runs": time_report([runs], view, three, args.repeats),
        }
        shown = browser_times([one, three])
    results = {name: {"write_s": round(t, 3), "bytes": size, **b} for (name, (t, size)), b in zip(rows.items(), shown)}
    results["start"] = {
        "report --help s": round(start_time(["report", "--help"], args.repeats), 3),
        "--help s": round(start_time(["--help"], args.repeats), 3),
    }
    print(f"{'page':<12} {'write s':>8} {'size':>10} {'load ms':>8} {'paint ms':>9}")
    for name in ("one run", "three runs"):
        r = results[name]
        print(
            f"{name:<12} {r['write_s']:>8.3f} {r['bytes']:>10,} {r.get('load_ms', '-')!s:>8} {r.get('first_paint_ms', '-')!s:>9}"
        )
    print(
        f"start-up: charlstm report --help {results['start']['report --help s']:.3f} s, charlstm --help {results['start']['--help s']:.3f} s"
    )
    out = HERE / "results" / "report.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"quick": args.quick, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
