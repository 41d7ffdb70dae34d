"""Liquidations 2.0: the Clipper's Dutch auctions, bought by competing keepers.

A sale starts at ``top = feed x buf`` and its price falls along the Abacus curve
(:mod:`deleverage.protocols.maker.math`). Each step, for each running sale:

1. if it needs a reset (older than ``tail`` or cheaper than ``cusp x top``) a keeper may
   ``redo`` it (new ``top`` from the current oracle price) when the redo incentive beats its gas
   (:meth:`deleverage.protocols.keepers.Keepers.act`); until then nobody can buy;
2. otherwise keepers, fastest first (the keepers' priority order), ``take`` as much as their
   capital pays for (``amt = (capital - gas) / price``, the dust rule of
   :func:`~deleverage.protocols.maker.math.take_amounts` applied) when selling it at the market
   price, less the expected slippage and the gas, beats their minimum profit. The DAI paid
   leaves their capital at once; the collateral is sold into the market at once (the venue's
   forced flow) and its proceeds return to their capital ``sale_delay_blocks`` later.

A sale ends when its lot is gone (any tab left is a deficit of the Vow) or its tab is paid
(the rest of the lot goes back to the vault's owner); the Vow then books its proceeds against
its ``due``. ``Dirt`` (DAI being raised) falls by each ``owe`` and by the tab left at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from deleverage.errors import ValidationError
from deleverage.protocols.keepers import Keepers
from deleverage.protocols.maker import math as mk
from deleverage.protocols.maker.actions import (
    ActionLog,
    MakerAction,
    SaleLog,
    StepContext,
    sale_slippage,
)
from deleverage.protocols.maker.clip_nb import CURVE_CODES, REDO, TAKE, run_sales_nb
from deleverage.protocols.maker.config import ClipperConfig
from deleverage.protocols.maker.quiet_nb import python_powers
from deleverage.protocols.maker.vow import Vow

__all__ = ["ABOVE_MARKET", "Clipper", "Sale"]

NS_PER_S = 1_000_000_000
#: The journal codes of a take and a redo (``MakerAction``), as plain ints for the rows.
_TAKE: Final = int(MakerAction.TAKE)
_REDO: Final = int(MakerAction.REDO)
#: A sale priced above the market by more than this factor has no taker (``_no_taker``).
ABOVE_MARKET: Final = 1.0 + 1e-9


@dataclass(eq=False)
class Sale:
    """One running Dutch auction (DAI and collateral units); equal only to itself (ids are
    unique), so removing an ended one from the running list compares identities."""

    id: int
    vault: int
    tab: float
    lot: float
    due: float
    top: float
    tic_ns: int
    seen_block: int
    raised: float = 0.0


class Clipper:
    """The Dutch auctions of one collateral type (see the module docstring)."""

    def __init__(self, config: ClipperConfig, *, dust: float, chop: float) -> None:
        self.config = config
        self.chost = mk.chost(dust, chop)
        self.sales: list[Sale] = []
        self.kicks = 0
        #: DAI still to raise over all running sales (the Dog's ``Dirt``).
        self.dirt = 0.0
        self.redos = 0
        #: Collateral given back to vault owners after their tab was paid (units).
        self.returned = 0.0
        #: Run the sales in one compiled pass (``False``: sale by sale in Python, the
        #: reference of the twin tests).
        self.fast = True
        #: The sales' ``top``, ``tic_ns``, ``tab``, ``lot``, ``raised`` and ``seen_block`` as
        #: arrays, the compiled run's working state (its changes are written back to the sales
        #: it touches); not built yet, or out of date after a run sale by sale, when stale.
        self._tops = np.empty(0)
        self._tics = np.empty(0, dtype=np.int64)
        self._tabs = np.empty(0)
        self._lots = np.empty(0)
        self._raised = np.empty(0)
        self._seen = np.empty(0, dtype=np.int64)
        #: Each sale's price as last computed and the time (ns) until which it holds and no
        #: reset is due (0: compute it), :func:`.clip_nb.run_sales_nb`'s.
        self._prices = np.empty(0)
        self._until = np.empty(0, dtype=np.int64)
        self._stale = True
        #: Sales kicked since the arrays were extended, and the list positions of the sales
        #: ended in this step's run: the arrays follow both once a step (§M10).
        self._new: list[Sale] = []
        #: The curve's factors ``cut^k`` by Python's ``**`` (the per-sale path's ``pow``).
        self.powers = python_powers(config.curve, config.cut, config.step_s, config.tail_s)
        self._ended: list[int] = []
        #: Counts every change of a running sale (kick, redo, take, end): the exact arrays of
        #: :meth:`sale_arrays` are rebuilt when it moved.
        self.changes = 0
        self._exact: tuple[int, tuple[npt.NDArray[Any], ...]] | None = None

    def price(self, sale: Sale, ts_ns: int) -> float:
        """The sale's price now (DAI per unit) on the configured curve."""
        cfg = self.config
        dur = (ts_ns - sale.tic_ns) / NS_PER_S
        if cfg.curve == "linear":
            return mk.linear_decrease(sale.top, dur, cfg.tau_s)
        if cfg.curve == "stairstep":
            return mk.stairstep_exponential_decrease(sale.top, dur, cfg.cut, cfg.step_s)
        return mk.exponential_decrease(sale.top, dur, cfg.cut)

    def kick(self, *, vault: int, tab: float, lot: float, due: float, ctx: StepContext) -> Sale:
        """Start a sale of ``lot`` for ``tab`` (``top = feed x buf``)."""
        self.kicks += 1
        sale = Sale(
            id=self.kicks,
            vault=vault,
            tab=tab,
            lot=lot,
            due=due,
            top=ctx.feed_price * self.config.buf,
            tic_ns=ctx.ts_ns,
            seen_block=ctx.block,
        )
        self.sales.append(sale)
        self.changes += 1
        if not self._stale:  # the arrays take it at the next compiled run (_sync)
            self._new.append(sale)
        self.dirt += tab
        return sale

    def incentive(self, tab: float) -> float:
        """The kick incentive ``tip + chip x tab`` (DAI)."""
        return mk.keeper_incentive(tab, self.config.tip, self.config.chip)

    def run(
        self, ctx: StepContext, keepers: Keepers, vow: Vow, log: ActionLog, sales: SaleLog
    ) -> float:
        """Run every sale for one step; return the collateral keepers sold (units, >= 0).

        Due proceeds are credited first (as the venue's step has). The fast path
        (``self.fast``, §M10) runs the per-sale path below in one compiled pass; proceeds
        returned at once (``sale_delay_blocks = 0``: a take raises a keeper's capital within the
        step) take the per-sale path.
        """
        keepers.settle(ctx.block)
        if self.fast and keepers.config.sale_delay_blocks > 0:
            sold = self._run_compiled(ctx, keepers, vow, log, sales)
        else:
            sold = self._run_each(range(len(self.sales)), ctx, keepers, vow, log, sales)
            self._stale = True  # the sale arrays did not follow
        self._compact()
        return sold

    def _run_compiled(
        self, ctx: StepContext, keepers: Keepers, vow: Vow, log: ActionLog, sales: SaleLog
    ) -> float:
        """Every sale through :func:`.clip_nb.run_sales_nb` (the per-sale path in one compiled
        pass over the exact sale arrays), then its events booked in order."""
        if not self.sales:
            return 0.0
        self._sync()
        cfg = self.config
        bad, codes, values, n, sold, self.dirt, self.returned = run_sales_nb(
            self._tops, self._tics, self._tabs, self._lots, self._raised, self._seen,
            self._prices, self._until, ctx.ts_ns, ctx.block, ctx.feed_price, ctx.market_price,
            float(ctx.depth), np.asarray(ctx.gas_cost, dtype=np.float64), keepers.order,
            keepers.latency_blocks,
            keepers.min_profit, keepers.capital, keepers.gas_paid, CURVE_CODES[cfg.curve],
            cfg.tau_s, cfg.cut, self.powers, cfg.step_s, cfg.tail_s, cfg.cusp, cfg.buf, cfg.tip,
            cfg.chip, self.chost, ABOVE_MARKET, self.dirt, self.returned,
        )  # fmt: skip
        if n:
            self._book(codes[:n], values[:n], ctx, keepers, vow, log, sales)
        if bad >= 0:  # as Keepers.act refuses the redo (the sales before it have run)
            raise ValidationError("incentive", self.sales[bad].id, "must be finite")
        return float(sold)

    def _book(
        self,
        codes: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        ctx: StepContext,
        keepers: Keepers,
        vow: Vow,
        log: ActionLog,
        sales: SaleLog,
    ) -> None:
        """Write the compiled run's changes back to the sales it touched, then book its events
        in order: the Vow's incentives and settlements, the journal, the sale log and the
        keepers' proceeds (one :meth:`~deleverage.protocols.keepers.Keepers.receive`)."""
        touched = np.array(sorted(set(codes[:, 1].tolist())), dtype=np.int64)
        for k, top, tic, tab, lot, raised in zip(
            touched.tolist(), self._tops[touched].tolist(), self._tics[touched].tolist(),
            self._tabs[touched].tolist(), self._lots[touched].tolist(),
            self._raised[touched].tolist(), strict=True,
        ):  # fmt: skip
            sale = self.sales[k]
            sale.top, sale.tic_ns, sale.tab, sale.lot, sale.raised = top, tic, tab, lot, raised
        # The rows the per-sale path adds one at a time (ActionLog.add, SaleLog.add), built in
        # order and appended as one batch each.
        rows: list[tuple[int, float, float, float, float, int]] = []
        details: list[dict[str, float | int | str]] = []
        sold: list[tuple[int, int, int, int, float, float, float]] = []
        takers: list[int] = []
        proceeds: list[float] = []
        ts_ns, market = ctx.ts_ns, ctx.market_price
        for (kind, k, keeper), (x, owe, cash, price) in zip(
            codes.tolist(), values.tolist(), strict=True
        ):
            sale = self.sales[k]
            if kind == TAKE:
                takers.append(keeper)
                proceeds.append(cash)
                sold.append((ts_ns, sale.id, sale.vault, keeper, x, owe, market))
                rows.append((sale.vault, -x, price, 0.0, 0.0, _TAKE))
                details.append({"action": "take", "auction": sale.id, "keeper": keeper, "owe": owe})
            elif kind == REDO:
                vow.pay_incentive(x)
                self.redos += 1
                rows.append((sale.vault, 0.0, price, 0.0, 0.0, _REDO))
                details.append({"action": "redo", "auction": sale.id, "keeper": keeper, "coin": x})
            else:
                self._ended.append(k)
                vow.settle_auction(sale.due, sale.raised)
        log.add_rows(rows, details)
        sales.add_rows(sold)
        if takers:
            keepers.receive(takers, proceeds, block=ctx.block)
        self.changes += 1

    def _sync(self) -> None:
        """Build the sale arrays (first compiled run) or append the sales kicked since."""
        if self._stale:
            sales, n = self.sales, len(self.sales)
            self._tops = np.fromiter((s.top for s in sales), np.float64, n)
            self._tics = np.fromiter((s.tic_ns for s in sales), np.int64, n)
            self._tabs = np.fromiter((s.tab for s in sales), np.float64, n)
            self._lots = np.fromiter((s.lot for s in sales), np.float64, n)
            self._raised = np.fromiter((s.raised for s in sales), np.float64, n)
            self._seen = np.fromiter((s.seen_block for s in sales), np.int64, n)
            self._prices, self._until = np.zeros(n), np.zeros(n, dtype=np.int64)
            self._stale = False
        elif self._new:
            new = self._new
            self._tops = np.concatenate((self._tops, [s.top for s in new]))
            tics = np.array([s.tic_ns for s in new], np.int64)
            seen = np.array([s.seen_block for s in new], np.int64)
            self._tics = np.concatenate((self._tics, tics))
            self._tabs = np.concatenate((self._tabs, [s.tab for s in new]))
            self._lots = np.concatenate((self._lots, [s.lot for s in new]))
            self._raised = np.concatenate((self._raised, [s.raised for s in new]))
            self._seen = np.concatenate((self._seen, seen))
            self._prices = np.concatenate((self._prices, np.zeros(len(new))))
            self._until = np.concatenate((self._until, np.zeros(len(new), dtype=np.int64)))
        self._new = []

    def _compact(self) -> None:
        """Drop the sales ended in this run from the list and the sale arrays (once)."""
        if not self._ended:
            return
        if not self._stale:
            keep = np.ones(len(self.sales), dtype=np.bool_)
            keep[self._ended] = False
            self._tops, self._tics = self._tops[keep], self._tics[keep]
            self._tabs, self._lots = self._tabs[keep], self._lots[keep]
            self._raised, self._seen = self._raised[keep], self._seen[keep]
            self._prices, self._until = self._prices[keep], self._until[keep]
        for i in sorted(self._ended, reverse=True):
            del self.sales[i]
        self._ended = []
        self.changes += 1

    def sale_arrays(self) -> tuple[npt.NDArray[Any], ...]:
        """The running sales' ``top``, ``tic_ns``, ``tab``, ``lot`` and ``seen_block`` as
        arrays (read-only): the compiled run's own, or built from the sales when stale."""
        if not self._stale:
            self._sync()
            return self._tops, self._tics, self._tabs, self._lots, self._seen
        if self._exact is None or self._exact[0] != self.changes:
            sales, n = self.sales, len(self.sales)
            arrays = (
                np.fromiter((s.top for s in sales), np.float64, n),
                np.fromiter((s.tic_ns for s in sales), np.int64, n),
                np.fromiter((s.tab for s in sales), np.float64, n),
                np.fromiter((s.lot for s in sales), np.float64, n),
                np.fromiter((s.seen_block for s in sales), np.int64, n),
            )
            self._exact = (self.changes, arrays)
        return self._exact[1]

    def _run_each(
        self,
        run: Iterable[int],
        ctx: StepContext,
        keepers: Keepers,
        vow: Vow,
        log: ActionLog,
        sales: SaleLog,
    ) -> float:
        """The per-sale path over the sales at positions ``run`` of ``sales`` (in order; a run
        kicks none and ends them in place, so the positions hold until :meth:`_compact`)."""
        sold = 0.0
        for k in run:
            sale = self.sales[k]
            price = self.price(sale, ctx.ts_ns)
            elapsed = (ctx.ts_ns - sale.tic_ns) / NS_PER_S
            if mk.needs_redo(
                price, sale.top, elapsed, tail_s=self.config.tail_s, cusp=self.config.cusp
            ):
                if not self._redo(sale, ctx, keepers, vow, log):
                    continue
                price = sale.top
            if self._no_taker(price, ctx):
                continue
            sold += self._takes(k, sale, price, ctx, keepers, vow, log, sales)
        return sold

    def _no_taker(self, price: float, ctx: StepContext) -> bool:
        """True when no keeper can profit from a take at ``price`` (§M7's skip bound): the
        market is below the sale's price by more than float rounding, so ``slice x market -
        slippage - owe - gas < 0 <= min_profit`` for any slice (``owe`` is ``slice x price``
        up to two roundings, gas and slippage are >= 0)."""
        return price > ctx.market_price * ABOVE_MARKET

    def _redo(
        self, sale: Sale, ctx: StepContext, keepers: Keepers, vow: Vow, log: ActionLog
    ) -> bool:
        cfg = self.config
        coin = mk.redo_incentive(
            sale.tab, sale.lot, ctx.feed_price, tip=cfg.tip, chip=cfg.chip, chost_dai=self.chost
        )
        # A keeper resets a stuck sale for the incentive, or to buy from it: the sale's
        # discount at the new top is what it expects to earn (0 when top >= market).
        gain = max(0.0, sale.lot * (ctx.market_price - ctx.feed_price * cfg.buf))
        acts = keepers.act(
            block=ctx.block,
            seen_block=[min(sale.seen_block, ctx.block)],
            incentive=[coin + gain],
            need=[0.0],
            slippage=[0.0],
            gas_price_gwei=ctx.gas_price_gwei,
            native_price=ctx.native_price,
        )
        winner = int(acts.winner[0])
        if winner < 0:
            return False
        keepers.capital[winner] += coin
        vow.pay_incentive(coin)
        sale.top = ctx.feed_price * cfg.buf
        sale.tic_ns = ctx.ts_ns
        self.changes += 1
        self.redos += 1
        log.add(
            MakerAction.REDO, vault=sale.vault, price=sale.top,
            auction=sale.id, keeper=winner, coin=coin,
        )  # fmt: skip
        return True

    def _takes(
        self,
        position: int,
        sale: Sale,
        price: float,
        ctx: StepContext,
        keepers: Keepers,
        vow: Vow,
        log: ActionLog,
        sales: SaleLog,
    ) -> float:
        if price <= 0.0:
            return 0.0
        sold = 0.0
        for k in keepers.order:
            if ctx.block - sale.seen_block < keepers.latency_blocks[k]:
                continue
            gas = float(ctx.gas_cost[k])
            budget = keepers.capital[k] - gas
            if budget <= 0.0:
                continue
            taken = mk.take_amounts(
                tab=sale.tab, lot=sale.lot, price=price, amt=budget / price, max_price=price,
                chost_dai=self.chost,
            )  # fmt: skip
            if taken.refusal or taken.slice <= 0.0:
                continue
            slip = sale_slippage(taken.slice, ctx.market_price, ctx.depth)
            proceeds = taken.slice * ctx.market_price - slip
            if proceeds - taken.owe - gas <= keepers.min_profit[k]:
                continue  # every keeper sees the same price: wait for a cheaper one
            keepers.capital[k] = max(0.0, keepers.capital[k] - taken.owe - gas)  # float residue
            keepers.gas_paid[k] += gas
            keepers.receive_one(k, proceeds, block=ctx.block)
            sold += taken.slice
            sale.raised += taken.owe
            self.dirt -= taken.owe
            sale.tab, sale.lot = taken.tab_left, taken.lot_left
            self.changes += 1
            sales.add(
                ts_ns=ctx.ts_ns, auction=sale.id, vault=sale.vault, keeper=int(k),
                collateral=taken.slice, dai=taken.owe, market_price=ctx.market_price,
            )  # fmt: skip
            log.add(
            MakerAction.TAKE, vault=sale.vault, size=-taken.slice,
                price=price, auction=sale.id, keeper=int(k), owe=taken.owe,
            )  # fmt: skip
            if sale.lot <= 0.0 or sale.tab <= 0.0:
                self._end(position, sale, vow)
                break
        return sold

    def _end(self, position: int, sale: Sale, vow: Vow) -> None:
        if sale.tab > 0.0:  # lot gone, tab left: the Dog forgets it, the Vow books a deficit
            self.dirt -= sale.tab
        else:
            self.returned += sale.lot
        # It stays in the list (and the arrays) until the run ends (_compact): the positions
        # the run reads stay put.
        self._ended.append(position)
        if len(self._ended) == len(self.sales):
            self.dirt = 0.0  # no float residue once nothing is being raised
        vow.settle_auction(sale.due, sale.raised)
