"""ADL through an ADL-laboratory policy (:mod:`deleverage.rules.deleveraging`).

Used by :meth:`~deleverage.engine.risk.shortfall.ShortfallStage._adl` when the market's
:attr:`deleverage.spec.AdlPolicy.deleveraging` names a policy. The engine asks the same
policy object the ``adl-study`` command runs: it builds the bankrupt side (size, bankruptcy
price, deficit = the position's equity shortfall at the mark) and the opposing traders as
:class:`~deleverage.rules.deleveraging.Counterparties`, then applies the answer:

- the fund pays first what a hybrid (``fund_drawdown_limit``) gives it;
- closed sizes become ADL fills at the policy's price (budget-driven: only part of the
  bankrupt position when that covers the deficit);
- cash haircuts become socialized-loss transfers from the winners to the bankrupt account.

The round's :class:`~deleverage.rules.deleveraging_metrics.RoundMetrics` go into the
``AdlRound`` event's text, the same numbers the study reports for the same round. Returns True
when the bankrupt position is closed; otherwise the caller closes the rest on the book (its
equity is then at least zero at the mark).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np

from deleverage.engine.events import AdlRound, Fill, FillReason, Transfer, TransferReason
from deleverage.rules import liquidation as liq
from deleverage.rules import margin as mm
from deleverage.rules.deleveraging import (
    BankruptSide,
    Counterparties,
    DeleveragingPolicy,
    FundFirst,
    bankrupt_side,
    counterparties,
    policy_named,
)
from deleverage.rules.deleveraging_metrics import round_metrics
from deleverage.spec import MarginMode

if TYPE_CHECKING:
    from deleverage.engine.risk.shortfall import ShortfallStage
    from deleverage.engine.risk.support import StepReport


def round_inputs(
    stage: ShortfallStage, a: int, m: int, isolated: bool
) -> tuple[BankruptSide, Counterparties] | None:
    """The bankrupt side of account ``a`` in market ``m`` and its opposing traders (None when
    the position has no deficit at the mark)."""
    ex = stage.ex
    state = ex.markets[m]
    cols = ex._positions[m]
    size = float(cols.size[a])
    mark = state.mark
    pool, _ = stage._pool(a, m, isolated)
    equity = stage._position_equity(a, m, isolated, pool)
    deficit = max(0.0, -equity)
    if deficit <= 0.0 or size == 0.0:
        return None
    bankrupt = bankrupt_side(size, liq.bankruptcy_price(size, mark, equity), deficit, mark)
    n = ex.n_accounts
    idx = np.flatnonzero((ex._kind[:n] == 0) & (np.sign(cols.size[:n]) == -np.sign(size)))
    idx = idx[idx != a]
    sizes, entry = cols.size[idx], cols.entry[idx]
    iso = cols.mode[idx] != MarginMode.CROSS
    eq = cols.isolated_margin[idx] + sizes * (mark - entry)
    maint = mm.maintenance_margin(np.abs(sizes) * mark, state.tiers)
    if not iso.all():
        cross = ex.cached_margin_state()
        eq = np.where(iso, eq, cross["cross_equity"][idx])
        maint = np.where(iso, maint, cross["cross_maintenance"][idx])
    ratio = np.where(eq > 0, maint / np.where(eq > 0, eq, 1.0), 1.0)
    cps = counterparties(
        idx.astype(np.int64), sizes, entry, mark, eq, margin_ratio=ratio,
        lot_size=state.spec.lot_size, cross=~iso,
    )  # fmt: skip
    return bankrupt, cps


def engine_policy(stage: ShortfallStage, m: int) -> DeleveragingPolicy:
    """The market's policy object; a hybrid when ``fund_drawdown_limit`` is set."""
    ex = stage.ex
    adl = ex.markets[m].spec.adl
    assert adl.deleveraging is not None
    policy = policy_named(adl.deleveraging, cap_fraction=adl.cap_fraction)
    if adl.fund_drawdown_limit is None:
        return policy
    fund = max(0.0, float(ex._cash[ex.insurance_account_for(m)]))
    return FundFirst(then=policy, fund=fund, drawdown_limit=adl.fund_drawdown_limit)


def adl_with_policy(
    stage: ShortfallStage, a: int, m: int, isolated: bool, ts: int, report: StepReport
) -> bool:
    """Cover account ``a``'s deficit in market ``m`` with the market's policy (module doc)."""
    ex = stage.ex
    inputs = round_inputs(stage, a, m, isolated)
    if inputs is None:
        return False
    bankrupt, cps = inputs
    policy = engine_policy(stage, m)
    result = policy.allocate(bankrupt, cps, stage.rng)
    if result.bankrupt_closed <= 0.0 and not (result.haircut > 0).any():
        return False
    metrics = round_metrics(bankrupt, cps, result)
    if result.fund_paid > 0.0:
        stage._fund_pays(a, m, result.fund_paid, ts, report, into_position=isolated)
    side = 1 if bankrupt.size > 0 else -1
    for k in np.flatnonzero(result.closed > 0).tolist():
        b = int(cps.account[k])
        buyer, seller = (b, a) if side > 0 else (a, b)
        ex._emit(
            Fill(
                ts_ns=ts, market=m, buyer=buyer, seller=seller, size=float(result.closed[k]),
                price=result.price, reason=FillReason.ADL, note=policy.name,
            )
        )  # fmt: skip
    for k in np.flatnonzero(result.haircut > 0).tolist():
        ex._emit(
            Transfer(
                ts_ns=ts, source=int(cps.account[k]), destination=a,
                amount=float(result.haircut[k]), reason=int(TransferReason.SOCIALIZED_LOSS),
                market=m,
            )
        )  # fmt: skip
    report.socialized_loss += float(result.haircut.sum())
    touched = int(np.count_nonzero((result.closed > 0) | (result.haircut > 0)))
    budget = metrics.deficit - metrics.fund_paid
    share = min(1.0, budget / metrics.haircut) if metrics.haircut > 0 else 0.0
    text = {"policy": policy.name, "counterparties": touched} | metrics._asdict()
    # The stress metrics' keys (analytics.stress.adl_overshoot), same definitions: profit
    # taken = haircut, shortfall = what winners had to cover, so excess_profit = overshoot;
    # the notional required scales the closed notional to the profit the budget needed.
    text |= {"profit_taken": metrics.haircut, "shortfall": budget,
             "excess_profit": metrics.overshoot,
             "notional_required": metrics.notional_closed * share}  # fmt: skip
    ex._emit(
        AdlRound(
            ts_ns=ts, account=a, market=m,
            size=-math.copysign(result.bankrupt_closed, bankrupt.size), price=result.price,
            amount=metrics.haircut, text=json.dumps(text),
        )
    )  # fmt: skip
    report.adl_rounds += 1
    report.adl_notional += metrics.notional_closed
    stage.carried_deficit.pop(a, None)
    closed = ex._positions[m].size[a] == 0.0
    if closed and not isolated:
        stage._settle_flat_cross(a, m, ts, report)
    elif closed:
        owed = -float(ex._cash[a]) - stage.declared_bad_debt.get(a, 0.0)
        if owed > 1e-9:  # float dust of the ADL price
            stage._cover(a, m, owed, ts, report)
    return bool(closed)
