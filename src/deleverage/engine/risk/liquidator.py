"""Liquidator execution in the risk step: liquidation at a fillable price between the oracle
and the bankruptcy price, the insurance fund delta per fill, and deleveraging that refuses a
counterparty rather than moves the price. The rules are dYdX v4's (the venue that defines
them); any market whose spec names them gets them.

Functions over a risk stage (:class:`~deleverage.engine.risk.shortfall.ShortfallStage` and above),
called by it for markets whose ``liquidation.execution`` is ``"liquidator"`` or whose
``adl.counterparty`` is ``"refuse"``, and by the exchange's primitives
(:meth:`Exchange.liquidate`, :meth:`Exchange.deleverage`, :meth:`Exchange.final_settlement`).
Every effect is an event (fills, transfers, the liquidation and ADL notices), so replay
reproduces it. Rules and sources: docs/formulas.md, "dYdX v4 liquidation"; the integer
counterparts are in :mod:`deleverage.rules.quantum`.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, NamedTuple

from deleverage.engine.events import (
    AdlRound,
    Fill,
    FillReason,
    Liquidation,
    Transfer,
    TransferReason,
)
from deleverage.engine.risk.support import _POLICY_CODES, StepReport, _maintenance
from deleverage.rules import liquidation as liq
from deleverage.rules import margin as mm

if TYPE_CHECKING:
    from deleverage.engine.risk.shortfall import ShortfallStage
    from deleverage.engine.risk.support import _Caps

#: Offsetting accounts visited per deleveraging (``MaxDeleveragingSubaccountsToIterate``,
#: protocol/x/clob/flags/flags.go, dydxprotocol/v4-chain@84d4664).
MAX_OFFSETTING_ACCOUNTS = 500
_EPS = 1e-9


class Margins(NamedTuple):
    """Net collateral, initial and maintenance requirement backing one position (quote),
    and the position's own part of the two requirements."""

    nc: float
    imr: float
    mmr: float
    own_imr: float
    own_mmr: float


def margins(stage: ShortfallStage, a: int, m: int) -> Margins:
    """The figures dYdX's collateral check compares: the isolated position's own, or the
    account's cross totals."""
    ex = stage.ex
    state = ex.markets[m]
    cols = ex._positions[m]
    size = float(cols.size[a])
    notional = abs(size) * state.mark
    own_mmr = _maintenance(notional, state.tiers)
    own_imr = float(mm.initial_margin(notional, state.tiers, leverage=cols.leverage[a]))
    if stage._isolated(a, m):
        nc = float(cols.isolated_margin[a]) + size * (state.mark - float(cols.entry[a]))
        return Margins(nc, own_imr, own_mmr, own_imr, own_mmr)
    am = ex.account_margins(a)
    return Margins(am.cross_equity, am.cross_initial, am.cross_maintenance, own_imr, own_mmr)


def update_allowed(before: Margins, after_nc: float, after_imr: float, after_mmr: float) -> bool:
    """dYdX's collateral check of a match: at or above initial margin after, or not riskier.

    Not riskier: maintenance does not rise, and either both maintenance figures are zero and
    NC rises, or ``NC/MMR`` does not fall
    (``IsValidStateTransitionForUndercollateralizedSubaccount``,
    protocol/x/subaccounts/lib/updates.go). Float tolerance: a relative 1e-9.
    """
    scale = max(1.0, abs(before.nc), before.mmr)
    if after_nc >= after_imr - _EPS * scale:
        return True
    if after_mmr > before.mmr + _EPS * scale:
        return False
    if before.mmr <= _EPS * scale or after_mmr <= _EPS * scale:
        both_zero = before.mmr <= _EPS * scale and after_mmr <= _EPS * scale
        return both_zero and after_nc > before.nc
    return after_nc * before.mmr >= before.nc * after_mmr - _EPS * scale * scale


def _after_close(stage: ShortfallStage, a: int, m: int, qty: float, price: float) -> bool:
    """Whether account ``a`` may close ``qty`` of its position in ``m`` at ``price``."""
    ex = stage.ex
    state = ex.markets[m]
    size = float(ex._positions[m].size[a])
    side = 1 if size > 0 else -1
    before = margins(stage, a, m)
    rest = (abs(size) - qty) * state.mark
    lev = ex._positions[m].leverage[a]
    imr_rest = float(mm.initial_margin(rest, state.tiers, leverage=lev))
    mmr_rest = _maintenance(rest, state.tiers)
    return update_allowed(
        before,
        before.nc + side * qty * (price - state.mark),
        before.imr - before.own_imr + imr_rest,
        before.mmr - before.own_mmr + mmr_rest,
    )


