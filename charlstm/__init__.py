"""charlstm: a character-level LSTM text generator, written by hand in NumPy.

The public API, for use from Python:

    from charlstm import Corpus, ModelConfig, TrainConfig, train, load_checkpoint, generate
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
