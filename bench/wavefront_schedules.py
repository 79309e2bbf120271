"""The two schedules of bench/wavefront.py (issue 27's probe), over the same 2-layer LSTM window:
`Today`, the engine's own pieces in today's order on 2 BLAS threads, and `Wave`, the wavefront
on two Python threads with 1 BLAS thread each (see bench/wavefront.py for what each does)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from threadpoolctl import ThreadpoolController  # noqa: E402

from charlstm.nn import kernels as kernels_  # noqa: E402
from charlstm.nn import model  # noqa: E402
from charlstm.nn.cells import lstm  # noqa: E402
from charlstm.nn.cells.common import recurrent_operand  # noqa: E402
from charlstm.nn.ops import Projection, project, project_backward  # noqa: E402

V = 65

BLAS = ThreadpoolController().select(user_api="blas")


@dataclass
class Net:
    """The two layers' weights (torch's layout), the window's ids, the initial state and the
    gradient arriving at layer 2's outputs from the head."""

    W_ih: list[np.ndarray]
    W_hh: list[np.ndarray]
    b_ih: list[np.ndarray]
    b_hh: list[np.ndarray]
    x: np.ndarray  # (T, B) ids
    h0: np.ndarray  # (2, B, H)
    c0: np.ndarray
    dtop: np.ndarray  # (T, B, H)


def make_net(B: int, T: int, H: int, seed: int = 0) -> Net:
    config = model.ModelConfig(vocab_size=V, hidden_size=H, num_layers=2)
    params = model.init_params(config, seed)
    rng = np.random.default_rng(seed + 1)
    layers = [model.layer_params(params, config, k) for k in range(2)]
    for p in layers:
        p[2][:] += rng.uniform(-0.1, 0.1, p[2].shape)
        p[3][:] += rng.uniform(-0.1, 0.1, p[3].shape)
    f32 = np.float32
    return Net(
        [p[0] for p in layers],
        [p[1] for p in layers],
        [p[2] for p in layers],
        [p[3] for p in layers],
        rng.integers(0, V, (T, B)),
        rng.uniform(-0.5, 0.5, (2, B, H)).astype(f32),
        rng.uniform(-0.5, 0.5, (2, B, H)).astype(f32),
        (rng.standard_normal((T, B, H)) * 0.01).astype(f32),
    )


def set_threads(n: int) -> None:
    """BLAS (and the numba kernels', when loaded) thread count, process-wide."""
    BLAS.limit(limits=n)
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


# ------------------------------------------------------------------------------------ (a) today


class Today:
    """Today's schedule, from the real pieces, on 2 BLAS threads."""

    def __init__(self, net: Net, k: kernels_.Kernels) -> None:
        self.net, self.k = net, k
        self.proj: list[Projection | None] = [None, None]
        self.caches: list[lstm.Cache | None] = [None, None]

    def forward(self) -> dict[str, np.ndarray]:
        set_threads(2)
        n = self.net
        scale = lstm.input_scale(n.h0.shape[2], np.dtype(np.float32))
        out: dict[str, np.ndarray] = {}
        inp: np.ndarray = n.x
        for L in range(2):
            self.proj[L] = p = project(inp, n.W_ih[L], scale, self.proj[L])
            h, (hT, cT), self.caches[L] = lstm.forward(
                p.xa, (n.h0[L], n.c0[L]), n.W_hh[L], n.b_ih[L], n.b_hh[L], self.caches[L], self.k
            )
            out[f"h{L + 1}"], out[f"hT{L + 1}"], out[f"cT{L + 1}"] = h, hT, cT
            inp = h
        return out

    def backward(self) -> dict[str, np.ndarray]:
        set_threads(2)
        out: dict[str, np.ndarray] = {}
        dh = self.net.dtop
        for L in (1, 0):
            cache, proj = self.caches[L], self.proj[L]
            assert cache is not None and proj is not None
            dxa, g, (dh0, dc0) = lstm.backward(dh, cache, None, self.k)
            dW_ih, dx = project_backward(proj, dxa)
            out |= {f"dW_ih{L + 1}": dW_ih, f"dW_hh{L + 1}": g["weight_hh"], f"db{L + 1}": g["bias_hh"]}
            out |= {f"dh0{L + 1}": dh0, f"dc0{L + 1}": dc0}
            if dx is not None:
                dh = dx
        return out


