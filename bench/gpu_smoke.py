"""The first thing a session lent a GPU runs: the torch engine's GPU paths, in at most five minutes.

    python bench/gpu_smoke.py                       # --device cuda: every row; then bench/engines.py --quick
    python bench/gpu_smoke.py --device cpu          # the same steps on the CPU, smaller (< 2 minutes)
    python bench/gpu_smoke.py --device cpu --quick  # smaller still, no bench/engines.py (the test suite's)

Unattended: each row is printed and appended to the JSON Lines file (--out) as soon as it is
measured; each row has a time limit (SIGALRM), every child process too, and a row that fails or
times out says so and the next one runs. The exit status is 1 if any row failed.

(a) precision: fp32 and --precision bf16 side by side on one window from the same weights: the
    recurrent layers' output dtype, the head's, the gradients' relative difference, the fraction
    of zero gradients, and the validation loss (which must be the same: validation is fp32);
(b) syncs: steps of the real loop (guard one step late) with dropout, weight drop and --ema under
    `torch.cuda.set_sync_debug_mode("warn")`: host syncs per step (CUDA only);
(c) memory: 300 steps at 3×1024: step time and peak memory at steps 60 and 300 (no growth);
(d) equivalence with the NumPy engine, fp32 and fp64, every cell, TF32 off;
(e) resume: `charlstm train` stopped by SIGINT, resumed on the device, then on the NumPy engine;
(f) ddp: with two GPUs or more, torchrun over NCCL stopped by SIGINT and resumed on one GPU;
then bench/engines.py --quick as a child.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from engines_ddp import no_tf32, synthetic_ids
from timing import ROOT, log


class RowTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise RowTimeout("the row ran past its time limit")


def run_row(name: str, measure, ctx: dict, limit: int) -> dict:
    """One row: `measure(ctx)` under a time limit; its dict, with ok, seconds and any error."""
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit)
    try:
        row = measure(ctx)
    except Exception as e:  # noqa: BLE001 - unattended: record it, go on to the next row
        row = {"ok": False, "error": f"{type(e).__name__}: {str(e)[-1500:]}"}
    finally:
        signal.alarm(0)
    return {"row": name, "device": ctx["device"], **row, "seconds": round(time.perf_counter() - t0, 1)}


def show(row: dict) -> str:
    """One line of the table: the row, its verdict, its figures."""
    verdict = "skip" if row.get("skipped") else ("ok" if row.get("ok") else "FAIL")
    rest = {k: v for k, v in row.items() if k not in ("row", "device", "ok", "seconds")}
    figures = "  ".join(f"{k}={_short(v)}" for k, v in rest.items())
    return f"{row['row']:<12}{verdict:<6}{row['seconds']:>7.1f}s  {figures}"


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in v.items()) + "}"
    return str(v)


def engine(ctx: dict, L: int, H: int, B: int, T: int, dtype=np.float32, cell: str = "lstm", **train):
    """The torch engine on the row's device from the NumPy engine's initial weights (V = 65)."""
    from charlstm import engines
    from charlstm.config import ModelConfig, TrainConfig
    from charlstm.nn import model

    config = ModelConfig(65, H, L, cell)
    options = dict(seq_len=T, batch_size=B, dropout=0.0, max_steps=10**6, engine="torch", device=ctx["device"])
    cfg = TrainConfig(**{**options, **train})
    return engines.make_engine(config, cfg, model.init_params(config, 0), dtype)


def window_of(ids: np.ndarray, B: int, T: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    from charlstm.text.corpus import window

    return window(ids, B, T, k % 20)


def row_precision(ctx: dict) -> dict:
    """(a) One window from the same weights in fp32 and with the bf16 head (on the CPU: the
    engine refuses bf16, so the same Net runs its bf16 head under the CPU's autocast)."""
    torch = ctx["torch"]
    L, H, B, T = (2, 64, 8, 32) if ctx["cpu"] else (2, 512, 64, 100)
    from charlstm.engines.torch_devices import bf16_capable

    if not ctx["cpu"] and not bf16_capable(torch.device(ctx["device"])):
        return {"ok": True, "skipped": "this GPU's compute capability is below 8.0: --precision bf16 is refused"}
    ids = ctx["ids"](B, T)
    out, grads = {}, {}
    for name in ("fp32", "bf16"):
        eng = engine(ctx, L, H, B, T, precision="bf16" if name == "bf16" and not ctx["cpu"] else "fp32")
        eng.net.bf16_head = name == "bf16"
        seen = []
        eng.net.layers[0].register_forward_hook(lambda _m, _i, o, seen=seen: seen.append(str(o[0].dtype)))
        eng.net.head.register_forward_hook(lambda _m, _i, o, seen=seen: seen.append(str(o.dtype)))
        loss, norm, _ = eng.forward_backward(*window_of(ids, B, T, 0), eng.zero_state())
        grads[name] = {k: p.grad.detach().float().cpu() for k, p in eng.params.items()}
        zero = sum(int((g == 0).sum()) for g in grads[name].values()) / sum(g.numel() for g in grads[name].values())
        val = eng.evaluate(ids[: 4 * B * T + 1], B, T).loss
        out[name] = {"recurrent": seen[0], "head": seen[1], "loss": loss, "zero_grads": zero, "val_loss": val}
        del eng
    diff = max(float((grads["bf16"][k] - g).norm() / g.norm().clamp_min(1e-30)) for k, g in grads["fp32"].items())
    a, b = out["fp32"], out["bf16"]
    ok = (
        a["recurrent"] == b["recurrent"] == "torch.float32"
        and b["head"] == "torch.bfloat16"
        and diff < 0.1
        and b["zero_grads"] <= a["zero_grads"] + 0.01
        and abs(a["val_loss"] - b["val_loss"]) <= 1e-6 * abs(a["val_loss"])
    )
    return {"ok": ok, "max_rel_grad_diff": diff, "fp32": a, "bf16": b}


def row_syncs(ctx: dict) -> dict:
    """(b) The real loop (the guard one step late) with dropout, weight drop and --ema, counting
    the host syncs that `set_sync_debug_mode("warn")` reports, per step after two warm-up steps."""
    if ctx["cpu"]:
        return {"ok": True, "skipped": "the CPU runs every op synchronously: sync debug mode is CUDA's"}
    import warnings

    from charlstm.training import loop

    torch, steps = ctx["torch"], 12
    run = smoke_run(ctx, steps, dropout=0.2, weight_drop=0.3, ema=0.99)
    counts: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.on_event = lambda e: counts.append(len(caught)) if type(e).__name__ == "Step" else None
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loop._loop(run, lambda: False)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    per_step = np.diff(counts[2:-1]) if len(counts) > 4 else np.array([-1])
    where = sorted({str(w.message)[:80] for w in caught})[:3]
    return {
        "ok": bool(per_step.max() <= 1),
        "syncs_per_step": per_step.tolist(),
        "late": run.engine.late,
        "what": where,
    }


def smoke_run(ctx: dict, steps: int, **train):
    """A run set up by the loop on a synthetic 65-letter text (written once), ready to step."""
    from charlstm.config import ModelConfig, TrainConfig
    from charlstm.text.corpus import load_corpus
    from charlstm.training import loop

    path = ctx["folder"] / "synthetic.txt"
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?\n"[:65]))
    path.write_text("".join(letters[ctx["ids"](16, 64)]), encoding="utf-8")
    corpus = load_corpus(path)
    cfg = TrainConfig(
        seq_len=64, batch_size=16, sample_length=0, max_steps=steps, engine="torch", device=ctx["device"], **train
    )
    return loop.start_run(corpus, ModelConfig(corpus.vocab.size, 128, 2), cfg, ctx["folder"] / "syncs.safetensors")


def row_memory(ctx: dict) -> dict:
    """(c) 300 steps at 3×1024 (the CPU: 30 at 1×64): ms a step and peak memory at 60 and 300."""
    torch = ctx["torch"]
    L, H, B, T, marks = (1, 64, 8, 32, (6, 30)) if ctx["cpu"] else (3, 1024, 128, 100, (60, 300))
    eng, ids = engine(ctx, L, H, B, T, dropout=0.2), ctx["ids"](B, T)
    state, pending, t0, seen = eng.zero_state(), None, time.perf_counter(), {}
    for k in range(1, marks[1] + 1):
        numbers, state = eng.queue_step(*window_of(ids, B, T, k), state)
        if pending is not None:
            pending.get()
        eng.update(1e-3)
        pending = numbers
        if k in marks:
            pending.get()
            took, t0 = time.perf_counter() - t0, time.perf_counter()
            peak = torch.cuda.max_memory_allocated() if not ctx["cpu"] else _rss()
            seen[k] = {
                "ms_per_step": 1e3 * took / (k - max([0, *(m for m in marks if m < k)])),
                "peak_MB": peak / 2**20,
            }
    a, b = (seen[m]["peak_MB"] for m in marks)
    return {"ok": b <= a * 1.02 + 1, "config": [L, H, B, T], **{f"step{m}": seen[m] for m in marks}}


def _rss() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # Linux: KiB


def row_equivalence(ctx: dict) -> dict:
    """(d) The torch engine against the NumPy engine, TF32 off: every cell, fp32 and fp64."""
    from charlstm.config import CELL_NAMES, TrainConfig
    from charlstm.engines.numpy_engine import NumpyEngine

    L, H, B, T, steps = (2, 32, 8, 16, 8) if ctx["quick"] else (2, 64, 16, 32, 30)
    ids, out, ok = ctx["ids"](B, T), {}, True
    for cell in CELL_NAMES:
        for name, dtype, tol in (("fp32", np.float32, 1e-3), ("fp64", np.float64, 1e-8)):
            theirs = engine(ctx, L, H, B, T, dtype, cell)
            mine = NumpyEngine(
                theirs.config,
                TrainConfig(seq_len=T, batch_size=B, dropout=0.0, kernels="numpy"),
                _init(theirs.config),
                dtype,
            )
            with ctx["no_tf32"](ctx["torch"]):
                rel = _most_apart(mine, theirs, ids, B, T, steps)
            out[f"{cell}.{name}"] = rel
            ok &= rel < tol
            del theirs
    return {"ok": bool(ok), "max_rel_loss_diff": out, "steps": steps}


def _init(config):
    from charlstm.nn import model

    return model.init_params(config, 0)


def _most_apart(a, b, ids: np.ndarray, B: int, T: int, steps: int) -> float:
    """`steps` steps of two engines on the same windows: the largest relative difference of their losses."""
    sa, sb, worst = a.zero_state(), b.zero_state(), 0.0
    for k in range(steps):
        x, y = window_of(ids, B, T, k)
        la, _, sa = a.forward_backward(x, y, sa)
        lb, _, sb = b.forward_backward(x, y, sb)
        a.update(2e-3)
        b.update(2e-3)
        worst = max(worst, abs(la - lb) / abs(la))
    return worst


def cli(ctx: dict, *args: str, engine_args=(), signal_after: int | None = None, launcher=()) -> tuple[int, str]:
    """`python [launcher] -m charlstm train ARGS` (time-limited); with `signal_after`, SIGINT once
    that many steps are logged. The exit status and the end of stderr."""
    log_file = ctx["folder"] / "cli.jsonl"
    log_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        *launcher,
        "-m",
        "charlstm",
        "train",
        *args,
        *engine_args,
        "--log-json",
        str(log_file),
        "--log-every",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.Popen(
        command, cwd=ctx["folder"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + ctx["limits"]["child"]
    while signal_after and time.time() < deadline and proc.poll() is None:
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        if sum('"type": "step"' in line or '"type":"step"' in line for line in lines) >= signal_after:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.2)
    try:
        _, err = proc.communicate(timeout=max(5.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return -9, "timed out: " + err[-800:]
    return proc.returncode, err[-800:]


def row_resume(ctx: dict) -> dict:
    """(e) `charlstm train` on the device stopped by SIGINT, resumed there, then on the NumPy engine."""
    from charlstm.store import checkpoint

    text = ctx["folder"] / "resume.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 300, encoding="utf-8")
    model = ["-H", "32", "-L", "2", "-B", "8", "-T", "32", "--sample-length", "0", "--dropout", "0.1", "--fresh"]
    out = ["--out", str(ctx["folder"] / "resume.safetensors")]
    device = ["--engine", "torch", "--device", ctx["device"]]
    rc, err = cli(ctx, str(text), *model, *out, "--max-steps", "100000", engine_args=device, signal_after=5)
    resume_file = ctx["folder"] / "resume.resume.safetensors"
    if not resume_file.exists():
        return {"ok": False, "stopped_rc": rc, "stderr": err}
    saved = checkpoint.load(resume_file).train
    step, status = saved["step"], saved["status"]
    rc2, err2 = cli(ctx, "--resume", str(resume_file), "--max-steps", str(step + 5), engine_args=device)
    step2 = checkpoint.load(resume_file).train["step"]
    rc3, err3 = cli(ctx, "--resume", str(resume_file), "--max-steps", str(step2 + 5), engine_args=["--engine", "numpy"])
    step3 = checkpoint.load(resume_file).train["step"]
    ok = status == "interrupted" and rc2 == rc3 == 0 and step2 == step + 5 and step3 == step2 + 5
    row = {"ok": ok, "stopped_at": step, "status": status, "on_device_to": step2, "on_numpy_to": step3}
    return row if ok else {**row, "stderr": (err + err2 + err3)[-1500:]}


def row_ddp(ctx: dict) -> dict:
    """(f) torchrun over NCCL on every GPU, stopped by SIGINT, resumed in one process on one GPU."""
    torch = ctx["torch"]
    gpus = 0 if ctx["cpu"] else torch.cuda.device_count()
    if gpus < 2:
        return {
            "ok": True,
            "skipped": f"{gpus} GPU(s): DDP over NCCL needs two or more (gloo on the CPU: tests/test_distributed.py)",
        }
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    launcher = ["-m", "torch.distributed.run", "--nproc-per-node", str(gpus), "--master-addr", "127.0.0.1"]
    text = ctx["folder"] / "ddp.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 300, encoding="utf-8")
    out = ctx["folder"] / "ddp.safetensors"
    args = [str(text), "-H", "64", "-B", str(8 * gpus), "-T", "32", "--sample-length", "0", "--max-steps", "100000"]
    args += ["--out", str(out), "--fresh"]
    rc, err = cli(
        ctx, *args, engine_args=["--engine", "torch", "--device", "cuda"], signal_after=5,
        launcher=[*launcher, "--master-port", port],
    )  # fmt: skip
    resume_file = out.with_name("ddp.resume.safetensors")
    if not resume_file.exists():
        return {"ok": False, "rc": rc, "stderr": err}
    from charlstm.store import checkpoint

    step, status = (checkpoint.load(resume_file).train[k] for k in ("step", "status"))
    rc, err = cli(ctx, "--resume", str(resume_file), "--max-steps", str(step + 5), engine_args=["--device", "cuda:0"])
    ok = status == "interrupted" and rc == 0 and checkpoint.load(resume_file).train["step"] == step + 5
    return {"ok": ok, "ranks": gpus, "stopped_at": step, "status": status, **({} if ok else {"stderr": err})}


ROWS = [
    ("precision", row_precision),
    ("syncs", row_syncs),
    ("memory", row_memory),
    ("equivalence", row_equivalence),
    ("resume", row_resume),
    ("ddp", row_ddp),
]


def engines_quick(ctx: dict) -> dict:
    """bench/engines.py --quick as a child, time-limited; its exit status and its JSON's parts."""
    if ctx["quick"]:
        return {"ok": True, "skipped": "--quick: bench/engines.py --quick is left out"}
    out = ctx["folder"] / "engines.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "engines.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=ctx["limits"]["engines"], cwd=ROOT,
    )  # fmt: skip
    sys.stdout.write(done.stdout[-6000:])
    parts = json.loads(out.read_text()) if out.exists() else {}
    failed = [k for k, v in parts.items() if isinstance(v, dict) and "error" in v]
    return {"ok": done.returncode == 0, "failed_parts": failed, "json": str(out), "stderr": done.stderr[-800:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (the dry run)")
    ap.add_argument("--quick", action="store_true", help="smaller rows and no bench/engines.py (the test suite's)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_smoke.jsonl", help="JSON Lines")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1 if args.device == "cpu" else min(4, os.cpu_count() or 1))  # tiny models on the CPU
    cpu = args.device == "cpu"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    folder = args.out.parent / "gpu_smoke_files"
    folder.mkdir(exist_ok=True)
    ctx = {
        "torch": torch, "device": args.device, "cpu": cpu, "quick": args.quick, "folder": folder,
        "ids": synthetic_ids, "no_tf32": no_tf32, "np": np,
        "limits": {"row": 120 if cpu else 150, "child": 60 if cpu else 90, "engines": 100 if cpu else 240},
    }  # fmt: skip
    name = "the CPU" if cpu else torch.cuda.get_device_name(torch.device(args.device))
    log(f"gpu_smoke on {args.device} ({name}), torch {torch.__version__}; rows to {args.out}")
    rows = []
    with args.out.open("w", encoding="utf-8") as f:
        for row_name, measure in [*ROWS, ("engines", engines_quick)]:
            limit = ctx["limits"]["engines"] + 20 if row_name == "engines" else ctx["limits"]["row"]
            row = run_row(row_name, measure, ctx, limit)
            f.write(json.dumps(row, default=str) + "\n")
            f.flush()
            rows.append(row)
            print(show(row), flush=True)
    print("\n" + "\n".join(show(r) for r in rows))
    failed = [r["row"] for r in rows if not r.get("ok")]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} rows ok" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
