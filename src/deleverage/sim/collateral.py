"""Multi-asset collateral in a simulation: the scenario's ``[[collateral]]`` coins on the engine.

At the start, a share of each coin's market's cross accounts move part of their quote margin
into the coin: the coin is posted (``CollateralMoved``, its collateral value credited) and the
same quote value withdrawn, so every account starts with the margin its population row gave it,
now exposed to the coin. Each step, before the market is marked, the coin's index is set to
``ratio`` x the market's index (``CollateralPriced``: every holding revalued), so a fall of the
coin cuts margin as it moves the positions; after the market's risk step the venue converts the
coins of accounts whose quote balance went short (``settle_collateral``; the sales inside a
bankruptcy happen in the risk step itself, before the fund pays). Sales walk the coin's own
book; with ``moves_index`` its impact moves the market's index from the next mark
(docs/formulas.md §2.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine import collateral as coll
from deleverage.liquidity import ConstantDepthBook
from deleverage.rules.collateral import quantity_with_value
from deleverage.spec import MarginMode

if TYPE_CHECKING:
    from deleverage.sim.runner import Simulation

IntArray = npt.NDArray[np.int64]

#: Columns of :meth:`CollateralCoins.sales_frame`.
SALE_COLUMNS = (
    "ts_ns",  # time of the sale, ns
    "coin",  # collateral symbol
    "quantity",  # coins sold
    "price",  # average price in the coin's book, quote per coin
    "notional",  # quote received
    "impact",  # the coin book's impact after the sale (relative move of its mid)
)


class CollateralCoins:
    """The scenario's collateral coins on a simulation's engine (see the module docstring)."""

    def __init__(self, sim: Simulation, rng: np.random.Generator) -> None:
        self.sim = sim
        scenario = sim.scenario
        ex = sim.ex
        self.coins = scenario.collateral
        self.market_of = [[s.symbol for s in sim.specs].index(coin.market) for coin in self.coins]
        self.holders: list[IntArray] = []
        if not self.coins:
            return
        coll.set_collateral_policy(ex, scenario.collateral_policy)
        ts = sim.start_ns
        for k, coin in enumerate(self.coins):
            m = self.market_of[k]
            coll.list_collateral(ex, coin.asset(), ts_ns=ts)
            price = coin.ratio * float(sim.paths[0, m])
            coll.set_collateral_price(ex, k, price, ts_ns=ts)
            if coin.book is not None:
                coll.set_collateral_liquidity(
                    ex, k,
                    ConstantDepthBook(
                        depth_per_pct=coin.book.depth_per_pct, half_life_s=coin.book.half_life_s,
                        max_move=coin.book.max_move, ts_ns=ts,
                    ),
                )  # fmt: skip
            self.holders.append(self._post(k, m, price, rng))

    def _post(self, k: int, m: int, price: float, rng: np.random.Generator) -> IntArray:
        """Move ``margin_fraction`` of the quote margin of a ``share`` of market ``m``'s cross
        accounts into coin ``k``; return the accounts."""
        sim = self.sim
        ex = sim.ex
        coin = self.coins[k]
        ids = sim.accounts[m]
        if len(ids) == 0:
            return np.zeros(0, dtype=np.int64)
        cross = ex.columns(m).mode[ids] == MarginMode.CROSS
        chosen = ids[cross & (rng.random(len(ids)) < coin.share)]
        asset = coin.asset()
        ts = sim.start_ns
        posted = []
        for a in chosen.tolist():
            quote = coll.quote_balance(ex, a)
            target = coin.margin_fraction * quote
            if target <= 0.0:
                continue
            coins = quantity_with_value(asset, price, target)
            coll.deposit_collateral(ex, a, k, coins, ts_ns=ts)
            credit = ex.cash(a) - quote
            ex.withdraw(a, min(credit, coll.quote_balance(ex, a)), ts_ns=ts)
            posted.append(a)
        return np.asarray(posted, dtype=np.int64)

    # ---------------------------------------------------------------- each step
    def before_mark(self, m: int, index: float, ts_ns: int) -> None:
        """Reprice the coins that follow market ``m``'s index."""
        for k, coin in enumerate(self.coins):
            if self.market_of[k] == m:
                coll.set_collateral_price(self.sim.ex, k, coin.ratio * index, ts_ns=ts_ns)

    def after_step(self, ts_ns: int) -> int:
        """The venue converts the coins of accounts whose quote balance is short."""
        if not self.coins:
            return 0
        return coll.settle_collateral(self.sim.ex, ts_ns=ts_ns)

    def index_factor(self, m: int, ts_ns: int) -> float:
        """How the coins' sales move market ``m``'s index (1: not at all)."""
        factor = 1.0
        if not self.coins:  # no coins: no ledger to look up (every marked step asks)
            return factor
        ledger = coll.ledger_of(self.sim.ex)
        for k, coin in enumerate(self.coins):
            book = ledger.books.get(k)
            spec = coin.book
            if (
                self.market_of[k] == m
                and book is not None
                and spec is not None
                and spec.moves_index
            ):
                factor *= 1.0 + float(book.price_impact(ts_ns))
        return factor

    # ---------------------------------------------------------------- results
    def sales_frame(self) -> pd.DataFrame:
        """Every collateral sale of the run (:data:`SALE_COLUMNS`)."""
        if not self.coins:
            return pd.DataFrame(columns=list(SALE_COLUMNS))
        rows = [
            dict(
                zip(
                    SALE_COLUMNS,
                    (ts, self.coins[k].symbol, q, price, q * price, impact),
                    strict=True,
                )
            )
            for ts, k, q, price, impact in coll.ledger_of(self.sim.ex).sales
        ]
        return pd.DataFrame(rows, columns=list(SALE_COLUMNS))

    def summary(self) -> dict[str, float]:
        """Run totals (the summary's ``collateral_*`` keys)."""
        frame = self.sales_frame()
        holders = sum(len(h) for h in self.holders)
        return {
            "collateral_accounts": float(holders),
            "collateral_sales": float(len(frame)),
            "collateral_sold_notional": float(frame["notional"].sum()) if len(frame) else 0.0,
            "collateral_max_impact": float(frame["impact"].abs().max()) if len(frame) else 0.0,
        }
