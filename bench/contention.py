"""Training speed when other processes keep the cores busy: charlstm's automatic thread count
against the count forced to one thread and to all cores, with 0, 1 and 2 busy processes beside it.

    python bench/contention.py [--seconds 40] [--busy 0,1,2] [--cpus 0,1] [--kernels auto] [--quick]

Each row starts that many busy processes (a pure-Python loop each, one core's worth) and trains
the default model (2×256 LSTM, batch 64 × 100 characters, `--kernels auto`: numba when
installed) for --seconds, once per setting — automatic, `--threads 1`, `--threads N` (N the
usable cores) — each in a fresh process; the busy processes are killed when the row ends.
Speed is the training characters per second from the end of the first (warm-up) step to the
end of the last, so it counts the automatic choice's trials and any slow step they cost. The
target: automatic within 15% of the better forced setting in every row.

--cpus pins everything (the training and the busy processes) to those CPUs: `--cpus 0,1` plays
a 2-core machine on a larger one. OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and OMP_NUM_THREADS are
removed from the training processes' environment (they would fix the count). Results, with the
automatic run's thread changes, go to bench/results/contention.json (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
B, T = 64, 100
CORPUS_CHARS = 4_000_000  # ~620 steps an epoch: no validation inside a run of a few minutes
TARGET = 0.85  # automatic ÷ the better forced setting
FIXED_BY = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")

CHILD = """
import json, sys, time
from pathlib import Path
from charlstm.training import events
from charlstm.nn import model
from charlstm.config import TrainConfig
from charlstm.training.loop import train
from charlstm.text.corpus import load_corpus

corpus_path, out, seconds, threads, kernels = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
corpus = load_corpus(corpus_path)
steps, changes = [], []
def on_event(e):
    if isinstance(e, events.Step):
        steps.append(time.perf_counter())
    elif isinstance(e, events.ThreadsChanged):
        changes.append({"at": time.perf_counter() - steps[0] if steps else 0.0, "old": e.old, "new": e.new, "why": e.why})
stop = lambda: bool(steps) and steps[-1] - steps[0] >= seconds
cfg = TrainConfig(batch_size=%d, seq_len=%d, val_fraction=0.01, sample_length=0, save_minutes=1e6, kernels=kernels,
                     threads=None if threads == "auto" else int(threads))
train(corpus, model.ModelConfig(corpus.vocab.size), cfg, Path(out), on_event, stop)
print(json.dumps({"steps": len(steps) - 1, "seconds": steps[-1] - steps[0], "changes": changes}))
""" % (B, T)


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def write_corpus(path: Path) -> None:
    """Random characters from a 65-character alphabet (the speed does not depend on the text)."""
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'-\n()"))
    ids = np.random.default_rng(0).integers(0, len(alphabet), CORPUS_CHARS)
    path.write_text("".join(alphabet[ids]), encoding="utf-8")


def pinned(cpus: set[int] | None):
    """A preexec_fn that pins a child to `cpus` (None: leave it)."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def busy(n: int, cpus: set[int] | None) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pinned(cpus)) for _ in range(n)]


def train_for(setting: str, seconds: float, corpus: Path, work: Path, kernels: str, cpus: set[int] | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in FIXED_BY}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(corpus),
            str(work / f"{setting}.safetensors"),
            str(seconds),
            setting,
            kernels,
        ],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=pinned(cpus),
        cwd=work,
        timeout=30 * seconds + 600,
    )
    if result.returncode != 0:
        raise SystemExit(f"the training run ({setting}) failed:\n{result.stderr}")
    run = json.loads(result.stdout.splitlines()[-1])
    run["chars_per_s"] = run["steps"] * B * T / run["seconds"] if run["seconds"] > 0 else 0.0
    return run


def bench(levels: list[int], seconds: float, kernels: str, cpus: set[int] | None) -> dict:
    cores = len(cpus) if cpus else len(os.sched_getaffinity(0))
    settings = ["auto", "1", str(cores)] if cores > 1 else ["auto", "1"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "corpus.txt"
        write_corpus(corpus)
        for n in levels:
            procs = busy(n, cpus)
            try:
                time.sleep(1.0)  # let them reach their cores
                runs = {}
                for setting in settings:
                    log(f"{n} busy, threads {setting} …")
                    runs[setting] = train_for(setting, seconds, corpus, work, kernels, cpus)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            best = max(runs[s]["chars_per_s"] for s in settings[1:])
            rows.append({"busy": n, "runs": runs, "best_forced": best, "ratio": runs["auto"]["chars_per_s"] / best})
    return {"cores": cores, "cpus": sorted(cpus) if cpus else None, "settings": settings, "rows": rows}


def describe_changes(changes: list[dict]) -> str:
    first, *rest = changes or [{"new": "?"}]
    moves = [f"{c['old']}→{c['new']} at {c['at']:.0f} s" for c in rest]
    return f"{first['new']} at start" + (", " + ", ".join(moves) if moves else "")


def print_report(res: dict) -> None:
    settings = res["settings"]
    forced = [f"forced {s}" for s in settings[1:]]
    print(
        f"\ncharlstm {res['commit']}, {res['cores']} cores{' (CPUs ' + str(res['cpus']) + ')' if res['cpus'] else ''}, "
        f"kernels {res['kernels']}, {res['seconds']:.0f} s per run, load {res['load_before']} → {res['load_after']}"
    )
    print("training chars/s of the default model (2×256, B64 T100) beside busy processes\n")
    head = (
        f"{'busy':>4}  {'automatic':>10}"
        + "".join(f"{f:>10}" for f in forced)
        + f"  {'auto/best':>9}  automatic's threads"
    )
    print(head)
    print("-" * len(head))
    for r in res["rows"]:
        runs = r["runs"]
        mark = "" if r["ratio"] >= TARGET else "  below target"
        print(
            f"{r['busy']:>4}  {runs['auto']['chars_per_s']:>10,.0f}"
            + "".join(f"{runs[s]['chars_per_s']:>10,.0f}" for s in settings[1:])
            + f"  {r['ratio']:>9.2f}  {describe_changes(runs['auto']['changes'])}{mark}"
        )
    met = all(r["ratio"] >= TARGET for r in res["rows"])
    print(
        f"\ntarget (automatic ≥ {TARGET:.2f} × the better forced setting in every row): {'met' if met else 'NOT met'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="training seconds per run (default 40)")
    ap.add_argument("--busy", default="0,1,2", help="numbers of busy processes, one row each (default 0,1,2)")
    ap.add_argument("--cpus", default=None, help="pin everything to these CPUs, e.g. 0,1 (default: as this process)")
    ap.add_argument(
        "--kernels", default="auto", choices=("auto", "numpy", "numba"), help="charlstm's --kernels (default auto)"
    )
    ap.add_argument("--quick", action="store_true", help="8 s per run: a smoke test, not a measurement")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "contention.json", help="JSON results file"
    )
    args = ap.parse_args()
    cpus = {int(c) for c in args.cpus.split(",")} if args.cpus else None
    seconds = 8.0 if args.quick else args.seconds
    if any(os.environ.get(k) for k in FIXED_BY):
        log(f"note: {', '.join(k for k in FIXED_BY if os.environ.get(k))} removed for the training runs")
    load_before = round(os.getloadavg()[0], 2)
    res = bench([int(n) for n in args.busy.split(",")], seconds, args.kernels, cpus)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    res.update(
        commit=commit or "unknown",
        kernels=args.kernels,
        seconds=seconds,
        load_before=load_before,
        load_after=round(os.getloadavg()[0], 2),
        time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    print_report(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
