"""Sampling: prime the state with a seed, then draw one character at a time, carrying (h, c).

A generator yields the ids of each step for all samples at once, so the CLI can stream text as it
is made and `num_samples` streams cost little more than one (they share every weight read).

Empty seed: the state starts at zero and the first input is a newline when the vocabulary has one
(so the text begins like the start of a line), else a space, else the first vocabulary character;
this priming character is not part of the output.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from charlstm.nn import kernels as kernels_
from charlstm.nn import model, stepping
from charlstm.nn.kernels import Kernels
from charlstm.nn.model import ModelConfig, State
from charlstm.text.corpus import Vocab

PRIME_CANDIDATES = ("\n", " ")
LONG_SEED = 1000  # characters: a longer seed is read in windows (model.forward), not stepped


def read_state(params: dict[str, np.ndarray], config: ModelConfig, ids: np.ndarray) -> State:
    """The state after reading the ids (N,) from a zero state, LONG_SEED characters per window:
    what stepping through them gives, at the speed of the batched forward pass."""
    state, cache = model.zero_state(config, 1), None
    for start in range(0, len(ids), LONG_SEED):
        _, state, cache = model.forward(
            params, config, np.asarray(ids[start : start + LONG_SEED])[:, None], state, cache
        )
    return state


def prime_ids(vocab: Vocab, seed: str) -> np.ndarray:
    """The ids fed before sampling: the seed's, or one start character for an empty seed."""
    if seed:
        return vocab.encode(seed)
    start = next((ch for ch in PRIME_CANDIDATES if ch in vocab), vocab.chars[0])
    return vocab.encode(start)


def filter_probs(
    logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> np.ndarray:
    """Sampling probabilities (B, V) from logits (B, V).

    temperature divides the logits (lower: more conservative); top_k keeps the k most likely
    characters; top_p keeps the smallest set of most likely characters whose mass reaches p
    (nucleus sampling). Filtered probabilities are renormalised. temperature 0 means greedy: all
    mass on the argmax.
    """
    logits = np.asarray(logits, dtype=np.float64)
    B, V = logits.shape
    if temperature == 0:
        probs = np.zeros((B, V))
        probs[np.arange(B), logits.argmax(axis=1)] = 1.0
        return probs
    z = logits / temperature
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k, axis=1)[:, V - top_k : V - top_k + 1]  # (B, 1)
        z = np.where(z >= kth, z, -np.inf)
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, axis=1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the more likely characters
        keep_sorted = before < top_p  # the first character is always kept
        keep = np.empty_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=1)
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum(axis=1, keepdims=True)
    return probs


def draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One id per row of probs (B, V), by inverse-CDF sampling with one uniform draw per row."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1)


def prime(
    params: dict[str, np.ndarray], config: ModelConfig, ids: np.ndarray, num_samples: int = 1
) -> tuple[np.ndarray, State]:
    """Run the seed ids (N,) through the model from a zero state. Returns the logits after the last
    seed character (num_samples, V) and the state."""
    logits, st = _prime(stepping.prepare_stepper(params, config), ids, num_samples)
    return logits.copy(), stepping.state_of(st)


def _prime(
    stepper: stepping.Stepper, ids: np.ndarray, num_samples: int, state: State | None = None
) -> tuple[np.ndarray, stepping.StepState]:
    """The seed stepped through one character at a time from `state` (default: zero), as
    sampling continues (no window buffers or weight transposes to set up, which dominate for a
    short seed). Every sample shares the seed, so it runs once and its state is copied to each."""
    st = stepping.step_state(stepper, state if state is not None else model.zero_state(stepper.config, 1))
    x = np.zeros(1, np.intp)
    for i in np.asarray(ids):
        x[0] = i
        logits = stepping.step_in_place(stepper, x, st)
    if num_samples > 1:
        st = stepping.step_state(stepper, tuple(np.repeat(s, num_samples, axis=1) for s in stepping.state_of(st)))
    return np.repeat(logits, num_samples, axis=0), st


