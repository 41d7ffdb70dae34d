"""Dynamic margin, the ADL queue view and per-market insurance funds, through the engine."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import RiskParamsChanged, Transfer, TransferReason
from deleverage.errors import ConfigError, ValidationError
from deleverage.rules.adl import score_pnl_leverage
from deleverage.rules.dynamic import VolatilityScaledMargin, realized_volatility, scale_spec

S = 1_000_000_000
YEAR_S = 365 * 24 * 3600


def test_realized_volatility_annualizes_the_std_of_log_returns() -> None:
    # Alternating +1% / -1% log returns every 60 s: std (ddof 1) of [+r, -r, +r, -r] with
    # r = 0.01 is 0.01 x sqrt(4/3); annualized by sqrt(seconds per year / 60).
    r = 0.01
    marks = [(k * 60 * S, 100.0 * math.exp(r * (k % 2))) for k in range(5)]
    sigma = realized_volatility(marks, ts_ns=4 * 60 * S, window_s=3600)
    assert sigma == pytest.approx(r * math.sqrt(4 / 3) * math.sqrt(YEAR_S / 60), rel=1e-12)
    assert realized_volatility(marks[:2], ts_ns=60 * S, window_s=3600) is None


def test_multiplier_scales_with_volatility_within_bounds_and_steps() -> None:
    r = 0.01
    marks = [(k * 60 * S, 100.0 * math.exp(r * (k % 2))) for k in range(5)]
    sigma = r * math.sqrt(4 / 3) * math.sqrt(YEAR_S / 60)
    policy = VolatilityScaledMargin(
        window_s=3600, reference_volatility=sigma / 1.5, max_multiplier=3.0, step=0.05
    )
    assert policy.multiplier(4 * 60 * S, marks, 0.0) == pytest.approx(1.5)
    capped = VolatilityScaledMargin(window_s=3600, reference_volatility=sigma / 10)
    assert capped.multiplier(4 * 60 * S, marks, 0.0) == pytest.approx(3.0)
    calm = VolatilityScaledMargin(window_s=3600, reference_volatility=sigma * 10)
    assert calm.multiplier(4 * 60 * S, marks, 0.0) == pytest.approx(1.0)
    oi = VolatilityScaledMargin(
        volatility_exponent=0.0, reference_open_interest=1_000.0, open_interest_exponent=0.5,
        step=0.0,
    )  # fmt: skip
    assert oi.multiplier(0, [], 4_000.0) == pytest.approx(2.0)


def test_bounds_out_of_order_are_rejected_with_the_field_named() -> None:
    with pytest.raises(ConfigError, match="max_multiplier"):
        VolatilityScaledMargin.from_mapping({"min_multiplier": 2.0, "max_multiplier": 1.5})


def test_scale_spec_multiplies_maintenance_and_divides_leverage() -> None:
    base = MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025)
    scaled = scale_spec(base, 2.0)
    assert scaled.tiers[0].max_leverage == pytest.approx(10.0)
    assert scaled.tiers[0].maintenance_rate == pytest.approx(0.05)
    assert scaled.symbol == base.symbol


def test_engine_emits_risk_params_when_the_multiplier_changes_and_replay_follows() -> None:
    ex = Exchange(check_invariants=True)
    m = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025))
    ex.set_mark(m, 100.0)
    ex.set_dynamic_margin(m, VolatilityScaledMargin(window_s=600, reference_volatility=0.5))
    a, b = ex.open_account(), ex.open_account()
    ex.deposit(a, 1_000.0)
    ex.deposit(b, 1_000.0)
    ex.trade(m, buyer=a, seller=b, size=1.0, price=100.0)
    # 0.4% moves a second: annualized volatility far above 50%, so k hits its cap of 3.
    for k in range(1, 12):
        ex.set_mark(m, 100.0 * (1.004 if k % 2 else 1.0), ts_ns=k * S)

    changes = ex.journal.events(RiskParamsChanged)
    assert len(changes) == 1
    assert ex.markets[m].spec.tiers[0].max_leverage == pytest.approx(20.0 / 3.0)
    assert ex.markets[m].spec.tiers[0].maintenance_rate == pytest.approx(0.075)
    replayed = Exchange.replay(ex.journal)
    assert replayed.markets[m].spec == ex.markets[m].spec
    assert replayed.state_hash() == ex.state_hash()


def test_adl_queue_ranks_one_side_by_the_markets_score_with_lights() -> None:
    ex = Exchange()
    m = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025))
    ex.set_mark(m, 100.0)
    longs = [ex.open_account(margin_mode=MarginMode.ISOLATED) for _ in range(5)]
    for k, a in enumerate(longs):
        ex.deposit(a, 200.0 + 100.0 * k)
        ex.trade(m, buyer=a, seller=ex.liquidity_account, size=1.0 + k, price=100.0)
    ex.set_mark(m, 101.0, ts_ns=S)

    queue = ex.adl_queue(m, +1)

    cols = ex.columns(m)
    ids = np.array(longs)
    equity = cols.isolated_margin[ids] + cols.size[ids] * (101.0 - cols.entry[ids])
    scores = score_pnl_leverage(cols.size[ids], cols.entry[ids], 101.0, equity=equity)
    want = [int(a) for a in ids[np.argsort(-scores, kind="stable")]]
    assert queue["account"].tolist() == want
    assert queue["rank"].tolist() == [1, 2, 3, 4, 5]
    assert queue["score"].tolist() == pytest.approx(sorted(scores.tolist(), reverse=True))
    assert set(queue["indicator"]) <= {1, 2, 3, 4, 5}
    assert queue["indicator"].iloc[0] == queue["indicator"].max()
    assert ex.adl_queue(m, -1).empty
    with pytest.raises(ValidationError, match="side"):
        ex.adl_queue(m, 0)


def test_per_market_funds_take_their_markets_penalties_and_pay_their_shortfalls() -> None:
    # Two markets, a fund each. A 20x long in ETH is liquidated at the mark with a 0.5% fee:
    # the penalty goes to ETH's fund, BTC's fund is untouched.
    ex = Exchange(insurance="per_market", check_invariants=True)
    btc = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025))
    eth = ex.list_market(MarketSpec.simple("ETHUSDT", max_leverage=20.0, maintenance_rate=0.025))
    assert ex.insurance_account_for(btc) != ex.insurance_account_for(eth)
    ex.set_mark(btc, 100.0)
    ex.set_mark(eth, 100.0)
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 100.0)
    ex.trade(eth, buyer=a, seller=ex.liquidity_account, size=19.0, price=100.0)

    ex.set_mark(eth, 97.0, ts_ns=S)

    penalties = [
        t for t in ex.journal.events(Transfer)
        if isinstance(t, Transfer) and t.reason == TransferReason.LIQUIDATION_FEE
    ]  # fmt: skip
    assert penalties
    assert {t.destination for t in penalties} == {ex.insurance_account_for(eth)}
    assert ex.insurance_fund(eth).balance == pytest.approx(sum(t.amount for t in penalties))
    assert ex.insurance_fund(btc).balance == 0.0
    assert ex.cash(ex.insurance_account_for(eth)) == pytest.approx(ex.insurance_fund(eth).balance)
