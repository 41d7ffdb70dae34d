"""What the world may do with a trader's accounts on a venue: read margins, move collateral.

The :class:`~deleverage.venues.protocol.Venue` protocol is what every venue offers a world; a
venue whose traders can move collateral in and out (every venue in practice, but not every
model of one) also offers a :class:`CollateralAccess`. The world's trader channel
(:mod:`deleverage.world.traders`) and risk layers (a cross-venue risk oracle) use it to see a
trader's equity and maintenance on each venue and to move cash between them; a venue without
one takes part in prices only.

:class:`PerpCollateral` implements it over the perp engine (:class:`~deleverage.engine.exchange.
Exchange`): equity and maintenance of cross accounts from the engine's vectorized margin state,
withdrawals refused beyond the engine's own withdrawable amount.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from deleverage.engine.exchange import Exchange
from deleverage.spec import MarginMode

__all__ = ["CollateralAccess", "PerpCollateral"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@runtime_checkable
class CollateralAccess(Protocol):
    """A venue's accounts as a trader sees them (quote amounts)."""

    def margins(self, accounts: IntArray) -> tuple[FloatArray, FloatArray]:
        """Equity and maintenance requirement of each account (quote)."""
        ...

    def exposure(self, accounts: IntArray) -> FloatArray:
        """Gross open notional of each account at current prices (quote)."""
        ...

    def gross_size(self, accounts: IntArray) -> FloatArray:
        """Sum of the absolute sizes of each account's positions (base units): it falls only
        when positions are closed, whatever prices do."""
        ...

    def withdrawable(self, account: int) -> float:
        """What the account may withdraw now without breaching its initial margin (quote)."""
        ...

    def deposit(self, account: int, amount: float, *, ts_ns: int) -> None:
        """Add cash to the account."""
        ...

    def withdraw(self, account: int, amount: float, *, ts_ns: int) -> None:
        """Take cash out of the account (refused beyond :meth:`withdrawable`)."""
        ...


class PerpCollateral:
    """:class:`CollateralAccess` over one perp engine (cross-margin accounts).

    Examples
    --------
    >>> from deleverage import Exchange, MarketSpec
    >>> ex = Exchange()
    >>> _ = ex.list_market(MarketSpec.simple("BTC"))
    >>> a = ex.open_account()
    >>> access = PerpCollateral(ex)
    >>> access.deposit(a, 100.0, ts_ns=0)
    >>> access.withdrawable(a)
    100.0
    """

    def __init__(self, exchange: Exchange) -> None:
        self._ex = exchange

    def margins(self, accounts: IntArray) -> tuple[FloatArray, FloatArray]:
        """Total equity and cross maintenance, plus each isolated position's maintenance."""
        ex = self._ex
        state = ex.cached_margin_state()
        equity = np.asarray(state["total_equity"][accounts], dtype=np.float64)
        maintenance = np.asarray(state["cross_maintenance"][accounts], dtype=np.float64)
        for m in range(len(ex.markets)):
            cols = ex.columns(m)
            isolated = (cols.mode[accounts] == int(MarginMode.ISOLATED)) & (
                cols.size[accounts] != 0.0
            )
            if isolated.any():  # a full pass over the market only when one is isolated
                iso = ex.isolated_state(m)
                maintenance = maintenance + np.nan_to_num(iso["maintenance"][accounts])
        return equity, maintenance

    def exposure(self, accounts: IntArray) -> FloatArray:
        """``sum_m |size_m| mark_m`` over the engine's markets."""
        ex = self._ex
        out = np.zeros(len(accounts))
        for m, state in enumerate(ex.markets):
            out += np.abs(ex.columns(m).size[accounts]) * state.mark
        return out

    def gross_size(self, accounts: IntArray) -> FloatArray:
        """``sum_m |size_m|`` over the engine's markets."""
        ex = self._ex
        out = np.zeros(len(accounts))
        for m in range(len(ex.markets)):
            out += np.abs(ex.columns(m).size[accounts])
        return out

    def withdrawable(self, account: int) -> float:
        """The engine's own withdrawable amount (cash and free collateral above initial)."""
        return float(self._ex.account_margins(int(account)).withdrawable)

    def deposit(self, account: int, amount: float, *, ts_ns: int) -> None:
        """Deposit through the engine (an event in its journal)."""
        self._ex.deposit(int(account), amount, ts_ns=ts_ns)

    def withdraw(self, account: int, amount: float, *, ts_ns: int) -> None:
        """Withdraw through the engine (an event in its journal)."""
        self._ex.withdraw(int(account), amount, ts_ns=ts_ns)
