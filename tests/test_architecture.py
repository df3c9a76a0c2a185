"""The package's shape, computed from the source with `ast`: no import cycles, layers point down, the contestant
imports no judge code, the judge imports no module file, contributed modules use only the public face, and the
architecture document names only paths that exist.

Nothing here keeps a list of modules; the graph is read from every import statement under `harness/`. The only
hand-kept list is the layer order, and a module that belongs to no layer fails the test.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, work_unit

ROOT_PACKAGE = "harness"

# Bottom to top. A module may import its own layer and the layers below it, never one above. A module belongs to the
# layer of its longest matching prefix; the root package and `python -m harness` sit on top (exact names).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness.core", "harness.results", "harness.protocol"),
    ("harness.store",),  # reads results documents only
    ("harness.reports",),  # reads the store only: never a gate, the judge, the worker or a module
    ("harness.bot",),  # reads results, the store and the reports; never a gate, the judge, the worker or a module
    ("harness.kinds",),
    ("harness.registry",),
    ("harness.perf", "harness.integration"),
    ("harness.gates",),
    ("harness.judge", "harness.worker"),
    ("harness.cli",),
    ("harness", "harness.__main__"),
)
EXACT_ONLY = frozenset({"harness", "harness.__main__"})

CONTESTANT = ("harness.worker",)
JUDGE = ("harness.judge", "harness.gates", "harness.cli")  # trusted side only; the contestant never imports it
MODULE_IMPORTER = "harness.registry.loader"  # imports (and so runs) untrusted module files

DOC = REPO / "docs" / "architecture.md"
DOC_PATH_ROOTS = ("harness", "modules", "benchmarks", "tests")


# ---------------------------------------------------------------------------------------------------------------
# The import graph


@dataclass(frozen=True)
class Edge:
    """`importer` runs `target` when it executes the import on `line`; `explicit` is False for a parent package."""

    importer: str
    target: str
    line: int
    explicit: bool


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module and package under `root/package`, by dotted name; a directory without `__init__.py` that holds
    Python files is a namespace package (no code of its own) and maps to the directory."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
        for depth in range(1, len(parts)):
            found.setdefault(".".join(parts[:depth]), root.joinpath(*parts[:depth]))
    return found


def is_package(name: str, modules: Mapping[str, Path]) -> bool:
    path = modules[name]
    return path.is_dir() or path.name == "__init__.py"


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def known_prefix(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest dotted prefix of `name` that is a module we know (an import of `harness.x.attr` runs `harness.x`)."""
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        candidate = ".".join(parts[:depth])
        if candidate in modules:
            return candidate
    return None


