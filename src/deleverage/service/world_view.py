"""The service's exchange as one venue of a world: heatmaps, criticality and its alert.

A service runs one exchange; the other venues of its world come from a world run's
``levels.parquet`` (``deleverage run <world>`` writes it: every venue's open positions and
liquidation prices at the end of the run), named by ``ServiceSettings.world_levels``. The
service's own positions are read live (:meth:`~deleverage.engine.venue.PerpVenue.
liquidation_levels`, venue ``world_venue``, assets named by the market symbols). So:

- ``GET /v1/world/heatmap`` returns each venue's liquidation heatmap side by side and the world's
  (:func:`~deleverage.analytics.world_views.world_heatmaps`);
- ``GET /v1/world/criticality`` the branching ratio at a shock and the critical shock of each
  venue and of the world through the asset's shared book
  (:func:`~deleverage.analytics.world_views.world_criticality`; ``world_depth_per_pct`` gives
  the book's depth per asset);
- after a mark of a market listed in ``world_depth_per_pct``, :meth:`WorldView.derive` adds a
  ``world_criticality`` notification when the world's branching ratio at
  ``world_alert_shock`` rises to ``world_alert_ratio`` or more (``active: true``) and when it
  falls back below (``active: false``), once per crossing, like the other level alerts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from deleverage.analytics.world_views import (
    WORLD,
    linear_depth_per_price,
    world_criticality,
    world_heatmaps,
)
from deleverage.engine.events import EventKind
from deleverage.engine.exchange import Exchange
from deleverage.engine.venue import PerpVenue
from deleverage.errors import ConfigError, UnknownEntityError

__all__ = ["WorldView"]

_LEVEL_COLUMNS = ("venue", "asset", "account", "size", "notional", "liquidation_price")


class WorldView:
    """Levels of the other venues (loaded once) and the alert state."""

    def __init__(
        self,
        *,
        levels_file: str | None,
        venue: str,
        depth_per_pct: dict[str, float],
        alert_ratio: float,
        alert_shock: float,
    ) -> None:
        self.venue = venue
        self.depth_per_pct = dict(depth_per_pct)
        self.alert_ratio = alert_ratio
        self.alert_shock = alert_shock
        self.others: dict[str, pd.DataFrame] = {}
        if levels_file is not None:
            path = Path(levels_file)
            if not path.is_file():
                raise ConfigError(
                    "world_levels", levels_file, "must be a world run's levels.parquet"
                )
            frame = pd.read_parquet(path)
            missing = [c for c in _LEVEL_COLUMNS if c not in frame.columns]
            if missing:
                raise ConfigError(
                    "world_levels", levels_file, f"must have the column {missing[0]!r}"
                )
            for name, rows in frame.groupby("venue", sort=False):
                if str(name) != venue:
                    self.others[str(name)] = rows.drop(columns="venue").reset_index(drop=True)
        self._active: dict[str, bool] = {}

    @property
    def enabled(self) -> bool:
        """Whether the service has a world (other venues or a shared book to alert on)."""
        return bool(self.others) or bool(self.depth_per_pct)

    def levels(self, ex: Exchange) -> dict[str, pd.DataFrame]:
        """Every venue's levels: this service's (live) first, then the world run's."""
        own = PerpVenue(ex, name=self.venue).liquidation_levels() if ex.markets else None
        out = {} if own is None else {self.venue: own}
        out.update(self.others)
        return out

    def _price(self, ex: Exchange, asset: str) -> float:
        try:
            return float(ex.markets[ex.market_id(asset)].mark)
        except UnknownEntityError:
            rows = [f[f["asset"] == asset] for f in self.others.values()]
            notional = sum(float(r["notional"].sum()) for r in rows)
            size = sum(float(np.abs(r["size"]).sum()) for r in rows)
            if size <= 0.0:
                raise
            return notional / size

    def heatmap(self, ex: Exchange, asset: str, bucket_width: float) -> dict[str, Any]:
        """Buckets per venue and for the world (JSON-ready)."""
        price = self._price(ex, asset)
        frame = world_heatmaps(self.levels(ex), asset=asset, price=price, bucket_width=bucket_width)
        venues: dict[str, list[dict[str, Any]]] = {}
        for name, rows in frame.groupby("venue", sort=False):
            venues[str(name)] = rows.drop(columns="venue").to_dict(orient="records")
        return {"asset": asset, "price": price, "bucket_width": bucket_width, "venues": venues}

    def criticality(self, ex: Exchange, asset: str, shock: float) -> list[dict[str, Any]]:
        """Rows of :func:`world_criticality` (JSON-ready, NaN as None)."""
        depth = self.depth_per_pct.get(asset)
        if depth is None:
            raise ConfigError(
                "asset",
                asset,
                f"must have a shared-book depth ({sorted(self.depth_per_pct)})",
            )
        price = self._price(ex, asset)
        frame = world_criticality(
            self.levels(ex), asset=asset, price=price,
            depth_per_price=linear_depth_per_price(depth, price), shock=shock,
        )  # fmt: skip
        records: list[dict[str, Any]] = (
            frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        )
        return records

    def derive(self, ex: Exchange, rows: pa.Table, ts_ns: int) -> list[dict[str, Any]]:
        """``world_criticality`` notifications after marks (see the module docstring)."""
        out: list[dict[str, Any]] = []
        if not self.depth_per_pct or rows.num_rows == 0:
            return out
        kinds = np.asarray(rows["kind"])
        markets = np.asarray(rows["market"])[kinds == int(EventKind.MARK_PRICE)]
        for m in sorted({int(m) for m in markets if m >= 0}):
            asset = ex.markets[m].spec.symbol
            if asset not in self.depth_per_pct:
                continue
            table = pd.DataFrame(self.criticality(ex, asset, self.alert_shock))
            world = table[table["venue"] == WORLD]
            worst = world.loc[world["branching_ratio"].astype(float).idxmax()]
            ratio = float(worst["branching_ratio"])
            active = ratio >= self.alert_ratio
            if active != self._active.get(asset, False):
                self._active[asset] = active
                out.append(
                    {
                        "seq": 0, "ts_ns": int(ts_ns), "kind": "world_criticality",
                        "account": None, "market": asset,
                        "data": {
                            "active": active, "branching_ratio": ratio,
                            "direction": str(worst["direction"]), "shock": self.alert_shock,
                            "alert_ratio": self.alert_ratio,
                            "critical_shock": None if pd.isna(worst["critical_shock"])
                            else float(worst["critical_shock"]),
                            "venues": sorted(self.levels(ex)),
                        },
                    }
                )  # fmt: skip
        return out
