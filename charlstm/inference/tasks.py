"""A trained model at work on new text: what `charlstm sample` and `charlstm eval` run.

Each reads the checkpoint (given, or the newest in ./checkpoints), checks the seed or the text
against its vocabulary, and hands back what the command renders: the stream of sampled
characters, or the score of a text (with its surprisal, for `eval --show`). What was chosen or
left out is told to `note`, one line at a time; nothing here prints. NumPy is imported when a
function is called, so that `charlstm sample` imports nothing it does not use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from charlstm.config import EvalConfig, ReadConfig, SampleConfig
from charlstm.errors import CorpusError, UsageError
from charlstm.store import checkpoint as ckpt_io
from charlstm.store.runs import find_latest
from charlstm.text.textio import check_text, read_text
from charlstm.text.vocab import Vocab, describe_chars

if TYPE_CHECKING:
    from charlstm.inference.evaluate import Evaluation
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
    import numpy as np

    from charlstm.inference.generate import Sampling, stream_text
    from charlstm.nn import kernels, threads

    path = checkpoint or find_latest()
    ckpt = ckpt_io.load(path)
    seed, echo = _seed(cfg, ckpt.vocab, note)
    if checkpoint is None:
        note(f"sampling from {path}")
    sampling = Sampling(0) if cfg.greedy else Sampling(cfg.temperature, cfg.top_k, cfg.top_p)
    rng = np.random.default_rng(cfg.random_seed)
    steps = stream_text(
        ckpt.params,
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
    return Sampler(seed if echo else "", threads.timed(steps, threads.tuner(cfg.threads), threads.SAMPLING_BLOCK))


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
    from charlstm.inference.evaluate import evaluate

    check_text(text_file, f"to score a text with it: charlstm eval TEXT -c {text_file}")
    path = checkpoint or find_latest()
    ckpt = ckpt_io.load(path)
    if checkpoint is None:
        note(f"scoring with {path}")
    text = read_text(text_file, read.encoding, read.errors)
    ids, unknown = ckpt.vocab.encode_known(text)
    if len(ids) < 2:
        raise CorpusError(f"{text_file}: fewer than two characters the model knows; nothing to score")
    if on_progress is not None:
        on_progress(0, len(ids))
    result = evaluate(ckpt.params, ckpt.config, ids, cfg.batch_size, cfg.seq_len, on_progress=on_progress)
    score = Score(path, ckpt, text, result, unknown)
    return _with_surprisal(score, cfg, note) if cfg.shows_text else score


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
