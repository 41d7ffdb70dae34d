"""Drift's liquidate_perp and resolve_perp_bankruptcy end states, reproduced by the engine.

Markets are built with Drift's semantics switched on (the fields the ``drift`` preset carries,
src/deleverage/venues/drift.py): the liquidator takes the position at the oracle less its fee, the
insurance-fund fee is charged on the oracle value and shrinks with the shortage, the partial
size covers the shortage with both fees, the liquidation time ramp, and the bankruptcy order
insurance fund (capped per market) -> fee pool -> socialized over open interest.

Sources (``drift-labs/protocol-v2`` at ``0ae3e3b1db782a6765c3525b3dec38ad4d9d3a62``):

- ``programs/drift/src/controller/liquidation/tests.rs``, ``liquidate_perp``:
  ``successful_liquidation_to_cover_margin_shortage`` (2 base at $100, $5 of collateral, 5%
  maintenance, 2% buffer, 1% + 1% fees: 1.8 base taken, user quote -23.6, liquidator -178.2),
  ``partial_liquidation_oracle_down_20_pct`` (the whole position goes when the user is already
  past bankruptcy), ``successful_liquidation_half_of_if_fee`` (the insurance fee shrinks to
  0.475%), ``liquidation_over_multiple_slots`` (the time ramp).
- ``programs/drift/src/math/liquidation.rs``: ``calculate_max_pct_to_liquidate``,
  ``get_liquidation_fee`` (grace 1,500 slots, +0.0001% per slot, cap min(3 x fee, MMR)).
- ``programs/drift/src/controller/liquidation.rs``: ``resolve_perp_bankruptcy`` (insurance
  fund, then fee pool, then the cumulative funding rate over open interest).
- drift-labs/drift-docs-v2 ``pages/liquidations/liquidations.mdx`` (commit b012fe53): 500 USDC,
  long 200 SOL-PERP at $25, maintenance 5%, liquidated at $23.6825.

Drift counts slots; the engine counts seconds (one slot = one second here). Where Drift's test
starts with open orders (cancelled first, their margin counted as freed) the engine, which has
no resting orders, starts from the state after the cancel.
"""

from __future__ import annotations

from typing import Any

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import Fill, FillReason, Transfer, TransferReason

S = 1_000_000_000
MODES = [MarginMode.CROSS, MarginMode.ISOLATED]


def _drift_market(
    ex: Exchange, *, buffer: float = 0.02, insurance_cap: float | None = None, **liquidation: Any
) -> int:
    policy = {
        "kind": "partial", "execution": "liquidator", "target": "maintenance", "buffer": buffer,
        "liquidator_fee_rate": 0.01, "fee_basis": "oracle", "insurance_fee": "shrink_with_shortage",
    }  # fmt: skip
    policy.update(liquidation)
    spec = MarketSpec.simple(
        "SOL-PERP", max_leverage=10.0, maintenance_rate=0.05, lot_size=0.01, tick_size=0.0001,
        maker_fee_rate=0.0, taker_fee_rate=0.0, liquidation_fee_rate=0.01, liquidation=policy,
        insurance_cap=insurance_cap,
        adl={
            "ranking": "socialized_loss", "socialize_over": "open_interest",
            "fee_pool_pays": True,
        },
    )  # fmt: skip
    return ex.list_market(spec)


def _user(
    ex: Exchange, m: int, *, size: float, entry: float, collateral: float, mark: float,
    mode: MarginMode,
) -> int:  # fmt: skip
    """An account long ``size`` whose equity at ``mark`` is ``collateral``."""
    a = ex.open_account(margin_mode=mode)
    ex.set_mark(m, entry)
    cash = collateral - size * (mark - entry)
    ex.deposit(a, cash)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=size, price=entry)
    if mode is MarginMode.ISOLATED:
        ex.add_isolated_margin(a, m, ex.cash(a))
    return a


