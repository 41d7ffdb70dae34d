"""Properties of collateral-backed books (Hypothesis): money is conserved, every loss beyond
collateral lands on a named line after the venue sold the coins, and the journal replays."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode
from deleverage.engine.collateral import (
    deposit_collateral,
    ledger_of,
    list_collateral,
    quote_balance,
    set_collateral_liquidity,
    set_collateral_policy,
    set_collateral_price,
    settle_collateral,
)
from deleverage.errors import DeleverageError
from deleverage.liquidity import ConstantDepthBook
from deleverage.rules.collateral import CollateralAsset, CollateralPolicy, CollateralTier
from deleverage.venues import preset

S = 1_000_000_000
BTC = CollateralAsset(
    symbol="BTC",
    tiers=(CollateralTier(floor=0.0, rate=0.95), CollateralTier(floor=100_000.0, rate=0.8)),
)
STAKED = CollateralAsset(
    symbol="STBTC", basis="quantity", tiers=(CollateralTier(floor=0.0, rate=0.9),)
)


@st.composite
def books(draw: st.DrawFn) -> dict[str, object]:
    traders = [
        (
            draw(st.booleans()),  # long
            draw(st.floats(0.01, 1.0)),  # size, BTC
            draw(st.floats(0.0, 1.5)),  # BTC posted
            draw(st.floats(0.0, 1.0)),  # staked BTC posted
            draw(st.floats(0.0, 20_000.0)),  # quote posted
        )
        for _ in range(draw(st.integers(1, 8)))
    ]
    return {
        "venue": draw(st.sampled_from(["binance", "bybit", "okx", "hyperliquid"])),
        "fund": draw(st.sampled_from([0.0, 500.0, 50_000.0])),
        "coin_depth": draw(st.sampled_from([None, 0.5, 5.0])),
        "order": draw(st.sampled_from(["pro_rata", "highest_rate_first"])),
        "traders": traders,
        "shocks": draw(st.lists(st.floats(-0.35, 0.35), min_size=1, max_size=5)),
    }


def _build(case: dict[str, object]) -> Exchange:
    spec = preset(str(case["venue"]), "BTC")
    ex = Exchange()
    m = ex.list_market(spec, ts_ns=0)
    ex.set_mark(m, 60_000.0, ts_ns=0)
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=0.5, half_life_s=30.0))
    if case["fund"]:
        ex.deposit(ex.insurance_account, float(case["fund"]), ts_ns=0)  # type: ignore[arg-type]
    for asset in (BTC, STAKED):
        list_collateral(ex, asset, ts_ns=0)
        set_collateral_price(ex, asset.symbol, 60_000.0, ts_ns=0)
    if case["coin_depth"] is not None:
        depth = float(case["coin_depth"])  # type: ignore[arg-type]
        set_collateral_liquidity(ex, "BTC", ConstantDepthBook(depth_per_pct=depth, half_life_s=60))
    set_collateral_policy(ex, CollateralPolicy(order=case["order"]))
    for long, size, coins, staked, quote in case["traders"]:  # type: ignore[attr-defined]
        a = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)
        if coins > 0:
            deposit_collateral(ex, a, "BTC", coins, ts_ns=0)
        if staked > 0:
            deposit_collateral(ex, a, "STBTC", staked, ts_ns=0)
        if quote > 0:
            ex.deposit(a, quote, ts_ns=0)
        qty = max(round(size / spec.lot_size), 1) * spec.lot_size
        buyer, seller = (a, ex.liquidity_account) if long else (ex.liquidity_account, a)
        ex.trade(0, buyer=buyer, seller=seller, size=qty, price=60_000.0, ts_ns=0)
    return ex


@settings(max_examples=60, deadline=None)
@given(books())
def test_collateral_backed_books_conserve_money_and_name_every_loss(
    case: dict[str, object],
) -> None:
    # Arrange
    try:
        ex = _build(case)
    except DeleverageError:
        return  # a draw the venue rejects (not enough margin for the size)
    mark = 60_000.0
    shocks: list[float] = case["shocks"]  # type: ignore[assignment]
    for k, shock in enumerate(shocks, start=1):
        mark *= math.exp(shock)
        ts = k * 60 * S
        # Act: the coins and the perp move together; then the venue settles short balances.
        for symbol in ("BTC", "STBTC"):
            set_collateral_price(ex, symbol, mark, ts_ns=ts)
        ex.set_mark(0, mark, ts_ns=ts)
        settle_collateral(ex, ts_ns=ts)
        # Assert
        reports = ex.risk.reports
        shortfall = math.fsum(r.shortfall for r in reports)
        lines = math.fsum(
            r.insurance_paid + r.backstop_loss + r.adl_loss + r.socialized_loss + r.bad_debt
            for r in reports
        )
        carried = math.fsum(ex.risk.carried_deficit.values())
        tol = 1e-6 * max(1.0, shortfall)
        assert lines - tol <= shortfall <= lines + carried + tol, (shortfall, lines, carried)
        assert ex.conservation().holds
        ledger = ledger_of(ex)
        for a in range(ex.n_accounts):
            if ex.columns(0).size[a] == 0.0 and ledger.holds(a):
                # a flat account keeps coins only while its quote balance is not short
                assert quote_balance(ex, a) >= -1e-6
    assert Exchange.replay(ex.journal).state_hash() == ex.state_hash()
