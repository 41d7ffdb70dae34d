"""Uncertainty across seeds: percentile bands, and the insurance fund's tail risk.

One seed is one draw of the world (price path, population, agents). ``deleverage run --seeds N``
runs the scenario with ``N`` seeds, in parallel on the sweep executors
(:func:`deleverage.sweep.seeds.run_seeds`), and this module summarises them:

- **bands**: per step, the 5th, 50th and 95th percentiles across seeds of a per-step series
  (the mark, the insurance fund);
- **per-metric spread**: the 5th, 50th and 95th percentiles of each summary metric;
- **fund loss**: per seed ``L = fund_start - fund_min`` (quote, the deepest draw on the fund),
  with its value at risk ``VaR_a = min{l : F(l) >= a}`` (the empirical quantile, ``inverted_cdf``)
  and expected shortfall ``ES_a = E[L | L >= VaR_a]`` (Acerbi and Tasche 2002, "On the coherence
  of expected shortfall", J. Banking & Finance 26(7)); ``a = 0.95``.

Formulas: docs/formulas.md §17.6.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import ValidationError

FloatArray = npt.NDArray[np.float64]

#: Summary metrics kept per seed.
SEED_METRICS = (
    "liquidations",
    "liquidated_notional",
    "adl_notional",
    "bad_debt",
    "shortfall",
    "insurance_fund_start",
    "insurance_fund_min",
    "max_drawdown_mark",
)
#: Per-step series whose bands the report draws.
SEED_SERIES = ("mark", "index", "insurance_fund")


def tail_risk(losses: npt.ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """``(VaR, ES)`` of ``losses`` at ``level``: the empirical quantile and the mean beyond it.

    Examples
    --------
    Twenty seeds losing 1, 2, ..., 20: ``F(19) = 0.95``, so ``VaR = 19`` and
    ``ES = (19 + 20) / 2 = 19.5``.

    >>> tail_risk(np.arange(1.0, 21.0))
    (19.0, 19.5)
    """
    x = np.asarray(losses, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not 0.0 < level < 1.0:
        raise ValidationError("level", level, "must be in (0, 1)")
    if x.size == 0:
        return float("nan"), float("nan")
    var = float(np.quantile(x, level, method="inverted_cdf"))
    return var, float(x[x >= var].mean())


def bands(series: list[FloatArray], percentiles: tuple[float, ...] = (5, 50, 95)) -> pd.DataFrame:
    """Per step, the given percentiles across seeds (columns ``p5``, ``p50``, ``p95``)."""
    if not series:
        raise ValidationError("series", 0, "must hold at least one seed's series")
    n = min(len(s) for s in series)
    stacked = np.vstack([np.asarray(s[:n], dtype=np.float64) for s in series])
    values = np.percentile(stacked, percentiles, axis=0)
    return pd.DataFrame({f"p{p:g}": v for p, v in zip(percentiles, values, strict=True)})


@dataclass
class SeedSummary:
    """What ``N`` seeds of one scenario gave (see the module docstring)."""

    seeds: list[int]
    metrics: pd.DataFrame  # one row per seed, SEED_METRICS and fund_loss
    bands: dict[str, pd.DataFrame] = field(default_factory=dict)
    fund_loss_var: float = float("nan")
    fund_loss_es: float = float("nan")
    level: float = 0.95
    errors: list[str] = field(default_factory=list)

    def spread(self) -> pd.DataFrame:
        """5th, 50th and 95th percentile of each metric across seeds."""
        return self.metrics.drop(columns=["seed"]).quantile([0.05, 0.5, 0.95]).T

    def to_dict(self) -> dict[str, Any]:
        spread = self.spread()
        return {
            "seeds": self.seeds,
            "level": self.level,
            "fund_loss_var": self.fund_loss_var,
            "fund_loss_es": self.fund_loss_es,
            "percentiles": {
                name: {"p5": float(row[0.05]), "p50": float(row[0.5]), "p95": float(row[0.95])}
                for name, row in spread.iterrows()
            },
            "errors": self.errors,
        }


def summarize_seeds(rows: list[dict[str, Any]], level: float = 0.95) -> SeedSummary:
    """Bands, per-seed metrics and the fund's tail risk from executor rows."""
    good = [row for row in rows if row.get("error") is None]
    errors = [f"seed {row['seed']}: {row['error']}" for row in rows if row.get("error")]
    metrics = pd.DataFrame([{"seed": row["seed"], **{m: row[m] for m in SEED_METRICS}}
                            for row in good])  # fmt: skip
    if len(metrics):
        loss = metrics["insurance_fund_start"] - metrics["insurance_fund_min"]
        metrics["fund_loss"] = loss.clip(lower=0.0)
    var, es = tail_risk(metrics["fund_loss"] if len(metrics) else [], level)
    drawn = {name: bands([row["series"][name] for row in good]) for name in SEED_SERIES if good}
    return SeedSummary(
        seeds=[int(row["seed"]) for row in good],
        metrics=metrics,
        bands=drawn,
        fund_loss_var=var,
        fund_loss_es=es,
        level=level,
        errors=errors,
    )
