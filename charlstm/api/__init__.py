"""The front door for Python: train, load, and the Model they return.

    import charlstm
    model = charlstm.train("book.txt", max_minutes=5)        # `charlstm train`'s options as keywords
    print(model.sample("The", length=300, temperature=0.8))
    model = charlstm.load("checkpoints/book.safetensors")
    score = model.evaluate("held-out.txt")                    # .nats_per_char, .bits_per_char, .perplexity

    keywords.py   the commands' long options as Python keywords, checked as the CLI checks them
    model.py      Model (sample, stream, evaluate, report; its summary in Jupyter), Score, load
    training.py   train: planned and trained by the CLI's calls, shown by the CLI's display

The library's lower-level functions (`charlstm.plan_run`, `charlstm.sample`, ...) stay as they
were; this package only puts them behind one object. No NumPy until a function is called.
"""

from charlstm.api.fitting import train
from charlstm.api.trained import Model, Score, load

__all__ = ["Model", "Score", "load", "train"]
