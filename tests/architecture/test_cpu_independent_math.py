"""Simulation and analytics code calls :mod:`deleverage.portable_math`, never NumPy's
transcendental ufuncs, outside compiled kernels.

NumPy picks those ufuncs' loops by the CPU (AVX-512 approximations vs the C library's), so a
call of ``np.exp`` on a population or a path gives other numbers on another machine type. Inside
a numba kernel ``np.exp`` lowers to libm and is exempt. The scan reads the source with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import deleverage

SRC = Path(deleverage.__file__).parent
#: NumPy's ufuncs whose float64 loops differ by CPU (numpy/numpy#23523; SVML-backed on AVX-512).
CPU_DEPENDENT = frozenset(
    {
        *("exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "power", "float_power"),
        *("cbrt", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh"),
        *("tanh", "arcsinh", "arccosh", "arctanh"),
    }
)
EXEMPT = {SRC / "portable_math.py"}


def _compiled(node: ast.FunctionDef) -> bool:
    names = {ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list}
    return any(n.split(".")[-1] in {"njit", "jit", "vectorize", "guvectorize"} for n in names)


def offending_calls(source: str) -> list[str]:
    """``np.<ufunc>(`` calls of :data:`CPU_DEPENDENT` outside numba-decorated functions."""
    found: list[str] = []

    def visit(node: ast.AST, compiled: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = compiled or (isinstance(child, ast.FunctionDef) and _compiled(child))
            if (
                not inner
                and isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and isinstance(child.func.value, ast.Name)
                and child.func.value.id in {"np", "numpy"}
                and child.func.attr in CPU_DEPENDENT
            ):
                found.append(f"line {child.lineno}: {ast.unparse(child.func)}")
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def test_no_cpu_dependent_numpy_ufunc_outside_kernels() -> None:
    bad = {
        str(path.relative_to(SRC)): calls
        for path in sorted(SRC.rglob("*.py"))
        if path not in EXEMPT and (calls := offending_calls(path.read_text(encoding="utf-8")))
    }
    assert bad == {}, f"use deleverage.portable_math instead of NumPy's ufuncs: {bad}"


def test_the_scan_finds_a_call_and_exempts_kernels() -> None:
    source = (
        "import numpy as np\nfrom numba import njit\n"
        "def f(x):\n    return np.exp(x) + np.sqrt(x)\n"
        "@njit(cache=True)\ndef g(x):\n    return np.log(x)\n"
        "@njit\ndef h(x):\n    def inner(y):\n        return np.power(y, 2.0)\n"
        "    return inner(x)\n"
        "def k(x):\n    return np.power(x, 3.0)\n"
    )
    assert offending_calls(source) == ["line 4: np.exp", "line 14: np.power"]
