"""Proactive margin and predictive deleveraging in a run, and whether they help.

:class:`PolicyPredictor` is the predictor a scenario with a ``proactive`` block needs
(:class:`deleverage.sim.scenario.ProactiveSpec`): every ``every_s`` seconds it records the
features of the step (:class:`~deleverage.predict.features.FeatureRecorder`, so only what the
venue sees then), predicts each open position's probability of liquidation within ``H`` (the
model file named by the scenario, or the analytic first-passage baseline) and the market's
cascade probability (``cascade_first_passage``), and reports them to the engine
(:meth:`~deleverage.engine.exchange.Exchange.report_risk`), whose policies act on them
(:mod:`deleverage.rules.proactive`).

:func:`evaluate_policy` runs a scenario on the same seeds with and without its ``proactive``
block and compares, per seed (``on - off``), with a Student-t interval over seeds
(``scipy.stats.t``):

- ``sudden_events``: steps in which the notional liquidated is at least ``sudden_share`` of the
  open-interest notional at the end of the previous step (docs/predict.md);
- ``liquidated_notional``, ``bad_debt`` (bad debt plus socialized loss), ``adl_notional``;
- the cost to traders: ``needless_reduction`` (notional closed by predictive deleveraging on
  accounts that the run without the policy never liquidated), ``policy_liquidations``
  (notional liquidated in the policy run on accounts that the run without it never liquidated:
  the raise itself pushed them under) and ``notices``.

A metric *improves* when the interval lies below zero, *worsens* when it lies above, and
otherwise the output says the policy shows no effect on it: a policy that does not help says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from deleverage.engine.bulk import add_isolated_margin_many
from deleverage.engine.events import EventKind, FillReason
from deleverage.errors import ValidationError
from deleverage.predict.features import FeatureConfig, FeatureRecorder
from deleverage.predict.models import TrainedModel, check_compatible, load_model
from deleverage.sim.runner import ProgressCallback, RunResult, Simulation, run
from deleverage.sim.scenario import Scenario
from deleverage.spec import MarginMode

FloatArray = npt.NDArray[np.float64]

#: Metrics of one run, ``on - off`` lower is better for all but ``notices``.
POLICY_METRICS: Final = (
    "sudden_events",
    "liquidated_notional",
    "bad_debt",
    "adl_notional",
    "needless_reduction",
    "policy_liquidations",
    "reduced_notional",
    "notices",
    "alerts",
    "alert_margin_added",
    "alert_reduced_notional",
)
#: Metrics that measure what the policy costs traders (or what they did on alerts).
_COSTS: Final = frozenset(POLICY_METRICS[4:])
#: Default share of open interest liquidated in one step that makes a sudden event.
DEFAULT_SUDDEN_SHARE: Final = 0.005


class PolicyPredictor:
    """Report predictions to the engine during a run (module docstring)."""

    def __init__(self, sim: Simulation, model: TrainedModel | None = None) -> None:
        spec = sim.scenario.proactive
        if spec is None:
            raise ValidationError("proactive", None, "must be set in the scenario to predict")
        config = FeatureConfig(
            horizon_s=spec.horizon_s, window_s=spec.window_s, sample_every_s=spec.every_s,
            cascade_level=spec.cascade_level,
        )  # fmt: skip
        if model is not None:
            check_compatible(model, label="liquidated", horizon_s=spec.horizon_s)
        self.sim = sim
        self.model = model
        self.recorder = FeatureRecorder(sim, config, seed=sim.scenario.seed)
        #: Every report: step, market, cascade probability, accounts reported.
        self.reports: list[tuple[int, int, float, int]] = []
        self.engine_policy = spec.margin is not None or spec.deleveraging is not None
        self.alerts = AlertTraders(sim) if spec.alerts is not None else None

    def __call__(self, k: int, m: int, record: dict[str, float]) -> None:
        self.recorder.last_sample = None
        self.recorder(k, m, record)
        sample = self.recorder.last_sample
        if sample is None:
            return
        self.recorder.forget_account_rows()  # keep only what the next sample needs
        _, accounts, rows, market_row = sample
        if self.model is None:
            probability = rows["first_passage_probability"]
        else:
            probability = self.model.predict_proba(pd.DataFrame(rows))
        cascade = float(market_row["cascade_first_passage"])
        ts = int(record["ts_ns"])
        if self.alerts is not None:
            self.alerts.react(m, accounts, probability, ts)
        if self.engine_policy:
            self.sim.ex.report_risk(
                m, cascade, accounts=accounts, probabilities=probability, ts_ns=ts
            )
        self.reports.append((k, m, cascade, len(accounts)))


class AlertTraders:
    """Traders who set an alert on their own predicted probability of liquidation, and react
    when it rises through their level (:class:`deleverage.sim.scenario.AlertReactions`).

    Which accounts set an alert is a draw from the scenario's seed (``share`` of the trader
    accounts open at the start), so runs with and without reactions differ only in them. A
    reaction goes through the engine's public operations: ``deposit`` and
    ``add_isolated_margin`` (isolated) for ``add_margin``, a ``trade`` against the book's
    makers at the book's price for ``reduce``.
    """

    def __init__(self, sim: Simulation) -> None:
        spec = sim.scenario.proactive
        assert spec is not None
        assert spec.alerts is not None
        self.sim = sim
        self.rule = spec.alerts
        rng = np.random.default_rng(np.random.SeedSequence(sim.scenario.seed, spawn_key=(19,)))
        n = sim.ex.n_accounts
        self.subscribed = rng.random(n) < self.rule.share
        self.above = np.zeros(n, dtype=bool)
        self.next_ok_ns = np.zeros(n, dtype=np.int64)
        self.alerts = 0
        self.reactions = 0
        self.added_margin = 0.0
        self.reduced_notional = 0.0

    def react(self, m: int, accounts: npt.NDArray[np.int64], p: FloatArray, ts: int) -> None:
        """Alert the subscribed accounts whose probability rose through the level; react."""
        known = accounts < len(self.subscribed)
        accounts, p = accounts[known], p[known]
        over = p >= self.rule.level
        crossed = over & ~self.above[accounts] & self.subscribed[accounts]
        self.above[accounts] = over
        chosen = accounts[crossed & (self.next_ok_ns[accounts] <= ts)]
        self.alerts += int(crossed.sum())
        if len(chosen) == 0:
            return
        self.next_ok_ns[chosen] = ts + int(self.rule.cooldown_s * 1e9)
        if self.rule.action == "add_margin":
            self._add_margin(m, chosen, ts)
        else:
            for a in chosen:
                self._reduce(m, int(a), ts)
        self.reactions += len(chosen)

    def _add_margin(self, m: int, accounts: npt.NDArray[np.int64], ts: int) -> None:
        ex = self.sim.ex
        value = ex.valuation(m)
        amount = self.rule.fraction * value["maintenance"][accounts]
        ok = amount > 0
        accounts, amount = accounts[ok], amount[ok]
        if len(accounts) == 0:
            return
        ex.deposit_many(accounts, amount, ts_ns=ts)
        isolated = ex.columns(m).mode[accounts] == MarginMode.ISOLATED
        if isolated.any():
            add_isolated_margin_many(ex, m, accounts[isolated], amount[isolated], ts_ns=ts)
        self.added_margin += float(amount.sum())

    def _reduce(self, m: int, a: int, ts: int) -> None:
        ex = self.sim.ex
        spec = ex.markets[m].spec
        held = float(ex.columns(m).size[a])
        qty = math.floor(abs(held) * self.rule.fraction / spec.lot_size + 1e-9) * spec.lot_size
        if qty <= 0.0 or ex.risk.halted(m):
            return
        side = 1 if held > 0 else -1
        book = self.sim.books[m]
        mark = ex.markets[m].mark
        # A market order on the venue's book: it consumes depth like any other order.
        mid = ex.risk.markets[m].book_price(mark)
        price = mark
        if book is not None:
            fill = book.execute(-side, qty, mid, ts)
            price = float(fill.vwap)
            qty = math.floor(float(fill.size) / spec.lot_size + 1e-9) * spec.lot_size
            if qty <= 0.0:
                return
        price = round(price / spec.tick_size) * spec.tick_size
        if price <= 0.0:
            return
        maker = ex.liquidity_account
        buyer, seller = (maker, a) if side > 0 else (a, maker)
        ex.trade(
            m, buyer=buyer, seller=seller, size=qty, price=price,
            taker="seller" if side > 0 else "buyer", ts_ns=ts,
        )  # fmt: skip
        self.reduced_notional += qty * price


def run_scenario(
    scenario: Scenario,
    *,
    feedback: bool | None = None,
    progress: ProgressCallback | None = None,
    keep_exchange: bool = False,
    model: TrainedModel | None = None,
) -> RunResult:
    """:func:`deleverage.sim.runner.run`, with the policies' predictor when the scenario has
    a ``proactive`` block (what ``deleverage run`` and the sweeps call).

    ``model`` overrides the scenario's ``proactive.model`` file (``None`` there: the baseline).
    """
    spec = scenario.proactive
    if spec is None:
        return run(scenario, feedback=feedback, progress=progress, keep_exchange=keep_exchange)
    if model is None and spec.model is not None:
        model = load_model(Path(spec.model))
    sim = Simulation(scenario, feedback=feedback)
    predictor = PolicyPredictor(sim, model)
    result = sim.run(progress=progress, keep_exchange=keep_exchange, predictor=predictor)
    alerts = predictor.alerts
    if alerts is not None:
        result.summary["alerts"] = float(alerts.alerts)
        result.summary["alert_reactions"] = float(alerts.reactions)
        result.summary["alert_margin_added"] = alerts.added_margin
        result.summary["alert_reduced_notional"] = alerts.reduced_notional
    return result


def run_proactive(scenario: Scenario, *, model: TrainedModel | None = None) -> RunResult:
    """Run a scenario whose ``proactive`` block is set, with its predictor (engine kept).

    ``model`` overrides the scenario's ``proactive.model`` file (``None`` there: the baseline).
    """
    if scenario.proactive is None:
        raise ValidationError("proactive", None, "must be set to run with the policies")
    return run_scenario(scenario, model=model, keep_exchange=True)


def run_metrics(
    result: RunResult,
    *,
    sudden_share: float = DEFAULT_SUDDEN_SHARE,
    liquidated_without: set[tuple[int, int]] | None = None,
) -> dict[str, float]:
    """The :data:`POLICY_METRICS` of one run.

    ``liquidated_without`` is the set of (market, account) liquidated in the same seed's run
    without the policy (for the cost to traders; ``None``: the run is that run).
    """
    steps = result.steps
    total = 0
    for _, frame in steps.groupby("market", observed=True):
        oi = (frame["open_interest"] * frame["mark"]).to_numpy()
        liquidated = frame["liquidated_notional"].to_numpy()
        previous = np.concatenate([[oi[0]], oi[:-1]])
        total += int(np.sum((previous > 0) & (liquidated >= sudden_share * previous)))
    table = result.journal.to_arrow()
    kind = table.column("kind").to_numpy()
    market = table.column("market").to_numpy()
    account = table.column("account").to_numpy()
    liq = kind == int(EventKind.LIQUIDATION)
    liquidated_now = set(zip(market[liq].tolist(), account[liq].tolist(), strict=True))
    size = np.abs(table.column("size").to_numpy())
    price = table.column("price").to_numpy()
    code = table.column("code").to_numpy()
    fills = (kind == int(EventKind.FILL)) & (code == int(FillReason.PREDICTIVE))
    # A predictive fill's reduced account is the one that is not the book's makers.
    maker = result.exchange.liquidity_account if result.exchange is not None else -1
    buyer = account[fills]
    seller = table.column("counterparty").to_numpy()[fills]
    reduced = np.where(buyer == maker, seller, buyer)
    notional = size[fills] * price[fills]
    before = liquidated_without if liquidated_without is not None else liquidated_now
    needless = float(
        sum(
            n
            for n, m_, a in zip(notional, market[fills], reduced, strict=True)
            if (int(m_), int(a)) not in before
        )
    )
    liq_notional = np.abs(table.column("size").to_numpy()[liq]) * price[liq]
    policy_liq = float(
        sum(
            n
            for n, m_, a in zip(liq_notional, market[liq], account[liq], strict=True)
            if (int(m_), int(a)) not in before
        )
    )
    summary = result.summary
    return {
        "sudden_events": float(total),
        "liquidated_notional": float(summary["liquidated_notional"]),
        "bad_debt": float(summary["bad_debt"] + summary["socialized_loss"]),
        "adl_notional": float(summary["adl_notional"]),
        "needless_reduction": needless,
        "policy_liquidations": policy_liq,
        "reduced_notional": float(notional.sum()),
        "notices": float(np.sum(kind == int(EventKind.MARGIN_NOTICE))),
        "alerts": float(summary.get("alerts", 0.0)),
        "alert_margin_added": float(summary.get("alert_margin_added", 0.0)),
        "alert_reduced_notional": float(summary.get("alert_reduced_notional", 0.0)),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyEffect:
    """One metric with and without the policy over the same seeds."""

    metric: str
    mean_off: float
    mean_on: float
    mean_difference: float
    low: float
    high: float
    verdict: str


def evaluate_policy(
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    model: TrainedModel | None = None,
    sudden_share: float = DEFAULT_SUDDEN_SHARE,
    confidence: float = 0.95,
    progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, list[PolicyEffect]]:
    """Run ``scenario`` with and without its ``proactive`` block on each seed and compare.

    Returns the per-run metrics (``seed``, ``policy`` in {"off", "on"}, :data:`POLICY_METRICS`)
    and one :class:`PolicyEffect` per metric.
    """
    if scenario.proactive is None:
        raise ValidationError("proactive", None, "must be set in the scenario to evaluate it")
    if len(seeds) < 2:
        raise ValidationError("seeds", list(seeds), "must name at least two seeds (an interval)")
    if not 0 < sudden_share < 1:
        raise ValidationError("sudden_share", sudden_share, "must be a share in (0, 1)")
    if model is None and scenario.proactive.model is not None:
        model = load_model(Path(scenario.proactive.model))
    rows = []
    for seed in seeds:
        on_scenario = scenario.with_overrides({"seed": int(seed)})
        off_scenario = Scenario.from_mapping({**on_scenario.to_toml_dict(), "proactive": None})
        off = Simulation(off_scenario).run(keep_exchange=True)
        off_metrics = run_metrics(off, sudden_share=sudden_share)
        table = off.journal.to_arrow()
        liq = table.column("kind").to_numpy() == int(EventKind.LIQUIDATION)
        before = set(
            zip(
                table.column("market").to_numpy()[liq].tolist(),
                table.column("account").to_numpy()[liq].tolist(),
                strict=True,
            )
        )
        on = run_proactive(on_scenario, model=model)
        on_metrics = run_metrics(on, sudden_share=sudden_share, liquidated_without=before)
        rows.append({"seed": int(seed), "policy": "off", **off_metrics})
        rows.append({"seed": int(seed), "policy": "on", **on_metrics})
        if progress is not None:
            progress(int(seed))
    frame = pd.DataFrame(rows)
    return frame, _effects(frame, confidence)


def _effects(frame: pd.DataFrame, confidence: float) -> list[PolicyEffect]:
    off = frame[frame["policy"] == "off"].set_index("seed")
    on = frame[frame["policy"] == "on"].set_index("seed")
    effects = []
    for metric in POLICY_METRICS:
        d = (on[metric] - off[metric]).to_numpy(np.float64)
        mean = float(d.mean())
        sem = float(stats.sem(d)) if len(d) > 1 else math.nan
        if sem > 0:
            low, high = (float(v) for v in stats.t.interval(confidence, len(d) - 1, mean, sem))
        else:
            low = high = mean
        if not np.any(d):
            verdict = "no change on any seed"
        elif metric in _COSTS:
            verdict = "cost to traders" if high > 0 else "no cost"
        elif high < 0:
            verdict = "improves"
        elif low > 0:
            verdict = "WORSENS"
        else:
            verdict = "no significant effect (does not help)"
        effects.append(
            PolicyEffect(
                metric=metric,
                mean_off=float(off[metric].mean()),
                mean_on=float(on[metric].mean()),
                mean_difference=mean,
                low=low,
                high=high,
                verdict=verdict,
            )
        )
    return effects


def policy_verdict(effects: Sequence[PolicyEffect]) -> str:
    """One sentence: does the policy help on the cascade metrics?"""
    targets = [e for e in effects if e.metric in ("sudden_events", "liquidated_notional",
                                                 "bad_debt", "adl_notional")]  # fmt: skip
    better = [e.metric for e in targets if e.verdict == "improves"]
    worse = [e.metric for e in targets if e.verdict == "WORSENS"]
    if better and not worse:
        return f"the policy HELPS: {', '.join(better)} lower with the interval below zero"
    if worse:
        return f"the policy does NOT help: {', '.join(worse)} higher with it"
    return "the policy does NOT help: no cascade metric changed beyond its interval"
