"""The engines side by side: NumPy (both kernel paths) and PyTorch, on the CPU and on every GPU.

    python bench/engines.py [--quick] [--reps 7] [--out bench/results/engines.json]

One command, unattended; it prints tables and writes every figure to the JSON file. What it runs
depends on the machine (bench/README.md, "Engines"):

- CPU, always: for bench/speed.py's four configurations, characters per second of the training
  step exactly as `charlstm train` runs it — `train.train_step` on a run set up by
  `train.start_run` (the engine plus the run's own work: schedule, divergence guard, events) — on
  the NumPy engine (numpy and numba kernels) and the torch engine, beside the speed benchmarks'
  plain PyTorch loop (bench/timing.py: imported, not copied), alternately. "engine/plain" is the
  cost of the seam (target: ≥ 0.9). Then two ranks on the CPU (torchrun, gloo): the same per-step
  losses as one process, their speed, and what the ranks' per-step agreement costs.
- A GPU (torch sees CUDA): the torch engine against the NumPy engine with TF32 off (float32 and
  float64, every cell; bf16 against fp32); speed at 2×512 and 3×1024 with B 64, 128, 256 (fp32,
  bf16 and the plain loop on the first GPU, fp32 on each GPU); with two or more GPUs, DDP across
  all of them (torchrun, NCCL: equivalence with one GPU, speed, agreement cost); and a 100 MB
  corpus (bench/corpus_scale.py) trained from the id cache by the real command line, on one GPU
  and on all.
- --quick: tiny configurations, a 2 MB corpus, 3 timed rounds: a smoke test of every path this
  machine has.

Unattended: the JSON file is rewritten after every row, so a later failure loses nothing; every
child process has a time limit, and a part that fails or times out is recorded as an error and
the next part runs (the exit status is then 1). TF32 is as PyTorch has it by default (cuDNN's
RNNs on, matmuls off) except inside the rows that say "TF32 off"; each configuration's engines
are freed before the next one's are built.

The runs across ranks are bench/engines_ddp.py's.
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

import timing
from corpus_scale import make_corpus
from engines_ddp import bench_ddp, no_tf32, print_ddp, torchrun, train_steps
from timing import ROOT, Results, V, fmt, free, log

GPU_CONFIGS = [(L, H, B, 100) for L, H in ((2, 512), (3, 1024)) for B in (64, 128, 256)]
QUICK_CONFIGS = [(1, 64, 16, 32), (2, 128, 32, 32)]
TARGET_SEAM = 0.9  # torch engine / plain PyTorch loop, on the CPU
CHILD_TIMEOUT = {True: 300, False: 1800}  # seconds a child process may take (--quick or not)


# -------------------------------------------------------------------------------- one run's step


def synthetic_corpus(folder: Path, chars: int, seed: int = 0):
    """A text of `chars` random characters drawn from V = 65 letters, loaded as a Corpus."""
    from charlstm.text.corpus import load_corpus

    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?\n"[:V]))
    path = folder / f"synthetic{chars}.txt"
    if not path.exists():
        path.write_text("".join(np.random.default_rng(seed).choice(alphabet, chars)), encoding="utf-8")
    return load_corpus(path)


def run_stepper(corpus, folder: Path, L: int, H: int, B: int, T: int, **train):
    """One training step of a real run (train.start_run, then train.train_step on the next window)
    with `train`'s options (engine, kernels, device, precision); dropout off, as the plain loop."""
    from charlstm.config import ModelConfig, TrainConfig
    from charlstm.text.corpus import window
    from charlstm.training.loop import start_run, train_step

    cfg = TrainConfig(seq_len=T, batch_size=B, dropout=0.0, epochs=None, max_steps=10**9, sample_length=0, **train)
    run = start_run(corpus, ModelConfig(corpus.vocab.size, H, L), cfg, folder / "unused.safetensors")
    k = {"window": 0}

    def step() -> float:
        x, y = window(run.train_ids, B, T, k["window"] % run.steps_per_epoch)
        k["window"] += 1
        return train_step(run, x, y).loss

    return step


def chars_per_s(times: list[float], B: int, T: int) -> float:
    return B * T / float(np.median(times))


# ------------------------------------------------------------------------------------------ CPU


