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
from deleverage.engine.kernels import zone_prices_nb
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


def _cascade(monkeypatch: pytest.MonkeyPatch, check: Any, stretches: bool = True) -> int:
    """A cascade half-hour; ``check(kept, fresh)`` on every try's called prices. ``stretches``
    False: every step one by one, the tries then the engine's single-mark quiet path's
    (``Exchange.quiet_marks``; the runner turns it off under stretches), made in the middle
    of a marked step's rounds, where called positions have just been liquidated."""
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
    sim = Simulation(isolated_scenario(5_000, 1_800.0, 0.05), quiet=stretches)
    sim.run()
    if stretches:
        assert sim.quiet is not None
        assert sim.quiet.calls > 0
    else:
        assert sim.quiet is None
    return tries


def _equal(kept: Any, fresh: Any) -> bool:
    if kept is None or fresh is None:
        return kept is fresh
    return all(np.array_equal(a, b) for a, b in zip(kept, fresh, strict=True))


@pytest.mark.parametrize("stretches", [True, False])
def test_kept_prices_equal_fresh_ones_over_a_cascade(
    monkeypatch: pytest.MonkeyPatch, stretches: bool
) -> None:
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

    assert _cascade(monkeypatch, check, stretches) > 20
    assert called > (200 if stretches else 50)
    if stretches:  # the single-mark path's tries come after liquidations: fewer kept
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

    _cascade(monkeypatch, check, stretches=False)
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


def _windows_both_ways(monkeypatch: pytest.MonkeyPatch, broken: bool = False) -> tuple[int, int]:
    """A cascade half-hour with every try's window assembled by :func:`.window_nb` and by
    the NumPy path: (tries it assembled, tries that differ)."""
    from deleverage.engine import quiet_calls

    right = quiet_calls.call_window
    fast = differs = 0
    if broken:  # a long's side taken as a short's: caught
        original = quiet_calls.window_nb

        def wrong(*args: Any) -> Any:
            got = original(*args)
            if got is not None and got[4] > 0:
                got[3][0] = False
            return got

        monkeypatch.setattr(quiet_calls, "window_nb", wrong)

    def both(ex: Any, m: int, index: Any, called: Any, width: Any) -> Any:
        nonlocal fast, differs
        seen = quiet_calls.window_nb
        used = []

        def spy(*args: Any) -> Any:
            got = seen(*args)
            used.append(got is not None)
            return got

        monkeypatch.setattr(quiet_calls, "window_nb", spy)
        try:
            got = right(ex, m, index, called, width)
        finally:
            monkeypatch.setattr(quiet_calls, "window_nb", seen)
        monkeypatch.setattr(quiet_calls, "FAST_WINDOW", False)
        try:
            plain = right(ex, m, index, called, width)
        finally:
            monkeypatch.setattr(quiet_calls, "FAST_WINDOW", True)
        fast += any(used)
        if got is None or plain is None:
            differs += got is not plain
            return got
        same = all(
            getattr(got, name) == getattr(plain, name)
            for name in ("market", "level", "n_long", "long_max", "short_min")
        ) and all(
            np.array_equal(getattr(got, name), getattr(plain, name))
            and getattr(got, name).dtype == getattr(plain, name).dtype
            for name in ("acc", "zone", "liq", "long")
        )
        differs += not same
        return got

    monkeypatch.setattr(engine_quiet, "call_window", both)
    _cascade(monkeypatch, lambda kept, fresh: None)
    return fast, differs


def test_compiled_window_equals_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, differs = _windows_both_ways(monkeypatch)
    assert fast > 20
    assert differs == 0


def test_a_wrong_compiled_window_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _windows_both_ways(monkeypatch, broken=True)[1] > 0


@settings(max_examples=150, deadline=None)
@given(
    n_long=st.integers(0, 12),
    n_short=st.integers(0, 12),
    from_rows=st.booleans(),
    odd=st.floats(0.0, 0.3),
    shuffle=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_window_kernel_equals_the_numpy_assembly(
    n_long: int, n_short: int, from_rows: bool, odd: float, shuffle: bool, seed: int
) -> None:
    """:func:`.window_nb` against the NumPy assembly it stands for (zone signs, the order
    test, level-1 prices, the first unbounded entry a side), with NaN and infinite prices,
    closed positions and sides out of order."""
    from deleverage.engine.quiet_calls import in_order_nb, window_nb

    rng = np.random.default_rng(seed)
    mmr = np.array([0.005, 0.01, 0.025])
    cum = np.array([0.0, 50.0, 2000.0])
    n = 40
    acc = rng.permutation(100)[:n].astype(np.int64)
    neg = np.sort(-rng.uniform(50.0, 150.0, n))
    price = np.sort(rng.uniform(150.0, 250.0, n))
    for arr in (neg, price):
        bad = rng.random(n) < odd
        arr[bad] = rng.choice([np.nan, np.inf, -np.inf], int(bad.sum()))
    size = rng.normal(0.0, 3.0, 100)
    size[rng.random(100) < odd] = 0.0
    entry = rng.uniform(50.0, 250.0, 100)
    margin = rng.uniform(-5.0, 200.0, 100)
    pos = [np.sort(rng.choice(n, k, replace=False)).astype(np.int64) for k in (n_long, n_short)]
    if shuffle:
        for p in pos:
            rng.shuffle(p)
    rows = [(size[a], entry[a], margin[a]) for a in (acc, acc)]
    got = window_nb(
        pos[0], pos[1], acc, neg, acc, price, *rows[0], *rows[1], from_rows,
        size if not from_rows else np.zeros(0), entry if not from_rows else np.zeros(0),
        margin if not from_rows else np.zeros(0), mmr, cum,
    )  # fmt: skip
    sides = []
    in_order = True
    for k, (sign, pr) in enumerate(((-1.0, neg), (1.0, price))):
        a = acc[pos[k]]
        zone = sign * pr[pos[k]]
        in_order = in_order and in_order_nb(zone, k == 0)
        s, e, mg = size[a], entry[a], margin[a]
        liq = np.empty(len(a))
        zone_prices_nb(s, e, mg, 1.0, mmr, cum, liq)
        bad = ~(np.isfinite(zone) & np.isfinite(liq))
        sides.append((a, zone, liq, int(np.argmax(bad)) if bad.any() else -1))
    if not in_order:
        assert got is None
        return
    assert got is not None
    w_acc, w_zone, w_liq, w_long, w_n_long, cut_long, cut_short = got
    assert w_n_long == n_long
    assert np.array_equal(w_acc, np.concatenate([sides[0][0], sides[1][0]]))
    assert np.array_equal(w_zone, np.concatenate([sides[0][1], sides[1][1]]), equal_nan=True)
    assert np.array_equal(w_liq, np.concatenate([sides[0][2], sides[1][2]]), equal_nan=True)
    assert w_long.tolist() == [True] * n_long + [False] * n_short
    assert cut_long == sides[0][3]
    assert cut_short == (n_long + sides[1][3] if sides[1][3] >= 0 else -1)
