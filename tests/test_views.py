"""The views through the real command line — `neurons`, `eval --show`, `gates`, `gradients`,
`gradcheck` — on a terminal (a pseudo-terminal: colours) and piped (plain numbers, no escape
codes), checking the numbers they print against the library and against definitions.

One small LSTM is trained on the generated bracket corpus for the whole module (about 300 steps,
a few seconds) and shared by the tests.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charlstm.inference.loss import evaluate
from charlstm.insight import probe
from charlstm.store import checkpoint

import helpers
from helpers import ROOT, random_model, run_cli

BRACKETS = ROOT / "corpora" / "brackets.txt"
ESC = "\x1b["

# Measured with the recipe of TRAIN (one layer of 32 units, 300 steps of 32 × 50 characters, lr
# 0.02 with cosine decay): the best unit's |r| with the bracket depth over the first 2000
# characters is 0.937 with seed 0 (its c counts the depth almost step for step); seeds 1–4 give
# 0.815–0.929, and a constant learning rate 0.80–0.95; an untrained model 0.38–0.50.
FIND_BRACKET_THRESHOLD = 0.8


TRAIN = """
import sys
from pathlib import Path
from charlstm.config import ModelConfig, TrainConfig
from charlstm.text.corpus import load_corpus
from charlstm.training.loop import train
corpus = load_corpus(sys.argv[1])
cfg = TrainConfig(seq_len=50, batch_size=32, lr=0.02, epochs=100, max_steps=300, dropout=0.0,
                  sample_length=0, seed=0)
