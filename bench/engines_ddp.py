"""bench/engines.py's runs across ranks (torchrun: gloo on CPUs, NCCL on GPUs): the per-step losses
of K ranks against one process, their speed, and what the ranks' agreement costs each step; and
the training loop on synthetic ids that both halves time. A rank runs this file:
`torchrun --nproc-per-node K bench/engines_ddp.py SPEC`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from timing import LR, ROOT, V, log


def synthetic_ids(B: int, T: int) -> np.ndarray:
    """The ids the engine benchmarks train on: 21·B·T + 1 random characters of V (window k % 20)."""
    return np.random.default_rng(1).integers(0, V, 21 * B * T + 1, dtype=np.uint8)


def train_steps(
    engine, B: int, T: int, steps: int, after: Callable[[], object] = lambda: None
) -> tuple[list[float], list[float]]:
    """`steps` steps of `engine` at rate LR on `synthetic_ids`, `after()` after each (the ranks'
    agreement): the losses and the seconds of each step."""
    from charlstm.text.corpus import window

    ids = synthetic_ids(B, T)
    state, losses, times = engine.zero_state(), [], []
    for k in range(steps):
        t0 = time.perf_counter()
        loss, _, state = engine.forward_backward(*window(ids, B, T, k % 20), state)
        engine.update(LR)
        after()
        times.append(time.perf_counter() - t0)
        losses.append(loss)
    return losses, times


def torch_engine(device: str, L: int, H: int, B: int, T: int, steps: int):
    """The torch engine on `device` (under torchrun: this rank's), from the NumPy engine's initial weights."""
    from charlstm import engines
    from charlstm.config import ModelConfig, TrainConfig
    from charlstm.nn import model

    config = ModelConfig(V, H, L)
    cfg = TrainConfig(seq_len=T, batch_size=B, dropout=0.0, max_steps=steps, engine="torch", device=device)
    return engines.make_engine(config, cfg, model.init_params(config, 0))


def torchrun(nproc: int, *args: str, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """`torchrun --nproc-per-node nproc ARGS` on this machine, on the loopback address alone."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(nproc),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        *args,
    ]
    full = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=full, timeout=timeout, cwd=ROOT)


def ddp(nproc: int, device: str, L: int, H: int, B: int, T: int, steps: int, env: dict | None = None) -> dict:
    """`nproc` ranks sharing B streams (`ddp_child`); what rank 0 reports."""
    spec = json.dumps({"device": device, "L": L, "H": H, "B": B, "T": T, "steps": steps})
    done = torchrun(nproc, str(Path(__file__).resolve()), spec, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ddp_child(spec: dict) -> None:
    """Runs under torchrun: `steps` steps of the torch engine with the agreement `train._after_step`
    makes (once a step), then the agreement alone; rank 0 prints losses, timings and chars/s."""
    L, H, B, T, steps = (spec[k] for k in ("L", "H", "B", "T", "steps"))
    engine = torch_engine(spec["device"], L, H, B, T, steps)
    team = engine.team
    losses, times = train_steps(engine, B, T, steps, lambda: team.agree(lead=[0.0, 0.0], flags=[False]))
    t0 = time.perf_counter()
    for _ in range(200):
        team.agree(lead=[0.0, 0.0], flags=[False])
    agree = (time.perf_counter() - t0) / 200
    if team.leader:
        step = float(np.median(times[len(times) // 2 :]))
        print(
            json.dumps(
                {
                    "ranks": team.size,
                    "losses": losses,
                    "step_ms": step * 1e3,
                    "agree_us": agree * 1e6,
                    "agree_share": agree / step,
                    "chars_per_s": B * T / step,
                    "engine": engine.describe(),
                }
            )
        )
    engine.close()


def one_process_losses(device: str, L: int, H: int, B: int, T: int, steps: int) -> list[float]:
    """`ddp_child`'s losses from one process: the reference for the ranks' equivalence."""
    return train_steps(torch_engine(device, L, H, B, T, steps), B, T, steps)[0]


@contextmanager
def no_tf32(torch) -> Iterator[None]:
    """TF32 off in cuDNN's RNNs (on by PyTorch's default from Ampere on) and in matmuls (off by
    default) where exactness is checked; both flags as they were afterwards."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def bench_ddp(torch, nproc: int, device: str, configs, steps: int, env: dict | None = None) -> dict:
    """Equivalence of `nproc` ranks with one process (first config; TF32 off on both sides), then
    each config's speed (TF32 as PyTorch has it by default)."""
    L, H, B, T = configs[0]
    log(f"ddp ×{nproc} on {device}: equivalence …")
    ranks = ddp(nproc, device, L, H, B, T, 30, {**(env or {}), "NVIDIA_TF32_OVERRIDE": "0"})
    with no_tf32(torch):
        one = one_process_losses("cuda:0" if device == "cuda" else device, L, H, B, T, 30)
    rel = float(np.max(np.abs(np.array(ranks["losses"]) - one) / np.abs(one)))
    result = {
        "ranks": nproc,
        "device": device,
        "equivalence": {"config": [L, H, B, T], "max_rel_loss_diff": rel},
        "speed": [],
    }
    for L, H, B, T in configs:
        log(f"ddp ×{nproc} on {device} L={L} H={H} B={B} T={T} …")
        r = ddp(nproc, device, L, H, B, T, steps, env)
        result["speed"].append(
            {"config": {"L": L, "H": H, "B": B, "T": T}, **{k: v for k, v in r.items() if k != "losses"}}
        )
    return result


def print_ddp(res: dict) -> None:
    eq = res["equivalence"]
    print(
        f"\nDDP, {res['ranks']} ranks on {res['device']}: per-step losses against one process "
        f"({'L=%d H=%d B=%d T=%d' % tuple(eq['config'])}, 30 steps): max relative difference {eq['max_rel_loss_diff']:.2e}"
    )
    for r in res["speed"]:
        c = r["config"]
        print(
            f"  L={c['L']} H={c['H']} B={c['B']} (all ranks) T={c['T']}: {r['chars_per_s']:>12,.0f} chars/s   step {r['step_ms']:.2f} ms   "
            f"agreement {r['agree_us']:.0f} µs a step ({r['agree_share']:.1%} of it)"
        )


if __name__ == "__main__":
    ddp_child(json.loads(sys.argv[1]))
