"""The module graph of charlstm, read from the source with `ast` (function-level imports included,
`if TYPE_CHECKING:` imports left out): every arrow is one the table of parts allows (docs/architecture.md
shows the same table), there are no cycles, and each outside library has one door."""

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


# Which part may import which, besides itself. Parts are charlstm's subpackages (insight.probe stands
# apart from the rest of insight: the probes are below inference, the views and the report above
# training); `package` is the package's __init__ (the public names, imported lazily), `api` the Python
# front door (charlstm.train, load, Model) that it hands out.
# fmt: off
ARROWS: dict[str, set[str]] = {
    "errors": set(),
    "units": set(),
    "config": {"errors", "nn", "engines"},  # only the registries (nn.cells, engines.registry): names and help
    "store.write": {"errors"},  # the one writer, below everything that writes (the id cache too)
    "text": {"errors", "config", "store.write"},
    "nn": {"errors", "config"},
    "store": {"errors", "units", "config", "text", "nn", "store.write"},
    "insight.probe": {"errors", "units", "text", "nn"},
    "inference": {"errors", "units", "config", "text", "nn", "store", "store.write", "insight.probe"},
    "engines": {"errors", "units", "config", "text", "nn", "store", "store.write", "inference"},
    "training": {"errors", "units", "config", "text", "nn", "store", "store.write", "inference", "engines"},
    "insight": {"package", "errors", "units", "config", "text", "nn", "store", "store.write", "insight.probe",
                "training"},
    "cli": {"package", "errors", "units", "config", "text", "nn", "store", "store.write", "insight.probe",
            "inference", "engines", "training", "insight"},
    # the Python front door; it shows training through the CLI's display (only when not quiet)
    "api": {"package", "errors", "units", "config", "text", "nn", "store", "store.write", "inference", "engines",
            "training", "insight", "cli"},
    "package": {"errors", "config", "text", "store", "inference", "training", "insight", "api"},
    "__main__": {"cli"},
}
# fmt: on
ROOT_MODULES = {"charlstm": "package", "charlstm.__main__": "__main__"}


def part_of(module: str) -> str:
    """The part a module belongs to: its subpackage under charlstm (or a module at the root)."""
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    parts = module.split(".")
    if parts[1] == "insight" and len(parts) > 2 and parts[2] == "probe":
        return "insight.probe"
    if module == "charlstm.store.write":
        return "store.write"
    return parts[1]


def forbidden_arrows(edges: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} -> {n}"
        for m, targets in edges.items()
        for n in targets
        if part_of(m) != part_of(n) and part_of(n) not in ARROWS[part_of(m)]
    )


def test_every_module_belongs_to_a_part_of_the_table():
    assert {part_of(m) for m in MODULES} == set(ARROWS)


def test_every_arrow_is_one_the_table_allows():
    assert forbidden_arrows(graph()) == []
    registries = {"charlstm.nn.cells", "charlstm.engines.registry"}
    assert {n for n in graph()["charlstm.config"] if part_of(n) in ("nn", "engines")} <= registries


def test_the_table_check_catches_an_upward_arrow():
    edges = {m: set(targets) for m, targets in graph().items()}
    edges["charlstm.store.checkpoint"].add("charlstm.training.loop")
    assert forbidden_arrows(edges) == ["charlstm.store.checkpoint -> charlstm.training.loop"]


def test_the_root_holds_little_but_the_parts():
    """The package root is the map's legend: the public API, the entry point, every default, the
    errors and the one unit conversion; every other module lives in a part named for its job."""
    at_root = {m for m in MODULES if m.count(".") == 1 and MODULES[m].name != "__init__.py"}
    assert at_root == {"charlstm.__main__", "charlstm.errors", "charlstm.units"}
    parts = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert parts == {"config", "text", "nn", "store", "engines", "training", "inference", "insight", "api", "cli"}


def module_names() -> list[str]:
    """The name of every module and subpackage of charlstm (a package by its folder's name)."""
    names = [p.stem for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    return names + [p.name for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"]


def confusable(a: str, b: str) -> bool:
    """Two names a reader could take for one another: the same, one the other with a prefix or a
    suffix (`run`/`runs`, `views`/`ui_views`, `eval`/`evaluate`), or plurals of one word."""
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    return len(short) > 2 and (long.startswith(short) or long.endswith(short))


def test_no_two_modules_a_reader_could_confuse():
    """The names are the map: no two modules or parts share a name or differ by a prefix, a suffix
    or a plural, except the commands in cli/, each named as the command a person types."""
    commands = {p.stem for p in (PACKAGE / "cli").glob("*.py")} & {"train", "sample", "eval", "report", "inspect"}
    names = [n for n in module_names() if n not in commands]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if confusable(a, b)]
    assert pairs == []
    assert confusable("run", "runs") and confusable("views", "ui_views") and not confusable("nn", "rnn")


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
UI = {m for m in MODULES if m.startswith("charlstm.cli.ui.")}


def test_typer_and_rich_each_have_one_door():
    """typer behind the command line (charlstm/cli/), rich behind the ui modules; the library
    reaches neither, and nothing but the command line draws — and the Python front door's training,
    which shows progress with the CLI's own display (cli.ui.progress, when not quiet)."""
    display = {"charlstm.api.fitting"}
    assert importers_of("typer") and importers_of("typer") <= CLI
    assert importers_of("rich") and importers_of("rich") <= UI
    assert importers_of("charlstm.cli") <= {"charlstm.__main__"} | display | CLI
    for ui in UI:
        assert importers_of(ui) <= CLI | UI | (
            display if ui in ("charlstm.cli.ui.progress", "charlstm.cli.ui.console") else set()
        ), ui
    assert importers_of("charlstm.insight.report") <= CLI | {"charlstm.api.trained"} | {
        m for m in MODULES if m.startswith("charlstm.insight.report")
    }
    assert importers_of("playwright") == set()  # a test dependency only


def test_torch_has_one_door_and_only_the_torch_engine_opens_it():
    """torch is imported by the torch engine, its modules, its devices and its DDP half alone, and they only
    when make_engine or engines.check asks for them: the NumPy engine, sampling and every view never import
    it (at run time too: tests/test_cli_engines.py hides torch and watches)."""
    assert importers_of("torch") == {
        "charlstm.engines.torch_engine",
        "charlstm.engines.torch_net",
        "charlstm.engines.torch_devices",
        "charlstm.engines.distributed",
    }
    assert importers_of("charlstm.engines.torch_engine") == {"charlstm.engines"}
    assert importers_of("charlstm.engines.torch_devices") == {"charlstm.engines", "charlstm.engines.torch_engine"}
    assert importers_of("charlstm.engines.torch_net") == {"charlstm.engines.torch_engine"}
    assert importers_of("charlstm.engines.distributed") == {"charlstm.engines.torch_engine"}