def bankruptcy_price(stage: ShortfallStage, a: int, m: int) -> float:
    """The position's bankruptcy price: its share of the account's net collateral (by
    maintenance) used up at the fill, as dYdX's ``-DNNV - TNC x |DMMR| / TMMR``."""
    isolated = stage._isolated(a, m)
    pool, _ = stage._pool(a, m, isolated)
    equity = stage._position_equity(a, m, isolated, pool)
    state = stage.ex.markets[m]
    return liq.bankruptcy_price(float(stage.ex._positions[m].size[a]), state.mark, equity)


def fillable_price(stage: ShortfallStage, a: int, m: int) -> float:
    """dYdX's fillable price of account ``a``'s position in ``m`` (the spec's BA and SMMR)."""
    ex = stage.ex
    state = ex.markets[m]
    policy = state.spec.liquidation
    size = float(ex._positions[m].size[a])
    isolated = stage._isolated(a, m)
    pool, maint = stage._pool(a, m, isolated)
    return liq.fillable_price(
        side=1 if size > 0 else -1,
        oracle_price=state.mark,
        size=size,
        position_maintenance=_maintenance(abs(size) * state.mark, state.tiers),
        account_equity=pool,
        account_maintenance=maint,
        bankruptcy_adjustment=policy.bankruptcy_adjustment,
        spread_to_maintenance_ratio=policy.spread_to_maintenance_ratio,
    )


def close_to_liquidator(
    stage: ShortfallStage,
    a: int,
    m: int,
    qty: float,
    ts: int,
    report: StepReport,
    *,
    caps: _Caps | None = None,
    limit_price: float | None = None,
) -> float:
    """Sell ``qty`` of ``a``'s position in ``m`` to the liquidator at the fillable price.

    The fill may be beyond the bankruptcy price: the insurance fund pays the difference
    (reported as shortfall and insurance paid); otherwise the account pays the fee, capped
    at what it has above bankruptcy. A fill the fund cannot pay, or beyond the account's
    per-step insurance loss, is not made: an account with negative net collateral is then
    deleveraged at its bankruptcy price. ``limit_price``: the worst price accepted (a
    primitive's limit); the fill is at the fillable price, not made when that is worse.
    Returns the size filled (base units); the liquidator never takes a loss at the fill.
    """
    ex = stage.ex
    state = ex.markets[m]
    spec = state.spec
    cols = ex._positions[m]
    size = float(cols.size[a])
    if size == 0.0 or qty <= 0.0:
        return 0.0
    side = 1 if size > 0 else -1
    qty = min(qty, abs(size))
    isolated = stage._isolated(a, m)
    pool, _ = stage._pool(a, m, isolated)
    bankrupt = bankruptcy_price(stage, a, m)
    price = fillable_price(stage, a, m)
    if limit_price is not None and side * (price - limit_price) < 0.0:
        return 0.0
    delta = liq.insurance_fund_delta(
        side=side, qty=qty, price=price, bankruptcy=bankrupt, fee_rate=spec.liquidation_fee_rate
    )
    fund = ex.insurance_account_for(m)
    room = caps.insurance_room(a) if caps is not None else math.inf
    if delta < 0.0 and (float(ex._cash[fund]) + delta < -_EPS or -delta > room + _EPS):
        # dYdX: the order does not fill (LiquidationRequiresDeleveraging); an account with
        # negative net collateral is deleveraged instead, at its bankruptcy price.
        if pool < 0.0 and (caps is None or caps.take_deleveraging()):
            return deleverage_position(stage, a, m, abs(size), ts, report)
        return 0.0
    buyer, seller = (ex.liquidator_account, a) if side > 0 else (a, ex.liquidator_account)
    ex._emit(
        Fill(
            ts_ns=ts, market=m, buyer=buyer, seller=seller, size=qty, price=price,
            reason=FillReason.LIQUIDATOR_TAKEOVER,
        )
    )  # fmt: skip
    into = m if isolated and cols.size[a] != 0.0 else -1
    if delta > 0.0:
        ex._emit(
            Transfer(
                ts_ns=ts, source=a, destination=fund, amount=delta,
                reason=int(TransferReason.LIQUIDATION_FEE), market=into,
            )
        )  # fmt: skip
        report.penalties += delta
    elif delta < 0.0:
        ex._emit(
            Transfer(
                ts_ns=ts, source=fund, destination=a, amount=-delta,
                reason=int(TransferReason.INSURANCE_COVER), market=into,
            )
        )  # fmt: skip
        report.shortfall += -delta
        report.insurance_paid += -delta
        if caps is not None:
            caps.use_insurance(a, -delta)
    report.liquidations += 1
    report.liquidated_notional += qty * price
    ex._emit(
        Liquidation(
            ts_ns=ts, account=a, market=m, size=-side * qty, price=price,
            shortfall=max(0.0, -delta), penalty=max(0.0, delta), bankruptcy_price=bankrupt,
            policy=_POLICY_CODES[spec.liquidation.kind],
        )
    )  # fmt: skip
    return qty


