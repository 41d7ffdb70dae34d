"""The package computes its products and factorizations with :mod:`deleverage.portable_linalg`,
never with BLAS or LAPACK, so a seed gives the same result hash on every x86-64 machine.

OpenBLAS (NumPy's BLAS, built with ``DYNAMIC_ARCH``) picks its kernels by the CPU: fused
multiply-adds on Haswell and later, none on older cores, AVX-512 on SkylakeX; a product then
differs in the last bit between machine types and a cascade amplifies it. The scan (``ast``)
fails on ``@``, ``np.dot`` and kin, ``.dot(`` and ``np.linalg`` / ``scipy.linalg`` anywhere in
the package, compiled kernels included (numba lowers ``@`` and ``np.dot`` to BLAS too). The
subprocess test runs a small correlated world under the CPU's own kernels and under
``OPENBLAS_CORETYPE=Nehalem`` (no AVX, no FMA) and compares every hash.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deleverage

SRC = Path(deleverage.__file__).parent
#: NumPy's functions that call BLAS (or may: ``einsum`` with ``optimize``).
BLAS_CALLS = frozenset({"dot", "vdot", "inner", "matmul", "tensordot", "einsum", "einsum_path"})
#: Calls allowed where they feed no result: ``validate_correlation`` accepts or rejects a
#: matrix by its smallest eigenvalue and names it in the error (the factor the paths use comes
#: from ``portable_linalg``).
ALLOWED = {"prices/processes.py": ["np.linalg.eigvalsh"]}


def blas_uses(source: str) -> list[str]:
    """Each use of BLAS or LAPACK in ``source``: ``@``, ``np.dot`` and kin, a ``.dot(``
    method, ``np.linalg.*``, and imports of ``numpy.linalg`` or ``scipy.linalg``."""
    found: list[tuple[int, int, str]] = []

    def add(node: ast.stmt | ast.expr, what: str) -> None:
        found.append((node.lineno, node.col_offset, f"line {node.lineno}: {what}"))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.MatMult):
            add(node, "@")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = ast.unparse(node.func)
            root = name.split(".")[0]
            numpy_blas = root in {"np", "numpy"} and node.func.attr in BLAS_CALLS
            lapack = name.startswith(("np.linalg.", "numpy.linalg.", "scipy.linalg."))
            if numpy_blas or lapack or node.func.attr == "dot":
                add(node, name)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            modules += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for module in modules:
                if module.startswith(("numpy.linalg", "scipy.linalg")):
                    add(node, f"import {module}")
            if isinstance(node, ast.ImportFrom) and node.module in {"numpy", "scipy"}:
                for alias in node.names:
                    if alias.name in BLAS_CALLS | {"linalg"}:
                        add(node, f"from {node.module} import {alias.name}")
    return [what for *_, what in sorted(found)]


def test_no_blas_or_lapack_in_the_package() -> None:
    bad = {}
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        uses = blas_uses(path.read_text(encoding="utf-8"))
        allowed = ALLOWED.get(name, [])
        if [u for u in uses if u.split(": ", 1)[1] not in allowed]:
            bad[name] = uses
    assert bad == {}, f"use deleverage.portable_linalg instead of BLAS/LAPACK: {bad}"


def test_the_allowed_calls_are_still_there() -> None:
    # An allow-list entry whose call went away would silently allow a new one.
    for name, calls in ALLOWED.items():
        uses = [u.split(": ", 1)[1] for u in blas_uses((SRC / name).read_text(encoding="utf-8"))]
        assert uses == calls, name


def test_the_scan_finds_each_form() -> None:
    source = (
        "import numpy as np\nfrom numba import njit\nfrom scipy.linalg import cholesky\n"
        "from numpy import dot\n"
        "def f(a, b):\n    c = a @ b\n    c @= b\n    return np.dot(a, b) + a.dot(b)\n"
        "@njit(cache=True)\ndef g(a, b):\n"
        "    return np.linalg.solve(a, b) + np.einsum('i,i', a, b)\n"
        "def h(a):\n    return np.sum(a) * np.outer(a, a)\n"
    )
    assert blas_uses(source) == [
        "line 3: import scipy.linalg",
        "line 4: from numpy import dot",
        "line 6: @",
        "line 7: @",
        "line 8: np.dot",
        "line 8: a.dot",
        "line 11: np.linalg.solve",
        "line 11: np.einsum",
    ]


def _dynamic_openblas() -> bool:
    config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return "openblas" in config.get("name", "") and "DYNAMIC_ARCH" in config.get(
        "openblas configuration", ""
    )


#: The correlated world the subprocesses run (prints its hashes).
WORLD = Path(__file__).with_name("blas_world.py")


def _run_world(coretype: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    env["PYTHONPATH"] = os.pathsep.join([str(SRC.parent), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(WORLD)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(not _dynamic_openblas(), reason="NumPy's BLAS is not DYNAMIC_ARCH OpenBLAS")
def test_a_correlated_world_hashes_the_same_under_two_openblas_core_types() -> None:
    own = _run_world(None)
    old = _run_world("Nehalem")

    assert own.count("journal") == 2
    assert own == old
