"""Choosing a backend: bad names, counts and addresses; Ray missing."""

from __future__ import annotations

import sys

import pytest

from deleverage.errors import ConfigError, ValidationError
from deleverage.sweep import LocalExecutor, make_executor


def test_local_backend_with_a_worker_count() -> None:
    executor = make_executor("local", workers=3)

    assert isinstance(executor, LocalExecutor)
    assert executor.workers == 3


@pytest.mark.parametrize(
    ("backend", "workers", "address", "field"),
    [
        ("dask", None, None, "--backend"),
        ("local", -1, None, "--workers"),
        ("local", 2, "127.0.0.1:6379", "--address"),
        ("ray", 0, None, "--workers"),
    ],
)
def test_bad_backend_settings_are_refused_naming_the_option(
    backend: str, workers: int | None, address: str | None, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        make_executor(backend, workers=workers, address=address)

    assert info.value.field == field


def test_missing_ray_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError

    with pytest.raises(ConfigError, match=r"pip install deleverage\[ray\]"):
        make_executor("ray", workers=2)
