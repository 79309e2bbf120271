"""README.md's "From Python" section: every python block in it runs, in order, in one namespace,
on a small text in a temporary folder. The one change: each `charlstm.train(...)` call also gets
max_steps=3 and the NumPy kernels (so that `max_minutes=5` takes seconds); the model, its
file names and every other call are README's own."""

from __future__ import annotations

import re

import charlstm

from helpers import PANGRAMS, ROOT

SECTION = "## From Python"


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start : end if end != -1 else None], flags=re.DOTALL)


def short_train(*args, **options):
    """charlstm.train as README calls it, ended after 3 steps."""
    return charlstm.train(*args, **{**options, "max_steps": 3, "kernels": "numpy"})


def test_the_from_python_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks()
    assert len(blocks) >= 2 and sum(b.count("charlstm.train(") for b in blocks) >= 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.txt").write_text(PANGRAMS * 80, encoding="utf-8")
    (tmp_path / "held-out.txt").write_text(PANGRAMS * 4, encoding="utf-8")
    namespace: dict = {"short_train": short_train}
    for block in blocks:
        exec(compile(block.replace("charlstm.train(", "short_train("), "README.md", "exec"), namespace)
    out = capsys.readouterr()
    model = namespace["model"]
    assert (
        isinstance(model, charlstm.Model)
        and model.path.resolve() == tmp_path.resolve() / "checkpoints" / "book.safetensors"
    )
    assert "bits/char over" in out.out and (tmp_path / "book.html").is_file()
    assert "charlstm train" in out.err  # the progress showed
    assert "did you mean hidden_size?" in out.out  # the error block caught the CLI's message
