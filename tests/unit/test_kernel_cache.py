"""The kernel cache's folder follows the sources the kernels are built from
(``deleverage._kernel_cache``): numba's own check sees only a kernel's defining file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import pytest

from deleverage import _kernel_cache
from deleverage._kernel_cache import (
    configure_kernel_cache,
    kernel_sources,
    prune_kernel_caches,
    sources_key,
)


def _package(tmp_path: Path) -> Path:
    """A small package laid out like ``deleverage``: a kernel module importing a constant
    from another module, which imports a third; a module no kernel reaches; a package
    imported by name."""
    root = tmp_path / "pkg"
    files = {
        "__init__.py": "from deleverage.cli import main\n",
        "kern.py": """\
            from numba import njit
            from deleverage.consts import LEVEL
            from deleverage.sub import (
                helpers,
            )

            @njit(cache=True)
            def f(x):
                return x * LEVEL
            """,
        "consts.py": "from deleverage.deeper import BASE\nLEVEL = BASE * 2.0\n",
        "deeper.py": "BASE = 1.5\n",
        "cli.py": "def main():\n    return 0\n",
        "sub/__init__.py": "",
        "sub/helpers.py": "K = 3\n",
        "sub/other.py": "K = 4\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_sources_are_the_kernel_modules_and_what_they_import(tmp_path: Path) -> None:
    root = _package(tmp_path)
    names = [p.relative_to(root).as_posix() for p in kernel_sources(root)]
    assert names == [
        "consts.py", "deeper.py", "kern.py", "sub/__init__.py", "sub/helpers.py",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "moves"),
    [
        ("kern.py", True),
        ("consts.py", True),
        ("deeper.py", True),  # a constant two imports away still reaches the kernel
        ("sub/helpers.py", True),  # a submodule imported by name in parentheses
        ("cli.py", False),
        ("sub/other.py", False),
        ("__init__.py", False),
    ],
)
def test_key_moves_with_the_kernels_sources_only(tmp_path: Path, name: str, moves: bool) -> None:
    root = _package(tmp_path)
    before = sources_key(root)
    assert sources_key(root) == before  # a function of the contents
    path = root / name
    path.write_text(path.read_text() + "# edited\n")
    assert (sources_key(root) != before) is moves


def test_the_packages_kernels_cache_in_the_keyed_folder() -> None:
    folder = _kernel_cache.KERNEL_CACHE
    if folder is None:
        pytest.skip("NUMBA_CACHE_DIR was set before deleverage was imported")
    from deleverage.engine import kernels
    from deleverage.engine.risk import batch_settle

    assert folder.name == f"numba-{sources_key()}"
    assert str(folder) == numba.config.CACHE_DIR  # type: ignore[attr-defined]
    for kernel in (kernels.cross_scan_nb, batch_settle.settle_money_nb):
        path = kernel._cache._cache_path  # type: ignore[union-attr]
        assert Path(path).is_relative_to(folder)
    sources = {p.relative_to(_kernel_cache.PACKAGE).as_posix() for p in kernel_sources()}
    assert {"engine/kernels.py", "sim/quiet.py", "engine/quiet_calls.py", "spec/__init__.py"} <= (
        sources
    )
    assert (_kernel_cache.PACKAGE / "cli/app.py").is_file()
    assert "cli/app.py" not in sources
    assert "service/app.py" not in sources


def test_a_users_numba_cache_dir_wins(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "mine")}
    code = (
        "import deleverage, numba; "
        "print(deleverage._kernel_cache.KERNEL_CACHE, numba.config.CACHE_DIR)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", str(tmp_path / "mine")]


def test_configure_keeps_a_set_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert configure_kernel_cache(_package(tmp_path)) is None


def test_prune_removes_other_versions_only(tmp_path: Path) -> None:
    root = _package(tmp_path)
    cache = root / "__pycache__"
    current = cache / f"numba-{sources_key(root)}"
    old = cache / "numba-0123456789abcdef"
    for folder in (current, old):
        (folder / "x").mkdir(parents=True)
    other = cache / "kern.cpython-311.pyc"
    other.write_bytes(b"")
    assert prune_kernel_caches(root) == [old]
    assert current.is_dir()
    assert not old.exists()
    assert other.exists()
