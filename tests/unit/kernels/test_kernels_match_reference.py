"""Compiled kernels against the pure functions they fuse (differential tests, STYLE rule 9)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.engine.kernels import (
    cross_scan_nb,
    isolated_scan_nb,
    pnl_leverage_queue_nb,
)
from deleverage.rules import adl, margin
from deleverage.spec import MarginTier, TierArrays

TIERS = TierArrays.from_tiers(
    [
        MarginTier(notional_floor=0, max_leverage=50, maintenance_rate=0.01),
        MarginTier(notional_floor=5_000, max_leverage=20, maintenance_rate=0.025),
    ]
)
#: The same table with a maintenance floor (MarketSpec.min_maintenance_margin) that binds for
#: notionals under 6,000.
FLOORED = dataclasses.replace(TIERS, min_margin=60.0)


def _book(seed: int, n: int = 400) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = rng.normal(0, 40, n).round(3)
    size[rng.random(n) < 0.1] = 0.0
    return {
        "size": size,
        "entry": rng.uniform(80, 120, n),
        "margin": rng.uniform(-50, 2_000, n),
        "cash": rng.uniform(-100, 5_000, n),
        "mode": (rng.random(n) < 0.5).astype(np.int8),
        "kind": np.where(rng.random(n) < 0.05, 1, 0).astype(np.int8),
    }


@given(seed=st.integers(0, 10_000), mark=st.floats(50, 150), side=st.sampled_from([1.0, -1.0]))
def test_pnl_leverage_queue_matches_the_pure_score(seed: int, mark: float, side: float) -> None:
    # Arrange
    b = _book(seed)
    n = len(b["size"])
    idx, score, abs_size = np.empty(n, dtype=np.int64), np.empty(n), np.empty(n)

    # Act
    k = pnl_leverage_queue_nb(
        b["size"], b["entry"], b["margin"], b["kind"], mark, side, idx, score, abs_size
    )

    # Assert: the same candidates (traders on the side, in profit) and the same scores
    upnl = b["size"] * (mark - b["entry"])
    want = np.flatnonzero((b["kind"] == 0) & (np.sign(b["size"]) == side) & (upnl > 0))
    np.testing.assert_array_equal(idx[:k], want)
    ref = adl.score_pnl_leverage(
        b["size"][want], b["entry"][want], mark, equity=b["margin"][want] + upnl[want]
    )
    np.testing.assert_allclose(score[:k], ref, rtol=1e-12)
    # and the sizes whose sum is the queue's capacity, bit for bit the gathered sum
    assert float(abs_size[:k].sum()) == float(np.abs(b["size"][want]).sum())


@pytest.mark.parametrize("tiers", [TIERS, FLOORED], ids=["tiered", "floored"])
@given(seed=st.integers(0, 10_000), mark=st.floats(50, 150), level=st.floats(0.3, 0.95))
def test_isolated_scan_matches_the_pure_margin_math(
    tiers: TierArrays, seed: int, mark: float, level: float
) -> None:
    b = _book(seed)
    n = len(b["size"])
    out = [np.empty(n, dtype=np.int64), np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)]
    ratio = np.empty(n)

    n_below, n_warn = isolated_scan_nb(
        b["size"], b["entry"], b["margin"], b["mode"], b["kind"], mark, tiers.floor, tiers.mmr,
        tiers.cum, tiers.min_margin, level, out[0], out[1], out[2], out[3], ratio,
    )  # fmt: skip

    live = (b["size"] != 0) & (b["mode"] != 0) & (b["kind"] == 0)
    equity = b["margin"] + margin.unrealized_pnl(b["size"], b["entry"], mark)
    maint = margin.maintenance_margin(margin.notional(b["size"], mark), tiers)
    below = np.flatnonzero(live & (equity < maint))
    np.testing.assert_array_equal(out[0][:n_below], below)
    np.testing.assert_allclose(out[1][:n_below], equity[below], rtol=1e-12)
    np.testing.assert_allclose(out[2][:n_below], maint[below], rtol=1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(equity > 0, maint / equity, np.inf)
    warn = np.flatnonzero(live & (equity >= maint) & (equity > 0) & (r >= level))
    np.testing.assert_array_equal(out[3][:n_warn], warn)


@pytest.mark.parametrize("tiers", [TIERS, FLOORED], ids=["tiered", "floored"])
@given(seed=st.integers(0, 10_000), mark=st.floats(50, 150), level=st.floats(0.3, 0.95))
def test_cross_scan_matches_the_pure_margin_math(
    tiers: TierArrays, seed: int, mark: float, level: float
) -> None:
    b = _book(seed)
    n = len(b["size"])
    ratio, below, be, bm, warn = (
        np.empty(n), np.empty(n, dtype=np.int64), np.empty(n), np.empty(n),
        np.empty(n, dtype=np.int64),
    )  # fmt: skip

    n_below, n_warn = cross_scan_nb(
        b["size"], b["entry"], b["mode"], b["kind"], mark, tiers.floor, tiers.mmr, tiers.cum,
        tiers.min_margin, b["cash"], np.zeros(n), np.zeros(n), True, level, ratio, below, be, bm,
        warn,
    )  # fmt: skip

    cross = (b["size"] != 0) & (b["mode"] == 0)
    upnl = margin.unrealized_pnl(b["size"], b["entry"], mark)
    mm_ = margin.maintenance_margin(margin.notional(b["size"], mark), tiers)
    equity = b["cash"] + np.where(cross, upnl, 0.0)
    maint = np.where(cross, mm_, 0.0)
    want_ratio = margin.margin_ratio(equity, maint)
    np.testing.assert_allclose(ratio, want_ratio, rtol=1e-12)
    traders = cross & (b["kind"] == 0)
    np.testing.assert_array_equal(below[:n_below], np.flatnonzero(traders & (equity < maint)))
    ok = traders & (equity >= maint) & (want_ratio >= level) & (want_ratio < 1)
    np.testing.assert_array_equal(warn[:n_warn], np.flatnonzero(ok))


@given(seed=st.integers(0, 10_000))
def test_vectorized_adl_round_metrics_match_the_pure_function(seed: int) -> None:
    # Arrange: a few ADL rounds, each closing 1-3 counterparties, some with no shortfall
    import json
    import math

    from deleverage.engine.risk.support import _round_metrics_many

    rng = np.random.default_rng(seed)
    rounds = int(rng.integers(1, 6))
    bounds = np.concatenate([[0], np.cumsum(rng.integers(1, 4, rounds))])
    fills = int(bounds[-1])
    size = rng.normal(0, 3, fills)
    size[size == 0] = 1.0
    entry = rng.uniform(80, 120, fills)
    closed = np.abs(size) * rng.uniform(0, 1, fills)
    price = rng.uniform(90, 110, rounds)
    shortfall = np.where(rng.random(rounds) < 0.3, 0.0, rng.uniform(0, 30, rounds))

    # Act
    _, _, format_texts = _round_metrics_many(
        size, entry, closed, bounds, 100.0, price, shortfall, "pnl_leverage"
    )
    texts = format_texts()

    # Assert: every round's JSON equals adl.adl_round_metrics on that round's fills
    for r in range(rounds):
        lo, hi = bounds[r], bounds[r + 1]
        want = adl.adl_round_metrics(
            size[lo:hi], entry[lo:hi], closed[lo:hi], mark_price=100.0,
            execution_price=float(price[r]), shortfall=float(shortfall[r]),
        )  # fmt: skip
        got = json.loads(texts[r])
        for key, value in want._asdict().items():
            assert got[key] == value or math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9)