train(corpus, ModelConfig(corpus.vocab.size, 32, 1), cfg, Path(sys.argv[2]))
"""


@pytest.fixture(scope="module")
def bracket_model(tmp_path_factory) -> tuple[Path, checkpoint.Checkpoint]:
    """A 1×32 LSTM trained on the bracket corpus through the Python API, in a subprocess with one
    BLAS thread: on a busy 2-core machine OpenBLAS's worker threads make these small products
    several times slower (measured: 18 s with the default threads, 3.3 s with one)."""
    path = tmp_path_factory.mktemp("views") / "brackets.safetensors"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", TRAIN, str(BRACKETS), str(path)], env=env, check=True, timeout=300)
    return path, checkpoint.load(path)


def random_checkpoint(tmp_path: Path, cell: str, text: str) -> Path:
    """A random 2×8 model of `cell` over the characters of `text`."""
    from charlstm.text.corpus import Vocab

    vocab = Vocab.from_text(text)
    config, params = random_model(vocab.size, 8, 2, dtype=np.float32, scale=0.8, cell=cell)
    return checkpoint.save(checkpoint.Checkpoint(config, vocab, params), tmp_path / f"{cell}.safetensors")


def run_tty(*args: str, cwd: Path | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run `charlstm ARGS` with stdout and stderr on a pseudo-terminal, 120 columns wide;
    returns the exit code and everything it wrote ("\\r\\n" made "\\n")."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlstm", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
    )
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 1.0)[0]:
            continue
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def assert_plain(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr
    assert ESC not in result.stdout and ESC not in result.stderr
    assert "Traceback" not in result.stderr


def first_chars(path: Path, ckpt: checkpoint.Checkpoint, n: int) -> np.ndarray:
    return probe.text_ids(ckpt.vocab, path.read_text(encoding="utf-8"), n).ids


# ------------------------------------------------------------------------------------- neurons


def test_find_bracket_finds_a_depth_counting_unit(bracket_model):
    path, ckpt = bracket_model
    result = run_cli("neurons", str(BRACKETS), "-c", str(path), "--find", "bracket", "--top", "3", "--json")
    assert_plain(result)
    out = json.loads(result.stdout)
    depth = np.array(out["feature_values"])
    assert len(depth) == 2000 and depth.max() >= 5
    best = out["units"][0]
    assert abs(best["r"]) > FIND_BRACKET_THRESHOLD, out["units"]
    assert [abs(u["r"]) for u in out["units"]] == sorted((abs(u["r"]) for u in out["units"]), reverse=True)
    for unit in out["units"]:  # each score is the Pearson r of the printed values with the feature
        assert unit["r"] == pytest.approx(np.corrcoef(unit["values"], depth)[0, 1], abs=1e-5)
    trace = probe.trace(ckpt.params, ckpt.config, first_chars(BRACKETS, ckpt, 2000))
    np.testing.assert_allclose(best["values"], trace.values(best["layer"], "c")[:, best["unit"]], atol=2e-6)


def test_find_piped_rows_and_on_a_terminal_colours(bracket_model):
    path, _ = bracket_model
    piped = run_cli("neurons", str(BRACKETS), "-c", str(path), "--find", "bracket", "--max-chars", "300")
    assert_plain(piped)
    rows = [line.split() for line in piped.stdout.splitlines() if re.match(r"\s*\d+\s+\S+\s+\d", line)]
    assert len(rows) == 300 and rows[0][0] == "0" and rows[-1][0] == "299"
    assert [r[1] for r in rows[:3]] == list(BRACKETS.read_text()[:3])
    assert "using the first 300 of 60,002 characters" in piped.stderr
    code, out = run_tty("neurons", str(BRACKETS), "-c", str(path), "--find", "bracket", "--max-chars", "300")
    assert code == 0, out
    assert ESC in out and re.search(r"\x1b\[[0-9;]*48;", out)  # background colours
    assert "#1  layer 0 unit" in out


def test_one_unit_piped_values_are_the_trace(bracket_model):
    path, ckpt = bracket_model
    result = run_cli("neurons", str(BRACKETS), "-c", str(path), "--unit", "5", "--what", "f", "--max-chars", "120")
    assert_plain(result)
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    values = np.array([float(r[-1]) for r in rows])
    trace = probe.trace(ckpt.params, ckpt.config, first_chars(BRACKETS, ckpt, 120))
    np.testing.assert_allclose(values, trace.values(0, "f")[:, 5], atol=6e-5)
    code, out = run_tty("neurons", str(BRACKETS), "-c", str(path), "--unit", "5", "--max-chars", "120")
    assert code == 0 and re.search(r"\x1b\[[0-9;]*48;", out) and "layer 0 unit 5 (c)" in out


GREY_BACKGROUNDS = {"40": 0, "100": 1, "47": 2, "107": 3}  # black, bright black, white, bright white


def test_neurons_colours_keep_their_order_on_a_16_colour_terminal(bracket_model):
    """TERM=linux has 16 colours, in no order (Rich would draw blue–white–red as cyan, white,
    bright white, bright red, yellow, red): the view falls back to a grey ramp, lighter for higher."""
    path, _ = bracket_model
    args = ("neurons", str(BRACKETS), "-c", str(path), "--unit", "5", "--max-chars", "120")
    values = json.loads(run_cli(*args, "--json").stdout)["values"]
    code, out = helpers.run_tty(*args, cwd=ROOT, columns=120, term="linux")
    assert code == 0, out
    assert "48;5;" not in out and "48;2;" not in out  # no 256 or 24-bit colours
    body = out[out.index("(c) of a 1×32 LSTM") : out.index("value  ")]
    shades = []
    for codes, glyphs in re.findall(r"\x1b\[([0-9;]*)m([^\x1b]*)", body):
        grey = [GREY_BACKGROUNDS[c] for c in codes.split(";") if c in GREY_BACKGROUNDS]
        shades += [grey[0]] * len(glyphs.replace("\r", "").replace("\n", "")) if grey else []
    assert len(shades) == len(values) == 120
    ranks = [shade for _, shade in sorted(zip(values, shades))]
    assert ranks == sorted(ranks) and len(set(ranks)) >= 2  # in order, and more than one step of it


def test_neurons_on_a_terminal_that_does_not_say_its_colours_draw_the_256_colour_ramp(bracket_model):
    """TERM=xterm without COLORTERM (most emulators, ssh, containers): Rich would take it for 16
    colours and the grey ramp shows as two; the view draws the 256-colour palette, many shades."""
    path, _ = bracket_model
    args = ("neurons", str(BRACKETS), "-c", str(path), "--unit", "5", "--max-chars", "120")
    code, out = helpers.run_tty(*args, cwd=ROOT, columns=120, term="xterm")
    assert code == 0, out
    body = out[out.index("(c) of a 1×32 LSTM") : out.index("value  ")]
    backgrounds = set(re.findall(r"48;5;(\d+)", body))
    assert len(backgrounds) >= 6, backgrounds
    assert not re.search(r"\x1b\[[0-9;]*(?<![0-9])(40|100|47|107)m", body)  # not the grey ramp


def test_a_feature_constant_over_what_was_read_says_how_to_read_more(bracket_model, tmp_path):
    """`--find` on a text whose first --max-chars characters never match (as `--find indent` on
    a text indented only further on): the message says how much was read of how much, and the
    option that reads more."""
    path, _ = bracket_model
    text = tmp_path / "late.txt"
    text.write_text("()" * 200 + "\n" + "[()]" * 20, encoding="utf-8")  # 481 characters, "[" after 400
    args = ("neurons", str(text), "-c", str(path), "--find", r"\[")
    result = run_cli(*args, "--max-chars", "300")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]  # the one error line (after the note of the cut)
    assert message.startswith("error: the feature")
    assert "first 300 characters" in message and "of 481" in message and "--max-chars" in message, message
    read_more = run_cli(*args, "--max-chars", "481", "--json")
    assert read_more.returncode == 0, read_more.stderr
    early = tmp_path / "early.txt"
    early.write_text("()" * 200, encoding="utf-8")
    plain = run_cli("neurons", str(early), "-c", str(path), "--find", r"\[")
    assert plain.returncode == 2 and "constant over this text" in plain.stderr, plain.stderr


def test_neurons_usage_errors(bracket_model, tmp_path):
    path, _ = bracket_model
    for args, fragment in ((["--unit", "99"], "--unit 99"), (["--find", "(unclosed"], "regular expression")):
        result = run_cli("neurons", str(BRACKETS), "-c", str(path), *args)
        assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr
    rnn = random_checkpoint(tmp_path, "rnn", "ab(c)\n")
    text = tmp_path / "t.txt"
    text.write_text("ab(c)\n" * 20)
    result = run_cli("neurons", str(text), "-c", str(rnn), "--unit", "2", "--json")  # default: h
    assert result.returncode == 0 and json.loads(result.stdout)["what"] == "h"


# ----------------------------------------------------------------------------------- surprisal


def test_eval_show_mean_surprisal_is_the_one_stream_loss(bracket_model, tmp_path):
    path, ckpt = bracket_model
    result = run_cli("eval", str(path), str(BRACKETS), "--show", "--max-chars", "500", "--json")
    assert_plain(result)
    shown = json.loads(result.stdout)["surprisal"]
    ids = first_chars(BRACKETS, ckpt, 500)
    expected = evaluate(ckpt.params, ckpt.config, ids, B=1).bits_per_char
    assert len(shown["bits"]) == 499
    assert float(np.mean(shown["bits"])) == pytest.approx(expected, rel=1e-5)
    assert shown["mean_bits"] == pytest.approx(expected, rel=1e-5)
    cut = tmp_path / "first500.txt"
    cut.write_text(shown["text"], encoding="utf-8")
    plain_eval = json.loads(run_cli("eval", str(path), str(cut), "-B", "1", "--json").stdout)
    assert plain_eval["bits_per_char"] == pytest.approx(shown["mean_bits"], rel=1e-5)


def test_eval_top_rows_piped_and_colours_on_a_terminal(bracket_model):
    path, _ = bracket_model
    result = run_cli("eval", str(path), str(BRACKETS), "--top", "3", "--max-chars", "200")
    assert_plain(result)
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"\s*\d+\s", line)]
    assert len(rows) == 199
    bits = np.array([float(r[2]) for r in rows])
    mean = float(re.search(r"mean ([\d.]+) bits/char", result.stdout).group(1))
    assert bits.mean() == pytest.approx(mean, abs=0.01)
    for r in rows:  # char bits g1 p1 g2 p2 g3 p3, guesses most likely first
        p = [float(x) for x in r[4::2]]
        assert len(p) == 3 and p[0] >= p[1] >= p[2]
    assert "bits per char" in result.stdout  # the usual report follows
    code, out = run_tty("eval", str(path), str(BRACKETS), "--show", "--max-chars", "200")
    assert code == 0 and re.search(r"\x1b\[[0-9;]*48;", out) and "surprisal" in out


# ------------------------------------------------------------------------------------ gates


def test_gates_fractions_equal_a_plain_count(bracket_model):
    path, ckpt = bracket_model
    result = run_cli("gates", str(BRACKETS), "-c", str(path), "--max-chars", "1000", "--json")
    assert_plain(result)
    out = json.loads(result.stdout)
    assert [g["gate"] for g in out["gates"]] == ["i", "f", "o"]
    trace = probe.trace(ckpt.params, ckpt.config, first_chars(BRACKETS, ckpt, 1000))
    for g in out["gates"]:
        values = trace.values(g["layer"], g["gate"])
        left = sum(1 for row in values for v in row if v < 0.1)
        right = sum(1 for row in values for v in row if v > 0.9)
        assert g["left_fraction"] == pytest.approx(left / values.size, abs=1e-12)
        assert g["right_fraction"] == pytest.approx(right / values.size, abs=1e-12)
    assert any(g["right_fraction"] > 0.05 for g in out["gates"])


def test_gates_table_and_chart_piped_and_on_a_terminal(bracket_model, tmp_path):
    path, _ = bracket_model
    piped = run_cli("gates", str(BRACKETS), "-c", str(path), "--max-chars", "500")
    assert_plain(piped)
    assert "left-saturated" in piped.stdout and "layer 0 f" in piped.stdout and "└─" in piped.stdout
    assert re.search(r"\d+\.\d%", piped.stdout)
    code, out = run_tty("gates", str(BRACKETS), "-c", str(path), "--max-chars", "500")
    assert code == 0 and ESC in out and "layer 0 o" in out
    text = tmp_path / "t.txt"
    text.write_text("ab(c)\n" * 20)
    rnn = run_cli("gates", str(text), "-c", str(random_checkpoint(tmp_path, "rnn", "ab(c)\n")), "--json")
    assert rnn.returncode == 0 and "no gates" in rnn.stderr
    assert [g["gate"] for g in json.loads(rnn.stdout)["gates"]] == ["h", "h"]


# ---------------------------------------------------------------------------------- gradients


def test_gradients_cli_equals_the_library(bracket_model):
    """The printed norms are the library's (which test_probe checks against finite differences)."""
    path, ckpt = bracket_model
    result = run_cli("gradients", str(BRACKETS), "-c", str(path), "-K", "12", "-P", "6", "--max-chars", "400", "--json")
    assert_plain(result)
    out = json.loads(result.stdout)
    flow = probe.gradient_flow(ckpt.params, ckpt.config, first_chars(BRACKETS, ckpt, 400), 12, 6)
    assert out["positions"] == flow.positions.tolist()
    assert out["states"] == ["h", "c"]
    np.testing.assert_allclose(out["h"], flow.mean("h"), rtol=1e-10)
    np.testing.assert_allclose(out["c"], flow.mean("c"), rtol=1e-10)
    assert np.all(np.array(out["h"])[0, 1:] < out["h"][0][0])  # nothing is as close as the present


