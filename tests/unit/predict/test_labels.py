"""Labels look only at (t, t + H]; censored rows are dropped. Oracle: hand-counted examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deleverage.errors import ValidationError
from deleverage.predict.labels import account_labels, drop_censored, market_labels

S = 1_000_000_000


def _samples(times_s: list[int], account: int = 7) -> pd.DataFrame:
    return pd.DataFrame(
        {"market": "BTCUSDT", "account": account, "ts_ns": [t * S for t in times_s]}
    )


def test_a_liquidation_counts_only_strictly_after_the_sample_and_within_the_horizon() -> None:
    # Arrange: samples at 0, 10, 20, 30 s; the account is liquidated at 20 s and at 95 s.
    samples = _samples([0, 10, 20, 30])
    liquidations = pd.DataFrame({"market": "BTCUSDT", "account": [7, 7], "ts_ns": [20 * S, 95 * S]})

    # Act
    out = account_labels(samples, liquidations, horizon_s=15.0)

    # Assert: 0 s -> next at 20 (wait 20 > 15: no); 10 s -> wait 10 (yes); 20 s -> the
    # liquidation at its own time is not after it, next is 95 (wait 75: no); 30 s -> 65 (no).
    assert out["liquidated"].tolist() == [0, 1, 0, 0]
    assert out["time_to_liquidation_s"].tolist() == [20.0, 10.0, 75.0, 65.0]


def test_another_accounts_or_markets_liquidation_is_not_in_the_label() -> None:
    samples = _samples([0], account=7)
    liquidations = pd.DataFrame(
        {"market": ["BTCUSDT", "ETHUSDT"], "account": [8, 7], "ts_ns": [5 * S, 5 * S]}
    )

    out = account_labels(samples, liquidations, horizon_s=60.0)

    assert out["liquidated"].tolist() == [0]
    assert np.isnan(out["time_to_liquidation_s"].iloc[0])


def test_market_label_is_the_share_of_open_interest_liquidated_in_the_horizon() -> None:
    # Arrange: 1 s steps, 100 quote liquidated at 3 s and 50 at 6 s; open interest 1,000.
    steps = pd.DataFrame(
        {
            "market": "BTCUSDT",
            "ts_ns": [k * S for k in range(10)],
            "liquidated_notional": [0, 0, 0, 100, 0, 0, 50, 0, 0, 0],
        }
    )
    samples = pd.DataFrame(
        {"market": "BTCUSDT", "ts_ns": [0, 3 * S], "open_interest_notional": [1000.0, 1000.0]}
    )

    # Act
    out = market_labels(samples, steps, horizon_s=4.0, level=0.1)

    # Assert: (0, 4] holds the 100 at 3 s: 10%; (3, 7] holds only the 50 at 6 s: 5%.
    assert out["liquidated_share"].tolist() == pytest.approx([0.10, 0.05])
    assert out["cascade"].tolist() == [1, 0]


def test_rows_whose_horizon_passes_the_end_of_the_run_are_dropped() -> None:
    samples = _samples([0, 40, 41, 50])

    out = drop_censored(samples, end_ns=100 * S, horizon_s=60.0)

    assert (out["ts_ns"] // S).tolist() == [0, 40]


@pytest.mark.parametrize("horizon", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_horizon_is_refused_naming_the_field(horizon: float) -> None:
    with pytest.raises(ValidationError, match="horizon_s"):
        account_labels(_samples([0]), _samples([1]), horizon_s=horizon)
