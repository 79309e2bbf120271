"""Checkpoints: round trip, atomic writes, and clear errors for every kind of bad file."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from charlstm.config import ModelConfig
from charlstm.errors import CheckpointError, UsageError
from charlstm.nn.model import init_params
from charlstm.store import checkpoint
from charlstm.store.checkpoint import Checkpoint
from charlstm.text.vocab import Vocab


def make(V=5, H=4, L=2) -> Checkpoint:
    vocab = Vocab(tuple("\n abc"[:V]))
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L)
    return Checkpoint(
        config,
        vocab,
        init_params(config, 0),
        {"step": 3},
        [{"epoch": 1, "step": 3, "train_loss": 1.7, "val_loss": 1.5, "val_bpc": 2.16, "sample": "ab"}],
    )


def test_round_trip(tmp_path):
    ckpt = make()
    path = checkpoint.save(ckpt, tmp_path / "m.safetensors")
    back = checkpoint.load(path)
    assert back.config == ckpt.config and back.vocab == ckpt.vocab
    assert back.train == {"step": 3} and back.history == ckpt.history
    for k, v in ckpt.params.items():
        np.testing.assert_array_equal(back.params[k], v)


def test_metadata_is_readable_by_safetensors(tmp_path):
    from safetensors import safe_open

    path = checkpoint.save(make(), tmp_path / "m.safetensors")
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
        assert meta["format"] == "charlstm" and int(meta["format_version"]) == checkpoint.FORMAT_VERSION
        assert json.loads(meta["vocab"]) == ["\n", " ", "a", "b", "c"]
        assert json.loads(meta["config"])["hidden_size"] == 4
        assert "lstm.weight_ih_l0" in f.keys()  # noqa: SIM118 (safe_open has keys(), not __contains__)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = checkpoint.save(make(), tmp_path / "m.safetensors")
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", broken_fsync)
    with pytest.raises(CheckpointError, match="No space left"):
        checkpoint.save(make(H=8), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind


def test_target_is_a_directory(tmp_path):
    """Refused as bad usage (charlstm.store.write): nothing is written, the folder stays."""
    (tmp_path / "d.safetensors").mkdir()
    with pytest.raises(UsageError, match="is a directory, not a file, so nothing was written"):
        checkpoint.save(make(), tmp_path / "d.safetensors")
    assert (tmp_path / "d.safetensors").is_dir() and not list(tmp_path.glob(".*"))


def _rewrite_header(data: bytes, edit) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d[:-10], "truncated"),
        (lambda d: d[:5], "not a safetensors"),
        (lambda d: b"PK\x03\x04" + d[4:], "not a safetensors"),
        (lambda d: d[:10] + b"\xff" + d[11:], "not valid JSON"),
        (lambda d: d[:12] + b"}" + d[13:], "malformed"),
        (lambda d: _rewrite_header(d, lambda h: h["__metadata__"].update(format_version="99")), "newer"),
        (lambda d: _rewrite_header(d, lambda h: h["__metadata__"].update(format="other")), "not a charlstm"),
        (lambda d: _rewrite_header(d, lambda h: h["__metadata__"].update(vocab='["a"]')), "vocabulary"),
        (lambda d: _rewrite_header(d, lambda h: h["__metadata__"].update(config="{")), "not valid JSON"),
        (lambda d: _rewrite_header(d, lambda h: h.pop("head.bias")), "missing tensor"),
    ],
)
def test_bad_files_raise_checkpoint_error(tmp_path, mutate, message):
    path = checkpoint.save(make(), tmp_path / "m.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(bad)


def test_wrong_shape_for_config(tmp_path):
    ckpt = make()
    ckpt.params["head.weight"] = np.zeros((5, 3), np.float32)
    path = checkpoint.save(ckpt, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "nope.safetensors")


# ------------------------------------------------------------------------------------ fuzzing

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from charlstm.nn.model import param_shapes  # noqa: E402

_REAL = checkpoint.to_bytes(make(V=5, H=3, L=2))


def _assert_valid(ckpt: Checkpoint) -> None:
    shapes = param_shapes(ckpt.config)
    assert set(ckpt.params) == set(shapes)
    for name, p in ckpt.params.items():
        assert p.shape == shapes[name] and p.dtype == np.float32 and np.isfinite(p).all()
    assert ckpt.vocab.size == ckpt.config.vocab_size
    checkpoint.describe(ckpt)  # what inspect renders must be well-formed too


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=len(_REAL)),
    flips=st.lists(st.tuples(st.integers(0, len(_REAL) - 1), st.integers(1, 255)), max_size=6),
)
def test_truncated_or_flipped_checkpoints_load_validly_or_raise_checkpoint_error(cut, flips):
    data = bytearray(_REAL)
    for position, mask in flips:
        data[position] ^= mask
    data = bytes(data[:cut])
    try:
        ckpt = checkpoint.from_bytes(data)
    except CheckpointError:
        return
    _assert_valid(ckpt)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(_REAL) - 1), value=st.integers(0, 255))
def test_any_single_byte_changed(position, value):
    data = bytearray(_REAL)
    data[position] = value
    try:
        ckpt = checkpoint.from_bytes(bytes(data))
    except CheckpointError:
        return
    _assert_valid(ckpt)


def resumable(average: dict | None = None, weight: float | None = 0.5) -> Checkpoint:
    """A checkpoint with the extra tensors of a resume file, and an average of the weights."""
    ckpt = make()
    ckpt.extra = {f"optim.exp_avg.{k}": np.zeros_like(v) for k, v in ckpt.params.items()}
    ckpt.extra.update({f"average.{k}": v for k, v in (average if average is not None else ckpt.params).items()})
    if weight is not None:
        ckpt.train["average_weight"] = weight
    return ckpt


def test_a_resume_file_carries_the_average_of_the_weights(tmp_path):
    back = checkpoint.load(checkpoint.save(resumable(), tmp_path / "m.resume.safetensors"))
    assert back.train["average_weight"] == 0.5
    for k, v in back.params.items():
        np.testing.assert_array_equal(back.extra[f"average.{k}"], v)


@pytest.mark.parametrize(
    "defect, message",
    [
        (lambda c: c.extra.pop("average.head.bias"), "average.head.bias"),
        (lambda c: c.extra.update({"average.head.bias": np.zeros(3, np.float32)}), "average.head.bias"),
        (lambda c: c.train.pop("average_weight"), "does not fit the model"),
        (lambda c: c.extra.update({"average.head.extra": np.zeros(5, np.float32)}), "does not fit the model"),
        (lambda c: [c.extra.pop(k) for k in list(c.extra) if k.startswith("optim.")], "not a resume file"),
        (lambda c: c.train.update({"average_weight": -1.0}), "malformed training metadata"),
    ],
)
def test_a_bad_average_is_a_checkpoint_error(tmp_path, defect, message):
    ckpt = resumable()
    defect(ckpt)
    path = checkpoint.save(ckpt, tmp_path / "m.resume.safetensors")
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path)
