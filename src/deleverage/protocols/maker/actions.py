"""What the Maker venue records: action codes, the journal rows and the per-sale log.

Every liquidation action is one journal row (a :class:`deleverage.engine.events.Liquidation`
notice, written in one batch per step by :class:`ActionLog`; replay of the perp engine skips
it) whose ``policy`` column holds a :class:`MakerAction` code and whose ``text`` is a short
JSON object (keeper, DAI amounts). The
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

from deleverage.engine.events import BadDebt, EventKind, Journal

__all__ = [
    "SALE_COLUMNS",
    "ActionLog",
    "MakerAction",
    "SaleLog",
    "StepContext",
    "record_bad_debt",
    "sale_slippage",
]


class StepContext(NamedTuple):
    """What the auctions of one venue step see: time, block, prices and the keepers' gas.

    ``feed_price`` is the OSM's published price (DAI per unit), ``market_price`` the price
    keepers sell collateral at (the index), ``gas_cost`` each keeper's cost of one action now
    (DAI), ``depth`` the market's depth for their expected slippage, ``native_price`` the
    chain's native token price (DAI) gas is paid in.
    """

    ts_ns: int
    block: int
    feed_price: float
    market_price: float
    gas_price_gwei: float
    gas_cost: npt.NDArray[np.float64]
    depth: float
    native_price: float


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


class ActionLog:
    """The actions of one step, buffered and written to the journal in one columnar batch.

    :meth:`add` keeps plain Python values (:meth:`add_rows` a batch of them: the Clipper's
    compiled run); :meth:`flush` appends them as one
    :meth:`~deleverage.engine.events.Journal.append_columns` batch of
    :class:`~deleverage.engine.events.Liquidation` notices (the JSON texts are formatted only if
    the journal is read).
    """

    def __init__(self) -> None:
        self._rows: list[tuple[int, float, float, float, float, int]] = []
        self._details: list[dict[str, float | int | str]] = []

    def add(
        self,
        action: MakerAction,
        *,
        vault: int = -1,
        size: float = 0.0,
        price: float = 0.0,
        shortfall: float = 0.0,
        penalty: float = 0.0,
        **details: float | int | str,
    ) -> None:
        """Buffer one action (columns as in the module docstring, ``details`` in the text)."""
        self._rows.append((vault, size, price, shortfall, penalty, int(action)))
        self._details.append({"action": action.name.lower(), **details})

    def add_rows(
        self,
        rows: list[tuple[int, float, float, float, float, int]],
        details: list[dict[str, float | int | str]],
    ) -> None:
        """Buffer a batch of actions after those buffered so far, as :meth:`add` of each in
        turn would: ``(vault, size, price, shortfall, penalty, code)`` rows and their details
        (with the ``action`` name, lower case)."""
        self._rows.extend(rows)
        self._details.extend(details)

    def flush(self, journal: Journal, ts_ns: int) -> None:
        """Append the buffered actions to ``journal`` at ``ts_ns`` and empty the buffer."""
        if not self._rows:
            return
        rows = np.array(self._rows, dtype=np.float64)
        details = self._details

        def texts() -> list[str]:
            return [json.dumps(d, sort_keys=True) for d in details]

        journal.append_columns(
            EventKind.LIQUIDATION,
            ts_ns,
            account=rows[:, 0].astype(np.int64),
            market=np.zeros(len(rows), dtype=np.int32),
            size=rows[:, 1],
            price=rows[:, 2],
            amount=rows[:, 3],
            fee=rows[:, 4],
            code=rows[:, 5].astype(np.int32),
            text=texts,
        )
        self._rows, self._details = [], []


def record_bad_debt(journal: Journal, *, ts_ns: int, amount: float) -> None:
    """Append the declared bad debt of the Vow (a :class:`BadDebt` notice, account -1)."""
    journal.append_unstamped(
        BadDebt(ts_ns=ts_ns, account=-1, market=0, amount=amount, text="maker vow")
    )


#: A sale below this share of the market price is "near zero" (summaries, reports, tests).
NEAR_ZERO_RATIO = 0.05

#: Columns of :meth:`SaleLog.frame`: time, auction id, vault, keeper, collateral sold (units),
#: DAI paid, price paid (DAI per unit), market price then, and their ratio.
SALE_COLUMNS = (
    "ts_ns", "auction", "vault", "keeper", "collateral", "dai", "price", "market_price",
    "price_ratio",
)  # fmt: skip


class SaleLog:
    """One row per sale of auctioned collateral (columns :data:`SALE_COLUMNS`)."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, int, int, int, float, float, float]] = []

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
        self._rows.append((ts_ns, auction, vault, keeper, collateral, dai, market_price))

    def add_rows(self, rows: list[tuple[int, int, int, int, float, float, float]]) -> None:
        """Record a batch of sales after those recorded so far, as :meth:`add` of each in turn
        would: ``(ts_ns, auction, vault, keeper, collateral, dai, market_price)`` rows."""
        self._rows.extend(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pd.DataFrame:
        """The sales as a DataFrame (:data:`SALE_COLUMNS`)."""
        if not self._rows:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in SALE_COLUMNS})
        raw = np.array(self._rows, dtype=np.float64)
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


def sale_slippage(size: float, price: float, depth: float) -> float:
    """Expected cost (quote) of selling ``size`` units on a constant-depth book, for one scalar:
    ``size^2 x price / (2 depth)``, the closed form of
    :func:`deleverage.protocols.keepers.sale_slippage_quote` (docs/formulas.md §D3) without
    its array overhead (a test holds the two equal)."""
    return size * size * price / (2.0 * depth)