def test_gradients_bars_piped_and_on_a_terminal(bracket_model, tmp_path):
    path, _ = bracket_model
    piped = run_cli("gradients", str(BRACKETS), "-c", str(path), "-K", "8", "-P", "4", "--max-chars", "300")
    assert_plain(piped)
    rows = [line for line in piped.stdout.splitlines() if re.match(r"\s*\d+\s+[█▏▎▍▌▋▊▉ ]", line)]
    assert len(rows) == 9 and rows[0].lstrip().startswith("0") and "█" in rows[0]
    values = [float(v) for v in re.findall(r"\d\.\d\de[-+]\d\d", rows[0])]
    assert len(values) == 2  # h and c of the one layer
    code, out = run_tty("gradients", str(BRACKETS), "-c", str(path), "-K", "8", "-P", "4", "--max-chars", "300")
    assert code == 0 and ESC in out and "per step back" in out
    text = tmp_path / "t.txt"
    text.write_text("ab(c)\n" * 20)
    rnn = json.loads(
        run_cli(
            "gradients", str(text), "-c", str(random_checkpoint(tmp_path, "rnn", "ab(c)\n")), "-K", "5", "--json"
        ).stdout
    )
    assert rnn["states"] == ["h"] and "c" not in rnn and len(rnn["h"]) == 2 and len(rnn["h"][0]) == 6


