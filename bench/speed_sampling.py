"""Sampling speed (bench/speed.py's sampling part; `python bench/speed.py --sampling` runs it alone):
batch 1 on each kernel path and PyTorch (oneDNN and native), against the limit of reading the
weights once per character at the bandwidth of a copy or a sum measured in the same run, with
where a character's time goes; and 16 samples at once against their GEMM limit."""

from __future__ import annotations

import time

import numpy as np

from timing import SAMPLE_MODEL, V, alternate, fmt, gemm_probe, log, training_flops_per_char

TARGETS = {
    "batch1_share": 0.5,  # numba's batch-1 sampling, of reading the weights once a character at the measured bandwidth
    "samples16_utilisation": 0.70,  # of the sampling GEMM limit
}


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
    return (
        (lambda dst, src: parts_copy(dst, src, threads)),
        (lambda src: parts_read(src, threads)),
        f"numba, {threads} threads",
    )


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
    return {
        "copy": (passes(lambda: copy(dst, src), copies), 2 * src.nbytes, copies),
        "read": (passes(lambda: read(src), reads), src.nbytes, reads),
        "kind": kind,
    }


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
    from charlstm.inference.generate import Sampling, drawer
    from charlstm.nn import model, stepping

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
    us = {
        piece.split(".", 1)[1]: float(np.median(t)) / repeat * 1e6
        for piece, t in times.items()
        if piece.startswith(name + ".")
    }
    kernels_us = sum(v for piece, v in us.items() if piece.startswith("layer") or piece == "head")
    return {
        **{piece: round(v, 1) for piece, v in us.items()},
        "python in the step": round(us["step"] - kernels_us, 1),
        "rest of the character": round(per_char * 1e6 - us["step"] - us["draw"], 1),
        "character": round(per_char * 1e6, 1),
    }


N_OURS, N_TORCH = 400, 100  # characters a timed call samples: charlstm, PyTorch
SEED = "0123456789"


def sampling_runs(torch, paths) -> tuple[dict, dict]:
    """What `bench_sampling` times: charlstm at batch 1 and with 16 samples on each kernel path
    and the pieces of its character, PyTorch at batch 1 through oneDNN and natively, a GEMM
    probe and the bandwidth probes the size of the weights. (functions by name, probes)."""
    from charlstm.inference.generate import Sampling, generate
    from charlstm.nn import kernels, model
    from charlstm.text.vocab import Vocab

    L, H = SAMPLE_MODEL
    config = model.ModelConfig(vocab_size=V, hidden_size=H, num_layers=L)
    params = model.init_params(config, seed=0)
    vocab = Vocab(tuple(chr(48 + k) for k in range(V)))

    def ours(num_samples: int, k):
        def run():
            rng = np.random.default_rng(0)
            for _ in generate(params, config, vocab, SEED, N_OURS, Sampling(1.0), num_samples, rng, k):
                pass

        return run

    fns = {}
    for name in paths:
        k = kernels.load(name)
        k.warm_up(np.float32)
        fns[f"batch1.{name}"] = ours(1, k)
        fns[f"samples16.{name}"] = ours(16, k)
        fns.update({f"{name}.{piece}": fn for piece, fn in sampling_pieces(params, config, k).items()})
    for name in ("native", "onednn") if torch is not None else ():
        fns[f"torch.{name}"] = torch_sampler(
            torch, L, H, [ord(ch) - 48 for ch in SEED], N_TORCH, mkldnn=name == "onednn"
        )
    fns["gemm"], probe_flops = gemm_probe()
    probes = {**bandwidth_probes(weights_read_per_char(L, H)), "gemm_flops": probe_flops}
    for probe in ("copy", "read"):
        fns[probe] = probes[probe][0]
    return fns, probes


