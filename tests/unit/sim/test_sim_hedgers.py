"""Hedgers with a real spot leg: rebalancing, the spot book, margin from spot gains, and the
second-order flow of perp legs closed by liquidation or ADL (sim/hedgers.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from deleverage.analytics.stress import metrics_table, stress_metrics
from deleverage.engine.events import EventKind, FillReason
from deleverage.errors import ConfigError
from deleverage.sim.runner import RunResult, Simulation, run
from deleverage.sim.scenario import Scenario

ScenarioFactory = Callable[..., Scenario]

#: A squeeze: the index rises ~2.8% over 200 s (GBM, sigma 0, drift 5,000 a year) on a book of
#: 1 BTC per 1% that is 70% short; forced buying pushes the mark above the index.
SQUEEZE = {
    "markets.0.price": {"process": "gbm", "s0": 60_000.0, "mu": 5_000.0, "sigma": 0.0},
    "markets.0.population.long_fraction": 0.3,
    "markets.0.liquidity.depth_per_pct": 1.0,
}
#: A 25% crash in 10 s with no insurance fund: bankrupt longs are covered by ADL of the
#: profitable shorts, every short a hedger who sells its unhedged spot into a thin spot book.
ADL_CRASH = {
    "markets.0.price.drop_fraction": 0.25,
    "markets.0.price.duration_s": 10.0,
    "insurance.fund": 0.0,
    "agents.hedgers.fraction": 1.0,
    "agents.hedgers.band": 0.0,
    "agents.hedgers.spot": {"depth_per_pct": 5.0, "half_life_s": 120.0},
}


def _accounts(result: RunResult, kind: EventKind) -> set[int]:
    frame = result.journal.to_frame()
    return set(frame.loc[frame["kind"] == int(kind), "account"].tolist())


def _adl_parties(result: RunResult) -> set[int]:
    """Accounts on either side of an ADL fill."""
    frame = result.journal.to_frame()
    fills = frame[(frame["kind"] == int(EventKind.FILL)) & (frame["code"] == int(FillReason.ADL))]
    return set(fills["account"].tolist()) | set(fills["counterparty"].tolist())


# ---------------------------------------------------------------------------- physics
def test_with_hedgers_the_same_squeeze_liquidates_fewer_directional_shorts(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: the same population and path; in the second run half the shorts are hedgers
    # who post their spot leg's gain as margin.
    hedged_sim = Simulation(
        make_scenario(
            {**SQUEEZE, "agents.hedgers.fraction": 0.5, "agents.hedgers.margin_from_spot": True}
        )
    )
    hedgers = set(hedged_sim.agents.hedgers[0].tolist())

    # Act
    plain = run(make_scenario(SQUEEZE))
    hedged = hedged_sim.run(keep_exchange=True)

    # Assert: the premise (the squeeze liquidates directional shorts), then fewer of those
    # same directional accounts are liquidated when the hedgers survive on their spot gains
    # (less forced buying, a smaller overshoot of the mark).
    directional_plain = _accounts(plain, EventKind.LIQUIDATION) - hedgers
    directional_hedged = _accounts(hedged, EventKind.LIQUIDATION) - hedgers
    assert len(directional_plain) > 50
    assert len(directional_hedged) < len(directional_plain)
    assert hedged.summary["liquidations"] < plain.summary["liquidations"]
    mark_over_index = hedged.steps["mark"] / hedged.steps["index"]
    plain_over_index = plain.steps["mark"] / plain.steps["index"]
    assert mark_over_index.max() < plain_over_index.max()
    assert hedged.summary["hedger_margin_posted"] > 0
    assert hedged.exchange is not None
    hedged.exchange.assert_conserved()


def test_margin_from_spot_never_posts_more_than_the_spot_gain(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange
    sim = Simulation(
        make_scenario(
            {**SQUEEZE, "agents.hedgers.fraction": 1.0, "agents.hedgers.margin_from_spot": True}
        )
    )
    legs = sim.agents.spot_legs[0]
    assert legs is not None

    # Act
    result = sim.run()

    # Assert: each hedger posted at most its spot leg's largest gain over the run, and the
    # deposits in the journal after the start are exactly what was posted.
    top = float(result.steps["index"].max())
    assert (legs.posted <= legs.spot * (top - legs.entry) + 1e-9).all()
    frame = result.journal.to_frame()
    start = int(result.steps["ts_ns"].iloc[0])
    deposits = frame[(frame["kind"] == int(EventKind.DEPOSIT)) & (frame["ts_ns"] > start)]
    assert float(deposits["amount"].sum()) == pytest.approx(float(legs.posted.sum()), rel=1e-12)


def test_an_adl_of_hedged_shorts_leaves_them_unhedged_and_their_spot_sale_shows_in_the_flow(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange
    sim = Simulation(make_scenario(ADL_CRASH))
    legs = sim.agents.spot_legs[0]
    assert legs is not None
    spot_start = legs.spot.copy()
    ids = legs.accounts

    # Act
    result = sim.run(keep_exchange=True)

    # Assert: the crash liquidates no short: ADL alone closed (part of) hedged shorts ...
    assert result.summary["adl_rounds"] > 0
    assert result.exchange is not None
    short_end = np.abs(np.minimum(result.exchange.columns(0).size[ids], 0.0))
    cut = set(ids[short_end < legs.start_short].tolist())
    assert cut
    assert not cut & _accounts(result, EventKind.LIQUIDATION)
    assert cut <= _adl_parties(result)
    # ... each hedger sold exactly the spot its short no longer hedges (band 0: to h |q|) ...
    np.testing.assert_allclose(legs.spot, short_end, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(legs.sold, spot_start - legs.spot, rtol=1e-12, atol=1e-12)
    sellers = set(ids[legs.sold > 0].tolist())
    assert cut <= sellers
    # ... and the sale is the flow: per step in the frame, in total in the summary.
    flow = result.hedger_flow
    assert flow is not None
    assert len(flow) > 0
    assert float(flow["spot_sold"].sum()) == pytest.approx(float(legs.sold.sum()), rel=1e-12)
    assert result.summary["hedger_spot_sold"] == pytest.approx(float(legs.sold.sum()), rel=1e-12)
    assert (flow["spot_impact"] < 0).all()
    result.exchange.assert_conserved()


def test_the_spot_sale_fills_on_the_linear_book_and_moves_the_index(
    make_scenario: ScenarioFactory,
) -> None:
    # Act
    result = run(make_scenario(ADL_CRASH))

    # Assert: the first sale of q from a rested book of D = 100 x 5 base units per unit move
    # fills at index x (1 - q / (2 D)) (the linear book's closed form), leaves the book's mid
    # at -q / D, and the venue sees the index that much below the exogenous path next step.
    flow = result.hedger_flow
    assert flow is not None
    first = flow.iloc[0]
    steps = result.steps.set_index("ts_ns")
    index = float(steps.loc[int(first["ts_ns"]), "index"])
    q, depth = float(first["spot_sold"]), 100.0 * 5.0
    assert float(first["vwap"]) == pytest.approx(index * (1 - q / (2 * depth)), rel=1e-12)
    assert float(first["spot_impact"]) == pytest.approx(-q / depth, rel=1e-12)
    after = result.steps[result.steps["ts_ns"] > int(first["ts_ns"])].iloc[0]
    assert after["index"] < after["exogenous"]
    ratio = after["index"] / after["exogenous"]
    # the book refilled for one step (half-life 120 s) before the next mark
    assert ratio == pytest.approx(1 - (q / depth) * 0.5 ** (1 / 120), rel=1e-9)


def test_hedgers_without_a_spot_book_only_observe(make_scenario: ScenarioFactory) -> None:
    # Act: hedgers that sell at the index (no spot book) and post no margin change nothing.
    plain = run(make_scenario(SQUEEZE))
    observed = run(make_scenario({**SQUEEZE, "agents.hedgers.fraction": 0.5}))

    # Assert
    assert observed.result_hash == plain.result_hash
    assert observed.summary["hedgers"] > 0
    assert plain.summary["hedgers"] == 0
    assert plain.hedger_flow is not None
    assert plain.hedger_flow.empty


def test_in_the_twin_the_spot_sale_does_not_move_the_index(
    make_scenario: ScenarioFactory,
) -> None:
    # Act
    twin = run(make_scenario(ADL_CRASH), feedback=False)

    # Assert
    steps = twin.steps
    np.testing.assert_array_equal(steps["index"].to_numpy(), steps["exogenous"].to_numpy())


def test_hedgers_who_hold_keep_naked_spot(make_scenario: ScenarioFactory) -> None:
    # Act: nobody sells an unhedged spot leg.
    result = run(make_scenario({**ADL_CRASH, "agents.hedgers.sell_naked": 0.0}))

    # Assert
    assert result.summary["hedger_spot_sold"] == 0.0
    assert result.summary["hedger_naked_spot"] > 0.0
    assert isinstance(result.hedger_flow, pd.DataFrame)
    assert result.hedger_flow.empty


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("agents.hedgers.hedge_ratio", 0.0),
        ("agents.hedgers.band", 1.5),
        ("agents.hedgers.cost", -0.1),
        ("agents.hedgers.trigger_ratio", 1.0),
    ],
)
def test_bad_hedger_settings_are_refused_naming_the_field(
    make_scenario: ScenarioFactory, path: str, value: float
) -> None:
    with pytest.raises(ConfigError, match=path.rsplit(".", 1)[1]):
        make_scenario({path: value})


def test_the_metrics_table_reports_the_second_order_flow(make_scenario: ScenarioFactory) -> None:
    # Act
    hedged = run(make_scenario(ADL_CRASH))
    plain = run(make_scenario())

    # Assert: a line with the spot sold (quote) and the hedgers left unhedged, only with hedgers.
    rows = dict(metrics_table(stress_metrics(hedged)))
    line = rows["hedgers' spot sold after their short closed (second-order flow)"]
    assert line.startswith(f"{hedged.summary['hedger_spot_sold_notional']:,.0f} (")
    assert f"of {int(hedged.summary['hedgers']):,} left unhedged" in line
    assert not any("second-order" in label for label, _ in metrics_table(stress_metrics(plain)))


def test_hedgers_earn_funding_on_the_perp_leg_and_the_index_move_on_the_spot_leg(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: a constant positive funding rate every 60 s (shorts receive) on the 4% crash,
    # every short a hedger, no liquidation of shorts (the crash helps them).
    scenario = make_scenario(
        {
            "agents.hedgers.fraction": 1.0,
            "markets.0.funding": {"kind": "constant", "rate": 0.001, "interval_s": 60.0},
        }
    )
    sim = Simulation(scenario)
    legs = sim.agents.spot_legs[0]
    assert legs is not None
    spot = legs.spot.copy()

    # Act
    result = sim.run()

    # Assert: each hedger receives |short| x mark x rate per settlement (the mark is in the
    # row's size column) ...
    frame = result.journal.to_frame()
    paid = frame[(frame["kind"] == int(EventKind.FUNDING)) & frame["account"].isin(legs.accounts)]
    assert len(paid) >= len(legs.accounts)
    short = dict(zip(legs.accounts.tolist(), legs.start_short.tolist(), strict=True))
    expected = paid["account"].map(short) * paid["size"] * 0.001
    np.testing.assert_allclose(paid["amount"], expected, rtol=1e-9)
    # ... and the spot legs lost what the index fell: S (X_end - X_0), nothing traded.
    end = float(result.steps["index"].iloc[-1])
    assert result.summary["hedger_spot_sold"] == 0.0
    assert result.summary["hedger_spot_pnl"] == pytest.approx(
        float(spot.sum()) * (end - legs.entry), rel=1e-9
    )
