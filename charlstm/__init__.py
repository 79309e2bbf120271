"""charlstm: a character-level LSTM text generator, written by hand in NumPy.

From Python, the front door is one object (charlstm.api):

    import charlstm

    model = charlstm.train("corpora/lighthouse.txt", max_minutes=5)   # `charlstm train`'s options as keywords
    print(model.sample("The", length=300, temperature=0.8))
    model = charlstm.load("checkpoints/lighthouse.safetensors")
    print(model.evaluate("held-out.txt").bits_per_char)

The lower-level functions stay available:

    from charlstm import load_corpus, ModelConfig, TrainConfig, plan_run, train_plan, load_checkpoint, sample, train

    corpus = load_corpus("corpora/lighthouse.txt")
    train(corpus, ModelConfig(corpus.vocab.size), TrainConfig(epochs=2), Path("checkpoints/l.safetensors"))
    ckpt = load_checkpoint("checkpoints/l.safetensors")
    print(sample(ckpt.params, ckpt.config, ckpt.vocab, seed="The", length=200)[0])

    # or decide as `charlstm train` does (fresh / resume / init-from, batch size), then train:
    train_plan(plan_run(Path("corpora/lighthouse.txt"), {"hidden_size": 128}, {"epochs": 2}))

`train` is both: given a loaded Corpus first, it is the loop's `train(corpus, config, cfg, path)`
and returns its Finished event; given a path, it is the front door's and returns a Model.
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
    "train": ("charlstm.api", "train"),
    "load": ("charlstm.api", "load"),
    "Model": ("charlstm.api", "Model"),
    "Score": ("charlstm.api", "Score"),
    "plan_run": ("charlstm.training.plan", "plan_run"),
    "train_plan": ("charlstm.training.loop", "train_plan"),
    "Checkpoint": ("charlstm.store.checkpoint", "Checkpoint"),
    "load_checkpoint": ("charlstm.store.checkpoint", "load"),
    "save_checkpoint": ("charlstm.store.checkpoint", "save"),
    "sample": ("charlstm.inference.generate", "sample"),
    "evaluate": ("charlstm.inference.loss", "evaluate"),
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
