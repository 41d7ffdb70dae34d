"""numba's kernel cache under parallel test processes (``make test`` runs one per core).

All pytest-xdist workers use the same kernel cache folder. numba saves a kernel's new cache
entry (``IndexDataCacheFile.save``) by reading the kernel's index, picking the first data file
number the index does not use, writing the index, then the data file: two processes saving
new signatures of one kernel at once can both pick number 1, and the index then names one
signature's machine code for the other's (a later load would run it on the wrong types).
:func:`serialize_kernel_cache_writes` (called in each worker by tests/conftest.py) makes those
saves take turns: each holds an exclusive ``flock`` on :data:`CACHE_LOCK` in the kernel's cache
folder. Loading needs no lock: numba replaces each file atomically, and an entry whose data
file is not written yet loads as a miss (the kernel compiles). The tests compile some
signatures the install's warm-up does not (about fifty at this writing), so saves do happen;
subprocesses a test starts (the CLI, servers, sweep pools) run without the lock, as users' do.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The lock file, in a kernel's cache folder, that a save of its entries holds.
CACHE_LOCK = ".save.lock"


def locked(save: Callable[..., None]) -> Callable[..., None]:
    """numba's ``IndexDataCacheFile.save`` made to hold an exclusive lock on
    :data:`CACHE_LOCK` in the kernel's cache folder while it reads the index and writes the
    index and the data file (``__wrapped__``: ``save``)."""

    def locked_save(self: Any, key: Any, data: Any) -> None:
        with (Path(self._cache_path) / CACHE_LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            save(self, key, data)

    locked_save.__wrapped__ = save  # type: ignore[attr-defined]
    return locked_save


def serialize_kernel_cache_writes() -> None:
    """Make this process's numba cache saves take turns with other processes' (see the module
    docstring); call it before any kernel compiles, after ``deleverage`` configured numba."""
    from numba.core.caching import IndexDataCacheFile

    if not hasattr(IndexDataCacheFile.save, "__wrapped__"):
        IndexDataCacheFile.save = locked(IndexDataCacheFile.save)  # type: ignore[method-assign]
