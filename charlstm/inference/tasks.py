"""A trained model at work on new text: what `charlstm sample` and `charlstm eval` run.

Each reads the checkpoint (given, or the newest in ./checkpoints), checks the seed or the text
against its vocabulary, and hands back what the command renders: the stream of sampled
characters, or the score of a text (with its surprisal, for `eval --show`). What was chosen or
left out is told to `note`, one line at a time; nothing here prints. NumPy is imported when a
function is called, so that `charlstm sample` imports nothing it does not use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charlstm.config import EvalConfig, ReadConfig, SampleConfig
from charlstm.errors import CorpusError, UsageError
from charlstm.store import checkpoint as ckpt_io
from charlstm.store.runs import find_latest
from charlstm.text.reading import check_text, read_text
from charlstm.text.vocab import Vocab, describe_chars

if TYPE_CHECKING:
    from charlstm.inference.adapt import AdaptiveEvaluation
    from charlstm.inference.loss import Evaluation
    from charlstm.insight import probe
    from charlstm.store.checkpoint import Checkpoint

Note = Callable[[str], None]


@dataclass(frozen=True)
class Sampler:
    """What `sample` writes: `prefix` (the seed, unless it is not echoed), then, step by step,
    the next character of every sample ('' once a sample has stopped)."""

    prefix: str
    steps: Iterator[list[str]]


def open_sampler(cfg: SampleConfig, checkpoint: Path | None, note: Note) -> Sampler:
    """Load the model, prime it with the seed and start drawing (lazily: nothing is drawn until
    `steps` is read), on the kernels and threads `cfg` asks for."""
    path = checkpoint or find_latest()
    ckpt = ckpt_io.load(path)
    seed, echo = _seed(cfg, ckpt.vocab, note)
    if checkpoint is None:
        note(f"sampling from {path}")
    return _start(ckpt, cfg, seed, echo, note)


def sampler_for(ckpt: Checkpoint, cfg: SampleConfig, note: Note) -> Sampler:
    """`open_sampler` for a checkpoint already loaded (the Python API's `Model.stream`)."""
    seed, echo = _seed(cfg, ckpt.vocab, note)
    return _start(ckpt, cfg, seed, echo, note)


def _start(ckpt: Checkpoint, cfg: SampleConfig, seed: str, echo: bool, note: Note) -> Sampler:
    import numpy as np

    from charlstm.inference.generate import Sampling, stream_text
    from charlstm.nn import kernels, threads

    params = _adapted_to_seed(cfg, ckpt, seed, note) if cfg.adapt else ckpt.params
    sampling = Sampling(0) if cfg.greedy else Sampling(cfg.temperature, cfg.top_k, cfg.top_p)
    rng = np.random.default_rng(cfg.random_seed)
    steps = stream_text(
        params,
        ckpt.config,
        ckpt.vocab,
        seed,
        cfg.length,
        sampling,
        cfg.num_samples,
        rng,
        cfg.stop,
        kernels.for_sampling(cfg.kernels),
    )
    return Sampler(
        seed if echo else "", threads.timed(steps, threads.tuner(cfg.threads, look=False), threads.SAMPLING_BLOCK)
    )


def _adapted_to_seed(cfg: SampleConfig, ckpt: Checkpoint, seed: str, note: Note) -> dict:
    """sample --adapt: the checkpoint's weights after dynamic evaluation over the seed."""
    from charlstm.inference.adapt import adapted_params

    ids = ckpt.vocab.encode(seed)
    if len(ids) < 2:
        note("--adapt: the seed is shorter than two characters; nothing to adapt to")
        return ckpt.params
    note(
        f"adapting to the seed's {len(ids):,} characters (--adapt-lr {cfg.adapt_lr:g}, --adapt-decay {cfg.adapt_decay:g})"
    )
    return adapted_params(ckpt.params, ckpt.config, ids, cfg.adapt_window, cfg.adapt_lr, cfg.adapt_decay)


def _seed(cfg: SampleConfig, vocab: Vocab, note: Note) -> tuple[str, bool]:
    """The seed (from --seed or --seed-file) and whether to echo it; characters the model does
    not know are an error, or dropped with a note under --drop-unknown."""
    seed, echo = cfg.seed, not cfg.no_seed_echo
    if cfg.seed_file is not None:
        seed, echo = read_text(cfg.seed_file, allow_empty=True), False
    missing = vocab.unknown(seed)
    if missing and not cfg.drop_unknown:
        given = f"--seed-file {cfg.seed_file}" if cfg.seed_file is not None else "--seed"
        raise UsageError(
            f"{given} has characters not in the model's vocabulary: {describe_chars(missing)} (--drop-unknown removes them)"
        )
    if missing:
        seed = "".join(ch for ch in seed if ch in vocab)
        note(f"dropped from the seed: {describe_chars(missing)}")
    return seed, echo


@dataclass(frozen=True)
class Score:
    """`eval`'s result: the loss over the known characters of `text` (`unknown` of its characters
    were not in the vocabulary and were left out), and with --show the surprisal of the first
    --max-chars of them (None if fewer than two)."""

    path: Path
    ckpt: Checkpoint
    text: str
    result: Evaluation
    unknown: int
    shown: probe.TextIds | None = None
    surprisal: probe.Surprisal | None = None
    seconds: float = 0.0  # what the static score took
    adaptive: AdaptiveEvaluation | None = None  # eval --adapt: dynamic evaluation's score
    adaptive_seconds: float = 0.0


def score_text(
    cfg: EvalConfig,
    read: ReadConfig,
    text_file: Path,
    checkpoint: Path | None,
    note: Note,
    on_progress: Callable[[int, int], None] | None = None,
) -> Score:
    """Score `text_file` as training scores its validation split: B streams, the state carried
    across windows. `on_progress(scored, to_score)` follows a long text: first (0, characters
    known), then after every window."""
    check_text(text_file, f"to score a text with it: charlstm eval TEXT -c {text_file}")
    path = checkpoint or find_latest()
    ckpt = ckpt_io.load(path)
    if checkpoint is None:
        note(f"scoring with {path}")
    return score_with(ckpt, path, cfg, read, text_file, note, on_progress)


def score_with(
    ckpt: Checkpoint,
    path: Path,
    cfg: EvalConfig,
    read: ReadConfig,
    text_file: Path,
    note: Note,
    on_progress: Callable[[int, int], None] | None = None,
) -> Score:
    """`score_text` with a checkpoint already loaded from `path` (the Python API's `Model.evaluate`)."""
    from charlstm.inference.loss import evaluate

    text = read_text(text_file, read.encoding, read.errors)
    ids, unknown = ckpt.vocab.encode_known(text)
    if len(ids) < 2:
        raise CorpusError(f"{text_file}: fewer than two characters the model knows; nothing to score")
    passes = 2 if cfg.adapt else 1
    if on_progress is not None:
        on_progress(0, passes * len(ids))
    done = len(ids) if cfg.adapt else 0
    follow = None if on_progress is None else lambda n, total: on_progress(n, total + done)
    start = time.perf_counter()
    result = evaluate(ckpt.params, ckpt.config, ids, cfg.batch_size, cfg.seq_len, on_progress=follow)
    score = Score(path, ckpt, text, result, unknown, seconds=time.perf_counter() - start)
    if cfg.adapt:
        score = _with_adaptation(score, ids, cfg, on_progress)
    return _with_surprisal(score, cfg, note) if cfg.shows_text else score


def _with_adaptation(score: Score, ids: Any, cfg: EvalConfig, on_progress: Callable[[int, int], None] | None) -> Score:
    """eval --adapt: the same ids scored by dynamic evaluation (`inference.adapt`), after the
    static pass (whose progress, if followed, came first)."""
    from dataclasses import replace

    from charlstm.inference.adapt import evaluate_adaptive

    ckpt, static = score.ckpt, score.result.chars
    follow = None if on_progress is None else lambda n, total: on_progress(static + n, static + total)
    start = time.perf_counter()
    adaptive = evaluate_adaptive(
        ckpt.params, ckpt.config, ids, cfg.adapt_window, cfg.adapt_lr, cfg.adapt_decay, on_progress=follow
    )
    return replace(score, adaptive=adaptive, adaptive_seconds=time.perf_counter() - start)


def _with_surprisal(score: Score, cfg: EvalConfig, note: Note) -> Score:
    """eval --show: the surprisal of the first --max-chars known characters, read as one stream
    from the zero state."""
    from dataclasses import replace

    from charlstm.insight import probe

    ckpt = score.ckpt
    tx = probe.text_ids(ckpt.vocab, score.text, cfg.max_chars)
    if len(tx.ids) < 2:
        return score
    if tx.total > len(tx.ids):
        note(f"--show: the first {len(tx.ids):,} of {tx.total:,} characters (--max-chars)")
    return replace(score, shown=tx, surprisal=probe.surprisal(probe.trace(ckpt.params, ckpt.config, tx.ids), cfg.top))
