"""The scenario runner: one engine stepped over time, with the venue's prices.

Each market has three prices (docs/formulas.md, "Index, book and mark"): the **index** ``X_k``
(the exogenous path; a replayed history is the index), the venue's own **book** mid
``B = X (1 + d)`` that its forced flow moves, and its **mark**, which follows the venue's rule
(:mod:`deleverage.prices.marks`). Each step ``k`` (time ``t_k = k dt_s``) and each market:

1. the dislocation ``d`` left by earlier forced flow decays with the book's resilience
   (``2^(-dt / half_life)``, and ``exp(-speed dt)`` for the scenario-wide arbitrage speed),
   then arbitrageurs with finite capital, latency and cost trade it back toward the index
   (:mod:`deleverage.sim.arbitrage`);
2. the engine is marked at the venue's mark and runs its risk step on it (margin calls,
   liquidations, insurance, ADL): liquidations trigger on the mark and fill on the book, which
   walks from its own mid ``B``;
3. the liquidation fills of that step consumed depth ``x`` on the book: the book moves by its
   impact, ``B <- B (1 + G(x))``, the book is re-centred, and the engine is re-marked, which may
   liquidate the next layer: one *cascade round*; rounds repeat until a round liquidates nothing
   (or ``max_cascade_rounds``);
4. funding settles at each funding interval; rebalancers top up positions near liquidation.

With ``feedback=False`` (the counterfactual twin) the world is the same but forced flow neither
moves prices nor depletes the book: ``d = 0`` and the book is back at rest before every mark.

The engine is the same :class:`deleverage.engine.exchange.Exchange` used everywhere (no second
engine); the runner only chooses marks and book mids and calls its public operations. Results:
the journal and a per-step frame (:data:`STEP_COLUMNS`), with :attr:`RunResult.result_hash`
over both.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.events import Journal
from deleverage.engine.exchange import Exchange
from deleverage.errors import ConfigError
from deleverage.liquidity import LiquidityModel
from deleverage.sim import agents as agent_mod
from deleverage.sim.collateral import CollateralCoins
from deleverage.sim.depth import MarketDepth
from deleverage.sim.funding import funding_rates_from, load_funding_history, premium_funding_rate
from deleverage.sim.levers import MarketLevers
from deleverage.sim.oracle_feed import oracle_paths
from deleverage.sim.paths import data_warnings, scenario_paths
from deleverage.sim.population import Population, generate_population
from deleverage.sim.quiet import QuietStretches
from deleverage.sim.scenario import Scenario
from deleverage.sim.step_rows import add_reports as _add_reports
from deleverage.sim.step_rows import fund_by_step as _fund_by_step
from deleverage.sim.step_rows import max_drop as _max_drop
from deleverage.sim.venue_price import MIN_DISLOCATION, VenuePrice

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_NS = 1_000_000_000

#: Columns of :attr:`RunResult.steps`, one row per (step, market).
STEP_COLUMNS = (
    "step",  # step index k
    "t_s",  # seconds since the start
    "ts_ns",  # engine time, ns since the epoch
    "market",  # symbol
    "exogenous",  # exogenous price of the rest of the market, quote/base
    "index",  # the venue's index: weighted median of its sources (the exogenous price if none)
    "oracle",  # the venue's oracle as published (heartbeat, deviation, latency, OSM delay)
    "oracle_stale",  # 1 when the oracle's value in force is older than its stale_after_s
    "book",  # the venue's own book mid after the step's cascade, quote/base
    "mark",  # mark price after the step's cascade (the venue's rule), quote/base
    "impact",  # relative displacement of the mark, mark / exogenous - 1
    "dislocation",  # the book's displacement from the rest of the market, book / exogenous - 1
    "arbitrage_capital",  # capital the market's arbitrageurs have left, quote
    "depth_multiplier",  # the book's depth over its base depth (thinning and refill)
    "liquidations",  # liquidation closes in the step
    "liquidated_notional",  # quote
    "adl_notional",  # quote
    "adl_rounds",  # ADL rounds
    "insurance_fund",  # fund balance after the step, quote
    "bad_debt",  # cumulative bad debt declared, quote
    "socialized_loss",  # cumulative socialized loss, quote
    "open_interest",  # sum of traders' long sizes, base units
    "cascade_rounds",  # re-marks caused by forced flow in the step
    "margin_calls",  # margin calls issued in the step
    "under_collateralized",  # positions below maintenance left open after the step
    "funding_rate",  # rate settled in the step (NaN when none)
    "top_ups",  # rebalancer top-ups in the step
    "shortfall",  # loss beyond the collateral of positions closed in the step, quote
    "adl_loss",  # part of it taken from ADL counterparties in the step, quote
    "backstop_takeovers",  # positions the backstop vault took over in the step
    "backstop_loss",  # cumulative loss of the vault beyond the margin it took over, quote
    "backstop_pnl",  # the backstop vault's PnL after the step (equity - capital in), quote
)
#: A step's tallies (:meth:`Simulation._step_market`'s row), each starting at 0.
_ROW_KEYS = (
    "liquidations", "liquidated_notional", "adl_notional", "adl_rounds", "bad_debt",
    "socialized_loss", "cascade_rounds", "margin_calls", "top_ups", "shortfall", "adl_loss",
    "backstop_takeovers", "backstop_loss",
)  # fmt: skip
#: The per-step columns in the order of a row :meth:`Simulation._record` holds (all but the
#: market, which the frame adds).
_RECORD_COLUMNS = tuple(name for name in STEP_COLUMNS if name != "market")
#: Rows held before they are written (a day's marked steps: ~1,500; without stretches, every
#: step: the rows are written every this many).
_HOLD_ROWS = 2048
#: A step's row before its reports are added (copied: faster than ``dict.fromkeys``).
_ROW = dict.fromkeys(_ROW_KEYS, 0.0)
#: The columns of :data:`STEP_COLUMNS` held as int64 (counts, the step, the time).
_INT_COLUMNS = frozenset(
    {
        "step", "ts_ns", "liquidations", "adl_rounds", "cascade_rounds", "margin_calls",
        "under_collateralized", "top_ups", "backstop_takeovers", "oracle_stale",
    }
)  # fmt: skip


@dataclass
class RunResult:
    """What a run produced: the per-step frame, the journal and a few totals."""

    scenario: Scenario
    steps: pd.DataFrame
    journal: Journal
    summary: dict[str, float]
    populations: dict[str, Population] = field(default_factory=dict)
    exchange: Exchange | None = None
    wall_s: float = 0.0
    #: What the run noticed about its inputs (gaps in price files), one line each.
    warnings: list[str] = field(default_factory=list)
    #: Every account's total equity at the end of the run (quote, indexed by account id), read
    #: from the live engine, so losses need no replay of the journal.
    final_equity: npt.NDArray[np.float64] | None = None
    #: Per population (by symbol, as :attr:`populations`): its market id and the engine
    #: account id of each row, in row order.
    population_accounts: dict[str, tuple[int, npt.NDArray[np.int64]]] = field(default_factory=dict)
    #: The hedgers' spot trades per step (:data:`deleverage.sim.hedgers.FLOW_COLUMNS`): the
    #: second-order flow of perp legs liquidated or deleveraged; empty without hedgers.
    hedger_flow: pd.DataFrame | None = None
    #: The venue's sales of posted collateral (:data:`deleverage.sim.collateral.SALE_COLUMNS`).
    collateral_sales: pd.DataFrame | None = None
    #: Figures derived from the result once and reused (the analytics' cache).
    derived: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def result_hash(self) -> str:
        """SHA-256 over the per-step frame's values and the journal's events (not wall time)."""
        h = hashlib.sha256()
        h.update(pd.util.hash_pandas_object(self.steps, index=False).to_numpy().tobytes())
        table = self.journal.to_arrow()
        for column in table.columns:
            h.update(pd.util.hash_array(column.to_numpy(zero_copy_only=False)).tobytes())
        return h.hexdigest()

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``steps.parquet``, ``journal.parquet``, ``scenario.json``, ``summary.json``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "steps": out / "steps.parquet",
            "journal": out / "journal.parquet",
            "scenario": out / "scenario.json",
            "summary": out / "summary.json",
        }
        self.steps.to_parquet(paths["steps"], index=False)
        self.journal.write_parquet(paths["journal"])
        paths["scenario"].write_text(json.dumps(self.scenario.to_toml_dict(), indent=2))
        summary = {**self.summary, "result_hash": self.result_hash, "warnings": self.warnings}
        paths["summary"].write_text(json.dumps(summary, indent=2, default=float))
        return paths


ProgressCallback = Callable[[int, int], None]
#: Called after step ``k`` of market ``m`` is recorded: ``observer(k, m, record)`` with the
#: step's row of :data:`STEP_COLUMNS` (numbers only). An observer sees the engine as it is at the
#: end of the step (``Simulation.ex``), nothing later; it may call the engine's public
#: operations (a proactive policy reports its prediction there).
StepObserver = Callable[[int, int, dict[str, float]], None]


def run(
    scenario: Scenario,
    *,
    feedback: bool | None = None,
    progress: ProgressCallback | None = None,
    keep_exchange: bool = False,
    check_invariants: bool = False,
    observer: StepObserver | None = None,
    quiet: bool = True,
) -> RunResult:
    """Run ``scenario``; ``feedback`` overrides the scenario's switch (for comparisons).

    ``progress(done, total)`` is called every few hundred steps. Same scenario, same result
    (:attr:`RunResult.result_hash`). ``check_invariants`` makes the engine check money
    conservation after every operation and compare its indexed scans with full passes (slow;
    for tests). ``observer`` is called after every step of every market (:data:`StepObserver`).
    ``quiet=False`` runs every step one by one (no quiet stretches, :mod:`deleverage.sim.quiet`);
    the result is the same. An observer sees every step, so it runs without stretches.
    """
    sim = Simulation(scenario, feedback=feedback, check_invariants=check_invariants, quiet=quiet)
    return sim.run(progress=progress, keep_exchange=keep_exchange, observer=observer)


class Simulation:
    """A scenario set up on a fresh engine, ready to step (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        feedback: bool | None = None,
        check_invariants: bool = False,
        quiet: bool = True,
    ) -> None:
        self.scenario = scenario
        self.quiet_enabled = quiet
        self.quiet: QuietStretches | None = None
        self.feedback = scenario.feedback if feedback is None else feedback
        seeds = np.random.SeedSequence(scenario.seed).spawn(4)
        price_rng, pop_seq, agent_rng, engine_seed = (
            np.random.default_rng(seeds[0]),
            seeds[1],
            np.random.default_rng(seeds[2]),
            int(seeds[3].generate_state(1)[0]),
        )
        self.paths, self.start_ns = scenario_paths(scenario, price_rng)
        self.warnings = data_warnings(scenario)
        self.n_steps = len(self.paths) - 1
        self.ex = Exchange(seed=engine_seed, check_invariants=check_invariants)
        ex = self.ex
        self.specs = scenario.market_specs()
        self.books: list[LiquidityModel | None] = []
        self.depth: list[MarketDepth] = []
        for m, (market, spec) in enumerate(zip(scenario.markets, self.specs, strict=True)):
            ex.list_market(spec, ts_ns=self.start_ns)
            ex.set_mark(m, float(self.paths[0, m]), ts_ns=self.start_ns)
            depth = MarketDepth(
                market.liquidity, exogenous=self.paths[:, m], start_ns=self.start_ns,
                dt_s=scenario.dt_s,
            )  # fmt: skip
            self.depth.append(depth)
            book = depth.book
            ex.set_liquidity(m, book)
            self.books.append(book)
            if market.dynamic is not None:
                ex.set_dynamic_margin(m, MarketLevers(
                    market.dynamic, start_ns=self.start_ns,
                    depth_ratio=_depth_ratio(depth),
                ))  # fmt: skip
            liq = scenario.agents.liquidators
            ex.risk.set_liquidators(
                m,
                latency_s=liq.latency_s,
                capital_per_step=liq.capital * scenario.dt_s if math.isfinite(liq.capital)
                else math.inf,
                mark_interval_s=scenario.dt_s,
            )  # fmt: skip
        if scenario.insurance.fund > 0:
            ex.deposit(ex.insurance_account, scenario.insurance.fund, ts_ns=self.start_ns)
        if scenario.insurance.backstop > 0:
            ex.deposit(ex.backstop_account, scenario.insurance.backstop, ts_ns=self.start_ns)
        ex.risk.set_backstop(max_loss=scenario.insurance.backstop_max_loss)
        self.populations: dict[str, Population] = {}
        self.accounts: list[IntArray] = []
        self.market_symbols: dict[int, str] = {}
        pop_seeds = pop_seq.spawn(len(scenario.markets))
        shared_cross: IntArray | None = None
        for m, (market, spec) in enumerate(zip(scenario.markets, self.specs, strict=True)):
            if market.population_file is not None:
                pop = Population.from_parquet(market.population_file, market=spec)
            elif market.population is not None:
                pop = generate_population(
                    market.population,
                    spec,
                    reference_price=float(self.paths[0, m]),
                    rng=np.random.default_rng(pop_seeds[m]),
                )
            else:
                self.accounts.append(np.zeros(0, dtype=np.int64))
                continue
            self.populations[spec.symbol] = pop
            self.market_symbols[m] = spec.symbol
            reuse = shared_cross if scenario.multi_market_accounts else None
            ids = pop.load_into(ex, m, cross_accounts=reuse, ts_ns=self.start_ns)
            if scenario.multi_market_accounts:
                cross_ids = ids[~pop.isolated]
                if shared_cross is None or len(cross_ids) > len(shared_cross):
                    shared_cross = cross_ids
            self.accounts.append(ids)
        self.agents = agent_mod.Agents.build(scenario, self, agent_rng)
        self.collateral = CollateralCoins(self, agent_rng)
        self.oracles = [
            oracle_paths(market.pricing.oracle, self.paths[:, m], scenario.dt_s)
            for m, market in enumerate(scenario.markets)
        ]
        self.venue = [
            VenuePrice(market.pricing, market.pricing.rule(market.preset), dt_s=scenario.dt_s)
            for market in scenario.markets
        ]
        self.last_funding_rate = np.zeros(len(scenario.markets))
        self._index_factor = np.ones(len(scenario.markets))
        self._funding = self._funding_schedule()
        proactive = scenario.proactive
        if proactive is not None and (proactive.margin or proactive.deleveraging) is not None:
            for m in range(len(scenario.markets)):
                ex.set_proactive_policy(
                    m,
                    margin=proactive.margin,
                    deleveraging=proactive.deleveraging,
                )

    # ---------------------------------------------------------------- funding
    def _funding_schedule(self) -> list[tuple[float, FloatArray | None]]:
        """Per market: interval in seconds and the historical rates (None otherwise)."""
        out: list[tuple[float, FloatArray | None]] = []
        total_s = self.n_steps * self.scenario.dt_s
        for market in self.scenario.markets:
            f = market.funding
            rates = None
            if f.kind == "historical":
                history = load_funding_history(bundled=f.bundled, file=f.file)
                start = self.start_ns if f.start is None else int(pd.Timestamp(f.start).value)
                count = int(total_s // f.interval_s)
                try:
                    rates = funding_rates_from(history, start, max(count, 0))
                except Exception as exc:
                    raise ConfigError("funding.start", f.start, str(exc)) from None
            out.append((f.interval_s, rates))
        return out

    def _funding_rate(self, m: int, k_settle: int, mark: float, index: float) -> float | None:
        f = self.scenario.markets[m].funding
        if f.kind == "none":
            return None
        if f.kind == "constant":
            return f.rate
        if f.kind == "premium":
            return premium_funding_rate(mark, index, cap=f.cap)
        rates = self._funding[m][1]
        assert rates is not None
        return float(rates[k_settle]) if k_settle < len(rates) else None

    # ---------------------------------------------------------------- the loop
    def run(
        self,
        *,
        progress: ProgressCallback | None = None,
        keep_exchange: bool = False,
        observer: StepObserver | None = None,
        predictor: StepObserver | None = None,
    ) -> RunResult:
        """Step the scenario to its end (module docstring).

        ``observer`` and then ``predictor`` are called after every step of every market
        (:data:`StepObserver`); a scenario with a ``proactive`` block needs a ``predictor``
        that reports its predictions to the engine
        (``deleverage.predict.proactive.run_scenario`` supplies one).
        """
        started = time.perf_counter()
        scenario = self.scenario
        if scenario.proactive is not None and predictor is None:
            raise ConfigError(
                "proactive", "set", "needs a predictor: run the scenario with `deleverage run`, "
                "a sweep or deleverage.predict.proactive.run_scenario",
            )  # fmt: skip
        quiet_marks = self.ex.quiet_marks
        single_marks = quiet_marks.enabled
        # The objects alive when the run starts (the engine's, the loaded modules': hundreds of
        # thousands) are set apart from the cyclic collector for the run (``gc.freeze``), so
        # the collections that the run's own allocations trigger (~60 a day, now and then a
        # full one) walk what the run made, not the whole process (a full one cost ~0.14 s on
        # the isolated day). The collector keeps running: cycles that an agent, an observer or
        # a predictor leaves are still freed during the run. A process that froze objects of
        # its own (a pre-fork server) is left as it is.
        freezing = gc.get_freeze_count() == 0
        if freezing:
            gc.freeze()
        try:
            return self._run(started, progress, keep_exchange, observer, predictor)
        finally:  # the switch :meth:`_run` may turn off, back as it was, also when a run raises
            quiet_marks.enabled = single_marks
            if freezing:
                gc.unfreeze()

    def _run(
        self,
        started: float,
        progress: ProgressCallback | None,
        keep_exchange: bool,
        observer: StepObserver | None,
        predictor: StepObserver | None,
    ) -> RunResult:
        """:meth:`run` after its checks (``started``: its ``time.perf_counter()``)."""
        scenario = self.scenario
        ex = self.ex
        n_m = len(scenario.markets)
        n = self.n_steps + 1
        cols = {name: np.zeros((n, n_m)) for name in STEP_COLUMNS if name not in ("market",)}
        cols["funding_rate"][:] = np.nan
        dt = scenario.dt_s
        decay = np.ones(n_m)
        for m, book in enumerate(self.books):
            arb = math.exp(-scenario.agents.arbitrageurs.speed_per_s * dt)
            decay[m] = arb * (0.5 ** (dt / book.half_life_s) if book is not None else 1.0)
        # As floats for the venues: a NumPy scalar would make every dislocation, book mid and
        # mark one, and each would take ``set_mark``'s full price check (the same values).
        decays = decay.tolist()
        bad_debt = np.zeros(n_m)
        socialized = np.zeros(n_m)
        backstop_loss = np.zeros(n_m)
        next_funding = [interval for interval, _ in self._funding]
        settled = [0] * n_m
        oi = np.array([self._open_interest(m) for m in range(n_m)])
        report_every = max(1, self.n_steps // 200)
        watched = observer is not None or predictor is not None  # they see every step
        self.quiet = QuietStretches(self) if self.quiet_enabled and not watched else None
        # With stretches, the marks stepped one by one are those a stretch found not quiet:
        # the engine's single-mark quiet path (``Exchange.quiet_marks``; the same results
        # either way) would only look at them (one quiet mark in the isolated day's 7,359, for
        # ~15 ms of bands and probes). Off for the run (:meth:`run` restores it).
        quiet_marks = ex.quiet_marks
        if self.quiet is not None:
            quiet_marks.enabled = False
        # The agents and coins a marked step calls, where there are any (set at the start).
        agents, coins = self.agents, self.collateral
        with_coins = bool(coins.coins)
        acting = [agents.acting(m) for m in range(n_m)]
        moves_index = [self.feedback and (agents.moves_index(m) or with_coins) for m in range(n_m)]
        self._held: list[tuple[float, ...]] = []  # rows of ``_record`` not written yet
        self._held_at: list[tuple[int, int]] = []  # their (step, market)
        busy = False  # the last step liquidated or cascaded: the next one likely too
        k = 0
        while k < n:
            if self.quiet is not None and k > 0 and not busy:
                count = self.quiet.advance(
                    k, decay=decay, next_funding=next_funding, cols=cols,
                    totals=(bad_debt, socialized, backstop_loss, oi),
                )  # fmt: skip
                if count:  # steps k .. k + count - 1 applied in bulk by the quiet stretch
                    if progress is not None:
                        for j in range(k, k + count):
                            if j % report_every == 0 or j == n - 1:
                                progress(j, self.n_steps)
                    k += count
                    continue
            ts = self.start_ns + round(k * dt * _NS)
            t_s = k * dt
            # Margin calls alone do not make the next step busy: stretches make calls too.
            busy = False
            for m in range(n_m):
                x = float(self.paths[k, m])
                index = float(self.oracles[m].index_price[k])
                oracle = float(self.oracles[m].oracle_price[k])
                # The hedgers' spot sales move the index the venue watches (formulas §Hedgers).
                factor = (
                    agents.index_factor(m, ts) * coins.index_factor(m, ts)
                    if moves_index[m]
                    else 1.0  # what they give without spot legs or coins: 1.0 * 1.0
                )
                self._index_factor[m] = factor
                if factor != 1.0:
                    x, index, oracle = x * factor, index * factor, oracle * factor
                venue = self.venue[m]
                book = self.depth[m].start_step(k, ts)
                if book is not self.books[m]:
                    self.books[m] = book
                    ex.set_liquidity(m, book)
                if book is not None:
                    book.recover(ts)
                venue.start_step(
                    exogenous=x, index=index, oracle=oracle, t_s=t_s, decay=decays[m],
                    book=self.books[m], ts_ns=ts, first=k == 0,
                )  # fmt: skip
                left = (next_funding[m] - t_s) / self._funding[m][0]
                if with_coins:
                    coins.before_mark(m, index, ts)
                row = self._step_market(m, k, ts, (x, index, oracle), left)
                rate = None
                if t_s + 1e-9 >= next_funding[m] and k > 0:
                    next_funding[m] += self._funding[m][0]
                    rate = self._settle_funding(m, settled[m], index, ts, row)
                    settled[m] += 1
                venue.end_step()
                flow = row["liquidated_notional"] / x if self.feedback else 0.0
                self.depth[m].end_step(flow)
                row["top_ups"] = agents.after_step(m, ts, index=index) if acting[m] else 0
                if with_coins:
                    coins.after_step(ts)
                bad_debt[m] += row["bad_debt"]
                socialized[m] += row["socialized_loss"]
                backstop_loss[m] += row["backstop_loss"]
                oi[m] = self._open_interest(m)
                self._record(
                    cols, k, m, ts=ts, x=x, index=index, row=row, rate=rate,
                    totals=(bad_debt[m], socialized[m], backstop_loss[m], oi[m]),
                )  # fmt: skip
                # What the step's row of ``cols`` says (``_record`` wrote these three there).
                busy = busy or bool(
                    row["liquidations"] or row["cascade_rounds"] or row["adl_rounds"]
                )
                if observer is not None or predictor is not None:
                    self._write_records(cols)
                    record = {name: float(cols[name][k, m]) for name in cols}
                    if observer is not None:
                        observer(k, m, record)
                    if predictor is not None:
                        predictor(k, m, record)
            if progress is not None and (k % report_every == 0 or k == n - 1):
                progress(k, self.n_steps)
            k += 1
        self._write_records(cols)
        steps = self._frame(cols)
        wall = time.perf_counter() - started
        result = RunResult(
            scenario=scenario,
            steps=steps,
            journal=ex.journal,
            summary=self._summary(steps),
            populations=self.populations,
            exchange=ex if keep_exchange else None,
            wall_s=wall,
            warnings=list(self.warnings),
            final_equity=ex.total_equity(),
            hedger_flow=self.agents.hedger_flow(),
            collateral_sales=self.collateral.sales_frame(),
            population_accounts={
                symbol: (m, self.accounts[m])
                for m, symbol in self.market_symbols.items()
                if symbol in self.populations
            },
        )
        return result

    def _settle_funding(
        self, m: int, settled: int, index: float, ts: int, row: dict[str, float]
    ) -> float | None:
        """Settle market ``m``'s funding due at ``ts`` (its ``settled``-th payment); return the
        rate (None when the market has none) and add the risk step it ran to ``row``."""
        ex = self.ex
        rate = self._funding_rate(m, settled, ex.markets[m].mark, index)
        if rate is not None:
            self.last_funding_rate[m] = rate
            ex.settle_funding(m, rate, ts_ns=ts)
            self._add_report(row, ex.last_step)
        return rate

    def _record(
        self,
        cols: dict[str, FloatArray],
        k: int,
        m: int,
        *,
        ts: int,
        x: float,
        index: float,
        row: dict[str, float],
        rate: float | None,
        totals: tuple[float, float, float, float],
    ) -> None:
        """Write step ``k`` of market ``m`` into the per-step columns (:data:`STEP_COLUMNS`);
        ``totals`` are the cumulative bad debt, socialized loss, backstop loss and the open
        interest.

        The row is held (as a tuple in :data:`_RECORD_COLUMNS` order) and written with the
        rows held before it by :meth:`_write_records`, in bulk: ~30 scattered writes into
        cold columns one step at a time cost more than the row's values."""
        ex = self.ex
        venue = self.venue[m]
        risk = ex.risk
        bad_debt, socialized, backstop_loss, open_interest = totals
        oracles = self.oracles[m]
        exogenous = self.paths[k, m]  # the rest of the market, unmoved (float64, as stored)
        mark = ex.markets[m].mark
        self._held_at.append((k, m))
        self._held.append(
            (
                k,  # step
                k * self.scenario.dt_s,  # t_s
                ts,  # ts_ns
                exogenous,
                index,
                oracles.oracle_price[k] * float(self._index_factor[m]),  # oracle
                1.0 if oracles.stale[k] else 0.0,  # oracle_stale (a bool, as stored)
                venue.book_mid(x),  # book
                mark,
                mark / exogenous - 1.0,  # impact
                venue.dislocation,
                venue.arbitrageurs.capital,  # arbitrage_capital
                self.depth[m].multiplier,  # depth_multiplier
                row["liquidations"],
                row["liquidated_notional"],
                row["adl_notional"],
                row["adl_rounds"],
                ex.cash(ex.insurance_account_for(m)),  # insurance_fund
                bad_debt,
                socialized,  # socialized_loss
                open_interest,
                row["cascade_rounds"],
                row["margin_calls"],
                len(risk.markets[m].pending),  # under_collateralized (``pending_count``)
                np.nan if rate is None else rate,  # funding_rate
                row["top_ups"],
                row["shortfall"],
                row["adl_loss"],
                row["backstop_takeovers"],
                backstop_loss,
                risk.backstop_pnl(),  # backstop_pnl
            )
        )
        if len(self._held) >= _HOLD_ROWS:
            self._write_records(cols)

    def _write_records(self, cols: dict[str, FloatArray]) -> None:
        """Write the rows :meth:`_record` holds into ``cols`` (each value converted to float64
        as an item assignment converts it) and forget them."""
        held = self._held
        if not held:
            return
        at = np.array(self._held_at, dtype=np.int64)
        ks, ms = at[:, 0], at[:, 1]
        table = np.array(held, dtype=np.float64)
        for j, name in enumerate(_RECORD_COLUMNS):
            cols[name][ks, ms] = table[:, j]
        held.clear()
        self._held_at.clear()

    def _step_market(
        self, m: int, k: int, ts: int, prices: tuple[float, float, float], left: float
    ) -> dict[str, float]:
        """Mark market ``m`` at step ``k`` and run the cascade rounds; return the tallies.

        ``prices`` are the step's exogenous price, index and oracle (quote/base, the hedgers'
        and coins' factor applied); ``left`` is the fraction of the funding interval still to
        run (Binance's funding basis). They, and the last funding rate, hold through the
        step's rounds: only the book (the venue's dislocation) moves the mark between them.
        """
        ex = self.ex
        book = self.books[m]
        venue = self.venue[m]
        row = _ROW.copy()
        if not self.feedback and book is not None:
            book.restore({"consumed_depth": 0.0, "ts_ns": ts})  # the twin's book stays at rest
        x, index, oracle = prices
        mark_now = venue.marker(
            x, index=index, oracle=oracle, funding_rate=float(self.last_funding_rate[m]),
            time_left_fraction=left,
        )  # fmt: skip
        mark = mark_now()
        if k == 0 and mark == ex.markets[m].mark:
            return row
        # Each re-mark: the book's mid first (where there is a book), then the mark.
        set_mark = ex.set_mark
        set_mid = None if book is None else ex.set_book_mid
        mid_is_mark = venue.rule == "book"  # the mark is ``venue.book_mid(x)`` itself
        if set_mid is not None:
            set_mid(m, mark if mid_is_mark else venue.book_mid(x))
        set_mark(m, mark, ts_ns=ts)
        reports = [ex.last_step]  # added up once, in this order, at the end
        rounds = 0
        limit = self.scenario.max_cascade_rounds
        if self.feedback and book is not None:
            take = _impact_taker(book)
        else:
            take, limit = _no_impact, 0
        while rounds < limit:
            # The fills' impact moves the book's dislocation (the book back at rest).
            moved = take(ts)
            if moved != 0.0:
                venue.absorb(moved)
            if moved == 0.0 or venue.dislocation <= MIN_DISLOCATION:
                break
            rounds += 1
            mark = mark_now()
            set_mid(m, mark if mid_is_mark else venue.book_mid(x))  # type: ignore[misc]
            set_mark(m, mark, ts_ns=ts)
            report = ex.last_step
            reports.append(report)
            if report.liquidations == 0 and report.adl_rounds == 0:
                moved = take(ts)  # fills of that round still count
                if moved != 0.0:
                    venue.absorb(moved)
                    mark = mark_now()
                    set_mid(m, mark if mid_is_mark else venue.book_mid(x))  # type: ignore[misc]
                    set_mark(m, mark, ts_ns=ts)
                    reports.append(ex.last_step)
                break
        _add_reports(row, reports)
        row["cascade_rounds"] = rounds
        return row

    @staticmethod
    def _add_report(row: dict[str, float], report: Any) -> None:
        if report is None:
            return
        row["liquidations"] += report.liquidations
        row["liquidated_notional"] += report.liquidated_notional
        row["adl_notional"] += report.adl_notional
        row["adl_rounds"] += report.adl_rounds
        row["bad_debt"] += report.bad_debt
        row["socialized_loss"] += report.socialized_loss
        row["margin_calls"] += report.margin_calls
        row["shortfall"] += report.shortfall
        row["adl_loss"] += report.adl_loss
        row["backstop_takeovers"] += report.backstop_takeovers
        row["backstop_loss"] += report.backstop_loss

    def _open_interest(self, m: int) -> float:
        return self.ex.open_interest(m)

    def _frame(self, cols: dict[str, FloatArray]) -> pd.DataFrame:
        n, n_m = cols["step"].shape
        symbols = [s.symbol for s in self.specs]
        data: dict[str, Any] = {}
        for name in STEP_COLUMNS:
            if name == "market":  # rows step by step, the markets in order within a step
                codes = np.tile(np.arange(n_m, dtype=np.int8), n)
                data[name] = pd.Categorical.from_codes(codes, categories=symbols)
            elif name in _INT_COLUMNS:
                data[name] = cols[name].reshape(-1).astype(np.int64)
            else:
                data[name] = cols[name].reshape(-1)
        # The run's own arrays, not copied into one consolidated block: a 10^6-position day's
        # 86,400 x 22 float columns would be ~15 MB of fresh memory faulted in at its end.
        return pd.DataFrame(data, copy=False)

    def _summary(self, steps: pd.DataFrame) -> dict[str, float]:
        ex = self.ex
        n_m = len(self.specs)
        totals = ["bad_debt", "socialized_loss", "backstop_loss"]
        # Each market's last row, as ``groupby("market").tail(1)`` picks them (the frame holds
        # every step's markets in market order, ``_frame``): its last ``n_m`` rows, in order.
        last = steps[totals].iloc[len(steps) - n_m :]
        fund = _fund_by_step(steps, n_m)
        return {
            "steps": float(self.n_steps),
            "liquidations": float(steps["liquidations"].sum()),
            "liquidated_notional": float(steps["liquidated_notional"].sum()),
            "adl_notional": float(steps["adl_notional"].sum()),
            "adl_rounds": float(steps["adl_rounds"].sum()),
            "bad_debt": float(last["bad_debt"].sum()),
            "socialized_loss": float(last["socialized_loss"].sum()),
            "shortfall": float(steps["shortfall"].sum()),
            "backstop_takeovers": float(steps["backstop_takeovers"].sum()),
            "backstop_loss": float(last["backstop_loss"].sum()),
            "backstop_pnl_end": float(steps["backstop_pnl"].iloc[-1]) if len(steps) else 0.0,
            "insurance_fund_start": float(self.scenario.insurance.fund),
            "insurance_fund_min": float(fund.min()),
            "insurance_fund_end": float(fund.iloc[-1]),
            "cascade_rounds": float(steps["cascade_rounds"].sum()),
            "max_drawdown_mark": float(_max_drop(steps, "mark", n_m)),
            "max_drawdown_exogenous": float(_max_drop(steps, "exogenous", n_m)),
            "under_collateralized_s": float(ex.risk.under_collateralized_s),
            "top_ups": float(steps["top_ups"].sum()),
            "oracle_stale_s": float(steps["oracle_stale"].sum() * self.scenario.dt_s),
            "hedgers_liquidated": float(self.agents.hedgers_liquidated()),
            **self.agents.hedger_summary(),
            **self.collateral.summary(),
            "positions": float(sum(len(a) for a in self.accounts)),
        }


def _impact_taker(book: LiquidityModel) -> Callable[[int], float]:
    """The cascade round's take of ``book``'s impact at a time: ``G`` (a float) and, where
    it is not 0, the book back at rest (``restore`` of zero consumed depth at that time).

    The simulator's books do both in one call (``take_impact``); another model, by the
    protocol's ``price_impact`` and ``restore``."""
    take: Callable[[int], float] | None = getattr(book, "take_impact", None)
    if take is not None:
        return take

    def take_protocol(ts: int) -> float:
        moved = float(book.price_impact(ts))
        if moved != 0.0:
            book.restore({"consumed_depth": 0.0, "ts_ns": ts})
        return moved

    return take_protocol


def _no_impact(ts: int) -> float:
    """No round without feedback or a book: nothing is taken."""
    return 0.0


def _depth_ratio(depth: MarketDepth) -> Callable[[], float]:
    """The market's depth over its base depth, read when the levers ask."""
    return lambda: depth.multiplier