def bench_cpu(torch, configs, reps: int, folder: Path, res: Results) -> list[dict]:
    """The NumPy engine on each kernel path, the torch engine and the plain loop, alternately."""
    paths = [name for name in timing.KERNELS if name == "numpy" or timing.numba_available()]
    for L, H, B, T in configs:
        log(f"cpu L={L} H={H} B={B} T={T} …")
        corpus = synthetic_corpus(folder, 21 * B * T)
        fns = {f"numpy/{p}": run_stepper(corpus, folder, L, H, B, T, kernels=p) for p in paths}
        if torch is not None:
            fns["torch engine"] = run_stepper(corpus, folder, L, H, B, T, engine="torch", device="cpu")
            fns["plain torch"] = timing.torch_trainer(torch, L, H, B, T)
        times = timing.alternate(fns, reps)
        row = {
            "config": {"L": L, "H": H, "B": B, "T": T, "V": V},
            **{name: round(chars_per_s(t, B, T), 1) for name, t in times.items()},
        }
        if torch is not None:
            row["engine/plain"] = round(row["torch engine"] / row["plain torch"], 3)
        row["step_ms"] = {name: [round(s * 1e3, 2) for s in t] for name, t in times.items()}
        del fns
        free(torch)
        res.row("cpu", row)
    return res["cpu"]


# ------------------------------------------------------------------------------------------ GPU


def engine_losses(cell: str, dtype, steps: int = 50, **train) -> tuple[np.ndarray, dict]:
    """`steps` steps of an engine at L=2 H=64 B=16 T=32 from model.init_params: losses, weights."""
    from charlstm import engines
    from charlstm.config import ModelConfig, TrainConfig
    from charlstm.nn import model

    L, H, B, T = 2, 64, 16, 32
    config = ModelConfig(V, H, L, cell)
    engine = engines.make_engine(
        config,
        TrainConfig(seq_len=T, batch_size=B, dropout=0.0, max_steps=steps, **train),
        model.init_params(config, 0),
        dtype,
    )
    losses, _ = train_steps(engine, B, T, steps)
    return np.array(losses), {k: np.array(v, np.float64) for k, v in engine.params_numpy().items()}


def gpu_equivalence(torch) -> dict:
    """The torch engine on cuda:0 against the NumPy engine, TF32 off: every cell in float32 and
    float64 (losses relative, weights absolute), and bf16 against fp32 on the GPU."""
    from charlstm.config import CELL_NAMES
    from charlstm.engines.torch_devices import bf16_capable

    out: dict = {}
    for cell in CELL_NAMES:
        log(f"gpu equivalence {cell} …")
        for name, dtype in (("fp32", np.float32), ("fp64", np.float64)):
            a, wa = engine_losses(cell, dtype, kernels="numpy")
            with no_tf32(torch):
                b, wb = engine_losses(cell, dtype, engine="torch", device="cuda:0")
            out[f"{cell}.{name}"] = {
                "max_rel_loss_diff": float(np.max(np.abs(a - b) / a)),
                "max_abs_weight_diff": float(max(np.abs(wa[k] - wb[k]).max() for k in wa)),
            }
    if bf16_capable(torch.device("cuda", 0)):  # TF32 as by default on both sides
        a, _ = engine_losses("lstm", np.float32, engine="torch", device="cuda:0")
        b, _ = engine_losses("lstm", np.float32, engine="torch", device="cuda:0", precision="bf16")
        out["lstm.bf16_vs_fp32"] = {
            "max_rel_loss_diff": float(np.max(np.abs(a - b) / a)),
            "last_fp32": float(a[-1]),
            "last_bf16": float(b[-1]),
        }
    return out


def bench_gpu(torch, configs, reps: int, folder: Path, res: Results) -> dict:
    """On cuda:0 the torch engine in fp32 and bf16 and the plain loop, alternately, for every
    config; then fp32 on each GPU for the first config. TF32 as PyTorch has it by default."""
    from charlstm.engines.torch_devices import bf16_capable

    bf16 = bf16_capable(torch.device("cuda", 0))
    for L, H, B, T in configs:
        log(f"gpu L={L} H={H} B={B} T={T} …")
        corpus = synthetic_corpus(folder, 21 * B * T)
        fns = {"engine fp32": run_stepper(corpus, folder, L, H, B, T, engine="torch", device="cuda:0")}
        if bf16:
            fns["engine bf16"] = run_stepper(
                corpus, folder, L, H, B, T, engine="torch", device="cuda:0", precision="bf16"
            )
        fns["plain fp32"] = timing.torch_trainer(torch, L, H, B, T, device="cuda:0")
        times = timing.alternate(fns, reps, pause=0.0)
        row = {
            "config": {"L": L, "H": H, "B": B, "T": T},
            **{k: round(chars_per_s(t, B, T), 1) for k, t in times.items()},
        }
        row["engine/plain"] = round(row["engine fp32"] / row["plain fp32"], 3)
        del fns
        free(torch)
        res.row("gpu_configs", row)
    L, H, B, T = configs[0]
    corpus = synthetic_corpus(folder, 21 * B * T)
    each = {}
    for i in range(torch.cuda.device_count()):
        log(f"gpu cuda:{i} …")
        times = timing.alternate(
            {"step": run_stepper(corpus, folder, L, H, B, T, engine="torch", device=f"cuda:{i}")}, reps, pause=0.0
        )
        each[f"cuda:{i} {torch.cuda.get_device_name(i)}"] = round(chars_per_s(times["step"], B, T), 1)
        free(torch)
    return {
        "configs": res.pop("gpu_configs"),
        "each_gpu": {"config": {"L": L, "H": H, "B": B, "T": T}, "chars_per_s": each},
    }


