"""The Venue contract (deleverage.venues.protocol): every implementation must pass these.

Each test runs once per factory in ``venue_cases.FACTORIES``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
from venue_cases import FACTORIES, VenueCase

from deleverage.errors import ValidationError
from deleverage.venues.protocol import (
    LIQUIDATION_LEVEL_COLUMNS,
    PriceInputs,
    SolvencyLines,
    Venue,
    VenueStep,
)

S = 10**9  # nanoseconds per second


@pytest.fixture(params=sorted(FACTORIES), ids=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Callable[[], VenueCase]:
    return FACTORIES[request.param]


def _prices(case: VenueCase, price: float) -> dict[str, PriceInputs]:
    return {asset: PriceInputs(price) for asset in case.venue.assets}


def _finite_lines(lines: SolvencyLines) -> None:
    assert all(math.isfinite(x) for x in lines)
    assert lines.fund_balance >= 0.0
    for value in lines[1:]:
        assert value >= 0.0


def test_a_venue_satisfies_the_protocol_and_names_its_assets(
    factory: Callable[[], VenueCase],
) -> None:
    case = factory()
    venue = case.venue
    assert isinstance(venue, Venue)
    assert isinstance(venue.name, str)
    assert venue.name
    assert isinstance(venue.assets, tuple)
    assert case.asset in venue.assets
    assert len(set(venue.assets)) == len(venue.assets)


def test_a_calm_step_liquidates_nothing_and_forces_no_flow(
    factory: Callable[[], VenueCase],
) -> None:
    case = factory()
    step = case.venue.step(_prices(case, case.calm), ts_ns=20 * S)
    assert isinstance(step, VenueStep)
    assert step.ts_ns == 20 * S
    assert step.liquidations == 0
    assert step.liquidated_notional == 0.0
    assert set(step.forced_flow) == set(case.venue.assets)
    assert all(v == 0.0 for v in step.forced_flow.values())
    _finite_lines(step.solvency)


def test_a_crash_liquidates_and_the_forced_flow_sells_into_the_fall(
    factory: Callable[[], VenueCase],
) -> None:
    case = factory()
    venue = case.venue
    before = len(venue.journal())
    step = venue.step(_prices(case, case.crash), ts_ns=20 * S)
    assert step.liquidations >= 1
    assert step.liquidated_notional > 0.0
    assert all(math.isfinite(v) for v in step.forced_flow.values())
    assert len(venue.journal()) > before
    _finite_lines(step.solvency)
    # Longs are sold into the fall: in the crash's step, or by settle_s seconds after it.
    flow = step.forced_flow[case.asset]
    for t in range(60, case.settle_s + 60, 60):
        if flow < 0.0:
            break
        later = venue.step(_prices(case, case.crash), ts_ns=(20 + t) * S)
        assert all(math.isfinite(v) for v in later.forced_flow.values())
        flow += later.forced_flow[case.asset]
    assert flow < 0.0


def test_liquidation_levels_name_the_positions_the_crash_liquidates(
    factory: Callable[[], VenueCase],
) -> None:
    case = factory()
    levels = case.venue.liquidation_levels()
    assert tuple(levels.columns) == LIQUIDATION_LEVEL_COLUMNS
    assert (levels["notional"] >= 0).all()
    longs = levels[(levels["asset"] == case.asset) & (levels["size"] > 0)]
    reached = longs["liquidation_price"] >= case.crash
    assert reached.any(), "the crash must cross at least one long's liquidation price"
    assert not (longs["liquidation_price"] >= case.calm).any()


def test_solvency_lines_are_cumulative_and_never_fall(
    factory: Callable[[], VenueCase],
) -> None:
    case = factory()
    venue = case.venue
    seen = [venue.solvency()]
    path = [case.calm, case.crash, case.crash * 0.9, case.calm * 0.7, case.crash]
    for k, price in enumerate(path, start=2):
        seen.append(venue.step(_prices(case, price), ts_ns=k * 10 * S).solvency)
    for earlier, later in itertools.pairwise(seen):
        _finite_lines(later)
        for name in ("insurance_paid", "backstop_loss", "adl_loss", "socialized_loss", "bad_debt"):
            assert getattr(later, name) >= getattr(earlier, name) - 1e-9


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p, a: {**p, "NOPE": PriceInputs(1.0)}, "prices"),
        (lambda p, a: {}, "prices"),
        (lambda p, a: {a: PriceInputs(float("nan"))}, "index_price"),
        (lambda p, a: {a: PriceInputs(-5.0)}, "index_price"),
        (lambda p, a: {a: PriceInputs(100.0, oracle_price=float("inf"))}, "oracle_price"),
    ],
    ids=["unknown-asset", "missing-asset", "nan", "negative", "inf-oracle"],
)
def test_bad_prices_are_refused_before_anything_changes(
    factory: Callable[[], VenueCase],
    mutate: Callable[[dict[str, PriceInputs], str], dict[str, PriceInputs]],
    field: str,
) -> None:
    case = factory()
    venue = case.venue
    journal_before, lines_before = len(venue.journal()), venue.solvency()
    with pytest.raises(ValidationError, match=field):
        venue.step(mutate(_prices(case, case.crash), case.asset), ts_ns=20 * S)
    assert len(venue.journal()) == journal_before
    assert venue.solvency() == lines_before
    assert venue.step(_prices(case, case.calm), ts_ns=21 * S).liquidations == 0  # still usable


def test_time_never_goes_backwards(factory: Callable[[], VenueCase]) -> None:
    case = factory()
    venue = case.venue
    venue.step(_prices(case, case.calm), ts_ns=30 * S)
    journal_before = len(venue.journal())
    with pytest.raises(ValidationError, match="ts_ns"):
        venue.step(_prices(case, case.crash), ts_ns=29 * S)
    assert len(venue.journal()) == journal_before


def test_the_same_prices_give_the_same_steps(factory: Callable[[], VenueCase]) -> None:
    first, second = factory(), factory()
    path = [first.calm, first.crash, first.crash * 0.95, first.calm]
    for k, price in enumerate(path, start=2):
        a = first.venue.step(_prices(first, price), ts_ns=k * S)
        b = second.venue.step(_prices(second, price), ts_ns=k * S)
        assert a == b