# ------------------------------------------------------------------------------ synchronisation


class Events:
    """A threading.Event per published step (k: the order of publication, 0, 1, ...)."""

    def __init__(self, n: int) -> None:
        self.events = [threading.Event() for _ in range(n)]

    def set(self, k: int) -> None:
        self.events[k].set()

    def wait(self, k: int) -> None:
        self.events[k].wait()

    def abort(self) -> None:
        for e in self.events:
            e.set()


class Counter:
    """How many steps are published, under a Condition; a waiter takes the lock only when its step
    is not published yet (reading an int is atomic under the GIL)."""

    def __init__(self, n: int) -> None:
        self.done = 0
        self.cond = threading.Condition()

    def set(self, k: int) -> None:
        with self.cond:
            self.done = k + 1
            self.cond.notify()

    def wait(self, k: int) -> None:
        if self.done > k:
            return
        with self.cond:
            while self.done <= k:
                self.cond.wait()

    def abort(self) -> None:
        with self.cond:
            self.done = 1 << 60
            self.cond.notify_all()


SYNCS: dict[str, type[Events] | type[Counter]] = {"event": Events, "condition": Counter}


def run_pair(a: Callable[[], None], b: Callable[[], None], signals: list) -> None:
    """a on a new thread, b on this one; an exception in either releases every wait, then is raised."""
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as e:
            errors.append(e)
            for s in signals:
                s.abort()

    thread = threading.Thread(target=guarded, args=(a,))
    thread.start()
    guarded(b)
    thread.join()
    if errors:
        raise errors[0]


# --------------------------------------------------------------------------------- (b) wavefront


