"""The configs: one home for every default, validated on construction, read by the CLI's help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from charlstm import config
from charlstm.config import ModelConfig, TrainConfig, field_help
from charlstm.errors import UsageError
from charlstm.nn import cells, optim
from charlstm.nn.cells import CELLS
from charlstm.training import schedule

from helpers import run_cli

TESTS = Path(__file__).resolve().parent


def test_train_help_shows_every_default_from_the_dataclasses():
    """Rendered by Typer through Rich, which would swallow '[default: …]' as markup."""
    result = run_cli("train", "--help", env={"COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    help_text = result.stdout
    lines = {m.group(1): line for line in help_text.splitlines() if (m := re.search(r"(--[a-z-]+)", line))}
    assert "(default: 256)" in lines["--hidden-size"]
    assert "(default: 0.004)" in lines["--lr"]
    for cls in (ModelConfig, TrainConfig):
        for f in fields(cls):
            option = config.flag(f.name)
            if option in lines and f.default is not None:
                value = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
                assert f"(default: {value}" in lines[option], (option, lines[option])
    assert "[default: 256]" not in help_text and "(default: checkpoints/CORPUS.safetensors;" in help_text


def test_field_help_ends_with_the_default():
    assert field_help(TrainConfig, "lr") == "Peak learning rate. (default: 0.004)"
    assert field_help(TrainConfig, "max_steps").endswith("resuming).")  # no default to show
    assert "the corpus's first word" in field_help(TrainConfig, "sample_seed")


def test_configs_are_validated_when_made():
    with pytest.raises(UsageError, match="--lr"):
        TrainConfig(lr=0)
    with pytest.raises(UsageError, match="unknown cell"):
        ModelConfig(10, cell="transformer")
    assert ModelConfig(10, cell="gru").cell == "gru"


def test_names_agree_with_the_modules_that_implement_them():
    """Every name an option accepts is implemented, and everything implemented can be chosen."""
    assert set(config.OPTIMIZER_NAMES) == set(optim.OPTIMIZERS)
    assert set(config.SCHEDULES) == {"constant", *schedule.DECAYS}


def test_every_cell_module_is_a_registered_cell_and_its_declarations_read_as_it_has_them():
    """Each module of charlstm/nn/cells (but the shared ones) is registered under its own name,
    and what `cells.declared` reads from its source without importing it, help text among it, is
    what the imported module declares."""
    folder = Path(cells.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "common", "stepwise"}
    assert modules and modules <= set(config.CELL_NAMES)
    for name in modules:
        declared = cells.declared(name)
        assert (declared.quantities, declared.state_names) == (CELLS[name].QUANTITIES, CELLS[name].STATE_NAMES)
        assert f"{name.upper()} {config.or_list(declared.quantities)}" in field_help(config.ViewConfig, "what")


def test_a_cell_and_an_engine_registered_after_the_config_is_imported_are_accepted():
    """The names are read from the registries when asked, not copied at import."""
    code = (
        "from charlstm import config\nfrom charlstm.training import plan\nimport mgu, twin_engine\n"
        "print(config.CELL_NAMES[-1], config.ModelConfig(5, cell='mgu').cell, config.ENGINE_NAMES[-1], "
        "config.TrainConfig(engine='twin').engine)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.split() == ["mgu", "mgu", "twin", "twin"], done.stderr


def test_config_needs_no_numpy():
    code = "import sys, charlstm.config; assert 'numpy' not in sys.modules; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "ok\n"
