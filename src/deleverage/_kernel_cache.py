"""Where numba caches the compiled kernels: a folder named by the sources they are built from.

numba's own cache checks only the file that defines a kernel (its modification time and
size). A kernel that calls a kernel of another module, or reads a constant imported from one,
keeps its cached machine code after that other module changes: after a ``git pull`` that edits
``quiet_calls.py`` but not ``sim/quiet.py``, ``quiet_path_nb`` would run the old code and its
results would silently differ from the sources. So the package keys its kernel cache by the
sources themselves: every module that imports numba and every package module those import,
transitively (their paths and contents, SHA-256). A change to any of them gives a new folder,
and the kernels compile afresh (``make`` fills it again at install); modules no kernel reaches
(the CLI, the service, the runner) leave the key alone.

The folder is ``deleverage/__pycache__/numba-<key>`` where the package folder is writable, else
``$XDG_CACHE_HOME/deleverage/numba-<key>`` (``~/.cache`` by default). A ``NUMBA_CACHE_DIR`` set
by the user wins (benchmarks/cascade_day.py uses one for its cold start); then the stale-cache
hazard above is the user's to manage. :func:`prune_kernel_caches` removes the folders of other
source versions (the install's warm-up calls it).

Processes that share the cache folder (a sweep's pool, pytest's workers, several CLI runs) may
save new entries of one kernel at once. numba saves an entry (``IndexDataCacheFile.save``) by
reading the kernel's index, taking the first data file number it does not use, then writing
the index and the data file, with no lock: two processes can both take number 1, and the index
then names one signature's machine code for the other's (a later load would run it on the
wrong types). :func:`serialize_cache_saves` (on import) makes every save in this process hold
an exclusive ``flock`` on :data:`CACHE_LOCK` in the kernel's cache folder, so saves take turns;
loading needs no lock (numba replaces each file atomically, and an entry whose data file is not
written yet loads as a miss).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
KEY_CHARS = 16  # hex characters of the SHA-256 kept in the folder's name
_NUMBA = re.compile(r"^[ \t]*(?:from|import)[ \t]+numba\b", re.M)
_IMPORT = re.compile(
    r"^[ \t]*(?:from|import)[ \t]+deleverage((?:\.\w+)*)(?:[ \t]+import[ \t]+(\([^)]*\)|[^\n]+))?",
    re.M,
)


def _module_files(modules: dict[str, Path], dotted: str, names: str) -> list[Path]:
    """The files of ``deleverage<dotted>`` (a module or a package's ``__init__``; not the
    top package's, which only re-exports) and of the submodules ``names`` (``from
    deleverage<dotted> import names``) where they are modules. ``modules``: dotted names
    (without ``deleverage.``) to files."""
    base = dotted.strip(".")
    out = [modules[base]] if base and base in modules else []
    prefix = f"{base}." if base else ""
    for name in re.findall(r"\w+", names):
        if prefix + name in modules:
            out.append(modules[prefix + name])
    return out


def _closure(root: Path) -> dict[Path, bytes]:
    """The modules under ``root`` that import numba and, transitively, the package modules
    they import, with their contents."""
    texts: dict[Path, str] = {}
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        texts[path] = path.read_text(encoding="utf-8")
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    seen = {p for p, text in texts.items() if "numba" in text and _NUMBA.search(text)}
    todo = list(seen)
    while todo:
        for dotted, names in _IMPORT.findall(texts[todo.pop()]):
            for dep in _module_files(modules, dotted, names):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
    return {p: texts[p].encode() for p in sorted(seen)}


def kernel_sources(root: Path = PACKAGE) -> list[Path]:
    """The modules the kernel cache's key covers (sorted): see the module docstring."""
    return list(_closure(root))


def sources_key(root: Path = PACKAGE) -> str:
    """SHA-256 (first :data:`KEY_CHARS` hex characters) of :func:`kernel_sources`' relative
    paths and contents."""
    digest = hashlib.sha256()
    for path, content in _closure(root).items():
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(content)
        digest.update(b"\0")
    return digest.hexdigest()[:KEY_CHARS]


