"""What an ADL round took from winners, against what it needed: the laboratory's metrics.

Definitions (docs/formulas.md, "ADL laboratory"), after Chitra, "Autodeleveraging:
Impossibilities and Optimization" (arXiv:2512.01112) and Chitra, Thogiti, Trujillo Ramirez and
Xu, "Autodeleveraging as Online Learning" (arXiv:2602.15182), where ADL haircuts apply to
winners' positive PnL, never to collateral principal:

- ``deficit`` D: the round's loss beyond the bankrupt collateral, the budget needed;
- ``covered``: value moved to the bankrupt side at the round's mark (fund + counterparties);
- ``uncovered = max(D - covered, 0)``, the residual left to bad debt;
- ``haircut``: profit removed from winners, marked to market at the evaluation horizon
  ``m_h``: a cash haircut counts as taken; a closed portion counts its unrealized profit at
  ``m_h``, ``closed_i x max(side_i x (m_h - entry_i), 0)`` (the winner no longer holds it);
- ``overshoot = haircut - (D - fund_paid)``: profit taken beyond what winners had to cover;
- haircut percentage of winner i: ``haircut_i / profit_i`` with ``profit_i`` its unrealized
  profit at the round's mark; the largest, Gini and Jain's index over the eligible winners;
- ``participation``: the share of winners touched (closed or haircut).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import ValidationError
from deleverage.rules.deleveraging import BankruptSide, Counterparties, Deleveraging, transfers

__all__ = [
    "LEVERAGE_BUCKETS",
    "RoundMetrics",
    "gini",
    "jain",
    "leverage_bucket",
    "round_metrics",
    "summarize",
    "waves",
]

FloatArray = npt.NDArray[np.float64]

#: Edges of the leverage buckets of the "who was hit" tables (x).
LEVERAGE_BUCKETS: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0, 10.0, 25.0, math.inf)


class RoundMetrics(NamedTuple):
    """One round under one policy (quote amounts unless named otherwise)."""

    deficit: float
    fund_paid: float
    covered: float
    uncovered: float
    haircut: float
    overshoot: float
    notional_closed: float
    bankrupt_closed: float  # base
    largest_haircut_pct: float  # fraction of a winner's profit, 0..1
    gini: float
    jain: float
    participation: float  # share of eligible winners touched
    winners: int
    touched: int
    touched_leverage_median: float  # x; NaN when nobody was touched


def gini(x: npt.ArrayLike) -> float:
    """Gini coefficient ``sum_ij |x_i - x_j| / (2 n^2 mean(x))``; 0 for all-equal or empty.

    Examples
    --------
    >>> gini([1.0, 1.0, 1.0]), gini([0.0, 0.0, 1.0])
    (0.0, 0.6666666666666666)
    """
    a = np.sort(np.asarray(x, dtype=np.float64))
    n = len(a)
    total = float(a.sum())
    if n == 0 or total <= 0:
        return 0.0
    k = np.arange(1, n + 1)
    return float(np.sum((2 * k - n - 1) * a) / (n * total))


def jain(x: npt.ArrayLike) -> float:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)``, in [1/n, 1]; 1 for all-zero or empty.

    Examples
    --------
    >>> jain([1.0, 1.0]), jain([1.0, 0.0])
    (1.0, 0.5)
    """
    a = np.asarray(x, dtype=np.float64)
    sq = float(np.sum(a * a))
    if len(a) == 0 or sq <= 0:
        return 1.0
    return float(a.sum() ** 2 / (len(a) * sq))


