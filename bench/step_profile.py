"""Where a step's time goes, piece by piece: a training step as `charlstm train` runs it (2×256 by
default), and a step of 16 samples at once at 2×512 (bench/speed.py prints both and keeps them in
its JSON, under "step_profile").

    python bench/step_profile.py [--config 2x256] [--kernels numba|numpy] [--steps N]
                                 [--view training|samples|both] [--bare] [--out FILE]

Method (bench/profile_pieces.py): cProfile over real steps, with np.matmul and the kernels made
visible to it for those steps only; pstats then attributes time by (callee, caller) into the
pieces below, which partition the step; "the rest" is the step less them.

The training step is the command line's default step: a `NumpyEngine` built from
`TrainConfig(batch_size=B, seq_len=T, kernels=...)` with every other default (dropout 0.2 per
step, the weight average --ema 0.995, Adam, clip 5), and per window `corpus.window` →
`engine.forward_backward` (loss_and_grads on the kernels, clip_grad_norm) → `engine.update`
(Adam, then the average): `training.loop.train_step` less its bookkeeping (schedule, report,
thread tuner: the BLAS and numba run on the thread counts they start with, as in
bench/speed.py), on bench/timing.py's synthetic 65-character corpus, the state carried. `--bare`
turns dropout and the average off: the step of bench/speed.py's training table
(`timing.charlstm_trainer`). Its rest holds the Python of the loops over the time steps and of
the calls, the in-place add of each recurrent product into the gates' buffer (forward), the add
of the two gradients reaching h (backward), the dropout masks applied to the gradients
(backward), the head's bias and the state stacked.

The 16-sample step is `generate` with num_samples=16 after its setup (weights laid out, seed
primed, first draw): `stepping.step_in_place` (each layer's `kernels.lstm_step`, the head's
`kernels.linear_step`) and the draw (`drawer`). On the numba kernels up to 32 samples a layer's
product and gate math are one fused call, one piece.

Figures: per step. The step's total is the cumulative time of the profiled step function,
beside the wall time of the profiled steps and the same number of steps timed just before
without profiler or wrappers: that ratio is the profiler's overhead. It falls mostly on pieces
made of many short calls (the per-time-step products and gate math, and the rest); shares are of
the profiled step. A product piece's GFLOP/s is its FLOPs, from the shapes as computed (the
recurrent product with its bias row: 2·B·(H+1)·4H per layer and time step), over its profiled
time; "of GEMM" divides that by a 2048³ float32 np.matmul timed in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from profile_pieces import Piece, attribute, inner, profiled, timed, via, visible, whole
from timing import CONFIGS, SAMPLE_MODEL, V, gemm_probe, log, numba_available

SAMPLES, SAMPLE_LENGTH, SEED = 16, 400, "0123456789"


def _engine(L: int, H: int, B: int, T: int, kernels: str, bare: bool):
    """The command line's NumPy engine (its defaults, or `bare`: no dropout, no average) and one
    step of it over bench/timing.py's synthetic corpus, the state carried."""
    from charlstm.config import ModelConfig, TrainConfig
    from charlstm.engines.numpy_engine import NumpyEngine
    from charlstm.nn import model
    from charlstm.text.corpus import num_windows, window

    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L)
    cfg = TrainConfig(batch_size=B, seq_len=T, kernels=kernels, **({"dropout": 0.0, "ema": 0.0} if bare else {}))
    engine = NumpyEngine(config, cfg, model.init_params(config, seed=0))
    ids = np.random.default_rng(1).integers(0, V, 20 * B * T + 1, dtype=np.uint8)  # 20 windows
    windows = num_windows(len(ids), B, T)
    run = {"state": engine.zero_state(), "k": 0}

    def step() -> None:
        x, y = window(ids, B, T, run["k"] % windows)
        run["k"] += 1
        _, _, new_state = engine.forward_backward(x, y, run["state"])
        engine.update(cfg.lr)
        run["state"] = new_state

    return engine, step


