"""What the speed benchmarks share (bench/speed.py, bench/speed_sampling.py, bench/speed_process.py,
bench/engines.py): the configurations, one training step of charlstm and of plain PyTorch, timing
them alternately, a GEMM probe, and the FLOPs a training character costs."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
V = 65
CONFIGS = [  # (L, H, B, T)
    (1, 128, 32, 64),
    (2, 256, 64, 100),
    (2, 512, 64, 100),
    (3, 512, 32, 100),
]
SAMPLE_MODEL = (2, 512)  # (L, H) of the sampling and start-up checks
LR, CLIP = 2e-3, 5.0
KERNELS = ("numpy", "numba")  # charlstm's two kernel paths (`charlstm.nn.kernels`)


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def try_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    # torch.backends.mkldnn.flags (the native path of the sampling comparison) warns about Intel GPUs
    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
    return torch


def fmt(v, spec: str = ",.0f") -> str:
    return "—" if v is None else format(v, spec)


def git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def numba_available() -> bool:
    from charlstm.nn import kernels

    return kernels.available()


def training_flops_per_char(L: int, H: int) -> dict:
    """Matrix-multiply FLOPs per character of one training step.

    Forward: every layer's recurrent product (2·H·4H), every layer above the first its input
    product (2·H·4H; the first layer's one-hot input is a row gather, 0 FLOPs), the head (2·H·V).
    Training ≈ 3 × forward (backward computes an input gradient and a weight gradient for every
    product), except that the first layer's input needs only its weight gradient (2·V·4H).
    """
    forward = L * 2 * H * 4 * H + (L - 1) * 2 * H * 4 * H + 2 * H * V
    return {"forward": forward, "training": 3 * forward + 2 * V * 4 * H}


def charlstm_trainer(L: int, H: int, B: int, T: int, kernels_name: str = "numpy"):
    """One training step exactly as charlstm.training.loop runs it (`train.train_step`: loss_and_grads on
    the kernels, clip_grad_norm, Adam from make_optimizer on the kernels), over a synthetic
    65-character corpus, on the kernels called `kernels_name`."""
    from charlstm.nn import kernels, model, optim
    from charlstm.text.corpus import num_windows, window

    config = model.ModelConfig(vocab_size=V, hidden_size=H, num_layers=L)
    params = model.init_params(config, seed=0)
    k = kernels.load(kernels_name)
    k.warm_up(np.float32)
    optimizer = optim.make_optimizer("adam", params, k)
    ids = np.random.default_rng(1).integers(0, V, 20 * B * T + 1, dtype=np.uint8)  # 20 windows
    steps = num_windows(len(ids), B, T)
    run = {"state": model.zero_state(config, B), "cache": None, "k": 0}

    def step() -> float:
        x, y = window(ids, B, T, run["k"] % steps)
        run["k"] += 1
        loss, grads, new_state, run["cache"] = model.loss_and_grads(
            params, config, x, y, run["state"], run["cache"], 0.0, None, k
        )
        optim.clip_grad_norm(grads, CLIP)
        optimizer.step(params, grads, LR)
        run["state"] = new_state
        return loss

    return step


def torch_trainer(torch, L: int, H: int, B: int, T: int, device: str = "cpu"):
    """The PyTorch equivalent: nn.LSTM on one-hot vectors (the same parameters as charlstm),
    nn.Linear, cross-entropy, Adam and clip_grad_norm_, state carried and detached; on `device`
    (bench/engines.py runs it on GPUs too; its ids are there before timing)."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(V, H, L).to(device)
    head = torch.nn.Linear(H, V).to(device)
    parameters = list(lstm.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(parameters, lr=LR)
    ids = torch.from_numpy(np.random.default_rng(1).integers(0, V, (50, T + 1, B)).astype(np.int64)).to(device)
    run = {"state": (torch.zeros(L, B, H, device=device), torch.zeros(L, B, H, device=device)), "k": 0}

    def step() -> float:
        chunk = ids[run["k"] % len(ids)]
        run["k"] += 1
        x, y = chunk[:-1], chunk[1:]
        out, state = lstm(torch.nn.functional.one_hot(x, V).float(), run["state"])
        logits = head(out).reshape(-1, V)
        loss = torch.nn.functional.cross_entropy(logits, y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, CLIP)
        optimizer.step()
        run["state"] = tuple(s.detach() for s in state)
        return loss.item()

    return step


def alternate(fns: dict, reps: int, warmup: int = 2, pause: float = 0.2) -> dict:
    """Time each function in turn, A B A B …, after `warmup` untimed rounds; the list of seconds
    per function. The pause before each call lets the other library's idle worker threads stop
    spinning (OpenBLAS's spin for ~0.12 s after a call here, which would otherwise take a core
    from PyTorch's next step)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def gemm_probe(n: int = 2048):
    """A large float32 GEMM, timed beside the training steps: the machine's GEMM rate right then
    (on a shared 2-core box it moves by tens of percent over minutes)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    return lambda: np.matmul(a, b, out=out), 2 * n**3


class Results(dict):
    """The results, rewritten to `path` (atomically) whenever a row or part is added."""

    def __init__(self, path: Path, **first) -> None:
        super().__init__(first)
        self.path = path
        self.flush()

    def flush(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(self.path)

    def row(self, key: str, row: dict) -> None:
        self.setdefault(key, []).append(row)
        self.flush()

    def part(self, key: str, measure, *args) -> dict | None:
        """`measure(*args)` stored under `key`; a failure (a child timed out, a GPU error) is
        stored as {"error": …} and the run goes on."""
        try:
            self[key] = measure(*args)
        except Exception as e:  # noqa: BLE001 - unattended: record it, measure the rest
            log(f"{key}: FAILED: {type(e).__name__}: {str(e)[-2000:]}")
            rows = self.get(key) if isinstance(self.get(key), list) else []  # those measured before it failed
            self[key] = {"error": f"{type(e).__name__}: {str(e)[-2000:]}", "rows": rows}
        self.flush()
        return None if "error" in self[key] else self[key]


def free(torch) -> None:
    """Let go of the engines just measured before the next are built (GPU memory included)."""
    gc.collect()
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
