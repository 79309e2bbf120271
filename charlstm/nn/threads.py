"""How many threads the BLAS and the numba kernels compute on, chosen while a run goes.

A BLAS that runs one thread per core stalls when other work keeps the cores busy: each product
waits for the thread that has no core, and OpenBLAS's threads spin while they wait (on a 2-core
machine with another process on ~1.4 cores, a small model trained 18× slower on two threads than
on one). So a run starts on the cores that other processes leave free now (a tenth of a second of
/proc/stat: `first_count`), and a `Tuner`, told the seconds of every step, keeps the count that
suits the machine as it is now:

- every second it reads how much of the usable cores other processes take (Linux: /proc/stat,
  less this process's own CPU time) and drops at once to the cores they leave free;
- when more cores are free than it uses, it times a few steps on the larger count against the
  current one, alternately, and keeps the faster by their medians (a step twice as slow as the
  other ends the trial at once, so a wrong guess costs one step);
- without that reading (other systems; a container's CPU quota), it times one thread against
  all every PROBE_EVERY seconds, the wait doubling while nothing changes, and at once when its
  threads stop getting the CPU time they should.

An explicit count wins and is never changed: `--threads N`, or OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS or OMP_NUM_THREADS in the environment (the BLAS read it when they loaded; the
numba kernels follow it). The count does not change the math, but OpenBLAS splits some products
at other places on another count, which can change their rounding: results agree to float
rounding, and to the bit at a fixed count.

The tuner is engine-agnostic: it calls a `set_threads(n)` it is given (`numpy_threads` here; the
torch engine on a CPU gives one that sets `torch.set_num_threads` too: `torch_engine.cpu_threads`). threadpoolctl is
imported only when a run starts.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from statistics import median
from typing import TypeVar

ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
START_SAMPLE = 0.1  # seconds of /proc/stat read before a run's first count
SAMPLING_BLOCK = 64  # sampled characters per step the tuner times (one is ~0.1–0.5 ms: too short alone)
NUMBA_MODULE = "charlstm.nn.kernels.numba_impl"

Report = Callable[[int | None, int, str], None]  # (old count or None at the start, new count, why)
T = TypeVar("T")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, within a container's CPU quota."""
    cores = len(affinity())
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cpu_quota() -> float | None:
    """A cgroup's CPU quota in cores (`docker --cpus 2`: 2.0), or None when there is none."""
    for path, parse in (
        ("/sys/fs/cgroup/cpu.max", lambda s: s.split()),  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda s: [s.strip(), _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")]),
    ):
        text = _read(path)
        if text:
            try:
                quota, period = (float(x) for x in parse(text))
            except (TypeError, ValueError):  # "max", a missing period
                return None
            return quota / period if quota > 0 and period > 0 else None
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def from_environment() -> tuple[str, int | None] | None:
    """The first of ENV_VARS that is set, and its count (None if it is not a number), or None."""
    for name in ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            head = value.split(",")[0]  # OMP_NUM_THREADS may list counts per nesting level
            return name, int(head) if head.isdigit() and int(head) > 0 else None
    return None


class OtherLoad:
    """The CPU time other processes (and a hypervisor's steal) took from the usable cores since
    the last call, in cores (1.0: one core kept busy), from /proc/stat less this process's own CPU
    time. `available()` is False where it cannot be read, or where it means nothing for this
    process (a CPU quota: the other processes are then the host's)."""

    def __init__(
        self,
        cpus: set[int],
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.process_time,
        path: str = "/proc/stat",
    ) -> None:
        self.names = {f"cpu{k}" for k in cpus}
        self.clock, self.cpu_clock, self.path = clock, cpu_clock, path
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = self._sample()

    def available(self) -> bool:
        return self.last is not None and cpu_quota() is None

    def _sample(self) -> tuple[float, float, float] | None:
        """(wall seconds, busy seconds of the usable cores, this process's CPU seconds)."""
        text = _read(self.path)
        busy = 0
        for line in text.splitlines():
            name, _, rest = line.partition(" ")
            if name in self.names:
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in rest.split()[:8])
                busy += user + nice + system + irq + softirq + steal
        return (self.clock(), busy / self.hz, self.cpu_clock()) if busy else None

    def __call__(self) -> float | None:
        now = self._sample()
        if now is None or self.last is None:
            return None
        (t0, busy0, own0), (t1, busy1, own1) = self.last, now
        self.last = now
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0) if t1 > t0 else None


