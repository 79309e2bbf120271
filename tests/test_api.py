"""The Python API (charlstm.api): train, load and Model, with the command line's options as
keywords, its errors, its display, and the older `train(corpus, config, cfg, path)` beside it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

import charlstm
from charlstm.api import keywords

from helpers import PANGRAMS, ROOT, run_cli

# the smallest real run, as helpers.TINY_RUN on the command line
TINY = {"hidden_size": 16, "layers": 1, "batch_size": 4, "seq_len": 16, "sample_length": 0, "kernels": "numpy"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained through charlstm.train, quietly, and the text it was trained on."""
    work = tmp_path_factory.mktemp("api")
    corpus = work / "book.txt"
    corpus.write_text(PANGRAMS * 40, encoding="utf-8")
    model = charlstm.train(corpus, max_steps=40, out=work / "book.safetensors", quiet=True, **TINY)
    return work, corpus, model


def test_train_returns_the_model_it_wrote(trained):
    work, corpus, model = trained
    assert isinstance(model, charlstm.Model)
    assert model.path == work / "book.safetensors" and model.path.is_file()
    assert (work / "book.resume.safetensors").is_file()
    assert model.finished.reason == "max_steps" and model.finished.step == 40
    assert (model.config.hidden_size, model.config.num_layers, model.config.cell) == (16, 1, "lstm")
    assert model.corpus == "book" and model.steps == 40 and model.history
    assert model.best_bits_per_char == pytest.approx(model.history[-1]["val_bpc"])
    assert "".join(model.vocab.chars) == "".join(sorted(set(PANGRAMS)))


def test_repr_and_the_jupyter_summary(trained):
    _, _, model = trained
    text = repr(model)
    for fragment in ("1×16 LSTM", f"{model.num_params:,} parameters", "trained on book for 40 steps", "bits/char"):
        assert fragment in text, text
    page = model._repr_html_()
    assert page.startswith("<table>") and "1×16 LSTM" in page and f"{model.best_bits_per_char:.3f}" in page


def test_sample_is_a_str_that_starts_with_the_seed(trained):
    _, _, model = trained
    text = model.sample("The", length=50, temperature=0.8, random_seed=7)
    assert isinstance(text, str) and text.startswith("The") and len(text) == 53
    assert model.sample("The", length=50, temperature=0.8, random_seed=7) == text  # same seed, same text
    assert set(text) <= set(PANGRAMS)
    greedy = model.sample("The quick", length=20, greedy=True)
    assert greedy == model.sample("The quick", length=20, greedy=True)


def test_stream_yields_the_sample_piece_by_piece(trained):
    _, _, model = trained
    pieces = list(model.stream("The", length=30, random_seed=3))
    assert pieces[0] == "The" and all(len(p) == 1 for p in pieces[1:]) and len(pieces) == 31
    assert "".join(pieces) == model.sample("The", length=30, random_seed=3)
    stopped = "".join(model.stream("T", length=500, stop=" ", random_seed=3))
    assert stopped.endswith(" ") and " " not in stopped[:-1]


def test_sampling_leaves_the_sessions_thread_count_as_it_was(trained):
    from threadpoolctl import threadpool_info

    _, _, model = trained
    before = [(pool["internal_api"], pool["num_threads"]) for pool in threadpool_info()]
    assert before, "no BLAS thread pool to watch"
    other = 2 if before[0][1] == 1 else 1
    assert model.sample("The", length=20, threads=other)
    stream = model.stream("The", length=20, threads=other)
    next(stream)
    del stream  # dropped half-way
    assert [(pool["internal_api"], pool["num_threads"]) for pool in threadpool_info()] == before


def test_sample_matches_the_command_line(trained):
    work, _, model = trained
    result = run_cli("sample", "-c", str(model.path), "--seed", "The", "-n", "40", "--random-seed", "11")
    assert result.returncode == 0, result.stderr
    assert result.stdout == model.sample("The", length=40, random_seed=11) + "\n"


