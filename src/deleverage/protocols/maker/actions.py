"""What the Maker venue records: action codes, the journal rows and the per-sale log.

Every liquidation action is one journal row (:class:`deleverage.engine.events.Liquidation`, a
notice: replay of the perp engine skips it) whose ``policy`` column holds a
:class:`MakerAction` code and whose ``text`` is a short JSON object (keeper, DAI amounts). The
journal's ``account`` is the vault index, ``size`` the signed collateral moved (a sale < 0),
``price`` the DAI per unit, ``shortfall`` a deficit and ``penalty`` the chop's part of a tab.

:class:`SaleLog` keeps one row per sale of collateral (a take, or a Flipper's deal) with the
market price at that moment, so reports and physics tests can see near-zero sales without
reading the journal.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.events import BadDebt, Journal, Liquidation

__all__ = ["SALE_COLUMNS", "MakerAction", "SaleLog", "StepContext", "record", "record_bad_debt"]


class StepContext(NamedTuple):
    """What the auctions of one venue step see: time, block, prices and the keepers' gas.

    ``feed_price`` is the OSM's published price (DAI per unit), ``market_price`` the price
    keepers sell collateral at (the index), ``gas_cost`` each keeper's cost of one action now
    (DAI), ``depth`` the market's depth for their expected slippage.
    """

    ts_ns: int
    block: int
    feed_price: float
    market_price: float
    gas_price_gwei: float
    gas_cost: npt.NDArray[np.float64]
    depth: float


class MakerAction(IntEnum):
    """Codes of Maker actions in the journal's ``policy`` column."""

    BARK = 10  # Dog.bark + Clipper.kick
    TAKE = 11  # Clipper.take
    REDO = 12  # Clipper.redo
    BITE = 13  # Cat.bite + Flipper.kick
    TEND = 14  # Flipper.tend
    DENT = 15  # Flipper.dent
    DEAL = 16  # Flipper.deal
    TICK = 17  # Flipper.tick (restart without bids)
    FLOP_KICK = 18  # Vow.flop
    FLOP_TICK = 19
    FLOP_DEAL = 20


def record(
    journal: Journal,
    action: MakerAction,
    *,
    ts_ns: int,
    vault: int = -1,
    size: float = 0.0,
    price: float = 0.0,
    shortfall: float = 0.0,
    penalty: float = 0.0,
    **details: float | int | str,
) -> None:
    """Append one Maker action to ``journal`` (a :class:`Liquidation` notice)."""
    journal.append_unstamped(
        Liquidation(
            ts_ns=ts_ns,
            account=vault,
            market=0,
            size=size,
            price=price,
            shortfall=shortfall,
            penalty=penalty,
            policy=int(action),
            text=json.dumps({"action": action.name.lower(), **details}, sort_keys=True),
        )
    )


def record_bad_debt(journal: Journal, *, ts_ns: int, amount: float) -> None:
    """Append the declared bad debt of the Vow (a :class:`BadDebt` notice, account -1)."""
    journal.append_unstamped(
        BadDebt(ts_ns=ts_ns, account=-1, market=0, amount=amount, text="maker vow")
    )


#: Columns of :meth:`SaleLog.frame`: time, auction id, vault, keeper, collateral sold (units),
#: DAI paid, price paid (DAI per unit), market price then, and their ratio.
SALE_COLUMNS = (
    "ts_ns", "auction", "vault", "keeper", "collateral", "dai", "price", "market_price",
    "price_ratio",
)  # fmt: skip


class SaleLog:
    """One row per sale of auctioned collateral (columns :data:`SALE_COLUMNS`)."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, int, int, int, float, float, float, float]] = []

    def add(
        self,
        *,
        ts_ns: int,
        auction: int,
        vault: int,
        keeper: int,
        collateral: float,
        dai: float,
        market_price: float,
    ) -> None:
        """Record a sale of ``collateral`` units for ``dai``."""
        self._rows.append((ts_ns, auction, vault, keeper, collateral, dai, market_price, 0.0))

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pd.DataFrame:
        """The sales as a DataFrame (:data:`SALE_COLUMNS`)."""
        if not self._rows:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in SALE_COLUMNS})
        raw = np.array([r[:7] for r in self._rows], dtype=np.float64)
        collateral, dai, market = raw[:, 4], raw[:, 5], raw[:, 6]
        price = np.divide(dai, collateral, out=np.zeros_like(dai), where=collateral > 0)
        return pd.DataFrame(
            {
                "ts_ns": raw[:, 0].astype(np.int64),
                "auction": raw[:, 1].astype(np.int64),
                "vault": raw[:, 2].astype(np.int64),
                "keeper": raw[:, 3].astype(np.int64),
                "collateral": collateral,
                "dai": dai,
                "price": price,
                "market_price": market,
                "price_ratio": price / market,
            }
        )
