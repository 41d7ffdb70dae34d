"""Test-wide settings: the Hypothesis profiles, and numba's cache under parallel workers.

``ci`` (the default) keeps example counts moderate, disables the per-example deadline (the
test machine is small and shared) and is derandomized: every run explores the same examples,
so a green build stays green and a red one reproduces. ``HYPOTHESIS_PROFILE=explore`` draws
fresh random examples each run (use it to hunt for new failures locally) and
``HYPOTHESIS_PROFILE=thorough`` runs ten times more of them.

``make test`` runs pytest in one process per core (pytest-xdist) on one kernel cache folder:
the workers' numba cache saves take turns (:mod:`numba_cache_lock`).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from numba_cache_lock import serialize_kernel_cache_writes

settings.register_profile("ci", max_examples=50, deadline=None, print_blob=True, derandomize=True)
settings.register_profile("explore", max_examples=50, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=500, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: others share its kernel cache
        # deleverage first: it configures numba (SVML off, the keyed cache folder). Not in the
        # controlling process: its environment (NUMBA_CACHE_DIR) would pass to the workers.
        import deleverage  # noqa: F401

        serialize_kernel_cache_writes()
