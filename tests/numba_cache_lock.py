"""numba's kernel cache under parallel test processes (``make test`` runs one per core).

All pytest-xdist workers use the same kernel cache folder. numba saves a kernel's new cache
entry (``IndexDataCacheFile.save``) by reading the kernel's index, picking the first data file
number the index does not use, writing the index, then the data file: two processes saving
new signatures of one kernel at once can both pick number 1, and the index then names one
signature's machine code for the other's (a later load would run it on the wrong types).
:func:`serialize_kernel_cache_writes` makes those saves take turns: each holds an exclusive
``flock`` on :data:`CACHE_LOCK` in the kernel's cache folder. Loading needs no lock: numba
replaces each file atomically, and an entry whose data file is not written yet loads as a
miss (the kernel compiles). The install's warm-up compiles what the tests call, so saves are
rare; the lock is for the kernels a test compiles itself.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The lock file, in a kernel's cache folder, that a save of its entries holds.
CACHE_LOCK = ".save.lock"


def serialize_kernel_cache_writes() -> Callable[..., None]:
    """Make numba's cache saves hold an exclusive lock on :data:`CACHE_LOCK` in the kernel's
    cache folder while they read the index and write the index and the data file; return
    numba's own (unlocked) save. Call once per process, before any kernel compiles."""
    from numba.core.caching import IndexDataCacheFile

    save: Callable[..., None] = IndexDataCacheFile.save

    def locked_save(self: Any, key: Any, data: Any) -> None:
        with (Path(self._cache_path) / CACHE_LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            save(self, key, data)

    IndexDataCacheFile.save = locked_save  # type: ignore[method-assign]
    return save