def _equity(ex: Exchange, a: int) -> float:
    return ex.account_margins(a).total_equity


@pytest.mark.parametrize("mode", MODES)
def test_cover_margin_shortage_takes_1_8_base_at_oracle_less_fee(mode: MarginMode) -> None:
    # Arrange: 2 base, $5 of collateral at $100: requirement 2 x 100 x (5% + 2%) = 14,
    # shortage 9. Insurance fee min(1%, 0.95 x (7% - 1% - 9/200)) = 1%.
    ex = Exchange(check_invariants=True)
    m = _drift_market(ex)
    a = _user(ex, m, size=2.0, entry=110.0, collateral=5.0, mark=100.0, mode=mode)
    start = ex.journal.next_seq

    # Act
    ex.set_mark(m, 100.0, ts_ns=1 * S)

    # Assert: 9 / (100 x (7% - 1% - 1%)) = 1.8 base to the liquidator at 99; the user pays
    # 1.8 of liquidator fee (in the price) and 1.8 of insurance fee on the oracle value.
    fills = [f for f in ex.journal.events(Fill) if f.seq >= start]
    assert [(f.size, f.price, f.reason) for f in fills] == [
        (pytest.approx(1.8), pytest.approx(99.0), FillReason.LIQUIDATOR_TAKEOVER)
    ]
    assert ex.position(a, m).size == pytest.approx(0.2)
    # Drift: user quote -23.6 + 0.2 x 100 + deposit 5 = 1.4 of collateral.
    assert _equity(ex, a) == pytest.approx(1.4)
    assert ex.last_step.penalties == pytest.approx(1.8)
    # Drift: liquidator quote -178.2 for 1.8 base, i.e. an entry of 99.
    taker = ex.position(ex.liquidator_account, m)
    assert (taker.size, taker.entry_price) == (pytest.approx(1.8), pytest.approx(99.0))


def test_insurance_fee_shrinks_with_the_shortage_half_of_if_fee() -> None:
    # Drift successful_liquidation_half_of_if_fee: shortage 3.6 on 1 base at $100, ratio
    # 5% + 0.1% buffer, liquidator fee 1%, cap 1%: 0.95 x (5.1% - 1% - 3.6%) = 0.475%.
    ex = Exchange(check_invariants=True)
    m = _drift_market(ex, buffer=0.001)
    a = _user(ex, m, size=1.0, entry=110.0, collateral=1.5, mark=100.0, mode=MarginMode.CROSS)

    ex.set_mark(m, 100.0, ts_ns=1 * S)

    # cover = 3.6 / (100 x (5.1% - 1% - 0.475%)) = 0.993 -> 1.0 in steps of 0.01: the whole
    # position, fee 0.475% of the $100 oracle value.
    assert ex.position(a, m).size == 0.0
    assert ex.last_step.penalties == pytest.approx(0.475)
    assert _equity(ex, a) == pytest.approx(1.5 - 1.0 - 0.475)


def test_time_ramp_spreads_the_cover_over_the_liquidation_duration() -> None:
    # 20 base at $100 with $50: requirement 20 x 100 x 7% = 140, shortage 90, cover 90 / 5 =
    # 18 base. Ramp: 10% at entry, 100% after 150 s.
    ex = Exchange(check_invariants=True)
    m = _drift_market(ex, ramp_duration_s=150.0, ramp_initial_fraction=0.1)
    a = _user(ex, m, size=20.0, entry=110.0, collateral=50.0, mark=100.0, mode=MarginMode.CROSS)

    # Entry (elapsed 0): may free 10% of 90 = 9 -> 1.8 base. Another pass in the same step
    # may free nothing more: ((81 + 9) x 10% - 9) / 81 = 0.
    ex.set_mark(m, 100.0, ts_ns=1 * S)
    assert ex.position(a, m).size == pytest.approx(18.2)

    # 75 s later: freeable 10% + 50% = 60% of (81 + 9) = 54, 45 more: 45 / 5 = 9 base.
    ex.set_mark(m, 100.0, ts_ns=76 * S)
    assert ex.position(a, m).size == pytest.approx(9.2)

    # 150 s after entry: all of the remaining 36, 36 / 5 = 7.2 base; 2 base left exactly at
    # the target: equity 50 - 18 x 2 = 14 = 2 x 100 x 7%.
    ex.set_mark(m, 100.0, ts_ns=151 * S)
    assert ex.position(a, m).size == pytest.approx(2.0)
    assert _equity(ex, a) == pytest.approx(14.0)
    assert ex.risk.liquidation_entered_ns == {(-1, a): 1 * S}

    # Back at the target: the next step forgets the ramp.
    ex.set_mark(m, 100.5, ts_ns=152 * S)
    assert ex.risk.liquidation_entered_ns == {}


