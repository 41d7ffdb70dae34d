"""Called prices kept between stretch tries (:mod:`deleverage.engine.quiet_cache`).

- The forward match against a plain-Python oracle (Hypothesis): called sets changed as the
  risk step and the stretches change them (some accounts leave, fresh ones are appended) or
  shuffled, some positions dirty: a reused slot always holds the same account, clean then
  and now; in the called set's order every such account is reused.
- Twin: a cascade half-hour where every stretch try's bands are computed with the kept prices
  and afresh: the called positions' sides, zone and liquidation prices equal to the bit (the
  run's own journal and hash are compared by tests/integration/test_quiet_twin.py); a
  deliberately wrong cache (dirty positions taken as unchanged) is caught.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine import quiet as engine_quiet
from deleverage.engine import quiet_cache
from deleverage.engine.quiet import called_open_nb
from deleverage.engine.quiet_cache import match_called_nb, open_match_nb
from deleverage.sim.runner import Simulation


def _oracle(new: np.ndarray, old: np.ndarray, clean: np.ndarray, dirty: np.ndarray) -> list[int]:
    """Slot of each new account in ``old`` when reusable, by the forward order (no budget)."""
    out, j = [], 0
    for a in new.tolist():
        rest = old[j:].tolist()
        if a in rest:
            k = j + rest.index(a)
            j = k + 1
            if clean[k] and a < len(dirty) and not dirty[a]:
                out.append(k)
                continue
        out.append(-1)
    return out


@settings(max_examples=200, deadline=None)
@given(
    n_old=st.integers(0, 60),
    keep=st.floats(0.0, 1.0),
    fresh=st.integers(0, 20),
    shuffle=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_match_equals_the_oracle(
    n_old: int, keep: float, fresh: int, shuffle: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    accounts = rng.permutation(200)
    old = accounts[:n_old].astype(np.int64)
    new = np.concatenate([old[rng.random(n_old) < keep], accounts[n_old : n_old + fresh]])
    if shuffle:
        rng.shuffle(new)
    clean = rng.random(n_old) < 0.8
    dirty = rng.random(150) < 0.2  # accounts 150.. are beyond the flags: dirty
    slot = np.empty(len(new), dtype=np.int64)
    misses = match_called_nb(new.astype(np.int64), old, clean, dirty, slot)
    assert misses == int((slot < 0).sum())
    for i, k in enumerate(slot.tolist()):
        if k >= 0:
            assert old[k] == new[i]
            assert clean[k]
            assert new[i] < 150
            assert not dirty[new[i]]
    if not shuffle:  # the called set's order: nothing reusable is missed
        assert slot.tolist() == _oracle(new, old, clean, dirty)


@settings(max_examples=200, deadline=None)
@given(
    n_old=st.integers(0, 60),
    keep=st.floats(0.0, 1.0),
    fresh=st.integers(0, 20),
    shuffle=st.booleans(),
    closed_rate=st.floats(0.0, 0.2),
    seed=st.integers(0, 10_000),
)
def test_open_match_is_the_open_test_and_the_match_after_the_refresh(
    n_old: int, keep: float, fresh: int, shuffle: bool, closed_rate: float, seed: int
) -> None:
    """:func:`.open_match_nb` (before the touched accounts are flagged) answers
    :func:`.called_open_nb`, and its slots are :func:`match_called_nb`'s once the touched
    ones are flagged, where a reusable account is open (its position unchanged since it was
    priced open: the only case the cache meets). Fails with the pending flags ignored."""
    rng = np.random.default_rng(seed)
    accounts = rng.permutation(200)
    old = accounts[:n_old].astype(np.int64)
    new = np.concatenate([old[rng.random(n_old) < keep], accounts[n_old : n_old + fresh]])
    if shuffle:
        rng.shuffle(new)
    new = new.astype(np.int64)
    clean = rng.random(n_old) < 0.8
    dirty = rng.random(150) < 0.2  # accounts 150.. are beyond the flags: dirty
    pending = np.zeros(int(rng.integers(0, 220)), dtype=np.bool_)
    pending[rng.integers(0, max(len(pending), 1), len(pending) // 5)] = len(pending) > 0
    after = dirty.copy()  # the flags once the touched accounts are taken in
    after[pending[: len(after)].nonzero()[0]] = True
    want = np.empty(len(new), dtype=np.int64)
    match_called_nb(new, old, clean, after, want)
    size = np.where(rng.random(200) < 0.5, 1.0, -1.0)
    size[rng.random(200) < closed_rate] = 0.0
    mode = np.ones(200, dtype=np.int8)
    mode[rng.random(200) < closed_rate] = 0
    reusable = new[want >= 0]
    size[reusable] = np.where(size[reusable] == 0.0, 2.0, size[reusable])
    mode[reusable] = 1
    slot = np.empty(len(new), dtype=np.int64)
    ok = open_match_nb(new, old, clean, dirty, pending, size, mode, slot)
    assert ok == called_open_nb(size, mode, new)
    if ok:
        assert slot.tolist() == want.tolist()


def _cascade(monkeypatch: pytest.MonkeyPatch, check: Any) -> int:
    """A cascade half-hour; ``check(kept, fresh)`` on every try's called prices."""
    sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
    from cascade_day import isolated_scenario  # type: ignore[import-not-found]

    right = engine_quiet._called_prices
    tries = 0

    def both(*args: Any) -> Any:
        nonlocal tries
        kept = right(*args)
        monkeypatch.setattr(quiet_cache, "ENABLED", False)
        fresh = right(*args)
        monkeypatch.setattr(quiet_cache, "ENABLED", True)
        check(kept, fresh)
        tries += 1
        return kept

    monkeypatch.setattr(engine_quiet, "_called_prices", both)
    sim = Simulation(isolated_scenario(5_000, 1_800.0, 0.05))
    sim.run()
    assert sim.quiet is not None
    assert sim.quiet.calls > 0
    return tries


