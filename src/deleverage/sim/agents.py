"""Agents of the cascade simulator besides the forced flow itself.

- **Liquidators** (latency and capital) live in the engine's risk step:
  :meth:`deleverage.engine.risk.RiskEngine.set_liquidators`; the runner configures them.
- **Arbitrageurs** pull the venue's book back toward the index: each market's, with finite
  capital, latency and cost, in :mod:`deleverage.sim.arbitrage` (``[markets.pricing.arbitrage]``);
  the scenario-wide ``speed_per_s`` adds a plain decay ``exp(-speed dt)`` of the dislocation.
- **Rebalancers** (here): isolated positions that top up margin from an outside reserve when
  their ratio ``MM / E`` reaches a trigger; each top-up is an engine margin move (an event).
- **Hedgers**: short perps hedged by a real spot leg, rebalanced to a target ratio in a spot
  market whose impact moves the index (:mod:`deleverage.sim.hedgers`); a squeeze or ADL can
  close the perp leg and leave the spot leg naked, and its sale is the second-order flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.bulk import add_isolated_margin_many
from deleverage.engine.levels import zone_prices
from deleverage.rules import margin as mm
from deleverage.sim.hedgers import SpotLegs, flow_frame, hedger_summary
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
        #: Per market, the hedgers' spot legs (None: no hedgers).
        self.spot_legs: list[SpotLegs | None] = [None] * len(hedgers)
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
        for m, ids in enumerate(hedgers):
            if len(ids) == 0:
                continue
            # Drawn after every other choice, so adding spot legs changes no earlier draw.
            sell_naked = cfg.hedgers.sell_naked
            sells = (
                np.ones(len(ids), dtype=np.bool_)
                if sell_naked >= 1.0
                else rng.random(len(ids)) < sell_naked
            )
            agents.spot_legs[m] = SpotLegs(
                sim, m, ids, cfg.hedgers, sells=sells, index0=float(sim.paths[0, m]),
                start_ns=sim.start_ns,
            )  # fmt: skip
        return agents

    def acting(self, m: int) -> bool:
        """Whether :meth:`after_step` can do anything in market ``m`` (rebalancers or hedgers
        there); without them it returns 0 top-ups."""
        return self.rebalancers[m] is not None or self.spot_legs[m] is not None

    def moves_index(self, m: int) -> bool:
        """Whether :meth:`index_factor` can be other than 1.0 in market ``m`` (spot legs)."""
        return self.spot_legs[m] is not None

    def index_factor(self, m: int, ts: int) -> float:
        """How the hedgers' spot flow moves market ``m``'s index now (1: not at all)."""
        legs = self.spot_legs[m]
        return legs.index_factor(ts) if legs is not None else 1.0

    def after_step(self, m: int, ts: int, *, index: float | None = None) -> int:
        """Run market ``m``'s agents after its risk step (hedgers trade spot at ``index``);
        return the number of rebalancer top-ups."""
        reb = self.rebalancers[m]
        done = reb.step(ts) if reb is not None else 0
        legs = self.spot_legs[m]
        if legs is not None and index is not None:
            legs.step(ts, index)
        return done

    def hedger_flow(self) -> pd.DataFrame:
        """The hedgers' spot trades per step (:data:`deleverage.sim.hedgers.FLOW_COLUMNS`)."""
        return flow_frame(self.spot_legs)

    def hedger_summary(self) -> dict[str, float]:
        """Totals of the hedgers' spot legs (``hedger_*`` keys of the run's summary)."""
        return hedger_summary(self.spot_legs)

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
