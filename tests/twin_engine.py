"""An engine defined in one file outside charlstm: the NumPy engine under the name "twin".
Importing this module registers it, and `charlstm train --engine twin` then trains with it
(tests/test_one_file_engine.py). No file of charlstm knows it."""

from __future__ import annotations

from charlstm import engines


def _twin() -> type:
    """The engine's class, imported when a run starts with it."""
    from charlstm.engines.numpy_engine import NumpyEngine

    class TwinEngine(NumpyEngine):
        def describe(self) -> str:
            return f"twin, {super().describe()}"

    return TwinEngine


engines.register(
    engines.EngineKind("twin", "the NumPy engine under another name, a test's", _twin, options=("kernels",))
)