def test_time_ramp_covers_a_shortage_below_50_at_once() -> None:
    # calculate_max_pct_to_liquidate: a shortage under $50 may be covered in full. As above,
    # but at 75 s the 9 base taken leave a shortage of 36 < 50: the next pass of the same
    # step takes the other 7.2 base.
    ex = Exchange(check_invariants=True)
    m = _drift_market(ex, ramp_duration_s=150.0, ramp_initial_fraction=0.1, ramp_full_below=50.0)
    a = _user(ex, m, size=20.0, entry=110.0, collateral=50.0, mark=100.0, mode=MarginMode.CROSS)
    ex.set_mark(m, 100.0, ts_ns=1 * S)

    ex.set_mark(m, 100.0, ts_ns=76 * S)

    assert ex.position(a, m).size == pytest.approx(2.0)


def test_liquidator_fee_ramps_after_the_grace_period() -> None:
    # get_liquidation_fee: base 1%, cap min(3 x 1%, 5%) = 3%, grace 1,500 slots, +1e-6 per
    # slot. Entry at t = 1 s with a ramp that frees nothing yet; 4,000 s later the fee is
    # 1% + 4,000 x 1e-6 = 1.4%, so the liquidator takes the position at 100 x (1 - 1.4%).
    ex = Exchange(check_invariants=True)
    m = _drift_market(
        ex, liquidator_fee_max_rate=0.03, liquidator_fee_grace_s=1500.0,
        liquidator_fee_ramp_per_s=1e-6, ramp_duration_s=100.0, ramp_initial_fraction=0.0,
    )  # fmt: skip
    a = _user(ex, m, size=20.0, entry=110.0, collateral=50.0, mark=100.0, mode=MarginMode.CROSS)
    ex.set_mark(m, 100.0, ts_ns=1 * S)
    assert ex.position(a, m).size == pytest.approx(20.0)
    start = ex.journal.next_seq

    ex.set_mark(m, 100.0, ts_ns=4001 * S)

    (fill,) = [f for f in ex.journal.events(Fill) if f.seq >= start]
    assert fill.price == pytest.approx(98.6)


