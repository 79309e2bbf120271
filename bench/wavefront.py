"""A probe (issue 27): a 2-layer LSTM's forward and backward over one window as a wavefront, each
layer on its own core, against today's schedule.

    python bench/wavefront.py [-B 64] [-T 100] [-H 256] [--reps 7] [--splits none,half,all]
                              [--syncs event,condition] [--kernels numba|numpy] [--pause 0.2]
                              [--switch-interval S]

(a) today: layer 1's time loop, layer 2's input projection as one GEMM over B·T rows, layer 2's
loop; backward likewise (layer 2's loop, its weight gradients and dx as window GEMMs, layer 1's
loop, its weight gradients), every product on 2 BLAS threads: the real `ops.project`,
`cells.lstm.forward` / `backward` and `ops.project_backward`.

(b) the wavefront, cuDNN's schedule: two Python threads, BLAS on 1 thread (threadpoolctl), the
numba kernels on 1. Thread A runs layer 1's loop and publishes h1_t; thread B runs layer 2, whose
step t waits for h1_t and multiplies [h2_{t-1}, h1_t, 1] by [s⊙W_hh2ᵀ; s⊙W_ih2ᵀ; s⊙b2] (one
product, K = 2H+1), then the gate kernel; layer 1's step t+1 and its gate math overlap layer 2's
step t. Backward in reverse time: B goes first, da2_t @ [W_hh2 | W_ih2] gives its dh for t−1 and
dx2_t, which A's step t waits for. After both loops, the weight gradients are window GEMMs on 2
BLAS threads, as in (a) (layer 2's [dW_hh2 | dW_ih2 | db2] in one).
Both threads use the real numba kernels `lstm_forward_gates` / `lstm_backward_gates` (nogil).

Splits: so B's products are twice A's. `none` leaves it so (A publishes h1_t before its next
product); `all` moves layer 2's input product to A, fused with A's next recurrent product
([h1_t, 1] @ [W_rec1 | s⊙W_ih2ᵀ; s⊙b2], N = 8H; published after it), and in backward dx2_t =
da2_t @ W_ih2 to A (A then has twice B's products); `half` moves half (gate columns 0:2H of the
input product; dx2's last H/2 columns, for which A waits on a second signal, da2_t), which
balances the two threads' products.
Syncs: `event`, a threading.Event per step; `condition`, a counter of published steps under a
threading.Condition (waiting only when the step is not published yet).

Printed: ms per forward and backward (median of --reps, alternating A B A B with --pause before
each forward), the ratio to (a), and the products' FLOPs over that time as GFLOP/s and as a share
of a 2048³ float32 GEMM on 2 threads timed in the same rotation. Before timing, (b)'s outputs (h of
both layers, final states) and gradients (every weight, the initial states') are checked against
(a)'s (max |b − a| ≤ 1e-4 · max |a| per array) at a small size and at the timed size.

The two schedules are in bench/wavefront_schedules.py. Each timed call includes what it would cost
per window in an engine: (b) makes its per-step signals (T Events or one Condition) and its thread,
and both set their BLAS thread count (threadpoolctl) and build their weight operands. A timing on
a loaded machine says nothing (a 2-thread BLAS stalls when a core is taken): measure on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wavefront_schedules import SYNCS, Net, Today, V, Wave, make_net, set_threads  # noqa: E402

from charlstm.nn import kernels as kernels_  # noqa: E402

from timing import gemm_probe, git_commit  # noqa: E402

RTOL = 1e-4

# ------------------------------------------------------------------------------- check and time


def flops(B: int, T: int, H: int) -> tuple[float, float]:
    """The products' FLOPs of (a)'s forward and backward (the first layer's one-hot input: a
    gather forward, a one-hot GEMM for dW_ih1 backward)."""
    rec = 2 * T * B * (H + 1) * 4 * H  # a layer's per-step products, with the bias row
    inp = 2 * T * B * H * 4 * H  # layer 2's input projection
    back = (
        2 * (2 * T * B * 4 * H * H) + 2 * inp + 2 * rec + 2 * T * B * 4 * H * V
    )  # dh, dx2 + dW_ih2, dW_hh + db, dW_ih1
    return 2 * rec + inp, back


def check(today: Today, waves: dict[str, Wave]) -> float:
    """Every variant's forward and backward against today's: the largest relative difference."""
    ref = today.forward()
    ref = {name: v.copy() for name, v in ref.items()}
    ref |= {name: v.copy() for name, v in today.backward().items()}
    worst = 0.0
    for label, wave in waves.items():
        got = wave.forward()
        got = {name: v.copy() for name, v in got.items()}
        got |= wave.backward()
        for name, want in ref.items():
            err = float(np.max(np.abs(got[name] - want))) / max(float(np.max(np.abs(want))), 1e-30)
            if not err <= RTOL:
                raise SystemExit(f"{label}: {name} differs from today's by {err:.1e} of its largest element")
            worst = max(worst, err)
    return worst


def variants(net: Net, k: kernels_.Kernels, splits: list[str], syncs: list[str]) -> dict[str, Wave]:
    H = net.W_hh[0].shape[1]
    cols = {"none": (0, 0), "half": (2 * H, H // 2), "all": (4 * H, H)}
    return {f"{split}, {sync}": Wave(net, k, *cols[split], sync) for split in splits for sync in syncs}


def timed(fns: dict[str, tuple[Callable[[], object], ...]], reps: int, pause: float) -> dict[str, list[list[float]]]:
    """Each entry's calls timed in turn (forward, then backward at once), A B A B …, after one
    untimed round; a pause before each entry lets OpenBLAS's idle threads stop spinning."""
    times: dict[str, list[list[float]]] = {name: [[] for _ in calls] for name, calls in fns.items()}
    for rep in range(reps + 1):
        for name, calls in fns.items():
            time.sleep(pause)
            for i, call in enumerate(calls):
                t0 = time.perf_counter()
                call()
                if rep:
                    times[name][i].append(time.perf_counter() - t0)
    return times


