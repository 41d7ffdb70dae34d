"""Scoring predicted probabilities against what happened (scikit-learn's metrics).

For rows with label ``y`` in {0, 1} and prediction ``p``:

- Brier score ``mean((p - y)^2)`` (``sklearn.metrics.brier_score_loss``), log loss
  (``log_loss``), average precision (area under the precision-recall curve,
  ``average_precision_score``) and the precision-recall curve itself;
- the reliability diagram: observed frequency against mean prediction in quantile bins
  (``sklearn.calibration.calibration_curve``);
- the lead time: for each liquidation that has samples within ``H`` before it, the longest time
  between a sample at which ``p >= level`` and the liquidation (0 samples over the level: not
  warned); reported as the share warned and the median lead of those warned.

:func:`compare_to_baseline` scores a model against the analytic baseline on the same rows: the
Brier difference over all rows, and per held-out seed with a Student-t interval over seeds
(``scipy.stats.t``); its verdict says in words whether the model beats the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
)

from deleverage.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
#: Default probability level for the lead time and alerts.
DEFAULT_LEVEL: Final = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Scores:
    """One model's scores on one set of rows."""

    model: str
    rows: int
    positives: int
    brier: float
    log_loss: float
    average_precision: float
    warned_share: float
    median_lead_s: float
    reliability: pd.DataFrame = field(repr=False)
    pr_curve: pd.DataFrame = field(repr=False)

    def row(self) -> dict[str, Any]:
        """The numbers as a flat dict (for tables and JSON)."""
        return {
            "model": self.model, "rows": self.rows, "positives": self.positives,
            "brier": self.brier, "log_loss": self.log_loss,
            "average_precision": self.average_precision, "warned_share": self.warned_share,
            "median_lead_s": self.median_lead_s,
        }  # fmt: skip


def score(
    name: str,
    frame: pd.DataFrame,
    probability: FloatArray,
    *,
    label: str,
    level: float = DEFAULT_LEVEL,
    horizon_s: float | None = None,
    bins: int = 10,
) -> Scores:
    """Score ``probability`` (one per row of ``frame``) against ``frame[label]``.

    The lead time needs account rows (``time_to_liquidation_s``) and ``horizon_s``; market
    rows report NaN for it.
    """
    p = np.asarray(probability, dtype=np.float64)
    y = frame[label].to_numpy(np.int64)
    if len(p) != len(y):
        raise ValidationError("probability", len(p), f"must have one value per row ({len(y)})")
    if len(y) == 0:
        raise ValidationError(label, 0, "needs at least one row to score")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValidationError("probability", float(p[(p < 0) | (p > 1)][0]), "must be in [0, 1]")
    both = len(np.unique(y)) == 2
    true, pred = calibration_curve(y, p, n_bins=bins, strategy="quantile") if both else ([], [])
    precision, recall, _ = precision_recall_curve(y, p) if both else ([], [], [])
    warned, lead = np.nan, np.nan
    if horizon_s is not None and "time_to_liquidation_s" in frame.columns:
        warned, lead = lead_time(frame, p, level=level, horizon_s=horizon_s)
    return Scores(
        model=name,
        rows=len(y),
        positives=int(y.sum()),
        brier=float(brier_score_loss(y, p)),
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        average_precision=float(average_precision_score(y, p)) if both else float("nan"),
        warned_share=warned,
        median_lead_s=lead,
        reliability=pd.DataFrame({"mean_predicted": pred, "observed": true}),
        pr_curve=pd.DataFrame({"recall": recall, "precision": precision}),
    )