def bench_sampling(torch, reps: int, paths) -> dict:
    """Sampling at batch 1 and with 16 samples on each kernel path, PyTorch at batch 1 through
    oneDNN and natively, a GEMM probe and a copy probe the size of the weights, alternately."""
    L, H = SAMPLE_MODEL
    fns, probes = sampling_runs(torch, paths)
    log("sampling …")
    times = alternate(fns, reps, warmup=1)
    peak = probes["gemm_flops"] / float(np.median(times["gemm"])) / 1e9
    limit = peak * 1e9 / sampling_flops_per_char(L, H)
    weights = weights_read_per_char(L, H)
    bandwidths = {probe: probes[probe][1] / float(np.median(probes[probe][2])) for probe in ("copy", "read")}  # bytes/s
    batch1_limit = max(bandwidths.values()) / weights  # the machine reads at least this fast
    torch_rates = {
        name[len("torch.") :]: N_TORCH / float(np.median(t)) for name, t in times.items() if name.startswith("torch.")
    }
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
        "torch": {
            name: {"batch1_chars_per_s": round(rate, 1), "batch1_share": round(rate / batch1_limit, 3)}
            for name, rate in torch_rates.items()
        },
        "torch_best": best,
        "torch_batch1_chars_per_s": round(torch_rates[best], 1) if best else None,
    }
    for name in paths:
        result[name] = path_result(times, name, batch1_limit, limit, result["torch_batch1_chars_per_s"])
    result["batch1_limit_us"] = round(1e6 / batch1_limit, 1)
    result["step_ms"] = {name: [round(t * 1e3, 2) for t in ts] for name, ts in times.items()}
    return result


def path_result(times: dict, name: str, batch1_limit: float, limit: float, torch_rate: float | None) -> dict:
    """One kernel path's figures: batch 1 against its limit and PyTorch, 16 samples against theirs."""
    batch1 = N_OURS / float(np.median(times[f"batch1.{name}"]))
    samples16 = 16 * N_OURS / float(np.median(times[f"samples16.{name}"]))
    return {
        "batch1_chars_per_s": round(batch1, 1),
        "batch1_share": round(batch1 / batch1_limit, 3),
        "batch1_vs_torch": round(batch1 / torch_rate, 1) if torch_rate else None,
        "samples16_chars_per_s": round(samples16, 1),
        "samples16_vs_batch1": round(samples16 / batch1, 2),
        "samples16_utilisation": round(samples16 / limit, 3),
        "batch1_us": breakdown(times, name, 1 / batch1),
    }


def print_sampling(s: dict, paths: list[str]) -> None:
    print(f"\nsampling, L={s['model']['L']} H={s['model']['H']} (chars/s, median of alternating runs)")
    print(
        f"  batch-1 limit: {s['weights_bytes'] / 1e6:.1f} MB of weights read per character at the faster of "
        f"{s['copy_gb_per_s']:.0f} GB/s (a copy that size, read + write counted) and {s['read_gb_per_s']:.0f} GB/s "
        f"(a sum of it; both on {s['bandwidth_probes']}) = {fmt(s['batch1_limit_chars_per_s'])}"
    )
    print(
        f"  16-sample limit: GEMM rate {s['gemm_gflops']:.0f} GFLOP/s / forward FLOPs per char = {fmt(s['limit_chars_per_s'])}"
    )
    for name, m in s["torch"].items():
        best = "  (the faster: charlstm is compared with it)" if name == s["torch_best"] else ""
        print(
            f"  torch {name:<6} batch 1 {m['batch1_chars_per_s']:>9,.0f}  {m['batch1_share']:>4.0%} of the limit{best}"
        )
    for path in paths:
        m = s[path]
        print(
            f"  {path:<12} batch 1 {m['batch1_chars_per_s']:>9,.0f}  {m['batch1_share']:>4.0%} of the limit  "
            f"×{fmt(m['batch1_vs_torch'], '.1f')} torch   num_samples=16 {m['samples16_chars_per_s']:>9,.0f}  "
            f"{m['samples16_utilisation']:.0%} of its limit, ×{m['samples16_vs_batch1']:.2f} batch 1"
        )
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
