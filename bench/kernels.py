"""The kernels' micro-benchmark: NumPy against numba per call, and a guard against scalar code.

    python bench/kernels.py [--reps 30] [--configs 64x512,64x256,32x128] [--dtype float32]
                            [--no-compile] [--no-scalar]

For each (B, H) it times one call of each kernel — the forward gate math on a (B, 4H) gate block,
the backward gate math, and the Adam update of a (4H, H) weight matrix — for both implementations:
inputs are reset before every call (untimed) and the minimum over --reps calls is reported, in µs.
It also times the first compile of the numba kernels (a fresh process, empty cache folder) and
their load from the disk cache (a second process), and the sampling kernels — one layer's step
(`lstm_step`, product and gates) at 2×512's shapes for N = 1 and 16 streams, and the
temperature-only draw (`softmax_draw`, V = 65) — for information (no guard: at batch 1 the step
is bound by memory bandwidth, not by vectorisation).

It is a benchmark, not a test: it exits with status 1 and "kernel X runs at scalar speed" when a
numba kernel, at some configuration, is not at least MIN_SPEEDUP times as fast as
- NumPy, or
- the same kernel compiled without vectorisation (NUMBA_LOOP_VECTORIZE=0, in a subprocess; skip
  with --no-scalar).
Both catch LLVM giving up on a loop (one touching too many arrays, or writing a row at several
offsets); the second also catches the backward kernel, which fused but scalar still beats NumPy.
To see the guard fire, compile without vectorisation:
`NUMBA_LOOP_VECTORIZE=0 NUMBA_CACHE_DIR=$(mktemp -d) python bench/kernels.py --no-compile --no-scalar`.

Other processes on the machine move every figure (the load average is printed): measure on a
quiet machine, with the BLAS settings of normal use (`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`
if your shell exports OpenBLAS tuning variables).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from charlstm.nn import kernels  # noqa: E402

MIN_SPEEDUP = 1.5
ADAM_ARGS = (2e-3, 0.9, 0.999, 1e-8, 10)  # lr, β1, β2, ε, t


def best_us(reset: Callable[[], None], call: Callable[[], None], reps: int) -> float:
    """The fastest of `reps` calls, in µs, with `reset` run (untimed) before each."""
    reset()
    call()  # compile, fill the caches
    times = []
    for _ in range(reps):
        reset()
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e6


def time_kernels(k: kernels.Kernels, B: int, H: int, dtype: type, reps: int) -> dict[str, float]:
    """µs per call of each kernel of `k` at batch B, hidden size H."""
    rng = np.random.default_rng(0)
    a0 = (rng.standard_normal((B, 4 * H)) * np.repeat([0.5, 0.5, 1.0, 0.5], H)).astype(dtype)
    c_prev = rng.standard_normal((B, H)).astype(dtype)
    c, tanh_c = np.empty((B, H), dtype), np.empty((B, H), dtype)
    h = np.ones((B, H + 1), dtype)[:, :H]  # a strided view, as in the layer's cache
    a = a0.copy()
    k.lstm_forward_gates(a, c_prev, c, tanh_c, h)
    gates0 = a.copy()
    dh = rng.standard_normal((B, H)).astype(dtype)
    dc0 = rng.standard_normal((B, H)).astype(dtype)
    dc_next = dc0.copy()
    p, m = rng.standard_normal((2, 4 * H, H)).astype(dtype)
    v = rng.random((4 * H, H)).astype(dtype)
    g0 = rng.standard_normal((4 * H, H)).astype(dtype)
    g = g0.copy()

    def reset_backward() -> None:
        np.copyto(a, gates0)
        np.copyto(dc_next, dc0)

    return {
        "forward": best_us(lambda: np.copyto(a, a0), lambda: k.lstm_forward_gates(a, c_prev, c, tanh_c, h), reps),
        "backward": best_us(reset_backward, lambda: k.lstm_backward_gates(a, dh, dc_next, c_prev, tanh_c, h), reps),
        "adam": best_us(lambda: np.copyto(g, g0), lambda: k.adam_update(p, g, m, v, *ADAM_ARGS), reps),
    }


COMPILE = """
import time
t0 = time.perf_counter()
import numpy as np
from charlstm.nn.kernels import numba_impl
t1 = time.perf_counter()
numba_impl.warm_up(np.dtype("{dtype}"))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def time_sampling(k: kernels.Kernels, H: int, N: int, dtype: type, reps: int) -> dict[str, float]:
    """µs per call of the sampling kernels of `k`: a layer's step with id input (K = H) and with
    the layer below as input (K = 2H), and the draw of N ids from (N, 65) logits."""
    rng = np.random.default_rng(0)
    out = {}
    for label, K, R in ((f"step K={H}", H, 65), (f"step K={2 * H}", 2 * H, 1)):
        W = (rng.standard_normal((4 * H, K)) / np.sqrt(K)).astype(dtype)
        bias = rng.standard_normal((R, 4 * H)).astype(dtype)
        rows = rng.integers(0, R, N)
        z0, c0 = rng.standard_normal((K, N)).astype(dtype), rng.standard_normal((H, N)).astype(dtype)
        z, c = z0.copy(), c0.copy()
        scratch = (
            np.empty((4 * H, N), dtype),
            np.empty((N, 4 * H), dtype),
            np.empty((N, K), dtype),
            np.empty((H, N), dtype),
        )

        def reset(z=z, c=c, z0=z0, c0=c0) -> None:
            np.copyto(z, z0)
            np.copyto(c, c0)

        out[label] = best_us(
            reset, lambda W=W, bias=bias, rows=rows, z=z, c=c, s=scratch: k.lstm_step(W, bias, rows, z, c, *s), reps
        )
    logits = rng.standard_normal((65, N)).astype(dtype).T
    u, zz, ids = rng.random(N), np.empty((N, 65)), np.empty(N, np.intp)
    out["draw"] = best_us(lambda: None, lambda: k.softmax_draw(logits, 1.0, u.copy(), zz, ids), reps)
    return out


