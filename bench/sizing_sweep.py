"""Refit the sizing rule (charlstm/training/sizing.py): train each candidate shape, at the dropout
the rule would give it, on each corpus for each time budget, and check what the rule chooses.

    python bench/sizing_sweep.py CORPUS [CORPUS ...] [--minutes 2 10] [--shapes 2x128 2x256 ...]
        [--dropouts D ...] [--parallel 2] [--threads 1] [--speeds-threads 2] [--keep-logs DIR]
        [--out bench/results/sizing_sweep.json] [--dry-run]
    python bench/sizing_sweep.py --from-logs DIR [--tag ts=tinyshakespeare.txt ...]

A budget becomes a number of steps, independent of the machine's load while the sweep runs: each
shape's chars/s is measured (or read from the cache) with `charlstm.training.speeds` at
--speeds-threads threads (the machine's own count: the measurement a sized run makes), and
steps = chars/s × minutes × 60 × sizing.USABLE / (B·T), B the batch the run chooses for its corpus.
Each run is then `python -m charlstm train CORPUS --val-fraction 0.1 --max-steps STEPS --epochs
100000 --threads 1 -H H -L L --dropout D` in a temporary folder. The learning-rate schedule of a
step-limited run decays over its steps exactly as a time-limited run's decays over its minutes,
so its held-out result is that of the time budget on the machine whose speeds were measured, however
loaded the machine is while it runs: that is why several runs may go at once (--parallel) and the
sweep stays honest. Only the speed measurement wants an idle machine; it comes first, and is
cached (CHARLSTM_CACHE) for later sweeps and sized runs.

Dropouts: with --dropouts, one per shape, exactly those; by default each shape at the dropout the
rule gives it for its passes (sizing.dropout_for), and 2x256 at the default 0.2 as well: the
default run, against which every row is compared (the rule must never be worse than it by more
than 0.005 nats, and better on average).

The figure is each run's best validation loss (its epoch records' val_loss, on the last 10%).
Prints a table per corpus and budget and what `sizing.choose` picks there; writes every figure
(commit, machine, speeds, commands) to --out. --from-logs DIR reads a folder of --log-json files
named NAME.jsonl, NAME = TAG MINUTES _ SHAPE _d DROPOUT×10 (`ts10_2x384_d3`), instead of running:
the corpus is --tag's file for TAG, else the name the log's header gives; the speeds the rule
chooses with are those the runs' step counts imply (the inverse of the formula above), so it
chooses among the swept shapes only. A log without its end record is marked incomplete.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from charlstm.config import ModelConfig, TrainConfig, default_of
from charlstm.nn import threads as nn_threads
from charlstm.store import write
from charlstm.training import sizing, speeds
from charlstm.training.sizing import Shape

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = 0.1
DEFAULT = (Shape(default_of(ModelConfig, "num_layers"), default_of(ModelConfig, "hidden_size")),
           default_of(TrainConfig, "dropout"))  # fmt: skip
TOLERANCE = 0.005  # nats the rule's choice may lose to the default run
NAME = re.compile(r"^(?P<tag>[A-Za-z]+)(?P<minutes>\d+(?:\.\d+)?)_(?P<shape>\d+x\d+)_d(?P<d>\d+(?:\.\d+)?)$")


@dataclass
class Run:
    """One training run of the sweep, and what its log says."""

    name: str
    shape: Shape
    dropout: float
    steps: int
    passes: float
    command: list[str] = field(default_factory=list)
    best: float | None = None
    status: str = "not run"  # "done", "incomplete: step s of n", "failed (rc)", ...
    engine: str = ""  # as the log's header names it


@dataclass
class Group:
    """The runs of one corpus and budget, and the figures the rule chooses with."""

    corpus: str
    minutes: float
    train_chars: int
    batch: int
    seq_len: int
    speeds: dict[Shape, float]
    speeds_source: str
    runs: list[Run] = field(default_factory=list)

    def run(self, shape: Shape, dropout: float) -> Run | None:
        return next((r for r in self.runs if r.shape == shape and abs(r.dropout - dropout) < 1e-9), None)


def run_name(corpus: Path, minutes: float, shape: Shape, dropout: float) -> str:
    """`lighthouse2_2x256_d2`: the letters of the corpus's name, the minutes, the shape, dropout × 10."""
    tag = re.sub(r"[^A-Za-z]", "", corpus.stem) or "corpus"
    return f"{tag}{minutes:g}_{shape}_d{dropout * 10:g}"


