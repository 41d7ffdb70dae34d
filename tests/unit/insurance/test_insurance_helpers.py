"""Pure share-accounting helpers of the insurance fund, against closed-form numbers."""

from __future__ import annotations

import math

import pytest

from deleverage.engine.insurance_fund import (
    shares_for_deposit,
    shares_forfeited_on_cancel,
    unstake_payout,
    value_of_shares,
)
from deleverage.errors import ValidationError


def test_first_deposit_into_an_empty_fund_mints_one_share_per_quote() -> None:
    assert shares_for_deposit(250.0, 0.0, 0.0) == 250.0


def test_deposit_is_priced_at_fund_value_over_total_shares() -> None:
    # 1,000 shares worth 2,000 quote: price 2, so 100 quote buys 50 shares.
    assert shares_for_deposit(100.0, 1_000.0, 2_000.0) == 50.0


def test_deposit_into_a_fund_with_shares_but_no_value_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"`fund_value` must be > 0 while shares"):
        shares_for_deposit(100.0, 1_000.0, 0.0)


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("amount", (-1.0, 1.0, 1.0)),
        ("amount", (math.nan, 1.0, 1.0)),
        ("total_shares", (1.0, math.inf, 1.0)),
        ("fund_value", (1.0, 1.0, -5.0)),
    ],
)
def test_deposit_helper_names_the_bad_argument(field: str, args: tuple[float, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        shares_for_deposit(*args)
    assert info.value.field == field


def test_value_of_shares_is_the_pro_rata_part_of_the_fund() -> None:
    # Drift's example after the $30 settlement: 10,000 of 15,000 staker shares in a fund whose
    # stakers' part is 15,015 are worth 10,010.
    assert value_of_shares(10_000.0, 15_000.0, 15_015.0) == pytest.approx(10_010.0, rel=1e-15)
    assert value_of_shares(0.0, 0.0, 0.0) == 0.0


def test_value_of_more_shares_than_outstanding_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"`shares` must be <= total_shares"):
        value_of_shares(11.0, 10.0, 10.0)


def test_unstake_payout_is_the_value_at_request_when_the_fund_gained() -> None:
    # 100 of 1,000 shares; the fund went from 1,000 to 1,200: worth 120 now, 100 at request.
    assert unstake_payout(100.0, 100.0, 1_000.0, 1_200.0) == 100.0


def test_unstake_payout_is_the_value_now_when_the_fund_lost() -> None:
    assert unstake_payout(100.0, 100.0, 1_000.0, 800.0) == pytest.approx(80.0, rel=1e-15)


def test_cancel_forfeits_the_shares_that_carry_the_gain_since_the_request() -> None:
    # Arrange: n = 100 of T = 200 shares, B = 300, so the request (R = 100) is now worth 150.
    n, request_value, total, balance = 100.0, 100.0, 200.0, 300.0
    # Act
    lost = shares_forfeited_on_cancel(n, request_value, total, balance)
    # Assert: Drift keeps n' = R (T - n) / (B - R) = 100 x 100 / 200 = 50 shares ...
    assert lost == pytest.approx(50.0, rel=1e-15)
    # ... and after burning them the kept 50 shares are worth exactly R again.
    kept_value = (n - lost) * balance / (total - lost)
    assert kept_value == pytest.approx(request_value, rel=1e-15)


def test_cancel_forfeits_nothing_when_the_requested_shares_lost_value() -> None:
    assert shares_forfeited_on_cancel(100.0, 100.0, 200.0, 150.0) == 0.0


def test_cancel_by_the_only_holder_hands_over_the_gain_as_a_fraction_of_its_shares() -> None:
    # The only holder: 100 shares, fund 150, request value 100: 1/3 of the shares carry the gain.
    lost = shares_forfeited_on_cancel(100.0, 100.0, 100.0, 150.0)
    assert lost == pytest.approx(100.0 / 3.0, rel=1e-15)