def from_base(node: ast.ImportFrom, importer: str, modules: Mapping[str, Path]) -> str:
    """The absolute module a `from ... import` statement reads from, resolving leading dots against the importer."""
    if node.level == 0:
        return node.module or ""
    package = importer if is_package(importer, modules) else importer.rpartition(".")[0]
    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def imported_names(tree: ast.AST, importer: str, modules: Mapping[str, Path]) -> Iterator[tuple[str, int]]:
    """Each module an import statement anywhere in the file names (functions and `if TYPE_CHECKING:` included),
    with `from pkg import name` read as the submodule `pkg.name` when that is a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = from_base(node, importer, modules)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in modules else base), node.lineno


def parent_packages(target: str, importer: str) -> Iterator[str]:
    """The packages whose `__init__` an import of `target` runs first, except the root package (every module is inside
    it) and packages holding the importer (a package's own submodules importing siblings do not re-enter it)."""
    parts = target.split(".")
    for depth in range(len(parts) - 1, 1, -1):
        parent = ".".join(parts[:depth])
        if not within(importer, parent):
            yield parent


def module_edges(root: Path, package: str) -> list[Edge]:
    """Every import between modules of `package`, explicit ones and the parent packages Python runs implicitly."""
    modules = module_names(root, package)
    edges: list[Edge] = []
    for importer, path in modules.items():
        if path.is_dir():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, line in imported_names(tree, importer, modules):
            target = known_prefix(name, modules) if within(name, package) else None
            if target is None or target == importer:
                continue
            edges.append(Edge(importer, target, line, explicit=True))
            edges.extend(Edge(importer, parent, line, explicit=False) for parent in parent_packages(target, importer))
    return edges


def adjacency(edges: Iterable[Edge], avoid: frozenset[str] = frozenset()) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.target not in avoid:
            graph.setdefault(edge.importer, set()).add(edge.target)
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle as a closed chain [a, b, c, a], or None; depth-first, visiting nodes in sorted order."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)) is not None:
            return cycle
    return None


def closure(graph: Mapping[str, Iterable[str]], starts: Iterable[str]) -> dict[str, str | None]:
    """Every module reachable from `starts`, each mapped to the module that reached it first, breadth first so the
    chains read back are shortest (None for a start)."""
    reached: dict[str, str | None] = dict.fromkeys(starts)
    frontier = deque(reached)
    while frontier:
        node = frontier.popleft()
        for target in sorted(graph.get(node, ())):
            if target not in reached:
                reached[target] = node
                frontier.append(target)
    return reached


def chain(reached: Mapping[str, str | None], end: str) -> str:
    """The import chain from a start to `end`, readable: a -> b -> c."""
    links = [end]
    while (previous := reached[links[-1]]) is not None:
        links.append(previous)
    return " -> ".join(reversed(links))


def layer_of(name: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix if prefix in EXACT_ONLY else within(name, prefix)
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    found = module_edges(REPO, ROOT_PACKAGE)
    assert len({edge.importer for edge in found}) > 50, "the import graph of harness/ came out nearly empty"
    return found


# ---------------------------------------------------------------------------------------------------------------
# The graph builder and cycle finder, on small synthetic inputs


def write_tree(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_cycle_finder_reports_a_cycle_as_a_chain() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"d"}}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "x": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y"}}) == ["y", "y"]


def test_graph_builder_reads_every_kind_of_import(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.low import thing\n",
            "pkg/low.py": "thing = 1\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import b\n",
            "pkg/sub/b.py": "def f():\n    from ..low import thing\n    from . import a\n",
            "pkg/top.py": "import pkg.sub.b\nimport torch\n",
            "pkg/ns/c.py": "from pkg.sub.a import name\n",
        },
    )
    found = {(e.importer, e.target, e.explicit) for e in module_edges(tmp_path, "pkg")}
    assert found == {
        ("pkg", "pkg.low", True),
        ("pkg.sub.a", "pkg.sub.b", True),  # under TYPE_CHECKING; its own package pkg.sub is not re-entered
        ("pkg.sub.b", "pkg.low", True),  # relative, inside a function
        ("pkg.sub.b", "pkg.sub.a", True),
        ("pkg.top", "pkg.sub.b", True),
        ("pkg.top", "pkg.sub", False),  # the parent package runs first; the root package is left out
        ("pkg.ns.c", "pkg.sub.a", True),
        ("pkg.ns.c", "pkg.sub", False),
    }
    assert find_cycle(adjacency(module_edges(tmp_path, "pkg"))) == ["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]


# ---------------------------------------------------------------------------------------------------------------
# a. No import cycle


def test_no_import_cycle_in_harness(edges: list[Edge]) -> None:
    cycle = find_cycle(adjacency(edges))
    assert cycle is None, "import cycle in harness/: " + " -> ".join(cycle or [])


# ---------------------------------------------------------------------------------------------------------------
# b. Contributed modules use only the public face


def public_names() -> set[str]:
    tree = ast.parse((REPO / ROOT_PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            names = ast.literal_eval(node.value)
            assert isinstance(names, list | tuple) and all(isinstance(n, str) for n in names)
            return set(names)
    raise AssertionError(f"{ROOT_PACKAGE}/__init__.py defines no __all__")


def private_harness_imports(source: str, public: set[str]) -> Iterator[tuple[int, str]]:
    """(line, statement) for each import of harness that goes past its public face."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if within(alias.name, ROOT_PACKAGE) and alias.name != ROOT_PACKAGE:
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and within(node.module or "", ROOT_PACKAGE):
            if node.module != ROOT_PACKAGE:
                yield node.lineno, f"from {node.module} import ..."
                continue
            for alias in node.names:
                if alias.name not in public:
                    yield node.lineno, f"from {ROOT_PACKAGE} import {alias.name}"


def test_private_import_checker_flags_what_it_should() -> None:
    source = (
        "import harness\nfrom harness import register, ErrorBound\nimport harness.kinds\n"
        "from harness.kinds import KINDS\nfrom harness import KINDS\nfrom harness import *\n"
    )
    found = list(private_harness_imports(source, {"register", "ErrorBound"}))
    assert [line for line, _ in found] == [3, 4, 5, 6]


def test_modules_import_only_the_public_face_of_harness() -> None:
    public = public_names()
    assert "register" in public
    files = sorted((REPO / "modules").rglob("*.py"))
    assert files, "no module files under modules/"
    violations = [
        f"{path.relative_to(REPO)}:{line}: {statement} (only {sorted(public)} may be imported, from harness itself)"
        for path in files
        for line, statement in private_harness_imports(path.read_text(encoding="utf-8"), public)
    ]
    assert not violations, "\n".join(violations)


# ---------------------------------------------------------------------------------------------------------------
# c. The trust boundary in the import graph


def test_contestant_imports_no_judge_code(edges: list[Edge]) -> None:
    graph = adjacency(edges)
    # The contestant process also runs harness/__init__.py (`python -m harness.worker`), so it starts there too.
    starts = sorted({e.importer for e in edges if any(within(e.importer, p) for p in CONTESTANT)} | {ROOT_PACKAGE})
    reached = closure(graph, starts)
    bad = [chain(reached, name) for name in sorted(reached) if any(within(name, p) for p in JUDGE)]
    assert not bad, "the contestant imports judge-only code:\n" + "\n".join(bad)


def test_judge_imports_no_module_loader_nor_contestant_code(edges: list[Edge]) -> None:
    # The root package re-exports `register` for contributors and so imports the loader; the judge reaching it only
    # through the root package is allowed, so the closure does not follow edges into it.
    graph = adjacency(edges, avoid=frozenset({ROOT_PACKAGE}))
    starts = sorted({e.importer for e in edges if any(within(e.importer, p) for p in JUDGE)})
    assert any(within(s, "harness.judge") for s in starts) and any(within(s, "harness.gates") for s in starts)
    reached = closure(graph, starts)
    forbidden = (MODULE_IMPORTER, *CONTESTANT)
    bad = [chain(reached, name) for name in sorted(reached) if any(within(name, p) for p in forbidden)]
    message = "the judge imports the module loader (which runs module files) or contestant code:\n"
    assert not bad, message + "\n".join(bad)


# ---------------------------------------------------------------------------------------------------------------
# d. Layers point down


def test_every_module_has_a_layer(edges: list[Edge]) -> None:
    names = {e.importer for e in edges} | {e.target for e in edges} | set(module_names(REPO, ROOT_PACKAGE))
    orphans = sorted(name for name in names if layer_of(name) is None)
    assert not orphans, f"modules in no layer (add their package to LAYERS in {Path(__file__).name}): {orphans}"


def upward_imports(edges: Iterable[Edge]) -> list[str]:
    """Explicit imports whose target sits in a higher layer than the importer, one line each."""
    found: set[str] = set()
    for e in edges:
        low, high = layer_of(e.importer), layer_of(e.target)
        if e.explicit and low is not None and high is not None and low < high:
            found.add(f"{e.importer} (layer {low}: {LAYERS[low]}) imports {e.target} (layer {high}), line {e.line}")
    return sorted(found)


def test_layers_point_down(edges: list[Edge]) -> None:
    upward = upward_imports(edges)
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


# ---------------------------------------------------------------------------------------------------------------
# The architecture document names only paths that exist


def doc_paths(text: str) -> list[str]:
    """Every repository path written as inline code (`harness/...`, `modules/...`, ...), fenced blocks left out."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    spans = re.findall(r"`([^`\n]+)`", prose)
    roots = "|".join(DOC_PATH_ROOTS)
    return [span for span in spans if re.match(rf"(?:{roots})/", span)]


def test_doc_path_finder_reads_inline_code_only() -> None:
    text = "See `harness/core/` and `tests/x.py`, not `harness check` or harness/kinds/.\n```\n`harness/no/`\n```\n"
    assert doc_paths(text) == ["harness/core/", "tests/x.py"]


def test_architecture_doc_names_only_existing_paths() -> None:
    paths = doc_paths(DOC.read_text(encoding="utf-8"))
    assert len(paths) >= 10, f"{DOC.relative_to(REPO)} names only {len(paths)} repository paths"
    missing = sorted({p for p in paths if not (REPO / p).exists()})
    assert not missing, f"{DOC.relative_to(REPO)} names paths that do not exist: {missing}"


def test_a_test_worker_takes_whole_files() -> None:
    """pytest-xdist hands each worker whole files (tests/conftest.py), the adversarial corpus's files as one, so a
    file's module-scoped fixtures (whole `harness run`s) run once, not once per worker."""
    assert work_unit("tests/test_cli.py::test_unknown_gate_is_a_usage_error") == "tests/test_cli.py"
    assert work_unit("tests/test_cli.py::test_x[a::b@c]") == "tests/test_cli.py"
    corpus = [
        "tests/adversarial/test_timing.py::test_trick[rms_norm_memoized]",
        "tests/adversarial/test_isolation.py::t",
    ]
    assert {work_unit(nodeid) for nodeid in corpus} == {"tests/adversarial"}
