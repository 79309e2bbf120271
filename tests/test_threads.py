"""The thread count (`charlstm.nn.threads`): a tuner's decisions on injected step times and loads, the
count applied inside a real run, an explicit count (--threads, the environment) that wins, and the
math that does not change with the count. Nothing here is timed: every time is injected."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

from charlstm.cli.ui import progress
from charlstm.config import TrainConfig
from charlstm.nn import kernels, model, stepping, threads
from charlstm.text.corpus import load_corpus
from charlstm.training import events
from charlstm.training.loop import train

from helpers import ROOT, TINY_RUN, random_model, run_cli, started_event

SMALL = dict(seq_len=16, batch_size=4, sample_length=20, max_steps=6)


class Clocks:
    """A wall clock and a process CPU clock that move only when told."""

    def __init__(self) -> None:
        self.wall = self.cpu = 100.0

    def tick(self, seconds: float, cpu_per_second: float = 1.0) -> None:
        self.wall += seconds
        self.cpu += cpu_per_second * seconds


def make_tuner(cores: int = 2, start: int = 2, load=None, **kwargs):
    clocks, applied, reports = Clocks(), [], []
    tuner = threads.Tuner(
        applied.append,
        cores,
        start,
        lambda *r: reports.append(r),
        load,
        clock=lambda: clocks.wall,
        cpu_clock=lambda: clocks.cpu,
        **kwargs,
    )
    return tuner, clocks, applied, reports


def step(tuner, clocks, seconds: float, cpu_per_second: float = 1.0) -> None:
    clocks.tick(seconds, cpu_per_second)
    tuner.after_step(seconds)


def test_a_timed_trial_switches_to_the_faster_count():
    """Without a load reading: after the warm-up step and the first reading, one thread is timed
    against two, alternately; two threads twice as slow end the trial at the first pair."""
    tuner, clocks, applied, reports = make_tuner()
    assert applied == [2]
    step(tuner, clocks, 3.0)  # warm-up: ignored
    step(tuner, clocks, 0.3, cpu_per_second=2.0)  # the first reading: a trial begins on 1 thread
    assert applied[-1] == 1 and tuner.trial
    step(tuner, clocks, 0.5)  # on 1 thread
    assert applied[-1] == 2  # the pair's other half
    step(tuner, clocks, 4.0)  # on 2 threads: 8× as slow, decisive
    assert tuner.threads == 1 and applied[-1] == 1 and not tuner.trial
    assert reports == [(2, 1, "1 thread stepped 8.0× faster")]


def test_a_trial_that_changes_nothing_waits_twice_as_long_for_the_next():
    tuner, clocks, applied, reports = make_tuner()
    step(tuner, clocks, 1.0)
    step(tuner, clocks, 0.3, cpu_per_second=2.0)
    for seconds in (0.5, 0.3) * 3:  # 1 thread, 2 threads, alternately: two are faster
        step(tuner, clocks, seconds, cpu_per_second=2.0)
    assert tuner.threads == 2 and applied[-1] == 2 and reports == [] and not tuner.trial
    assert tuner.wait == 2 * tuner.PROBE_EVERY and tuner.next_trial == clocks.wall + tuner.wait
    step(tuner, clocks, 0.3, cpu_per_second=2.0)
    step(tuner, clocks, 0.8, cpu_per_second=2.0)  # a reading: the usual CPU time of 2 threads…
    assert not tuner.trial  # …and no trial before its time
    step(tuner, clocks, 1.2, cpu_per_second=0.5)  # unless the threads stop getting their cores
    assert tuner.trial and applied[-1] == 1


def test_a_load_reading_drops_at_once_and_a_freed_core_is_tried():
    """With a load reading: other processes taking 1.4 of 2 cores drop the count to 1 at the first
    reading; once two readings in a row find the cores free, 2 threads are timed and kept."""
    loads = [1.4, 0.1, 0.1]
    tuner, clocks, applied, reports = make_tuner(load=lambda: loads.pop(0))
    step(tuner, clocks, 2.0)
    step(tuner, clocks, 0.3)
    assert tuner.threads == 1 and reports == [(2, 1, "other processes keep 1.4 of the 2 cores busy")]
    step(tuner, clocks, 1.0)
    assert not tuner.trial  # one reading of free cores may be a lull
    step(tuner, clocks, 1.0)
    assert tuner.trial and applied[-1] == 2
    for seconds in (0.6, 0.9) * 3:  # 2 threads, 1 thread, alternately
        step(tuner, clocks, seconds)
    assert tuner.threads == 2 and reports[-1] == (1, 2, "2 threads stepped 1.5× faster")


def test_a_tuner_started_on_all_cores_checks_them_against_one():
    loads = [0.0]
    tuner, clocks, applied, _reports = make_tuner(load=lambda: loads[0])
    step(tuner, clocks, 1.0)
    step(tuner, clocks, 0.3)
    assert tuner.trial and applied[-1] == 1  # a model too small to gain from threads would show it


def test_a_fixed_count_never_changes():
    tuner, clocks, applied, reports = make_tuner(fixed=True, load=lambda: 2.0)
    for seconds in (1.0, 0.3, 5.0, 5.0):
        step(tuner, clocks, seconds, cpu_per_second=0.1)
    assert applied == [2] and reports == [] and tuner.threads == 2


def test_the_other_processes_load_is_read_from_proc_stat(tmp_path):
    """cpu lines of the usable cores only; idle and iowait are not busy; steal is; this process's
    own CPU time is taken off."""
    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def write(user0: int, steal1: int, idle: int) -> None:
        line = lambda user, steal: f"{user} 0 0 {idle} 7 0 0 {steal} 0 0"  # noqa: E731
        stat.write_text(
            f"cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 {line(user0, 0)}\ncpu1 {line(50, steal1)}\ncpu2 {line(idle, 0)}\nintr 5\n"
        )

    clocks = Clocks()
    write(100, 100, 0)
    load = threads.OtherLoad({0, 1}, lambda: clocks.wall, lambda: clocks.cpu, str(stat))
    write(100 + 2 * hz, 100 + hz // 2, 5 * hz)  # 2.5 s busy on cores 0 and 1 in 2 s; cpu2 is not ours
    clocks.tick(2.0, cpu_per_second=0.5)  # 1 s of it was this process's
    assert load() == pytest.approx((2.5 - 1.0) / 2.0)
    assert threads.OtherLoad({0}, path=str(tmp_path / "missing"))() is None


def test_the_environment_names_a_count(monkeypatch):
    for name in threads.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert threads.from_environment() is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3,2")
    assert threads.from_environment() == ("OMP_NUM_THREADS", 3)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "x")
    assert threads.from_environment() == ("OPENBLAS_NUM_THREADS", None)
    assert 1 <= threads.usable_cores() <= (os.cpu_count() or 1)


def blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return min(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


def test_the_threads_option_is_applied_inside_a_run_and_put_back_after(tiny_corpus, tmp_path):
    """--threads N: the BLAS (as threadpoolctl reports it) and the numba kernels run N threads
    during the run, the banner's first report says so, nothing changes it, and the counts are
    as before once the run ends."""
    corpus = load_corpus(tiny_corpus)
    before = blas_threads()
    path = "numba" if kernels.available() else "numpy"
    for n in (1, min(2, threads.usable_cores())):
        seen, reports = [], []

        def on_event(event):
            if isinstance(event, events.ThreadsChanged):
                reports.append(event)
            elif isinstance(event, events.Step):
                numba = sys.modules.get(threads.NUMBA_MODULE)
                seen.append(
                    (
                        blas_threads(),
                        numba.get_threads() if numba else n,
                        sys.modules["numba"].get_num_threads() if numba else n,
                    )
                )

        config = model.ModelConfig(corpus.vocab.size, 16, 1)
        train(corpus, config, TrainConfig(**SMALL, threads=n, kernels=path), tmp_path / f"m{n}.safetensors", on_event)
        assert seen and all(s == (n, n, n) for s in seen), seen
        assert reports == [events.ThreadsChanged(old=None, new=n, why="--threads")]
    assert blas_threads() == before


def test_the_automatic_choice_reaches_the_blas_and_numba():
    """The counts a tuner chooses on the NumPy engine are the ones threadpoolctl and numba then
    report: its start, each trial step's, and the count a trial keeps."""
    if threads.usable_cores() < 2:
        pytest.skip("one usable core: there is no other count to choose")
    if kernels.available():
        kernels.load("numba")  # so that the numba kernels are there to follow
    numba = sys.modules.get(threads.NUMBA_MODULE)
    counts = lambda: (blas_threads(), numba.get_threads() if numba else blas_threads())  # noqa: E731
    clocks = Clocks()
    with threads.as_before():
        tuner = threads.Tuner(threads.numpy_threads(), 2, 2, clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu)
        seen = [counts()]
        for seconds in (1.0, 0.3, 0.5, 4.0):  # warm-up, a reading that starts a trial, 1 thread, 2 threads
            step(tuner, clocks, seconds)
            seen.append(counts())
        assert tuner.threads == 1
    assert seen == [(2, 2), (2, 2), (1, 1), (2, 2), (1, 1)]


