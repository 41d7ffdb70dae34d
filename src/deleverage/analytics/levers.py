"""The path of a market's risk parameters over a run, read from its journal.

A venue's dynamic levers (:class:`deleverage.rules.dynamic.DynamicLevers`) change a market's
spec by ``RiskParamsChanged`` events; the listing (``MarketListed``) holds the spec they start
from. :func:`risk_parameter_path` turns those events into a step function per market: the first
tier's maintenance rate and maximum leverage, the liquidation fee, the notional floor of the
second tier (the position limit of the first tier; NaN with one tier) and the multiplier of the
maintenance rate over the listed one. The report draws it beside the price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.engine.events import Journal, MarketListed, RiskParamsChanged
from deleverage.spec import MarketSpec

#: Columns of :func:`risk_parameter_path`.
PATH_COLUMNS = (
    "ts_ns",  # time the parameters took effect, ns
    "market",  # market id
    "maintenance_rate",  # first tier's maintenance rate, fraction of notional
    "max_leverage",  # first tier's maximum leverage
    "first_tier_limit",  # notional floor of the second tier, quote (NaN: one tier)
    "liquidation_fee_rate",  # fraction of notional
    "margin_multiplier",  # maintenance_rate over the listed spec's
)


def _row(ts_ns: int, market: int, spec: MarketSpec, listed: MarketSpec) -> dict[str, float]:
    first = spec.tiers[0]
    return {
        "ts_ns": ts_ns,
        "market": market,
        "maintenance_rate": first.maintenance_rate,
        "max_leverage": first.max_leverage,
        "first_tier_limit": spec.tiers[1].notional_floor if len(spec.tiers) > 1 else np.nan,
        "liquidation_fee_rate": spec.liquidation_fee_rate,
        "margin_multiplier": first.maintenance_rate / listed.tiers[0].maintenance_rate,
    }


def risk_parameter_path(journal: Journal) -> pd.DataFrame:
    """One row per listing and per ``RiskParamsChanged`` event (:data:`PATH_COLUMNS`), listings
    first, then changes in journal order; a market's parameters hold from its row's ``ts_ns``
    to its next row."""
    listed: dict[int, MarketSpec] = {}
    rows: list[dict[str, float]] = []
    for event in journal.events(MarketListed):
        assert isinstance(event, MarketListed)
        spec = MarketSpec.from_json(event.spec_json)
        listed[event.market] = spec
        rows.append(_row(event.ts_ns, event.market, spec, spec))
    for change in journal.events(RiskParamsChanged):
        assert isinstance(change, RiskParamsChanged)
        spec = MarketSpec.from_json(change.spec_json)
        rows.append(_row(change.ts_ns, change.market, spec, listed[change.market]))
    frame = pd.DataFrame(rows, columns=list(PATH_COLUMNS))
    return frame.astype({"ts_ns": np.int64, "market": np.int64})


def has_dynamic_parameters(journal: Journal) -> bool:
    """Whether any market's parameters changed during the run."""
    return len(journal.events(RiskParamsChanged)) > 0
