"""Where a corpus comes from: a folder of .txt files, several files, a pipe — in the library and
through `charlstm train`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from charlstm.store import checkpoint
from charlstm.text.corpus import SEPARATOR, load_corpus
from charlstm.training.state import corpus_fingerprint

from helpers import PANGRAMS, TINY_RUN, assert_clean_error, run_cli

FAST = TINY_RUN


@pytest.fixture
def books(tmp_path):
    """A folder of three .txt files of different lengths (and a file that is not .txt)."""
    folder = tmp_path / "books"
    (folder / "more").mkdir(parents=True)
    (folder / "a.txt").write_text("Alpha and apples. " * 120, encoding="utf-8")
    (folder / "b.txt").write_text(PANGRAMS * 20, encoding="utf-8")
    (folder / "more" / "c.txt").write_text("Cold coffee, cosy cats. " * 60, encoding="utf-8")
    (folder / "notes.md").write_text("not part of the corpus: ~", encoding="utf-8")
    return folder


def test_a_folder_is_one_corpus_and_each_file_gives_its_tail_to_validation(books):
    corpus = load_corpus(books, val_fraction=0.1)
    texts = [(books / name).read_text(encoding="utf-8") for name in ("a.txt", "b.txt", "more/c.txt")]
    assert [f.name for f in corpus.files] == ["a.txt", "b.txt", "c.txt"] and corpus.name == "books"
    assert SEPARATOR in corpus.vocab.chars and "~" not in corpus.vocab.chars  # .txt files only
    train, val = corpus.split(0.1)
    cuts = [len(t) - round(len(t) * 0.1) for t in texts]
    assert corpus.vocab.decode(train) == SEPARATOR.join(t[:c] for t, c in zip(texts, cuts))
    assert corpus.vocab.decode(val) == SEPARATOR.join(t[c:] for t, c in zip(texts, cuts))


def test_several_files_and_the_fingerprint_covers_every_file(books):
    files = [books / "a.txt", books / "b.txt"]
    corpus = load_corpus(files)
    assert corpus.name == "a+1" and len(corpus.files) == 2
    before = corpus_fingerprint(corpus)
    assert before["files"] == [str(f.resolve()) for f in files]
    (books / "b.txt").write_text(PANGRAMS * 19 + "The end.", encoding="utf-8")  # the second file changes
    assert corpus_fingerprint(load_corpus(files))["sha256"] != before["sha256"]


def test_train_on_a_folder_resumes_and_refuses_changed_files(books, tmp_path):
    result = run_cli("train", str(books), *FAST, "--max-steps", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "books: " in result.stderr  # the banner names the folder as the corpus
    resume = tmp_path / "checkpoints" / "books-1x16.resume.safetensors"
    assert len(checkpoint.load(resume).train["corpus"]["files"]) == 3
    again = run_cli("train", "--resume", str(resume), "--max-steps", "5", cwd=tmp_path)  # the folder, found again
    assert again.returncode == 0, again.stderr
    (books / "more" / "c.txt").write_text("Cold tea. " * 140, encoding="utf-8")
    changed = run_cli("train", "--resume", str(resume), "--max-steps", "7", cwd=tmp_path)
    assert_clean_error(changed, "is not the text this run was trained on", code=2)


def test_train_on_several_files(books, tmp_path):
    result = run_cli("train", str(books / "a.txt"), str(books / "b.txt"), *FAST, "--max-steps", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "checkpoints" / "a+1-1x16.safetensors").is_file()


def test_a_folder_without_text_files(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_error(run_cli("train", "empty", cwd=tmp_path), "is a directory with no .txt files", code=1)


def test_train_from_a_pipe_reads_it_once_into_the_cache(tmp_path, tiny_text):
    """`charlstm train <(zcat book.txt.gz)`: the stream is copied into $CHARLSTM_CACHE, then
    trained on and resumed like a file."""
    (tmp_path / "book.txt").write_text(tiny_text, encoding="utf-8")
    subprocess.run(["gzip", "-k", "book.txt"], cwd=tmp_path, check=True)
    cache = tmp_path / "cache"
    command = f"{sys.executable} -m charlstm train <(zcat book.txt.gz) {' '.join(FAST)} --max-steps 3"
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "CHARLSTM_CACHE": str(cache)},
    )
    assert result.returncode == 0, result.stderr
    (copy,) = cache.glob("stream-*.txt")
    assert copy.read_text(encoding="utf-8") == tiny_text
    (model,) = (tmp_path / "checkpoints").glob("stream-*.resume.safetensors")
    resumed = run_cli("train", "--resume", str(model), "--max-steps", "5", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.load(model).train["step"] == 5


def test_an_empty_pipe_says_it_is_empty(tmp_path):
    result = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m charlstm train <(true)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "CHARLSTM_CACHE": str(tmp_path / "cache")},
    )
    assert_clean_error(result, "empty", code=1)


def test_the_stream_copy_is_exact_for_bytes_in_chunks(tmp_path):
    from charlstm.text.idcache import spool_stream

    data = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    fifo = tmp_path / "fifo"
    import os
    import threading

    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    copy = spool_stream(fifo, tmp_path / "cache")
    writer.join()
    assert copy.read_bytes() == data and copy.parent == tmp_path / "cache"
    assert spool_stream(copy) == copy  # a regular file is read where it is


def test_files_too_short_to_hold_out_validation(tmp_path):
    from charlstm.errors import CorpusError

    (tmp_path / "a.txt").write_text("ab", encoding="utf-8")
    (tmp_path / "b.txt").write_text("cd", encoding="utf-8")
    with pytest.raises(CorpusError, match="too short to hold out"):
        load_corpus(tmp_path, val_fraction=0.05)