def leverage_bucket(leverage: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """Label of each leverage's bucket (:data:`LEVERAGE_BUCKETS`), e.g. ``"2-5x"``."""
    lev = np.asarray(leverage, dtype=np.float64)
    edges = np.asarray(LEVERAGE_BUCKETS)
    k = np.clip(np.searchsorted(edges, lev, side="right") - 1, 0, len(edges) - 2)
    labels = [
        f"{edges[i]:g}-{edges[i + 1]:g}x" if math.isfinite(edges[i + 1]) else f">{edges[i]:g}x"
        for i in range(len(edges) - 1)
    ]
    return np.array([labels[i] for i in k.tolist()], dtype=object)


def haircuts(
    bankrupt: BankruptSide, cps: Counterparties, result: Deleveraging, horizon_mark: float
) -> FloatArray:
    """Profit removed from each counterparty, marked at ``horizon_mark`` (quote >= 0)."""
    side = np.sign(cps.size)
    unit_profit = np.maximum(side * (horizon_mark - cps.entry), 0.0)
    return result.haircut + result.closed * unit_profit


def round_metrics(
    bankrupt: BankruptSide,
    cps: Counterparties,
    result: Deleveraging,
    *,
    eligible: npt.NDArray[np.bool_] | None = None,
    horizon_mark: float | None = None,
) -> RoundMetrics:
    """The :class:`RoundMetrics` of one policy's answer (definitions in the module docstring).

    ``eligible`` marks the winners the fairness figures run over (default: opposite side, in
    profit); ``horizon_mark`` is the mark at the evaluation horizon (default: the round's).

    Examples
    --------
    >>> from deleverage.rules.deleveraging import bankrupt_side, counterparties, policy_named
    >>> b = bankrupt_side(10.0, 110.0, 100.0, 100.0)
    >>> c = counterparties([1, 2], [-5.0, -5.0], [140.0, 120.0], 100.0, [400.0, 300.0])
    >>> m = round_metrics(b, c, policy_named("bitmex").allocate(b, c))
    >>> m.covered, m.haircut, m.overshoot
    (100.0, 300.0, 200.0)
    """
    mh = bankrupt.mark if horizon_mark is None else float(horizon_mark)
    if not math.isfinite(mh) or mh <= 0:
        raise ValidationError("horizon_mark", horizon_mark, "must be a finite price > 0")
    give = transfers(bankrupt, cps, result)
    taken = haircuts(bankrupt, cps, result, mh)
    covered = result.fund_paid + math.fsum(give.tolist())
    uncovered = max(bankrupt.deficit - covered, 0.0)  # float dust (1e-9 relative) counts as 0
    haircut = math.fsum(taken.tolist())
    profit = np.maximum(cps.upnl, 0.0)
    if eligible is None:
        eligible = (np.sign(cps.size) == -math.copysign(1.0, bankrupt.size)) & (profit > 0)
    winners = np.flatnonzero(eligible & (profit > 0))
    pct = np.minimum(taken[winners] / profit[winners], 1.0) if len(winners) else np.zeros(0)
    hit = (result.closed > 0) | (result.haircut > 0)
    touched = int(np.count_nonzero(hit[winners]))
    hit_lev = cps.leverage[hit]
    return RoundMetrics(
        deficit=bankrupt.deficit,
        fund_paid=result.fund_paid,
        covered=covered,
        uncovered=uncovered if uncovered > 1e-9 * bankrupt.deficit else 0.0,
        haircut=haircut,
        overshoot=haircut - (bankrupt.deficit - result.fund_paid),
        notional_closed=math.fsum((result.closed * result.price).tolist()),
        bankrupt_closed=result.bankrupt_closed,
        largest_haircut_pct=float(pct.max()) if len(pct) else 0.0,
        gini=gini(pct),
        jain=jain(pct),
        participation=touched / len(winners) if len(winners) else 0.0,
        winners=len(winners),
        touched=touched,
        touched_leverage_median=float(np.median(hit_lev)) if len(hit_lev) else math.nan,
    )


def waves(ts_ms: npt.ArrayLike, gap_s: float) -> npt.NDArray[np.int64]:
    """Wave number of each round: a new wave starts after a pause longer than ``gap_s``.

    Rounds are numbered in time order (ties keep their order); the result is aligned with
    ``ts_ms`` (milliseconds since the epoch).

    Examples
    --------
    >>> waves([0, 1_000, 100_000, 101_000], 30.0).tolist()
    [0, 0, 1, 1]
    """
    t = np.asarray(ts_ms, dtype=np.int64)
    if not math.isfinite(gap_s) or gap_s < 0:
        raise ValidationError("gap_s", gap_s, "must be a finite number of seconds >= 0")
    order = np.argsort(t, kind="stable")
    jumps = np.diff(t[order]) > gap_s * 1000.0
    wave_sorted = np.concatenate(([0], np.cumsum(jumps))).astype(np.int64)
    out = np.empty(len(t), dtype=np.int64)
    out[order] = wave_sorted
    return out


_SUMS = ("deficit", "fund_paid", "covered", "uncovered", "haircut", "overshoot", "notional_closed")


def summarize(rounds: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per-group totals of a per-round frame (one row per round and policy).

    Amounts add up; ``largest_haircut_pct`` is the group's largest; Gini, Jain and
    participation are averaged over rounds weighted by their deficit (each round is its own
    fairness problem); ``rounds`` counts them and ``haircut_to_deficit = haircut / deficit``.
    """
    g = rounds.groupby(by, sort=True)
    out = g[list(_SUMS)].sum()
    out["rounds"] = g.size()
    out["largest_haircut_pct"] = g["largest_haircut_pct"].max()
    weight = rounds["deficit"].where(rounds["deficit"] > 0, 1e-300)
    for col in ("gini", "jain", "participation"):
        out[col] = (rounds[col] * weight).groupby([rounds[k] for k in by]).sum() / weight.groupby(
            [rounds[k] for k in by]
        ).sum()
    out["haircut_to_deficit"] = out["haircut"] / out["deficit"].where(out["deficit"] > 0)
    return out.reset_index()