def test_evaluate_scores_as_the_command_line_does(trained):
    work, corpus, model = trained
    held = work / "held-out.txt"
    held.write_text(PANGRAMS * 3 + "€", encoding="utf-8")
    score = model.evaluate(held, batch_size=4)
    result = run_cli("eval", str(held), "-c", str(model.path), "-B", "4", "--json")
    assert result.returncode == 0, result.stderr
    cli = json.loads(result.stdout)
    assert score.nats_per_char == pytest.approx(cli["loss"], rel=1e-9)
    assert score.bits_per_char == pytest.approx(cli["bits_per_char"], rel=1e-9)
    assert score.perplexity == pytest.approx(cli["perplexity"], rel=1e-9)
    assert (score.chars, score.scored, score.unknown) == (cli["chars"], cli["chars_evaluated"], 1)


def test_report_writes_the_page(trained):
    work, _, model = trained
    page = model.report(work / "page.html", max_chars=300, positions=4)
    assert page == work / "page.html"
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") or html.lstrip().lower().startswith("<!doctype html>")
    assert "book" in html
    assert model.report(max_chars=300, positions=4) == work / "book.report.html"  # the CLI's default place


def test_load_reads_a_checkpoint_and_defaults_to_the_newest(trained, tmp_path, monkeypatch):
    work, _, model = trained
    again = charlstm.load(model.path)
    assert repr(again) == repr(model) and again.finished is None
    assert again.sample("The", length=20, random_seed=1) == model.sample("The", length=20, random_seed=1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "x.safetensors").write_bytes(model.path.read_bytes())
    assert charlstm.load().path == Path("checkpoints/x.safetensors")


def test_the_keywords_are_the_long_options_of_charlstm_train():
    import typer

    from charlstm.cli.app import app

    command = typer.main.get_command(app).commands["train"]
    options = {
        next(o for o in p.opts if o.startswith("--"))[2:].replace("-", "_")
        for p in command.params
        if p.param_type_name == "option"
    }
    assert options <= set(keywords.TRAIN)
    extra = set(keywords.TRAIN) - options
    assert all(keywords.TRAIN[name].group == "train" for name in extra), extra  # config fields with no option


