"""Delta-neutral hedgers with a real spot leg, and the spot market they trade it in.

A hedger holds a short perpetual on the venue (a row of the population, in the engine) and
``S`` base units of spot outside it, bought at the index when the run starts:
``S_0 = h |q_0|`` for the target hedge ratio ``h``. The engine sees only the perp leg, which
pays or earns funding and the basis (mark against index) like any position. After each risk
step (docs/formulas.md, "Hedgers"):

- **rebalance**: the target is ``T = h |q|`` for the short ``q`` now. A hedger whose spot leg
  is off by more than the band, ``|S - T| > band x T`` (any excess when ``T = 0``), trades
  ``T - S`` in the spot market and pays ``cost x notional``. When the engine liquidated or
  deleveraged (ADL) the short, ``S > T``: the spot leg is unhedged, and a share ``sell_naked``
  of hedgers sell the excess (the others hold it naked). This sale is the *second-order flow*
  of the cascade: :attr:`SpotLegs.flow` records it per step.
- **spot market**: the step's net spot order of all hedgers is one market order into the spot
  book (:class:`deleverage.liquidity.ConstantDepthBook`, its own depth and resilience); each
  hedger trades at its VWAP (the part of buyers and sellers that crosses trades between them at
  that price); beyond the book's ``max_move`` only part fills, and every hedger trades its
  share. With ``moves_index`` the book's impact ``I`` moves the index (and
  oracle) that the perp venue watches, ``X' = X (1 + I)``, from the next step on; the book
  refills with its half-life, so the index returns to the exogenous path.
- **margin from spot** (optional): a hedger whose perp margin ratio ``MM / E`` reaches the
  trigger posts the spot leg's gain not yet posted, ``S (X - X_0) - posted``, as margin, up to
  ``top_up_fraction x MM`` per step: a deposit (and a margin move for an isolated position),
  i.e. events in the journal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.bulk import add_isolated_margin_many
from deleverage.liquidity import ConstantDepthBook
from deleverage.rules import margin as mm
from deleverage.sim.scenario import HedgerAgents
from deleverage.spec import MarginMode

if TYPE_CHECKING:
    from deleverage.sim.runner import Simulation

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Columns of :attr:`SpotLegs.flow` (one row per step in which hedgers traded spot).
FLOW_COLUMNS = (
    "ts_ns",  # time of the trades, ns
    "market",  # perp market id whose hedgers traded
    "spot_sold",  # base units the hedgers sold (a liquidated or deleveraged short's spot leg)
    "spot_bought",  # base units bought back to the target
    "vwap",  # the net order's average price in the spot book, quote/base
    "notional",  # quote value of the net order
    "spot_impact",  # the spot book's impact right after the order (relative move of its mid)
    "unhedged",  # hedgers whose short is gone while they still hold spot
)


class SpotLegs:
    """The spot legs of one perp market's hedgers (see the module docstring).

    Parameters
    ----------
    sim
        The simulation (its engine and clock).
    m
        The perp market id.
    accounts
        Hedger account ids (short positions of the market's population).
    config
        The scenario's ``[agents.hedgers]`` table.
    sells
        Per hedger, whether it sells an unhedged spot leg.
    index0, start_ns
        The index when the spot legs are bought, and the time.
    """

    def __init__(
        self,
        sim: Simulation,
        m: int,
        accounts: IntArray,
        config: HedgerAgents,
        *,
        sells: BoolArray,
        index0: float,
        start_ns: int,
    ) -> None:
        self.sim = sim
        self.m = m
        self.accounts = accounts
        self.config = config
        self.sells = sells
        size = sim.ex.columns(m).size[accounts]
        self.start_short = np.abs(size)
        self.spot = config.hedge_ratio * self.start_short
        self.entry = float(index0)
        #: Quote each hedger holds outside the venue: spot bought, sold, costs paid.
        self.cash = -self.spot * index0
        self.posted = np.zeros(len(accounts))
        self.sold = np.zeros(len(accounts))
        self.bought = np.zeros(len(accounts))
        self.costs = 0.0
        spot = config.spot
        self.book: ConstantDepthBook | None = None
        if spot is not None:
            self.book = ConstantDepthBook(
                depth_per_pct=spot.depth_per_pct, half_life_s=spot.half_life_s,
                max_move=spot.max_move, ts_ns=start_ns,
            )  # fmt: skip
        self.flow: list[dict[str, float]] = []
        #: The index at the last step (the spot leg's mark).
        self.last_index = float(index0)

    # ---------------------------------------------------------------- the spot market
    def index_factor(self, ts_ns: int) -> float:
        """``1 + I``: how the spot book's impact moves the index the venue watches (1 without
        a book or with ``moves_index = false``)."""
        spot = self.config.spot
        if self.book is None or spot is None or not spot.moves_index:
            return 1.0
        return 1.0 + float(self.book.price_impact(ts_ns))

    def _execute(self, net: float, index: float, ts_ns: int) -> tuple[float, float, float]:
        """Send the hedgers' net spot order (base, > 0 buys) to the book; return the filled
        fraction, the VWAP and the book's impact after it (all of it at the index, no impact,
        without a book)."""
        if self.book is None:
            return 1.0, index, 0.0
        side = 1 if net > 0 else -1
        fill = self.book.execute(side, abs(net), index, ts_ns)
        if fill.size <= 0.0:
            return 0.0, float(fill.vwap), float(fill.impact)
        return fill.size / abs(net), float(fill.vwap), float(fill.impact)

    # ---------------------------------------------------------------- one step
    def step(self, ts_ns: int, index: float) -> None:
        """Post margin from spot gains (if configured), then rebalance to the target."""
        if len(self.accounts) == 0:
            return
        self.last_index = index
        if self.config.margin_from_spot:
            self._post_margin(ts_ns, index)
        self._rebalance(ts_ns, index)

    def _rebalance(self, ts_ns: int, index: float) -> None:
        cfg = self.config
        short = np.abs(np.minimum(self.sim.ex.columns(self.m).size[self.accounts], 0.0))
        target = cfg.hedge_ratio * short
        gap = target - self.spot
        off = np.abs(gap) > cfg.band * target
        off &= np.abs(gap) > 1e-12 * np.maximum(self.spot, 1.0)
        off &= (gap > 0) | self.sells
        if not off.any():
            return
        trade = np.where(off, gap, 0.0)
        net = float(trade.sum())
        if net == 0.0:
            filled, vwap, impact = 1.0, index, 0.0
        else:
            filled, vwap, impact = self._execute(net, index, ts_ns)
        # Beyond the book's depth only part fills: every hedger trades its share of it.
        trade *= filled
        if filled == 0.0:
            return
        notional = np.abs(trade) * vwap
        fee = cfg.cost * notional
        self.cash -= trade * vwap + fee
        self.costs += float(fee.sum())
        self.spot += trade
        self.sold += np.maximum(-trade, 0.0)
        self.bought += np.maximum(trade, 0.0)
        self.flow.append(
            {
                "ts_ns": ts_ns,
                "market": self.m,
                "spot_sold": float(np.maximum(-trade, 0.0).sum()),
                "spot_bought": float(np.maximum(trade, 0.0).sum()),
                "vwap": vwap,
                "notional": abs(net) * filled * vwap,
                "spot_impact": impact,
                "unhedged": float(self.unhedged_count()),
            }
        )

    def _post_margin(self, ts_ns: int, index: float) -> None:
        cfg = self.config
        ex = self.sim.ex
        cols = ex.columns(self.m)
        a = self.accounts
        size = cols.size[a]
        mark = ex.market(self.m).mark
        notional = np.abs(size) * mark
        maintenance = mm.maintenance_margin(notional, ex.market(self.m).tiers)
        upnl = size * (mark - cols.entry[a])
        isolated = cols.mode[a] == MarginMode.ISOLATED
        cross_equity = ex.cached_margin_state()["cross_equity"][a]
        equity = np.where(isolated, cols.isolated_margin[a] + upnl, cross_equity)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(equity > 0, maintenance / equity, np.inf)
        gain = np.maximum(self.spot * (index - self.entry) - self.posted, 0.0)
        hit = (size < 0) & (ratio >= cfg.trigger_ratio) & (gain > 0)
        amount = np.where(hit, np.minimum(cfg.top_up_fraction * maintenance, gain), 0.0)
        k = np.flatnonzero(amount > 0)
        if len(k) == 0:
            return
        ex.deposit_many(a[k], amount[k], ts_ns=ts_ns)
        iso = k[isolated[k]]
        if len(iso):
            add_isolated_margin_many(ex, self.m, a[iso], amount[iso], ts_ns=ts_ns)
        self.posted[k] += amount[k]

    # ---------------------------------------------------------------- tallies
    def unhedged_count(self) -> int:
        """Hedgers whose short is gone while they still hold spot (naked exposure)."""
        short = np.minimum(self.sim.ex.columns(self.m).size[self.accounts], 0.0)
        return int(np.sum((short == 0.0) & (self.spot > 0.0)))

    def spot_pnl(self) -> float:
        """The spot legs' profit (quote): cash outside the venue (purchase, sales, costs) plus
        the spot held at the last index. With the perp legs' equity in the engine (which pays
        or earns funding and the basis) it is the hedgers' whole result."""
        return float((self.cash + self.spot * self.last_index).sum())

    def naked_spot(self) -> float:
        """Base units of spot held beyond the hedge ratio of the shorts now."""
        short = np.abs(np.minimum(self.sim.ex.columns(self.m).size[self.accounts], 0.0))
        return float(np.maximum(self.spot - self.config.hedge_ratio * short, 0.0).sum())


