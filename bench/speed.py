"""charlstm speed, memory and start-up benchmark, against PyTorch where it has an equivalent.

    python bench/speed.py [--out bench/results/speed.json] [--reps 7] [--quick]

Run it on an otherwise idle machine; it prints the load average it saw, because other processes
on a 2-core box move every figure. Everything is measured in this one process except the memory
figures (a fresh subprocess per configuration, so imports are not counted) and the command-line
timings (real `charlstm` subprocesses).

What is measured (see bench/README.md for the definitions):
- training: one real training step — corpus.window → model.loss_and_grads → optim.clip_grad_norm
  → Adam.step, exactly what `charlstm train` runs per window, on the NumPy kernels and on the
  numba kernels (when numba is installed) — against PyTorch's nn.LSTM fed one-hot vectors +
  nn.Linear + cross-entropy, Adam and clip_grad_norm_, alternately (A B C A B C …), median of
  --reps after warm-up, in characters per second;
- the physical limit: training FLOPs per character divided into numpy's measured peak float32
  GEMM rate, and charlstm's utilisation of it;
- the numba kernels' first compile (empty cache folder, numba's import included) and their load
  from the disk cache, each in a fresh subprocess;
- sampling at batch 1 (charlstm on both kernel paths vs PyTorch stepping nn.LSTM one character
  at a time with torch.multinomial, through oneDNN and through its native path, the faster
  compared) against the limit of reading the weights once per character at the bandwidth of a
  copy or a sum of that size, with where a character's time goes; and charlstm with num_samples=16 against
  its GEMM limit (`--sampling`: this part alone);
- where a step's time goes (bench/step_profile.py): a 2×256 training step as `charlstm train` runs
  it by default (dropout 0.2, the average), and a step of 16 samples at 2×512, piece by piece,
  on each kernel path (the 16-sample view only with `--sampling`);
- peak RSS of training over the post-import baseline, beside the figure computed from the shapes,
  and the RSS drift over many steps;
- `charlstm --help` wall time and the time to the first sampled character of `charlstm sample`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from speed_process import bench_cli, bench_memory
from speed_sampling import bench_sampling, print_sampling, sampling_targets
from step_profile import bench_step_profile, print_step_profile
from timing import (
    CONFIGS,
    KERNELS,
    ROOT,
    V,
    alternate,
    charlstm_trainer,
    fmt,
    gemm_probe,
    git_commit,
    log,
    numba_available,
    torch_trainer,
    training_flops_per_char,
    try_torch,
)

TARGETS = {
    "ratio_2x256": 1.1,  # numba path against torch
    "ratio_other": 1.0,
    "utilisation_2x512": 0.70,
    "memory_ratio": 1.5,
    "help_s": 0.3,
    "first_char_s": 0.5,
}
# The NumPy path before the kernels were split out (commit dfd6efa, the same machine, load
# 0.76 → 1.91): without the extra, no configuration may be slower than this.
BEFORE_CHARS_PER_S = {
    (1, 128, 32, 64): 56_578,
    (2, 256, 64, 100): 14_837,
    (2, 512, 64, 100): 4_318,
    (3, 512, 32, 100): 2_476,
}


def peak_gemm_gflops(reps: int = 5) -> dict:
    """numpy's float32 GEMM rate at sizes large enough to reach the BLAS peak; the best of each."""
    rng = np.random.default_rng(0)
    best = {}
    for n in (1024, 2048, 3072):
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        out = np.empty((n, n), np.float32)
        np.matmul(a, b, out=out)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
        best[n] = 2 * n**3 / min(times) / 1e9
    return {"gflops": max(best.values()), "by_size": {str(k): round(v, 1) for k, v in best.items()}}


def bench_training(torch, reps: int, configs, paths) -> list[dict]:
    rows = []
    probe, probe_flops = gemm_probe()
    for L, H, B, T in configs:
        log(f"training L={L} H={H} B={B} T={T} …")
        fns = {name: charlstm_trainer(L, H, B, T, name) for name in paths}
        if torch is not None:
            fns["torch"] = torch_trainer(torch, L, H, B, T)
        fns["gemm"] = probe
        times = alternate(fns, reps)
        theirs = B * T / float(np.median(times["torch"])) if torch is not None else None
        peak = probe_flops / float(np.median(times["gemm"])) / 1e9  # GFLOP/s during these runs
        flops = training_flops_per_char(L, H)
        limit = peak * 1e9 / flops["training"]
        row = {
            "config": {"L": L, "H": H, "B": B, "T": T, "V": V},
            "torch_chars_per_s": round(theirs, 1) if theirs else None,
            "flops_per_char": flops["training"],
            "gemm_gflops": round(peak, 1),
            "limit_chars_per_s": round(limit, 1),
            "before_chars_per_s": BEFORE_CHARS_PER_S.get((L, H, B, T)),
            "torch_step_ms": [round(t * 1e3, 2) for t in times["torch"]] if torch is not None else None,
        }
        for name in paths:
            ours = B * T / float(np.median(times[name]))
            row[name] = {
                "chars_per_s": round(ours, 1),
                "ratio": round(ours / theirs, 3) if theirs else None,
                "utilisation": round(ours / limit, 3),
                "step_ms": [round(t * 1e3, 2) for t in times[name]],
            }
        rows.append(row)
    return rows