# ------------------------------------------------------------------------------- a large corpus


def train_command(corpus: Path, folder: Path, device: str, L: int, H: int, B: int, T: int, steps: int) -> list[str]:
    return [
        "train", str(corpus), "--engine", "torch", "--device", device, "-L", str(L), "-H", str(H), "-B", str(B),
        "-T", str(T), "--max-steps", str(steps), "--val-fraction", "0.001", "--sample-length", "0", "--dropout", "0",
        "--log-every", "10", "--log-json", str(folder / "log.jsonl"), "--out", str(folder / "m.safetensors"),
        "--fresh", "-q",
    ]  # fmt: skip


def read_log(folder: Path) -> dict:
    """From a --log-json file: the median chars/s of the later step records (the step alone) and
    the end record's (the whole run: windows from the id cache, validation and saves included)."""
    records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    (folder / "log.jsonl").unlink()
    steps = [r["chars_per_s"] for r in records if r["type"] == "step"]
    end = [r for r in records if r["type"] == "end"][-1]
    return {
        "step_chars_per_s": float(np.median(steps[len(steps) // 2 :])),
        "run_chars_per_s": end["chars_per_s"],
        "elapsed_s": end["elapsed"],
    }


def bench_corpus(
    megabytes: int, folder: Path, device: str, nproc: int, L: int, H: int, B: int, T: int, steps: int, timeout: float
) -> dict:
    """A corpus of `megabytes` MB encoded once into the id cache (timed), then trained from it by
    `charlstm train` in one process and, with nproc > 1, by torchrun across nproc ranks."""
    corpus = folder / f"corpus{megabytes}.txt"
    log(f"{megabytes} MB corpus …")
    make_corpus(corpus, megabytes)
    env = {**os.environ, "CHARLSTM_CACHE": str(folder / "cache")}
    t0 = time.perf_counter()
    first = subprocess.run(
        [sys.executable, "-m", "charlstm", *train_command(corpus, folder, device, L, H, B, T, 2)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )
    assert first.returncode == 0, first.stderr
    result = {
        "megabytes": megabytes,
        "encode_and_2_steps_s": round(time.perf_counter() - t0, 1),
        "config": [L, H, B, T],
    }
    (folder / "log.jsonl").unlink()
    log(f"{megabytes} MB corpus: one process on {device} …")
    done = subprocess.run(
        [sys.executable, "-m", "charlstm", *train_command(corpus, folder, device, L, H, B, T, steps)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    result["one_process"] = read_log(folder)
    if nproc > 1:
        log(f"{megabytes} MB corpus: {nproc} ranks …")
        done = torchrun(
            nproc,
            "-m",
            "charlstm",
            *train_command(corpus, folder, "cuda" if device.startswith("cuda") else device, L, H, nproc * B, T, steps),
            env={"CHARLSTM_CACHE": str(folder / "cache")},
            timeout=timeout,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result[f"{nproc}_ranks"] = read_log(folder)
    return result


# ---------------------------------------------------------------------------------------- report


def print_cpu(rows: list[dict]) -> None:
    names = [k for k in rows[0] if k not in ("config", "engine/plain", "step_ms")]
    print("\nCPU: chars/s of one training step as `charlstm train` runs it (median of alternating runs)")
    head = f"{'config':<22}" + "".join(f"{n:>14}" for n in names) + f"{'engine/plain':>14}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        c = r["config"]
        print(
            f"{'L=%d H=%d B=%d T=%d' % (c['L'], c['H'], c['B'], c['T']):<22}"
            + "".join(f"{fmt(r[n]):>14}" for n in names)
            + f"{fmt(r.get('engine/plain'), '.3f'):>14}"
        )


def print_gpu(eq: dict, gpu: dict) -> None:
    print("\nGPU equivalence with the NumPy engine, TF32 off (50 steps, L=2 H=64 B=16 T=32)")
    for name, r in eq.items():
        weights = f"   weights max |diff| {r['max_abs_weight_diff']:.1e}" if "max_abs_weight_diff" in r else ""
        print(f"  {name:<20} losses max rel diff {r['max_rel_loss_diff']:.1e}{weights}")
    print("\nGPU cuda:0: chars/s (TF32 as PyTorch has it by default)")
    for r in gpu["configs"]:
        c = r["config"]
        cols = "   ".join(f"{k} {fmt(v)}" for k, v in r.items() if k not in ("config",))
        print(f"  L={c['L']} H={c['H']} B={c['B']} T={c['T']}:  {cols}")
    each = gpu["each_gpu"]
    print(
        f"  each GPU at L={each['config']['L']} H={each['config']['H']} B={each['config']['B']}: "
        + ", ".join(f"{k}: {fmt(v)}" for k, v in each["chars_per_s"].items())
    )


def print_corpus(res: dict) -> None:
    print(
        f"\n{res['megabytes']} MB corpus from the id cache (`charlstm train`, L={res['config'][0]} H={res['config'][1]} "
        f"B={res['config'][2]} per rank): encode + 2 steps {res['encode_and_2_steps_s']} s"
    )
    for key, r in res.items():
        if isinstance(r, dict):
            print(
                f"  {key:<12} step {r['step_chars_per_s']:>12,.0f} chars/s   whole run {r['run_chars_per_s']:>12,.0f} chars/s"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engines.json", help="JSON results file")
    ap.add_argument("--reps", type=int, default=7, help="timed rounds per measurement (median)")
    ap.add_argument("--quick", action="store_true", help="tiny configurations and a 2 MB corpus: a smoke test")
    args = ap.parse_args()
    reps = 3 if args.quick else max(3, args.reps)
    torch = timing.try_torch()
    started = time.perf_counter()
    res = Results(
        args.out,
        commit=timing.git_commit(),
        time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        quick=args.quick,
        torch=torch.__version__ if torch else None,
        cores=os.cpu_count(),
        load_before=round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if res.part("cpu", bench_cpu, torch, QUICK_CONFIGS if args.quick else timing.CONFIGS, reps, folder, res):
            print_cpu(res["cpu"])
        if torch is None:
            log("torch is not installed: only the NumPy engine was measured (pip install -e '.[torch]')")
        else:
            run_torch_parts(torch, res, args.quick, reps, folder)
    res["seconds"] = round(time.perf_counter() - started, 1)
    res.flush()
    seam = [r["engine/plain"] for r in res["cpu"] if "engine/plain" in r] if isinstance(res["cpu"], list) else []
    if seam:
        print(
            f"\ntarget: torch engine / plain loop on the CPU ≥ {TARGET_SEAM}: {'met' if min(seam) >= TARGET_SEAM else 'NOT met'} "
            f"(lowest {min(seam):.3f})"
        )
    failed = [k for k, v in res.items() if isinstance(v, dict) and "error" in v]
    print(f"\n{res['seconds']:.0f} s; results in {args.out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


def run_torch_parts(torch, res: Results, quick: bool, reps: int, folder: Path) -> None:
    """DDP on the CPU; on a machine with GPUs, their equivalence, speed and DDP; a large corpus.
    Each part stored as soon as it is measured; a failed part is recorded and the next one runs."""
    timeout = CHILD_TIMEOUT[quick]
    cpu_ddp = QUICK_CONFIGS[:1] if quick else [(2, 256, 64, 100)]
    if res.part("ddp_cpu", bench_ddp, torch, 2, "cpu", cpu_ddp, 10 if quick else 30, {"OMP_NUM_THREADS": "1"}):
        print_ddp(res["ddp_cpu"])
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    res["gpus"] = gpus
    if gpus:
        configs = [(1, 128, 32, 32)] if quick else GPU_CONFIGS
        res.part("gpu", bench_gpu, torch, configs, reps, folder, res)
        free(torch)
        res.part("gpu_equivalence", gpu_equivalence, torch)
        free(torch)
        if "error" not in res["gpu"] and "error" not in res["gpu_equivalence"]:
            print_gpu(res["gpu_equivalence"], res["gpu"])
        if gpus > 1:
            per_rank = [(L, H, gpus * B, T) for L, H, B, T in configs]
            if res.part("ddp_gpu", bench_ddp, torch, gpus, "cuda", per_rank, 20 if quick else 50):
                print_ddp(res["ddp_gpu"])
        else:
            log("one GPU: DDP across GPUs needs two or more")
    device, nproc = ("cuda:0", gpus) if gpus else ("cpu", 2)
    L, H, B, T = (1, 64, 16, 32) if quick else ((2, 512, 128, 100) if gpus else (2, 256, 64, 100))
    size, steps = (2, 40) if quick else (100, 300)
    if res.part("corpus", bench_corpus, size, folder, device, nproc, L, H, B, T, steps, timeout):
        print_corpus(res["corpus"])


if __name__ == "__main__":
    main()
