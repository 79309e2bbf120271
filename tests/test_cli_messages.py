"""Help and messages through the real command line: defaults, choices, flags, one-line usage
errors, shell completion, resume notes, checkpoints that are not checkpoints."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import fields

import pytest

from charlstm.config import DisplayConfig, EvalConfig, ReadConfig, SampleConfig, ViewConfig, field_help

from helpers import ROOT, TINY_RUN, assert_clean_error, run_cli

FAST = TINY_RUN


def option_lines(help_text: str) -> dict[str, str]:
    return {m.group(1): line for line in help_text.splitlines() if (m := re.search(r"│ (--[a-z-]+)", line))}


@pytest.mark.parametrize(
    "command", ["train", "sample", "eval", "inspect", "runs", "neurons", "gates", "gradients", "gradcheck"]
)
def test_help_shows_defaults_choices_and_flags_without_placeholders(command):
    help_text = run_cli(command, "--help", env={"COLUMNS": "250"}).stdout
    lines = option_lines(help_text)
    assert lines and "<bool>" not in help_text  # on/off options take no value
    for option, line in lines.items():
        takes_value = re.search(r"(<[a-z]+>|\[[a-z|]+\])", line)
        described = "default" in line or option in (
            "--checkpoint",
            "--resume",
            "--init-from",
            "--out",
            "--log-json",
            "--random-seed",
            "--seed-file",
            "--unit",
            "--find",
        )
        assert not takes_value or described, (option, line)
    assert "[default:" not in help_text  # one form everywhere: (default: …) at the end of the help
    usage = next(line for line in help_text.splitlines() if "Usage:" in line).strip()
    assert "{" not in usage and "old_form" not in usage.lower(), usage
    if command in ("eval", "neurons", "gates", "gradients"):
        assert usage.endswith(f"charlstm {command} [OPTIONS] TEXT_FILE"), usage
    if command in ("train", "sample"):
        assert "pip install 'charlstm[fast]'" in lines["--kernels"]  # not read as a Rich style tag
    if command == "train":
        assert "[adam|rmsprop|sgd]" in lines["--optimizer"] and "[lstm|gru|rnn]" in lines["--cell"]
        assert "[constant|cosine|linear]" in lines["--schedule"] and "[strict|replace]" in lines["--errors"]
        assert "(default: utf-8)" in lines["--encoding"] and "(default: 10000)" in lines["--max-vocab"]
        assert "--max-minutes counts this run only" in help_text  # how each limit behaves on resume


def names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


@pytest.mark.parametrize(
    "command, cls, options",
    [
        ("sample", SampleConfig, names(SampleConfig)),
        ("eval", EvalConfig, names(EvalConfig)),
        ("eval", ReadConfig, ["encoding", "errors"]),
        ("train", ReadConfig, names(ReadConfig)),
        ("train", DisplayConfig, names(DisplayConfig)),
        ("neurons", ViewConfig, ["max_chars", "layer", "unit", "what", "find", "top"]),
        ("gates", ViewConfig, ["max_chars"]),
        ("gradients", ViewConfig, ["max_chars", "max_lag", "positions"]),
        ("gradcheck", ViewConfig, ["cell", "random_seed"]),
    ],
)
def test_help_is_the_configs_help_with_their_defaults(command, cls, options):
    """Each option's help is its config field's, default included (`field_help`): the default
    is written once, in charlstm/config.py."""
    help_text = run_cli(command, "--help", env={"COLUMNS": "400"}).stdout
    for name in options:
        assert field_help(cls, name) in help_text, (command, name)


def test_library_errors_become_one_line_in_one_place():
    """Commands let a CharLSTMError rise; `exits.run` prints it, once, for every command. Only
    `train` catches it, to close its display first and to keep torchrun's other ranks silent; and
    `--version` (about.py), where torch that cannot be imported reads as a part not installed."""
    catching = []
    for path in sorted((ROOT / "charlstm" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ExceptHandler)
                and node.type is not None
                and "CharLSTMError" in ast.unparse(node.type)
            ):
                catching.append(path.name)
    assert sorted(catching) == ["about.py", "exits.py", "train.py"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "x.txt", "--lr", "abc"], "error: --lr: 'abc' is not a number; see charlstm train --help"),
        (
            ["train", "x.txt", "--epochs", "1.5"],
            "error: --epochs: '1.5' is not a whole number; see charlstm train --help",
        ),
        (
            ["train", "x.txt", "--epoch", "3"],
            "error: no such option --epoch (did you mean --epochs?); see charlstm train --help",
        ),
        (
            ["train", "x.txt", "--optimizer", "adamw"],
            "error: --optimizer must be one of adam, rmsprop, sgd, not 'adamw'; see charlstm train --help",
        ),
        (["sample", "--length"], "error: --length needs a value; see charlstm sample --help"),
        (["eval"], "error: missing TEXT_FILE; see charlstm eval --help"),
        (["trian"], "error: no such command 'trian' (did you mean 'train'?); see charlstm --help"),
    ],
)
def test_usage_errors_are_one_line_and_a_hint(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert_clean_error(result, code=2)
    assert result.stderr.strip() == message and result.stdout == ""


def test_shell_completion():
    script = run_cli("--show-completion", "bash")
    assert script.returncode == 0 and "_CHARLSTM_COMPLETE=complete_bash" in script.stdout
    assert "--install-completion" in run_cli("--help").stdout
    env = {"_CHARLSTM_COMPLETE": "complete_bash", "COMP_WORDS": "charlstm train --cell ", "COMP_CWORD": "3"}
    assert run_cli(env=env).stdout.split() == ["lstm", "gru", "rnn"]
    env = {"_CHARLSTM_COMPLETE": "complete_bash", "COMP_WORDS": "charlstm sam", "COMP_CWORD": "1"}
    assert run_cli(env=env).stdout.split() == ["sample"]


def test_help_stays_import_light():
    code = "import sys; sys.argv = ['charlstm', '--help']\nfrom charlstm import cli\ntry:\n    cli.main()\nexcept SystemExit:\n    pass\nprint('numpy' in sys.modules, 'rich.live' in sys.modules, file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stderr.strip().endswith("False False"), result.stderr


def test_resume_notes_name_options_and_max_minutes_is_not_carried(tiny_corpus, tmp_path):
    first = run_cli("train", str(tiny_corpus), *FAST, "--max-steps", "3", "--max-minutes", "5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    resume = str(tmp_path / "checkpoints" / "tiny-1x16.resume.safetensors")
    again = run_cli("train", "--resume", resume, "--max-steps", "5", "--lr", "0.003", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming with --max-steps: 3 → 5" in again.stderr and "resuming with --lr: 0.004 → 0.003" in again.stderr
    assert "max_minutes" not in again.stderr and "minutes" not in again.stderr.split("checkpoints")[0]
    assert "None" not in again.stderr
    lines = again.stderr.splitlines()
    banner_row = next(i for i, line in enumerate(lines) if line.startswith("training "))
    assert banner_row < next(i for i, line in enumerate(lines) if "resuming with --lr" in line)  # under the banner
    capped = run_cli("train", "--resume", resume, "--epochs", "1", cwd=tmp_path)  # a new end on its own
    assert "resuming with --max-steps: 5 → none" in capped.stderr and capped.returncode == 0


def test_a_file_that_is_not_a_checkpoint(tmp_path, tiny_corpus):
    result = run_cli("inspect", str(tiny_corpus), cwd=tmp_path)
    assert_clean_error(result, "not a safetensors checkpoint", code=1)
    assert not re.search(r"\d{10,}", result.stderr)  # no 7523097642930302787-byte header


def test_the_readme_first_command(tmp_path):
    """README line 2 installs and trains on a shipped corpus; its options are accepted (here cut
    to a few seconds), and the start banner gives no advice to set what is already set."""
    from helpers import ROOT

    line = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[1]
    prefix = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/charlstm train corpora/"
    assert line.startswith(prefix) and line.count("&&") == 2
    args = line.split(".venv/bin/charlstm ", 1)[1].split()
    args = [str(ROOT / a) if a.startswith("corpora/") else a for a in args]
    result = run_cli(*args, "--max-minutes", "0.05", "--sample-length", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "reached --max-minutes" in result.stderr
    assert "--dropout 0.2)" not in result.stderr and "-H 256" not in result.stderr  # no advice to set what is set
    assert "--- sample after epoch" in result.stderr
    again = run_cli(*args, "--max-minutes", "0.05", "--sample-length", "20", cwd=tmp_path)  # a newcomer's second try
    assert again.returncode == 0 and "reached --max-minutes" in again.stderr, again.stderr