def report(times: dict, fl: tuple[float, float], gemm_flops: float) -> None:
    med = {name: [statistics.median(ts) for ts in per] for name, per in times.items()}
    gemm = gemm_flops / med.pop("gemm")[0]
    print(f"2048³ GEMM, 2 BLAS threads: {gemm / 1e9:.0f} GFLOP/s (median)")
    base = sum(med["today"])
    head = f"{'schedule':<34} {'fwd ms':>7} {'bwd ms':>7} {'ratio':>6} {'fwd GFLOP/s':>11} {'of GEMM':>7}"
    print(head + f" {'bwd GFLOP/s':>11} {'of GEMM':>7}")
    for name, (f, b) in med.items():
        label = "(a) today, 2 BLAS threads" if name == "today" else f"(b) wavefront {name}"
        rates = f"{fl[0] / f / 1e9:11.0f} {fl[0] / f / gemm:7.0%} {fl[1] / b / 1e9:11.0f} {fl[1] / b / gemm:7.0%}"
        print(f"{label:<34} {f * 1e3:7.1f} {b * 1e3:7.1f} {base / (f + b):6.2f} {rates}")
    print("ratio: (a)'s forward+backward time over this one's (above 1: faster than today)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-B", "--batch", type=int, default=64)
    ap.add_argument("-T", "--steps", type=int, default=100)
    ap.add_argument("-H", "--hidden", type=int, default=256)
    ap.add_argument("--reps", type=int, default=7, help="timed rounds (after one untimed)")
    ap.add_argument("--pause", type=float, default=0.2, help="seconds of sleep before each schedule's forward")
    ap.add_argument("--splits", default="none,half,all", help="which of none, half, all (see above)")
    ap.add_argument("--syncs", default="event,condition", help="which of event, condition")
    ap.add_argument("--kernels", default="numba", choices=("numba", "numpy"))
    ap.add_argument("--switch-interval", type=float, help="sys.setswitchinterval (seconds; Python's 0.005)")
    args = ap.parse_args()
    splits, syncs = args.splits.split(","), args.syncs.split(",")
    if not set(splits) <= {"none", "half", "all"} or not set(syncs) <= set(SYNCS):
        raise SystemExit("--splits: none, half or all; --syncs: event or condition (comma-separated)")
    k = kernels_.load(args.kernels)
    k.warm_up(np.float32)
    B, T, H = args.batch, args.steps, args.hidden
    print(f"commit {git_commit()}, load average {os.getloadavg()[0]:.2f}, kernels {k.name}, L=2 H={H} B={B} T={T}")
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    small = make_net(5, 7, 24, seed=3)
    worst = check(Today(small, k), variants(small, k, splits, syncs))
    net = make_net(B, T, H)
    today, waves = Today(net, k), variants(net, k, splits, syncs)
    worst = max(worst, check(today, waves))
    print(f"check: every variant's outputs and gradients equal (a)'s within {worst:.1e} of each array's largest")
    gemm, gemm_flops = gemm_probe()
    fns: dict[str, tuple[Callable[[], object], ...]] = {"today": (today.forward, today.backward)}
    fns |= {name: (w.forward, w.backward) for name, w in waves.items()}
    fns["gemm"] = (lambda: (set_threads(2), gemm()),)
    times = timed(fns, args.reps, args.pause)
    report(times, flops(B, T, H), gemm_flops)


if __name__ == "__main__":
    main()
