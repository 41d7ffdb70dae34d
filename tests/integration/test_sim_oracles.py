"""Oracle scenarios: a median of sources against one manipulated source, and an immediate
oracle against Maker's one-hour-delayed OSM price, on oracle-marked markets (dYdX, Drift, GMX,
Synthetix: the mark is the oracle).

- Manipulation: the rest of the market is flat at 100; an attacker pushes one source 30% up for
  a minute. With three equal sources the median holds and nobody is liquidated; with that source
  alone the oracle follows the attacker and shorts are liquidated on it.
- Delay: a 20% fall over ten minutes, from t = 10 min. The immediate oracle liquidates during the
  fall; the OSM price moves only at t = 2 h (the reading of t = 1 h, in force from the second hop
  after it), so positions wait far beyond bankruptcy and leave more shortfall.
- Staleness: every source out for ten minutes: the index holds, and the oracle is flagged stale.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario

SEEDS = (1, 2, 3)
SPEC: dict[str, Any] = {
    "tiers": [{"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01}],
    "liquidation_fee_rate": 0.002,
    "lot_size": 0.001,
    "tick_size": 0.01,
}


def _scenario(
    seed: int, oracle: dict[str, Any], *, drop: float = 0.0, duration_s: float = 600.0
) -> Scenario:
    return Scenario.from_mapping(
        {
            "name": "oracle",
            "seed": seed,
            "duration_s": duration_s,
            "dt_s": 1.0 if duration_s <= 600 else 10.0,
            "markets": [{
                "symbol": "ETH-USD", "preset": None, "spec": copy.deepcopy(SPEC),
                "price": {"process": "shock", "s0": 100.0, "drop_fraction": drop,
                          "start_s": 600.0, "duration_s": 600.0},
                "liquidity": {"depth_per_pct": 2_000.0, "half_life_s": 60.0},
                "population": {"n_positions": 2_000, "long_fraction": 0.5,
                               "leverage_median": 20.0, "size_min": 0.1},
                "pricing": {"mark": "oracle", "oracle": oracle},
            }],
            "insurance": {"fund": 1e6},
        }
    )  # fmt: skip


PUSH = {"start_s": 120.0, "duration_s": 60.0, "move": 0.3}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_median_of_sources_holds_where_a_single_pushed_source_breaks(seed: int) -> None:
    # Arrange
    median = _scenario(seed, {"sources": [{"manipulation": PUSH}, {}, {}]})
    single = _scenario(seed, {"sources": [{"manipulation": PUSH}]})

    # Act
    held = run(median).steps
    broken = run(single).steps

    # Assert: the median is the untouched price; the single source is the attacker's
    assert (held["index"] == 100.0).all()
    assert held["liquidations"].sum() == 0
    assert broken["index"].max() == pytest.approx(130.0)
    window = broken[(broken["t_s"] >= 120) & (broken["t_s"] < 180)]
    assert window["liquidations"].sum() > 100  # shorts liquidated on the pushed oracle
    # ... and closed on a book that stayed near the rest of the market (their fills buy back
    # about 100, so the attack costs them their positions, not a shortfall)
    assert (broken["book"] - 100.0).abs().max() < 0.05 * 100.0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_one_hour_delayed_oracle_liquidates_late_and_leaves_more_shortfall(seed: int) -> None:
    # Arrange: a 20% fall over 10 minutes from t = 10 min, three hours in all
    immediate = _scenario(seed, {}, drop=0.2, duration_s=3 * 3600.0)
    delayed = _scenario(seed, {"osm_hop_s": 3600.0}, drop=0.2, duration_s=3 * 3600.0)

    # Act
    now = run(immediate).steps
    late = run(delayed).steps

    # Assert
    first_now = now.loc[now["liquidations"] > 0, "t_s"].min()
    first_late = late.loc[late["liquidations"] > 0, "t_s"].min()
    assert 600.0 <= first_now < 1200.0
    assert first_late == 7200.0  # the OSM's second hop serves the reading of t = 1 h
    assert late.loc[late["t_s"] < 7200.0, "mark"].eq(100.0).all()
    assert late["shortfall"].sum() > 2.0 * now["shortfall"].sum()


def test_sources_out_hold_the_index_and_flag_the_oracle_stale() -> None:
    # Arrange: the only source is out from t = 100 s for 200 s; stale after 30 s
    scenario = _scenario(
        1, {"sources": [{"outages": [[100.0, 200.0]]}], "stale_after_s": 30.0}, drop=0.0
    )

    # Act
    result = run(scenario)
    steps = result.steps

    # Assert
    stale = steps["oracle_stale"].to_numpy().astype(bool)
    t = steps["t_s"].to_numpy()
    np.testing.assert_array_equal(stale, (t >= 130.0) & (t < 300.0))  # last seen at 99 s
    assert result.summary["oracle_stale_s"] == pytest.approx(170.0)
    assert (steps["index"] == 100.0).all()