def flow_frame(legs: list[SpotLegs | None]) -> pd.DataFrame:
    """Every market's hedger spot flow as one frame (:data:`FLOW_COLUMNS`), by time."""
    rows = [row for leg in legs if leg is not None for row in leg.flow]
    frame = pd.DataFrame(rows, columns=list(FLOW_COLUMNS))
    frame = frame.astype({"ts_ns": np.int64, "market": np.int64})
    return frame.sort_values(["ts_ns", "market"], kind="stable").reset_index(drop=True)


def hedger_summary(legs: list[SpotLegs | None]) -> dict[str, float]:
    """Run totals of the hedgers' spot legs (the summary's ``hedger_*`` keys)."""
    live = [leg for leg in legs if leg is not None]
    sold = sum(float(leg.sold.sum()) for leg in live)
    frame = flow_frame(legs)
    sold_notional = float((frame["spot_sold"] * frame["vwap"]).sum() if len(frame) else 0.0)
    return {
        "hedgers": float(sum(len(leg.accounts) for leg in live)),
        "hedger_spot_sold": sold,
        "hedger_spot_sold_notional": sold_notional,
        "hedger_spot_bought": sum(float(leg.bought.sum()) for leg in live),
        "hedgers_unhedged": float(sum(leg.unhedged_count() for leg in live)),
        "hedger_naked_spot": sum(leg.naked_spot() for leg in live),
        "hedger_margin_posted": sum(float(leg.posted.sum()) for leg in live),
        "hedger_costs": sum(leg.costs for leg in live),
        "hedger_spot_pnl": sum(leg.spot_pnl() for leg in live),
        "hedger_max_spot_impact": float(frame["spot_impact"].abs().max()) if len(frame) else 0.0,
    }
