"""Labels: what happened after a sample, read from the run's journal and per-step frame.

A label looks only at the interval ``(t, t + H]`` after its sample's time ``t`` (it starts
strictly after the features' time), so features and labels never share information:

- account rows: ``liquidated`` is 1 when the journal holds a ``Liquidation`` notice for the
  account in the market with ``t < ts <= t + H``; ``time_to_liquidation_s`` is the time to the
  first such notice after ``t`` (any horizon; NaN when none follows);
- market rows: ``cascade`` is 1 when the notional liquidated in ``(t, t + H]`` is at least
  ``level`` times the open-interest notional at ``t`` (``liquidated_share`` is that ratio).

Samples whose horizon runs past the end of the run are *censored*: their label is unknown and
they are dropped (:func:`drop_censored`), never counted as negatives.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from deleverage.engine.events import EventKind, Journal
from deleverage.errors import ValidationError

_NS: Final = 1_000_000_000
ACCOUNT_LABELS: Final = ("liquidated", "time_to_liquidation_s")
MARKET_LABELS: Final = ("cascade", "liquidated_share")


def liquidation_times(journal: Journal, symbols: dict[int, str]) -> pd.DataFrame:
    """Every liquidation notice of the journal: ``market`` (symbol), ``account``, ``ts_ns``."""
    table = journal.to_arrow()
    kinds = table.column("kind").to_numpy()
    keep = kinds == int(EventKind.LIQUIDATION)
    markets = table.column("market").to_numpy()[keep]
    return pd.DataFrame(
        {
            "market": [symbols[int(m)] for m in markets],
            "account": table.column("account").to_numpy()[keep].astype(np.int64),
            "ts_ns": table.column("ts_ns").to_numpy()[keep].astype(np.int64),
        }
    )


def account_labels(
    samples: pd.DataFrame, liquidations: pd.DataFrame, *, horizon_s: float
) -> pd.DataFrame:
    """``samples`` with :data:`ACCOUNT_LABELS` added (row order kept).

    ``samples`` needs ``market``, ``account`` and ``ts_ns``; ``liquidations`` the same columns
    (:func:`liquidation_times`). A liquidation at the sample's own time is not in the label.
    """
    _check_horizon(horizon_s)
    out = samples.copy()
    if out.empty:
        out["liquidated"] = np.zeros(0, dtype=np.int8)
        out["time_to_liquidation_s"] = np.zeros(0)
        return out
    left = pd.DataFrame(
        {
            "row": np.arange(len(out)),
            "market": out["market"].astype(str).to_numpy(),
            "account": out["account"].to_numpy(np.int64),
            "ts_ns": out["ts_ns"].to_numpy(np.int64),
        }
    ).sort_values("ts_ns", kind="stable")
    right = liquidations.assign(
        market=liquidations["market"].astype(str),
        account=liquidations["account"].astype(np.int64),
        ts_ns=liquidations["ts_ns"].astype(np.int64),
        next_ns=liquidations["ts_ns"].astype(np.int64),
    ).sort_values("ts_ns", kind="stable")
    merged = pd.merge_asof(
        left, right[["market", "account", "ts_ns", "next_ns"]], on="ts_ns",
        by=["market", "account"], direction="forward", allow_exact_matches=False,
    ).sort_values("row")  # fmt: skip
    wait_s = (merged["next_ns"].to_numpy(np.float64) - merged["ts_ns"].to_numpy(np.float64)) / _NS
    out["time_to_liquidation_s"] = wait_s
    out["liquidated"] = (np.nan_to_num(wait_s, nan=np.inf) <= horizon_s).astype(np.int8)
    return out


def market_labels(
    samples: pd.DataFrame, steps: pd.DataFrame, *, horizon_s: float, level: float
) -> pd.DataFrame:
    """``samples`` (market rows) with :data:`MARKET_LABELS` added, from the run's step frame.

    ``liquidated_share = (C(t + H) - C(t)) / OI(t)`` with ``C`` the cumulative liquidated
    notional of the market over steps and ``OI(t)`` the sample's open-interest notional.
    """
    _check_horizon(horizon_s)
    if not (np.isfinite(level) and level > 0):
        raise ValidationError("level", level, "must be a finite share of open interest > 0")
    out = samples.copy()
    share = np.zeros(len(out))
    for symbol, frame in steps.groupby("market", observed=True):
        ts = frame["ts_ns"].to_numpy(np.int64)
        cumulative = np.cumsum(frame["liquidated_notional"].to_numpy(np.float64))
        mine = (out["market"].astype(str) == str(symbol)).to_numpy()
        t = out.loc[mine, "ts_ns"].to_numpy(np.int64)
        now = np.searchsorted(ts, t, side="right") - 1
        later = np.searchsorted(ts, t + int(horizon_s * _NS), side="right") - 1
        oi = out.loc[mine, "open_interest_notional"].to_numpy(np.float64)
        liquidated = cumulative[later] - cumulative[np.maximum(now, 0)]
        with np.errstate(divide="ignore", invalid="ignore"):
            share[mine] = np.where(oi > 0, liquidated / oi, 0.0)
    out["liquidated_share"] = share
    out["cascade"] = (share >= level).astype(np.int8)
    return out


def drop_censored(frame: pd.DataFrame, *, end_ns: int, horizon_s: float) -> pd.DataFrame:
    """Rows whose horizon ``(t, t + H]`` ends within the run (``t + H <= end``)."""
    keep = frame["ts_ns"].to_numpy(np.int64) + int(horizon_s * _NS) <= end_ns
    return frame.loc[keep].reset_index(drop=True)


def _check_horizon(horizon_s: float) -> None:
    if not (np.isfinite(horizon_s) and horizon_s > 0):
        raise ValidationError("horizon_s", horizon_s, "must be a finite number of seconds > 0")