COMPILE = """
import time
t0 = time.perf_counter()
import numpy as np
from charlstm.nn import kernels
kernels.load("numba").warm_up(np.float32)
print(time.perf_counter() - t0)
"""


def bench_compile() -> dict:
    """The numba kernels' first compile — a fresh process with an empty cache folder
    (CHARLSTM_CACHE a new temporary folder), timing `kernels.load('numba').warm_up(np.float32)`
    with the numba import — and their load from that cache in a second fresh process."""
    log("numba compile …")
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        env.update(CHARLSTM_CACHE=cache, PYTHONPATH=str(ROOT))
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(2)
        ]
    return {"first_compile_s": round(runs[0], 2), "cached_load_s": round(runs[1], 2)}


def print_report(res: dict) -> None:
    paths = res["paths"]
    print(
        f"\ncharlstm {res['commit']}  numpy {res['numpy']}  torch {res['torch'] or 'absent'}  "
        f"peak GEMM {res['peak_gemm']['gflops']:.0f} GFLOP/s  load {res['load_before']} → {res['load_after']}"
    )
    print("\ntraining (chars/s, median of alternating runs; torch: nn.LSTM on one-hot input;")
    print("limit: GEMM rate measured between the steps / training FLOPs per char; before: the NumPy path")
    print("before the kernels, at dfd6efa)")
    head = f"{'config':<22}{'kernels':>8}{'chars/s':>10}{'torch':>10}{'ratio':>7}{'GFLOP/s':>9}{'limit':>10}{'util':>7}{'before':>9}"
    print(head)
    print("-" * len(head))
    for r in res["training"]:
        c = r["config"]
        name = f"L={c['L']} H={c['H']} B={c['B']} T={c['T']}"
        for path in paths:
            m = r[path]
            print(
                f"{name:<22}{path:>8}{fmt(m['chars_per_s']):>10}{fmt(r['torch_chars_per_s']):>10}"
                f"{fmt(m['ratio'], '.2f'):>7}{r['gemm_gflops']:>9.0f}{fmt(r['limit_chars_per_s']):>10}"
                f"{m['utilisation']:>7.0%}{fmt(r['before_chars_per_s']):>9}"
            )
            name = ""
    if res.get("compile"):
        cm = res["compile"]
        print(
            f"\nnumba kernels: first compile {cm['first_compile_s']:.2f} s (empty cache, numba import included), "
            f"cached load {cm['cached_load_s']:.2f} s"
        )
    print_step_profile(res["step_profile"])
    print_sampling(res["sampling"], paths)
    print("\nmemory of a training step (peak RSS over the post-import baseline)")
    for m in res["memory"]:
        c = m["config"]
        name = f"L={c['L']} H={c['H']} B={c['B']} T={c['T']}"
        print(
            f"  {name:<22} {m['peak_delta_mb']:>7.1f} MB   need {m['need_mb']:>7.1f} MB   ×{m['ratio']:.2f}   "
            f"drift {m['drift_mb']:+.2f} MB ({m['drift_steps']} steps)"
        )
    cli = res["cli"]
    numba_first = f"   with --kernels numba {cli['first_char_numba_s']:.3f} s" if cli.get("first_char_numba_s") else ""
    print(
        f"\ncommand line: --help {cli['help_s']:.3f} s   first sampled character {cli['first_char_s']:.3f} s{numba_first}   "
        f"torch imported by `sample`: {'yes' if cli['sample_imports_torch'] else 'no'}"
    )
    print("\ntargets")
    for name, ok, detail in res["targets"]:
        print(f"  {'met    ' if ok else 'NOT met'}  {name}: {detail}")


