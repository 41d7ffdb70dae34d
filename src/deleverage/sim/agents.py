"""Agents of the cascade simulator besides the forced flow itself.

- **Liquidators** (latency and capital) live in the engine's risk step:
  :meth:`deleverage.engine.risk.RiskEngine.set_liquidators`; the runner configures them.
- **Arbitrageurs** pull the venue's book back toward the index: each market's, with finite
  capital, latency and cost, in :mod:`deleverage.sim.arbitrage` (``[markets.pricing.arbitrage]``);
  the scenario-wide ``speed_per_s`` adds a plain decay ``exp(-speed dt)`` of the dislocation.
- **Rebalancers** (here): isolated positions that top up margin from an outside reserve when
  their ratio ``MM / E`` reaches a trigger; each top-up is an engine margin move (an event).
- **Hedgers** (here): short perps hedged by spot of the same size. The engine sees only the
  perp leg; a squeeze can liquidate it and leave the spot leg naked, which the summary counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from deleverage.engine.bulk import add_isolated_margin_many
from deleverage.engine.levels import zone_prices
from deleverage.rules import margin as mm
from deleverage.sim.scenario import Scenario

if TYPE_CHECKING:
    from deleverage.sim.runner import Simulation

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Rebalancers:
    """Top-ups of one market's rebalancing positions (see :class:`~.scenario.RebalancerAgents`)."""

    def __init__(
        self, sim: Simulation, m: int, accounts: IntArray, reserve: FloatArray, spec: Scenario
    ) -> None:
        self.sim = sim
        self.m = m
        self.accounts = accounts
        self.reserve = reserve.astype(np.float64)
        cfg = spec.agents.rebalancers
        self.trigger = cfg.trigger_ratio
        self.top_up_fraction = cfg.top_up_fraction
        self.cooldown_ns = round(cfg.cooldown_s * 1e9)
        self.next_ok = np.full(len(accounts), np.iinfo(np.int64).min, dtype=np.int64)
        self._version = -1
        self._prices = np.zeros(len(accounts))
        self.total = 0.0

    def _trigger_prices(self) -> FloatArray:
        ex = self.sim.ex
        if self._version != ex.positions_version(self.m):
            cols = ex.columns(self.m)
            a = self.accounts
            self._prices = zone_prices(
                cols.size[a], cols.entry[a], cols.isolated_margin[a], self.trigger,
                ex.market(self.m).tiers,
            )  # fmt: skip
            self._version = ex.positions_version(self.m)
        return self._prices

    def step(self, ts: int) -> int:
        """Top up every position at or past its trigger; return how many were topped up."""
        if len(self.accounts) == 0:
            return 0
        ex = self.sim.ex
        mark = ex.market(self.m).mark
        prices = self._trigger_prices()
        cols = ex.columns(self.m)
        size = cols.size[self.accounts]
        hit = ((size > 0) & (prices >= mark)) | ((size < 0) & (prices <= mark))
        hit &= (self.reserve > 0) & (self.next_ok <= ts) & (cols.mode[self.accounts] != 0)
        k = np.flatnonzero(hit)
        if len(k) == 0:
            return 0
        a = self.accounts[k]
        notional = np.abs(size[k]) * mark
        amount = np.minimum(
            self.top_up_fraction * mm.maintenance_margin(notional, ex.market(self.m).tiers),
            self.reserve[k],
        )
        ok = amount > 0
        a, k, amount = a[ok], k[ok], amount[ok]
        if len(a) == 0:
            return 0
        ex.deposit_many(a, amount, ts_ns=ts)
        add_isolated_margin_many(ex, self.m, a, amount, ts_ns=ts)
        self.reserve[k] -= amount
        self.next_ok[k] = ts + self.cooldown_ns
        self.total += float(amount.sum())
        return len(a)


class Agents:
    """The per-market agents of a simulation."""

    def __init__(self, rebalancers: list[Rebalancers | None], hedgers: list[IntArray]) -> None:
        self.rebalancers = rebalancers
        self.hedgers = hedgers
        self._sim: Simulation | None = None

    @classmethod
    def build(cls, scenario: Scenario, sim: Simulation, rng: np.random.Generator) -> Agents:
        cfg = scenario.agents
        rebalancers: list[Rebalancers | None] = []
        hedgers: list[IntArray] = []
        for m, market in enumerate(scenario.markets):
            ids = sim.accounts[m]
            symbol = market.symbol
            pop = sim.populations.get(symbol)
            if pop is None or len(ids) == 0:
                rebalancers.append(None)
                hedgers.append(np.zeros(0, dtype=np.int64))
                continue
            frame = pop.frame
            iso = pop.isolated
            pick = iso & (rng.random(len(ids)) < cfg.rebalancers.fraction)
            reserve = frame["collateral"].to_numpy(dtype=np.float64)[pick]
            rebalancers.append(
                Rebalancers(sim, m, ids[pick], reserve * cfg.rebalancers.reserve_fraction, scenario)
                if pick.any()
                else None
            )
            size = frame["size"].to_numpy(dtype=np.float64)
            hedged = (size < 0) & (rng.random(len(ids)) < cfg.hedgers.fraction)
            hedgers.append(ids[hedged])
        agents = cls(rebalancers, hedgers)
        agents._sim = sim
        return agents

    def after_step(self, m: int, ts: int) -> int:
        """Run market ``m``'s agents after its risk step; return the number of top-ups."""
        reb = self.rebalancers[m]
        return reb.step(ts) if reb is not None else 0

    def hedgers_liquidated(self) -> int:
        """Hedged shorts whose perp leg was closed (fully or partly) by the engine."""
        sim = self._sim
        if sim is None:
            return 0
        count = 0
        for m, ids in enumerate(self.hedgers):
            if len(ids) == 0:
                continue
            pop = sim.populations[sim.scenario.markets[m].symbol]
            start = pop.frame["size"].to_numpy(dtype=np.float64)
            index = {int(a): i for i, a in enumerate(sim.accounts[m].tolist())}
            now = sim.ex.columns(m).size[ids]
            was = start[[index[int(a)] for a in ids.tolist()]]
            count += int(np.sum(np.abs(now) < np.abs(was) - 1e-12))
        return count