def measured_speeds(corpus: Path, shapes: list[Shape], count: int) -> tuple[int, int, int, speeds.Measured]:
    """The training characters, batch, window and every candidate's (and swept shape's) chars/s for
    `corpus`, as a sized run with `count` threads measures them (the cache first)."""
    from charlstm.text.corpus import load_corpus
    from charlstm.training.plan import auto_batch_size

    text = load_corpus(corpus, val_fraction=HELD_OUT)
    cfg = TrainConfig(val_fraction=HELD_OUT, threads=count)
    train_chars = len(text.split(HELD_OUT)[0])
    cfg = replace(cfg, batch_size=auto_batch_size(train_chars, cfg.seq_len))
    wanted = list(sizing.CANDIDATES) + [s for s in shapes if s not in sizing.CANDIDATES]
    measured = speeds.measure(ModelConfig(text.vocab.size), cfg, wanted)
    return train_chars, cfg.batch_size, cfg.seq_len, measured


def plan(args: argparse.Namespace) -> tuple[list[Group], dict[str, Any]]:
    """The sweep's groups (corpus × budget) with their runs and commands, and the speeds measured."""
    groups, measured_all = [], {}
    for corpus in args.corpora:
        chars, B, T, measured = measured_speeds(corpus.resolve(), args.shapes, args.speeds_threads)
        measured_all[corpus.name] = {
            "threads": measured.threads,
            "cached": measured.cached,
            "batch": B,
            "chars_per_s": {str(s): round(v, 1) for s, v in measured.speeds.items()},
        }
        for minutes in args.minutes:
            rule_speeds = {s: measured.speeds[s] for s in sizing.CANDIDATES}
            source = "cached" if measured.cached else "measured"
            group = Group(corpus.name, minutes, chars, B, T, rule_speeds, source)
            for shape, dropouts in shape_dropouts(args, measured.speeds, minutes, chars):
                steps = max(1, round(measured.speeds[shape] * minutes * 60 * sizing.USABLE / (B * T)))
                for dropout in dropouts:
                    name = run_name(corpus, minutes, shape, dropout)
                    run = Run(name, shape, dropout, steps, steps * B * T / chars)
                    run.command = train_command(corpus.resolve(), run, args.threads)
                    group.runs.append(run)
            groups.append(group)
    return groups, measured_all


def shape_dropouts(
    args: argparse.Namespace, chars_per_s: dict[Shape, float], minutes: float, chars: int
) -> list[tuple[Shape, list[float]]]:
    """Each shape's dropouts: --dropouts' own, else the rule's for its passes (and the default's for 2x256)."""
    if args.dropouts:
        return [(s, [d]) for s, d in zip(args.shapes, args.dropouts, strict=True)]
    out = []
    for shape in args.shapes:
        ruled = sizing.dropout_for(shape)
        extra = [DEFAULT[1]] if shape == DEFAULT[0] and ruled != DEFAULT[1] else []
        out.append((shape, [ruled, *extra]))
    return out


def train_command(corpus: Path, run: Run, threads: int) -> list[str]:
    """The run's `charlstm train` arguments (after the interpreter); OUT/LOG stand for its files."""
    return [
        "-m", "charlstm", "train", str(corpus), "--val-fraction", str(HELD_OUT), "--max-steps", str(run.steps),
        "--epochs", "100000", "--threads", str(threads), "-H", str(run.shape.hidden_size),
        "-L", str(run.shape.num_layers), "--dropout", f"{run.dropout:g}", "--out", "OUT", "--log-json", "LOG",
        "--quiet",
    ]  # fmt: skip


