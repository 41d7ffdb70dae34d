"""Liquidations 1.2: the Flipper's English auctions, bid on by competing keepers.

An auction offers a fixed ``lot`` for at most ``tab`` DAI. In the **tend** phase keepers raise
the DAI bid (each raise at least ``beg``, never above ``tab``); once a bid reaches ``tab`` the
**dent** phase starts and keepers offer to take less collateral for the full tab (each cut at
least ``beg``), the rest going back to the vault's owner. A bid stands ``ttl``; the auction is
settled (``deal``) when the last bid has stood ``ttl`` or the auction is older than ``tau``.
An auction that reaches ``tau`` without a bid restarts (``tick``).

**Keepers bid with their capital.** A keeper's bid is DAI locked in the auction until it is
outbid (refunded at once) or the auction is dealt (then it receives the lot, sells it into the
market and its proceeds come back ``sale_delay_blocks`` later). A keeper's most it will bid is
``min(tab, lot x market - slippage - gas - min_profit, capital - gas)``. Each step the keepers
that may act (their latency since the kick) resolve one round of an English auction at once
(proxy bidding): the highest such limit wins at ``beg`` over the second-highest (at most its own
limit, at least the minimum raise); a keeper alone bids only the minimum raise, or
``min_bid`` as a first bid. So **a lone keeper wins a lot for next to nothing**: zero-price
sales come out of missing competition (rivals out of capital, or priced out by gas), not out of
a parameter. The dent phase resolves the same way on the collateral each keeper needs for the
tab to pay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deleverage.protocols.keepers import Keepers
from deleverage.protocols.maker import math as mk
from deleverage.protocols.maker.actions import (
    ActionLog,
    MakerAction,
    SaleLog,
    StepContext,
    sale_slippage,
)
from deleverage.protocols.maker.config import FlipperConfig
from deleverage.protocols.maker.vow import Vow

__all__ = ["Flip", "Flipper"]

NS_PER_S = 1_000_000_000
NOBODY = -1


@dataclass
class Flip:
    """One running English auction (DAI and collateral units; times in ns, 0: unset)."""

    id: int
    vault: int
    lot: float
    tab: float
    due: float
    end_ns: int
    seen_block: int
    bid: float = 0.0
    guy: int = NOBODY
    tic_ns: int = 0


class Flipper:
    """The English auctions of one collateral type (see the module docstring)."""

    def __init__(self, config: FlipperConfig) -> None:
        self.config = config
        self.flips: list[Flip] = []
        self.kicks = 0
        #: DAI being raised by running auctions (the Cat's ``litter``).
        self.litter = 0.0
        self.ticks = 0
        self.returned = 0.0

    def kick(self, *, vault: int, tab: float, lot: float, due: float, ctx: StepContext) -> Flip:
        """Start an auction of ``lot`` for at most ``tab`` (bid 0, ends after ``tau``)."""
        self.kicks += 1
        flip = Flip(
            id=self.kicks,
            vault=vault,
            lot=lot,
            tab=tab,
            due=due,
            end_ns=ctx.ts_ns + int(self.config.tau_s * NS_PER_S),
            seen_block=ctx.block,
        )
        self.flips.append(flip)
        self.litter += tab
        return flip

    def run(
        self, ctx: StepContext, keepers: Keepers, vow: Vow, log: ActionLog, sales: SaleLog
    ) -> float:
        """Run every auction for one step; return the collateral keepers sold (units, >= 0)."""
        sold = 0.0
        for flip in list(self.flips):
            if flip.tic_ns and (flip.tic_ns < ctx.ts_ns or flip.end_ns < ctx.ts_ns):
                sold += self._deal(flip, ctx, keepers, vow, log, sales)
                continue
            if not flip.tic_ns and flip.end_ns < ctx.ts_ns:
                flip.end_ns = ctx.ts_ns + int(self.config.tau_s * NS_PER_S)
                self.ticks += 1
                log.add(MakerAction.TICK, vault=flip.vault, auction=flip.id)
            if flip.bid < flip.tab:
                self._tend_round(flip, ctx, keepers, log)
            else:
                self._dent_round(flip, ctx, keepers, log)
        return sold

    def _eligible(self, flip: Flip, ctx: StepContext, keepers: Keepers) -> list[int]:
        waited = ctx.block - flip.seen_block
        return [int(k) for k in keepers.order if keepers.latency_blocks[k] <= waited]

    def _tend_round(self, flip: Flip, ctx: StepContext, keepers: Keepers, log: ActionLog) -> None:
        cfg = self.config
        slip = sale_slippage(flip.lot, ctx.market_price, ctx.depth)
        worth = flip.lot * ctx.market_price - slip
        limits: list[tuple[float, int]] = []
        for k in self._eligible(flip, ctx, keepers):
            gas = float(ctx.gas_cost[k])
            locked = flip.bid if k == flip.guy else 0.0
            limit = min(
                flip.tab,
                worth - gas - float(keepers.min_profit[k]),
                keepers.capital[k] + locked - gas,
            )
            limits.append((limit, k))
        floor = mk.min_tend_bid(flip.bid, flip.tab, cfg.beg) if flip.bid > 0.0 else cfg.min_bid
        floor = min(floor, flip.tab)
        limits = [(lim, k) for lim, k in limits if lim >= floor or (k == flip.guy and lim > 0)]
        if not limits:
            return
        limits.sort(key=lambda item: -item[0])  # stable: ties keep the keepers' priority
        leader_limit, leader = limits[0]
        rivals = [lim for lim, k in limits[1:] if lim >= floor or k == flip.guy]
        if leader == flip.guy and not rivals:
            return  # the high bidder does not outbid itself
        if leader_limit < floor:
            return  # only the standing high bidder is left, and it cannot raise
        bid = floor if not rivals else min(leader_limit, max(floor, cfg.beg * rivals[0]))
        bid = min(bid, flip.tab)
        if not mk.tend_allowed(bid, flip.bid, flip.tab, cfg.beg):
            return
        gas = float(ctx.gas_cost[leader])
        if leader != flip.guy:
            if flip.guy != NOBODY:
                keepers.capital[flip.guy] += flip.bid  # the outbid keeper is refunded
            keepers.capital[leader] -= bid + gas
        else:
            keepers.capital[leader] -= bid - flip.bid + gas
        keepers.gas_paid[leader] += gas
        flip.bid, flip.guy = bid, leader
        flip.tic_ns = ctx.ts_ns + int(cfg.ttl_s * NS_PER_S)
        log.add(
            MakerAction.TEND, vault=flip.vault, price=bid / flip.lot,
            auction=flip.id, keeper=leader, bid=bid, rivals=len(rivals),
        )  # fmt: skip

    def _dent_round(self, flip: Flip, ctx: StepContext, keepers: Keepers, log: ActionLog) -> None:
        cfg = self.config
        ceiling = mk.min_dent_lot(flip.lot, cfg.beg)
        needs: list[tuple[float, int]] = []
        for k in self._eligible(flip, ctx, keepers):
            gas = float(ctx.gas_cost[k])
            if k != flip.guy and keepers.capital[k] < flip.tab + gas:
                continue
            # The least collateral that pays the tab, gas and profit at the market price
            # (slippage of that lot included, solved by one fixed-point pass).
            need = (flip.tab + gas + float(keepers.min_profit[k])) / ctx.market_price
            need += sale_slippage(need, ctx.market_price, ctx.depth) / ctx.market_price
            needs.append((need, k))
        challengers = [(n, k) for n, k in needs if k != flip.guy and n <= ceiling]
        if not challengers:
            return
        challengers.sort(key=lambda item: item[0])
        need, leader = challengers[0]
        others = sorted(n for n, k in needs if k != leader)
        lot = ceiling if not others else min(ceiling, max(need, others[0] / cfg.beg))
        if not mk.dent_allowed(lot, flip.lot, flip.bid, flip.tab, cfg.beg):
            return
        gas = float(ctx.gas_cost[leader])
        if flip.guy != NOBODY:
            keepers.capital[flip.guy] += flip.bid
        keepers.capital[leader] -= flip.bid + gas
        keepers.gas_paid[leader] += gas
        self.returned += flip.lot - lot
        flip.lot, flip.guy = lot, leader
        flip.tic_ns = ctx.ts_ns + int(cfg.ttl_s * NS_PER_S)
        log.add(
            MakerAction.DENT, vault=flip.vault, price=flip.bid / lot,
            auction=flip.id, keeper=leader, lot=lot,
        )  # fmt: skip

    def _deal(
        self,
        flip: Flip,
        ctx: StepContext,
        keepers: Keepers,
        vow: Vow,
        log: ActionLog,
        sales: SaleLog,
    ) -> float:
        slip = sale_slippage(flip.lot, ctx.market_price, ctx.depth)
        keepers.receive_one(flip.guy, max(0.0, flip.lot * ctx.market_price - slip), block=ctx.block)
        sales.add(
            ts_ns=ctx.ts_ns, auction=flip.id, vault=flip.vault, keeper=flip.guy,
            collateral=flip.lot, dai=flip.bid, market_price=ctx.market_price,
        )  # fmt: skip
        deficit = vow.settle_auction(flip.due, flip.bid)
        log.add(
            MakerAction.DEAL, vault=flip.vault, size=-flip.lot,
            price=flip.bid / flip.lot, shortfall=deficit, auction=flip.id, keeper=flip.guy,
            bid=flip.bid,
        )  # fmt: skip
        self.flips.remove(flip)
        self.litter = 0.0 if not self.flips else self.litter - flip.tab
        return flip.lot

    @property
    def next_deadline_ns(self) -> float:
        """The earliest time an auction can be dealt or ticked (ns; ``inf`` when none runs)."""
        times = [f.tic_ns if f.tic_ns else f.end_ns for f in self.flips]
        return float(min(times, default=math.inf))
