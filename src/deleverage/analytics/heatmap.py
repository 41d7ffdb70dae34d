"""Liquidation heatmap: where, in price, the book's forced orders are waiting.

Every isolated position has a fixed liquidation price. Binning those prices into buckets of equal
width and adding up, per bucket and side, the notional that would be force-closed there gives a
*liquidation heatmap* (the chart venues and data vendors publish as "liquidation levels"):

- longs are liquidated when the price falls to their liquidation price; a cluster of long
  liquidations below the mark is forced *selling* waiting there (it is usually called
  "support", though a cascade through it accelerates the fall);
- shorts are liquidated when the price rises; a cluster above the mark is forced *buying*
  ("resistance").

The notional of a position in its bucket is valued at its liquidation price,
``|size| x liquidation_price`` (quote): the size of the market order the venue sends when the
position is liquidated there.

Bucket ``k`` is the half-open price interval ``[k w, (k + 1) w)``, ``w`` the bucket width, so edges
are round numbers. Within each bucket, positions whose liquidation price is below the mark and
those at or above it are kept apart (``zone`` ``"below"`` / ``"above"``): a long whose liquidation
price is above the mark is already liquidatable, not support.

Formulas and a worked example: docs/formulas.md, section "Liquidation heatmap".
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import ValidationError

__all__ = ["CLUSTER_COLUMNS", "HEATMAP_COLUMNS", "largest_clusters", "liquidation_heatmap"]

FloatArray = npt.NDArray[np.float64]

#: Columns of the frame returned by :func:`liquidation_heatmap`, in order.
HEATMAP_COLUMNS = (
    "bucket_low",
    "bucket_high",
    "side",
    "zone",
    "count",
    "size",
    "notional",
    "distance",
)
#: Columns of the frame returned by :func:`largest_clusters`, in order.
CLUSTER_COLUMNS = (
    "kind",
    "rank",
    "bucket_low",
    "bucket_high",
    "count",
    "size",
    "notional",
    "distance",
)


def _positive(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(field, value, "must be a number")
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValidationError(field, value, "must be a finite number > 0")
    return v


def _vector(field: str, value: npt.ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(field, value, "must be numeric") from None
    if arr.ndim != 1:
        raise ValidationError(field, arr.shape, "must be a 1-D array")
    return arr


def liquidation_heatmap(
    liquidation_prices: npt.ArrayLike,
    sizes: npt.ArrayLike,
    sides: npt.ArrayLike,
    mark_price: float,
    *,
    bucket_width: float,
) -> pd.DataFrame:
    """Add up liquidation notional by price bucket and side.

    Position ``i`` with liquidation price ``L_i`` falls in bucket ``k_i = floor(L_i / w)``,
    the interval ``[k_i w, (k_i + 1) w)``, and contributes the notional ``|q_i| x L_i`` (quote,
    valued at the liquidation price). For each bucket ``k``, side ``s`` and zone ``z``:

    ``notional[k, s, z] = sum over {i : k_i = k, side_i = s, zone_i = z} of |q_i| L_i``,

    with ``zone_i = "below"`` if ``L_i < mark`` else ``"above"``. So the total notional over the
    frame equals ``sum_i |q_i| L_i`` over the positions kept.

    Positions without a positive, finite liquidation price are left out: cross-margin rows
    (NaN in a population frame), and prices clipped to 0 by
    :func:`~deleverage.rules.margin.liquidation_price_isolated` (a long that cannot be liquidated).

    Parameters
    ----------
    liquidation_prices
        Liquidation price of each position, quote per base (NaN allowed: left out).
    sizes
        Size of each position in base units, signed (long > 0) or absolute: only ``|size|`` is
        used, and a negative size must belong to a short.
    sides
        ``+1`` (long) or ``-1`` (short) for each position.
    mark_price
        Current mark price, ``> 0``; splits each bucket into the zones below and above it.
    bucket_width
        Width of a price bucket, quote per base, ``> 0``.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty (bucket, side, zone), sorted by ``bucket_low``, then side (long
        first), then zone, with the columns of :data:`HEATMAP_COLUMNS`: ``bucket_low``,
        ``bucket_high`` (price edges), ``side`` (``"long"``/``"short"``), ``zone``
        (``"below"``/``"above"`` the mark), ``count`` (positions), ``size`` (sum of ``|q|``,
        base), ``notional`` (quote) and ``distance``, the bucket midpoint's relative distance
        from the mark, ``(bucket_low + bucket_high) / 2 / mark - 1``.

    Raises
    ------
    ValidationError
        If the arrays differ in length or are not 1-D, a side is not ``+1``/``-1``, a size is
        not finite or negative for a long, a liquidation price is negative or
        infinite, or ``mark_price`` or ``bucket_width`` is not a finite number ``> 0``.

    Examples
    --------
    >>> frame = liquidation_heatmap(
    ...     [59_100.0, 59_400.0, 61_200.0], [1.0, 2.0, -0.5], [1, 1, -1], 60_000.0,
    ...     bucket_width=500.0,
    ... )
    >>> frame[["bucket_low", "side", "count", "notional"]].values.tolist()
    [[59000.0, 'long', 2, 177900.0], [61000.0, 'short', 1, 30600.0]]
    """
    mark = _positive("mark_price", mark_price)
    width = _positive("bucket_width", bucket_width)
    price = _vector("liquidation_prices", liquidation_prices)
    size = _vector("sizes", sizes)
    side = _vector("sides", sides)
    if not (len(price) == len(size) == len(side)):
        lengths = (len(price), len(size), len(side))
        raise ValidationError("sizes", lengths, "must have one entry per liquidation price")
    _check_rows("sides", side, (side != 1.0) & (side != -1.0), "must be +1 (long) or -1 (short)")
    _check_rows("sizes", size, ~np.isfinite(size), "must be finite")
    _check_rows("sizes", size, (size < 0.0) & (side > 0.0), "must be >= 0 for a long")
    _check_rows("liquidation_prices", price, np.isinf(price) | (price < 0.0), "must be >= 0")

    keep = np.isfinite(price) & (price > 0.0)
    price, size, side = price[keep], np.abs(size[keep]), side[keep]
    bucket = np.floor(price / width)
    rows = pd.DataFrame(
        {
            "bucket": bucket,
            "side": np.where(side > 0.0, "long", "short"),
            "zone": np.where(price < mark, "below", "above"),
            "size": size,
            "notional": size * price,
        }
    )
    grouped = rows.groupby(["bucket", "side", "zone"], sort=True).agg(
        count=("size", "size"), size=("size", "sum"), notional=("notional", "sum")
    )
    frame = grouped.reset_index()
    frame["bucket_low"] = frame["bucket"] * width
    frame["bucket_high"] = (frame["bucket"] + 1.0) * width
    frame["distance"] = (frame["bucket_low"] + frame["bucket_high"]) / (2.0 * mark) - 1.0
    frame["count"] = frame["count"].astype(np.int64)
    frame["side"] = frame["side"].astype(object)
    frame["zone"] = frame["zone"].astype(object)
    return frame.loc[:, list(HEATMAP_COLUMNS)].reset_index(drop=True)


def _check_rows(field: str, values: FloatArray, bad: npt.NDArray[np.bool_], rule: str) -> None:
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"{field}[{k}]", float(values[k]), rule)


def largest_clusters(frame: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """Name the ``n`` largest long buckets below the mark and short buckets above it.

    Support clusters are the buckets of long liquidations below the mark (forced selling on a
    fall); resistance clusters are the buckets of short liquidations above it (forced buying on
    a rise). Each kind is ranked by notional, largest first; equal notionals rank the bucket
    nearer the mark first.

    Parameters
    ----------
    frame
        A frame returned by :func:`liquidation_heatmap`.
    n
        How many buckets of each kind to name, ``>= 1``.

    Returns
    -------
    pandas.DataFrame
        At most ``2 n`` rows, support first, with the columns of :data:`CLUSTER_COLUMNS`:
        ``kind`` (``"support"``/``"resistance"``), ``rank`` (1 = largest) and the bucket's
        ``bucket_low``, ``bucket_high``, ``count``, ``size``, ``notional`` and ``distance``.

    Raises
    ------
    ValidationError
        If ``n`` is not an integer ``>= 1`` or ``frame`` lacks a heatmap column.

    Examples
    --------
    >>> frame = liquidation_heatmap(
    ...     [59_100.0, 58_400.0, 61_200.0], [1.0, 2.0, -0.5], [1, 1, -1], 60_000.0,
    ...     bucket_width=500.0,
    ... )
    >>> largest_clusters(frame, 1)[["kind", "bucket_low", "notional"]].values.tolist()
    [['support', 58000.0, 116800.0], ['resistance', 61000.0, 30600.0]]
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValidationError("n", n, "must be an integer >= 1")
    missing = [c for c in HEATMAP_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError("frame", missing, "must have the columns of liquidation_heatmap")
    parts = []
    for kind, side, zone in (("support", "long", "below"), ("resistance", "short", "above")):
        chosen = frame[(frame["side"] == side) & (frame["zone"] == zone)].copy()
        chosen["nearness"] = chosen["distance"].abs()
        chosen = chosen.sort_values(
            ["notional", "nearness"], ascending=[False, True], kind="stable"
        ).head(int(n))
        chosen.insert(0, "kind", kind)
        chosen.insert(1, "rank", np.arange(1, len(chosen) + 1, dtype=np.int64))
        parts.append(chosen.loc[:, list(CLUSTER_COLUMNS)])
    return pd.concat(parts, ignore_index=True)
