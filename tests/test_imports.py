"""Imports inside snakesweep/ run one way, from the reports down to the records.

The paragraph below is the one to keep in snakesweep/__init__.py's docstring (LAYERS here is
its data; the two change together):

    Layers, top to bottom; a module imports its own layer or a lower one, never a higher one,
    and no two modules import each other, directly or round a circle (function-level imports
    count too; only `if TYPE_CHECKING:` imports, which never run, are exempt):
    summary | report (the package) | collect, preview, status | state, reconcile |
    steps, supervise | plan | search | grid | space | workloads (the package) | config |
    generation | measure | results, rounds, bookkeeping, table, params, errors, stats, energy,
    measure_lock, layout, procs.
    The step side (steps, supervise) reads the plan; workloads resolve command workloads with
    the config models at parse time; generation and measure never import config at run time (no
    pydantic in a measurement); the bottom layer holds one owner per on-disk format and small helpers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "snakesweep"

# Top to bottom. Names are the first component under the package (a subpackage is one entry,
# all its submodules included); "__init__" is the package's own __init__.py.
LAYERS: list[tuple[str, ...]] = [
    ("compare", "export"),
    ("summary",),
    ("report",),
    ("collect", "preview", "status"),
    ("state", "reconcile"),
    ("steps", "supervise"),
    ("plan",),
    ("search",),
    ("hyperband", "pbt"),
    ("grid",),
    ("space",),
    ("workloads",),
    ("config",),
    ("generation",),
    ("measure",),
    (
        "results",
        "rounds",
        "bookkeeping",
        "table",
        "params",
        "errors",
        "stats",
        "energy",
        "measure_lock",
        "layout",
        "procs",
        "sweepfile",
        "markdown",
        "threads",
        "profile",
        "argv",
        "__init__",
    ),
]


def _module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (subpackages included)."""
    root = package_dir.name
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if any(not part.isidentifier() for part in parts):
            continue  # not importable (e.g. a stray copy "x 2.py")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([root, *parts])] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: any depth, but not under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is a module of the package (None: outside it)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The package's modules one import statement loads (`from a import b` loads a.b if b is a module)."""
    if isinstance(node, ast.Import):
        found = [_resolve(alias.name, modules) for alias in node.names]
        return [target for target in found if target]
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base_parts = package[: len(package) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    targets = []
    for alias in node.names:
        full = f"{base}.{alias.name}"
        target = full if full in modules else _resolve(base, modules)  # a submodule, or a name of base
        if target:
            targets.append(target)
    return targets


def import_edges(package_dir: Path) -> dict[str, dict[str, int]]:
    """Module -> {imported module of the same package: first line number}; self-imports dropped."""
    modules = _module_names(package_dir)
    edges: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out = edges.setdefault(module, {})
        for node in _imports(tree):
            for target in _targets(module, path, node, modules):
                if target != module:
                    out.setdefault(target, node.lineno)
    return edges


def _layer_key(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _circles(edges: dict[str, dict[str, int]]) -> list[tuple[list[str], list[str]]]:
    """A shortest circle (a -> ... -> a) and its group, for each strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the package is small, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, {})):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)

    circles = []
    for group in sorted(groups):  # breadth-first inside the group, back to its first member
        members, start = set(group), group[0]
        came_from: dict[str, str] = {}
        queue, end = [start], None
        while queue and end is None:
            node = queue.pop(0)
            for succ in sorted(edges.get(node, {})):
                if succ == start:
                    end = node
                    break
                if succ in members and succ not in came_from:
                    came_from[succ] = node
                    queue.append(succ)
        route = [start]
        while end is not None and end != start:
            route.insert(1, end)
            end = came_from[end]
        circles.append(([*route, start], group))
    return circles


def check_imports(package_dir: Path, layers: Sequence[Sequence[str]] = LAYERS) -> list[str]:
    """Problems with the package's imports: modules in no layer, upward imports, circles."""
    rank = {name: position for position, layer in enumerate(layers) for name in layer}
    edges = import_edges(package_dir)
    root = package_dir.parent
    problems = []
    for module in sorted(edges):
        if _layer_key(module) not in rank:
            problems.append(f"{module} is in no layer: place it in LAYERS (tests/test_imports.py)")
    for module, targets in sorted(edges.items()):
        source_key = _layer_key(module)
        for target, line in sorted(targets.items()):
            target_key = _layer_key(target)
            if source_key in rank and target_key in rank and rank[target_key] < rank[source_key]:
                path = _module_names(package_dir)[module].relative_to(root)
                problems.append(
                    f"{path}:{line}: {module} imports {target}, a higher layer "
                    f"({target_key!r} is above {source_key!r})"
                )
    for circle, group in _circles(edges):
        others = sorted(set(group) - set(circle))
        problems.append("import circle: " + " -> ".join(circle) + (f" (with {', '.join(others)})" if others else ""))
    return problems


def test_snakesweep_imports_run_one_way() -> None:
    problems = check_imports(PACKAGE_DIR)
    assert problems == [], "\n".join(problems)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_reports_upward_imports_and_circles(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    _write(
        package,
        {
            "__init__.py": "",
            "top.py": "from . import low\n",  # downward: fine
            "low.py": "def f():\n    from pkg import top  # function-level, upward\n",
            "a.py": "import pkg.b\n",  # a <-> b in one layer: a circle, not an upward import
            "b.py": "from .a import x\n",
            "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import top\n",
            "sub/__init__.py": "from .inner import y\n",
            "sub/inner.py": "from ..top import z\n",  # the subpackage is one layer, below top
        },
    )
    layers = [("top",), ("a", "b", "typed"), ("sub",), ("low", "__init__")]
    problems = check_imports(package, layers)
    assert problems == [
        "pkg/low.py:2: pkg.low imports pkg.top, a higher layer ('top' is above 'low')",
        "pkg/sub/inner.py:1: pkg.sub.inner imports pkg.top, a higher layer ('top' is above 'sub')",
        "import circle: pkg.a -> pkg.b -> pkg.a",
        "import circle: pkg.low -> pkg.top -> pkg.low",
    ]
    # the same package with the upward imports gone, and a module in no layer
    _write(package, {"low.py": "", "sub/inner.py": "", "b.py": "", "extra.py": "import pkg.low\n"})
    assert check_imports(package, layers) == ["pkg.extra is in no layer: place it in LAYERS (tests/test_imports.py)"]


def test_checker_resolves_relative_and_from_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    _write(
        package,
        {
            "__init__.py": "",
            "m.py": "from pkg import n, VERSION\nfrom pkg.sub import k\nimport json\n",
            "n.py": "",
            "sub/__init__.py": "from . import k\nfrom .. import n\n",
            "sub/k.py": "from . import CONST\n",
        },
    )
    assert import_edges(package) == {
        "pkg": {},
        "pkg.m": {"pkg.n": 1, "pkg": 1, "pkg.sub.k": 2},
        "pkg.n": {},
        "pkg.sub": {"pkg.sub.k": 1, "pkg.n": 2},
        "pkg.sub.k": {"pkg.sub": 1},
    }
