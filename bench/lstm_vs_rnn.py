"""The race of docs/understanding.md: an LSTM and a vanilla RNN with the same number of parameters,
trained for the same minutes (or the same steps) on the same text, then compared where the cell
state should matter: closing brackets far from their opening one.

    python bench/lstm_vs_rnn.py                    # corpora/nesting.txt, 2 minutes each
    python bench/lstm_vs_rnn.py --steps 1500       # the same number of steps instead of minutes

Runs, one after the other (never at once: two runs on 2 cores halve each other), the two commands
the document shows, in a temporary folder:

    charlstm train corpora/nesting.txt -H 128 -B 32 --max-minutes 2 --sample-length 0               # LSTM 2×128
    charlstm train corpora/nesting.txt -H 256 --cell rnn -B 32 --max-minutes 2 --sample-length 0    # RNN 2×256

Prints for each its parameters, steps, best validation bits/char and speed, the RNN − LSTM
difference, the mean surprisal of the closing brackets of the validation split grouped by how far
back their opening bracket is (read as one stream from the zero state, as `eval --show` reads), and
how much of the gradient is left 40 steps back (`charlstm gradients`' summary). Every figure goes to
bench/results/lstm_vs_rnn.json. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"lstm": ["-H", "128"], "rnn": ["-H", "256", "--cell", "rnn"]}  # about 200,000 parameters each
COMMON = ["-B", "32", "--sample-length", "0"]
DISTANCES = ((1, 2), (2, 10), (10, 20), (20, 40), (40, 80))  # characters from opening to closing bracket
CLOSERS, OPENERS = ")]}", "([{"


def train(corpus: Path, cell: str, limit: list[str], folder: Path) -> dict:
    """One `charlstm train` as the document shows it; its end record and checkpoint."""
    log = folder / f"{cell}.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "charlstm",
        "train",
        str(corpus),
        *MODELS[cell],
        *COMMON,
        *limit,
        "--log-json",
        str(log),
        "--quiet",
    ]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"charlstm train failed ({done.returncode}):\n{done.stderr}")
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    header, end = records[0], records[-1]
    return {
        "command": shlex.join(["charlstm", *cmd[3:-3]]),
        "params": header["num_params"],
        "step": end["step"],
        "best_val_bpc": end["best_val_bpc"],
        "chars_per_s": end["chars_per_s"],
        "checkpoint": header["model_path"],
    }


def closer_distances(text: str) -> list[int]:
    """For each character, how far back the opening bracket it closes is (0: not a closing bracket)."""
    out: list[int] = []
    stack: list[int] = []  # where the open brackets are
    for i, ch in enumerate(text):
        if ch in CLOSERS and stack:
            out.append(i - stack.pop())
            continue
        out.append(0)
        if ch in OPENERS:
            stack.append(i)
        elif ch == "\n":
            stack.clear()
    return out


def where_it_pays(checkpoint: Path, corpus: Path) -> dict:
    """Mean surprisal (bits) of the validation split's closing brackets by distance, and the
    gradient left 40 steps back in the top layer's h."""
    import numpy as np

    from charlstm.insight import probe
    from charlstm.store import checkpoint as ckpt_io

    ckpt = ckpt_io.load(checkpoint)
    text = corpus.read_text(encoding="utf-8")
    val = text[len(text) - round(len(text) * 0.05) :]  # the validation split (--val-fraction 0.05)
    ids = probe.text_ids(ckpt.vocab, val, None).ids
    bits = probe.surprisal(probe.trace(ckpt.params, ckpt.config, ids), 1).bits  # bits[t]: character t + 1
    dist = np.array(closer_distances(val))[1:]
    by_distance = {
        f"{lo}" if hi == lo + 1 else f"{lo}-{hi - 1}": float(bits[(dist >= lo) & (dist < hi)].mean())
        for lo, hi in DISTANCES
    }
    flow = probe.gradient_flow(ckpt.params, ckpt.config, probe.text_ids(ckpt.vocab, text, 2000).ids, 40, 32)
    left = probe.decay(flow.mean("h")[-1])
    return {
        "bits_by_distance": by_distance,
        "others": float(bits[dist == 0].mean()),
        "top_h_left_at_40": left[0] if left else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "nesting.txt")
    limit = ap.add_mutually_exclusive_group()
    limit.add_argument("--minutes", type=float, default=2.0)
    limit.add_argument("--steps", type=int, help="the same number of steps instead of the same minutes")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lstm_vs_rnn.json")
    args = ap.parse_args()
    limit_options = (
        ["--epochs", "100", "--max-steps", str(args.steps)] if args.steps else ["--max-minutes", f"{args.minutes:g}"]
    )
    print(f"{args.corpus.name}, {' '.join(limit_options)}  load {os.getloadavg()[0]:.2f}", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in MODELS:
            row = train(args.corpus.resolve(), cell, limit_options, Path(tmp))
            row.update(where_it_pays(Path(tmp) / row["checkpoint"], args.corpus))
            rows[cell] = row
            far = "  ".join(f"{k}: {v:.2f}" for k, v in row["bits_by_distance"].items())
            print(
                f"{cell:<5} {row['params']:,} parameters  {row['step']:,} steps  best val {row['best_val_bpc']:.3f} bpc  "
                f"{row['chars_per_s']:,.0f} chars/s  | closers, bits by distance {far}  | others {row['others']:.2f}  "
                f"| top h at k=40 / k=0 {row['top_h_left_at_40']:.1e}",
                flush=True,
            )
    print(
        f"RNN − LSTM: {rows['rnn']['best_val_bpc'] - rows['lstm']['best_val_bpc']:+.3f} bits/char  load {os.getloadavg()[0]:.2f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"limit": limit_options, "rows": rows}, indent=2))
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
