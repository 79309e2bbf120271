"""Checkpoints: one safetensors file holding the weights under PyTorch's names plus JSON metadata.

    tensors   CELL.weight_ih_l{k} (G·H, V or H), CELL.weight_hh_l{k} (G·H, H), CELL.bias_ih_l{k},
              CELL.bias_hh_l{k} (G·H,), head.weight (V, H), head.bias (V,), where CELL is lstm
              (G = 4), gru (G = 3) or rnn (G = 1), as the config's `cell` says;
              and, in a resumable checkpoint, optim.<buffer>.<name> (the optimiser's moments),
              state.h (+ state.c for the LSTM), (L, B, H) (the state carried across windows),
              and with --ema average.<name> (the weights' average's sums, `charlstm.nn.average`)
    metadata  format ("charlstm"), format_version, config, vocab, train, history (JSON strings)

`{k: v for k, v in load_file(path).items() if not k.startswith(("optim.", "state.", "average."))}` — or the
whole file for a weights-only checkpoint — loads into `torch.nn.LSTM(V, H, L)` (or `nn.GRU`,
`nn.RNN(..., nonlinearity="tanh")`) and
`torch.nn.Linear(H, V)` by `load_state_dict`. Writing is atomic (`charlstm.store.write`: a
temporary file in the same folder, fsync, rename), so a crash never leaves a half-written
checkpoint under the real name.
Loading parses and checks the header before touching the data, never unpickles anything, and turns
every defect into a CheckpointError with a message that says what is wrong. A run's files — their
names, the epoch snapshots, the lock while a run writes them, the runs of a folder — are
`charlstm.store.runs`'s.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charlstm.config import ModelConfig
from charlstm.errors import CharLSTMError, CheckpointError
from charlstm.nn.model import param_shapes
from charlstm.store import write
from charlstm.text.vocab import Vocab

FORMAT = "charlstm"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
EXTRA_PREFIXES = ("optim.", "state.", "average.")
_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "U8": np.uint8}
_MAX_HEADER = 100 * 1024 * 1024


@dataclass
class Checkpoint:
    """A model (config, vocabulary, weights) and what is known about how it was trained.

    `extra` holds the tensors a resumed run needs (optimiser moments, carried state); `train` and
    `history` are JSON-compatible dicts/lists owned by the training loop.
    """

    config: ModelConfig
    vocab: Vocab
    params: dict[str, np.ndarray]
    train: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None


def to_bytes(ckpt: Checkpoint) -> bytes:
    """The safetensors encoding of a checkpoint."""
    from safetensors.numpy import save

    tensors = {name: np.ascontiguousarray(a) for name, a in {**ckpt.params, **ckpt.extra}.items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(ckpt.config.to_dict()),
        "vocab": json.dumps(list(ckpt.vocab.chars), ensure_ascii=True),
        "train": json.dumps(ckpt.train, ensure_ascii=True, allow_nan=False),
        "history": json.dumps(ckpt.history, ensure_ascii=True, allow_nan=False),
    }
    return save(tensors, metadata=metadata)


def save(ckpt: Checkpoint, path: str | os.PathLike) -> Path:
    """Write `ckpt` to `path` atomically, through `charlstm.store.write` (a link is followed, a
    device or folder refused); the folder is created if needed. Returns the path."""
    path = Path(path)
    try:
        data = to_bytes(ckpt)
    except ValueError as e:  # NaN in metadata, for example
        raise CheckpointError(f"cannot encode checkpoint: {e}") from None
    write.write_atomic(path, data, "checkpoint", CheckpointError, f"give a file name ending in {SUFFIX}")
    return path


def read_header(data: bytes, name: str = "checkpoint") -> tuple[dict[str, Any], dict[str, str]]:
    """Parse and check a safetensors header: (tensor entries, metadata). Raises CheckpointError."""
    if len(data) < 8:
        raise CheckpointError(f"{name}: not a safetensors checkpoint (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if data[8:9] not in (b"{", b""):  # a safetensors header is JSON: the byte after its length is "{"
        raise CheckpointError(f"{name}: not a safetensors checkpoint; `charlstm train` writes them")
    if n > _MAX_HEADER or 8 + n > len(data):
        raise CheckpointError(
            f"{name}: truncated, or not a safetensors checkpoint (its header alone would need {n:,} bytes; the file has {len(data):,})"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{name}: the safetensors header is not valid JSON; the file is corrupt") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: the safetensors header is not a JSON object; the file is corrupt")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{name}: malformed metadata in the safetensors header")
    body = len(data) - 8 - n
    spans = []
    for key, entry in header.items():
        try:
            dtype = np.dtype(_DTYPES[entry["dtype"]])
            shape = [int(d) for d in entry["shape"]]
            start, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{name}: tensor {key!r} has a malformed or unsupported header entry") from None
        if any(d < 0 for d in shape) or not 0 <= start <= end <= body:
            raise CheckpointError(f"{name}: tensor {key!r} lies outside the file; it is truncated or corrupt")
        if end - start != math.prod(shape) * dtype.itemsize:
            raise CheckpointError(f"{name}: tensor {key!r} has {end - start} bytes for shape {shape}")
        spans.append((start, end))
    spans.sort()
    if any(a[1] > b[0] for a, b in itertools.pairwise(spans)) or (spans and spans[-1][1] != body):
        raise CheckpointError(f"{name}: tensor data overlaps or is truncated; the file is corrupt")
    return header, metadata


def is_safetensors(path: Path) -> bool:
    """Does the file begin as a safetensors file does: a little-endian header length that fits
    the file, then the header's "{"? (A text file never does.)"""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= size


