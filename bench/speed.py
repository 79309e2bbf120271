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
- peak RSS of training over the post-import baseline, beside the figure computed from the shapes,
  and the RSS drift over many steps;
- `charlstm --help` wall time and the time to the first sampled character of `charlstm sample`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
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
KERNELS = ("numpy", "numba")  # charlstm's two kernel paths (`charlstm.kernels`)
TARGETS = {
    "ratio_2x256": 1.1,  # numba path against torch
    "ratio_other": 1.0,
    "utilisation_2x512": 0.70,
    "batch1_share": 0.5,  # numba's batch-1 sampling, of reading the weights once a character at the measured bandwidth
    "samples16_utilisation": 0.70,  # of the sampling GEMM limit
    "memory_ratio": 1.5,
    "help_s": 0.3,
    "first_char_s": 0.5,
}
# The NumPy path before the kernels were split out (commit dfd6efa, /work/speed_before.txt, the
# same machine, load 0.76 → 1.91): without the extra, no configuration may be slower than this.
BEFORE_CHARS_PER_S = {(1, 128, 32, 64): 56_578, (2, 256, 64, 100): 14_837, (2, 512, 64, 100): 4_318, (3, 512, 32, 100): 2_476}


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


# ------------------------------------------------------------------------------------- the limit


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


def training_flops_per_char(L: int, H: int) -> dict:
    """Matrix-multiply FLOPs per character of one training step.

    Forward: every layer's recurrent product (2·H·4H), every layer above the first its input
    product (2·H·4H; the first layer's one-hot input is a row gather, 0 FLOPs), the head (2·H·V).
    Training ≈ 3 × forward (backward computes an input gradient and a weight gradient for every
    product), except that the first layer's input needs only its weight gradient (2·V·4H).
    """
    forward = L * 2 * H * 4 * H + (L - 1) * 2 * H * 4 * H + 2 * H * V
    return {"forward": forward, "training": 3 * forward + 2 * V * 4 * H}


# ------------------------------------------------------------------------------------- training


def numba_available() -> bool:
    from charlstm import kernels

    return kernels.available()


def charlstm_trainer(L: int, H: int, B: int, T: int, kernels_name: str = "numpy"):
    """One training step exactly as charlstm.train runs it (`train.train_step`: loss_and_grads on
    the kernels, clip_grad_norm, Adam from make_optimizer on the kernels), over a synthetic
    65-character corpus, on the kernels called `kernels_name`."""
    from charlstm import kernels, model, optim
    from charlstm.corpus import num_windows, window

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
from charlstm import kernels
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
            float(subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, check=True).stdout)
            for _ in range(2)
        ]
    return {"first_compile_s": round(runs[0], 2), "cached_load_s": round(runs[1], 2)}


# ------------------------------------------------------------------------------------- sampling


def sampling_flops_per_char(L: int, H: int) -> int:
    """Matrix-multiply FLOPs of one sampled character: the forward pass of one step
    (`training_flops_per_char`'s forward)."""
    return training_flops_per_char(L, H)["forward"]


def weights_read_per_char(L: int, H: int, itemsize: int = 4) -> int:
    """Bytes of weights a batch-1 sampling step must read: every recurrent matrix (4H × H), every
    input matrix above the first layer (4H × H; the first layer's one-hot input reads one row of
    4H), the biases (4H a layer) and the head (V × H + V)."""
    floats = L * 4 * H * H + (L - 1) * 4 * H * H + 4 * H + L * 4 * H + V * H + V
    return floats * itemsize


PASSES = 20  # passes over the array per timed call of a bandwidth probe (the first may find it out of the cache)


