"""Physics of the venue price model: index, the venue's book, its mark, and arbitrage.

Claims, each over several seeds (the population's draw changes, the path does not):

- on the 2025-10-10 replay (the index is the real Binance history) a deep book keeps the
  venue's mark within 1% of the index;
- a thin book with no arbitrage capital dislocates, stays dislocated while no capital comes,
  and recovers as capital returns;
- a market whose index is flat falls no further than its arbitrageurs let it when another
  market's cross accounts liquidate their positions in it: with unlimited capital, by no more
  than one step's forced flow walks its book (``1 - B / X <= q_step / D``);
- the feedback=False twin (forced flow neither moves prices nor depletes the book) never loses
  more than the run with feedback on a monotone shock.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest

from deleverage.engine.events import EventKind, FillReason
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario, load_scenario

SEEDS = (1, 2, 3)
SPEC: dict[str, Any] = {
    "tiers": [{"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01}],
    "liquidation_fee_rate": 0.002,
    "lot_size": 0.001,
    "tick_size": 0.1,
}


def _replay(seed: int, **overrides: Any) -> Scenario:
    base = load_scenario("btc-2025-10-10")
    return base.with_overrides(
        {"seed": seed, "markets.0.population.n_positions": 5_000, **overrides}
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_a_deep_book_keeps_the_mark_within_1pct_of_the_index_on_the_replay(seed: int) -> None:
    # Arrange: the real day as the index, a deep book (200 BTC per 1%), Binance's mark rule and
    # arbitrageurs with 20M of capital, 2 s latency and 5 bp cost.
    scenario = _replay(seed, **{"markets.0.liquidity.depth_per_pct": 200.0})

    # Act
    steps = run(scenario).steps

    # Assert
    assert steps["liquidations"].sum() > 50  # the premise: the real fall liquidates
    assert (steps["mark"] / steps["index"] - 1.0).abs().max() < 0.01
    assert (steps["book"] / steps["index"] - 1.0).abs().max() < 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_a_thin_book_without_capital_dislocates_and_recovers_as_capital_returns(
    seed: int,
) -> None:
    # Arrange: a thin book that does not refill by itself; arbitrageurs start with nothing.
    thin = {
        "markets.0.liquidity.depth_per_pct": 1.0,
        "markets.0.liquidity.half_life_s": 1e12,
        "markets.0.pricing.mark": "book",
        "markets.0.pricing.arbitrage": {"capital": 0.0, "cost": 0.0005},
    }
    returning = {**thin, "markets.0.pricing.arbitrage": {
        "capital": 0.0, "inflow_per_s": 2_000.0, "cost": 0.0005,
    }}  # fmt: skip

    # Act
    stuck = run(_replay(seed, **thin)).steps
    back = run(_replay(seed, **returning)).steps

    # Assert: dislocated, and left there without capital
    assert stuck["dislocation"].min() < -0.05
    assert stuck["dislocation"].iloc[-1] < -0.05
    # with capital returning: dislocated too, then back within the arbitrageurs' cost
    assert back["dislocation"].min() < -0.01
    assert abs(back["dislocation"].iloc[-1]) <= 0.0005 + 1e-9
    assert back["arbitrage_capital"].iloc[-1] < back["t_s"].iloc[-1] * 2_000.0  # capital used


def _two_markets(seed: int, arbitrage: dict[str, float]) -> Scenario:
    """Market A falls 15% in a minute; market B's index stays flat. Every account is cross and
    holds both (multi-market accounts), so A's losses liquidate B's positions too."""

    def market(symbol: str, drop: float, depth: float, pricing: dict[str, Any]) -> dict[str, Any]:
        return {
            "symbol": symbol,
            "preset": None,
            "spec": copy.deepcopy(SPEC),
            "price": {"process": "shock", "s0": 100.0, "drop_fraction": drop, "start_s": 10.0,
                      "duration_s": 60.0},
            "liquidity": {"depth_per_pct": depth, "half_life_s": 1e12, "max_move": 1.0},
            "population": {"n_positions": 1_500, "long_fraction": 0.8, "isolated_fraction": 0.0,
                           "leverage_median": 20.0, "size_min": 1.0},
            "pricing": pricing,
        }  # fmt: skip

    return Scenario.from_mapping(
        {
            "name": "flat-index",
            "seed": seed,
            "duration_s": 300.0,
            "multi_market_accounts": True,
            "markets": [
                market("AAA", 0.15, 200.0, {}),
                market("BBB", 0.0, 300.0, {"mark": "book", "arbitrage": arbitrage}),
            ],
            "insurance": {"fund": 1e6},
        }
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_a_flat_index_falls_no_further_than_its_arbitrage_capital_allows(seed: int) -> None:
    # Act: without arbitrage, and with unlimited arbitrage capital
    none = run(_two_markets(seed, {"capital": 0.0})).steps
    result = run(_two_markets(seed, {"capital": math.inf}))
    full = result.steps
    b_none = none[none["market"] == "BBB"]
    b_full = full[full["market"] == "BBB"]

    # Assert: the premise (B's index is flat, and A's crash liquidates B's positions)
    assert (b_none["index"] == 100.0).all()
    assert b_none["liquidated_notional"].sum() > 0
    assert b_none["dislocation"].min() < -0.01  # no arbitrage: B falls with nothing under it
    # With unlimited capital B's book is back at its index after each step, so it falls no
    # further than one step's forced flow walks a book of D = 30,000 units per unit move:
    # 1 - B/X <= q_step / D, q_step the base units its liquidations sold on the book.
    depth = 100.0 * 300.0
    journal = result.journal.to_frame()
    fills = journal[(journal["kind"] == int(EventKind.FILL)) & (journal["market"] == 1)
                    & (journal["code"] == int(FillReason.LIQUIDATION))]  # fmt: skip
    sold = fills.groupby("ts_ns")["size"].sum()
    q_step = sold.reindex(b_full["ts_ns"].to_numpy(), fill_value=0.0).to_numpy()
    fall = 1.0 - b_full["book"].to_numpy() / 100.0
    assert q_step.max() > 0
    assert np.all(fall <= q_step / depth + 1e-9)
    assert b_full["dislocation"].min() > b_none["dislocation"].min()
    assert abs(b_full["dislocation"].iloc[-1]) < 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_the_twin_without_feedback_never_loses_more_on_a_monotone_shock(seed: int) -> None:
    # Arrange: a monotone 6% fall over a minute on a thin book, 2,000 positions around 20x.
    scenario = Scenario.from_mapping(
        {
            "name": "monotone",
            "seed": seed,
            "duration_s": 200.0,
            "markets": [{
                "symbol": "BTCUSDT", "preset": None, "spec": copy.deepcopy(SPEC),
                "price": {"process": "shock", "s0": 60_000.0, "drop_fraction": 0.06,
                          "start_s": 30.0, "duration_s": 60.0},
                "liquidity": {"depth_per_pct": 3.0, "half_life_s": 120.0},
                "population": {"n_positions": 2_000, "long_fraction": 0.7,
                               "leverage_median": 20.0, "size_min": 0.002},
            }],
            "insurance": {"fund": 5_000.0},
        }
    )  # fmt: skip

    # Act
    with_feedback = run(scenario).summary
    twin = run(scenario, feedback=False).summary

    # Assert
    assert twin["liquidations"] > 100  # the premise
    assert twin["shortfall"] <= with_feedback["shortfall"] + 1e-6
    assert twin["liquidated_notional"] <= with_feedback["liquidated_notional"] + 1e-6
    assert twin["adl_notional"] <= with_feedback["adl_notional"] + 1e-6
    assert twin["max_drawdown_mark"] <= with_feedback["max_drawdown_mark"] + 1e-12
