"""The index and oracle paths of a market, from its exogenous path and its
:class:`~deleverage.sim.pricing.OracleSpec` (precomputed: they do not depend on the venue).

- each source is the exogenous path times ``1 + bias``, lagged, with its outages (NaN) and an
  attacker's push (``x (1 + move)`` during the manipulation window);
- the index is their weighted median (:func:`deleverage.prices.oracles.weighted_median`; held
  at its last value while every source is out, and the feed publishes nothing then, so it
  goes stale);
- the oracle is the index through the push feed (heartbeat, deviation, latency), then the OSM
  delay when asked; the value in force is flagged stale past ``stale_after_s``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.prices import oracles
from deleverage.sim.pricing import OracleSpec

FloatArray = npt.NDArray[np.float64]


class OraclePaths(NamedTuple):
    """Per step: the venue's index, its oracle (quote/base) and whether the oracle is stale."""

    index_price: FloatArray
    oracle_price: FloatArray
    stale: npt.NDArray[np.bool_]


def source_paths(spec: OracleSpec, exogenous: FloatArray, dt_s: float) -> FloatArray:
    """``(n_steps + 1, n_sources)`` prices of the sources (NaN while a source is out)."""
    t = np.arange(len(exogenous)) * dt_s
    columns = []
    for source in spec.sources:
        p = oracles.lagged(exogenous, source.lag_s, dt_s) * (1.0 + source.bias)
        push = source.manipulation
        if push is not None:
            window = (t >= push.start_s - 1e-9) & (t < push.start_s + push.duration_s - 1e-9)
            p = np.where(window, p * (1.0 + push.move), p)
        for start, duration in source.outages:
            p = np.where((t >= start - 1e-9) & (t < start + duration - 1e-9), np.nan, p)
        columns.append(p)
    return np.column_stack(columns)


def oracle_paths(spec: OracleSpec, exogenous: FloatArray, dt_s: float) -> OraclePaths:
    """The index, oracle and staleness of one market (see the module docstring)."""
    x = np.asarray(exogenous, dtype=np.float64)
    if spec.sources:
        weights = np.array([s.weight for s in spec.sources])
        raw = oracles.weighted_median(source_paths(spec, x, dt_s), weights)
        if np.isnan(raw).all():
            raw = x.copy()
        index = pd.Series(raw).ffill().bfill().to_numpy()  # every source out: hold it
    else:
        raw = index = x.copy()
    published, observed_at = oracles.push_feed(
        raw, dt_s,
        heartbeat_s=spec.heartbeat_s if spec.heartbeat_s is not None else float("inf"),
        deviation=spec.deviation, latency_s=spec.latency_s,
    )  # fmt: skip
    if spec.osm_hop_s is not None:
        published = oracles.osm_delayed(published, dt_s, spec.osm_hop_s)
        # the value in force was observed a hop before the current one began, at the latest
        t = np.arange(len(x)) * dt_s
        hop = np.floor(t / spec.osm_hop_s + 1e-9)
        observed_at = np.maximum(hop - 1.0, 0.0) * spec.osm_hop_s
    if spec.stale_after_s is None:
        stale = np.zeros(len(x), dtype=np.bool_)
    else:
        stale = oracles.staleness(observed_at, dt_s, spec.stale_after_s)
    return OraclePaths(index, published, stale)
