"""Cross-chain backstop liquidity for forced flow and bankruptcy deficits.

A backstop pool holds quote capital on some chain. When a venue's liquidations push forced flow
into the market (or leave a deficit), the venue calls on the pools; a pool on another chain must
first bridge its capital, so it can act only ``latency_s`` after the first call, and it charges
for the bridge (``fee_rate``) and for the risk it takes (``discount``). Once its capital has
arrived it takes the other side of forced flow at the index price less its concession (a sell
is bought at ``P (1 - discount - fee_rate)``, a buy sold at ``P (1 + discount + fee_rate)``)
until its ``capacity`` (quote) is used, or pays deficits (the bridge fee on top, paid by the
pool). What no pool takes goes to the book, a :class:`~deleverage.liquidity.model.LiquidityModel`,
and moves its price. The comparison is the same flow on the book alone ("a single book").

:func:`route_forced_flow` is the whole routine over a series of steps; :class:`BackstopNetwork`
is the pools' ledger (capital left, inventory, fees, deficits covered) that a world steps with.
Which pools serve first: the cheapest available concession (``discount + fee_rate``), ties in
the order given. Formulas: docs/formulas.md §20.2.

The physics (``tests/unit/world/test_world_backstop.py``): with a book that does not recover,
the fall in price impact is ``absorbed / D`` (``D`` the book's depth per unit move), so it is
proportional to the capacity the flow reaches, until the capacity exceeds the flow it can see
(saturation); flow that arrives before a pool's capital is lost to it, so the fall shrinks as the
latency grows and vanishes once the latency outlasts the flow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import ValidationError
from deleverage.liquidity.model import LiquidityModel
from deleverage.world.hooks import Deficit, RiskLayer

if TYPE_CHECKING:
    from deleverage.world.core import World

__all__ = [
    "ROUTING_COLUMNS",
    "BackstopLayer",
    "BackstopLines",
    "BackstopNetwork",
    "BackstopPool",
    "PoolTake",
    "route_forced_flow",
]

NS_PER_S = 1_000_000_000

#: Columns of :func:`route_forced_flow`'s frame, one row per step: the time, the index price,
#: the forced flow (base, signed, buys > 0), the base the pools took, the base sent to the book,
#: the book's relative price impact after the step, the average price the forced flow got
#: (NaN without flow) and the pools' concession paid (quote).
ROUTING_COLUMNS = (
    "ts_ns",
    "index_price",
    "forced_flow",
    "absorbed",
    "to_book",
    "price_impact",
    "average_price",
    "concession",
)


@dataclass(frozen=True)
class BackstopPool:
    """A pool of quote capital on one chain.

    Parameters
    ----------
    chain
        The chain it sits on (a name; pools are told apart by it).
    capacity
        Quote capital it can commit (finite, >= 0).
    latency_s
        Seconds between the first call for help and its capital arriving (bridge latency,
        >= 0; 0 for a pool on the venue's own chain).
    fee_rate
        Bridge fee per unit of quote moved, in [0, 1).
    discount
        The pool's price concession on forced flow, in [0, 1).
    """

    chain: str
    capacity: float
    latency_s: float = 0.0
    fee_rate: float = 0.0
    discount: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.chain, str) or not self.chain:
            raise ValidationError("backstops.chain", self.chain, "must be a non-empty string")
        _number(f"backstops[{self.chain}].capacity", self.capacity, low=0.0)
        _number(f"backstops[{self.chain}].latency_s", self.latency_s, low=0.0)
        _number(f"backstops[{self.chain}].fee_rate", self.fee_rate, low=0.0, below=1.0)
        _number(f"backstops[{self.chain}].discount", self.discount, low=0.0, below=1.0)
        if self.fee_rate + self.discount >= 1.0:
            raise ValidationError(
                f"backstops[{self.chain}].discount",
                self.discount,
                "plus fee_rate must stay below 1",
            )

    @property
    def concession(self) -> float:
        """``discount + fee_rate``: the fraction of the index price the pool charges."""
        return self.discount + self.fee_rate


class PoolTake(NamedTuple):
    """What one pool did in one call: base taken (signed as the pool's position), the price,
    the quote capital used and the bridge fee."""

    chain: str
    size: float
    price: float
    capital: float
    fee: float


class BackstopLines(NamedTuple):
    """The network's cumulative lines (quote): capital committed to forced flow, concession
    earned on it, deficits covered, bridge fees paid on deficits, and calls it could not meet
    (notional of forced flow left to the book, deficits left uncovered)."""

    flow_capital: float
    concession: float
    deficit_covered: float
    deficit_fees: float
    flow_left_notional: float
    deficit_uncovered: float


class BackstopNetwork:
    """The pools' ledger: capital left, arrival times, inventory (see the module docstring)."""

    def __init__(self, pools: Sequence[BackstopPool]) -> None:
        chains = [p.chain for p in pools]
        if len(set(chains)) != len(chains):
            raise ValidationError("backstops", chains, "must name each chain once")
        self._pools = tuple(pools)
        self._left = np.array([p.capacity for p in pools], dtype=np.float64)
        # Per asset: each pool's position (base) and what it paid for it (quote).
        self._inventory: dict[str, npt.NDArray[np.float64]] = {}
        self._cost: dict[str, npt.NDArray[np.float64]] = {}
        self._called_ns: int | None = None
        self._lines = np.zeros(len(BackstopLines._fields))
        # Cheapest concession first, ties in the order given (a stable sort).
        self._order = np.argsort([p.concession for p in pools], kind="stable")

    @property
    def pools(self) -> tuple[BackstopPool, ...]:
        """The pools, as given."""
        return self._pools

    @property
    def capital_left(self) -> npt.NDArray[np.float64]:
        """Quote capital each pool has not committed yet."""
        return self._left.copy()

    def lines(self) -> BackstopLines:
        """Cumulative lines since the network started."""
        return BackstopLines(*(float(x) for x in self._lines))

    def available(self, ts_ns: int) -> npt.NDArray[np.bool_]:
        """Which pools' capital has arrived at ``ts_ns`` (none before the first call)."""
        if self._called_ns is None:
            return np.zeros(len(self._pools), dtype=bool)
        waited = (ts_ns - self._called_ns) / NS_PER_S
        return np.array([waited >= p.latency_s for p in self._pools], dtype=bool)

    def _call(self, ts_ns: int) -> None:
        if isinstance(ts_ns, bool) or not isinstance(ts_ns, int):
            raise ValidationError("ts_ns", ts_ns, "must be an integer (nanoseconds)")
        if self._called_ns is None:
            self._called_ns = ts_ns
        elif ts_ns < self._called_ns:
            raise ValidationError(
                "ts_ns", ts_ns, f"must not precede the first call {self._called_ns}"
            )

    def absorb_flow(
        self, flow: float, index_price: float, *, ts_ns: int, asset: str = "asset"
    ) -> list[PoolTake]:
        """Take the other side of ``flow`` (base, signed: a forced sell < 0) at ``ts_ns``.

        Each available pool, cheapest first, takes what its capital allows at
        ``P (1 + s c)`` (``s`` the flow's side, ``c`` its concession: a forced sell is bought
        below the index, a forced buy sold above it); capital used is ``|q| P (1 + s c)``.
        Returns one :class:`PoolTake` per pool that took something.
        """
        _number("flow", flow)
        _number("index_price", index_price, low=0.0, strict=True)
        self._call(ts_ns)
        takes: list[PoolTake] = []
        if flow == 0.0:
            return takes
        side = 1.0 if flow > 0 else -1.0
        need = abs(flow)
        n = len(self._pools)
        inventory = self._inventory.setdefault(asset, np.zeros(n))
        cost = self._cost.setdefault(asset, np.zeros(n))
        arrived = self.available(ts_ns)
        for i in self._order.tolist():
            if need <= 0.0:
                break
            pool = self._pools[i]
            if not arrived[i] or self._left[i] <= 0.0:
                continue
            price = index_price * (1.0 + side * pool.concession)
            size = min(need, self._left[i] / price)
            capital = size * price
            self._left[i] -= capital
            # The pool's position is the flow's opposite: it buys a forced sell.
            inventory[i] -= side * size
            cost[i] -= side * capital
            self._lines[0] += capital
            self._lines[1] += size * index_price * pool.concession
            need -= size
            takes.append(PoolTake(pool.chain, -side * size, price, capital, 0.0))
        self._lines[4] += need * index_price
        return takes

    def cover_deficit(self, amount: float, *, ts_ns: int) -> list[PoolTake]:
        """Pay a bankruptcy deficit of ``amount`` (quote) from the available pools.

        A pool pays ``x`` of the deficit and the bridge fee ``x f`` on top, so it covers at most
        ``capital_left / (1 + f)``. What no pool covers stays on ``deficit_uncovered``.
        """
        _number("amount", amount, low=0.0)
        self._call(ts_ns)
        takes: list[PoolTake] = []
        need = float(amount)
        arrived = self.available(ts_ns)
        for i in self._order.tolist():
            if need <= 0.0:
                break
            pool = self._pools[i]
            if not arrived[i] or self._left[i] <= 0.0:
                continue
            paid = min(need, self._left[i] / (1.0 + pool.fee_rate))
            fee = paid * pool.fee_rate
            self._left[i] -= paid + fee
            self._lines[2] += paid
            self._lines[3] += fee
            need -= paid
            takes.append(PoolTake(pool.chain, 0.0, math.nan, paid + fee, fee))
        self._lines[5] += need
        return takes

    def inventory(self, prices: Mapping[str, float]) -> pd.DataFrame:
        """Per pool and asset taken: position (base), what it paid (quote), its value at
        ``prices`` and its profit (negative: the loss the backstop bears)."""
        frames = []
        for asset, position in self._inventory.items():
            if asset not in prices:
                raise ValidationError("prices", asset, "must price every asset the pools hold")
            price = float(prices[asset])
            _number(f"prices.{asset}", price, low=0.0, strict=True)
            value = position * price
            frames.append(
                pd.DataFrame(
                    {
                        "chain": [p.chain for p in self._pools],
                        "asset": asset,
                        "position": position,
                        "cost": self._cost[asset],
                        "value": value,
                        "profit": value - self._cost[asset],
                    }
                )
            )
        if not frames:
            return pd.DataFrame(columns=["chain", "asset", "position", "cost", "value", "profit"])
        return pd.concat(frames, ignore_index=True)


class BackstopLayer(RiskLayer):
    """The pools as a world's risk layer: they take forced flow before the shared book does
    (every venue's flow in an asset scaled by the share left) and, with ``cover_deficits``,
    pay the bad debt venues declare (absorbed on the venue's line in the world)."""

    name = "backstop"

    def __init__(
        self, network: BackstopNetwork, *, absorb_flow: bool = True, cover_deficits: bool = False
    ) -> None:
        self.network = network
        self.absorb_flow = bool(absorb_flow)
        self.cover_deficits = bool(cover_deficits)
        self._prices: dict[str, float] = {}

    def on_step_end(self, world: World, step: int, ts_ns: int) -> None:
        """Remember the shared prices (the pools' positions are valued at them)."""
        self._prices = dict(world.prices)

    def route_flow(
        self, world: World, asset: str, flows: Mapping[str, float], *, ts_ns: int
    ) -> dict[str, float]:
        """Let the pools take the asset's net flow; return each venue's flow scaled by the share
        left for the shared book."""
        total = math.fsum(flows.values())
        if not self.absorb_flow or total == 0.0:
            return dict(flows)
        takes = self.network.absorb_flow(total, world.prices[asset], ts_ns=ts_ns, asset=asset)
        absorbed = -math.fsum(t.size for t in takes)
        left = (total - absorbed) / total
        return {venue: flow * left for venue, flow in flows.items()}

    def panels(self) -> dict[str, pd.DataFrame]:
        """Report tables: the pools' lines and each pool's capital left."""
        lines = self.network.lines()
        pools = pd.DataFrame(
            {
                "chain": [p.chain for p in self.network.pools],
                "capacity": [p.capacity for p in self.network.pools],
                "latency_s": [p.latency_s for p in self.network.pools],
                "capital_left": self.network.capital_left,
            }
        )
        panels = {
            "Backstop lines (quote)": pd.DataFrame(
                {"line": list(BackstopLines._fields), "amount": list(lines)}
            ),
            "Backstop pools": pools,
        }
        if self._prices:
            # The pools' positions at the last shared prices: a negative profit is the
            # backstop's loss on the flow it took.
            panels["Backstop positions (at the last shared prices)"] = self.network.inventory(
                self._prices
            )
        return panels

    def route_deficit(self, world: World, deficit: Deficit) -> float:
        """Pay the venue's new bad debt from the pools that have arrived (when enabled)."""
        if not self.cover_deficits or deficit.bad_debt <= 0.0:
            return 0.0
        takes = self.network.cover_deficit(deficit.bad_debt, ts_ns=deficit.ts_ns)
        return float(math.fsum(t.capital - t.fee for t in takes))


def route_forced_flow(
    flows: npt.ArrayLike,
    index_prices: npt.ArrayLike,
    ts_ns: npt.ArrayLike,
    *,
    book: LiquidityModel,
    network: BackstopNetwork | None = None,
) -> pd.DataFrame:
    """Send a series of forced flow to the pools first and the rest to ``book``.

    ``network=None`` is the single book. Returns one row per step (:data:`ROUTING_COLUMNS`).
    The book is changed (its consumed depth); pass a fresh one per comparison arm.
    """
    q = np.asarray(flows, dtype=np.float64)
    p = np.asarray(index_prices, dtype=np.float64)
    t = np.asarray(ts_ns, dtype=np.int64)
    if q.ndim != 1 or q.shape != p.shape or q.shape != t.shape:
        raise ValidationError("flows", q.shape, "must match index_prices and ts_ns, one per step")
    if not np.all(np.isfinite(q)):
        raise ValidationError("flows", flows, "must be finite")
    if not np.all(np.isfinite(p) & (p > 0.0)):
        raise ValidationError("index_prices", index_prices, "must be finite and > 0")
    if np.any(np.diff(t) < 0):
        raise ValidationError("ts_ns", ts_ns, "must not go backwards")
    rows = np.full((q.size, len(ROUTING_COLUMNS)), np.nan)
    for k in range(q.size):
        ts, price, flow = int(t[k]), float(p[k]), float(q[k])
        takes = network.absorb_flow(flow, price, ts_ns=ts) if network is not None else []
        absorbed = -sum(take.size for take in takes)
        rest = flow - absorbed
        paid = sum(abs(take.size) * take.price for take in takes)
        concession = sum(abs(take.size) * abs(price - take.price) for take in takes)
        if abs(rest) > 0.0:
            fill = book.execute(1 if rest > 0 else -1, abs(rest), price, ts)
            paid += fill.notional
            rest_filled = fill.size
        else:
            book.recover(ts)
            rest_filled = 0.0
        filled = abs(absorbed) + rest_filled
        average = paid / filled if filled > 0.0 else math.nan
        rows[k] = (ts, price, flow, absorbed, rest, book.price_impact(ts), average, concession)
    frame = pd.DataFrame(rows, columns=list(ROUTING_COLUMNS))
    frame["ts_ns"] = t
    return frame


def _number(
    field: str,
    value: float,
    *,
    low: float | None = None,
    below: float | None = None,
    strict: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValidationError(field, value, "must be a number")
    if not math.isfinite(value):
        raise ValidationError(field, value, "must be finite")
    if low is not None and (value < low or (strict and value == low)):
        raise ValidationError(field, value, f"must be {'>' if strict else '>='} {low:g}")
    if below is not None and value >= below:
        raise ValidationError(field, value, f"must be < {below:g}")