class Wave:
    """The wavefront: thread A layer 1, thread B layer 2, 1 BLAS thread each.

    One buffer Z (T+2, B, 2H+1) holds both layers' outputs and a column of ones: row k is
    [h2_{k-1}, h1_k, 1], so A's operand at step t is Z[t, :, H:] = [h1_{t-1}, 1] and B's is
    Z[t+1] = [h2_{t-1}, h1_t, 1] (time from 0; h_{-1} the initial state), with no copy.
    cf: the gate columns of layer 2's input product that A computes (0, 2H or 4H); cb: the columns
    of dx2 that A computes (0, H/2 or H)."""

    def __init__(self, net: Net, k: kernels_.Kernels, cf: int, cb: int, sync: str) -> None:
        self.net, self.k, self.cf, self.cb, self.sync = net, k, cf, cb, SYNCS[sync]
        T, B = net.x.shape
        H = net.W_hh[0].shape[1]
        f32 = np.float32
        self.proj1: Projection | None = None
        self.Z = np.empty((T + 2, B, 2 * H + 1), f32)
        self.Z[:, :, 2 * H] = 1
        self.c = [np.empty((T + 1, B, H), f32) for _ in range(2)]
        self.tanh_c = [np.empty((T, B, H), f32) for _ in range(2)]
        self.G2 = np.empty((T, B, 4 * H), f32)
        self.P = np.empty((T + 1, B, 4 * H + cf), f32)  # A's products: [layer 1's recurrent | layer 2's input part]
        self.WA = np.empty((H + 1, 4 * H + cf), f32)  # [s⊙W_hh1ᵀ; s⊙b1 | (s⊙W_ih2ᵀ; s⊙b2)[:, :cf]]
        self.W2f = np.empty((2 * H + 1, 4 * H), f32)  # [s⊙W_hh2ᵀ; s⊙W_ih2ᵀ; s⊙b2]
        self.W2b = np.empty((4 * H, 2 * H), f32)  # [W_hh2 | W_ih2]
        self.D2 = np.empty((T, B, 2 * H), f32)  # da2_t @ W2b: [dh2 for step t-1 | dx2_t]
        self.pad = np.empty((4 * H, H + 16), f32)
        self.dWb2 = np.empty((4 * H, 2 * H + 1), f32)
        self.dWb1 = np.empty((4 * H, H + 1), f32)

    def _weights(self) -> None:
        n, H, cf = self.net, self.net.W_hh[0].shape[1], self.cf
        s = lstm.gate_scale(H, np.dtype(np.float32))
        recurrent_operand(n.W_hh[0], n.b_ih[0] + n.b_hh[0], s, self.WA[:, : 4 * H], self.pad)
        W2f = self.W2f
        recurrent_operand(n.W_hh[1], n.b_ih[1] + n.b_hh[1], s, W2f[: H + 1], self.pad)
        recurrent_operand(n.W_ih[1], n.b_ih[1] + n.b_hh[1], s, W2f[H : 2 * H + 1], self.pad)
        if cf:
            np.copyto(self.WA[:, 4 * H :], W2f[H:, :cf])

    def forward(self) -> dict[str, np.ndarray]:
        set_threads(1)
        n, H = self.net, self.net.W_hh[0].shape[1]
        T = n.x.shape[0]
        self._weights()
        self.proj1 = project(n.x, n.W_ih[0], lstm.input_scale(H, np.dtype(np.float32)), self.proj1)
        signal = self.sync(T)
        run_pair(self._forward_a(signal), self._forward_b(signal), [signal])
        Z, c = self.Z, self.c
        return {
            "h1": Z[1 : T + 1, :, H : 2 * H],
            "hT1": Z[T, :, H : 2 * H].copy(),
            "cT1": c[0][T].copy(),
            "h2": Z[2 : T + 2, :, :H],
            "hT2": Z[T + 1, :, :H].copy(),
            "cT2": c[1][T].copy(),
        }

    def _forward_a(self, signal: Events | Counter) -> Callable[[], None]:
        def run() -> None:
            assert self.proj1 is not None
            G1, Z, P, WA, cf = self.proj1.xa, self.Z, self.P, self.WA, self.cf
            c, tanh_c, gates = self.c[0], self.tanh_c[0], self.k.lstm_forward_gates
            T, H = G1.shape[0], Z.shape[2] // 2
            Z[0, :, H : 2 * H] = self.net.h0[0]
            c[0] = self.net.c0[0]
            np.matmul(Z[0, :, H:], WA[:, : 4 * H], out=P[0, :, : 4 * H])
            for t in range(T):
                a = G1[t]
                a += P[t, :, : 4 * H]
                gates(a, c[t], c[t + 1], tanh_c[t], Z[t + 1, :, H : 2 * H])
                if not cf:
                    signal.set(t)  # B needs only h1_t
                if t + 1 < T:
                    np.matmul(Z[t + 1, :, H:], WA, out=P[t + 1])
                elif cf:
                    np.matmul(Z[T, :, H:], WA[:, 4 * H :], out=P[T, :, 4 * H :])
                if cf:
                    signal.set(t)

        return run

    def _forward_b(self, signal: Events | Counter) -> Callable[[], None]:
        def run() -> None:
            G2, Z, P, W2f, cf = self.G2, self.Z, self.P, self.W2f, self.cf
            c, tanh_c, gates = self.c[1], self.tanh_c[1], self.k.lstm_forward_gates
            T, H = G2.shape[0], Z.shape[2] // 2
            Z[1, :, :H] = self.net.h0[1]
            c[0] = self.net.c0[1]
            for t in range(T):
                signal.wait(t)
                a = G2[t]
                if cf:
                    np.matmul(Z[t + 1, :, :H], W2f[:H, :cf], out=a[:, :cf])
                    a[:, :cf] += P[t + 1, :, 4 * H :]
                if cf < 4 * H:
                    np.matmul(Z[t + 1], W2f[:, cf:], out=a[:, cf:])
                gates(a, c[t], c[t + 1], tanh_c[t], Z[t + 2, :, :H])

        return run

    def backward(self) -> dict[str, np.ndarray]:
        set_threads(1)
        n, H = self.net, self.net.W_hh[0].shape[1]
        T, B = n.x.shape
        np.copyto(self.W2b[:, :H], n.W_hh[1])
        np.copyto(self.W2b[:, H:], n.W_ih[1])
        da, dx = self.sync(T), self.sync(T)
        dstate: dict[str, np.ndarray] = {}
        run_pair(self._backward_a(da, dx, dstate), self._backward_b(da, dx, dstate), [da, dx])
        set_threads(2)
        assert self.proj1 is not None
        G1, G2, Z = self.proj1.xa, self.G2, self.Z
        dWb2 = np.matmul(G2.reshape(T * B, 4 * H).T, Z[1 : T + 1].reshape(T * B, 2 * H + 1), out=self.dWb2)
        dWb1 = np.matmul(G1.reshape(T * B, 4 * H).T, Z[:T, :, H:].reshape(T * B, H + 1), out=self.dWb1)
        dW_ih1, _ = project_backward(self.proj1, G1)
        return dstate | {
            "dW_ih1": dW_ih1,
            "dW_hh1": dWb1[:, :H],
            "db1": dWb1[:, H],
            "dW_ih2": dWb2[:, H : 2 * H],
            "dW_hh2": dWb2[:, :H],
            "db2": dWb2[:, 2 * H],
        }

    def _scratch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The NumPy gate kernel's scratch (the numba one needs none), a set per thread."""
        G2 = self.G2[0]
        return np.empty_like(G2), np.empty_like(G2), np.empty_like(self.c[0][0])

    def _backward_b(self, da: Events | Counter, dx: Events | Counter, dstate: dict) -> Callable[[], None]:
        def run() -> None:
            G2, Z, D2, cb = self.G2, self.Z, self.D2, self.cb
            c, tanh_c, gates = self.c[1], self.tanh_c[1], self.k.lstm_backward_gates
            T, H = G2.shape[0], Z.shape[2] // 2
            W = self.W2b[:, : 2 * H - cb]
            dtop, work = self.net.dtop, self._scratch()
            dh, dc = np.empty_like(c[0]), np.zeros_like(c[0])
            for t in reversed(range(T)):
                if t == T - 1:
                    np.copyto(dh, dtop[t])
                else:
                    np.add(dtop[t], D2[t + 1, :, :H], out=dh)
                gates(G2[t], dh, dc, c[t], tanh_c[t], Z[t + 2, :, :H], work)
                if cb:
                    da.set(T - 1 - t)  # A may compute its columns of dx2_t
                np.matmul(G2[t], W, out=D2[t, :, : 2 * H - cb])
                dx.set(T - 1 - t)
            dstate["dh02"], dstate["dc02"] = D2[0, :, :H], dc

        return run

    def _backward_a(self, da: Events | Counter, dx: Events | Counter, dstate: dict) -> Callable[[], None]:
        def run() -> None:
            assert self.proj1 is not None
            G1, G2, Z, D2, cb = self.proj1.xa, self.G2, self.Z, self.D2, self.cb
            c, tanh_c, gates = self.c[0], self.tanh_c[0], self.k.lstm_backward_gates
            T, H = G1.shape[0], Z.shape[2] // 2
            W_hh1, W = self.net.W_hh[0], self.W2b[:, 2 * H - cb :]
            work = self._scratch()
            dh, dh_next, dc = np.empty_like(c[0]), np.zeros_like(c[0]), np.zeros_like(c[0])
            for t in reversed(range(T)):
                if cb:
                    da.wait(T - 1 - t)
                    np.matmul(G2[t], W, out=D2[t, :, 2 * H - cb :])
                dx.wait(T - 1 - t)
                np.add(D2[t, :, H:], dh_next, out=dh)
                gates(G1[t], dh, dc, c[t], tanh_c[t], Z[t + 1, :, H : 2 * H], work)
                np.matmul(G1[t], W_hh1, out=dh_next)
            dstate["dh01"], dstate["dc01"] = dh_next, dc

        return run
