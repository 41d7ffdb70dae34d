"""Where a cascade happened and whom it hit: the crash window and the liquidation breakdown.

Pure functions of a run's per-step frame and journal (no replay):

- :func:`crash_window`: the stretch of the run around the mark's largest drawdown, from the
  peak before it to its trough, padded by a tenth of its length on each side (at least one
  minute), so the report can zoom on it;
- :func:`liquidation_breakdown`: liquidated notional and count by leverage bucket, side and
  margin mode, from the journal's liquidation records joined to the population rows the
  accounts came from (leverage chosen at entry, side, margin mode).
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.events import EventKind

__all__ = ["LEVERAGE_BUCKETS", "crash_window", "liquidation_breakdown"]

#: Edges of the leverage buckets (entry leverage, x); the last bucket is open-ended.
LEVERAGE_BUCKETS = (1.0, 5.0, 10.0, 20.0, 50.0)


def crash_window(t_s: npt.ArrayLike, mark: npt.ArrayLike) -> tuple[float, float]:
    """Start and end (seconds of the run) of the mark's largest drawdown, padded.

    The peak is the running maximum before the deepest fall; the window runs from the peak to
    the trough, widened by 10% of its length on each side (at least 60 s), clipped to the run.

    Examples
    --------
    >>> crash_window([0, 60, 120, 180, 240, 300], [100, 101, 90, 80, 85, 88])
    (0.0, 240.0)
    """
    t = np.asarray(t_s, dtype=np.float64)
    p = np.asarray(mark, dtype=np.float64)
    if len(t) == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(p)
    drawdown = 1.0 - p / peak
    trough = int(np.argmax(drawdown))
    start = int(np.flatnonzero(p[: trough + 1] == peak[trough])[-1])
    pad = max(60.0, 0.1 * (t[trough] - t[start]))
    return float(max(t[0], t[start] - pad)), float(min(t[-1], t[trough] + pad))


def _bucket_labels() -> list[str]:
    edges = LEVERAGE_BUCKETS
    labels = [f"{lo:g}-{hi:g}x" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f">={edges[-1]:g}x"]


def liquidation_breakdown(
    journal: pd.DataFrame,
    populations: dict[int, tuple[npt.NDArray[np.int64], pd.DataFrame]],
) -> pd.DataFrame:
    """Liquidated notional (quote) and liquidation count by leverage bucket, side and mode.

    ``journal`` is the run's journal as a frame (:meth:`Journal.to_frame`); ``populations``
    maps a market id to the engine account ids of its population rows and the rows (columns
    ``side``, ``leverage``, ``margin_mode``). Liquidations of accounts outside the populations
    (none in a simulator run) are left out. Columns: ``leverage``, ``side``, ``margin_mode``,
    ``liquidations``, ``notional``.
    """
    liq = journal[journal["kind"] == int(EventKind.LIQUIDATION)]
    parts = []
    for market, (accounts, frame) in populations.items():
        rows = liq[liq["market"] == market]
        if rows.empty or len(accounts) == 0:
            continue
        order = np.argsort(accounts)
        pos = np.searchsorted(accounts[order], rows["account"].to_numpy())
        pos = np.minimum(pos, len(accounts) - 1)
        found = accounts[order][pos] == rows["account"].to_numpy()
        row_of = order[pos[found]]
        hit = rows[found]
        leverage = frame["leverage"].to_numpy(dtype=np.float64)[row_of]
        bucket = np.searchsorted(np.asarray(LEVERAGE_BUCKETS[1:]), leverage, side="right")
        parts.append(
            pd.DataFrame(
                {
                    "leverage": np.asarray(_bucket_labels())[bucket],
                    "side": np.where(frame["side"].to_numpy()[row_of] > 0, "long", "short"),
                    "margin_mode": np.where(
                        np.asarray(frame["margin_mode"].to_numpy()[row_of]).astype(str) == "cross",
                        "cross",
                        "isolated",
                    ),
                    "notional": np.abs(hit["size"].to_numpy()) * hit["price"].to_numpy(),
                }
            )
        )
    columns = ["leverage", "side", "margin_mode", "liquidations", "notional"]
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts, ignore_index=True)
    grouped = table.groupby(["leverage", "side", "margin_mode"], sort=False).agg(
        liquidations=("notional", "size"), notional=("notional", "sum")
    )
    out = grouped.reset_index()
    rank = {label: k for k, label in enumerate(_bucket_labels())}
    out = out.sort_values(
        ["leverage", "side", "margin_mode"],
        key=lambda s: s.map(rank) if s.name == "leverage" else s,
    )
    return out.reset_index(drop=True).loc[:, columns]
