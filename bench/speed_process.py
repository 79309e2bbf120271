"""What a process costs (bench/speed.py's memory and start-up parts): the peak memory of training
steps over the post-import baseline, beside what the shapes need, and its drift over many steps
(each configuration in a fresh interpreter: `python bench/speed_process.py L H B T STEPS`); and
`charlstm --help` and the time to the first sampled character of `charlstm sample`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from timing import ROOT, SAMPLE_MODEL, V, charlstm_trainer, log


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def memory_child(L: int, H: int, B: int, T: int, steps: int) -> None:
    """Runs in a fresh interpreter: RSS after imports, then peak and drift over training steps."""
    import tracemalloc

    from charlstm.nn import model, optim  # noqa: F401  (the imports are the baseline)
    from charlstm.text.corpus import window  # noqa: F401

    np.random.default_rng(0)  # numpy.random is imported lazily, on first use: an import too
    baseline = _rss_kib("VmRSS")
    tracemalloc.start()  # numpy reports its array allocations to tracemalloc
    step = charlstm_trainer(L, H, B, T)
    for _ in range(3):
        step()
    after_few = _rss_kib("VmRSS")
    for _ in range(steps):
        step()
    after_many = _rss_kib("VmRSS")
    arrays_peak = tracemalloc.get_traced_memory()[1] // 1024
    print(
        json.dumps(
            {
                "baseline_kib": baseline,
                "peak_kib": _rss_kib("VmHWM"),
                "after_3_kib": after_few,
                f"after_{3 + steps}_kib": after_many,
                "steps": 3 + steps,
                "arrays_peak_kib": arrays_peak,
            }
        )
    )


def memory_need_bytes(L: int, H: int, B: int, T: int, itemsize: int = 4) -> dict:
    """What one training step must hold, from the shapes: parameters, their gradients and Adam's
    two moments (4 × P), and the activations backward needs — per layer and step the gates (4H),
    c, tanh(c) and h (3H) — plus the logits (V) and the head's input gradient (H) per step."""
    P = sum(4 * H * ((V if k == 0 else H) + H + 2) for k in range(L)) + V * H + V
    weights = 4 * P * itemsize
    activations = T * B * (L * 7 * H + V + H) * itemsize
    return {
        "params": P,
        "weights_grads_adam_bytes": weights,
        "activations_bytes": activations,
        "total_bytes": weights + activations,
    }


def bench_memory(configs, steps: int) -> list[dict]:
    rows = []
    for L, H, B, T in configs:
        log(f"memory L={L} H={H} B={B} T={T} …")
        out = subprocess.run(
            [sys.executable, __file__, str(L), str(H), str(B), str(T), str(steps)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        m = json.loads(out)
        need = memory_need_bytes(L, H, B, T)
        used = (m["peak_kib"] - m["baseline_kib"]) * 1024
        drift = (m[f"after_{m['steps']}_kib"] - m["after_3_kib"]) * 1024
        rows.append(
            {
                "config": {"L": L, "H": H, "B": B, "T": T, "V": V},
                "peak_delta_mb": round(used / 1e6, 1),
                "need_mb": round(need["total_bytes"] / 1e6, 1),
                "ratio": round(used / need["total_bytes"], 2),
                "drift_mb": round(drift / 1e6, 2),
                "drift_steps": f"3 → {m['steps']}",
                "raw": m,
                "need": need,
            }
        )
    return rows


def charlstm_command() -> list[str]:
    exe = shutil.which("charlstm", path=str(Path(sys.executable).parent)) or shutil.which("charlstm")
    return [exe] if exe else [sys.executable, "-m", "charlstm"]


def bench_cli(reps: int, with_numba: bool = False) -> dict:
    from charlstm.nn import model
    from charlstm.store import checkpoint
    from charlstm.text.vocab import Vocab

    cmd = charlstm_command()
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    log("command line …")
    help_times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--help"], capture_output=True, check=True, env=env)
        help_times.append(time.perf_counter() - t0)

    L, H = SAMPLE_MODEL
    config = model.ModelConfig(vocab_size=V, hidden_size=H, num_layers=L)
    vocab = Vocab(tuple(chr(48 + k) for k in range(V)))
    seed = "0123456789"
    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint.save(
            checkpoint.Checkpoint(config, vocab, model.init_params(config, 0)), Path(tmp) / "m.safetensors"
        )

        def first_char(*extra: str) -> list[float]:
            runs = []
            for _ in range(reps):
                t0 = time.perf_counter()
                proc = subprocess.Popen(
                    [*cmd, "sample", "--checkpoint", str(path), "--seed", seed, "--length", "50", *extra],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                )
                got = b""
                while len(got) < len(seed) + 1:  # the seed is echoed, then the first sampled character
                    chunk = os.read(proc.stdout.fileno(), 64)
                    if not chunk:
                        break
                    got += chunk
                runs.append(time.perf_counter() - t0)
                proc.communicate()
            return runs

        first = first_char()
        # the numba kernels from the disk cache (the training and sampling benchmarks filled it)
        first_numba = first_char("--kernels", "numba") if with_numba else None
        imports = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "charlstm",
                "sample",
                "--checkpoint",
                str(path),
                "--seed",
                seed,
                "--length",
                "5",
            ],
            capture_output=True,
            text=True,
            env=env,
        )
    torch_imported = any(line.split("|")[-1].strip() == "torch" for line in imports.stderr.splitlines())
    return {
        "help_s": round(float(np.median(help_times)), 3),
        "first_char_s": round(float(np.median(first)), 3),
        "first_char_numba_s": round(float(np.median(first_numba)), 3) if first_numba else None,
        "sample_imports_torch": torch_imported,
        "help_runs_s": [round(t, 3) for t in help_times],
        "first_char_runs_s": [round(t, 3) for t in first],
        "first_char_numba_runs_s": [round(t, 3) for t in first_numba] if first_numba else None,
    }


if __name__ == "__main__":
    memory_child(*map(int, sys.argv[1:6]))