class Tuner:
    """Keeps the thread count that steps fastest on the machine as it is now (see the module's
    docstring). `after_step(seconds)` is its one hook: call it after every training step (or
    every block of sampled characters) with that step's seconds.

    set_threads: applies a count. cores: the most it may use. start: the count to begin with.
    report(old, new, why): told of every change. load: the other processes' load in cores since
    its last call (`OtherLoad`), or None to time one thread against all instead.
    fixed: never change the count (an explicit setting). clock, cpu_clock: wall and process
    CPU seconds (tests inject them)."""

    TRIAL_STEPS = 3  # steps on each count in a trial
    FIRST_CHECK = 0.2  # seconds after the warm-up step: the first reading of the load
    CHECK_EVERY = 1.0  # seconds between readings after that
    PROBE_EVERY = 30.0  # seconds between timed trials without a load reading (doubling, up to MAX_WAIT)
    MAX_WAIT = 600.0
    DECISIVE = 2.0  # one count this many times as slow as the other ends a trial early
    MARGIN = 0.05  # a new count must step this much faster to be taken
    SHARE_DROP = 0.6  # CPU time per thread below this fraction of the usual: the threads lack cores

    def __init__(
        self,
        set_threads: Callable[[int], None],
        cores: int,
        start: int = 1,
        report: Report | None = None,
        load: Callable[[], float | None] | None = None,
        fixed: bool = False,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.set_threads, self.cores, self.threads = set_threads, cores, start
        self.report = report or (lambda old, new, why: None)
        self.load, self.fixed = load, fixed or cores <= 1
        self.clock, self.cpu_clock = clock, cpu_clock
        self.steps = self.readings = 0
        self.checked = self.mark_cpu = 0.0
        self.votes = 0  # consecutive readings that wanted more threads
        self.wait = self.PROBE_EVERY
        self.next_trial = 0.0  # clock() before which no trial starts
        self.usual_share: float | None = None  # CPU seconds per thread per second, as usual at this count
        self.trial: list[int] = []  # the counts of the coming trial steps
        self.times: dict[int, list[float]] = {}
        set_threads(start)

    @classmethod
    def off(cls) -> Tuner:
        """A tuner that never changes anything."""
        return cls(lambda n: None, 1, fixed=True)

    def after_step(self, seconds: float) -> None:
        """Book a step of `seconds` on the current count; maybe change the count for the next."""
        if self.fixed:
            return
        if self.trial:
            self._trial_step(seconds)
            return
        self.steps += 1
        if self.steps == 1:  # the warm-up step pays one-time costs: readings start after it
            self._mark()
            return
        now = self.clock()
        if now - self.checked >= (self.CHECK_EVERY if self.readings else self.FIRST_CHECK):
            self._check(now)

    def _mark(self) -> None:
        self.checked, self.mark_cpu = self.clock(), self.cpu_clock()

    def _check(self, now: float) -> None:
        share = (self.cpu_clock() - self.mark_cpu) / ((now - self.checked) * self.threads)
        other = self.load() if self.load is not None else None
        self.readings += 1
        self._mark()
        if other is not None:
            free = min(self.cores, max(1, int(self.cores - other + 0.5)))  # a thread needs half a core free
            if free < self.threads:
                return self._change(free, f"other processes keep {other:.1f} of the {self.cores} cores busy")
            if self.readings == 1 and self.threads > 1:  # started on several: do they step faster than one?
                return self._start_trial(1)
            self.votes = self.votes + 1 if free > self.threads else 0
            if self.votes >= 2 and now >= self.next_trial:  # two readings in a row: not a lull
                self._start_trial(free)
            return
        if self.usual_share is None:
            self.usual_share = share
        starved = self.threads > 1 and share < self.SHARE_DROP * self.usual_share
        if starved or now >= self.next_trial:
            self._start_trial(1 if self.threads > 1 else self.cores)

    def _start_trial(self, challenger: int) -> None:
        """Time the next steps on `challenger` threads and on the current count, alternately."""
        self.votes = 0
        self.trial = [challenger, self.threads] * self.TRIAL_STEPS
        self.times = {challenger: [], self.threads: []}
        self.set_threads(challenger)

    def _trial_step(self, seconds: float) -> None:
        ran = self.trial.pop(0)
        self.times[ran].append(seconds)
        challenger, incumbent = self.times
        if len(self.times[challenger]) == len(self.times[incumbent]):  # a pair done
            a, b = median(self.times[challenger]), median(self.times[incumbent])
            if not self.trial or max(a, b) >= self.DECISIVE * min(a, b):
                self.trial = []
                return self._end_trial(challenger, incumbent, a, b)
        self.set_threads(self.trial[0])

    def _end_trial(self, challenger: int, incumbent: int, a: float, b: float) -> None:
        if a < (1 - self.MARGIN) * b:
            self.wait = self.PROBE_EVERY
            more = "thread" if challenger == 1 else "threads"
            self._change(challenger, f"{challenger} {more} stepped {b / a:.1f}× faster")
        else:
            self.wait = min(2 * self.wait, self.MAX_WAIT)
            self.set_threads(incumbent)
        self.next_trial = self.clock() + self.wait
        self.usual_share = None
        self._mark()

    def _change(self, threads: int, why: str) -> None:
        old, self.threads = self.threads, threads
        self.set_threads(threads)
        self.usual_share = None
        self.report(old, threads, why)


def numpy_threads() -> Callable[[int], None]:
    """The NumPy engine's set-threads: the BLAS's thread pools (through threadpoolctl) and the
    numba kernels' threads, when they are loaded."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")

    def set_threads(n: int) -> None:
        blas.limit(limits=n)
        numba = sys.modules.get(NUMBA_MODULE)
        if numba is not None:
            numba.set_threads(n)

    return set_threads


TORCH_DEFAULT: list[int] = []  # PyTorch's own count, before a run first set it (`as_before` puts it back)
"""Kept by the torch engine's set-threads (`torch_engine.cpu_threads`); this module never imports torch."""


def numba_follows(n: int | None) -> None:
    """The numba kernels to `n` threads (when numba is loaded and NUMBA_NUM_THREADS unset)."""
    numba = sys.modules.get(NUMBA_MODULE)
    if n is not None and numba is not None and not os.environ.get("NUMBA_NUM_THREADS"):
        numba.set_threads(n)


def tuner(
    threads: int | None,
    report: Report | None = None,
    control: Callable[[], Callable[[int], None]] | None = None,
    look: bool = True,
) -> Tuner:
    """The Tuner of a run, its first choice reported: `threads` (--threads) fixed; else a count
    in the environment (the BLAS read it when they loaded; the numba kernels follow it); else
    automatic, from the cores free now (`first_count`; `look=False`: without the START_SAMPLE
    wait, from the load average, for `sample`, whose first character should not wait).
    `control` makes the engine's set-threads (default `numpy_threads`: the NumPy engine); a count
    from the environment is applied through it too (the BLAS read it already; PyTorch may not). Call it once
    the kernels are loaded."""
    report = report or (lambda old, new, why: None)
    cores = usable_cores()
    if threads is not None:
        result = Tuner((control or numpy_threads)(), cores, threads, fixed=True)
        report(None, threads, "--threads")
        return result
    env = from_environment()
    if env is not None:
        name, n = env
        numba_follows(n)
        if control is not None and n is not None:
            control()(n)
        report(None, n or cores, name)  # a count the BLAS cannot read leaves them at their default
        return Tuner(lambda n: None, cores, n or cores, fixed=True)
    load = OtherLoad(affinity())
    reading = load if load.available() else None
    start = first_count(cores, reading if look else None)
    result = Tuner((control or numpy_threads)(), cores, start, report, reading)
    report(None, start, f"automatic: re-chosen as the load on the {cores} cores changes")
    return result


def first_count(
    cores: int, load: Callable[[], float | None] | None, sleep: Callable[[float], None] = time.sleep
) -> int:
    """The count a run starts on: the cores that other processes leave free over the next
    START_SAMPLE seconds (`load`: their load in cores since its last call, as `OtherLoad`
    reads it), a thread needing half a core; without that reading, all cores if the machine
    looks idle (`idle_now`), else one. What the cores do now, not a minute's load average:
    the user's own run that just ended keeps that above ½ for a minute."""
    if load is not None:
        sleep(START_SAMPLE)
        other = load()
        if other is not None:
            return min(cores, max(1, int(cores - other + 0.5)))
    return cores if idle_now() else 1


def idle_now() -> bool:
    """Does the machine look idle: a 1-minute load average below ½, and (Linux) no other thread
    runnable right now? Where other processes' CPU time cannot be read (`first_count`)."""
    try:
        if os.getloadavg()[0] >= 0.5:
            return False
    except (AttributeError, OSError):  # no load average (Windows)
        return False
    fields = _read("/proc/loadavg").split()  # "0.21 0.18 0.10 2/345 6789": runnable/all, this one included
    return len(fields) < 4 or int(fields[3].split("/")[0]) <= 1


def affinity() -> set[int]:
    """The CPUs this process may run on."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


@contextlib.contextmanager
def as_before() -> Iterator[None]:
    """Put the BLAS's, the numba kernels' and (when loaded) PyTorch's thread counts back as they
    were when leaving (a run in a Python session leaves the process as it found it)."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    before = blas.limit(limits=None)  # remembers each library's count
    numba = sys.modules.get(NUMBA_MODULE)
    numba_before = numba.get_threads() if numba is not None else None
    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        before.restore_original_limits()
        torch = sys.modules.get("torch")
        if torch is not None and (torch_before or TORCH_DEFAULT):
            torch.set_num_threads(torch_before or TORCH_DEFAULT[0])
        numba = sys.modules.get(NUMBA_MODULE)
        if numba is not None:
            numba.set_threads(numba_before or numba.default_threads())


def timed(steps: Iterable[T], tuner: Tuner, block: int = 1) -> Iterator[T]:
    """Yield what `steps` yields, telling `tuner` the seconds of every `block` of them (the time
    spent making them, not the time the consumer spends between them)."""
    clock = time.perf_counter
    spent, count = 0.0, 0
    iterator = iter(steps)
    while True:
        t0 = clock()
        try:
            item = next(iterator)
        except StopIteration:
            return
        spent += clock() - t0
        count += 1
        if count == block:
            tuner.after_step(spent)
            spent, count = 0.0, 0
        yield item