ENV_RUN = """
import json, sys
from pathlib import Path
from threadpoolctl import threadpool_info
from charlstm.training import events
from charlstm.nn import kernels, model, threads
from charlstm.config import TrainConfig
from charlstm.training.loop import train
from charlstm.text.corpus import load_corpus
corpus = load_corpus(sys.argv[1])
out = []
def on_event(e):
    if isinstance(e, events.ThreadsChanged):
        out.append(["report", e.old, e.new, e.why])
    elif isinstance(e, events.Step):
        numba = sys.modules.get(threads.NUMBA_MODULE)
        out.append(["step", min(l["num_threads"] for l in threadpool_info() if l["user_api"] == "blas"),
                    numba.get_threads() if numba else None])
cfg = TrainConfig(seq_len=16, batch_size=4, sample_length=0, max_steps=4, kernels="auto")
train(corpus, model.ModelConfig(corpus.vocab.size, 16, 1), cfg, Path(sys.argv[2]), on_event)
print(json.dumps(out))
"""


def test_a_count_in_the_environment_wins(tiny_corpus, tmp_path):
    """OPENBLAS_NUM_THREADS=1: the BLAS keep the one thread they read at start, the numba kernels
    (when installed) follow it, and the tuner never changes it."""
    env = {k: v for k, v in os.environ.items() if k not in (*threads.ENV_VARS, "NUMBA_NUM_THREADS")}
    env.update(OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", ENV_RUN, str(tiny_corpus), str(tmp_path / "m.safetensors")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    numba = 1 if kernels.available() else None
    assert records[0] == ["report", None, 1, "OPENBLAS_NUM_THREADS"]
    assert records[1:] == [["step", 1, numba]] * 4


def test_the_banner_names_the_choice_and_a_change_is_a_line(tmp_path):
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    view = progress.train_view(console)
    view(events.ThreadsChanged(old=None, new=2, why="automatic: re-chosen as the load on the 2 cores changes"))
    view(started_event(folder=tmp_path))
    view(events.ThreadsChanged(old=2, new=1, why="other processes keep 1.4 of the 2 cores busy"))
    out = console.file.getvalue()
    assert "threads      2 (automatic: re-chosen as the load on the 2 cores changes)" in out
    assert "threads 2 → 1: other processes keep 1.4 of the 2 cores busy" in out


def test_the_threads_option_on_the_command_line(tiny_corpus, tmp_path):
    result = run_cli("train", str(tiny_corpus), *TINY_RUN, "--max-steps", "3", "--threads", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "threads      1 (--threads)" in result.stderr
    bad = run_cli(
        "sample", "-c", str(tmp_path / "checkpoints" / "tiny-1x16.safetensors"), "--threads", "0", cwd=tmp_path
    )
    assert bad.returncode == 2 and "--threads must be at least 1" in bad.stderr
    good = run_cli(
        "sample",
        "-c",
        str(tmp_path / "checkpoints" / "tiny-1x16.safetensors"),
        "--threads",
        "1",
        "-n",
        "20",
        "--random-seed",
        "1",
        cwd=tmp_path,
    )
    assert good.returncode == 0 and good.stdout.strip(), good.stderr


def test_the_math_does_not_change_with_the_count():
    """A training step's loss and gradients on one thread and on two agree to float rounding
    (OpenBLAS may split a product elsewhere); the numba sampling step is the same to the bit
    (each unit's sums are one thread's, whatever the number of threads)."""
    config, params = random_model(40, 128, 2, seed=1, dtype=np.float32, scale=0.2)
    rng = np.random.default_rng(2)
    x, y = (rng.integers(0, 40, (20, 32)).astype(np.uint8) for _ in range(2))
    set_threads = threads.numpy_threads()
    results = []
    with threads.as_before():
        for n in (1, 2):
            set_threads(n)
            loss, grads, _, _ = model.loss_and_grads(params, config, x, y, model.zero_state(config, 32))
            results.append((loss, {k: g.copy() for k, g in grads.items()}))
    (loss1, g1), (loss2, g2) = results
    assert loss1 == pytest.approx(loss2, rel=1e-6)
    for k in g1:
        np.testing.assert_allclose(g2[k], g1[k], rtol=1e-4, atol=1e-6 * np.abs(g1[k]).max())
    if kernels.available():
        from charlstm.nn.kernels import numba_impl

        stepper = stepping.prepare_stepper(params, config, kernels.load("numba"))
        logits = []
        with threads.as_before():
            for n in (1, 2):
                numba_impl.set_threads(n)
                st = stepping.step_state(stepper, model.zero_state(config, 3))
                logits.append(stepping.step_in_place(stepper, np.array([1, 5, 9]), st).copy())
        np.testing.assert_array_equal(logits[0], logits[1])


def test_timed_tells_the_tuner_each_block():
    got = []

    class Recorder:
        def after_step(self, seconds):
            got.append(seconds)

    assert list(threads.timed(iter(range(7)), Recorder(), block=3)) == list(range(7))
    assert len(got) == 2 and all(s >= 0 for s in got)


def test_the_first_count_is_what_the_cores_do_now(tmp_path, monkeypatch):
    """A run starts on the cores other processes leave free over a tenth of a second of
    /proc/stat, not by the minute's load average (which the user's previous run keeps high)."""
    stat, hz = tmp_path / "stat", os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    write = lambda busy: stat.write_text(f"cpu0 {busy} 0 0 9 0 0 0 0\ncpu1 {busy} 0 0 9 0 0 0 0\n")  # noqa: E731
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.9, 1.9))  # a busy minute before: no matter
    for other, expected in ((0.1, 2), (1.4, 1), (0.6, 1), (0.4, 2), (3.0, 1)):
        clocks = Clocks()
        write(1000)
        load = threads.OtherLoad({0, 1}, lambda: clocks.wall, lambda: clocks.cpu, str(stat))

        def sleep(seconds, other=other, clocks=clocks):  # the other processes' ticks come in meanwhile
            clocks.tick(seconds, cpu_per_second=0.0)
            write(1000 + round(other * seconds * hz / 2))

        assert threads.first_count(2, load, sleep) == expected, other
    assert threads.first_count(2, None) == 1  # no reading: the load average decides
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    monkeypatch.setattr(threads, "_read", lambda path: "0.1 0.1 0.1 1/300 5")
    assert threads.first_count(2, None) == 2