def test_gradients_of_several_models_share_one_log_scale(bracket_model, tmp_path):
    """-c twice: one scale for both (the RNN's largest norm gets no full bar of its own), one JSON
    line each, and the summary is the norm at k = K over the one at k = 0, in both."""
    path, _ = bracket_model
    rnn = random_checkpoint(tmp_path, "rnn", BRACKETS.read_text(encoding="utf-8")[:2000])
    args = ("gradients", str(BRACKETS), "-c", str(path), "-c", str(rnn), "-K", "8", "-P", "4", "--max-chars", "300")
    records = [json.loads(line) for line in run_cli(*args, "--json").stdout.splitlines()]
    assert [(r["checkpoint"], r["cell"]) for r in records] == [(str(path), "lstm"), (str(rnn), "rnn")]
    for r in records:
        for name in r["states"]:
            for norms, left in zip(r[name], r["decay"][name]):
                assert left["ratio"] == pytest.approx(norms[8] / norms[0]) and left["per_step"] == pytest.approx(
                    left["ratio"] ** (1 / 8)
                )
    piped = run_cli(*args)
    assert_plain(piped)
    assert (
        piped.stdout.count("log scale") == 1
        and f"{path}: 1×32 LSTM" in piped.stdout
        and f"{rnn}: 2×8 RNN" in piped.stdout
    )
    bars = [
        (float(v), len(b.rstrip()) * 8 - (8 - " ▏▎▍▌▋▊▉█".index(b.rstrip()[-1])) if b.strip() else 0)
        for b, v in re.findall(r"([█▏▎▍▌▋▊▉ ]+) (\d\.\d\de[-+]\d\d)", piped.stdout)
    ]
    everything = [v for r in records for name in r["states"] for layer in r[name] for v in layer]
    assert len(bars) == len(everything)
    ordered = [eighths for _, eighths in sorted(bars)]
    assert ordered == sorted(ordered)  # longer bar, larger norm: across both models
    top = max(eighths for _, eighths in bars)
    assert {f"{v:.2e}" for v, eighths in bars if eighths == top} == {f"{max(everything):.2e}"}
    for r in records:
        assert (
            f"h l0: k=8 / k=0 = {r['decay']['h'][0]['ratio']:.2e}, ×{r['decay']['h'][0]['per_step']:.3f} per step back"
            in piped.stdout
        )


