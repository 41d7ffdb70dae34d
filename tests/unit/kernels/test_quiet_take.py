"""The window's clean entries found from the kept walk (:mod:`deleverage.engine.quiet_take`).

- Against the plain walk (:func:`.take_clean_nb`, Hypothesis): an index side whose accounts
  get flagged over a sequence of tries (flags only grow within an index state), with called
  sets that change arbitrarily between tries (accounts leave and join), widths that vary,
  and now and then a new index state (head moved, a compaction): every try's taken
  positions and next position equal the plain walk's.
- Twin: a cascade half-hour where every stretch try's windows are taken both ways (the
  kept walk and the plain one): the same windows, entry for entry; the run's own journal
  and hash are compared by tests/integration/test_quiet_twin.py.
- A deliberately wrong kept walk (flagged entries kept as clean) is caught by both.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine import quiet_calls, quiet_take
from deleverage.engine.quiet_calls import take_clean_nb
from deleverage.sim.runner import Simulation


class _Index:
    """The attributes of a :class:`.LevelIndex` that :func:`.take_clean` reads."""

    def __init__(self, n: int) -> None:
        self.dirty_flag = np.zeros(n, dtype=np.bool_)
        self.rebuilds = 0
        self.compactions = 0


def _tries(seed: int, n: int, tries: int, flag_rate: float, call_rate: float) -> int:
    """Runs the tries; returns how many differed from the plain walk."""
    rng = np.random.default_rng(seed)
    acc = rng.permutation(n + 20).astype(np.int64)[:n]  # some accounts beyond the flags
    index = _Index(n + 5)
    head = 0
    differs = 0
    for _ in range(tries):
        index.dirty_flag[rng.integers(0, n + 5, int(flag_rate * n))] = True
        called = rng.random(max(0, n + int(rng.integers(-5, 10)))) < call_rate
        width = int(rng.integers(1, max(2, n // 2)))
        if rng.random() < 0.1:  # a new index state: a compaction, or the head moved
            if rng.random() < 0.5:
                index.compactions += 1
                index.dirty_flag[:] = False
            else:
                head = min(n, head + int(rng.integers(0, 5)))
        out = np.empty(max(width, 1), dtype=np.int64)
        got = quiet_take.take_clean(index, 0, acc, head, called, width, out)  # type: ignore[arg-type]
        taken = out[: got[0]].copy()
        ref = np.empty(max(width, 1), dtype=np.int64)
        want = take_clean_nb(acc, index.dirty_flag, called, head, width, ref)
        differs += got != tuple(want) or not np.array_equal(taken, ref[: want[0]])
    return differs


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 300),
    flag_rate=st.floats(0.0, 0.2),
    call_rate=st.floats(0.0, 0.6),
)
def test_kept_walk_equals_the_plain_walk(
    seed: int, n: int, flag_rate: float, call_rate: float
) -> None:
    assert _tries(seed, n, 25, flag_rate, call_rate) == 0


_KEPT = quiet_take.take_clean_kept_nb


def _blind(
    acc: Any, flag: Any, called: Any, width: int, out: Any, *kept: Any
) -> tuple[int, int, int, int]:
    """A kept walk that takes every kept entry as clean (flags set since are missed)."""
    got = _KEPT(acc, np.zeros_like(flag), called, width, out, *kept)
    return int(got[0]), int(got[1]), int(got[2]), int(got[3])


def test_a_walk_blind_to_new_flags_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quiet_take, "take_clean_kept_nb", _blind)
    assert sum(_tries(seed, 200, 25, 0.05, 0.2) for seed in range(5)) > 0


def _cascade_windows(monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """A cascade half-hour with every try's window taken both ways: (tries, differing)."""
    sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
    from cascade_day import isolated_scenario  # type: ignore[import-not-found]

    right = quiet_calls.call_window
    tries = differs = 0

    def both(ex: Any, m: int, index: Any, called: Any, width: int) -> Any:
        nonlocal tries, differs
        got = right(ex, m, index, called, width)
        monkeypatch.setattr(quiet_take, "ENABLED", False)
        try:
            plain = right(ex, m, index, called, width)
        finally:
            monkeypatch.setattr(quiet_take, "ENABLED", True)
        tries += 1
        if got is None or plain is None:
            differs += got is not plain
            return got
        same = all(
            getattr(got, name) == getattr(plain, name)
            for name in ("market", "level", "n_long", "long_max", "short_min")
        ) and all(
            np.array_equal(getattr(got, name), getattr(plain, name))
            for name in ("acc", "zone", "liq", "long")
        )
        differs += not same
        return got

    from deleverage.engine import quiet as engine_quiet

    monkeypatch.setattr(engine_quiet, "call_window", both)
    sim = Simulation(isolated_scenario(5_000, 1_800.0, 0.05))
    sim.run()
    assert sim.quiet is not None
    assert sim.quiet.calls > 0
    return tries, differs


def test_kept_windows_equal_plain_ones_over_a_cascade(monkeypatch: pytest.MonkeyPatch) -> None:
    tries, differs = _cascade_windows(monkeypatch)
    assert tries > 20
    assert differs == 0


def test_a_blind_kept_walk_is_caught_over_a_cascade(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quiet_take, "take_clean_kept_nb", _blind)
    _, differs = _cascade_windows(monkeypatch)
    assert differs > 0
