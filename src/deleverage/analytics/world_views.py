"""A world's liquidation heatmaps and criticality, per venue and for the whole world.

Every venue exposes its positions' liquidation prices
(:meth:`~deleverage.venues.protocol.Venue.liquidation_levels`, cross accounts included where
the venue can price them). :func:`world_heatmaps` bins them per venue with
:func:`~deleverage.analytics.heatmap.liquidation_heatmap` (same buckets for every venue, so the
panels line up side by side) and adds the ``world`` rows: the same binning over every venue's
positions, which is the bucket-by-bucket sum of the venues' rows.

:func:`world_criticality` plays each venue's levels, and all of them together, through the
asset's shared book (:mod:`deleverage.analytics.criticality`): the effective branching ratio
``k_eff(s) = 1 - s / D(s)`` of a shock ``s`` (a fraction of the price) and the critical shock
(the smallest shock whose cascade runs through every level). A venue's own book is left out:
the world's question is what forced flow does to the price everyone watches, and that price is
the shared book's. ``depth`` is the shared book's resting size per unit of price: a constant-
depth book of ``depth_per_pct`` base per 1% holds ``100 depth_per_pct / P`` base per quote
(docs/formulas.md §19.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from deleverage.analytics.criticality import branching_ratio_vs_shock, critical_shock
from deleverage.analytics.heatmap import HEATMAP_COLUMNS, liquidation_heatmap
from deleverage.errors import ValidationError

__all__ = [
    "CRITICALITY_COLUMNS",
    "WORLD",
    "linear_depth_per_price",
    "world_criticality",
    "world_heatmaps",
]

#: The name of the all-venues rows.
WORLD = "world"
#: Columns of :func:`world_criticality`.
CRITICALITY_COLUMNS = (
    "venue",  # a venue, or "world"
    "asset",
    "direction",  # "down" (longs) or "up" (shorts)
    "price",  # shared price now, quote/base
    "positions",  # positions with a finite liquidation price on that side
    "notional",  # their notional at the price, quote
    "shock",  # the shock tried, fraction of the price
    "total_move",  # the cascade's final move, fraction of the price
    "branching_ratio",  # k_eff = 1 - shock / total_move
    "critical_shock",  # fraction of the price; NaN with no levels
)


def linear_depth_per_price(depth_per_pct: float, price: float) -> float:
    """``100 depth_per_pct / P``: base units per unit of price of a constant-depth book.

    >>> linear_depth_per_price(10.0, 100_000.0)
    0.01
    """
    if not (math.isfinite(depth_per_pct) and depth_per_pct > 0):
        raise ValidationError("depth_per_pct", depth_per_pct, "must be a finite number > 0")
    if not (math.isfinite(price) and price > 0):
        raise ValidationError("price", price, "must be a finite number > 0")
    return 100.0 * depth_per_pct / price


def _rows(levels: pd.DataFrame, asset: str) -> pd.DataFrame:
    rows = levels[(levels["asset"] == asset) & np.isfinite(levels["liquidation_price"])]
    return rows[rows["liquidation_price"] > 0.0]


def world_heatmaps(
    levels: Mapping[str, pd.DataFrame], *, asset: str, price: float, bucket_width: float
) -> pd.DataFrame:
    """Heatmap rows of each venue and of the world (``venue`` column first, then
    :data:`~deleverage.analytics.heatmap.HEATMAP_COLUMNS`).

    Examples
    --------
    >>> a = pd.DataFrame({"asset": "BTC", "account": [0], "size": [1.0], "notional": [100.0],
    ...                   "liquidation_price": [90.0]})
    >>> b = a.assign(liquidation_price=[91.0])
    >>> h = world_heatmaps({"a": a, "b": b}, asset="BTC", price=100.0, bucket_width=5.0)
    >>> h.groupby("venue")["notional"].sum().to_dict()
    {'a': 90.0, 'b': 91.0, 'world': 181.0}
    """
    frames = []
    every = []
    for venue, frame in levels.items():
        rows = _rows(frame, asset)
        every.append(rows)
        frames.append(_heatmap(venue, rows, price, bucket_width))
    if every:
        frames.append(_heatmap(WORLD, pd.concat(every, ignore_index=True), price, bucket_width))
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in ("venue", *HEATMAP_COLUMNS)})


def _heatmap(venue: str, rows: pd.DataFrame, price: float, width: float) -> pd.DataFrame:
    size = rows["size"].to_numpy(dtype=np.float64)
    frame = liquidation_heatmap(
        rows["liquidation_price"].to_numpy(dtype=np.float64), size, np.sign(size), price,
        bucket_width=width,
    )  # fmt: skip
    frame.insert(0, "venue", venue)
    return frame


def world_criticality(
    levels: Mapping[str, pd.DataFrame],
    *,
    asset: str,
    price: float,
    depth_per_price: float,
    shock: float = 0.02,
) -> pd.DataFrame:
    """Branching ratio at ``shock`` and the critical shock of each venue and of the world,
    both directions (:data:`CRITICALITY_COLUMNS`; see the module docstring).

    Examples
    --------
    Ten longs of 2 BTC, one a dollar below 100 from 99.5, through 2 BTC per dollar of depth:
    ``k = 1``, so any shock reaching the first level (0.5%) takes them all: a 1% shock ends
    ``1 + 20 / 2 = 11`` dollars down.

    >>> lv = pd.DataFrame({"asset": "BTC", "account": range(10), "size": 2.0,
    ...                    "notional": 200.0, "liquidation_price": 99.5 - np.arange(10.0)})
    >>> c = world_criticality({"a": lv}, asset="BTC", price=100.0, depth_per_price=2.0,
    ...                       shock=0.01)
    >>> row = c[(c.venue == "world") & (c.direction == "down")].iloc[0]
    >>> round(float(row.critical_shock), 4), round(float(row.total_move), 4)
    (0.005, 0.11)
    """
    if not (math.isfinite(shock) and 0.0 < shock < 1.0):
        raise ValidationError("shock", shock, "must be a fraction in (0, 1)")
    out = []
    every = []
    named = list(levels.items())
    for venue, frame in named:
        rows = _rows(frame, asset)
        every.append(rows)
        out += _criticality(venue, asset, rows, price, depth_per_price, shock)
    out += _criticality(WORLD, asset, pd.concat(every, ignore_index=True) if every else
                        _rows(pd.DataFrame(columns=["asset", "size", "liquidation_price"]), asset),
                        price, depth_per_price, shock)  # fmt: skip
    return pd.DataFrame(out, columns=list(CRITICALITY_COLUMNS))


def _criticality(
    venue: str, asset: str, rows: pd.DataFrame, price: float, depth: float, shock: float
) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    size = rows["size"].to_numpy(dtype=np.float64)
    liq = rows["liquidation_price"].to_numpy(dtype=np.float64)
    for direction, mask in (("down", size > 0.0), ("up", size < 0.0)):
        beyond = (liq < price) if direction == "down" else (liq > price)
        side_liq, side_size = liq[mask & beyond], np.abs(size[mask & beyond])
        notional = float(side_size.sum() * price)
        if not len(side_liq):
            out.append((venue, asset, direction, price, 0, 0.0, shock, shock, 0.0, math.nan))
            continue
        response = branching_ratio_vs_shock(
            side_liq,
            side_size,
            price,
            [shock * price],
            depth,
            direction=direction,  # type: ignore[arg-type]
        )
        critical = critical_shock(side_liq, side_size, price, depth, direction=direction)  # type: ignore[arg-type]
        out.append(
            (venue, asset, direction, price, len(side_liq), notional, shock,
             float(response.total_drop[0]) / price, float(response.branching_ratio[0]),
             critical / price)
        )  # fmt: skip
    return out
