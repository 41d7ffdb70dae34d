"""The engine's state types: account kinds, position columns, market state, and the read-only
views and summaries it hands out (conservation lines, an account's margins, a position).

The state itself is struct-of-arrays (DESIGN.md "One engine, arrays inside"): one array per
field, per market, indexed by account id; :class:`deleverage.engine.exchange.Exchange` owns it and
changes it only by applying events.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from deleverage.engine.contracts import LINEAR, ContractUnits
from deleverage.spec import MarginMode, MarketSpec, TierArrays
from deleverage.tolerance import CONSERVATION_RTOL

if TYPE_CHECKING:
    from deleverage.engine.scans import MarginScans

FloatArray = npt.NDArray[np.float64]


class AccountKind(IntEnum):
    """Role of an account. Only traders are margin-checked and liquidated."""

    TRADER = 0
    LIQUIDITY = 1  # the order book's makers: the other side of market fills
    INSURANCE = 2  # an insurance fund
    FEE = 3  # the venue's fee collector
    BACKSTOP = 4  # a backstop / liquidator vault that takes over positions
    LIQUIDATOR = 5  # a third-party liquidator (margin-checked like a trader if funded)
    BAD_DEBT = 6  # the venue's uncovered losses of isolated positions (opened when first needed)


SYSTEM_KINDS = frozenset(
    {
        AccountKind.LIQUIDITY,
        AccountKind.INSURANCE,
        AccountKind.FEE,
        AccountKind.BACKSTOP,
        AccountKind.LIQUIDATOR,
        AccountKind.BAD_DEBT,
    }
)


@dataclass
class MarketState:
    """A listed market: its spec, tier arrays and current mark price (0 until first set).

    ``tiers`` are the rates in force: the spec's table, with the initial rates scaled by open
    interest when the spec has ``open_interest_scaling`` (dYdX v4). ``mark`` is in the
    engine's units (the reciprocal price for an inverse market, :attr:`units`);
    :attr:`mark_price` is the venue's quote.
    """

    id: int
    spec: MarketSpec
    tiers: TierArrays
    mark: float = 0.0
    open_interest: float = 0.0  # long open interest in engine units (all accounts)
    units: ContractUnits = LINEAR  # venue units <-> engine units (engine/contracts.py)

    @property
    def mark_price(self) -> float:
        """The mark as the venue quotes it (quote per base; 0 until first set)."""
        return self.units.venue_price(self.mark) if self.mark > 0 else 0.0


class PositionColumns:
    """Columns of every account's position in one market, indexed by account id."""

    __slots__ = ("entry", "isolated_margin", "leverage", "mode", "realized_pnl", "size")

    def __init__(self, capacity: int) -> None:
        self.size = np.zeros(capacity)  # signed base units, long > 0
        self.entry = np.zeros(capacity)  # average entry price, quote per base; 0 when flat
        self.isolated_margin = np.zeros(capacity)  # quote held by an isolated position
        self.mode = np.zeros(capacity, dtype=np.int8)  # MarginMode
        self.leverage = np.zeros(capacity)  # leverage chosen by the trader; 0 = tier maximum
        self.realized_pnl = np.zeros(capacity)  # cumulative realized PnL, quote (reporting)

    def grow(self, capacity: int) -> None:
        for name in self.__slots__:
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def arrays(self, n: int) -> dict[str, npt.NDArray[np.generic]]:
        return {name: getattr(self, name)[:n] for name in self.__slots__}


