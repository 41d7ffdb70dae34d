"""A cross-venue risk oracle: deleverage a trader on its holistic profile, not venue by venue.

Each venue liquidates a trader when its own piece falls below the venue's maintenance (the
platform-local trigger). The oracle watches the whole trader (:mod:`.exposure`): its total
equity over all its venue accounts against the **holistic maintenance** (each asset's tiers on
the trader's gross notional summed over venues). The documented rule (docs/formulas.md §20.3):

1. **Trigger**: holistic health ``H = E / M_h`` below ``level``.
2. **Where first**: the position with the most risk, the lowest local health (equity over the
   venue's own maintenance); ties go to the larger maintenance.
3. **How much**: ``step_fraction`` of that position's size at the trigger per order (all of it
   when less is left), re-evaluating ``H`` after each order at unchanged prices (a reduction at
   the mark leaves equity unchanged and lowers the maintenance), until ``H >= target`` or
   ``max_orders`` orders.

The orders are trades of the trader against the venue's outside liquidity (the book), at the
price the caller's liquidity gives; they are forced flow like liquidations and go to the same
shared liquidity. The venues' own triggers keep running: the oracle acts before them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import pandas as pd

from deleverage.engine.venue import PerpVenue
from deleverage.errors import ValidationError
from deleverage.rules import margin as mm
from deleverage.spec import TierArrays
from deleverage.world.exposure import (
    TraderAccounts,
    accounts_from_map,
    aggregate_health,
    holistic_health,
    holistic_maintenance,
    trader_equity,
    trader_table,
    venue_tiers,
)
from deleverage.world.hooks import RiskLayer, RoundView

if TYPE_CHECKING:
    from deleverage.world.core import World

__all__ = [
    "HolisticRiskOracle",
    "Reduction",
    "RiskOracleConfig",
    "RiskOracleLayer",
    "plan_reductions",
]

#: ``(asset, side, size) -> fill price``: what the caller's liquidity pays for an order.
FillPrice = Callable[[str, int, float], float]


@dataclass(frozen=True)
class RiskOracleConfig:
    """The oracle's rule (see the module docstring).

    Parameters
    ----------
    level
        Trigger: holistic health below this (> 0).
    target
        Reduce until holistic health reaches this (>= level).
    step_fraction
        Share of a position's size reduced per order, in (0, 1].
    max_orders
        Orders per trader per evaluation (>= 1).
    """

    level: float = 1.0
    target: float = 1.25
    step_fraction: float = 0.25
    max_orders: int = 16

    def __post_init__(self) -> None:
        for field in ("level", "target", "step_fraction"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"risk_oracle.{field}", value, "must be a number")
            if not math.isfinite(value) or value <= 0:
                raise ValidationError(f"risk_oracle.{field}", value, "must be finite and > 0")
        if self.target < self.level:
            raise ValidationError(
                "risk_oracle.target", self.target, f"must be >= level {self.level}"
            )
        if self.step_fraction > 1:
            raise ValidationError("risk_oracle.step_fraction", self.step_fraction, "must be <= 1")
        if isinstance(self.max_orders, bool) or not isinstance(self.max_orders, int):
            raise ValidationError("risk_oracle.max_orders", self.max_orders, "must be an integer")
        if self.max_orders < 1:
            raise ValidationError("risk_oracle.max_orders", self.max_orders, "must be >= 1")


class Reduction(NamedTuple):
    """One order of the oracle: ``size`` is the signed trade (a long is reduced by a sale < 0)."""

    trader: str
    venue: str
    account: int
    asset: str
    size: float


def plan_reductions(
    trader: str,
    positions: pd.DataFrame,
    equity: float,
    tiers: Mapping[str, TierArrays],
    local_tiers: Mapping[tuple[str, str], TierArrays],
    config: RiskOracleConfig,
) -> list[Reduction]:
    """The orders the rule gives for one trader (pure: nothing is traded).

    ``positions``: the trader's rows of :func:`~deleverage.world.exposure.trader_table`;
    ``equity``: its total equity; ``tiers``: per asset, the holistic tier table;
    ``local_tiers``: per ``(venue, asset)``, the venue's own table.
    """
    if positions.empty:
        return []
    rows = positions.reset_index(drop=True)
    size = rows["size"].to_numpy(dtype=np.float64).copy()
    price = rows["notional"].to_numpy(dtype=np.float64) / np.abs(size)
    equity_row = rows["equity"].to_numpy(dtype=np.float64).copy()
    maint = rows["maintenance"].to_numpy(dtype=np.float64).copy()
    step = np.abs(size) * config.step_fraction
    assets = rows["asset"].astype(str).tolist()
    venues = rows["venue"].astype(str).tolist()

    def health_now() -> float:
        gross: dict[str, float] = {}
        for a, s, p in zip(assets, size, price, strict=True):
            gross[a] = gross.get(a, 0.0) + abs(s) * p
        m = holistic_maintenance(gross, tiers)
        return math.inf if m <= 0 else equity / m

    if health_now() >= config.level:
        return []
    orders: list[Reduction] = []
    while len(orders) < config.max_orders and health_now() < config.target:
        open_ = np.flatnonzero(size != 0.0)
        if open_.size == 0:
            break
        local = np.where(
            maint[open_] > 0, equity_row[open_] / np.maximum(maint[open_], 1e-300), np.inf
        )
        # Lowest local health first; ties: the larger maintenance.
        i = int(open_[np.lexsort((-maint[open_], local))[0]])
        qty = min(abs(size[i]), step[i])
        left = abs(size[i]) - qty
        if left <= 1e-12 * step[i]:
            qty, left = abs(size[i]), 0.0
        orders.append(
            Reduction(
                trader, venues[i], int(rows["account"].iloc[i]), assets[i], -np.sign(size[i]) * qty
            )
        )
        scale = left / abs(size[i])
        equity_row[i] *= scale
        size[i] = np.sign(size[i]) * left
        maint[i] = float(
            mm.maintenance_margin(left * price[i], local_tiers[(venues[i], assets[i])])
        )
    return orders


class HolisticRiskOracle:
    """The oracle over order-book venues (:class:`~deleverage.engine.venue.PerpVenue`).

    Parameters
    ----------
    venues
        Venue name -> venue; the first venue listing an asset gives its holistic tiers.
    accounts
        Trader -> venue name -> account (:data:`~deleverage.world.exposure.TraderAccounts`).
    config
        The rule's parameters.
    """

    def __init__(
        self,
        venues: Mapping[str, PerpVenue],
        accounts: TraderAccounts,
        config: RiskOracleConfig | None = None,
    ) -> None:
        for trader, by_venue in accounts.items():
            for name in by_venue:
                if name not in venues:
                    raise ValidationError(
                        f"accounts.{trader}", name, f"must name a venue {sorted(venues)}"
                    )
        self._venues = dict(venues)
        self._accounts = {t: dict(v) for t, v in accounts.items()}
        self.config = config or RiskOracleConfig()
        self._tiers = venue_tiers(self._venues)
        self._local = {
            (name, asset): venue.exchange.markets[m].tiers
            for name, venue in self._venues.items()
            for asset, m in venue.asset_markets.items()
        }
        self.orders_done = 0
        self.notional_reduced = 0.0
        self.first_order_ns: int | None = None

    def profile(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The per-position table and the per-trader aggregate at current marks."""
        table = trader_table(self._venues, self._accounts)
        equity = trader_equity(self._venues, self._accounts)
        return table, aggregate_health(table, equity, self._tiers)

    def plan(self) -> list[Reduction]:
        """Every trader's orders under the rule, at current marks."""
        table = trader_table(self._venues, self._accounts)
        if table.empty:
            return []
        equity = trader_equity(self._venues, self._accounts)
        health = holistic_health(table, equity, self._tiers)
        below = health.index[health.to_numpy() < self.config.level]
        if len(below) == 0:
            return []
        orders: list[Reduction] = []
        table = table[table["trader"].isin(below)]
        for trader, rows in table.groupby("trader", sort=True):
            orders.extend(
                plan_reductions(
                    str(trader), rows, equity[str(trader)], self._tiers, self._local, self.config
                )
            )
        return orders

    def rounded(self, orders: list[Reduction]) -> list[Reduction]:
        """The orders with sizes rounded down to each market's lot and capped at the position
        held; orders that round to nothing are dropped."""
        out = []
        for order in orders:
            venue = self._venues[order.venue]
            m = venue.asset_markets[order.asset]
            lot = venue.exchange.markets[m].spec.lot_size
            held = abs(float(venue.exchange.columns(m).size[order.account]))
            qty = math.floor(min(abs(order.size), held) / lot + 1e-9) * lot
            if qty > 0.0:
                out.append(order._replace(size=math.copysign(qty, order.size)))
        return out

    def execute(
        self, orders: list[Reduction], fill_price: FillPrice, *, ts_ns: int
    ) -> dict[str, float]:
        """Trade the orders against each venue's outside liquidity; returns the forced flow
        per asset (base, signed). Sizes are rounded down to the market's lot, prices to its
        tick; an order that rounds to nothing is skipped."""
        flow: dict[str, float] = {}
        for order in self.rounded(orders):
            venue = self._venues[order.venue]
            ex = venue.exchange
            m = venue.asset_markets[order.asset]
            spec = ex.markets[m].spec
            qty = abs(order.size)
            side = 1 if order.size > 0 else -1
            price = round(fill_price(order.asset, side, qty) / spec.tick_size) * spec.tick_size
            buyer, seller = (order.account, ex.liquidity_account)
            if side < 0:
                buyer, seller = seller, buyer
            ex.trade(m, buyer=buyer, seller=seller, size=qty, price=price, taker=None, ts_ns=ts_ns)
            flow[order.asset] = flow.get(order.asset, 0.0) + side * qty
            self.orders_done += 1
            self.notional_reduced += qty * price
            if self.first_order_ns is None:
                self.first_order_ns = ts_ns
        return flow


