"""Quality per minute, side by side: `charlstm train` against a plain PyTorch char-LSTM trained for
the same minutes on the same machine, both on the first 90% of a text, both scored on the last 10%.

    python bench/quality.py CORPUS [CORPUS ...] --minutes 10 [--charlstm "--dropout 0"] [--no-torch]
                            [--reference-script SCRIPT] [--reference-json EARLIER.json] [--out FILE.json]

For each corpus, one after the other (never at once: two runs on 2 cores halve each other):
1. `charlstm train CORPUS --val-fraction 0.1 --max-minutes M` plus any `--charlstm` options, into
   a temporary folder; its best checkpoint (by its own validation on the last 10%) is kept.
2. `SCRIPT CORPUS --minutes M`, the PyTorch anchor (nn.LSTM 2×256, Adam 2e-3, no dropout, B64
   T100; `--reference-script`, by default ../shared/reference/torch_quality.py from the
   repository's folder), whose best held-out loss over its epochs is read.
3. charlstm's best checkpoint is scored on the held-out text exactly as the reference scores its
   own model: the characters from int(0.9·n) on, one stream, state carried from the first
   character. charlstm's own split puts its boundary at n − round(0.1·n); the two differ by at
   most one character, and the script checks that charlstm never trained on scored text.

Prints one row per corpus (held-out nats/char and bits/char of each side, the difference, chars/s)
and writes every figure to bench/results/quality.json (or --out). Run on an otherwise idle machine.

The anchor does not depend on charlstm's options, so screening several of them need not run it
each time: `--reference-json EARLIER.json` takes it from an earlier run's output, for the same
corpus file (by its hash) and the same minutes, instead of step 2. The row is then marked
"reused", with the file, commit and time the anchor was measured; use it only with anchors from
the same machine and session (the anchor's speed, and so its loss, depends on both).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charlstm.units import nats_to_bits

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "../shared/reference/torch_quality.py"  # the PyTorch anchor, relative to the repository's folder
HELD_OUT = 0.1


def run_charlstm(corpus: Path, minutes: float, extra: list[str], folder: Path) -> dict:
    """Train with the real CLI; return its last log records and the best checkpoint's path."""
    out = folder / (corpus.stem + ".safetensors")
    log = folder / "log.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "charlstm",
        "train",
        str(corpus),
        "--val-fraction",
        str(HELD_OUT),
        "--max-minutes",
        str(minutes),
        "--out",
        str(out),
        "--log-json",
        str(log),
        "--quiet",
        *extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"charlstm train failed ({done.returncode}):\n{done.stderr}")
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {
        "checkpoint": out,
        "records": records,
        "wall_s": wall,
        "stderr": done.stderr,
        "command": shlex.join(cmd[1:]),
    }