def check_targets(res: dict) -> list:
    out = []
    paths = res["paths"]
    for r in res["training"]:
        c = r["config"]
        name = f"L={c['L']} H={c['H']} B={c['B']}"
        if "numba" in paths and r["numba"]["ratio"] is not None:
            want = TARGETS["ratio_2x256"] if (c["L"], c["H"]) == (2, 256) else TARGETS["ratio_other"]
            ratio = r["numba"]["ratio"]
            out.append((f"numba: ratio {name} ≥ {want}", ratio >= want, f"{ratio:.2f}"))
        if "numba" in paths and (c["L"], c["H"], c["B"]) == (2, 512, 64):
            util = r["numba"]["utilisation"]
            out.append(
                (
                    f"numba: utilisation {name} ≥ {TARGETS['utilisation_2x512']:.0%}",
                    util >= TARGETS["utilisation_2x512"],
                    f"{util:.0%}",
                )
            )
        if r["before_chars_per_s"] is not None:
            ours, before = r["numpy"]["chars_per_s"], r["before_chars_per_s"]
            out.append((f"numpy: {name} not slower than before ({before:,})", ours >= before, f"{ours:,.0f}"))
    out += sampling_targets(res["sampling"], paths)
    for m in res["memory"]:
        c = m["config"]
        out.append(
            (
                f"memory L={c['L']} H={c['H']} B={c['B']} ≤ 1.5× need, no drift",
                m["ratio"] <= TARGETS["memory_ratio"] and abs(m["drift_mb"]) < 1.0,
                f"×{m['ratio']}, drift {m['drift_mb']:+.2f} MB",
            )
        )
    cli = res["cli"]
    out.append(("--help < 0.3 s", cli["help_s"] < TARGETS["help_s"], f"{cli['help_s']:.3f} s"))
    out.append(
        ("first sampled char < 0.5 s", cli["first_char_s"] < TARGETS["first_char_s"], f"{cli['first_char_s']:.3f} s")
    )
    out.append(("no torch import in `charlstm sample`", not cli["sample_imports_torch"], "checked with -X importtime"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "speed.json", help="JSON results file")
    ap.add_argument("--reps", type=int, default=7, help="timed runs per measurement (median), at least 5")
    ap.add_argument("--quick", action="store_true", help="the two smaller training configs only, 5 runs (a smoke test)")
    ap.add_argument("--sampling", action="store_true", help="the sampling comparison only (about a minute)")
    args = ap.parse_args()
    reps = 5 if args.quick else max(5, args.reps)
    configs = CONFIGS[:2] if args.quick else CONFIGS

    started = time.perf_counter()
    torch = try_torch()
    if torch is None:
        log("torch is not installed: PyTorch comparisons are skipped (pip install -e '.[torch]')")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load_before is not None and load_before > 0.5:
        log(f"warning: load average {load_before:.2f}; other processes will slow both sides")
    res: dict = {
        "commit": git_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "reps": reps,
        "load_before": round(load_before, 2) if load_before is not None else None,
    }
    paths = [name for name in KERNELS if name == "numpy" or numba_available()]
    if "numba" not in paths:
        log("numba is not installed: the numba kernels are skipped (pip install -e '.[fast]')")
    res["paths"] = paths
    if args.sampling:
        res["sampling"] = bench_sampling(torch, reps, paths)
        res["step_profile"] = bench_step_profile(paths, training=False)
        res["load_after"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        print(
            f"\ncharlstm {res['commit']}  numpy {res['numpy']}  torch {res['torch'] or 'absent'}  "
            f"load {res['load_before']} → {res['load_after']}"
        )
        print_sampling(res["sampling"], paths)
        print_step_profile(res["step_profile"])
        for name, ok, detail in sampling_targets(res["sampling"], paths):
            print(f"  {'met    ' if ok else 'NOT met'}  {name}: {detail}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    log("peak GEMM …")
    res["peak_gemm"] = peak_gemm_gflops()
    res["compile"] = bench_compile() if "numba" in paths else None
    res["training"] = bench_training(torch, reps, configs, paths)
    res["step_profile"] = bench_step_profile(paths, steps=10 if args.quick else 20)
    res["sampling"] = bench_sampling(torch, reps, paths)
    res["memory"] = bench_memory(configs, steps=20 if args.quick else 40)
    res["cli"] = bench_cli(reps, "numba" in paths)
    res["load_after"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    res["seconds"] = round(time.perf_counter() - started, 1)
    res["targets"] = check_targets(res)
    print_report(res)
    print(f"\n{res['seconds']:.0f} s; results in {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
