"""Index and oracle feeds: how the price a venue uses is built from outside sources.

A venue's **index** is a weighted median of several sources (spot venues, other perps): one
source that lags, drops out or is pushed by an attacker moves a median only if it carries half
the weight or more (:func:`weighted_median`). The **oracle** is the index as published: on
chain, a push oracle (Chainlink-style) publishes a new value only when it moves by the deviation
threshold or when the heartbeat expires, and every publication arrives some latency after the
observation (:func:`push_feed`); Maker's Oracle Security Module (OSM) delays the price by one
hop, an hour: the value in force during hour ``h`` is the one read at the start of hour
``h - 1`` (:func:`osm_delayed`). A feed whose last publication is older than a tolerance is
*stale* and is flagged (:func:`staleness`).

All functions are pure, take float64 arrays on the simulator's grid ``t_k = k dt_s`` and return
arrays of the same length. Formulas and sources: docs/formulas.md, section 17.4.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from deleverage.errors import ValidationError
from deleverage.prices.kernels import push_observations_nb

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Maker OSM's hop: one hour (``OSM.hop = 3600``; makerdao/osm ``src/osm.sol``).
OSM_HOP_S = 3600.0


def weighted_median(prices: npt.ArrayLike, weights: npt.ArrayLike) -> FloatArray:
    """Weighted median across sources, per row: the smallest price whose cumulative weight
    reaches half the total (NaN prices are dropped and their weight with them).

    Parameters
    ----------
    prices
        ``(n_steps, n_sources)`` prices (NaN: the source is out at that step).
    weights
        ``(n_sources,)`` weights, >= 0, not all 0.

    Returns
    -------
    ``(n_steps,)`` medians; NaN where every source is out.

    Examples
    --------
    One of three equal sources pushed 50% up does not move the median; with weight 3 of 5 it
    does.

    >>> weighted_median([[100.0, 100.0, 150.0]], [1.0, 1.0, 1.0]).tolist()
    [100.0]
    >>> weighted_median([[100.0, 100.0, 150.0]], [1.0, 1.0, 3.0]).tolist()
    [150.0]
    """
    p = np.atleast_2d(np.asarray(prices, dtype=np.float64))
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) != p.shape[1]:
        raise ValidationError("weights", w.shape, f"must have one weight per source ({p.shape[1]})")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValidationError("weights", w.tolist(), "must be finite, >= 0 and not all 0")
    order = np.argsort(np.where(np.isnan(p), np.inf, p), axis=1)
    sorted_p = np.take_along_axis(p, order, axis=1)
    sorted_w = np.where(np.isnan(sorted_p), 0.0, w[order])
    cumulative = np.cumsum(sorted_w, axis=1)
    total = cumulative[:, -1:]
    first = np.argmax(cumulative >= 0.5 * total - 1e-12 * total, axis=1)
    out: FloatArray = sorted_p[np.arange(len(p)), first]
    out[total[:, 0] <= 0.0] = np.nan
    return out


def lagged(path: npt.ArrayLike, lag_s: float, dt_s: float) -> FloatArray:
    """``path`` seen ``lag_s`` late: ``y_k = x_(k - ceil(lag / dt))`` (the first value before
    the start)."""
    x = np.asarray(path, dtype=np.float64)
    steps = math.ceil(lag_s / dt_s - 1e-9) if lag_s > 0 else 0
    if steps == 0:
        return x.copy()
    out = np.empty_like(x)
    out[: min(steps, len(x))] = x[0]
    out[steps:] = x[: max(len(x) - steps, 0)]
    return out


def push_feed(
    source: npt.ArrayLike,
    dt_s: float,
    *,
    heartbeat_s: float = math.inf,
    deviation: float = 0.0,
    latency_s: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """A push oracle over ``source``: published value and the time of its observation.

    A new observation is taken at step ``k`` when ``|x_k / p - 1| >= deviation`` (``p`` the
    last observed value) or when ``heartbeat_s`` has passed since the last observation; it is
    published ``latency_s`` later. ``deviation = 0`` and no heartbeat observes every step.
    NaN observations (a source out) are skipped.

    Returns
    -------
    published
        The value in force at each step (the first observation before anything is published).
    observed_at_s
        When the value in force was observed (seconds since the start), for staleness.

    Examples
    --------
    A 0.5% threshold and a 3-step heartbeat on a path that drifts by 0.2% a step:

    >>> published, at = push_feed([100, 100.2, 100.4, 100.6, 100.6, 100.6, 100.6], 1.0,
    ...                           heartbeat_s=3.0, deviation=0.005)
    >>> published.round(1).tolist(), at.tolist()
    ([100.0, 100.0, 100.0, 100.6, 100.6, 100.6, 100.6], [0.0, 0.0, 0.0, 3.0, 3.0, 3.0, 6.0])
    """
    x = np.asarray(source, dtype=np.float64)
    if not dt_s > 0:
        raise ValidationError("dt_s", dt_s, "must be > 0")
    for name, value in (("heartbeat_s", heartbeat_s), ("deviation", deviation),
                        ("latency_s", latency_s)):  # fmt: skip
        if not value >= 0:
            raise ValidationError(name, value, "must be >= 0")
    n = len(x)
    obs = push_observations_nb(
        np.ascontiguousarray(x), float(dt_s), float(heartbeat_s), float(deviation)
    )
    if not len(obs):
        return np.full(n, np.nan), np.full(n, np.nan)
    delay = math.ceil(latency_s / dt_s - 1e-9) if latency_s > 0 else 0
    arrive = obs + delay
    # the value in force at step k: the latest observation that has arrived by k
    which = np.searchsorted(arrive, np.arange(n), side="right") - 1
    first = which < 0
    which = np.maximum(which, 0)
    published = x[obs[which]]
    observed_at = obs[which] * dt_s
    published[first] = x[obs[0]]
    observed_at[first] = obs[0] * dt_s
    return published, observed_at.astype(np.float64)


def osm_delayed(source: npt.ArrayLike, dt_s: float, hop_s: float = OSM_HOP_S) -> FloatArray:
    """Maker's OSM: during hop ``h`` (``[h hop, (h + 1) hop)``) the price in force is the one
    read at the start of hop ``h - 1``; the first two hops use the first reading.

    >>> osm_delayed([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1.0, hop_s=2.0).tolist()
    [1.0, 1.0, 1.0, 1.0, 3.0, 3.0]
    """
    x = np.asarray(source, dtype=np.float64)
    if not (dt_s > 0 and hop_s > 0):
        raise ValidationError("hop_s", hop_s, "must be > 0 (with dt_s > 0)")
    t = np.arange(len(x)) * dt_s
    hop = np.floor(t / hop_s + 1e-9)
    read_t = np.maximum(hop - 1.0, 0.0) * hop_s
    k = np.minimum(np.ceil(read_t / dt_s - 1e-9).astype(np.int64), len(x) - 1)
    return np.asarray(x[k], dtype=np.float64)


def staleness(observed_at_s: npt.ArrayLike, dt_s: float, stale_after_s: float) -> BoolArray:
    """Whether the value in force at each step is older than ``stale_after_s`` (NaN: never
    published, stale).

    >>> staleness([0.0, 0.0, 0.0, 3.0], 1.0, 1.5).tolist()
    [False, False, True, False]
    """
    at = np.asarray(observed_at_s, dtype=np.float64)
    age = np.arange(len(at)) * dt_s - at
    return np.asarray(np.isnan(at) | (age > stale_after_s + 1e-9), dtype=np.bool_)