@dataclass(frozen=True)
class Sampling:
    """How each next character is drawn from the model's distribution (see `filter_probs`)."""

    temperature: float = 1.0  # 0: greedy
    top_k: int | None = None
    top_p: float | None = None

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return filter_probs(logits, self.temperature, self.top_k, self.top_p)

    def tempered_only(self, V: int) -> bool:
        """True when only the temperature shapes the distribution (no greedy, top-k or top-p)."""
        return (
            self.temperature > 0
            and (self.top_k is None or self.top_k >= V)
            and (self.top_p is None or self.top_p >= 1.0)
        )


def drawer(sampling: Sampling, N: int, V: int, rng: np.random.Generator, kernels: Kernels | None = None):
    """A function from logits (N, V) to fresh ids (N,): `draw(sampling.probs(logits), rng)`.

    With the temperature alone (the common case) it is `kernels.softmax_draw` on buffers made
    here once: the same float64 arithmetic and the same uniform per row, so the same ids, with
    none of the copies (~3× faster at batch 1 in NumPy, a single pass with numba)."""
    if not sampling.tempered_only(V):
        return lambda logits: draw(sampling.probs(logits), rng)
    softmax_draw = (kernels or kernels_.numpy()).softmax_draw
    temperature = float(sampling.temperature)
    u, z = np.empty(N), np.empty((N, V))

    def fast(logits: np.ndarray) -> np.ndarray:
        ids = np.empty(N, np.intp)
        softmax_draw(logits, temperature, rng.random(out=u), z, ids)
        return ids

    return fast


def generate(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    vocab: Vocab,
    seed: str = "",
    length: int = 200,
    sampling: Sampling = Sampling(),
    num_samples: int = 1,
    rng: np.random.Generator | None = None,
    kernels: Kernels | None = None,
) -> Iterator[np.ndarray]:
    """Yield `length` steps of ids, each (num_samples,), continuing `seed` (not yielded). The model
    steps on `kernels` (`charlstm.nn.kernels`; None: NumPy)."""
    rng = rng if rng is not None else np.random.default_rng()
    stepper = stepping.prepare_stepper(params, config, kernels)
    ids, state = prime_ids(vocab, seed), None
    if len(ids) > LONG_SEED:  # a long text (--seed-file): read it a window at a time
        state, ids = read_state(params, config, ids[:-1]), ids[-1:]
    logits, st = _prime(stepper, ids, num_samples, state)  # st: advanced in place
    next_ids = drawer(sampling, num_samples, config.vocab_size, rng, kernels)
    for n in range(length):
        ids = next_ids(logits)
        yield ids
        if n + 1 < length:
            logits = stepping.step_in_place(stepper, ids, st)


def stream_text(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    vocab: Vocab,
    seed: str = "",
    length: int = 200,
    sampling: Sampling = Sampling(),
    num_samples: int = 1,
    rng: np.random.Generator | None = None,
    stop: str | None = None,
    kernels: Kernels | None = None,
) -> Iterator[list[str]]:
    """Yield, step by step, the next character of every sample ('' once a sample has stopped).

    A sample stops after `length` characters, or right after the `stop` string first appears in
    the generated text (the stop string is included). The seed is not yielded. `kernels` as in
    `generate`."""
    tails = [""] * num_samples
    done = [False] * num_samples
    chars = vocab.chars
    for ids in generate(params, config, vocab, seed, length, sampling, num_samples, rng, kernels):
        step = []
        for b, k in enumerate(ids):
            if done[b]:
                step.append("")
                continue
            ch = chars[int(k)]
            step.append(ch)
            if stop:
                tails[b] = (tails[b] + ch)[-len(stop) :]
                done[b] = tails[b] == stop
        yield step
        if all(done):
            return


def sample(
    params: dict[str, np.ndarray],
    config: ModelConfig,
    vocab: Vocab,
    seed: str = "",
    length: int = 200,
    sampling: Sampling = Sampling(),
    num_samples: int = 1,
    rng: np.random.Generator | None = None,
    kernels: Kernels | None = None,
) -> list[str]:
    """`num_samples` texts, each the seed followed by `length` sampled characters (`kernels` as in
    `generate`)."""
    steps = list(generate(params, config, vocab, seed, length, sampling, num_samples, rng, kernels))
    if not steps:
        return [seed] * num_samples
    ids = np.stack(steps, axis=1)  # (num_samples, length)
    return [seed + vocab.decode(row) for row in ids]