class RiskOracleLayer(RiskLayer):
    """The oracle as a world's risk layer: once per step (``every="step"``) or after every round
    it plans the rule's orders on the traders of ``accounts`` (default: the world's
    :class:`~deleverage.world.traders.TraderMap`, restricted to order-book venues) and trades
    them; their net flow per asset walks the shared market first, and the orders
    fill at the middle of that walk, ``P exp(m / 2)`` (``m`` the log move: a linear book's
    average price). The oracle's flow moves the shared price the next round sees; the world's
    attribution does not credit it to a venue (it is no venue's liquidation). It lands in the
    public shared market: with the price channel cut (private markets per venue) the venues do
    not see it."""

    name = "risk_oracle"

    def __init__(
        self,
        accounts: TraderAccounts | None = None,
        config: RiskOracleConfig | None = None,
        *,
        every: Literal["step", "round"] = "step",
    ) -> None:
        if every not in ("step", "round"):
            raise ValidationError("risk_oracle.every", every, "must be 'step' or 'round'")
        self.every = every
        self._accounts = accounts
        self.config = config or RiskOracleConfig()
        self.oracle: HolisticRiskOracle | None = None

    def on_start(self, world: World) -> None:
        """Build the oracle over the world's order-book venues."""
        perps = {n: v for n, v in world.venues.items() if isinstance(v, PerpVenue)}
        accounts = self._accounts
        if accounts is None:
            # The world's shared traders, on the order-book venues (other kinds not read yet).
            mapped = accounts_from_map(world.traders.frame)
            accounts = {
                t: {v: a for v, a in held.items() if v in perps} for t, held in mapped.items()
            }
        venues = {}
        for by_venue in accounts.values():
            for name in by_venue:
                if name not in perps:
                    raise ValidationError(
                        "risk_oracle.venues", name, "must be an order-book venue of the world"
                    )
                venues[name] = perps[name]
        self.oracle = HolisticRiskOracle(venues, accounts, self.config)

    def on_round(self, world: World, view: RoundView) -> None:
        """With ``every="round"``: act after every round."""
        if self.every == "round":
            self._act(world, view.ts_ns)

    def on_step_end(self, world: World, step: int, ts_ns: int) -> None:
        """With ``every="step"`` (the default): act once at the end of every step."""
        if self.every == "step":
            self._act(world, ts_ns)

    def _act(self, world: World, ts_ns: int) -> None:
        oracle = self.oracle
        if oracle is None:
            return
        orders = oracle.rounded(oracle.plan())
        if not orders:
            return
        flow: dict[str, float] = {}
        for order in orders:
            flow[order.asset] = flow.get(order.asset, 0.0) + order.size
        fill: dict[str, float] = {}
        for asset, total in flow.items():
            before = world.markets[asset].price
            move = world.markets[asset].absorb(total, ts_ns) if total else 0.0
            fill[asset] = before * math.exp(move / 2.0)
        oracle.execute(orders, lambda asset, _side, _q: fill[asset], ts_ns=ts_ns)

    def panels(self) -> dict[str, pd.DataFrame]:
        """Report tables: what the oracle did and the traders nearest the line now."""
        oracle = self.oracle
        if oracle is None:
            return {}
        first = oracle.first_order_ns
        done = pd.DataFrame(
            {
                "line": ["orders", "notional_reduced", "first_order_ns"],
                "value": [float(oracle.orders_done), oracle.notional_reduced,
                          float("nan") if first is None else float(first)],
            }
        )  # fmt: skip
        _, aggregate = oracle.profile()
        weakest = aggregate.sort_values("holistic_health").head(20).reset_index(drop=True)
        return {"Risk oracle": done, "Traders nearest the holistic line": weakest}
