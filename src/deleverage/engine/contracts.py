"""Contract units: how a market's venue units map onto the engine's one (linear) arithmetic.

The engine values every position linearly: ``pnl = size x (mark - entry)``, notional
``|size| x mark``, margins and fees as fractions of notional, all in the account's cash
currency. A linear market is held as it is quoted (sizes in base units, prices in quote).

An **inverse** (coin-margined) market quotes ``contracts`` worth ``contract_value`` USD each at
a price ``P`` (USD per coin) and settles in the coin: a position's PnL from ``P0`` to ``P`` is
``contracts x cv x (1/P0 - 1/P)`` coin and its value ``|contracts| x cv / P`` coin
(docs/formulas.md 1.13). That is exactly a linear position of

    size = -contracts x cv      (USD, signed: an inverse long is short USD)
    on the price x = 1 / P      (coin per USD)

since ``size x (x - x0) = -contracts cv (1/P - 1/P0)`` and ``|size| x x = |contracts| cv / P``.
So the engine holds an inverse market in these units: every formula (margins on the coin
value at the mark, fees, liquidation, bankruptcy, ADL scores, funding, the insurance fund)
is then the venue's inverse formula, with no second code path. The translation happens only
where venue units cross the engine's boundary (public operations, views); the journal keeps
the engine's units, so replay is the identity. A linear market's translation is the identity
and returns its inputs untouched (results stay bit-identical).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from deleverage.spec import MarketSpec

FloatArray = npt.NDArray[np.float64]

__all__ = ["LINEAR", "ContractUnits"]


@dataclass(frozen=True, slots=True)
class ContractUnits:
    """The map between a market's venue units and the engine's (see the module docstring).

    ``inverse`` markets: engine size ``-contracts x contract_value`` (USD), engine price
    ``1 / price`` (coin per USD). Linear markets: the identity.

    Examples
    --------
    BitMEX Inverse Futures Guide: 100,000 contracts of 1 USD long from 10,000 to 10,500 gain
    0.47619 XBT, the engine's linear PnL on the reciprocal price:

    >>> units = ContractUnits(inverse=True, contract_value=1.0)
    >>> size = units.engine_size(100_000.0)
    >>> round(size * (units.engine_price(10_500.0) - units.engine_price(10_000.0)), 6)
    0.47619
    """

    inverse: bool = False
    contract_value: float = 1.0  # USD per contract (inverse); unused for linear markets

    @classmethod
    def of(cls, spec: MarketSpec) -> ContractUnits:
        """The units of a market spec."""
        if spec.contract_type == "inverse":
            assert spec.contract_value is not None  # the spec requires it
            return cls(inverse=True, contract_value=float(spec.contract_value))
        return LINEAR

    @overload
    def engine_size(self, contracts: float) -> float: ...
    @overload
    def engine_size(self, contracts: FloatArray) -> FloatArray: ...
    def engine_size(self, contracts: float | FloatArray) -> float | FloatArray:
        """Signed venue size (contracts, long > 0) to the engine's signed size."""
        return -contracts * self.contract_value if self.inverse else contracts

    @overload
    def venue_size(self, size: float) -> float: ...
    @overload
    def venue_size(self, size: FloatArray) -> FloatArray: ...
    def venue_size(self, size: float | FloatArray) -> float | FloatArray:
        """The engine's signed size to the venue's (contracts for inverse markets)."""
        if not self.inverse:
            return size
        out = -size / self.contract_value
        return out + 0.0  # no negative zero for a flat position

    def engine_amount(self, contracts: float) -> float:
        """An unsigned amount of contracts (a size to close) in the engine's units."""
        return contracts * self.contract_value if self.inverse else contracts

    def venue_amount(self, amount: float) -> float:
        """An unsigned engine amount (a size closed) in the venue's units."""
        return amount / self.contract_value if self.inverse else amount

    @overload
    def engine_price(self, price: float) -> float: ...
    @overload
    def engine_price(self, price: FloatArray) -> FloatArray: ...
    def engine_price(self, price: float | FloatArray) -> float | FloatArray:
        """Venue price (quote per base) to the engine's (its reciprocal for inverse)."""
        return 1.0 / price if self.inverse else price

    @overload
    def venue_price(self, price: float) -> float: ...
    @overload
    def venue_price(self, price: FloatArray) -> FloatArray: ...
    def venue_price(self, price: float | FloatArray) -> float | FloatArray:
        """The engine's price to the venue's; for inverse markets ``0 -> inf`` and ``inf -> 0``
        (an engine long that cannot be liquidated is a venue short that cannot be either)."""
        if not self.inverse:
            return price
        if isinstance(price, np.ndarray):
            with np.errstate(divide="ignore"):
                return np.asarray(1.0 / price, dtype=np.float64)
        return float("inf") if price == 0.0 else 1.0 / price

    def flips_side(self) -> bool:
        """Whether a venue buyer is the engine's seller (inverse markets)."""
        return self.inverse


#: The units of every linear market.
LINEAR = ContractUnits()