def deleverage_position(
    stage: ShortfallStage,
    a: int,
    m: int,
    qty: float,
    ts: int,
    report: StepReport,
    *,
    counterparties: list[int] | None = None,
    at_oracle: bool = False,
) -> float:
    """Close up to ``qty`` of ``a``'s position in ``m`` against opposite positions.

    Each fill is ``min(remaining, |counterparty position|)`` at ``a``'s bankruptcy price
    recomputed after the earlier fills (at the mark with ``at_oracle``: final settlement of
    a solvent account); a counterparty whom the match would leave below initial margin and
    riskier than before is skipped, the price never moves (``OffsetSubaccountPerpetualPosition``,
    ``ProcessDeleveraging``, protocol/x/clob/keeper/deleveraging.go). ``counterparties``:
    the accounts to try, in order (default: the market's ADL queue from its start, at most
    :data:`MAX_OFFSETTING_ACCOUNTS`). Returns the size closed; the rest stays open.
    """
    ex = stage.ex
    state = ex.markets[m]
    cols = ex._positions[m]
    size = float(cols.size[a])
    if size == 0.0:
        return 0.0
    side = 1 if size > 0 else -1
    if counterparties is None:
        queue = stage._queue(m, -side)
        queue.ensure(len(queue.candidates))
        counterparties = [int(b) for b in queue.accounts[:MAX_OFFSETTING_ACCOUNTS]]
    remaining = min(qty, abs(size))
    closed = 0.0
    for b in counterparties:
        if remaining <= _EPS * max(1.0, abs(size)):
            break
        other = float(cols.size[b])
        if b == a or other == 0.0 or (other > 0) == (side > 0):
            continue
        q = min(remaining, abs(other))
        price = state.mark if at_oracle else bankruptcy_price(stage, a, m)
        if not (_after_close(stage, b, m, q, price) and _after_close(stage, a, m, q, price)):
            continue
        buyer, seller = (b, a) if side > 0 else (a, b)
        ex._emit(
            Fill(
                ts_ns=ts, market=m, buyer=buyer, seller=seller, size=q, price=price,
                reason=FillReason.ADL, note="final_settlement" if at_oracle else "deleveraging",
            )
        )  # fmt: skip
        ex._emit(
            AdlRound(
                ts_ns=ts, account=a, market=m, size=-side * q, price=price,
                amount=max(0.0, side * q * (price - state.mark)),
                text=json.dumps({"policy": "refuse", "counterparty": b}),
            )
        )  # fmt: skip
        report.adl_rounds += 1
        report.adl_notional += q * state.mark
        remaining -= q
        closed += q
    return closed


def final_settlement(stage: ShortfallStage, m: int, ts: int, report: StepReport) -> float:
    """Close every trader position of a delisted market ``m`` against opposite positions.

    A solvent account (net collateral >= 0) closes at the oracle price, a bankrupt one at its
    bankruptcy price (``CanDeleverageSubaccount``, protocol/x/clob/keeper/deleveraging.go);
    refused matches are skipped and what cannot be closed stays open. Returns the size closed.
    """
    ex = stage.ex
    cols = ex._positions[m]
    n = ex.n_accounts
    closed = 0.0
    for a in range(n):
        if ex._kind[a] != 0 or cols.size[a] == 0.0:
            continue
        pool, _ = stage._pool(a, m, stage._isolated(a, m))
        closed += deleverage_position(
            stage, a, m, abs(float(cols.size[a])), ts, report, at_oracle=pool >= 0.0
        )
    return closed
