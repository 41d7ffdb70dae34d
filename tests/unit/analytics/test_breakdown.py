"""The crash window and the liquidation breakdown, by hand and on a real run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deleverage.analytics.breakdown import crash_window, liquidation_breakdown
from deleverage.engine.events import EventKind
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario
from scenarios import SMALL_CRASH


def test_crash_window_runs_from_the_peak_to_the_trough_padded() -> None:
    # Peak 101 at 60 s, trough 80 at 180 s: 120 s long, padded by max(60, 12) on each side.
    t = [0, 60, 120, 180, 240, 300, 360]
    mark = [100.0, 101.0, 90.0, 80.0, 85.0, 88.0, 90.0]
    assert crash_window(t, mark) == (0.0, 240.0)


def test_crash_window_of_a_long_fall_pads_by_a_tenth() -> None:
    t = np.arange(0, 10_001, 100.0)
    mark = np.where(t <= 2_000, 100.0, np.maximum(50.0, 100.0 - (t - 2_000) / 100.0))
    start, end = crash_window(t, mark)
    # Peak at 2,000 s (last time at 100), trough first reached at 7,000 s: pad 500 s.
    assert (start, end) == (1_500.0, 7_500.0)


def test_breakdown_sums_notional_by_bucket_side_and_mode() -> None:
    # Arrange: three population rows on engine accounts 10, 11, 12; 11 liquidated twice.
    frame = pd.DataFrame(
        {"side": [1, -1, 1], "leverage": [3.0, 25.0, 60.0],
         "margin_mode": ["isolated", "cross", "isolated"]}
    )  # fmt: skip
    liq = int(EventKind.LIQUIDATION)
    journal = pd.DataFrame(
        {"kind": [liq, liq, liq, liq, int(EventKind.FILL)], "market": [0, 0, 0, 0, 0],
         "account": [10, 11, 11, 12, 10], "size": [-1.0, 0.5, 0.25, -2.0, 9.0],
         "price": [100.0, 110.0, 120.0, 90.0, 1.0]}
    )  # fmt: skip
    # Act
    table = liquidation_breakdown(journal, {0: (np.array([10, 11, 12]), frame)})
    # Assert
    rows = {
        (r.leverage, r.side, r.margin_mode): (r.liquidations, r.notional)
        for r in table.itertuples()
    }
    assert rows == {
        ("1-5x", "long", "isolated"): (1, 100.0),
        ("20-50x", "short", "cross"): (2, pytest.approx(0.5 * 110 + 0.25 * 120)),
        (">=50x", "long", "isolated"): (1, 180.0),
    }
    assert list(table["leverage"]) == ["1-5x", "20-50x", ">=50x"]


def test_breakdown_of_a_run_accounts_for_every_liquidation() -> None:
    result = run(Scenario.from_toml(SMALL_CRASH))
    journal = result.journal.to_frame()
    populations = {
        m: (ids, result.populations[symbol].frame)
        for symbol, (m, ids) in result.population_accounts.items()
    }
    table = liquidation_breakdown(journal, populations)
    liq = journal[journal["kind"] == int(EventKind.LIQUIDATION)]
    assert table["liquidations"].sum() == len(liq)
    assert table["notional"].sum() == pytest.approx(float((liq["size"].abs() * liq["price"]).sum()))
