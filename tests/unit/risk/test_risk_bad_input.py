"""Bad risk configuration and bad risk calls fail early, name the field and change nothing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from deleverage import Exchange, MarketSpec
from deleverage.errors import (
    ConfigError,
    CooldownError,
    DeleverageError,
    InsufficientFundsError,
    ValidationError,
)
from deleverage.spec import RiskScoreWeights

S = 1_000_000_000
TIERS = [{"notional_floor": 0.0, "max_leverage": 20.0, "maintenance_rate": 0.025}]


def _spec(**fields: Any) -> MarketSpec:
    return MarketSpec.from_mapping({"symbol": "BTCUSDT", "tiers": TIERS, **fields})


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"adl": {"ranking": "lifo"}}, "MarketSpec.adl.ranking", ["lifo", "pnl_leverage"]),
        ({"adl": {"price": "index"}}, "MarketSpec.adl.price", ["index", "bankruptcy"]),
        ({"adl": {"socialize_over": "volume"}}, "MarketSpec.adl.socialize_over", ["volume"]),
        ({"liquidation": {"kind": "half"}}, "MarketSpec.liquidation.kind", ["half", "tier_down"]),
        (
            {"liquidation": {"execution": "auction"}},
            "MarketSpec.liquidation.execution",
            ["auction"],
        ),
        ({"liquidation": {"target": "zero"}}, "MarketSpec.liquidation.target", ["zero"]),
        ({"liquidation": {"buffer": 0.6}}, "MarketSpec.liquidation.buffer", ["0.6", "0.5"]),
        ({"liquidation": {"buffer": -0.01}}, "MarketSpec.liquidation.buffer", ["-0.01"]),
        ({"liquidation": {"buffer": math.nan}}, "MarketSpec.liquidation.buffer", ["nan"]),
        ({"liquidation": {"fraction": 0.0}}, "MarketSpec.liquidation.fraction", ["0.0"]),
        ({"liquidation": {"cooldown_s": -1.0}}, "MarketSpec.liquidation.cooldown_s", ["-1.0"]),
        (
            {"liquidation": {"backstop_equity_fraction": 1.0}},
            "MarketSpec.liquidation.backstop_equity_fraction",
            ["1.0"],
        ),
        (
            {"liquidation": {"margin_call_ratio": 1.5}},
            "MarketSpec.liquidation.margin_call_ratio",
            ["1.5"],
        ),
        (
            {"liquidation": {"max_notional_per_market_step": 0.0}},
            "MarketSpec.liquidation.max_notional_per_market_step",
            ["0.0"],
        ),
        ({"liquidation": {"keep": True}}, "MarketSpec.liquidation.keep", ["not a field"]),
        ({"circuit_breaker": {"threshold": 0.0}}, "MarketSpec.circuit_breaker.threshold", ["0.0"]),
        (
            {"circuit_breaker": {"threshold": 0.1, "window_s": 0.0}},
            "MarketSpec.circuit_breaker.window_s",
            ["0.0"],
        ),
    ],
)
def test_bad_risk_policy_in_a_spec_mapping_is_a_config_error_naming_the_field(
    fields: dict[str, Any], field: str, words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        _spec(**fields)

    assert info.value.field == field
    message = str(info.value)
    assert field in message
    for word in words:
        assert word in message


def test_fixed_fraction_of_one_is_refused_with_the_rule() -> None:
    with pytest.raises(ConfigError, match="fraction must be below 1") as info:
        _spec(liquidation={"kind": "fixed_fraction", "fraction": 1.0})

    assert "MarketSpec.liquidation" in str(info.value)


def test_risk_score_weights_all_zero_are_refused() -> None:
    zero = {"leverage": 0.0, "margin_ratio": 0.0, "size": 0.0}

    with pytest.raises(ConfigError, match="weights must sum to a positive number") as info:
        _spec(adl={"ranking": "risk_score", "weights": zero})
    assert "MarketSpec.adl.weights" in str(info.value)

    with pytest.raises(ValidationError, match="weights must sum to a positive number"):
        RiskScoreWeights.from_mapping(zero)


def test_negative_risk_score_weight_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        _spec(adl={"weights": {"leverage": -1.0}})

    assert info.value.field == "MarketSpec.adl.weights.leverage"


# ---------------------------------------------------------------------------- calls


def _venue() -> tuple[Exchange, int]:
    ex = Exchange(check_invariants=True, unstake_cooldown_s=100.0)
    m = ex.list_market(_spec(maker_fee_rate=0.0, taker_fee_rate=0.0))
    ex.set_mark(m, 100_000.0)
    return ex, m


def test_stake_larger_than_cash_raises_and_changes_nothing() -> None:
    ex, _ = _venue()
    a = ex.open_account()
    ex.deposit(a, 100.0)
    before, events = ex.state_hash(), len(ex.journal)

    with pytest.raises(InsufficientFundsError, match="exceeds"):
        ex.stake(a, 100.01)

    assert (ex.state_hash(), len(ex.journal)) == (before, events)
    assert ex.cash(a) == 100.0


@pytest.mark.parametrize("amount", [0.0, -5.0, math.nan, math.inf])
def test_stake_of_a_non_positive_or_non_finite_amount_names_the_field(amount: float) -> None:
    ex, _ = _venue()
    a = ex.open_account()
    ex.deposit(a, 100.0)
    before, events = ex.state_hash(), len(ex.journal)

    with pytest.raises(ValidationError) as info:
        ex.stake(a, amount)

    assert info.value.field == "amount"
    assert (ex.state_hash(), len(ex.journal)) == (before, events)


def test_unstake_before_cooldown_raises_with_the_time_left_and_changes_nothing() -> None:
    ex, _ = _venue()
    a = ex.open_account()
    ex.deposit(a, 1_000.0)
    ex.stake(a, 1_000.0)
    ex.request_unstake(a, 500.0, ts_ns=1 * S)
    before, events = ex.state_hash(), len(ex.journal)

    with pytest.raises(CooldownError, match=r"60\.000 s left"):
        ex.unstake(a, ts_ns=41 * S)

    assert (ex.state_hash(), len(ex.journal)) == (before, events)


def test_request_to_unstake_more_shares_than_held_names_the_field() -> None:
    ex, _ = _venue()
    a = ex.open_account()
    ex.deposit(a, 1_000.0)
    ex.stake(a, 1_000.0)
    before, events = ex.state_hash(), len(ex.journal)

    with pytest.raises(ValidationError) as info:
        ex.request_unstake(a, 1_000.5)

    assert info.value.field == "shares"
    assert (ex.state_hash(), len(ex.journal)) == (before, events)


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_bad_mark_price_is_refused_before_any_risk_step(price: float) -> None:
    ex, m = _venue()
    a = ex.open_account()
    ex.deposit(a, 1_000.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=0.2, price=100_000.0)
    before, events, reports = ex.state_hash(), len(ex.journal), len(ex.risk.reports)

    with pytest.raises(ValidationError) as info:
        ex.set_mark(m, price, ts_ns=1 * S)

    assert info.value.field == "price"
    assert (ex.state_hash(), len(ex.journal)) == (before, events)
    assert len(ex.risk.reports) == reports


def test_every_error_here_is_a_deleverage_error() -> None:
    for exc in (ConfigError, CooldownError, InsufficientFundsError, ValidationError):
        assert issubclass(exc, DeleverageError)
