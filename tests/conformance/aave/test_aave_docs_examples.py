"""The worked examples of Aave's v3.3 release notes (docs/3.3/Aave-v3.3-features.md in
aave-dao/aave-v3-origin at v3.3.0; README.md), against deleverage.protocols.aave.math."""

from __future__ import annotations

import pytest

from deleverage.protocols.aave.math import (
    collateral_to_liquidate,
    leaves_dust,
    max_debt_to_liquidate,
)


def test_2_1_the_close_factor_applies_to_the_whole_position() -> None:
    # 3k GHO, 3k USDC, 3k DAI of debt against 9k of ETH: v3.3 may repay a whole 3k reserve
    # (50% of the 9k total), where v3.2 allowed 1.5k. The notes give no health factor; the
    # 50% rule needs HF > 0.95, so take 0.96.
    assert float(max_debt_to_liquidate(0.96, 9_000.0, 3_000.0, 9_000.0)) == 3_000.0


def test_2_2_a_reserve_below_the_threshold_gets_a_100_percent_close_factor() -> None:
    # MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD 1,000; 1,200 of collateral A, 900 of debt B, HF 0.96.
    got = max_debt_to_liquidate(
        0.96, 1_200.0, 900.0, 900.0, min_base_max_close_factor_threshold=1e3
    )
    assert float(got) == 900.0


@pytest.mark.parametrize(
    ("collateral", "debt", "repay", "dust"),
    [
        ("B", "B", 400.0, False),  # 100% of debt B
        ("A", "A", 381.0, False),  # 381 x 1.05 > 400: 100% of collateral A
        ("B", "A", 400.0, False),  # up to 400 of debt A (500 left)
        ("B", "A", 401.0, True),  # 499 of debt A left: dust
        ("B", "A", 900.0, False),  # 100% of debt A
        ("B", "B", 399.0, True),  # 1 of debt B left
    ],
)
def test_2_3_forced_position_cleanup(collateral: str, debt: str, repay: float, dust: bool) -> None:
    # MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD 1,000, MIN_LEFTOVER_BASE 500; 400 of collateral A,
    # 1,000 of collateral B, 900 of debt A, 400 of debt B, HF 0.94 (prices 1, bonus 5%).
    balances = {"A": 400.0, "B": 1_000.0}
    debts = {"A": 900.0, "B": 400.0}
    amounts = collateral_to_liquidate(repay, balances[collateral], 1.0, 1.0, 1.05, 0.0)
    got = leaves_dust(amounts, balances[collateral], debts[debt], 1.0, 1.0, min_leftover=500.0)
    assert bool(got) is dust
