"""The tree is the architecture: no import circles, no oversized files, layers point one way.

These read the source with ``ast`` (nothing is imported), so they fail on the commit that adds
a circle or an oversized module, whatever the tests exercise.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

import deleverage

SRC = Path(deleverage.__file__).parent
PACKAGE = "deleverage"
MAX_LINES = 900

#: Each layer may import only itself and the layers listed after it (front doors first).
LAYERS = (
    ("__main__",),
    ("cli",),
    ("service",),
    ("sweep",),
    ("predict",),
    ("analytics",),
    ("world",),
    ("sim",),
    ("prices",),
    ("protocols",),
    ("engine",),
    ("venues",),
    ("liquidity",),
    ("rules",),
    ("spec",),
)
#: Foundations importable from anywhere.
BASE = {
    *("errors", "tolerance", "_moved", "_files", "_kernel_cache"),
    *("portable_math", "portable_linalg"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _runtime_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package that ``name`` imports at run time (function bodies included;
    imports under ``if TYPE_CHECKING:`` excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith(PACKAGE))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                if base.startswith(PACKAGE):
                    for alias in child.names:
                        full = f"{base}.{alias.name}"
                        found.add(full if full in known else base)
            visit(child)

    visit(tree)
    return {m for m in found if m in known and m != name}


def _edges() -> list[tuple[str, str]]:
    modules = _modules()
    return [
        (name, target)
        for name, path in modules.items()
        for target in sorted(_runtime_imports(name, path, set(modules)))
    ]


def test_runtime_imports_have_no_circles() -> None:
    names = sorted(_modules())
    index = {name: k for k, name in enumerate(names)}
    edges = _edges()
    rows = np.array([index[a] for a, _ in edges])
    cols = np.array([index[b] for _, b in edges])
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(len(names), len(names)))
    _, label = connected_components(graph, directed=True, connection="strong")
    circles = [
        sorted(name for name, k in zip(names, label, strict=True) if k == comp)
        for comp in set(label.tolist())
        if (label == comp).sum() > 1
    ]
    assert circles == [], f"import circles (strongly connected modules): {circles}"


def test_the_circle_check_finds_a_circle() -> None:
    # The check itself: two modules importing each other form one strongly connected set.
    graph = coo_matrix((np.ones(2), ([0, 1], [1, 0])), shape=(3, 3))
    count, _ = connected_components(graph, directed=True, connection="strong")
    assert count == 2


def test_no_source_file_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for path in SRC.rglob("*.py")
    }
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert too_big == {}, f"files over {MAX_LINES} lines: {too_big}"


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_dependencies_point_one_way() -> None:
    rank = {name: k for k, layer in enumerate(LAYERS) for name in layer}
    wrong = []
    for source, target in _edges():
        a, b = _component(source), _component(target)
        if a == b or b in BASE or a in BASE or "" in (a, b):
            continue
        if a not in rank or b not in rank:
            wrong.append(f"{source} -> {target} (component not in LAYERS)")
        elif rank[b] < rank[a] or (rank[b] == rank[a] and a != b):
            wrong.append(f"{source} -> {target}")
    assert wrong == [], "imports against the layering:\n" + "\n".join(wrong)


def test_the_public_api_is_pinned() -> None:
    assert sorted(deleverage.__all__) == deleverage.__all__
    assert deleverage.__all__ == [
        "AccountKind",
        "ConstantDepthBook",
        "DeleverageError",
        "Exchange",
        "Journal",
        "L2Book",
        "MarginMode",
        "MarginTier",
        "MarketSpec",
        "PowerLawImpact",
        "RunResult",
        "Scenario",
        "Venue",
        "__version__",
        "list_presets",
        "load_scenario",
        "preset",
        "preset_info",
        "run",
    ]
    for name in deleverage.__all__:
        assert getattr(deleverage, name) is not None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("deleverage.exchange", "deleverage.engine.exchange"),
        ("deleverage.presets", "deleverage.venues"),
        ("deleverage.margin", "deleverage.rules.margin"),
        ("deleverage.cli_run", "deleverage.cli.run"),
    ],
)
def test_old_module_paths_still_import_with_a_warning_naming_the_new_one(
    old: str, new: str
) -> None:
    import importlib
    import sys

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(new in str(w.message) and w.category is FutureWarning for w in caught)
