"""The Vow: Maker's balance sheet of liquidations, its surplus buffer and its debt auctions.

A bark (or bite) moves a vault's debt ``due`` onto the Vow (``Vat.grab`` + ``Vow.fess``); the
auction's proceeds pay it back. Per auction, when it ends:

- proceeds above ``due`` (the penalty) are **surplus** (``joy``);
- proceeds below ``due`` are a **deficit**, and so are the keeper incentives the Vow pays
  (``tip + chip x tab``, minted by ``Vat.suck`` as new system debt).

A deficit is absorbed by the surplus buffer first (``Vow.heal``): the amount lands on the
``insurance_paid`` line (the buffer plays the insurance fund). What the buffer cannot absorb
is **pending system debt**; once it is at least ``sump`` and the surplus is empty, a **debt
auction** (``Vow.flop`` / ``flop.sol``) mints MKR for ``sump`` DAI. DAI raised by debt
auctions lands on ``socialized_loss``: the loss is spread over MKR holders by dilution. What
is still pending when the run is closed (:meth:`Vow.close`: less than ``sump``, or debt
auctions not yet settled) is declared ``bad_debt``. Later surplus first heals pending debt
(also ``insurance_paid``). Simplifications, documented in docs/formulas.md §M: no ``wait``
before queued debt can be auctioned (``Vow.flog``), and a debt auction settles
``flop_duration_s`` after its kick at the lot competitive bidders accept,
``sump / (mkr_price x (1 - flop_discount))``, restarted with ``lot x pad`` (``tick``) while
that is more than the lot on offer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from deleverage.protocols.maker.config import VowConfig
from deleverage.protocols.maker.math import flop_tick_lot

__all__ = ["DebtAuction", "Vow"]

NS_PER_S = 1_000_000_000


@dataclass
class DebtAuction:
    """One running debt auction: ``sump`` DAI for at most ``lot`` MKR, settling at ``end_ns``."""

    bid: float
    lot: float
    end_ns: int


@dataclass
class Vow:
    """The Vow's accounts (DAI) and its debt auctions (see the module docstring)."""

    config: VowConfig
    #: Surplus (DAI) available to absorb deficits.
    joy: float = 0.0
    #: System debt no surplus covered yet (DAI).
    pending: float = 0.0
    #: Pending debt already on offer in running debt auctions (``Ash``).
    ash: float = 0.0
    insurance_paid: float = 0.0
    socialized_loss: float = 0.0
    bad_debt: float = 0.0
    #: Cumulative keeper incentives paid (DAI), penalty income and auction deficits.
    incentives_paid: float = 0.0
    penalty_income: float = 0.0
    auction_deficits: float = 0.0
    #: MKR minted by settled debt auctions.
    mkr_minted: float = 0.0
    flops: list[DebtAuction] = field(default_factory=list)
    flops_kicked: int = 0
    flops_settled: int = 0

    def __post_init__(self) -> None:
        self.joy = self.config.surplus_buffer

    def _absorb(self, amount: float) -> None:
        covered = min(self.joy, amount)
        self.joy -= covered
        self.insurance_paid += covered
        self.pending += amount - covered

    def pay_incentive(self, coin: float) -> None:
        """The Vow pays a keeper ``coin`` DAI (``Vat.suck``): a cost the buffer absorbs."""
        if coin > 0.0:
            self.incentives_paid += coin
            self._absorb(coin)

    def settle_auction(self, due: float, raised: float) -> float:
        """An auction of ``due`` debt ended having raised ``raised`` DAI; return its deficit."""
        net = raised - due
        if net >= 0.0:
            self.penalty_income += net
            self.joy += net
            healed = min(self.joy, self.pending - self.ash)
            if healed > 0.0:
                self.joy -= healed
                self.pending -= healed
                self.insurance_paid += healed
            return 0.0
        self.auction_deficits -= net
        self._absorb(-net)
        return -net

    def step(self, ts_ns: int) -> list[tuple[str, float, float]]:
        """Settle due debt auctions and kick new ones; return (action, DAI, MKR) records."""
        cfg = self.config
        out: list[tuple[str, float, float]] = []
        for auction in list(self.flops):
            if ts_ns < auction.end_ns:
                continue
            accepted = auction.bid / (cfg.mkr_price * (1.0 - cfg.flop_discount))
            if accepted > auction.lot:  # no bid at this lot: tick, a larger lot, again
                auction.lot = flop_tick_lot(auction.lot, cfg.pad)
                auction.end_ns = ts_ns + int(cfg.flop_duration_s * NS_PER_S)
                out.append(("flop_tick", auction.bid, auction.lot))
                continue
            self.flops.remove(auction)
            self.ash -= auction.bid
            self.pending -= auction.bid
            self.socialized_loss += auction.bid
            self.mkr_minted += accepted
            self.flops_settled += 1
            out.append(("flop_deal", auction.bid, accepted))
        while self.joy <= 0.0 and self.pending - self.ash >= cfg.sump:
            self.ash += cfg.sump
            end = ts_ns + int(cfg.flop_duration_s * NS_PER_S)
            self.flops.append(DebtAuction(bid=cfg.sump, lot=cfg.dump, end_ns=end))
            self.flops_kicked += 1
            out.append(("flop_kick", cfg.sump, cfg.dump))
        return out

    @property
    def next_event_ns(self) -> float:
        """Time of the next debt-auction settlement (ns; ``inf`` when none runs)."""
        return float(min((a.end_ns for a in self.flops), default=math.inf))

    def close(self) -> float:
        """Declare what is still pending as bad debt (end of a run); return the amount."""
        amount = self.pending
        if amount > 0.0:
            self.bad_debt += amount
            self.pending = 0.0
            self.ash = 0.0
            self.flops.clear()
        return amount
