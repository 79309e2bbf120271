"""A run's files, where checkpoints live: their names, the epoch snapshots, the lock held while a
run writes them, and the runs of a folder.

A run called NAME writes, in one folder,

    NAME.safetensors            the model: the best weights by validation (`sample` reads it)
    NAME.resume.safetensors     everything a resume needs (optimiser moments, carried state, …)
    NAME.epochNNNN.safetensors  with --keep K, the weights after epoch NNNN, the newest K kept

and `stem` is the one rule that finds NAME from any of them. A run on a corpus is named after it
(`default_model_path`). What is inside a file is `charlstm.store.checkpoint`'s business; here only the
headers are read, to list runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from charlstm.config import ModelConfig, TrainConfig, default_of
from charlstm.errors import CheckpointError, UsageError
from charlstm.store import write
from charlstm.store.checkpoint import SUFFIX, read_metadata
from charlstm.text.corpus import source_name
from charlstm.units import nats_to_bits

RESUME_SUFFIX = ".resume" + SUFFIX
SNAPSHOT = ".epoch"  # NAME.epochNNNN.safetensors


def stem(path: Path) -> str:
    """NAME, the run a file belongs to: of NAME.safetensors, NAME.resume.safetensors and
    NAME.epochNNNN.safetensors (a name without the suffix is NAME itself)."""
    name = path.name
    if name.endswith(RESUME_SUFFIX):
        return name[: -len(RESUME_SUFFIX)]
    if not name.endswith(SUFFIX):
        return name
    name = name[: -len(SUFFIX)]
    base, _, number = name.rpartition(SNAPSHOT)
    return base if base and number.isdigit() else name


def model_file(path: Path) -> Path:
    """The model file of the run that `path` belongs to."""
    return path.with_name(stem(path) + SUFFIX)


def resume_file(path: Path) -> Path:
    """The resume file of the run that `path` belongs to."""
    return path.with_name(stem(path) + RESUME_SUFFIX)


def snapshot_file(path: Path, epoch: int) -> Path:
    """The snapshot of the weights after `epoch`, of the run that `path` belongs to."""
    return path.with_name(f"{stem(path)}{SNAPSHOT}{epoch:04d}{SUFFIX}")


def is_snapshot(path: Path) -> bool:
    return path.name.endswith(SUFFIX) and not path.name.endswith(RESUME_SUFFIX) and model_file(path) != path


def check_model_path(path: Path, what: str = "--out") -> None:
    """A model file's name leaves room for its run's other files: not itself the name of a
    resume file or a snapshot, and neither it nor its resume file a directory, a device, a FIFO
    or a socket (`charlstm.store.write.target`; UsageError), so a run is refused before it
    starts. `what`: the option that named it ("" for a default path)."""
    for target in (path, resume_file(path)):
        write.target(target, what if target == path else "", f"pass --out with a file name ending in {SUFFIX}")
    if path.name.endswith(RESUME_SUFFIX) or is_snapshot(path):
        raise UsageError(
            f"{path} is the name of a run's resume file or epoch snapshot; give the model file's name, "
            f"e.g. --out {model_file(path)}, and the other files are written beside it"
        )


def default_model_path(
    corpus_path: Path | list[Path],
    model: dict[str, Any] | None = None,
    folder: Path = Path("checkpoints"),
) -> Path:
    """checkpoints/CORPUS.safetensors: the model file of a run on `corpus_path` (a file, a
    folder, or several files; see corpus.source_name). A model other than the default one adds
    what differs, so runs of different cells or shapes on one text do not collide:
    CORPUS-rnn.safetensors for `--cell rnn`, CORPUS-gru-3x512.safetensors for `--cell gru -L 3
    -H 512`, CORPUS-1x128.safetensors for `-L 1 -H 128`."""
    chosen = {k: (model or {}).get(k, default_of(ModelConfig, k)) for k in ("cell", "num_layers", "hidden_size")}
    parts = [source_name(corpus_path)]
    if chosen["cell"] != default_of(ModelConfig, "cell"):
        parts.append(chosen["cell"])
    if any(chosen[k] != default_of(ModelConfig, k) for k in ("hidden_size", "num_layers")):
        parts.append(f"{chosen['num_layers']}x{chosen['hidden_size']}")
    return folder / ("-".join(parts) + SUFFIX)


def snapshots(model_path: Path) -> list[Path]:
    """The epoch snapshots of the run beside `model_path`, oldest epoch first."""
    found = [
        p for p in model_path.parent.glob(f"*{SNAPSHOT}*{SUFFIX}") if is_snapshot(p) and stem(p) == stem(model_path)
    ]
    return sorted(found, key=lambda p: int(p.name[: -len(SUFFIX)].rpartition(SNAPSHOT)[2]))


def prune_snapshots(model_path: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` epoch snapshots of the run; returns those deleted."""
    found = snapshots(model_path)
    stale = found[: max(0, len(found) - keep)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class Lock:
    """An exclusive lock on a run's files for the length of a training run, so two runs never
    write the same files. An flock on a hidden file beside the model file, removed when the run
    ends; the system drops the flock when the holder exits, even by kill -9, so a lock file left
    behind never blocks anyone."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(f".{path.name}.lock")
        self.files = (path, resume_file(path))
        self.fd: int | None = None

    def __enter__(self) -> Lock:
        fd = self._acquire()
        while not self._still_there(fd):  # the holder before us removed the file we locked
            os.close(fd)
            fd = self._acquire()
        self.fd = fd
        # fail now, not after an epoch of training, if checkpoints cannot be written: beside the
        # lock, and beside the files that links among the run's files lead to
        folder = self.path.parent
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            for folder in dict.fromkeys([self.path.parent, *(write.target(f).parent for f in self.files)]):
                if folder.is_dir():  # a link's folder not there yet: the first save makes it, or says why not
                    probe = folder / f"{self.path.name}.{os.getpid()}.probe"
                    probe.write_bytes(b"")
                    probe.unlink()
        except OSError as e:
            self.__exit__()
            raise CheckpointError(
                f"cannot write checkpoints in {folder}: {e.strerror or e}; "
                f"check the folder's permissions, or pass a different --out"
            ) from None
        return self

    def _acquire(self) -> int:
        """The lock file, open and flocked; a CheckpointError naming the holder if it is taken."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CheckpointError(
                f"cannot write in {self.path.parent}: {e.strerror or e}; choose another --out"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            target = self.path.name[1 : -len(".lock")]
            raise CheckpointError(
                f"another charlstm train (pid {holder}) is writing {self.path.parent / target}; "
                f"wait for it to finish, or pass a different --out"
            ) from None
        return fd

    @staticmethod
    def holder(model_path: Path) -> str | None:
        """The pid (as the lock file says it) of the run that holds the lock of the run at
        `model_path` now, or None if no run holds it. Looks without waiting, and without
        creating the lock file."""
        import fcntl

        try:
            fd = os.open(model_path.with_name(f".{model_path.name}.lock"), os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _still_there(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # while still holding it, so no one else's is removed
            except OSError:
                pass  # a folder we may not write in: the file stays, and blocks no one
            os.close(self.fd)  # releases the flock
            self.fd = None


def find_latest(directory: str | os.PathLike = "checkpoints", name_one: str = "pass --checkpoint PATH") -> Path:
    """The most recently written model checkpoint in `directory` (resume files only if alone).
    `name_one`: how the command at hand is given a checkpoint, for the error when there is none."""
    folder = Path(directory)
    files = [p for p in folder.glob(f"*{SUFFIX}") if p.is_file()] if folder.is_dir() else []
    if not files:
        raise CheckpointError(f"no checkpoint in {folder}/; train one with `charlstm train FILE` or {name_one}")
    models = [p for p in files if not p.name.endswith(RESUME_SUFFIX)] or files
    return max(models, key=lambda p: p.stat().st_mtime_ns)


def run_files(folder: Path) -> dict[str, list[Path]]:
    """The .safetensors files of a folder by the run they belong to (`stem`)."""
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder}: no such folder; train a model with `charlstm train FILE`, or name the folder that holds its checkpoints"
        )
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        found.setdefault(stem(path), []).append(path)
    return found


def list_runs(directory: str | os.PathLike = "checkpoints") -> list[dict[str, Any]]:
    """The runs in a folder, newest first: each model file NAME.safetensors with the resume file
    beside it (or a resume file alone), described from the latest of the two — corpus, model,
    steps, best validation loss, status, date and size. Epoch snapshots count in their run's
    size; files that are not charlstm checkpoints are left out."""
    folder = Path(directory)
    runs = []
    for name, files in run_files(folder).items():
        latest = folder / (name + RESUME_SUFFIX)
        model = folder / (name + SUFFIX)
        try:
            meta = read_metadata(latest if latest.is_file() else model)
        except CheckpointError:
            continue
        newest = max(f.stat().st_mtime for f in files)
        runs.append((newest, _run_summary(name, model if model.is_file() else latest, meta, files, newest)))
    return [summary for _, summary in sorted(runs, key=lambda r: r[0], reverse=True)]


def _run_summary(name: str, path: Path, meta: dict[str, Any], files: list[Path], mtime: float) -> dict[str, Any]:
    from datetime import datetime

    config, train = meta.get("config", {}), meta.get("train", {})
    best = train.get("best_val_loss")
    step, per_epoch = train.get("step", 0), train.get("steps_per_epoch") or 0
    return {
        "name": name,
        "path": str(path),
        "corpus": train.get("corpus", {}).get("name"),
        "model": f"{config.get('num_layers')}×{config.get('hidden_size')} {str(config.get('cell', default_of(ModelConfig, 'cell'))).upper()}",
        "parameters": meta.get("parameters"),
        "engine": train.get("config", {}).get("engine", default_of(TrainConfig, "engine")),
        "config": config,
        "step": step,
        "epochs": round(step / per_epoch, 4) if per_epoch else 0,
        "best_val_loss": best,
        "best_val_bpc": nats_to_bits(best) if best is not None else None,
        "status": train.get("status"),
        "date": datetime.fromtimestamp(mtime).isoformat(timespec="seconds"),
        "bytes": sum(f.stat().st_size for f in files),
        "files": sorted(str(f) for f in files),
    }
