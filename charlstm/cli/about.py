"""What this installation of charlstm has, for `charlstm --version`: its version, Python's and
NumPy's, and the optional parts present: numba (the compiled kernels) and PyTorch (the torch
engine) with the devices it can train on.

A part is looked for without importing it (its import spec and its package metadata), so a part
that is not installed costs nothing; PyTorch, when present, is imported to count its devices,
through `engines`, its one door.
"""

from __future__ import annotations

import platform
from importlib import metadata, util

from charlstm.errors import CharLSTMError

EXTRAS = {"numba": ("fast", "the compiled kernels"), "torch": ("torch", "the torch engine")}


def installed(name: str) -> str | None:
    """The version of the installed package `name` ('version unknown' without metadata), or
    None when it is not installed. Nothing is imported."""
    try:
        if util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "version unknown"


def describe() -> list[str]:
    """The lines `charlstm --version` prints: 'charlstm 0.1.0' first, then a line per part."""
    from charlstm import __version__

    lines = [f"charlstm {__version__}", f"python   {platform.python_version()}", f"numpy    {installed('numpy')}"]
    for name, (extra, what) in EXTRAS.items():
        version = installed(name)
        if version is None:
            lines.append(f"{name:<8} not installed (pip install 'charlstm[{extra}]' for {what})")
        elif name == "torch":
            lines.append(f"torch    {version} ({_torch_devices()})")
        else:
            lines.append(f"{name:<8} {version} (--kernels numba)")
    return lines


def _torch_devices() -> str:
    from charlstm import engines

    try:
        return "devices: " + engines.describe_torch_devices()
    except CharLSTMError:
        return "installed, but cannot be imported here"