def torch_engine():
    pytest.importorskip("torch")
    from charlstm.engines import make_engine

    config = model.ModelConfig(20, 16, 1)
    cfg = TrainConfig(**SMALL, engine="torch", device="cpu")
    return make_engine(config, cfg, model.init_params(config, 0))


def test_the_torch_engine_on_a_cpu_applies_the_tuners_choice():
    """PyTorch's thread count (and the BLAS that draw the samples) follows every count a tuner
    applies through the torch engine's control, as on the NumPy engine."""
    if threads.usable_cores() < 2:
        pytest.skip("one usable core: there is no other count to choose")
    import torch

    engine = torch_engine()
    control = engine.thread_control()
    assert control is not None
    clocks, seen = Clocks(), []
    with threads.as_before():
        before = torch.get_num_threads()
        tuner = threads.Tuner(control(), 2, 2, clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu)
        seen.append((torch.get_num_threads(), blas_threads()))
        for seconds in (1.0, 0.3, 0.5, 4.0):  # warm-up, a reading that starts a trial, 1 thread, 2 threads
            step(tuner, clocks, seconds)
            seen.append((torch.get_num_threads(), blas_threads()))
        assert tuner.threads == 1
    assert seen == [(2, 2), (2, 2), (1, 1), (2, 2), (1, 1)]
    assert torch.get_num_threads() == before