def execute(run: Run, keep: Path | None) -> None:
    """Train `run` in a temporary folder and read its log into it; keep the log in `keep` if given."""
    with tempfile.TemporaryDirectory(prefix="sizing_sweep_") as tmp:
        log = Path(tmp) / f"{run.name}.jsonl"
        files = {"OUT": str(Path(tmp) / f"{run.name}.safetensors"), "LOG": str(log)}
        cmd = [sys.executable, *(files.get(a, a) for a in run.command)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if log.exists():
            header, run.best, run.status = read_log(log)
            run.engine = (header or {}).get("engine", "")
            if keep is not None:
                shutil.copyfile(log, keep / log.name)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or [""])[-1]
            run.status = f"failed (exit {done.returncode}: {tail})"


def read_log(path: Path) -> tuple[dict[str, Any] | None, float | None, str]:
    """A --log-json file's header, best validation loss, and status: done, or why not (a line that
    is being written, or cut off, is skipped)."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    header = next((r for r in records if r.get("type") == "header"), None)
    vals = [r["val_loss"] for r in records if r.get("type") == "epoch" and "val_loss" in r]
    end = next((r for r in records if r.get("type") == "end"), None)
    best = min(vals, default=None)
    if end is not None and "best_val_loss" in end:
        best = min(best if best is not None else end["best_val_loss"], end["best_val_loss"])
    if end is not None and end.get("reason") in ("max_steps", "completed"):
        return header, best, "done"
    step = max((r["step"] for r in records if "step" in r), default=0)
    total = (header or {}).get("total_steps") or ((header or {}).get("train") or {}).get("max_steps") or "?"
    why = "interrupted" if end is not None else "incomplete"
    return header, best, f"{why}: step {step:,} of {total:,}" if isinstance(total, int) else f"{why}: step {step:,}"


def from_logs(folder: Path, tags: dict[str, Path]) -> tuple[list[Group], list[str]]:
    """Groups built from the logs in `folder` (see the module's docstring), and the files left out and why."""
    groups: dict[tuple[str, float], Group] = {}
    skipped = []
    for path in sorted(folder.glob("*.jsonl")):
        m = NAME.match(path.stem)
        if m is None:
            skipped.append(f"{path.name}: not named TAG MINUTES_SHAPE_dDROPOUT")
            continue
        header, best, status = read_log(path)
        if header is None:
            skipped.append(f"{path.name}: no header record yet")
            continue
        minutes, train, model = float(m["minutes"]), header["train"], header["model"]
        corpus = tags[m["tag"]].name if m["tag"] in tags else header["corpus"]["name"]
        B, T, chars = train["batch_size"], train["seq_len"], header["corpus"]["train_chars"]
        shape = Shape(model["num_layers"], model["hidden_size"])
        steps = header.get("total_steps") or train.get("max_steps")
        if not steps:
            skipped.append(f"{path.name}: not a step-limited run (no --max-steps)")
            continue
        key = (corpus, minutes)
        if key not in groups:
            groups[key] = Group(
                corpus,
                minutes,
                chars,
                B,
                T,
                {},
                "implied by the logs' --max-steps; the rule chooses among the swept shapes",
            )
        groups[key].speeds[shape] = steps * B * T / (minutes * 60 * sizing.USABLE)
        run = Run(path.stem, shape, train["dropout"], steps, steps * B * T / chars, [], best, status, header["engine"])
        groups[key].runs.append(run)
    for g in groups.values():
        g.speeds = {s: g.speeds[s] for s in sizing.CANDIDATES if s in g.speeds}
        g.runs.sort(key=lambda r: (r.shape not in sizing.CANDIDATES, r.shape, r.dropout))
    return sorted(groups.values(), key=lambda g: (g.corpus, g.minutes)), skipped


def rule_check(group: Group) -> dict[str, Any]:
    """What sizing.choose picks for the group, and its best loss against the default run's and the best run's."""
    default = group.run(*DEFAULT)
    finished = [r for r in group.runs if r.status == "done" and r.best is not None]
    best = min(finished, key=lambda r: r.best or 0.0, default=None)
    out: dict[str, Any] = {
        "default_run": default.name if default else None,
        "best_run": best.name if best else None,
    }
    if not group.speeds:
        return {**out, "note": "no candidate shape swept: the rule has nothing to choose from"}
    chosen = sizing.choose(group.train_chars, group.minutes * 60, group.speeds)
    run = group.run(chosen.shape, chosen.dropout)
    out.update(shape=str(chosen.shape), dropout=chosen.dropout, passes=round(chosen.passes, 3), reason=chosen.reason)
    if run is None:
        return {**out, "note": f"not run: add {chosen.shape} at dropout {chosen.dropout:g} to the sweep"}
    out.update(run=run.name, best=run.best)
    if run.status != "done" or run.best is None:
        return {**out, "note": f"its run is {run.status}"}
    if best is not None and best.best is not None:
        out["vs_best"] = run.best - best.best
    if default is not None and default.status == "done" and default.best is not None:
        out["vs_default"] = run.best - default.best
    return out


def print_group(group: Group, check: dict[str, Any]) -> None:
    """The group's table: a row per run, the best marked, then the rule's choice."""
    print(
        f"\n{group.corpus}, {group.minutes:g} minutes ({group.train_chars:,} training chars, "
        f"B {group.batch}, T {group.seq_len}; speeds {group.speeds_source})"
    )
    print(f"  {'run':<28} {'shape':>6} {'dropout':>7} {'steps':>7} {'passes':>6} {'nats/char':>9} {'vs default':>10}")
    default = group.run(*DEFAULT)
    for r in group.runs:
        vs = ""
        if r.best is not None and default is not None and default.best is not None and r is not default:
            vs = f"{r.best - default.best:+.4f}"
        loss = f"{r.best:.4f}" if r.best is not None else "—"
        mark = " ← best" if r.name == check["best_run"] else " (default)" if r is default else ""
        status = "" if r.status == "done" else f"  [{r.status}]"
        print(
            f"  {r.name:<28} {str(r.shape):>6} {r.dropout:>7g} {r.steps:>7,} {r.passes:>6.2f} {loss:>9} {vs:>10}{mark}{status}"
        )
    if default is None:
        print(f"  no default run ({DEFAULT[0]} d{DEFAULT[1]:g}) in this group: nothing to compare with")
    if "shape" not in check:
        print(f"  rule: {check['note']}")
        return
    figures = "".join(f", {check[k]:+.4f} vs {k[3:]}" for k in ("vs_default", "vs_best") if k in check)
    note = f" ({check['note']})" if "note" in check else ""
    print(f"  rule: {check['shape']} d{check['dropout']:g}{figures}{note}\n        {check['reason']}")


def verdict(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule's check over every group: never worse than the default by more than TOLERANCE, better on average."""
    diffs = [c["vs_default"] for c in checks if "vs_default" in c]
    if not diffs:
        return {"groups": 0, "holds": None}
    worst, mean = max(diffs), sum(diffs) / len(diffs)
    return {"groups": len(diffs), "worst": worst, "mean": mean, "holds": worst <= TOLERANCE and mean < 0}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpora", nargs="*", type=Path)
    ap.add_argument("--minutes", nargs="+", type=float, default=[2.0, 10.0])
    ap.add_argument("--shapes", nargs="+", type=shape_arg, default=list(sizing.CANDIDATES), help="LxH each")
    ap.add_argument("--dropouts", nargs="+", type=float, help="one per shape (default: the rule's, and 0.2 for 2x256)")
    ap.add_argument("--parallel", type=int, default=2, help="runs at once")
    ap.add_argument("--threads", type=int, default=1, help="threads per run")
    ap.add_argument("--speeds-threads", type=int, default=2, help="the thread count whose speeds define the budget")
    ap.add_argument("--keep-logs", type=Path, help="copy each run's log here (readable again with --from-logs)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sizing_sweep.json")
    ap.add_argument("--dry-run", action="store_true", help="print the runs and their steps; run nothing")
    ap.add_argument("--from-logs", type=Path, help="build the tables from this folder of NAME.jsonl logs")
    ap.add_argument("--tag", nargs="+", default=[], help="TAG=CORPUS: the corpus of --from-logs' TAG")
    args = ap.parse_args()
    if args.from_logs is None and not args.corpora:
        ap.error("give one or more corpora, or --from-logs DIR")
    if args.from_logs is not None and not args.from_logs.is_dir():
        ap.error(f"--from-logs {args.from_logs}: not a folder")
    if args.dropouts and len(args.dropouts) != len(args.shapes):
        ap.error(f"--dropouts: give one per shape ({len(args.shapes)}), or none for the rule's")
    if bad := [t for t in args.tag if "=" not in t]:
        ap.error(f"--tag {bad[0]}: write it TAG=CORPUS, as ts=tinyshakespeare.txt")
    if missing := [c for c in args.corpora if not c.is_file()]:
        ap.error(f"{missing[0]}: no such file")
    if min(args.parallel, args.threads, args.speeds_threads) < 1:
        ap.error("--parallel, --threads and --speeds-threads must be at least 1")
    return args


def shape_arg(text: str) -> Shape:
    if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape: write LAYERSxHIDDEN, as 2x256")
    return Shape.parse(text)


def main() -> None:
    args = parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    machine = {"cpu": speeds.cpu_model(), "cores": nn_threads.usable_cores(), "speeds_threads": args.speeds_threads}
    report: dict[str, Any] = {"commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "usable": sizing.USABLE}
    if args.from_logs is not None:
        tags = {t.partition("=")[0]: Path(t.partition("=")[2]) for t in args.tag}
        groups, skipped = from_logs(args.from_logs, tags)
        report.update(mode="from-logs", folder=str(args.from_logs), skipped=skipped)
        machine = {}  # the logs do not say which machine ran them, only the engine
        print(f"charlstm {commit}: {sum(len(g.runs) for g in groups)} logs from {args.from_logs}")
        for line in skipped:
            print(f"  left out {line}")
    else:
        groups, measured = plan(args)
        report.update(mode="run", speeds=measured)
        if args.dry_run:
            print_plan(groups)
            return
        run_all(groups, args)
        machine.update(run_threads=args.threads, parallel=args.parallel)
    report["machine"] = {**machine, "engines": sorted({r.engine for g in groups for r in g.runs if r.engine})}
    checks = [rule_check(g) for g in groups]
    for group, check in zip(groups, checks, strict=True):
        print_group(group, check)
    report.update(groups=[group_record(g, c) for g, c in zip(groups, checks, strict=True)], check=verdict(checks))
    v = report["check"]
    if v["holds"] is not None:
        held = "holds" if v["holds"] else "FAILS"
        print(f"\nrule vs default over {v['groups']} groups: worst {v['worst']:+.4f}, mean {v['mean']:+.4f}: {held}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write.write_atomic(args.out, json.dumps(report, indent=1, default=str).encode("utf-8"), "the sweep's figures")
    print(f"figures in {args.out}")


def run_all(groups: list[Group], args: argparse.Namespace) -> None:
    """Every run, --parallel at a time (step-limited: their results do not depend on each other's load)."""
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
    runs = [r for g in groups for r in g.runs]
    print(f"{len(runs)} runs, {args.parallel} at a time, {args.threads} thread(s) each", flush=True)

    def one(run: Run) -> None:
        execute(run, args.keep_logs)
        print(f"  {run.name}: {run.status}", flush=True)

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(one, runs))  # an error in one is raised here


def print_plan(groups: list[Group]) -> None:
    """--dry-run: the runs and their steps."""
    for g in groups:
        shown = ", ".join(f"{s} {v:,.0f}" for s, v in g.speeds.items())
        print(f"\n{g.corpus}, {g.minutes:g} minutes ({g.train_chars:,} training chars, B {g.batch}, T {g.seq_len})")
        print(f"  chars/s ({g.speeds_source}): {shown}")
        for r in g.runs:
            print(f"  {r.name:<28} {r.steps:>7,} steps {r.passes:>6.2f} passes   python {shlex.join(r.command)}")
        print(f"  the rule chooses {sizing.choose(g.train_chars, g.minutes * 60, g.speeds).reason}")
    print("\n(OUT, LOG: each run's files, in its own temporary folder)")


def group_record(group: Group, check: dict[str, Any]) -> dict[str, Any]:
    """The group as the JSON keeps it: every figure, shapes written as 2x256."""
    runs = [
        {**asdict(r), "shape": str(r.shape), "command": shlex.join(["python", *r.command]) if r.command else None}
        for r in group.runs
    ]
    fixed = {k: v for k, v in vars(group).items() if k not in ("speeds", "runs")}
    return {**fixed, "speeds": {str(s): round(v, 1) for s, v in group.speeds.items()}, "runs": runs, "rule": check}


if __name__ == "__main__":
    main()
