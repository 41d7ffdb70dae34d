"""Stress metrics of a simulated run: does the venue survive the cascade, and what did it cost?

A run of :func:`deleverage.sim.runner.run` leaves a per-step frame (one row per step and
market, :data:`deleverage.sim.runner.STEP_COLUMNS`) and the engine's journal. The functions
here turn them into the figures a risk desk asks about after a crash:

- **liquidations**: total notional force-closed, and its peak per step and per minute (minute
  buckets ``floor(t_s / 60)``, like one-minute bars);
- **losses the venue could not pass on**: bad debt (cumulative, after fund and ADL) and
  socialized loss;
- **the insurance fund**: minimum, and maximum drawdown ``max_t (peak_t - fund_t)`` in quote and
  as a fraction of the running peak;
- **ADL**: rounds and notional, and the *overshoot*: from the journal's ``AdlRound`` notices,
  the profit taken from the deleveraged traders beyond the shortfall the round had to cover,
  ``sum(profit_taken - shortfall)``, and the notional closed beyond the shortest queue prefix
  that covered it, ``sum(notional_closed - notional_required)`` (Chitra, arXiv:2512.01112);
- **cascade amplification**: the mark's maximum drawdown with price feedback over the drawdown
  of the same population on the exogenous path alone (the run's ``feedback=False`` twin):
  ``A = DD(mark | feedback) / DD(mark | no feedback)``; 1 when forced flow did not deepen the
  fall (the linear-book value is ``1 / (1 - k)``, :mod:`deleverage.analytics.criticality`);
  with the twin also the liquidation and ADL amplifications (notional over the twin's) and the
  twin's shortfall; the twin is the same world in which forced flow neither moves prices nor
  depletes the book;
- **dislocation**: the largest fall of the venue's book below its index;
- **time under-collateralized**: position-seconds spent under maintenance waiting for a
  liquidator (the run's ``under_collateralized_s``), and the most positions waiting at once;
- **losses across accounts**: per trader account, net deposits minus final equity
  (:func:`account_losses`), summarized by :func:`loss_distribution`.

Every function but :func:`run_account_losses` and :func:`stress_metrics` (which read a
:class:`~deleverage.sim.runner.RunResult`) is pure over frames and arrays.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.events import EventKind
from deleverage.engine.state import AccountKind
from deleverage.errors import DataError, ValidationError

if TYPE_CHECKING:
    from deleverage.sim.runner import RunResult

__all__ = [
    "AdlOvershoot",
    "LossDistribution",
    "StressMetrics",
    "account_losses",
    "adl_overshoot",
    "cascade_amplification",
    "fund_series",
    "liquidation_peaks",
    "loss_distribution",
    "max_drawdown",
    "max_drawdown_amount",
    "metrics_table",
    "run_account_losses",
    "stress_metrics",
    "verdict",
]

FloatArray = npt.NDArray[np.float64]
SECONDS_PER_MINUTE = 60.0


def _values(field: str, values: npt.ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(field, values, "must be numeric") from None
    if arr.ndim != 1:
        raise ValidationError(field, arr.shape, "must be a 1-D array")
    bad = ~np.isfinite(arr)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"{field}[{k}]", float(arr[k]), "must be finite")
    return arr


def _columns(field: str, frame: pd.DataFrame, needed: tuple[str, ...]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(field, type(frame).__name__, "must be a pandas DataFrame")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValidationError(field, missing, f"must have the columns {list(needed)}")


# ---------------------------------------------------------------------------- drawdowns
def max_drawdown(values: npt.ArrayLike) -> float:
    """Largest peak-to-trough fall as a fraction of the peak: ``max_t (1 - v_t / max_{s<=t} v_s)``.

    Parameters
    ----------
    values
        A path of positive values (prices, a fund balance), 1-D.

    Returns
    -------
    float
        In ``[0, 1]``; 0 for an empty or never-falling path.

    Examples
    --------
    >>> max_drawdown([100.0, 120.0, 90.0, 130.0, 117.0])
    0.25
    """
    v = _values("values", values)
    if v.size == 0:
        return 0.0
    if np.any(v <= 0.0):
        k = int(np.flatnonzero(v <= 0.0)[0])
        raise ValidationError(f"values[{k}]", float(v[k]), "must be > 0")
    peak = np.maximum.accumulate(v)
    return float(np.max(1.0 - v / peak))


def max_drawdown_amount(values: npt.ArrayLike) -> float:
    """Largest peak-to-trough fall in the values' unit: ``max_t (max_{s<=t} v_s - v_t)``.

    Examples
    --------
    >>> max_drawdown_amount([100.0, 120.0, 90.0, 130.0, 117.0])
    30.0
    """
    v = _values("values", values)
    if v.size == 0:
        return 0.0
    return float(np.max(np.maximum.accumulate(v) - v))


def cascade_amplification(drawdown_with_feedback: float, drawdown_without: float) -> float:
    """``A = DD_feedback / DD_exogenous``: how much forced flow deepened the fall.

    Returns 1 when neither path fell, ``inf`` when only the feedback path fell.

    Examples
    --------
    >>> cascade_amplification(0.25, 0.125)
    2.0
    """
    with_fb = float(drawdown_with_feedback)
    without = float(drawdown_without)
    for name, value in (("drawdown_with_feedback", with_fb), ("drawdown_without", without)):
        if not math.isfinite(value) or value < 0.0:
            raise ValidationError(name, value, "must be a finite number >= 0")
    if without == 0.0:
        return 1.0 if with_fb == 0.0 else math.inf
    return with_fb / without


# ---------------------------------------------------------------------------- per-step frame
def fund_series(steps: pd.DataFrame) -> pd.Series:
    """Insurance fund balance after each step (quote), indexed by step.

    The runner's engine shares one fund across its markets, so every market's row of a step
    holds the same balance; the first is taken.
    """
    _columns("steps", steps, ("step", "insurance_fund"))
    series: pd.Series = steps.groupby("step", sort=True)["insurance_fund"].first()
    return series


def liquidation_peaks(
    steps: pd.DataFrame, *, window_s: float = SECONDS_PER_MINUTE
) -> tuple[float, float, float]:
    """Total liquidated notional, its peak in one step and its peak in one window (quote).

    The window peak adds the notional of all markets over the buckets ``floor(t_s / window_s)``
    (calendar minutes by default) and takes the largest bucket.

    Returns
    -------
    tuple of float
        ``(total, peak per step, peak per window)``.

    Examples
    --------
    >>> steps = pd.DataFrame({"step": [0, 1, 2, 3], "t_s": [0.0, 30.0, 60.0, 90.0],
    ...                       "liquidated_notional": [0.0, 5.0, 4.0, 3.0]})
    >>> liquidation_peaks(steps)
    (12.0, 5.0, 7.0)
    """
    _columns("steps", steps, ("step", "t_s", "liquidated_notional"))
    width = float(window_s)
    if not math.isfinite(width) or width <= 0.0:
        raise ValidationError("window_s", window_s, "must be a finite number > 0")
    if len(steps) == 0:
        return 0.0, 0.0, 0.0
    notional = steps["liquidated_notional"].to_numpy(dtype=np.float64)
    per_step = pd.Series(notional).groupby(steps["step"].to_numpy()).sum()
    bucket = np.floor(steps["t_s"].to_numpy(dtype=np.float64) / width)
    per_window = pd.Series(notional).groupby(bucket).sum()
    return float(notional.sum()), float(per_step.max()), float(per_window.max())


# ---------------------------------------------------------------------------- ADL
class AdlOvershoot(NamedTuple):
    """ADL rounds of a journal and what they took beyond what solvency required (quote)."""

    rounds: int
    notional_closed: float  # sum of the rounds' notional closed
    notional_required: float  # sum of the shortest queue prefixes that covered each shortfall
    notional_overshoot: float  # notional_closed - notional_required
    profit_taken: float  # profit of the closed portions, at the mark
    shortfall: float  # bad debt the rounds had to cover
    excess_profit: float  # profit_taken - shortfall


def adl_overshoot(journal: pd.DataFrame) -> AdlOvershoot:
    """Add up the metrics the engine wrote on each ``AdlRound`` notice (its JSON ``text``).

    ``notional_overshoot = sum(notional_closed - notional_required)`` and
    ``excess_profit = sum(profit_taken - shortfall)`` over the rounds; per-round definitions in
    :func:`deleverage.rules.adl.adl_round_metrics`.

    Parameters
    ----------
    journal
        A journal frame (:meth:`deleverage.engine.events.Journal.to_frame`, or its Arrow table as
        pandas) with the ``kind`` and ``text`` columns.

    Raises
    ------
    ValidationError
        If a column is missing or an ADL round's text is not the engine's JSON metrics.

    Examples
    --------
    >>> text = ('{"notional_closed": 1000.0, "notional_required": 800.0, '
    ...         '"profit_taken": 120.0, "shortfall": 100.0}')
    >>> adl_overshoot(pd.DataFrame({"kind": [21, 5], "text": [text, ""]})).notional_overshoot
    200.0
    """
    _columns("journal", journal, ("kind", "text"))
    texts = journal.loc[journal["kind"].to_numpy() == int(EventKind.ADL_ROUND), "text"]
    totals = dict.fromkeys(
        ("notional_closed", "notional_required", "profit_taken", "shortfall"), 0.0
    )
    for i, text in enumerate(texts.tolist()):
        try:
            data = json.loads(text)
            values = {key: float(data[key]) for key in totals}
        except (ValueError, KeyError, TypeError):
            raise ValidationError(
                f"journal.text[ADL round {i}]", text, f"must be JSON with {list(totals)}"
            ) from None
        for key, value in values.items():
            totals[key] += value
    return AdlOvershoot(
        rounds=len(texts),
        notional_closed=totals["notional_closed"],
        notional_required=totals["notional_required"],
        notional_overshoot=totals["notional_closed"] - totals["notional_required"],
        profit_taken=totals["profit_taken"],
        shortfall=totals["shortfall"],
        excess_profit=totals["profit_taken"] - totals["shortfall"],
    )


# ---------------------------------------------------------------------------- losses
def account_losses(journal: pd.DataFrame, final_equity: npt.ArrayLike) -> pd.DataFrame:
    """Loss of each trader account: net deposits minus final equity (quote, > 0 a loss).

    Trader accounts are those the journal opened with kind ``TRADER``; net deposits are their
    ``DEPOSIT`` amounts less their ``WITHDRAWAL`` amounts (collateral top-ups included).
    ``loss = net_deposits - final_equity``: what the trader put in and did not get back
    (fees, liquidation penalties, trading losses; a negative equity left as bad debt counts in
    full).

    Parameters
    ----------
    journal
        Journal frame with ``kind``, ``account``, ``amount`` and ``code`` columns.
    final_equity
        Total equity of every account at the end, indexed by account id (cash + isolated
        margin + unrealized PnL, e.g. ``Exchange.margin_state()["total_equity"]``).

    Returns
    -------
    pandas.DataFrame
        Columns ``account``, ``net_deposits``, ``final_equity``, ``loss``; one row per trader
        account, by account id.

    Examples
    --------
    >>> journal = pd.DataFrame({
    ...     "kind": [1, 1, 3, 3, 4], "account": [0, 1, 1, 0, 1],
    ...     "amount": [0.0, 0.0, 100.0, 50.0, 10.0], "code": [2, 0, 0, 0, 0]})
    >>> account_losses(journal, [60.0, 30.0]).values.tolist()
    [[1.0, 90.0, 30.0, 60.0]]
    """
    _columns("journal", journal, ("kind", "account", "amount", "code"))
    equity = _values("final_equity", final_equity)
    kind = journal["kind"].to_numpy()
    account = journal["account"].to_numpy(dtype=np.int64)
    opened = kind == int(EventKind.ACCOUNT_OPENED)
    traders = np.unique(account[opened & (journal["code"].to_numpy() == int(AccountKind.TRADER))])
    if traders.size and traders.max() >= equity.size:
        raise ValidationError(
            "final_equity", equity.size, f"must hold an entry for account {int(traders.max())}"
        )
    amount = journal["amount"].to_numpy(dtype=np.float64)
    sign = np.where(kind == int(EventKind.DEPOSIT), 1.0, 0.0)
    sign = np.where(kind == int(EventKind.WITHDRAWAL), -1.0, sign)
    moved = sign != 0.0
    net = np.zeros(max(equity.size, 1))
    np.add.at(net, account[moved], sign[moved] * amount[moved])
    deposits = net[traders]
    final = equity[traders]
    return pd.DataFrame(
        {
            "account": traders.astype(np.int64),
            "net_deposits": deposits,
            "final_equity": final,
            "loss": deposits - final,
        }
    )


class LossDistribution(NamedTuple):
    """How losses spread over accounts (quote; a negative loss is a gain)."""

    accounts: int
    losers: int  # accounts with a loss > 0
    total_loss: float  # sum of the positive losses
    mean: float
    median: float
    p90: float
    p99: float
    max: float
    top_1pct_share: float  # share of total_loss borne by the largest ceil(1%) of accounts


def loss_distribution(losses: npt.ArrayLike) -> LossDistribution:
    """Summarize per-account losses: count, total, mean, quantiles, concentration.

    Quantiles are linear-interpolated (numpy's default). ``top_1pct_share`` is the positive
    loss of the ``ceil(0.01 n)`` largest losers over ``total_loss`` (0 when nobody lost).

    Examples
    --------
    >>> d = loss_distribution([10.0, -5.0, 0.0, 35.0])
    >>> d.losers, d.total_loss, d.mean, d.median, d.top_1pct_share
    (2, 45.0, 10.0, 5.0, 0.7777777777777778)
    """
    v = _values("losses", losses)
    n = int(v.size)
    if n == 0:
        return LossDistribution(0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    positive = np.maximum(v, 0.0)
    total = float(positive.sum())
    top = math.ceil(0.01 * n)
    top_sum = float(np.sort(positive)[::-1][:top].sum())
    p90, p99 = np.quantile(v, [0.9, 0.99])
    return LossDistribution(
        accounts=n,
        losers=int(np.count_nonzero(v > 0.0)),
        total_loss=total,
        mean=float(v.mean()),
        median=float(np.median(v)),
        p90=float(p90),
        p99=float(p99),
        max=float(v.max()),
        top_1pct_share=top_sum / total if total > 0.0 else 0.0,
    )


def run_account_losses(result: RunResult, *, replay: bool = False) -> pd.DataFrame:
    """:func:`account_losses` of a run, from the run's own journal and final equity.

    The final equity is the run's (:attr:`RunResult.final_equity`, or the kept exchange's); a
    result without either (built by hand) is rebuilt by replaying the journal only when asked
    with ``replay=True`` (:meth:`deleverage.engine.exchange.Exchange.replay`). The frame is
    computed once per result and reused.

    Raises
    ------
    DataError
        If the result carries no final equity and ``replay`` is False.
    """
    cached = result.derived.get("account_losses")
    if cached is not None:
        return cast(pd.DataFrame, cached)
    if result.exchange is not None:
        equity = result.exchange.margin_state()["total_equity"]
    elif result.final_equity is not None:
        equity = result.final_equity
    elif replay:
        from deleverage.engine.exchange import Exchange

        equity = Exchange.replay(result.journal).margin_state()["total_equity"]
    else:
        raise DataError(
            "result.final_equity",
            None,
            "is missing: pass replay=True to rebuild the final equity from the journal",
        )
    losses = account_losses(result.journal.to_frame(), equity)
    result.derived["account_losses"] = losses
    return losses


# ---------------------------------------------------------------------------- all of them
@dataclass(frozen=True, slots=True)
class StressMetrics:
    """The stress figures of a run (quote, fractions, seconds; NaN where not measured)."""

    scenario: str
    steps: int
    positions: int
    liquidations: int
    liquidated_notional: float
    peak_liquidated_notional_step: float
    peak_liquidated_notional_minute: float
    bad_debt: float
    socialized_loss: float
    shortfall: float  # loss beyond the collateral of closed positions, all lines together
    backstop_takeovers: int
    backstop_loss: float  # the vault's loss beyond the margin it took over
    backstop_pnl_end: float  # the vault's PnL at the end (equity - capital in)
    backstop_pnl_min: float  # its worst PnL over the run (marked to market)
    insurance_fund_start: float
    insurance_fund_min: float
    insurance_fund_end: float
    insurance_fund_max_drawdown: float  # quote
    insurance_fund_max_drawdown_fraction: float
    adl_rounds: int
    adl_notional: float
    adl_notional_overshoot: float
    adl_excess_profit: float
    max_drawdown_mark: float
    max_drawdown_exogenous: float
    max_drawdown_no_feedback: float  # the baseline run's mark; NaN without one
    cascade_amplification: float  # DD(mark) / DD(no feedback), or / DD(exogenous)
    liquidation_amplification: float  # liquidated notional / the baseline's; NaN without one
    baseline_liquidated_notional: float
    baseline_bad_debt: float
    adl_amplification: float  # ADL notional / the baseline's; NaN without one
    baseline_adl_notional: float
    baseline_shortfall: float  # the baseline's loss beyond collateral; NaN without one
    max_dislocation: float  # largest fall of the venue's book below its index, fraction
    cascade_rounds: int
    max_cascade_rounds_step: int
    under_collateralized_s: float  # position-seconds under maintenance, waiting
    under_collateralized_peak: int  # most positions waiting at once
    losers: int
    total_account_loss: float
    mean_account_loss: float
    median_account_loss: float
    p99_account_loss: float
    max_account_loss: float
    top_1pct_loss_share: float
    #: Hedgers' spot legs (sim/hedgers.py): how many, the spot they sold when their short was
    #: liquidated or deleveraged (the second-order flow, quote), and those left unhedged.
    hedgers: int = 0
    hedger_spot_sold_notional: float = 0.0
    hedgers_unhedged: int = 0
    #: Posted collateral (sim/collateral.py): the venue's sales and their quote proceeds.
    collateral_accounts: int = 0
    collateral_sales: int = 0
    collateral_sold_notional: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The metrics as a dict; non-finite floats become ``None`` (JSON has no NaN)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            finite = not isinstance(value, float) or math.isfinite(value)
            out[key] = value if finite else None
        return out


def stress_metrics(
    result: RunResult,
    baseline: RunResult | None = None,
    *,
    losses: pd.DataFrame | None = None,
) -> StressMetrics:
    """Every stress figure of ``result`` (see the module docstring).

    Parameters
    ----------
    result
        The run (normally with feedback).
    baseline
        The same scenario run with ``feedback=False``: gives the cascade amplification against
        its mark and the liquidation amplification. Without it, the amplification uses the
        run's own exogenous path (the same path) and the baseline figures are NaN.
    losses
        Per-account losses (:func:`account_losses`); computed from the run when omitted.
    """
    steps = result.steps
    summary = result.summary
    total, peak_step, peak_minute = liquidation_peaks(steps)
    fund = fund_series(steps).to_numpy(dtype=np.float64)
    fund_start = float(summary.get("insurance_fund_start", fund[0] if fund.size else 0.0))
    fund_path = np.concatenate(([fund_start], fund))
    fund_dd = max_drawdown_amount(fund_path)
    fund_peak = np.maximum.accumulate(fund_path)
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.where(fund_peak > 0.0, 1.0 - fund_path / fund_peak, 0.0)
    last = steps.groupby("market", observed=True).tail(1)
    overshoot = adl_overshoot(result.journal.to_frame())
    dd_mark = _max_drop(steps, "mark")
    dd_exo = _max_drop(steps, "exogenous")
    dd_base, base_notional, base_bad_debt, base_adl, base_shortfall = _baseline_figures(baseline)
    liq_amp = adl_amp = math.nan
    if baseline is not None:
        liq_amp = _ratio(total, base_notional)
        adl_amp = _ratio(float(steps["adl_notional"].sum()), base_adl)
    amplification = cascade_amplification(dd_mark, dd_exo if baseline is None else dd_base)
    if losses is None:
        losses = run_account_losses(result)
    dist = loss_distribution(losses["loss"].to_numpy(dtype=np.float64))
    per_step_rounds = steps.groupby("step")["cascade_rounds"].sum()
    return StressMetrics(
        scenario=result.scenario.name,
        steps=int(steps["step"].max()) if len(steps) else 0,
        positions=int(summary.get("positions", dist.accounts)),
        liquidations=int(steps["liquidations"].sum()),
        liquidated_notional=total,
        peak_liquidated_notional_step=peak_step,
        peak_liquidated_notional_minute=peak_minute,
        bad_debt=float(last["bad_debt"].sum()),
        socialized_loss=float(last["socialized_loss"].sum()),
        shortfall=float(steps["shortfall"].sum()) if "shortfall" in steps else math.nan,
        backstop_takeovers=int(steps["backstop_takeovers"].sum())
        if "backstop_takeovers" in steps
        else 0,
        backstop_loss=float(last["backstop_loss"].sum()) if "backstop_loss" in steps else math.nan,
        backstop_pnl_end=_series_end(steps, "backstop_pnl"),
        backstop_pnl_min=min(0.0, float(steps["backstop_pnl"].min()))
        if "backstop_pnl" in steps and len(steps)
        else math.nan,
        insurance_fund_start=fund_start,
        insurance_fund_min=float(fund_path.min()),
        insurance_fund_end=float(fund_path[-1]),
        insurance_fund_max_drawdown=fund_dd,
        insurance_fund_max_drawdown_fraction=float(fractions.max()),
        adl_rounds=int(steps["adl_rounds"].sum()),
        adl_notional=float(steps["adl_notional"].sum()),
        adl_notional_overshoot=overshoot.notional_overshoot,
        adl_excess_profit=overshoot.excess_profit,
        max_drawdown_mark=dd_mark,
        max_drawdown_exogenous=dd_exo,
        max_drawdown_no_feedback=dd_base,
        cascade_amplification=amplification,
        liquidation_amplification=liq_amp,
        baseline_liquidated_notional=base_notional,
        baseline_bad_debt=base_bad_debt,
        adl_amplification=adl_amp,
        baseline_adl_notional=base_adl,
        baseline_shortfall=base_shortfall,
        max_dislocation=max(0.0, -float(steps["dislocation"].min()))
        if "dislocation" in steps and len(steps)
        else 0.0,
        cascade_rounds=int(steps["cascade_rounds"].sum()),
        max_cascade_rounds_step=int(per_step_rounds.max()) if len(per_step_rounds) else 0,
        under_collateralized_s=float(summary.get("under_collateralized_s", 0.0)),
        under_collateralized_peak=int(steps["under_collateralized"].max()) if len(steps) else 0,
        losers=dist.losers,
        total_account_loss=dist.total_loss,
        mean_account_loss=dist.mean,
        median_account_loss=dist.median,
        p99_account_loss=dist.p99,
        max_account_loss=dist.max,
        top_1pct_loss_share=dist.top_1pct_share,
        hedgers=int(summary.get("hedgers", 0)),
        hedger_spot_sold_notional=float(summary.get("hedger_spot_sold_notional", 0.0)),
        hedgers_unhedged=int(summary.get("hedgers_unhedged", 0)),
        collateral_accounts=int(summary.get("collateral_accounts", 0)),
        collateral_sales=int(summary.get("collateral_sales", 0)),
        collateral_sold_notional=float(summary.get("collateral_sold_notional", 0.0)),
    )


def _baseline_figures(baseline: RunResult | None) -> tuple[float, float, float, float, float]:
    """The twin's max drawdown of the mark, liquidated notional, bad debt, ADL notional and
    shortfall (NaN without a twin)."""
    if baseline is None:
        return math.nan, math.nan, math.nan, math.nan, math.nan
    steps = baseline.steps
    return (
        _max_drop(steps, "mark"),
        float(steps["liquidated_notional"].sum()),
        float(steps.groupby("market", observed=True).tail(1)["bad_debt"].sum()),
        float(steps["adl_notional"].sum()),
        float(steps["shortfall"].sum()) if "shortfall" in steps else math.nan,
    )


def _ratio(value: float, baseline: float) -> float:
    """``value / baseline``; 1 when both are 0, ``inf`` when only the baseline is."""
    if baseline > 0:
        return value / baseline
    return 1.0 if value == 0 else math.inf


def _series_end(steps: pd.DataFrame, column: str) -> float:
    """The last value of ``column`` (NaN when the frame has no such column or no row)."""
    if column not in steps or len(steps) == 0:
        return math.nan
    return float(steps[column].iloc[-1])


def _max_drop(steps: pd.DataFrame, column: str) -> float:
    """Largest :func:`max_drawdown` of ``column`` over the markets of a per-step frame."""
    worst = 0.0
    for _, group in steps.groupby("market", observed=True):
        worst = max(worst, max_drawdown(group[column].to_numpy(dtype=np.float64)))
    return worst


def metrics_table(metrics: StressMetrics) -> list[tuple[str, str]]:
    """(label, formatted value) rows for tables: the CLI summary and the report."""
    m = metrics

    def money(x: float) -> str:
        return "n/a" if not math.isfinite(x) else f"{x:,.0f}"

    def pct(x: float) -> str:
        return "n/a" if not math.isfinite(x) else f"{x:.2%}"

    def ratio(x: float) -> str:
        return "n/a" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.3f}x")

    rows = [
        ("positions", f"{m.positions:,}"),
        ("steps", f"{m.steps:,}"),
        ("liquidations", f"{m.liquidations:,}"),
        ("liquidated notional", money(m.liquidated_notional)),
        ("peak liquidated notional, one step", money(m.peak_liquidated_notional_step)),
        ("peak liquidated notional, one minute", money(m.peak_liquidated_notional_minute)),
        ("bad debt", money(m.bad_debt)),
        ("socialized loss", money(m.socialized_loss)),
        ("shortfall (loss beyond collateral)", money(m.shortfall)),
        ("backstop takeovers / loss", f"{m.backstop_takeovers:,} / {money(m.backstop_loss)}"),
        ("backstop PnL min / end", f"{money(m.backstop_pnl_min)} / {money(m.backstop_pnl_end)}"),
        ("insurance fund start / min / end",
         f"{money(m.insurance_fund_start)} / {money(m.insurance_fund_min)} / "
         f"{money(m.insurance_fund_end)}"),
        ("insurance fund max drawdown",
         f"{money(m.insurance_fund_max_drawdown)} ({pct(m.insurance_fund_max_drawdown_fraction)})"),
        ("ADL rounds / notional", f"{m.adl_rounds:,} / {money(m.adl_notional)}"),
        ("ADL notional overshoot", money(m.adl_notional_overshoot)),
        ("ADL profit taken beyond shortfall", money(m.adl_excess_profit)),
        ("max drawdown of the mark", pct(m.max_drawdown_mark)),
        ("max drawdown without feedback", pct(m.max_drawdown_no_feedback)),
        ("max drawdown of the exogenous price", pct(m.max_drawdown_exogenous)),
        ("cascade amplification (drawdown)", ratio(m.cascade_amplification)),
        ("liquidation amplification (notional)", ratio(m.liquidation_amplification)),
        ("ADL amplification (notional)", ratio(m.adl_amplification)),
        ("shortfall without feedback", money(m.baseline_shortfall)),
        ("largest dislocation of the book below the index", pct(m.max_dislocation)),
        ("cascade rounds (total / max in a step)",
         f"{m.cascade_rounds:,} / {m.max_cascade_rounds_step:,}"),
        ("under-collateralized position-seconds", f"{m.under_collateralized_s:,.1f}"),
        ("accounts with a loss", f"{m.losers:,}"),
        ("total account loss", money(m.total_account_loss)),
        ("median / p99 / max account loss",
         f"{money(m.median_account_loss)} / {money(m.p99_account_loss)} / "
         f"{money(m.max_account_loss)}"),
        ("loss share of the largest 1% of accounts", pct(m.top_1pct_loss_share)),
    ]  # fmt: skip
    if m.hedgers:  # only runs with hedgers or posted collateral show their lines
        rows.append(("hedgers' spot sold after their short closed (second-order flow)",
                     f"{money(m.hedger_spot_sold_notional)} ({m.hedgers_unhedged:,} of "
                     f"{m.hedgers:,} left unhedged)"))  # fmt: skip
    if m.collateral_accounts:
        rows.append(("collateral sold by the venue (sales / quote)",
                     f"{m.collateral_sales:,} / {money(m.collateral_sold_notional)}"))  # fmt: skip
    return rows


def verdict(metrics: StressMetrics) -> tuple[bool, str]:
    """Does the venue survive? ``(survives, one paragraph)`` from bad debt, fund and ADL.

    The venue survives when it left no loss unpaid (bad debt and socialized loss 0) without
    ADL; with ADL it stayed solvent only by closing profitable traders' positions.
    """
    m = metrics
    unpaid = m.bad_debt + m.socialized_loss
    survives = unpaid <= 0.0 and m.adl_rounds == 0
    parts = [
        f"{m.liquidations:,} liquidations closed {m.liquidated_notional:,.0f} of notional "
        f"(peak {m.peak_liquidated_notional_minute:,.0f} in one minute)."
    ]
    if m.insurance_fund_start > 0:
        fell = (
            f"fell by at most {m.insurance_fund_max_drawdown:,.0f} "
            f"({m.insurance_fund_max_drawdown_fraction:.1%} of its peak)"
            if m.insurance_fund_max_drawdown > 0
            else "never fell"
        )
        parts.append(
            f"The insurance fund started at {m.insurance_fund_start:,.0f}, {fell} and ended at "
            f"{m.insurance_fund_end:,.0f}."
        )
    else:
        parts.append("There was no insurance fund.")
    if m.adl_rounds:
        parts.append(
            f"ADL was used: {m.adl_rounds:,} rounds closed {m.adl_notional:,.0f} of profitable "
            f"traders' positions ({m.adl_notional_overshoot:,.0f} beyond what covering the "
            "shortfall required)."
        )
    else:
        parts.append("ADL was not needed.")
    if unpaid > 0:
        parts.append(
            f"Bad debt of {m.bad_debt:,.0f} and socialized loss of {m.socialized_loss:,.0f} "
            "were left: the venue did not cover its traders' losses."
        )
    else:
        parts.append("No bad debt was left.")
    if math.isfinite(m.cascade_amplification):
        baseline = not math.isnan(m.max_drawdown_no_feedback)
        reference = m.max_drawdown_no_feedback if baseline else m.max_drawdown_exogenous
        parts.append(
            f"Forced selling amplified the fall {m.cascade_amplification:.2f}x "
            f"(max drawdown {m.max_drawdown_mark:.1%} against {reference:.1%} "
            f"{'without feedback' if baseline else 'exogenous'})."
        )
    if unpaid > 0:
        head = "No: the venue does not survive the cascade unscathed."
    elif m.adl_rounds:
        head = "Solvent, but only through ADL."
    else:
        head = "Yes: the venue survives."
    return survives, " ".join([head, *parts])