def run_reference(script: Path, corpus: Path, minutes: float) -> dict:
    """The PyTorch anchor's JSON lines: one per epoch, then its best held-out loss."""
    cmd = [sys.executable, str(script), str(corpus), "--minutes", str(minutes)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"torch reference failed ({done.returncode}):\n{done.stderr}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {"epochs": lines[:-1], "best_val_loss": lines[-1]["best_val_loss"]}


def corpus_hash(corpus: Path) -> str:
    return hashlib.sha256(corpus.read_bytes()).hexdigest()[:16]


def reused_references(path: Path, corpora: list[Path], minutes: float) -> dict[Path, dict]:
    """For each corpus, the anchor measured for the same text and minutes in an earlier output
    of this script (the latest one there); SystemExit naming what is missing."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"--reference-json {path}: cannot read it ({e})") from None
    found = {}
    for corpus in corpora:
        digest = corpus_hash(corpus)
        rows = [
            r
            for r in earlier.get("results", [])
            if r.get("corpus_sha256") == digest and r.get("minutes") == minutes and "torch_best" in r
        ]
        if not rows:
            raise SystemExit(
                f"--reference-json {path}: no PyTorch anchor for {corpus} at {minutes:g} minutes; run without it first"
            )
        row = rows[-1]
        source = row.get("torch_reused_from") or {
            "file": str(path),
            "commit": earlier.get("commit"),
            "measured_at": earlier.get("date"),
        }
        found[corpus] = {"best_val_loss": row["torch_best"], "epochs": row["torch_epochs"], "reused_from": source}
    return found


def held_out_loss(checkpoint: Path, corpus: Path) -> tuple[float, int]:
    """charlstm's checkpoint scored on text[int(0.9·n):] as the reference scores its own model."""
    from charlstm.inference.loss import evaluate
    from charlstm.store import checkpoint as ckpt_io

    ckpt = ckpt_io.load(checkpoint)
    text = corpus.read_text(encoding="utf-8")
    n = len(text)
    start = int(n * (1 - HELD_OUT))
    trained_until = n - max(2, round(n * HELD_OUT))
    assert trained_until <= start + 1, "charlstm trained on scored text"
    ids = ckpt.vocab.encode(text[start:])
    result = evaluate(ckpt.params, ckpt.config, ids, B=1, T=2000)
    return result.loss, result.chars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--charlstm", default="", help="extra options for charlstm train, one string")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    ap.add_argument(
        "--reference-script",
        type=Path,
        help=f"the PyTorch anchor's script (default: {REFERENCE}, from the repository's folder)",
    )
    ap.add_argument(
        "--reference-json",
        type=Path,
        help="reuse the PyTorch anchor of this earlier output (same corpus, same minutes)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality.json")
    args = ap.parse_args()
    if args.no_torch and args.reference_json:
        ap.error("--no-torch and --reference-json contradict each other; give one")
    script = args.reference_script or ROOT / REFERENCE
    if not (args.no_torch or args.reference_json or script.is_file()):
        ap.error(f"no PyTorch anchor at {script}; give its script with --reference-script, or pass --no-torch")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    date = time.strftime("%Y-%m-%dT%H:%M:%S")
    reused = reused_references(args.reference_json, args.corpora, args.minutes) if args.reference_json else {}
    anchor = f"  PyTorch anchor REUSED from {args.reference_json}" if reused else ""
    print(f"charlstm {commit}  {args.minutes:g} minutes per side  load {os.getloadavg()[0]:.2f}{anchor}", flush=True)
    results = []
    for corpus in args.corpora:
        row = measure_charlstm(corpus, args.minutes, args.charlstm)
        if corpus in reused:
            ref = reused[corpus]
            row.update(
                torch_best=ref["best_val_loss"], torch_epochs=ref["epochs"], torch_reused_from=ref["reused_from"]
            )
        elif not args.no_torch:
            ref = run_reference(script, corpus, args.minutes)
            row.update(torch_best=ref["best_val_loss"], torch_epochs=ref["epochs"])
        if "torch_best" in row:
            row["difference"] = row["charlstm_held_out"] - row["torch_best"]
        results.append(row)
        _print_row(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"commit": commit, "date": date, "results": results}, indent=2, default=str))
    print(f"load {os.getloadavg()[0]:.2f}; figures in {args.out}")


def measure_charlstm(corpus: Path, minutes: float, options: str) -> dict:
    """Train charlstm on `corpus` for `minutes` with `options` and score its best checkpoint: the row's charlstm half."""
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_charlstm(corpus, minutes, shlex.split(options), Path(tmp))
        loss, chars = held_out_loss(ours["checkpoint"], corpus)
    epochs = [r for r in ours["records"] if r.get("type") == "epoch"]
    speeds = [r["chars_per_s"] for r in ours["records"] if r.get("chars_per_s")]
    return {
        "corpus": corpus.name,
        "corpus_sha256": corpus_hash(corpus),
        "minutes": minutes,
        "charlstm_options": options,
        "charlstm_held_out": loss,
        "charlstm_chars_scored": chars,
        "charlstm_wall_s": ours["wall_s"],
        "charlstm_chars_per_s": speeds[-1] if speeds else None,
        "charlstm_epochs": epochs,
        "charlstm_stderr": ours["stderr"],
    }


def _print_row(row: dict) -> None:
    ours = row["charlstm_held_out"]
    line = f"{row['corpus']:<24} charlstm {ours:.4f} nats ({nats_to_bits(ours):.3f} bpc, {row['charlstm_chars_per_s'] or 0:,.0f} chars/s)"
    if "torch_best" in row:
        ref = row["torch_best"]
        speed = row["torch_epochs"][-1]["chars_per_s"] if row["torch_epochs"] else 0
        line += f"   torch {ref:.4f} ({nats_to_bits(ref):.3f}, {speed:,.0f} chars/s)   charlstm − torch {row['difference']:+.4f}"
    if "torch_reused_from" in row:
        source = row["torch_reused_from"]
        line += (
            f"\n{'':<24} (torch REUSED from {source['file']}: measured {source['measured_at']} at {source['commit']})"
        )
    print(line, flush=True)


if __name__ == "__main__":
    main()