def _equal(kept: Any, fresh: Any) -> bool:
    if kept is None or fresh is None:
        return kept is fresh
    return all(np.array_equal(a, b) for a, b in zip(kept, fresh, strict=True))


def test_kept_prices_equal_fresh_ones_over_a_cascade(monkeypatch: pytest.MonkeyPatch) -> None:
    reused = called = 0
    original = quiet_cache.fill_prices_nb

    def counting(*args: Any) -> bool:
        nonlocal reused, called
        if quiet_cache.ENABLED:  # the kept prices' call (not the fresh one's)
            reused += int((args[1] >= 0).sum())
            called += len(args[0])
        return bool(original(*args))

    monkeypatch.setattr(quiet_cache, "fill_prices_nb", counting)

    def check(kept: Any, fresh: Any) -> None:
        assert _equal(kept, fresh)

    assert _cascade(monkeypatch, check) > 20
    assert called > 200
    assert reused > called / 2  # most called prices were kept, not recomputed


def test_a_cache_blind_to_changed_positions_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking every position as clean keeps stale prices of liquidated and refilled ones.
    (:func:`.quiet_bands` refuses a closed called position before it prices the called ones:
    the check is taken out here so that the liquidated ones reach the cache.)"""
    original = quiet_cache.match_called_nb

    def blind(new: Any, old: Any, clean: Any, dirty: Any, slot: Any) -> int:
        return int(original(new, old, np.ones_like(clean), np.zeros_like(dirty), slot))

    def blind_open(new: Any, old: Any, clean: Any, dirty: Any, *rest: Any) -> bool:
        blind(new, old, clean, dirty, rest[-1])
        return True

    monkeypatch.setattr(quiet_cache, "match_called_nb", blind)
    monkeypatch.setattr(quiet_cache, "open_match_nb", blind_open)
    monkeypatch.setattr(engine_quiet, "called_open_nb", lambda *args: True)
    differs = 0

    def check(kept: Any, fresh: Any) -> None:
        nonlocal differs
        differs += not _equal(kept, fresh)

    _cascade(monkeypatch, check)
    assert differs > 0


def test_window_from_the_index_rows_equals_the_live_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """:func:`.call_window` reads clean entries' columns from the index's copies in its order;
    over a cascade half-hour every window equals the one read from the live columns."""
    from deleverage.engine import quiet_calls

    right = quiet_calls.call_window
    compared = 0

    def both(ex: Any, m: int, index: Any, called: Any, width: Any) -> Any:
        nonlocal compared
        got = right(ex, m, index, called, width)
        rows, index._rows = index._rows, None
        try:
            live = right(ex, m, index, called, width)
        finally:
            index._rows = rows
        compared += rows is not None
        if got is None or live is None:
            assert got is live
            return got
        for name in ("market", "level", "n_long", "long_max", "short_min"):
            assert getattr(got, name) == getattr(live, name)
        for name in ("acc", "zone", "liq", "long"):
            assert np.array_equal(getattr(got, name), getattr(live, name))
        return got

    monkeypatch.setattr(engine_quiet, "call_window", both)
    _cascade(monkeypatch, lambda kept, fresh: None)
    assert compared > 20


def test_a_stretch_keeping_wrong_prices_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prices a stretch hands to the cache (:func:`.keep_stretch_prices`) are compared
    with fresh ones at the next try: kept one ulp off, the twin above finds them."""
    original = quiet_cache.stretch_kept_nb
    handed = 0

    def off(*args: Any) -> Any:
        nonlocal handed
        acc, long, zone, liq, clean = original(*args)
        handed += len(acc) > args[1]  # calls made in the stretch kept
        return acc, long, np.nextafter(zone, np.inf), liq, clean

    monkeypatch.setattr(quiet_cache, "stretch_kept_nb", off)
    differs = 0

    def check(kept: Any, fresh: Any) -> None:
        nonlocal differs
        differs += not _equal(kept, fresh)

    _cascade(monkeypatch, check)
    assert handed > 0
    assert differs > 0
