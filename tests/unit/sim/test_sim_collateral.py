"""Scenarios with collateral coins ([[collateral]], sim/collateral.py): same margin at the start,
exposure to the coin in a crash, sales in the journal, replay."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from deleverage.analytics.stress import metrics_table, stress_metrics
from deleverage.engine.events import CollateralMoved, EventKind
from deleverage.engine.exchange import Exchange
from deleverage.errors import ConfigError
from deleverage.sim.runner import Simulation, run
from deleverage.sim.scenario import Scenario

ScenarioFactory = Callable[..., Scenario]

#: Cross accounts only, a 12 % fall, a 5,000 fund; half of the accounts post all their margin
#: as BTC (5 % haircut) whose book (2 BTC per 1 %) the venue's sales walk.
CRASH = {
    "markets.0.population.isolated_fraction": 0.0,
    "markets.0.price.drop_fraction": 0.12,
    "insurance.fund": 5_000.0,
}
COIN = {
    "symbol": "BTC",
    "market": "BTCUSDT",
    "tiers": [{"floor": 0.0, "rate": 0.95}],
    "share": 0.5,
    "book": {"depth_per_pct": 2.0, "half_life_s": 120.0},
}


def test_posting_coins_keeps_each_accounts_starting_margin(make_scenario: ScenarioFactory) -> None:
    # Arrange / Act
    plain = Simulation(make_scenario(CRASH))
    coins = Simulation(make_scenario({**CRASH, "collateral": [COIN]}))

    # Assert: the same equity everywhere; the holders' quote is now (almost) all coin.
    holders = coins.collateral.holders[0]
    assert len(holders) > 100
    np.testing.assert_allclose(
        coins.ex.margin_state()["total_equity"], plain.ex.margin_state()["total_equity"],
        rtol=1e-9, atol=1e-6,
    )  # fmt: skip
    coins.ex.assert_conserved()


def test_margin_in_the_falling_coin_liquidates_more(make_scenario: ScenarioFactory) -> None:
    # Act
    plain = run(make_scenario(CRASH)).summary
    coins = run(make_scenario({**CRASH, "collateral": [{**COIN, "share": 1.0}]})).summary

    # Assert: longs whose margin is the coin lose twice on the fall.
    assert coins["liquidations"] > plain["liquidations"]
    assert coins["collateral_sales"] > 0


def test_collateral_sales_are_journaled_and_replay(make_scenario: ScenarioFactory) -> None:
    # Act
    result = run(make_scenario({**CRASH, "collateral": [COIN]}), keep_exchange=True)

    # Assert: the sales frame is the journal's sales ...
    sales = [
        e for e in result.journal.events(CollateralMoved)
        if isinstance(e, CollateralMoved) and e.reason == "sale"
    ]  # fmt: skip
    frame = result.collateral_sales
    assert frame is not None
    assert len(frame) == len(sales) > 0
    assert float(frame["quantity"].sum()) == pytest.approx(-sum(e.quantity for e in sales))
    assert result.summary["collateral_sold_notional"] == pytest.approx(
        sum(e.proceeds for e in sales)
    )
    # ... every revaluation is an event, and the journal rebuilds the same engine.
    kinds = result.journal.to_frame()["kind"]
    assert int((kinds == int(EventKind.COLLATERAL_PRICE)).sum()) > 100
    assert result.exchange is not None
    result.exchange.assert_conserved()
    assert Exchange.replay(result.journal).state_hash() == result.exchange.state_hash()


def test_a_scenario_without_coins_is_unchanged(make_scenario: ScenarioFactory) -> None:
    # An empty [[collateral]] list is the default: the run's hash does not move.
    assert (
        run(make_scenario({**CRASH, "collateral": []})).result_hash
        == run(make_scenario(CRASH)).result_hash
    )


@pytest.mark.parametrize(
    ("coins", "named"),
    [
        ([{**COIN, "market": "ETHUSDT"}], "collateral[0].market"),
        ([COIN, COIN], "collateral symbols"),
        ([{**COIN, "tiers": [{"floor": 10.0, "rate": 0.9}]}], "floor 0"),
        ([{**COIN, "share": 1.5}], "share"),
    ],
)
def test_bad_collateral_tables_are_refused_naming_the_field(
    make_scenario: ScenarioFactory, coins: list[dict[str, object]], named: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        make_scenario({"collateral": coins})


def test_the_metrics_table_reports_the_collateral_sold(make_scenario: ScenarioFactory) -> None:
    result = run(make_scenario({**CRASH, "collateral": [COIN]}))
    rows = dict(metrics_table(stress_metrics(result)))
    line = rows["collateral sold by the venue (sales / quote)"]
    sales = int(result.summary["collateral_sales"])
    assert line == f"{sales:,} / {result.summary['collateral_sold_notional']:,.0f}"