def cache_parent(root: Path = PACKAGE) -> Path:
    """The folder holding the ``numba-<key>`` folders (see the module docstring)."""
    if os.access(root, os.W_OK):
        return root / "__pycache__"
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "deleverage"


def configure_kernel_cache(root: Path = PACKAGE) -> Path | None:
    """Point numba's cache at ``numba-<sources_key>``; return the folder (None: the user set
    ``NUMBA_CACHE_DIR``). Must run before any kernel module is imported (numba picks a
    kernel's cache folder when its decorator runs)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    folder = cache_parent(root) / f"numba-{sources_key(root)}"
    os.environ["NUMBA_CACHE_DIR"] = str(folder)  # kept across numba's config reloads
    from numba.core import config

    config.CACHE_DIR = str(folder)  # type: ignore[attr-defined]  # set by _readenv
    return folder


def prune_kernel_caches(root: Path = PACKAGE) -> list[Path]:
    """Remove the ``numba-*`` folders of other source versions beside the current one; return
    them."""
    current = f"numba-{sources_key(root)}"
    parent = cache_parent(root)
    gone = []
    if parent.is_dir():
        for folder in parent.glob("numba-*"):
            if folder.is_dir() and folder.name != current:
                shutil.rmtree(folder, ignore_errors=True)
                gone.append(folder)
    return gone


def disable_svml() -> None:
    """Keep numba's vectorized loops off Intel's SVML, which numba loads where that library is
    installed: SVML's ``exp`` and ``log`` are approximations that differ from libm's in the
    last bit, so kernels' results would depend on what is installed
    (:mod:`deleverage.portable_math`). numba reads the switch when it is first imported; where
    it was imported before this package with SVML on, a warning says so."""
    os.environ["NUMBA_DISABLE_INTEL_SVML"] = "1"
    numba = sys.modules.get("numba")
    if numba is not None and getattr(numba.config, "USING_SVML", False):
        warnings.warn(
            "numba was imported before deleverage with Intel SVML on: kernels' exp and log may "
            "differ from libm's in the last bit (set NUMBA_DISABLE_INTEL_SVML=1)",
            RuntimeWarning,
            stacklevel=2,
        )


#: The lock file, in a kernel's cache folder, that a save of its entries holds.
CACHE_LOCK = ".save.lock"


def locked(save: Callable[..., None]) -> Callable[..., None]:
    """numba's ``IndexDataCacheFile.save`` made to hold an exclusive lock on :data:`CACHE_LOCK`
    in the kernel's cache folder while it reads the index and writes the index and the data
    file (``__wrapped__``: ``save``)."""
    import fcntl

    def locked_save(self: Any, key: Any, data: Any) -> None:
        with (Path(self._cache_path) / CACHE_LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            save(self, key, data)

    locked_save.__wrapped__ = save  # type: ignore[attr-defined]
    return locked_save


def serialize_cache_saves() -> bool:
    """Make this process's numba cache saves take turns with other processes' (see the module
    docstring); False where the platform has no ``flock`` (not POSIX: saves stay unlocked)."""
    if importlib.util.find_spec("fcntl") is None:
        return False
    from numba.core.caching import IndexDataCacheFile

    if not hasattr(IndexDataCacheFile.save, "__wrapped__"):
        IndexDataCacheFile.save = locked(IndexDataCacheFile.save)  # type: ignore[method-assign]
    return True


disable_svml()  # before configure_kernel_cache imports numba

#: The folder this process's kernels are cached in (None: ``NUMBA_CACHE_DIR`` was set before).
#: Set on import: ``deleverage/__init__.py`` imports this module before any kernel module.
KERNEL_CACHE = configure_kernel_cache()
#: Whether this process's numba cache saves hold the folder's lock (:func:`serialize_cache_saves`).
SAVES_LOCKED = serialize_cache_saves()
