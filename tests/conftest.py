"""Test-wide settings: the Hypothesis profiles (and a word on numba's cache under workers).

``ci`` (the default) keeps example counts moderate, disables the per-example deadline (the
test machine is small and shared) and is derandomized: every run explores the same examples,
so a green build stays green and a red one reproduces. ``HYPOTHESIS_PROFILE=explore`` draws
fresh random examples each run (use it to hunt for new failures locally) and
``HYPOTHESIS_PROFILE=thorough`` runs ten times more of them.

``make test`` runs pytest in one process per core (pytest-xdist) on one kernel cache folder:
the workers' numba cache saves take turns (``deleverage._kernel_cache.serialize_cache_saves``,
on the package's import).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=50, deadline=None, print_blob=True, derandomize=True)
settings.register_profile("explore", max_examples=50, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=500, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