@pytest.mark.parametrize(
    "options, cli",
    [
        ({"max_minutes": -1}, ["--max-minutes", "-1"]),
        ({"cell": "lstmm"}, ["--cell", "lstmm"]),
        ({"layers": 0}, ["--layers", "0"]),
        ({"val_fraction": 0.9}, ["--val-fraction", "0.9"]),
        ({"adam_beta1": 0.5, "optimizer": "sgd"}, ["--adam-beta1", "0.5", "--optimizer", "sgd"]),
        ({"resume": "x.resume.safetensors", "fresh": True}, ["--resume", "x.resume.safetensors", "--fresh"]),
        ({"sample_seed": "Zü"}, ["--sample-seed", "Zü"]),
        ({"batch_size": 500, "seq_len": 100}, ["--batch-size", "500", "--seq-len", "100"]),
    ],
    ids=["range", "choice", "size", "fraction", "adam-betas", "resume-fresh", "sample-seed", "too-short"],
)
def test_a_bad_option_is_the_command_lines_one_line_error(tmp_path, options, cli):
    from charlstm.errors import UsageError

    corpus = tmp_path / "book.txt"
    corpus.write_text(PANGRAMS * 20, encoding="utf-8")
    result = run_cli("train", str(corpus), *cli, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    with pytest.raises(charlstm.CharLSTMError) as caught:
        charlstm.train(corpus, **options, out=tmp_path / "checkpoints" / "book.safetensors", quiet=True)
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == result.returncode
    assert result.stderr.strip().removesuffix("; see charlstm train --help") == f"error: {caught.value}"


def test_a_missing_corpus_is_the_command_lines_error(tmp_path):
    from charlstm.errors import CorpusError

    result = run_cli("train", str(tmp_path / "nope.txt"))
    with pytest.raises(CorpusError) as caught:
        charlstm.train(tmp_path / "nope.txt")
    assert result.stderr.strip() == f"error: {caught.value}"


@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda c: charlstm.train(c, hidden_sise=64), ["no option 'hidden_sise'", "did you mean hidden_size?"]),
        (lambda c: charlstm.train(c, num_layers=3), ["no option 'num_layers'", "did you mean layers?"]),
        (lambda c: charlstm.train(c, seed=3), ["no option 'seed'", "random_seed"]),
        (lambda c: charlstm.train(c, max_minutes="5"), ["max_minutes='5' is not a number"]),
        (lambda c: charlstm.train(c, layers=2.5), ["layers=2.5 is not a whole number"]),
        (lambda c: charlstm.train(c, hidden_size=True), ["hidden_size=True is not a whole number"]),
        (lambda c: charlstm.train(c, fresh="yes"), ["fresh='yes' is not True or False"]),
        (lambda c: charlstm.train(c, 64), ["options as keywords"]),
        (lambda c: charlstm.train(42), ["the corpus must be a text file's path"]),
        (lambda c: charlstm.train(), ["give a corpus file to train on"]),
    ],
    ids=[
        "misspelt",
        "field-name",
        "seed",
        "str-for-float",
        "float-for-int",
        "bool-for-int",
        "str-for-bool",
        "positional",
        "corpus-type",
        "no-corpus",
    ],  # fmt: skip
)
def test_unknown_or_mistyped_keywords_are_usage_errors(tmp_path, call, fragments):
    from charlstm.errors import UsageError

    corpus = tmp_path / "book.txt"
    corpus.write_text(PANGRAMS, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        call(corpus)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)
    assert not (tmp_path / "checkpoints").exists()


def test_model_methods_check_their_keywords(trained):
    from charlstm.errors import UsageError

    _, _, model = trained
    cases = [
        (lambda: model.sample("The", num_samples=2), "no option 'num_samples'"),
        (lambda: model.sample("The", lenght=2), "did you mean length?"),
        (lambda: model.sample("The", temperature=0), "--temperature must be > 0"),
        (lambda: model.sample("zebra€"), "not in the model's vocabulary: '€'"),
        (lambda: model.stream("The", top_p=2.0), "--top-p must be in (0, 1]"),
        (lambda: model.evaluate("held.txt", show=True), "no option 'show'"),
        (lambda: model.report(top=0), "--top must be at least 1"),
        (lambda: model.report(find="("), "is not a valid regular expression"),
    ]
    for call, fragment in cases:
        with pytest.raises(UsageError) as caught:
            call()
        assert fragment in str(caught.value), (fragment, str(caught.value))


def test_the_traceback_starts_at_the_front_door(tmp_path):
    """The error names the user's call: no frames from inside charlstm below the front door."""
    with pytest.raises(charlstm.CharLSTMError) as caught:
        charlstm.train(tmp_path / "nope.txt")
    frames = [f.filename for f in traceback.extract_tb(caught.value.__traceback__)]
    inside = [f for f in frames if str(ROOT / "charlstm") in f]
    assert inside and all(f.endswith(("api/fitting.py", "api/trained.py")) for f in inside), frames
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_drop_unknown_is_a_warning(trained):
    _, _, model = trained
    with pytest.warns(UserWarning, match="dropped from the seed: '€'") as caught:
        text = model.sample("The€", length=5, drop_unknown=True)
    assert text.startswith("The") and len(text) == 8
    assert caught[0].filename == __file__  # attributed to the caller's line