@dataclass(frozen=True)
class Conservation:
    """The lines of the money-conservation equation, in quote."""

    cash: float  # sum of every account's cash
    isolated_margin: float  # sum of isolated margin
    unrealized_pnl: float  # sum of unrealized PnL at the marks (= -sum(size x entry))
    net_deposits: float  # deposits minus withdrawals
    negative_equity: float  # trader equity below zero: bad debt not yet covered (>= 0)
    # The venue's own accounts below zero, one line per kind (>= 0): a loss hiding in a
    # system account shows here (the book's is its market PnL against the traders; the
    # bad-debt account's is the declared bad debt of isolated positions).
    negative_equity_liquidity: float = 0.0
    negative_equity_insurance: float = 0.0
    negative_equity_fees: float = 0.0
    negative_equity_backstop: float = 0.0
    negative_equity_liquidator: float = 0.0
    negative_equity_bad_debt: float = 0.0

    @property
    def negative_equity_lines(self) -> dict[str, float]:
        """Negative equity per account kind (quote, >= 0): traders, then each system kind."""
        return {
            "traders": self.negative_equity,
            "liquidity": self.negative_equity_liquidity,
            "insurance": self.negative_equity_insurance,
            "fees": self.negative_equity_fees,
            "backstop": self.negative_equity_backstop,
            "liquidator": self.negative_equity_liquidator,
            "bad_debt": self.negative_equity_bad_debt,
        }

    @property
    def error(self) -> float:
        """``cash + isolated margin + unrealized PnL - net deposits`` (0 up to rounding)."""
        return self.cash + self.isolated_margin + self.unrealized_pnl - self.net_deposits

    @property
    def scale(self) -> float:
        return max(
            abs(self.cash) + abs(self.isolated_margin) + abs(self.net_deposits),
            abs(self.unrealized_pnl),
            1.0,
        )

    @property
    def holds(self) -> bool:
        """Whether the equation holds to :data:`CONSERVATION_RTOL` relative to its scale."""
        return abs(self.error) <= CONSERVATION_RTOL * self.scale


@dataclass(frozen=True)
class AccountMargins:
    """Margin figures of one account (quote), at current marks."""

    cash: float  # cross wallet balance
    cross_equity: float  # cash + unrealized PnL of cross positions
    cross_initial: float  # initial margin of cross positions
    cross_maintenance: float  # maintenance margin of cross positions
    isolated_margin: float  # margin held by isolated positions
    total_equity: float  # cash + isolated margin + all unrealized PnL

    @property
    def free_collateral(self) -> float:
        """Cross equity above cross initial margin."""
        return self.cross_equity - self.cross_initial

    @property
    def withdrawable(self) -> float:
        """Cash that can leave: ``min(cash, free collateral)``, never below 0."""
        return max(0.0, min(self.cash, self.free_collateral))


class PositionView:
    """Read-only view of one account's position in one market."""

    __slots__ = ("_account", "_ex", "_market")

    def __init__(self, exchange: MarginScans, account: int, market: int) -> None:
        self._ex = exchange
        self._account = account
        self._market = market

    @property
    def _units(self) -> ContractUnits:
        return self._ex.markets[self._market].units

    @property
    def size(self) -> float:
        """Signed size in base units, contracts for an inverse market (long > 0)."""
        return float(self._units.venue_size(self._ex._positions[self._market].size[self._account]))

    @property
    def entry_price(self) -> float:
        """Average entry price (quote per base; an inverse market's is the harmonic mean of its
        fill prices); 0 when flat."""
        entry = float(self._ex._positions[self._market].entry[self._account])
        return float(self._units.venue_price(entry)) if entry != 0.0 else 0.0

    @property
    def isolated_margin(self) -> float:
        """Margin held by the position if isolated (quote)."""
        return float(self._ex._positions[self._market].isolated_margin[self._account])

    @property
    def margin_mode(self) -> MarginMode:
        """Isolated or cross."""
        return MarginMode(int(self._ex._positions[self._market].mode[self._account]))

    @property
    def leverage(self) -> float:
        """Chosen leverage; 0 means the tier maximum."""
        return float(self._ex._positions[self._market].leverage[self._account])

    @property
    def realized_pnl(self) -> float:
        """Cumulative realized PnL (quote)."""
        return float(self._ex._positions[self._market].realized_pnl[self._account])

    @property
    def unrealized_pnl(self) -> float:
        """``size x (mark - entry)`` in quote; for an inverse market
        ``contracts x contract_value x (1/entry - 1/mark)`` in the coin."""
        cols = self._ex._positions[self._market]
        size, entry = float(cols.size[self._account]), float(cols.entry[self._account])
        return size * (self._ex.markets[self._market].mark - entry)

    def __repr__(self) -> str:
        symbol = self._ex.markets[self._market].spec.symbol
        return (
            f"Position(account={self._account}, market={symbol!r}, size={self.size}, "
            f"entry_price={self.entry_price}, mode={self.margin_mode.name.lower()})"
        )