def lead_time(
    frame: pd.DataFrame, probability: FloatArray, *, level: float, horizon_s: float
) -> tuple[float, float]:
    """(share of liquidations warned, median lead time of those warned, seconds).

    A liquidation is identified by (seed, market, account, time of liquidation); its samples
    are the rows with ``0 < time_to_liquidation_s <= horizon_s``.
    """
    if not 0 < level < 1:
        raise ValidationError("level", level, "must be a probability in (0, 1)")
    wait = frame["time_to_liquidation_s"].to_numpy(np.float64)
    before = np.isfinite(wait) & (wait > 0) & (wait <= horizon_s)
    if not before.any():
        return float("nan"), float("nan")
    rows = frame.loc[before, ["seed", "market", "account", "ts_ns"]].copy()
    rows["event_ns"] = rows["ts_ns"].to_numpy(np.int64) + np.round(wait[before] * 1e9).astype(
        np.int64
    )
    rows["lead_s"] = np.where(np.asarray(probability)[before] >= level, wait[before], 0.0)
    per_event = rows.groupby(["seed", "market", "account", "event_ns"])["lead_s"].max()
    warned = per_event[per_event > 0]
    median = float(np.median(warned.to_numpy())) if len(warned) else float("nan")
    return float(len(warned) / len(per_event)), median


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """A model's Brier score against the baseline's on the same held-out rows."""

    model: str
    brier_model: float
    brier_baseline: float
    seeds: int
    mean_difference: float
    difference_low: float
    difference_high: float
    beats_baseline: bool
    verdict: str


def compare_to_baseline(
    frame: pd.DataFrame,
    model_p: FloatArray,
    baseline_p: FloatArray,
    *,
    label: str,
    model: str,
    confidence: float = 0.95,
    where: str = "held-out seeds",
) -> Comparison:
    """Compare ``model``'s Brier score with the baseline's on the rows of ``frame``.

    The per-seed differences ``Brier(model) - Brier(baseline)`` get a Student-t interval over
    seeds (``scipy.stats.t.interval``; NaN with fewer than two seeds). The model *beats* the
    baseline when its Brier score over all rows is lower and the interval's upper end (when
    there is one) is below zero. ``where`` names the rows in the verdict.
    """
    y = frame[label].to_numpy(np.int64)
    seeds = frame["seed"].to_numpy(np.int64)
    overall_m = float(brier_score_loss(y, model_p))
    overall_b = float(brier_score_loss(y, baseline_p))
    diffs = []
    for s in np.unique(seeds):
        mine = seeds == s
        diffs.append(
            float(brier_score_loss(y[mine], model_p[mine]))
            - float(brier_score_loss(y[mine], baseline_p[mine]))
        )
    d = np.asarray(diffs)
    mean = float(d.mean())
    low, high = float("nan"), float("nan")
    if len(d) >= 2:
        sem = float(stats.sem(d))
        if sem > 0:
            low, high = stats.t.interval(confidence, df=len(d) - 1, loc=mean, scale=sem)
        else:
            low, high = mean, mean
    beats = overall_m < overall_b and (np.isnan(high) or high < 0)
    interval = (
        f"per-seed difference {mean:+.5f}, {confidence:.0%} CI [{low:+.5f}, {high:+.5f}] "
        f"over {len(d)} seeds"
        if not np.isnan(low)
        else f"per-seed difference {mean:+.5f} (one seed: no interval)"
    )
    if beats:
        verdict = (
            f"{model} BEATS the analytic baseline on {where} by Brier score "
            f"({overall_m:.5f} < {overall_b:.5f}; {interval})"
        )
    elif overall_m < overall_b:
        verdict = (
            f"{model} does NOT beat the analytic baseline on {where} by Brier score: "
            f"lower ({overall_m:.5f} vs {overall_b:.5f}) but the per-seed interval reaches "
            f"zero ({interval}); more seeds may settle it"
        )
    else:
        verdict = (
            f"{model} does NOT beat the analytic baseline on {where} by Brier score "
            f"({overall_m:.5f} vs {overall_b:.5f}; {interval})"
        )
    return Comparison(
        model=model, brier_model=overall_m, brier_baseline=overall_b, seeds=len(d),
        mean_difference=mean, difference_low=float(low), difference_high=float(high),
        beats_baseline=bool(beats), verdict=verdict,
    )  # fmt: skip