def test_the_progress_shows_unless_quiet(tmp_path, capsys):
    corpus = tmp_path / "book.txt"
    corpus.write_text(PANGRAMS * 40, encoding="utf-8")
    charlstm.train(corpus, max_steps=5, out=tmp_path / "a.safetensors", **TINY)
    shown = capsys.readouterr()
    assert "charlstm train" in shown.err and "training reached --max-steps" in shown.err and shown.out == ""
    charlstm.train(corpus, max_steps=5, out=tmp_path / "b.safetensors", quiet=True, **TINY)
    assert capsys.readouterr() == ("", "")


def test_quiet_imports_no_rich_and_the_front_door_no_numpy(tmp_path):
    corpus = tmp_path / "book.txt"
    corpus.write_text(PANGRAMS * 40, encoding="utf-8")
    code = (
        "import sys, charlstm\n"
        "charlstm.train, charlstm.load, charlstm.Model\n"
        "assert 'numpy' not in sys.modules, 'numpy'\n"
        f"m = charlstm.train({str(corpus)!r}, max_steps=3, quiet=True, **{TINY!r})\n"
        "m.sample('The', length=10)\n"
        "print(sorted(n for n in sys.modules if n == 'rich' or n.startswith(('rich.', 'typer'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]" and result.stderr == ""


def test_log_json_resume_and_fresh_as_keywords(tmp_path):
    corpus = tmp_path / "book.txt"
    corpus.write_text(PANGRAMS * 40, encoding="utf-8")
    out = tmp_path / "m.safetensors"
    log = tmp_path / "log.jsonl"
    first = charlstm.train(corpus, max_steps=10, out=out, log_json=log, quiet=True, **TINY)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["type"] == "header" and records[-1]["type"] == "end" and first.finished.step == 10
    with pytest.raises(charlstm.CharLSTMError, match="exists from an earlier run"):
        charlstm.train(corpus, max_steps=10, out=out, quiet=True, **TINY)
    resumed = charlstm.train(resume=tmp_path / "m.resume.safetensors", max_steps=20, quiet=True)
    assert resumed.finished.step == 20 and resumed.path == out
    fresh = charlstm.train(corpus, max_steps=5, out=out, fresh=True, quiet=True, **TINY)
    assert fresh.finished.step == 5


def test_the_older_train_signature_still_works(tmp_path):
    """`train(corpus, ModelConfig, TrainConfig, path)` with a loaded Corpus: the loop's train, as before."""
    from charlstm import ModelConfig, TrainConfig, load_checkpoint, load_corpus, sample, train
    from charlstm.training.events import Finished, Started

    path = tmp_path / "book.txt"
    path.write_text(PANGRAMS * 40, encoding="utf-8")
    corpus = load_corpus(path)
    seen = []
    cfg = TrainConfig(max_steps=5, batch_size=4, seq_len=16, sample_length=0, kernels="numpy")
    finished = train(corpus, ModelConfig(corpus.vocab.size, 16, 1), cfg, tmp_path / "old.safetensors", seen.append)
    assert isinstance(finished, Finished) and finished.step == 5 and any(isinstance(e, Started) for e in seen)
    ckpt = load_checkpoint(tmp_path / "old.safetensors")
    assert sample(ckpt.params, ckpt.config, ckpt.vocab, seed="The", length=10)[0].startswith("The")
    keyworded = charlstm.train(
        corpus=corpus, config=ModelConfig(corpus.vocab.size, 16, 1), cfg=cfg, model_path=tmp_path / "kw.safetensors"
    )
    assert isinstance(keyworded, Finished)


def test_ctrl_c_stops_after_the_step_and_returns_the_model(tmp_path):
    corpus = tmp_path / "book.txt"
    corpus.write_text(PANGRAMS * 40, encoding="utf-8")
    code = (
        "import charlstm\n"
        f"m = charlstm.train({str(corpus)!r}, max_minutes=5, log_every=1, **{TINY!r})\n"
        "print(m.finished.reason, m.path.is_file(), flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stderr:  # plain lines: one per step
            if line.startswith("step "):
                break
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "interrupted True"
    assert "stopping after this step" in err and "Traceback" not in err