def _json_field(metadata: dict[str, str], key: str, name: str, required: bool = True) -> Any:
    if key not in metadata:
        if required:
            raise CheckpointError(f"{name}: metadata has no {key!r}; not a charlstm checkpoint")
        return None
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError:
        raise CheckpointError(f"{name}: metadata field {key!r} is not valid JSON; the file is corrupt") from None


_TRAIN_NUMBERS = (
    "step",
    "window",
    "epoch",
    "chars",
    "elapsed",
    "lr_scale",
    "optimizer_steps",
    "steps_per_epoch",
    "segment_ratio",
    "average_weight",
)
_TRAIN_OPTIONAL = ("best_val_loss", "best_epoch", "smoothed_loss", "schedule_ratio", "segment_step")
_HISTORY_NUMBERS = ("epoch", "step", "train_loss", "val_loss", "val_bpc")
_HISTORY_OPTIONAL = ("lr", "elapsed", "chars_per_s")
CURVE_FIELDS = ("step", "elapsed", "train_loss", "lr", "chars_per_s")
"""The columns of train["curve"], the learning curve: one row every tenth of an epoch or so, with
the seconds of training so far, the smoothed training loss (nats/char), the learning rate and the
training speed of that step (absent in checkpoints from before it was kept)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _check_training_metadata(train: Any, history: Any, name: str) -> None:
    """The fields other code reads must have the right types, so a tampered file fails here, with
    a clear message, and not later with a traceback."""
    ok = isinstance(train, dict) and isinstance(history, list)
    ok = ok and all(_is_number(train[k]) for k in _TRAIN_NUMBERS if k in train)
    ok = ok and all(train.get(k) is None or _is_number(train[k]) for k in _TRAIN_OPTIONAL)
    ok = ok and all(isinstance(h, dict) and all(_is_number(h.get(k)) for k in _HISTORY_NUMBERS) for h in history)
    ok = ok and all(_is_number(h[k]) for h in history for k in _HISTORY_OPTIONAL if k in h)
    ok = ok and all(isinstance(h.get("sample", ""), str) for h in history)
    curve, stride = (train.get("curve", []), train.get("curve_stride", 1)) if isinstance(train, dict) else ([], 1)
    ok = (
        ok
        and isinstance(curve, list)
        and all(isinstance(row, list) and len(row) == len(CURVE_FIELDS) and all(map(_is_number, row)) for row in curve)
    )
    ok = ok and isinstance(stride, int) and not isinstance(stride, bool) and stride >= 1
    if not ok:
        raise CheckpointError(f"{name}: malformed training metadata; the file is corrupt")


def _check_average(
    header: dict[str, Any], shapes: dict[str, tuple[int, ...]], train: dict[str, Any], name: str
) -> None:
    """The average of the weights (--ema) belongs to a resume file: one `average.<name>` tensor
    for every parameter, of its shape, with `average_weight` in the training metadata."""
    keys = [k for k in header if k.startswith("average.")]
    if not keys:
        return
    if not any(k.startswith("optim.") for k in header):
        raise CheckpointError(
            f"{name}: holds an average of the weights ({keys[0]!r}) but is not a resume file; the file is corrupt"
        )
    for key in shapes:
        entry = header.get(f"average.{key}")
        if entry is None or tuple(entry["shape"]) != shapes[key] or entry["dtype"] not in ("F32", "F64"):
            raise CheckpointError(
                f"{name}: tensor 'average.{key}' is missing or not shaped like {key!r}; the file is corrupt"
            )
    if len(keys) != len(shapes) or "average_weight" not in train:
        raise CheckpointError(f"{name}: its average of the weights does not fit the model; the file is corrupt")


def from_bytes(data: bytes, name: str = "checkpoint") -> Checkpoint:
    """Decode and validate a checkpoint. Every defect raises CheckpointError."""
    from safetensors.numpy import load

    header, metadata = read_header(data, name)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{name}: a safetensors file, but not a charlstm checkpoint")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise CheckpointError(f"{name}: unreadable format_version {metadata.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{name}: written by a newer charlstm (format {version}, this one reads up to "
            f"{FORMAT_VERSION}); upgrade charlstm"
        )
    try:
        config = ModelConfig.from_dict(_json_field(metadata, "config", name))
        vocab = Vocab(tuple(_json_field(metadata, "vocab", name)))
    except (CharLSTMError, TypeError, ValueError) as e:
        raise CheckpointError(f"{name}: invalid config or vocabulary ({e})") from None
    if vocab.size != config.vocab_size:
        raise CheckpointError(
            f"{name}: the vocabulary has {vocab.size} characters but the config says {config.vocab_size}"
        )
    train = _json_field(metadata, "train", name, required=False) or {}
    history = _json_field(metadata, "history", name, required=False) or []
    _check_training_metadata(train, history, name)
    shapes = param_shapes(config)
    for key in header:
        if key not in shapes and not key.startswith(EXTRA_PREFIXES):
            raise CheckpointError(f"{name}: unexpected tensor {key!r}")
    _check_average(header, shapes, train, name)
    for key, shape in shapes.items():
        if key not in header:
            raise CheckpointError(f"{name}: missing tensor {key!r}")
        if tuple(header[key]["shape"]) != shape:
            raise CheckpointError(
                f"{name}: tensor {key!r} has shape {tuple(header[key]['shape'])}, the config needs {shape}"
            )
        if header[key]["dtype"] not in ("F32", "F64"):
            raise CheckpointError(f"{name}: tensor {key!r} has dtype {header[key]['dtype']}, expected F32")
    try:
        tensors = load(data)
    except Exception as e:  # the safetensors parser's own error types
        raise CheckpointError(f"{name}: cannot decode tensors ({e})") from None
    params = {key: tensors[key].astype(np.float32, copy=False) for key in shapes}
    for key, p in params.items():
        if not np.isfinite(p).all():
            raise CheckpointError(f"{name}: tensor {key!r} contains NaN or Inf")
    extra = {key: t for key, t in tensors.items() if key.startswith(EXTRA_PREFIXES)}
    return Checkpoint(config, vocab, params, train, history, extra)


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and validate the checkpoint at `path`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint; train one with `charlstm train`") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    ckpt = from_bytes(data, str(path))
    ckpt.path = path
    return ckpt


def read_metadata(path: Path) -> dict[str, Any]:
    """The config and training state of a charlstm checkpoint, read from its header alone (no
    tensors), for listings. Raises CheckpointError for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
            if not 0 < n <= _MAX_HEADER:
                raise ValueError
            header = json.loads(f.read(n).decode("utf-8"))
        meta = header["__metadata__"]
        if meta.get("format") != FORMAT:
            raise ValueError
        found = {key: json.loads(meta[key]) for key in ("config", "train") if key in meta}
        found["parameters"] = sum(
            math.prod(t["shape"])
            for name, t in header.items()
            if name != "__metadata__" and not name.startswith(EXTRA_PREFIXES)
        )
        return found
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error):
        raise CheckpointError(f"{path}: not a charlstm checkpoint") from None


def describe(ckpt: Checkpoint) -> dict[str, Any]:
    """A JSON-compatible description of a checkpoint, for `inspect` (tables or --json)."""
    train = dict(ckpt.train)
    train.pop("rng", None)
    train.pop("torch_rng", None)  # the torch engine's generators, as the resume file keeps them
    steps_per_epoch = train.get("steps_per_epoch") or 0
    if steps_per_epoch:
        train["epochs"] = round(train.get("step", 0) / steps_per_epoch, 4)
    tensors = {
        name: {"shape": list(p.shape), "count": int(p.size), "dtype": str(p.dtype)} for name, p in ckpt.params.items()
    }
    return {
        "path": str(ckpt.path) if ckpt.path else None,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": ckpt.config.to_dict(),
        "vocab": list(ckpt.vocab.chars),
        "tensors": tensors,
        "num_params": sum(t["count"] for t in tensors.values()),
        "resumable": any(k.startswith("optim.") for k in ckpt.extra),
        "train": train,
        "history": ckpt.history,
    }