def parallel_passes():
    """A copy and a read-only pass (a sum) over float32 arrays on every thread numba runs, with
    plain loads and stores, so that the data stays in the cache as the weights do between
    characters. Without numba: NumPy's copy and sum, on one thread (glibc may also write a large
    copy past the cache): lower bandwidths, so a lower limit. Returns (copy(dst, src),
    read(src), what they run on)."""
    try:
        import numba
    except ImportError:
        return np.copyto, np.sum, "NumPy, one thread"

    # slices, loops from 0: an element loop over range(lo, hi) here ran ten times slower (numba
    # keeps a wraparound check for a possibly negative index, and LLVM then does not vectorise)
    @numba.njit(fastmath={"reassoc"})
    def total(a):
        s = a.dtype.type(0)
        for i in range(a.shape[0]):
            s += a[i]
        return s

    @numba.njit(parallel=True)
    def parts_copy(dst, src, parts):
        n = src.shape[0]
        for t in numba.prange(parts):
            dst[t * n // parts : (t + 1) * n // parts] = src[t * n // parts : (t + 1) * n // parts]

    @numba.njit(parallel=True)
    def parts_read(src, parts):
        n, sums = src.shape[0], np.zeros(parts, src.dtype)
        for t in numba.prange(parts):
            sums[t] = total(src[t * n // parts : (t + 1) * n // parts])
        return sums.sum()

    threads = numba.get_num_threads()
    return (lambda dst, src: parts_copy(dst, src, threads)), (lambda src: parts_read(src, threads)), f"numba, {threads} threads"


def bandwidth_probes(nbytes: int) -> dict:
    """Two probes over a float32 array of `nbytes` (`parallel_passes`), each a function that makes
    PASSES passes and keeps the seconds of all but the first (which may find the array out of
    the cache, where the weights stay between characters): "copy" copies it into another — it
    reads `nbytes` and writes `nbytes`, and both are counted (a store also reads its line first,
    which the count leaves out: the copy's figure is low) — and "read" sums it, reading `nbytes`.
    {name: (run, bytes of one pass, seconds of the passes)} and "kind"."""
    src = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    copy, read, kind = parallel_passes()
    copy(dst, src), read(src)  # compile

    def passes(fn, seconds: list):
        def run():
            fn()
            for _ in range(PASSES - 1):
                t0 = time.perf_counter()
                fn()
                seconds.append(time.perf_counter() - t0)
        return run

    copies, reads = [], []
    return {"copy": (passes(lambda: copy(dst, src), copies), 2 * src.nbytes, copies),
            "read": (passes(lambda: read(src), reads), src.nbytes, reads), "kind": kind}


def torch_sampler(torch, L: int, H: int, seed_ids: list[int], n: int, mkldnn: bool):
    """PyTorch stepping nn.LSTM one character at a time, with torch.multinomial, through oneDNN
    (`mkldnn`) or its native CPU path (`torch.backends.mkldnn` off), which is much faster at batch
    1 on some CPUs."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(V, H, L)
    head = torch.nn.Linear(H, V)
    eye = torch.eye(V)
    prime = torch.tensor(seed_ids)

    def run():
        with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=mkldnn):
            out, state = lstm(eye[prime][:, None, :])
            logits = head(out[-1])
            for _ in range(n):
                x = torch.multinomial(torch.softmax(logits, dim=-1), 1)[0]
                out, state = lstm(eye[x][None], state)
                logits = head(out[-1])

    return run


def sampling_pieces(params, config, k, repeat: int = 100) -> dict:
    """The pieces of a batch-1 character on kernels `k`, each a function that runs it `repeat`
    times: every layer's step (`kernels.lstm_step`: product and gates), the head
    (`kernels.linear_step`), the draw (`generate.drawer`), and the whole step as sampling calls it
    (`stepping.step_in_place`: the layers and the head, and the Python between them)."""
    from charlstm import model, stepping
    from charlstm.generate import Sampling, drawer

    stepper = stepping.prepare_stepper(params, config, k)
    st = stepping.step_state(stepper, model.zero_state(config, 1))
    x = np.array([3])
    stepping.step_in_place(stepper, x, st)  # makes the layers' scratch

    def times(fn):
        def run():
            for _ in range(repeat):
                fn()
        return run

    pieces = {}
    for n, (layer, work) in enumerate(zip(stepper.layers, st.work)):
        rows = x if layer.ids else work.rows
        args = (layer.W, layer.bias, rows, st.inputs[n], st.rests[n][0], work.a, work.gathered, work.zT, work.tanh_c)
        pieces[f"layer {n}"] = times(lambda args=args: k.lstm_step(*args))
    pieces["head"] = times(lambda: k.linear_step(stepper.W_hy, st.top, stepper.b_y, st.logits))
    draw = drawer(Sampling(1.0), 1, config.vocab_size, np.random.default_rng(0), k)
    pieces["draw"] = times(lambda: draw(st.logits.T))
    pieces["step"] = times(lambda: stepping.step_in_place(stepper, x, st))
    return pieces


def breakdown(times: dict, name: str, per_char: float, repeat: int = 100) -> dict:
    """µs per character: each piece of `sampling_pieces` (median), the Python of the step between
    its kernels, and the rest of generate's character (the draw's bookkeeping, the loop, and the
    setup — weights scaled, seed primed — spread over its characters)."""
    us = {piece.split(".", 1)[1]: float(np.median(t)) / repeat * 1e6 for piece, t in times.items() if piece.startswith(name + ".")}
    kernels_us = sum(v for piece, v in us.items() if piece.startswith("layer") or piece == "head")
    return {**{piece: round(v, 1) for piece, v in us.items()},
            "python in the step": round(us["step"] - kernels_us, 1),
            "rest of the character": round(per_char * 1e6 - us["step"] - us["draw"], 1),
            "character": round(per_char * 1e6, 1)}


def bench_sampling(torch, reps: int, paths) -> dict:
    """Sampling at batch 1 and with 16 samples on each kernel path, PyTorch at batch 1 through
    oneDNN and natively, a GEMM probe and a copy probe the size of the weights, alternately."""
    from charlstm import kernels, model
    from charlstm.corpus import Vocab
    from charlstm.generate import Sampling, generate

    L, H = SAMPLE_MODEL
    config = model.ModelConfig(vocab_size=V, hidden_size=H, num_layers=L)
    params = model.init_params(config, seed=0)
    vocab = Vocab(tuple(chr(48 + k) for k in range(V)))
    seed = "0123456789"
    n_ours, n_torch = 400, 100

    def ours(num_samples: int, k):
        def run():
            rng = np.random.default_rng(0)
            for _ in generate(params, config, vocab, seed, n_ours, Sampling(1.0), num_samples, rng, k):
                pass
        return run

    fns = {}
    for name in paths:
        k = kernels.load(name)
        k.warm_up(np.float32)
        fns[f"batch1.{name}"] = ours(1, k)
        fns[f"samples16.{name}"] = ours(16, k)
        fns.update({f"{name}.{piece}": fn for piece, fn in sampling_pieces(params, config, k).items()})
    torch_paths = ("native", "onednn") if torch is not None else ()
    for name in torch_paths:
        fns[f"torch.{name}"] = torch_sampler(torch, L, H, [ord(ch) - 48 for ch in seed], n_torch, mkldnn=name == "onednn")
    fns["gemm"], probe_flops = gemm_probe()
    weights = weights_read_per_char(L, H)
    probes = bandwidth_probes(weights)
    for probe in ("copy", "read"):
        fns[probe] = probes[probe][0]
    log("sampling …")
    times = alternate(fns, reps, warmup=1)
    peak = probe_flops / float(np.median(times["gemm"])) / 1e9
    limit = peak * 1e9 / sampling_flops_per_char(L, H)
    bandwidths = {probe: probes[probe][1] / float(np.median(probes[probe][2])) for probe in ("copy", "read")}  # bytes/s
    batch1_limit = max(bandwidths.values()) / weights  # the machine reads at least this fast
    torch_rates = {name: n_torch / float(np.median(times[f"torch.{name}"])) for name in torch_paths}
    best = max(torch_rates, key=torch_rates.get) if torch_rates else None
    result: dict = {
        "model": {"L": L, "H": H, "V": V},
        "gemm_gflops": round(peak, 1),
        "limit_chars_per_s": round(limit, 1),
        "weights_bytes": weights,
        "copy_gb_per_s": round(bandwidths["copy"] / 1e9, 1),
        "read_gb_per_s": round(bandwidths["read"] / 1e9, 1),
        "bandwidth_probes": probes["kind"],
        "batch1_limit_chars_per_s": round(batch1_limit, 1),
        "torch": {name: {"batch1_chars_per_s": round(rate, 1), "batch1_share": round(rate / batch1_limit, 3)}
                  for name, rate in torch_rates.items()},
        "torch_best": best,
        "torch_batch1_chars_per_s": round(torch_rates[best], 1) if best else None,
    }
    for name in paths:
        batch1 = n_ours / float(np.median(times[f"batch1.{name}"]))
        samples16 = 16 * n_ours / float(np.median(times[f"samples16.{name}"]))
        torch_rate = result["torch_batch1_chars_per_s"]
        result[name] = {
            "batch1_chars_per_s": round(batch1, 1),
            "batch1_share": round(batch1 / batch1_limit, 3),
            "batch1_vs_torch": round(batch1 / torch_rate, 1) if torch_rate else None,
            "samples16_chars_per_s": round(samples16, 1),
            "samples16_vs_batch1": round(samples16 / batch1, 2),
            "samples16_utilisation": round(samples16 / limit, 3),
            "batch1_us": breakdown(times, name, 1 / batch1),
        }
    result["batch1_limit_us"] = round(1e6 / batch1_limit, 1)
    result["step_ms"] = {name: [round(t * 1e3, 2) for t in ts] for name, ts in times.items()}
    return result


# --------------------------------------------------------------------------------------- memory


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def memory_child(L: int, H: int, B: int, T: int, steps: int) -> None:
    """Runs in a fresh interpreter: RSS after imports, then peak and drift over training steps."""
    import tracemalloc

    from charlstm import model, optim  # noqa: F401  (the imports are the baseline)
    from charlstm.corpus import window  # noqa: F401

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
    print(json.dumps({"baseline_kib": baseline, "peak_kib": _rss_kib("VmHWM"), "after_3_kib": after_few,
                      f"after_{3 + steps}_kib": after_many, "steps": 3 + steps, "arrays_peak_kib": arrays_peak}))


def memory_need_bytes(L: int, H: int, B: int, T: int, itemsize: int = 4) -> dict:
    """What one training step must hold, from the shapes: parameters, their gradients and Adam's
    two moments (4 × P), and the activations backward needs — per layer and step the gates (4H),
    c, tanh(c) and h (3H) — plus the logits (V) and the head's input gradient (H) per step."""
    P = sum(4 * H * ((V if k == 0 else H) + H + 2) for k in range(L)) + V * H + V
    weights = 4 * P * itemsize
    activations = T * B * (L * 7 * H + V + H) * itemsize
    return {"params": P, "weights_grads_adam_bytes": weights, "activations_bytes": activations,
            "total_bytes": weights + activations}


def bench_memory(configs, steps: int) -> list[dict]:
    rows = []
    for L, H, B, T in configs:
        log(f"memory L={L} H={H} B={B} T={T} …")
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(L), str(H), str(B), str(T), str(steps)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout
        m = json.loads(out)
        need = memory_need_bytes(L, H, B, T)
        used = (m["peak_kib"] - m["baseline_kib"]) * 1024
        drift = (m[f"after_{m['steps']}_kib"] - m["after_3_kib"]) * 1024
        rows.append({
            "config": {"L": L, "H": H, "B": B, "T": T, "V": V},
            "peak_delta_mb": round(used / 1e6, 1),
            "need_mb": round(need["total_bytes"] / 1e6, 1),
            "ratio": round(used / need["total_bytes"], 2),
            "drift_mb": round(drift / 1e6, 2),
            "drift_steps": f"3 → {m['steps']}",
            "raw": m,
            "need": need,
        })
    return rows


# ------------------------------------------------------------------------------------ start-up


def charlstm_command() -> list[str]:
    exe = shutil.which("charlstm", path=str(Path(sys.executable).parent)) or shutil.which("charlstm")
    return [exe] if exe else [sys.executable, "-m", "charlstm"]


def bench_cli(reps: int, with_numba: bool = False) -> dict:
    from charlstm import checkpoint, model
    from charlstm.corpus import Vocab

    cmd = charlstm_command()
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    log("command line …")
    help_times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd + ["--help"], capture_output=True, check=True, env=env)
        help_times.append(time.perf_counter() - t0)

    L, H = SAMPLE_MODEL
    config = model.ModelConfig(vocab_size=V, hidden_size=H, num_layers=L)
    vocab = Vocab(tuple(chr(48 + k) for k in range(V)))
    seed = "0123456789"
    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint.save(checkpoint.Checkpoint(config, vocab, model.init_params(config, 0)), Path(tmp) / "m.safetensors")

        def first_char(*extra: str) -> list[float]:
            runs = []
            for _ in range(reps):
                t0 = time.perf_counter()
                proc = subprocess.Popen(cmd + ["sample", "--checkpoint", str(path), "--seed", seed, "--length", "50", *extra],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
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
            [sys.executable, "-X", "importtime", "-m", "charlstm", "sample", "--checkpoint", str(path),
             "--seed", seed, "--length", "5"], capture_output=True, text=True, env=env)
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


# ---------------------------------------------------------------------------------------- report


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt(v, spec: str = ",.0f") -> str:
    return "—" if v is None else format(v, spec)


def print_report(res: dict) -> None:
    paths = res["paths"]
    print(f"\ncharlstm {res['commit']}  numpy {res['numpy']}  torch {res['torch'] or 'absent'}  "
          f"peak GEMM {res['peak_gemm']['gflops']:.0f} GFLOP/s  load {res['load_before']} → {res['load_after']}")
    print("\ntraining (chars/s, median of alternating runs; torch: nn.LSTM on one-hot input;")
    print("limit: GEMM rate measured between the steps / training FLOPs per char; before: the NumPy path")
    print("before the kernels, speed_before.txt)")
    head = f"{'config':<22}{'kernels':>8}{'chars/s':>10}{'torch':>10}{'ratio':>7}{'GFLOP/s':>9}{'limit':>10}{'util':>7}{'before':>9}"
    print(head)
    print("-" * len(head))
    for r in res["training"]:
        c = r["config"]
        name = f"L={c['L']} H={c['H']} B={c['B']} T={c['T']}"
        for path in paths:
            m = r[path]
            print(f"{name:<22}{path:>8}{fmt(m['chars_per_s']):>10}{fmt(r['torch_chars_per_s']):>10}"
                  f"{fmt(m['ratio'], '.2f'):>7}{r['gemm_gflops']:>9.0f}{fmt(r['limit_chars_per_s']):>10}"
                  f"{m['utilisation']:>7.0%}{fmt(r['before_chars_per_s']):>9}")
            name = ""
    if res.get("compile"):
        cm = res["compile"]
        print(f"\nnumba kernels: first compile {cm['first_compile_s']:.2f} s (empty cache, numba import included), "
              f"cached load {cm['cached_load_s']:.2f} s")
    print_sampling(res["sampling"], paths)
    print("\nmemory of a training step (peak RSS over the post-import baseline)")
    for m in res["memory"]:
        c = m["config"]
        name = f"L={c['L']} H={c['H']} B={c['B']} T={c['T']}"
        print(f"  {name:<22} {m['peak_delta_mb']:>7.1f} MB   need {m['need_mb']:>7.1f} MB   ×{m['ratio']:.2f}   "
              f"drift {m['drift_mb']:+.2f} MB ({m['drift_steps']} steps)")
    cli = res["cli"]
    numba_first = f"   with --kernels numba {cli['first_char_numba_s']:.3f} s" if cli.get("first_char_numba_s") else ""
    print(f"\ncommand line: --help {cli['help_s']:.3f} s   first sampled character {cli['first_char_s']:.3f} s{numba_first}   "
          f"torch imported by `sample`: {'yes' if cli['sample_imports_torch'] else 'no'}")
    print("\ntargets")
    for name, ok, detail in res["targets"]:
        print(f"  {'met    ' if ok else 'NOT met'}  {name}: {detail}")


def print_sampling(s: dict, paths: list[str]) -> None:
    print(f"\nsampling, L={s['model']['L']} H={s['model']['H']} (chars/s, median of alternating runs)")
    print(f"  batch-1 limit: {s['weights_bytes'] / 1e6:.1f} MB of weights read per character at the faster of "
          f"{s['copy_gb_per_s']:.0f} GB/s (a copy that size, read + write counted) and {s['read_gb_per_s']:.0f} GB/s "
          f"(a sum of it; both on {s['bandwidth_probes']}) = {fmt(s['batch1_limit_chars_per_s'])}")
    print(f"  16-sample limit: GEMM rate {s['gemm_gflops']:.0f} GFLOP/s / forward FLOPs per char = {fmt(s['limit_chars_per_s'])}")
    for name, m in s["torch"].items():
        best = "  (the faster: charlstm is compared with it)" if name == s["torch_best"] else ""
        print(f"  torch {name:<6} batch 1 {m['batch1_chars_per_s']:>9,.0f}  {m['batch1_share']:>4.0%} of the limit{best}")
    for path in paths:
        m = s[path]
        print(f"  {path:<12} batch 1 {m['batch1_chars_per_s']:>9,.0f}  {m['batch1_share']:>4.0%} of the limit  "
              f"×{fmt(m['batch1_vs_torch'], '.1f')} torch   num_samples=16 {m['samples16_chars_per_s']:>9,.0f}  "
              f"{m['samples16_utilisation']:.0%} of its limit, ×{m['samples16_vs_batch1']:.2f} batch 1")
    print(f"  a batch-1 character, µs (the weights read once at that bandwidth: {s['batch1_limit_us']:.0f} µs):")
    for path in paths:
        print(f"    {path:<6} " + ",  ".join(f"{piece} {us:.1f}" for piece, us in s[path]["batch1_us"].items()))


def sampling_targets(s: dict, paths: list[str]) -> list:
    out = []
    best = "numba" if "numba" in paths else "numpy"
    share, want = s[best]["batch1_share"], TARGETS["batch1_share"]
    out.append((f"{best}: batch-1 sampling ≥ {want:.0%} of its limit", share >= want, f"{share:.0%}"))
    util, want = s[best]["samples16_utilisation"], TARGETS["samples16_utilisation"]
    out.append((f"{best}: num_samples=16 ≥ {want:.0%} of the GEMM limit", util >= want, f"{util:.0%}"))
    return out


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
            out.append((f"numba: utilisation {name} ≥ {TARGETS['utilisation_2x512']:.0%}", util >= TARGETS["utilisation_2x512"], f"{util:.0%}"))
        if r["before_chars_per_s"] is not None:
            ours, before = r["numpy"]["chars_per_s"], r["before_chars_per_s"]
            out.append((f"numpy: {name} not slower than before ({before:,})", ours >= before, f"{ours:,.0f}"))
    out += sampling_targets(res["sampling"], paths)
    for m in res["memory"]:
        c = m["config"]
        out.append((f"memory L={c['L']} H={c['H']} B={c['B']} ≤ 1.5× need, no drift",
                    m["ratio"] <= TARGETS["memory_ratio"] and abs(m["drift_mb"]) < 1.0, f"×{m['ratio']}, drift {m['drift_mb']:+.2f} MB"))
    cli = res["cli"]
    out.append(("--help < 0.3 s", cli["help_s"] < TARGETS["help_s"], f"{cli['help_s']:.3f} s"))
    out.append(("first sampled char < 0.5 s", cli["first_char_s"] < TARGETS["first_char_s"], f"{cli['first_char_s']:.3f} s"))
    out.append(("no torch import in `charlstm sample`", not cli["sample_imports_torch"], "checked with -X importtime"))
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        memory_child(*map(int, sys.argv[2:7]))
        return
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
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()},
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
        res["load_after"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        print(f"\ncharlstm {res['commit']}  numpy {res['numpy']}  torch {res['torch'] or 'absent'}  "
              f"load {res['load_before']} → {res['load_after']}")
        print_sampling(res["sampling"], paths)
        for name, ok, detail in sampling_targets(res["sampling"], paths):
            print(f"  {'met    ' if ok else 'NOT met'}  {name}: {detail}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    log("peak GEMM …")
    res["peak_gemm"] = peak_gemm_gflops()
    res["compile"] = bench_compile() if "numba" in paths else None
    res["training"] = bench_training(torch, reps, configs, paths)
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
