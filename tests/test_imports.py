"""The module graph of charlstm, read from the source with `ast` (function-level imports included,
`if TYPE_CHECKING:` imports left out): arrows point one way, and each outside library has one door."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "charlstm"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(module: str) -> set[str]:
    """Every module `module` imports, at any depth of its code, as dotted names."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else [])
                    )
                subs = {f"{base}.{alias.name}" for alias in child.names}
                found.update(subs & set(MODULES) or {base})
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def graph() -> dict[str, set[str]]:
    return {m: {n for n in imported_names(m) if n in MODULES and n != m} for m in MODULES}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := dfs(start)):
            return cycle
    return None


def importers_of(target: str) -> set[str]:
    return {m for m in MODULES if any(n == target or n.startswith(target + ".") for n in imported_names(m))}


def test_the_reader_sees_the_imports_it_should():
    edges = graph()
    assert "charlstm.text.idcache" in edges["charlstm.text.corpus"]  # top level
    assert "charlstm.training.plan" in edges["charlstm.cli.train"]  # inside a function
    assert "charlstm.training.loop" not in edges["charlstm.training.events"]  # only under TYPE_CHECKING
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    assert find_cycle(graph()) is None


def test_the_training_loop_does_not_reach_into_the_id_cache():
    assert "charlstm.text.idcache" not in graph()["charlstm.training.loop"]
    assert importers_of("charlstm.text.idcache") == {"charlstm.text.corpus"}  # nothing above corpus uses it


def test_threadpoolctl_has_one_door():
    assert importers_of("threadpoolctl") == {"charlstm.nn.threads"}


CLI = {m for m in MODULES if m == "charlstm.cli" or m.startswith("charlstm.cli.")}
UI = {
    "charlstm.cli.ui.console",
    "charlstm.cli.ui.progress",
    "charlstm.cli.ui.tables",
    "charlstm.cli.ui.shading",
    "charlstm.cli.ui.charts",
}


def test_typer_and_rich_each_have_one_door():
    """typer behind the command line (charlstm/cli/), rich behind the ui modules; the library
    reaches neither, and nothing but the command line draws."""
    assert importers_of("typer") and importers_of("typer") <= CLI
    assert importers_of("rich") == UI
    assert importers_of("charlstm.cli") <= {"charlstm.__main__"} | CLI
    for ui in UI:
        assert importers_of(ui) <= CLI | UI, ui
    assert importers_of("charlstm.insight.report") <= CLI | {
        m for m in MODULES if m.startswith("charlstm.insight.report")
    }
    assert importers_of("playwright") == set()  # a test dependency only


def test_torch_has_one_door_and_only_the_torch_engine_opens_it():
    """torch is imported by the torch engine, its model and its DDP half alone, and they only when make_engine
    or engines.check asks for them: the NumPy engine, sampling and every view never import it
    (at run time too: tests/test_cli_engines.py hides torch and watches)."""
    assert importers_of("torch") == {
        "charlstm.engines.torch_engine",
        "charlstm.engines.torch_model",
        "charlstm.engines.distributed",
    }
    assert importers_of("charlstm.engines.torch_engine") == {"charlstm.engines"}
    assert importers_of("charlstm.engines.torch_model") == {"charlstm.engines.torch_engine"}
    assert importers_of("charlstm.engines.distributed") == {"charlstm.engines.torch_engine"}
