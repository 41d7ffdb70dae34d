"""The lock on numba's cache saves (``deleverage._kernel_cache.serialize_cache_saves``, on the
package's import): with it, processes saving new entries of one kernel at once keep every entry
beside its own data; without it they can swap them (numba's save takes the first free data
file number with no lock)."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest
from numba.core.caching import IndexDataCacheFile

from deleverage._kernel_cache import CACHE_LOCK, SAVES_LOCKED, locked

STAMP = (1.0, 100)  # the source file's (mtime, size) numba keys an index by


@pytest.fixture(autouse=True)
def _locked_saves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock on this test's saves, whatever the process set up (the package's own is
    checked below)."""
    save = IndexDataCacheFile.save
    monkeypatch.setattr(IndexDataCacheFile, "save", locked(getattr(save, "__wrapped__", save)))


def _cache_file(folder: Path) -> IndexDataCacheFile:
    return IndexDataCacheFile(
        cache_path=str(folder), filename_base="kern-1.py311", source_stamp=STAMP
    )


def test_a_save_waits_for_the_lock(tmp_path: Path) -> None:
    # Arrange: another process (here: another open file) holds the lock
    cache = _cache_file(tmp_path)
    with (tmp_path / CACHE_LOCK).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        saver = threading.Thread(target=cache.save, args=(("sig", "cpu"), b"code"))

        # Act
        saver.start()
        saver.join(timeout=0.5)

        # Assert: nothing written while the lock is held
        assert saver.is_alive()
        assert not list(tmp_path.glob("*.nb[ic]"))
    saver.join(timeout=10)
    assert not saver.is_alive()
    assert cache.load(("sig", "cpu")) == b"code"


def test_concurrent_saves_keep_every_entry_with_its_own_data(tmp_path: Path) -> None:
    # Arrange: four savers (each its own IndexDataCacheFile, as in separate processes), each
    # saving new signatures of the same kernel
    keys = [(f"sig{saver}-{i}", "cpu") for saver in range(4) for i in range(25)]

    def save_all(saver: int) -> None:
        cache = _cache_file(tmp_path)
        for key in keys[saver * 25 : (saver + 1) * 25]:
            cache.save(key, f"code of {key[0]}".encode())

    threads = [threading.Thread(target=save_all, args=(s,)) for s in range(4)]

    # Act
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Assert
    cache = _cache_file(tmp_path)
    assert [cache.load(key) for key in keys] == [f"code of {k[0]}".encode() for k in keys]


def test_the_package_locks_this_process_saves() -> None:
    # on import (POSIX): every save of this process takes turns with other processes'
    assert SAVES_LOCKED
    assert hasattr(IndexDataCacheFile.save, "__wrapped__")