def compile_times(dtype: str) -> list[tuple[float, float]]:
    """(import s, compile-or-load s) of a fresh process with an empty cache folder, then of a
    second one that finds the first one's cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        env.update(CHARLSTM_CACHE=cache, PYTHONPATH=str(ROOT))
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", COMPILE.format(dtype=dtype)], env=env, capture_output=True, text=True, check=True
            ).stdout
            runs.append(tuple(float(x) for x in out.split()))
        return runs


def scalar_times(configs: list[tuple[int, int]], dtype: str, reps: int) -> dict[str, dict[str, float]]:
    """The numba kernels' times when compiled without vectorisation, in a fresh process."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_LOOP_VECTORIZE": "0", "NUMBA_SLP_VECTORIZE": "0", "NUMBA_CACHE_DIR": cache}
        configs_arg = ",".join(f"{B}x{H}" for B, H in configs)
        cmd = [
            sys.executable,
            __file__,
            "--configs",
            configs_arg,
            "--dtype",
            dtype,
            "--reps",
            str(reps),
            "--numba-json",
        ]
        return json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--configs", default="64x512,64x256,32x128", help="BxH,BxH,...")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-time measurement")
    ap.add_argument("--no-scalar", action="store_true", help="skip the comparison with a scalar build")
    ap.add_argument("--numba-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not kernels.available():
        print("numba is not installed: pip install 'charlstm[fast]'", file=sys.stderr)
        return 2
    dtype = np.dtype(args.dtype).type
    configs = [tuple(int(n) for n in c.split("x")) for c in args.configs.split(",")]
    numpy_k, numba_k = kernels.load("numpy"), kernels.load("numba")
    if args.numba_json:
        print(json.dumps({f"{B}x{H}": time_kernels(numba_k, B, H, dtype, args.reps) for B, H in configs}))
        return 0
    print(f"load average {os.getloadavg()[0]:.2f}; {args.dtype}; min of {args.reps} calls, µs per call")
    if not args.no_compile:
        (import_s, compile_s), (import2_s, load_s) = compile_times(args.dtype)
        print(
            f"first compile (empty cache): {compile_s:.2f} s (+ {import_s:.2f} s import); "
            f"from the disk cache: {load_s:.2f} s (+ {import2_s:.2f} s import)"
        )
    scalar = None if args.no_scalar else scalar_times(configs, args.dtype, args.reps)
    slow = []
    print(
        f"{'B':>4} {'H':>5}  {'kernel':<9} {'numpy':>9} {'numba':>9} {'speedup':>8}"
        + ("" if scalar is None else f" {'scalar build':>13} {'speedup':>8}")
    )
    for B, H in configs:
        ref = time_kernels(numpy_k, B, H, dtype, args.reps)
        fast = time_kernels(numba_k, B, H, dtype, args.reps)
        for name in ref:
            speedup = ref[name] / fast[name]
            line = f"{B:>4} {H:>5}  {name:<9} {ref[name]:>9.1f} {fast[name]:>9.1f} {speedup:>7.2f}×"
            if speedup < MIN_SPEEDUP:
                slow.append(
                    f"kernel {name} runs at scalar speed at B={B} H={H}: {speedup:.2f}× NumPy, below {MIN_SPEEDUP}×"
                )
            if scalar is not None:
                slow_build = scalar[f"{B}x{H}"][name]
                vectorised = slow_build / fast[name]
                line += f" {slow_build:>13.1f} {vectorised:>7.2f}×"
                if vectorised < MIN_SPEEDUP:
                    slow.append(
                        f"kernel {name} runs at scalar speed at B={B} H={H}: "
                        f"{vectorised:.2f}× its unvectorised build, below {MIN_SPEEDUP}×"
                    )
            print(line)
    print(
        f"\nsampling kernels, H=512 (µs per call; no guard)\n{'N':>4}  {'kernel':<12} {'numpy':>9} {'numba':>9} {'speedup':>8}"
    )
    for N in (1, 16):
        ref, fast = time_sampling(numpy_k, 512, N, dtype, args.reps), time_sampling(numba_k, 512, N, dtype, args.reps)
        for name in ref:
            print(f"{N:>4}  {name:<12} {ref[name]:>9.1f} {fast[name]:>9.1f} {ref[name] / fast[name]:>7.2f}×")
    print(f"load average {os.getloadavg()[0]:.2f}")
    for line in slow:
        print(line, file=sys.stderr)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
