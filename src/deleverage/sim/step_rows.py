"""The runner's step rows and the run's summary reads (:mod:`deleverage.sim.runner`).

A marked step's tallies are the sums of its risk steps' reports (:func:`add_reports`); the
summary reads each market's last row, each step's first fund and each market's drawdown off
the per-step frame, whose rows hold every step's markets in market order
(``Simulation._frame``), instead of grouping it (:func:`fund_by_step`, :func:`max_drop`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def add_reports(row: dict[str, float], reports: list[Any]) -> None:
    """``Simulation._add_report`` of each of ``reports`` in turn (the same sums in the same
    order), with the tallies held in locals: a step adds up ~5 reports."""
    liquidations, notional = row["liquidations"], row["liquidated_notional"]
    adl_notional = row["adl_notional"]
    adl_rounds, bad_debt, socialized = row["adl_rounds"], row["bad_debt"], row["socialized_loss"]
    calls, shortfall, adl_loss = row["margin_calls"], row["shortfall"], row["adl_loss"]
    takeovers, backstop_loss = row["backstop_takeovers"], row["backstop_loss"]
    for report in reports:
        if report is None:
            continue
        liquidations += report.liquidations
        notional += report.liquidated_notional
        adl_notional += report.adl_notional
        adl_rounds += report.adl_rounds
        bad_debt += report.bad_debt
        socialized += report.socialized_loss
        calls += report.margin_calls
        shortfall += report.shortfall
        adl_loss += report.adl_loss
        takeovers += report.backstop_takeovers
        backstop_loss += report.backstop_loss
    row["liquidations"], row["liquidated_notional"] = liquidations, notional
    row["adl_notional"], row["adl_rounds"] = adl_notional, adl_rounds
    row["bad_debt"], row["socialized_loss"] = bad_debt, socialized
    row["margin_calls"], row["shortfall"], row["adl_loss"] = calls, shortfall, adl_loss
    row["backstop_takeovers"], row["backstop_loss"] = takeovers, backstop_loss


def fund_by_step(steps: pd.DataFrame, n_m: int) -> pd.Series:
    """``steps.groupby("step")["insurance_fund"].first()``: each step's first market's fund
    (quote), read off the frame's rows where every step holds its ``n_m`` markets in order and
    no first value is NaN (``first`` would skip it); otherwise by the groupby itself."""
    step = steps["step"].to_numpy()
    fund = steps["insurance_fund"].to_numpy()
    n = len(step) // n_m if n_m else 0
    if n and n * n_m == len(step):
        first = fund[::n_m]
        if (
            np.array_equal(step.reshape(n, n_m), np.broadcast_to(np.arange(n)[:, None], (n, n_m)))
            and not np.isnan(first).any()
        ):
            return pd.Series(first, index=pd.Index(np.arange(n), name="step"), copy=False)
    return steps.groupby("step")["insurance_fund"].first()


def max_drop(steps: pd.DataFrame, column: str, n_m: int) -> float:
    """Largest peak-to-trough fall of ``column`` over the run, as a fraction, any market.

    The frame's rows hold every step's ``n_m`` markets in market order (``_frame``): market
    ``j``'s values are every ``n_m``-th one from row ``j`` (what a groupby by market gives)."""
    worst = 0.0
    values = steps[column].to_numpy()
    for j in range(n_m):
        v = values[j::n_m]
        peak = np.maximum.accumulate(v)
        worst = max(worst, float(np.max(1.0 - v / peak)))
    return worst