# ---------------------------------------------------------------------------------- gradcheck


def test_gradcheck_passes_on_the_real_gradients():
    result = run_cli("gradcheck", "--cell", "all", "--json")
    assert_plain(result)
    out = json.loads(result.stdout)
    assert [r["cell"] for r in out] == ["lstm", "gru", "rnn"] and all(r["passed"] for r in out)
    assert all(t["max_error"] < 1e-4 for r in out for t in r["tensors"])
    code, text = run_tty("gradcheck", "--cell", "gru")
    assert code == 0 and ESC in text and "gru: all 11 tensors agree" in text


BROKEN = """
import sys
import charlstm.nn.model as m
real = m.backward
def backward(*args, **kwargs):  # a slip in a derivation: one gradient 1% too large
    grads, dstate = real(*args, **kwargs)
    grads["lstm.weight_hh_l0"] *= 1.01
    return grads, dstate
m.backward = backward
from charlstm.cli import main
sys.argv = ["charlstm", "gradcheck", "--cell", "lstm"]
main()
"""


def test_gradcheck_exits_1_on_a_wrong_gradient():
    """The real command, with model.backward broken the way a bug would break it (no switch in
    the shipped code), reports the tensor and exits 1."""
    env = {**os.environ, "COLUMNS": "120"}
    result = subprocess.run([sys.executable, "-c", BROKEN], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1, result.stderr
    assert "MISMATCH in lstm.weight_hh_l0" in result.stdout
    assert "Traceback" not in result.stderr
    row = next(line for line in result.stdout.splitlines() if "lstm.weight_hh_l0" in line and "MISMATCH" in line)
    assert 5e-3 < float(re.search(r"(\d\.\de-\d\d)", row).group(1)) < 2e-2  # ≈ 0.01 / 1.01
