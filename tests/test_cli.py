"""The real command line, run as a subprocess the way a person types it."""

from __future__ import annotations

import json
import math
import re

import pytest

from helpers import ROOT, assert_clean_error, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained for 2 epochs on the English corpus the project ships, through the CLI."""
    work = tmp_path_factory.mktemp("cli")
    corpus = ROOT / "corpora" / "lighthouse.txt"
    result = run_cli("train", str(corpus), "--epochs", "2", cwd=work)  # the defaults otherwise
    assert result.returncode == 0, result.stderr
    return work, result


def test_train_writes_checkpoints_and_learns(trained):
    work, result = trained
    assert (work / "checkpoints" / "lighthouse.safetensors").is_file()
    assert (work / "checkpoints" / "lighthouse.resume.safetensors").is_file()
    info = json.loads(run_cli("inspect", "--json", cwd=work).stdout)
    V = info["config"]["vocab_size"]
    val = [h["val_loss"] for h in info["history"]]
    assert len(val) == 2 and val[1] < val[0]
    assert val[-1] < 0.6 * math.log(V), val  # well below the uniform guess, ln V
    assert "Traceback" not in result.stderr
    assert "\x1b[" not in result.stderr  # plain output when not a terminal


def test_sample_continues_the_seed_in_the_corpus_style(trained):
    work, _ = trained
    result = run_cli(
        "sample", "--seed", "The", "--length", "400", "--random-seed", "1", "--temperature", "0.7", cwd=work
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The")
    assert "checkpoints/lighthouse.safetensors" in result.stderr  # says which checkpoint, on stderr
    corpus_words = set(re.findall(r"[a-z]+", (ROOT / "corpora" / "lighthouse.txt").read_text().lower()))
    words = re.findall(r"[a-z]+", result.stdout.lower())
    real = [w for w in words if w in corpus_words]
    assert len(words) > 30 and len(real) >= 0.4 * len(words), result.stdout


def test_same_random_seed_same_text(trained):
    work, _ = trained
    a, b, c = (
        run_cli("sample", "--seed", "A", "--length", "80", "--random-seed", seed, cwd=work) for seed in ("3", "3", "4")
    )
    assert a.returncode == b.returncode == c.returncode == 0, (a.stderr, b.stderr, c.stderr)
    assert a.stdout == b.stdout and a.stdout != c.stdout


def test_inspect_table_shows_config_vocab_and_history(trained):
    work, _ = trained
    result = run_cli("inspect", cwd=work)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in (
        "2×256 LSTM",
        "lstm.weight_ih_l1",
        "head.bias",
        "vocabulary (74 characters)",
        "\\n",
        "␠",
        "history",
    ):
        assert fragment in out, (fragment, out)


def test_seed_with_unknown_characters_names_them(trained):
    work, _ = trained
    result = run_cli("sample", "--seed", "Où est 世界?", cwd=work)
    assert_clean_error(result, "'ù'", "'世'", "'界'", "vocabulary")


def test_help_documents_every_command():
    for args in ([], ["train"], ["sample"], ["inspect"]):
        result = run_cli(*args, "--help")
        assert result.returncode == 0
        assert "Usage" in result.stdout
    train_help = run_cli("train", "--help").stdout
    for option in (
        "--hidden-size",
        "--layers",
        "--seq-len",
        "--batch-size",
        "--lr",
        "--optimizer",
        "--clip",
        "--epochs",
        "--max-steps",
        "--val-fraction",
        "--random-seed",
        "--out",
    ):
        assert option in train_help, option


def test_python_dash_m_works():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("charlstm ")


@pytest.mark.parametrize(
    "make, fragments",
    [
        (lambda d: d / "missing.txt", ["no such file"]),
        (lambda d: d, ["is a directory"]),
        (lambda d: _write(d / "empty.txt", b""), ["empty"]),
        (
            lambda d: _write(d / "latin1.txt", "naïve café".encode("latin-1")),
            ["not valid utf-8", "byte offset 2", "--encoding"],
        ),
        (lambda d: _write(d / "blob.bin", b"\x7fELF\x00\x00\x01"), ["binary"]),
    ],
    ids=["missing", "directory", "empty", "not-utf8", "binary"],
)
def test_bad_corpus_is_one_clear_line(tmp_path, make, fragments):
    result = run_cli("train", str(make(tmp_path)), cwd=tmp_path)
    assert_clean_error(result, *fragments)
    assert result.returncode in (1, 2)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_sample_without_any_checkpoint(tmp_path):
    assert_clean_error(run_cli("sample", cwd=tmp_path), "no checkpoint", "charlstm train")