def training_pieces(engine, vis, L: int, H: int, B: int, T: int) -> list[Piece]:
    """The pieces of a training step of the LSTM, with their FLOPs per step."""
    from charlstm.nn import model, ops, optim
    from charlstm.nn.average import WeightAverage
    from charlstm.nn.cells import common, lstm
    from charlstm.text import corpus

    G, N = 4 * H, B * T
    return [
        Piece("recurrent products, forward (per time step)", via(lstm.forward), L * N * 2 * (H + 1) * G),
        Piece("recurrent products, backward (per time step)", via(lstm.backward), L * N * 2 * G * H),
        Piece("input projections, forward (B·T rows)", via(ops.project) + whole(ops.embed), (L - 1) * N * 2 * H * G),
        Piece(
            "input projections, backward (B·T rows)",
            via(ops.project_backward) + whole(ops.embed_backward),
            N * (2 * V * G + (L - 1) * 4 * G * H),
        ),
        Piece("recurrent weight gradients (B·T rows)", via(common.recurrent_grads), L * N * 2 * G * (H + 1)),
        Piece("head, forward and backward (B·T rows)", via(model.forward, model.backward), 3 * N * 2 * H * V),
        Piece("weight transposes", whole(ops.scaled_transpose)),
        Piece("gate math, forward", whole(vis.lstm_forward_gates)),
        Piece("gate math, backward", whole(vis.lstm_backward_gates)),
        Piece("softmax and loss", whole(ops.softmax_cross_entropy)),
        Piece("dropout masks, drawn and applied (forward)", whole(model._dropout)),
        Piece("clipping", whole(optim.clip_grad_norm)),
        Piece("update (Adam)", whole(type(engine.optimizer).step)),
        Piece("weight average", whole(WeightAverage.update)),
        Piece("window", whole(corpus.window)),
    ]


def profile_training(
    L: int, H: int, B: int, T: int, kernels: str, steps: int = 20, bare: bool = False, gemm: float | None = None
) -> dict:
    """Where a training step's time goes (see the module's docstring)."""
    engine, step = _engine(L, H, B, T, kernels, bare)
    timed(step, 3)  # warm-up
    plain = timed(step, steps) / steps
    real = engine.kernels
    engine.kernels = vis = visible(real)
    try:
        stats, wall = profiled(step, steps)
    finally:
        engine.kernels = real
    res = attribute(stats, training_pieces(engine, vis, L, H, B, T), step, gemm)
    res.update(
        config={"L": L, "H": H, "B": B, "T": T, "V": V},
        kernels=kernels,
        step="bare (no dropout, no average)" if bare else "the command line's default (dropout 0.2, average on)",
        plain_ms=round(plain * 1e3, 4),
        wall_ms=round(wall / steps * 1e3, 4),
        overhead=round(wall / steps / plain, 3),
    )
    return res


def samples_pieces(k, vis, L: int, H: int, N: int) -> list[Piece]:
    """The pieces of a step of N samples: the layers (the product apart where it is BLAS's), the
    head, the draw."""
    from charlstm.inference.generate import drawer

    layers_flops = N * 2 * 4 * H * (H + (L - 1) * 2 * H)  # W (4H, K) @ z (K, N); K = H, then 2H
    head = Piece("head (linear_step)", whole(vis.linear_step), N * 2 * V * H)
    draw = Piece("the draw (softmax, inverse CDF, uniforms)", whole(inner(drawer, "fast")))
    fused = False
    if k.name == "numba":
        from charlstm.nn.kernels.numba_impl import FUSED_MAX_N

        fused = N <= FUSED_MAX_N
    if fused:
        return [Piece("layer steps: products and gate math, fused", whole(vis.lstm_step), layers_flops), head, draw]
    products = via(k.lstm_step)
    return [
        Piece("layer steps: products", products, layers_flops),
        Piece("layer steps: gate math and the bias rows", whole(vis.lstm_step), minus=products),
        head,
        draw,
    ]


def profile_samples(L: int, H: int, N: int, kernels: str, length: int = SAMPLE_LENGTH, gemm: float | None = None):
    """Where a step of N samples at once goes (`generate` after its setup)."""
    from charlstm.inference.generate import Sampling, generate
    from charlstm.nn import kernels as kernels_
    from charlstm.nn import model
    from charlstm.text.vocab import Vocab

    config = model.ModelConfig(vocab_size=V, hidden_size=H, num_layers=L)
    params = model.init_params(config, seed=0)
    vocab = Vocab(tuple(chr(48 + c) for c in range(V)))
    k = kernels_.load(kernels)
    k.warm_up(np.float32)

    def started(kk):  # the generator after its setup and first draw
        it = generate(params, config, vocab, SEED, length, Sampling(1.0), N, np.random.default_rng(0), kk)
        next(it)
        return it

    def drain(it) -> None:
        for _ in it:
            pass

    drain(started(k))  # warm-up
    it = started(k)
    plain = timed(lambda: drain(it), 1) / (length - 1)
    vis = visible(k)
    it = started(vis)
    stats, wall = profiled(lambda: drain(it), 1)
    res = attribute(stats, samples_pieces(k, vis, L, H, N), drain, gemm, length - 1)
    res.update(
        config={"L": L, "H": H, "samples": N, "V": V},
        kernels=kernels,
        plain_ms=round(plain * 1e3, 4),
        wall_ms=round(wall / (length - 1) * 1e3, 4),
        overhead=round(wall / (length - 1) / plain, 3),
    )
    return res