def test_a_torch_run_on_a_cpu_has_the_threads_line_and_the_option_wins(tiny_corpus, tmp_path):
    """`train --engine torch --device cpu`: the banner names the automatic choice; with
    --threads 1 PyTorch computes every step on one thread, and nothing changes it."""
    pytest.importorskip("torch")
    import torch

    args = (str(tiny_corpus), "-H", "16", "-L", "1", "-B", "4", "-T", "16", "--sample-length", "0")
    auto = run_cli("train", *args, "--max-steps", "3", "--engine", "torch", "--device", "cpu", cwd=tmp_path)
    assert auto.returncode == 0, auto.stderr
    assert "automatic: re-chosen as the load on the" in auto.stderr
    corpus, seen, reports = load_corpus(tiny_corpus), [], []

    def on_event(event):
        if isinstance(event, events.ThreadsChanged):
            reports.append(event)
        elif isinstance(event, events.Step):
            seen.append(torch.get_num_threads())

    cfg = TrainConfig(**SMALL, threads=1, engine="torch", device="cpu")
    before = torch.get_num_threads()
    train(corpus, model.ModelConfig(corpus.vocab.size, 16, 1), cfg, tmp_path / "t.safetensors", on_event)
    assert seen == [1] * SMALL["max_steps"]
    assert reports == [events.ThreadsChanged(old=None, new=1, why="--threads")]
    assert torch.get_num_threads() == before