def test_bankrupt_user_paid_by_capped_fund_then_fee_pool_then_open_interest() -> None:
    # partial_liquidation_oracle_down_20_pct: 1 base bought at 100 with $10, oracle 80: the
    # user is past bankruptcy, so the whole base goes at 80 x 0.99 = 79.2 (no insurance fee:
    # the shortage is larger than the ratio leaves), a deficit of 10 + 0.8 = 10.8.
    ex = Exchange(check_invariants=True)
    m = _drift_market(ex, insurance_cap=3.0)
    user = ex.open_account(margin_mode=MarginMode.CROSS)
    ex.set_mark(m, 100.0)
    ex.deposit(user, 10.0)
    ex.trade(m, buyer=user, seller=ex.liquidity_account, size=1.0, price=100.0)
    # Open interest for the socialized part: 5 long and 5 short between two traders.
    longs, shorts = ex.open_account(), ex.open_account()
    for t in (longs, shorts):
        ex.deposit(t, 1_000.0)
    ex.trade(m, buyer=longs, seller=shorts, size=5.0, price=100.0)
    ex.deposit(ex.insurance_account_for(m), 5.0)  # fund of 5, but the market's cap is 3
    ex.deposit(ex.fee_account, 2.0)  # the fee pool
    start = ex.journal.next_seq

    ex.set_mark(m, 80.0, ts_ns=1 * S)

    assert ex.position(user, m).size == 0.0
    step = ex.last_step
    # Insurance fund 3 (its cap), fee pool 2, the rest 5.8 over 10 base of open interest.
    assert step.insurance_paid == pytest.approx(5.0)
    assert step.socialized_loss == pytest.approx(5.8)
    assert step.bad_debt == 0.0
    charges = {
        t.source: t.amount
        for t in ex.journal.events(Transfer)
        if t.seq >= start and t.reason == TransferReason.SOCIALIZED_LOSS
    }
    assert charges == {longs: pytest.approx(2.9), shorts: pytest.approx(2.9)}
    assert ex.cash(ex.insurance_account_for(m)) == pytest.approx(2.0)
    assert ex.cash(ex.fee_account) == pytest.approx(0.0, abs=1e-12)
    assert ex.cash(user) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("mark", "liquidated"), [(23.6825, 1), (23.6843, 0)])
def test_docs_sol_perp_example_liquidates_just_past_23_684(mark: float, liquidated: int) -> None:
    # 500 USDC, long 200 SOL-PERP at $25 (10x), maintenance 5%: equity 500 + 200 (P - 25)
    # equals 0.05 x 200 P at P = 4,500 / 190 = 23.68421; the docs' $23.6825 is just past it.
    ex = Exchange(check_invariants=True)
    m = _drift_market(ex)
    a = _user(ex, m, size=200.0, entry=25.0, collateral=500.0, mark=25.0, mode=MarginMode.CROSS)

    ex.set_mark(m, mark, ts_ns=1 * S)

    assert ex.last_step.liquidations == liquidated
    assert (ex.position(a, m).size < 200.0) is bool(liquidated)


def test_formulas_example_drift_close_size_with_both_fees() -> None:
    # docs/formulas.md 4.4 (c): the drift preset's market as shipped (MMR 3%, buffer 2%, IF fee
    # 1% on the oracle value shrinking with the shortage, liquidator fee 1%; protocol-v2
    # @ 0ae3e3b1, liquidate_perp, calculate_perp_if_fee), no trading fees. Isolated long 2 BTC
    # at 50,000 with 5,000, mark 48,750: equity 2,500, requirement 2,925 + 97,500 x 2% = 4,875,
    # shortage 2,375; IF fee min(1%, 0.95 x (5% - 1% - 2,375 / 97,500)) = 1%;
    # q = 2,375 / (48,750 x (5% - 1% - 1%)) = 1.62393 -> 1.6240 in steps of 0.0001.
    from deleverage.venues import preset

    base = preset("drift")
    spec = MarketSpec.from_mapping(
        base.model_dump() | {"maker_fee_rate": 0.0, "taker_fee_rate": 0.0}
    )
    ex = Exchange(check_invariants=True)
    m = ex.list_market(spec)
    ex.set_mark(m, 50_000.0)
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 5_000.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=2.0, price=50_000.0)

    ex.set_mark(m, 48_750.0, ts_ns=1 * S)

    assert ex.position(a, m).size == pytest.approx(2.0 - 1.624)
    # Sold at 48,750 x 0.99 = 48,262.5; IF fee 1% x 1.624 x 48,750 = 791.70 on the oracle
    # value; equity 2,500 - 1.624 x 487.5 - 791.70 = 916.60 >= 5% x 0.376 x 48,750 = 916.50.
    assert ex.last_step.penalties == pytest.approx(791.70)
    assert _equity(ex, a) == pytest.approx(916.60)