def gemm_gflops(reps: int = 3) -> float:
    """The float32 GEMM rate now: bench/timing.py's probe, the median of `reps`."""
    probe, flops = gemm_probe()
    probe()
    return flops / float(np.median([timed(probe, 1) for _ in range(reps)])) / 1e9


def bench_step_profile(
    paths, steps: int = 20, training: bool = True, samples: bool = True, config=None, bare: bool = False
) -> dict:
    """bench/speed.py's part: the training view (2×256 unless `config` (L, H, B, T); the default
    step unless `bare`) and the 16-sample view (2×512) on each kernel path."""
    L, H, B, T = config or next(c for c in CONFIGS if c[:2] == (2, 256))
    res: dict = {"gemm_gflops": round(gemm_gflops(), 1), "training": {}, "samples16": {}}
    for name in paths:
        if training:
            log(f"profile: training L={L} H={H} B={B} T={T}, {name} kernels …")
            res["training"][name] = profile_training(L, H, B, T, name, steps, bare, res["gemm_gflops"])
        if samples:
            log(f"profile: {SAMPLES} samples, {name} kernels …")
            res["samples16"][name] = profile_samples(*SAMPLE_MODEL, SAMPLES, name, gemm=res["gemm_gflops"])
    return res


def print_view(title: str, v: dict, unit: str) -> None:
    scale = 1.0 if unit == "ms" else 1e3  # figures are kept in ms
    print(f"\n{title}")
    head = f"  {'piece':<50}{unit + '/step':>10}{'share':>7}{'calls':>8}{'GFLOP/s':>9}{'of GEMM':>9}"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for r in v["pieces"]:
        calls = f"{r['calls']:.0f}" if r.get("calls") is not None else ""
        gf = f"{r['gflops']:.0f}" if r.get("gflops") else ""
        of = f"{r['of_gemm']:.0%}" if r.get("of_gemm") else ""
        print(f"  {r['piece']:<50}{r['ms'] * scale:>10.2f}{r['share']:>7.0%}{calls:>8}{gf:>9}{of:>9}")
    print(f"  {'step (profiled)':<50}{v['step_ms'] * scale:>10.2f}{1:>7.0%}")
    counted = v["named_ms"] + v["rest_counted_ms"]
    print(
        f"  the pieces {v['named_ms'] * scale:.2f} + the rest counted function by function "
        f"{v['rest_counted_ms'] * scale:.2f} = {counted * scale:.2f} {unit}, of the profiled step's "
        f"{v['step_ms'] * scale:.2f} ({counted / v['step_ms']:.1%}); pieces inside pieces: "
        + (", ".join(v["nested"]) or "none")
    )
    print(
        f"  the profiler recorded {v['recorded_ms'] * scale:.2f} {unit} of a step's {v['wall_ms'] * scale:.2f} {unit} "
        f"wall time; without it a step takes {v['plain_ms'] * scale:.2f} {unit}: overhead ×{v['overhead']:.2f}"
    )
    rest = ", ".join(f"{name} {ms * scale:.2f}" for name, ms in v["rest_by_function"].items())
    print(f"  the rest by own time ({unit}/step): {rest}")


def print_step_profile(res: dict) -> None:
    gemm = f"(GEMM rate now: {res['gemm_gflops']:.0f} GFLOP/s; calls: per step)"
    for name, v in res["training"].items():
        c = v["config"]
        title = f"where a training step goes: L={c['L']} H={c['H']} B={c['B']} T={c['T']}, {name} kernels, {v['step']} {gemm}"
        print_view(title, v, "ms")
    for name, v in res["samples16"].items():
        c = v["config"]
        title = f"where a step of {c['samples']} samples goes: L={c['L']} H={c['H']}, {name} kernels {gemm}"
        print_view(title, v, "µs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="2x256", help="LxH of a training configuration of bench/timing.py")
    ap.add_argument("--kernels", choices=("numba", "numpy"), help="default: numba when installed, else numpy")
    ap.add_argument("--steps", type=int, default=20, help="training steps profiled (and as many timed without)")
    ap.add_argument("--view", choices=("training", "samples", "both"), default="both")
    ap.add_argument("--bare", action="store_true", help="training without dropout and the average")
    ap.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()
    L, H = (int(n) for n in args.config.lower().split("x"))
    config = next((c for c in CONFIGS if c[:2] == (L, H)), None)
    if config is None:
        ap.error(f"--config {args.config}: not one of {', '.join(f'{c[0]}x{c[1]}' for c in CONFIGS)}")
    kernels = args.kernels or ("numba" if numba_available() else "numpy")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5:
        log(f"warning: load average {os.getloadavg()[0]:.2f}; other processes move every figure")
    steps, training, samples = max(1, args.steps), args.view != "samples", args.view != "training"
    res = bench_step_profile([kernels], steps, training, samples, config, args.bare)
    print_step_profile(res)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
