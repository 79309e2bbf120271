"""charlstm: a character-level LSTM text generator, written by hand in NumPy.

The public API, for use from Python:

    from charlstm import load_corpus, ModelConfig, TrainConfig, plan_run, train_plan, load_checkpoint, sample

    from charlstm.training import loop as train

    corpus = load_corpus("corpora/lighthouse.txt")
    train(corpus, ModelConfig(corpus.vocab.size), TrainConfig(epochs=2), Path("checkpoints/l.safetensors"))
    ckpt = load_checkpoint("checkpoints/l.safetensors")
    print(sample(ckpt.params, ckpt.config, ckpt.vocab, seed="The", length=200)[0])

    # or decide as `charlstm train` does (fresh / resume / init-from, batch size), then train:
    train_plan(plan_run(Path("corpora/lighthouse.txt"), {"hidden_size": 128}, {"epochs": 2}))

Names are imported on first use, so `import charlstm` (and `charlstm --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Corpus": ("charlstm.text.corpus", "Corpus"),
    "Vocab": ("charlstm.text.vocab", "Vocab"),
    "load_corpus": ("charlstm.text.corpus", "load_corpus"),
    "ModelConfig": ("charlstm.config", "ModelConfig"),
    "TrainConfig": ("charlstm.config", "TrainConfig"),
    "train": ("charlstm.training.loop", "train"),
    "plan_run": ("charlstm.training.plan", "plan_run"),
    "train_plan": ("charlstm.training.loop", "train_plan"),
    "Checkpoint": ("charlstm.store.checkpoint", "Checkpoint"),
    "load_checkpoint": ("charlstm.store.checkpoint", "load"),
    "save_checkpoint": ("charlstm.store.checkpoint", "save"),
    "sample": ("charlstm.inference.generate", "sample"),
    "evaluate": ("charlstm.inference.evaluate", "evaluate"),
    "CharLSTMError": ("charlstm.errors", "CharLSTMError"),
    "ReportConfig": ("charlstm.config", "ReportConfig"),
    "write_report": ("charlstm.insight.report", "write_report"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'charlstm' has no attribute {name!r}")
