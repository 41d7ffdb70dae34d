"""Risk primitives of the exchange: liquidate a given amount, deleverage a given pair, settle
a delisted market.

A layer between :class:`~deleverage.engine.scans.MarginScans` and
:class:`~deleverage.engine.exchange.Exchange`: users and the ADL laboratory call
these directly instead of waiting for a mark to trigger the risk step. They use dYdX v4's
rules (:mod:`deleverage.engine.risk.liquidator`): the fillable price and insurance fund delta for a
liquidation, the bankruptcy price (or the oracle, in final settlement) and the collateral
check that refuses a match for deleveraging. Each emits the same events as the risk step, so
:meth:`Exchange.replay` reproduces it; each returns the size it closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from deleverage.engine.risk import liquidator
from deleverage.engine.risk.support import StepReport
from deleverage.engine.scans import MarginScans
from deleverage.errors import ValidationError
from deleverage.spec import check_finite_positive

if TYPE_CHECKING:
    from deleverage.engine.events import Event
    from deleverage.engine.ledger import MarketRef


class RiskOperations(MarginScans):
    """The exchange's risk primitives (see module docstring)."""

    def _emit_all(self, events: Iterable[Event]) -> list[Event]:
        """Append a public operation's events to the journal and apply each in turn; then,
        in ``check_invariants`` mode, check that money is conserved."""
        done = []
        for event in events:
            done.append(self.journal.append(event))
            self._apply(event)
        if self.check_invariants:
            self.assert_conserved()
        return done

    def _open_size(self, account: int, m: int, field: str = "account") -> float:
        a = self._check_account(account, field)
        size = float(self._positions[m].size[a])
        if size == 0.0:
            raise ValidationError(field, account, f"must hold a position in market {m}")
        return size

    def _check_size(self, size: float, held: float) -> float:
        value = check_finite_positive("size", size)
        if value > abs(held) * (1 + 1e-12):
            raise ValidationError("size", size, f"must not exceed the position's {abs(held):g}")
        return min(value, abs(held))

    def liquidate(
        self,
        account: int,
        market: MarketRef,
        size: float,
        *,
        limit_price: float | None = None,
        ts_ns: int | None = None,
    ) -> float:
        """Liquidate ``size`` (base units) of ``account``'s position to the liquidator.

        The fill is at the fillable price (dYdX v4: BA, SMMR and the account's TNC/TMMR); the
        insurance fund pays a fill beyond bankruptcy, otherwise the account pays the capped
        fee. Not made (returns 0) when the account is not below maintenance, when the
        fillable price is worse than ``limit_price`` (a long is sold at no less, a short
        bought back at no more), or when the fund cannot pay; an account with negative net
        collateral is then deleveraged at its bankruptcy price. Sizes are in the market's units
        (contracts for an inverse market) and so is the size returned.
        """
        m = self.market_id(market)
        units = self.markets[m].units
        held = self._open_size(account, m)
        qty = units.engine_amount(self._check_size(size, units.venue_size(held)))
        qty = min(qty, abs(held))
        if limit_price is not None:
            limit_price = units.engine_price(check_finite_positive("limit_price", limit_price))
        a = int(account)
        stage = self.risk
        pool, maint = stage._pool(a, m, stage._isolated(a, m))
        if not (maint > 0.0 and pool < maint):
            return 0.0
        ts = self._ts(ts_ns)
        stage._queues.clear()
        report = StepReport(market=m, ts_ns=ts)
        done = liquidator.close_to_liquidator(stage, a, m, qty, ts, report, limit_price=limit_price)
        self.last_step = report
        return units.venue_amount(done)

    def deleverage(
        self,
        market: MarketRef,
        account: int,
        offsetting: int,
        size: float,
        *,
        at_oracle: bool = False,
        ts_ns: int | None = None,
    ) -> float:
        """Close ``size`` of ``account``'s position against ``offsetting``'s opposite one.

        At ``account``'s bankruptcy price (at the mark with ``at_oracle``), both positions
        reduced by ``size``; refused (returns 0) when the match would leave either side below
        initial margin and riskier than before, as dYdX v4's ``ProcessDeleveraging``. Sizes
        are in the market's units (contracts for an inverse market).
        """
        m = self.market_id(market)
        units = self.markets[m].units
        held = self._open_size(account, m)
        other = self._open_size(offsetting, m, "offsetting")
        if (held > 0) == (other > 0):
            raise ValidationError("offsetting", offsetting, "must hold the opposite side")
        if int(account) == int(offsetting):
            raise ValidationError("offsetting", offsetting, "must differ from account")
        venue_qty = self._check_size(size, units.venue_size(held))
        other_venue = abs(units.venue_size(other))
        if venue_qty > other_venue * (1 + 1e-12):
            raise ValidationError("size", size, f"must not exceed the offsetting {other_venue:g}")
        qty = min(units.engine_amount(venue_qty), abs(held))
        ts = self._ts(ts_ns)
        report = StepReport(market=m, ts_ns=ts)
        done = liquidator.deleverage_position(
            self.risk, int(account), m, min(qty, abs(other)), ts, report,
            counterparties=[int(offsetting)], at_oracle=at_oracle,
        )  # fmt: skip
        self.last_step = report
        return units.venue_amount(done)

    def final_settlement(self, market: MarketRef, *, ts_ns: int | None = None) -> float:
        """Close a delisted market's positions against each other (dYdX v4 final settlement).

        Solvent accounts close at the mark (the oracle), bankrupt ones at their bankruptcy
        price; refused matches are skipped and what cannot be matched stays open. Returns the
        total size closed (base units, contracts for an inverse market, counted on the
        closing side).
        """
        m = self.market_id(market)
        if not self.markets[m].mark > 0.0:
            raise ValidationError("market", market, "must have a mark price")
        ts = self._ts(ts_ns)
        self.risk._queues.clear()
        report = StepReport(market=m, ts_ns=ts)
        done = liquidator.final_settlement(self.risk, m, ts, report)
        self.last_step = report
        return self.markets[m].units.venue_amount(done)
