"""First passage: the probability that the price reaches a position's liquidation price.

A long position is liquidated when the mark price falls to its liquidation price (a *lower*, or
"down", barrier); a short one when the price rises to it (an *upper*, or "up", barrier). Over a
horizon of ``T`` seconds this module gives that probability three ways:

- :func:`gbm_hit_probability`: closed form for geometric Brownian motion monitored
  continuously (reflection principle for Brownian motion with drift in log space);
- :func:`discrete_hit_probability`: the same with the Broadie-Glasserman-Kou continuity
  correction (:func:`bgk_discrete_barrier`), for a price that is checked every ``dt_s`` seconds,
  as a venue's mark price is;
- :func:`mc_hit_probability`: Monte Carlo over simulated or resampled paths, with a confidence
  interval; the paths come from :func:`gbm_paths`, :func:`merton_jump_paths` (jump diffusion) or
  :func:`bootstrap_paths` (resampled historical log returns), or from any other source.

Units: prices in quote per base, time in seconds; drift ``mu``, volatility ``sigma`` and jump
intensities are annualized over a year of :data:`SECONDS_PER_YEAR` = 365 days (crypto venues trade
every day). Paths are time-major, as in :mod:`deleverage.prices.processes`: an array of shape
``(n_steps + 1, n_paths)``, one column per path, row 0 the start price.

A barrier's *direction* is ``"down"`` (``-1``, below the price: a long's liquidation price) or
``"up"`` (``+1``, above: a short's). Functions that take ``direction=None`` infer it from which
side of the start price the barrier lies; a barrier at or beyond the start price counts as hit.

Formulas, sources and worked examples: docs/formulas.md, section "Analytics".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from deleverage import portable_math as pm
from deleverage.errors import ValidationError
from deleverage.prices.processes import SECONDS_PER_YEAR

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ArrayLike = npt.ArrayLike

Direction = Literal["down", "up"]
Interval = Literal["wilson", "normal"]

#: Broadie-Glasserman-Kou constant ``beta = -zeta(1/2) / sqrt(2 pi)`` (about 0.5826).
BGK_BETA: Final[float] = 0.5825971579390107

__all__ = [
    "BGK_BETA",
    "SECONDS_PER_YEAR",
    "HitProbabilityEstimate",
    "bgk_discrete_barrier",
    "bootstrap_paths",
    "discrete_hit_probability",
    "gbm_hit_probability",
    "gbm_paths",
    "mc_hit_probability",
    "merton_jump_paths",
]


class HitProbabilityEstimate(NamedTuple):
    """A Monte Carlo estimate of a hit probability, one entry per barrier."""

    #: Fraction of paths that touched the barrier.
    probability: FloatArray
    #: Lower end of the confidence interval.
    lower: FloatArray
    #: Upper end of the confidence interval.
    upper: FloatArray
    #: Binomial standard error ``sqrt(p (1 - p) / n)``.
    standard_error: FloatArray
    #: Number of paths that touched the barrier.
    hits: IntArray
    #: Number of paths.
    n_paths: int


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _float_array(name: str, value: object) -> FloatArray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(name, value, "must be numeric") from None


def _first_bad(arr: FloatArray, bad: npt.NDArray[np.bool_]) -> object:
    return float(arr[bad].flat[0]) if arr.ndim else float(arr)


def _checked(
    name: str,
    value: object,
    *,
    lower: float | None = None,
    strict: bool = False,
    allow_inf: bool = False,
) -> FloatArray:
    """``value`` as a float array: never NaN, finite unless ``allow_inf``, at least ``lower``."""
    arr = _float_array(name, value)
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        raise ValidationError(name, _first_bad(arr, bad), "must be finite")
    if lower is not None:
        bad = arr <= lower if strict else arr < lower
        if bad.any():
            rule = f"must be {'>' if strict else '>='} {lower:g}"
            raise ValidationError(name, _first_bad(arr, bad), rule)
    return arr


def _positive_scalar(name: str, value: object) -> float:
    arr = _checked(name, value, lower=0.0, strict=True)
    if arr.ndim:
        raise ValidationError(name, value, "must be a number")
    return float(arr)


def _count(name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(name, value, "must be an integer")
    if value < minimum:
        raise ValidationError(name, value, f"must be >= {minimum}")
    return int(value)


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValidationError(
            "rng", type(rng).__name__, "must be a numpy.random.Generator (np.random.default_rng)"
        )
    return rng


def _direction_sign(
    direction: Direction | ArrayLike | None, s0: FloatArray, barrier: FloatArray
) -> FloatArray:
    """Barrier direction as ``-1.0`` (down) or ``+1.0`` (up), broadcast with the barrier."""
    if direction is None:
        start, level = _broadcast(s0, barrier)
        return np.where(level < start, -1.0, 1.0)
    if isinstance(direction, str):
        if direction not in ("down", "up"):
            raise ValidationError("direction", direction, "must be 'down', 'up', -1 or +1")
        shape = _broadcast(s0, barrier)[0].shape
        return np.full(shape, -1.0 if direction == "down" else 1.0)
    eta = _float_array("direction", direction)
    bad = (eta != -1.0) & (eta != 1.0)
    if bad.any():
        raise ValidationError("direction", _first_bad(eta, bad), "must be 'down', 'up', -1 or +1")
    return eta


def _broadcast(*arrays: FloatArray) -> list[FloatArray]:
    try:
        return list(np.broadcast_arrays(*arrays))
    except ValueError:
        shapes = [a.shape for a in arrays]
        raise ValidationError("arguments", shapes, "must broadcast to one shape") from None


def _year_fraction(name: str, seconds: object, seconds_per_year: float) -> FloatArray:
    return _checked(name, seconds, lower=0.0) / _positive_scalar(
        "seconds_per_year", seconds_per_year
    )


# --------------------------------------------------------------------------------------------
# Closed form
# --------------------------------------------------------------------------------------------


class _Reflection(NamedTuple):
    d1: FloatArray
    d2: FloatArray
    term1: FloatArray  # Phi(-eta d1)
    term2: FloatArray  # exp(gamma) Phi(-eta d2), gamma = 2 nu b / sigma^2


def _reflection(
    b: FloatArray, nu: FloatArray, sigma: FloatArray, t: FloatArray, eta: FloatArray
) -> _Reflection:
    # Valid inputs only: sigma > 0, t > 0, eta * b > 0. The second term exp(gamma) Phi(-eta d2)
    # is evaluated without overflow: where eta d2 >= 0 it equals exp(-d1^2/2) erfcx(eta d2/sqrt2)/2
    # (because gamma - d2^2/2 = -d1^2/2), and where eta d2 < 0, gamma <= ln 2 since the term is
    # at most 1 while Phi(-eta d2) >= 1/2.
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        a = sigma * np.sqrt(t)
        d1 = (b - nu * t) / a
        d2 = (b + nu * t) / a
        term1 = special.ndtr(-eta * d1)
        y = eta * d2
        positive = y >= 0.0
        y_pos = np.where(positive, y, 0.0)
        gamma = np.where(positive, 0.0, 2.0 * nu * b / sigma**2)
        term2 = np.where(
            positive,
            0.5 * pm.exp(-0.5 * d1**2) * special.erfcx(y_pos / math.sqrt(2.0)),
            pm.exp(np.minimum(gamma, math.log(2.0))) * special.ndtr(-y),
        )
    return _Reflection(d1, d2, term1, term2)


class _Cases(NamedTuple):
    crossed: npt.NDArray[np.bool_]  # at or beyond the barrier already: probability 1
    regular: npt.NDArray[np.bool_]  # sigma^2 t > 0 and the barrier reachable
    flat: npt.NDArray[np.bool_]  # sigma^2 t == 0, t > 0, the barrier reachable: deterministic


def _cases(
    s0: FloatArray, barrier: FloatArray, sigma: FloatArray, t: FloatArray, eta: FloatArray
) -> _Cases:
    crossed = eta * (barrier - s0) <= 0.0
    reachable = ~crossed & (((eta < 0) & (barrier > 0.0)) | ((eta > 0) & np.isfinite(barrier)))
    variance = sigma**2 * t
    return _Cases(crossed, reachable & (variance > 0.0), reachable & (variance == 0.0) & (t > 0))


def _log_distance(s0: FloatArray, barrier: FloatArray, mask: npt.NDArray[np.bool_]) -> FloatArray:
    distance: FloatArray = pm.log(np.where(mask, barrier, 1.0) / np.where(mask, s0, 1.0))
    return distance


def _hit_probability(
    s0: FloatArray,
    barrier: FloatArray,
    mu: FloatArray,
    sigma: FloatArray,
    t: FloatArray,
    eta: FloatArray,
) -> FloatArray:
    s0, barrier, mu, sigma, t, eta = _broadcast(s0, barrier, mu, sigma, t, eta)
    cases = _cases(s0, barrier, sigma, t, eta)
    out = np.where(cases.crossed, 1.0, 0.0)
    b = _log_distance(s0, barrier, cases.regular | cases.flat)
    r = cases.regular
    if r.any():
        nu = mu[r] - 0.5 * sigma[r] ** 2
        terms = _reflection(b[r], nu, sigma[r], t[r], eta[r])
        out[r] = np.clip(terms.term1 + terms.term2, 0.0, 1.0)
    f = cases.flat
    if f.any():
        # sigma = 0: the log price moves as mu t and reaches b iff it gets there by t = T.
        out[f] = np.where(eta[f] * mu[f] * t[f] >= eta[f] * b[f], 1.0, 0.0)
    return out


def gbm_hit_probability(
    s0: ArrayLike,
    barrier: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    horizon_s: ArrayLike,
    *,
    direction: Direction | ArrayLike | None = None,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Probability that GBM touches a barrier within the horizon (continuous monitoring).

    With ``S_t = s0 exp(nu t + sigma W_t)``, ``nu = mu - sigma^2 / 2``, the log distance
    ``b = ln(barrier / s0)``, ``T`` in years and ``eta = -1`` for a down barrier (``b < 0``),
    ``+1`` for an up barrier (``b > 0``):

    ``P = Phi(-eta d1) + exp(2 nu b / sigma^2) Phi(-eta d2)``,
    ``d1 = (b - nu T) / (sigma sqrt(T))``, ``d2 = (b + nu T) / (sigma sqrt(T))``,

    the distribution of the running minimum (maximum) of Brownian motion with drift, from the
    reflection principle and Girsanov's theorem (Shreve 2004, *Stochastic Calculus for Finance
    II*, §7.2; Borodin and Salminen 2002, *Handbook of Brownian Motion*, Part II, Ch. 2).

    Limits handled exactly: a barrier at or beyond ``s0`` gives 1; a down barrier ``<= 0`` or an
    up barrier at ``+inf`` gives 0; ``horizon_s = 0`` gives 0; ``sigma = 0`` gives 1 if the
    deterministic path ``ln(S_t/s0) = mu t`` reaches ``b`` by ``T``, else 0.

    Parameters
    ----------
    s0
        Current price (quote per base), ``> 0``.
    barrier
        Liquidation price: below ``s0`` for a long, above for a short (``+inf`` allowed).
    mu, sigma
        Annualized drift and volatility of the price (``sigma >= 0``).
    horizon_s
        Horizon in seconds (``>= 0``).
    direction
        ``"down"``, ``"up"``, or an array of ``-1`` / ``+1`` per position; inferred from the side
        of ``s0`` the barrier lies on when omitted.
    seconds_per_year
        Length of the year that annualizes ``mu`` and ``sigma`` (default 365 days).

    Returns
    -------
    numpy.ndarray
        Probabilities in ``[0, 1]``, broadcast over the inputs (one per position).

    Raises
    ------
    ValidationError
        On a non-positive ``s0``, negative ``sigma`` or horizon, NaN, or a bad direction.

    Examples
    --------
    >>> p = gbm_hit_probability(100.0, 90.0, 0.0, 0.8, 7 * 86_400)
    >>> round(float(p), 4)
    0.3598
    """
    s = _checked("s0", s0, lower=0.0, strict=True)
    h = _checked("barrier", barrier, allow_inf=True)
    m = _checked("mu", mu)
    v = _checked("sigma", sigma, lower=0.0)
    t = _year_fraction("horizon_s", horizon_s, seconds_per_year)
    eta = _direction_sign(direction, s, h)
    return _hit_probability(s, h, m, v, t, eta)


def bgk_discrete_barrier(
    barrier: ArrayLike,
    sigma: ArrayLike,
    dt_s: ArrayLike,
    direction: Direction | ArrayLike,
    *,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Broadie-Glasserman-Kou continuity correction: the barrier shifted away from the price.

    A barrier monitored every ``dt`` years is approximated by a continuously monitored barrier

    ``H' = H exp(eta beta sigma sqrt(dt))``, ``beta = -zeta(1/2) / sqrt(2 pi) ~ 0.5826``,

    with ``eta = -1`` (down: the barrier moves lower) or ``+1`` (up: higher). The error is
    ``o(sqrt(dt))`` (Broadie, Glasserman and Kou 1997, *Mathematical Finance* 7(4), Theorem 1).

    Parameters
    ----------
    barrier
        Barrier price(s).
    sigma
        Annualized volatility (``>= 0``).
    dt_s
        Time between monitoring instants in seconds (``>= 0``).
    direction
        ``"down"``, ``"up"``, or an array of ``-1`` / ``+1``.
    seconds_per_year
        Length of the year (default 365 days).

    Returns
    -------
    numpy.ndarray
        The shifted barrier(s).

    Examples
    --------
    >>> round(float(bgk_discrete_barrier(90.0, 0.8, 3600.0, "down")), 4)
    89.5529
    """
    h = _checked("barrier", barrier, allow_inf=True)
    v = _checked("sigma", sigma, lower=0.0)
    dt = _year_fraction("dt_s", dt_s, seconds_per_year)
    if direction is None:
        raise ValidationError("direction", direction, "must be 'down', 'up', -1 or +1")
    eta = _direction_sign(direction, h, h)
    h, v, dt, eta = _broadcast(h, v, dt, eta)
    return np.asarray(h * pm.exp(eta * BGK_BETA * v * np.sqrt(dt)), dtype=np.float64)


def discrete_hit_probability(
    s0: ArrayLike,
    barrier: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    horizon_s: ArrayLike,
    *,
    dt_s: ArrayLike,
    direction: Direction | ArrayLike | None = None,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Probability that GBM checked every ``dt_s`` seconds is seen at or beyond the barrier.

    :func:`gbm_hit_probability` evaluated at the barrier shifted by
    :func:`bgk_discrete_barrier`: ``P_discrete(H) ~ P_continuous(H exp(eta beta sigma
    sqrt(dt)))``. The price is observed at ``0, dt, 2 dt, ..., T``; a barrier at or beyond
    ``s0`` is hit at time 0. The approximation is accurate when the barrier is more than a few
    ``sigma sqrt(dt)`` from ``s0`` (Broadie, Glasserman and Kou 1997).

    Parameters
    ----------
    s0, barrier, mu, sigma, horizon_s, direction, seconds_per_year
        As in :func:`gbm_hit_probability`.
    dt_s
        Seconds between two observations of the price (``>= 0``; 0 is continuous monitoring).

    Returns
    -------
    numpy.ndarray
        Probabilities in ``[0, 1]``.

    Examples
    --------
    >>> p = discrete_hit_probability(100.0, 90.0, 0.0, 0.8, 7 * 86_400, dt_s=3600.0)
    >>> round(float(p), 4)
    0.3371
    """
    s = _checked("s0", s0, lower=0.0, strict=True)
    h = _checked("barrier", barrier, allow_inf=True)
    eta = _direction_sign(direction, s, h)
    shifted = bgk_discrete_barrier(h, sigma, dt_s, eta, seconds_per_year=seconds_per_year)
    p = gbm_hit_probability(
        s, shifted, mu, sigma, horizon_s, direction=eta, seconds_per_year=seconds_per_year
    )
    return np.where(eta * (h - s) <= 0.0, 1.0, p)


# --------------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------------


def _z_score(confidence: float) -> float:
    c = _positive_scalar("confidence", confidence)
    if c >= 1.0:
        raise ValidationError("confidence", confidence, "must be in (0, 1)")
    return float(special.ndtri(0.5 + 0.5 * c))


def _binomial_interval(
    hits: IntArray, n: int, z: float, interval: Interval
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    p = hits / n
    se = np.sqrt(p * (1.0 - p) / n)
    if interval == "normal":
        return p, np.clip(p - z * se, 0.0, 1.0), np.clip(p + z * se, 0.0, 1.0), se
    # Wilson (1927) score interval.
    z2n = z * z / n
    centre = (p + 0.5 * z2n) / (1.0 + z2n)
    half = z / (1.0 + z2n) * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return p, np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0), se


def _path_chunks(paths: FloatArray | Iterable[FloatArray]) -> Iterable[FloatArray]:
    if isinstance(paths, np.ndarray):
        yield paths
    else:
        yield from paths


def mc_hit_probability(
    paths: FloatArray | Iterable[FloatArray],
    barrier: ArrayLike,
    *,
    direction: Direction | ArrayLike | None = None,
    confidence: float = 0.95,
    interval: Interval = "wilson",
) -> HitProbabilityEstimate:
    """Fraction of simulated paths that touch each barrier, with a confidence interval.

    A path touches a down barrier ``H`` if its minimum over the monitored points is ``<= H``,
    an up barrier if its maximum is ``>= H``. The estimate ``p = hits / n`` comes with the
    Wilson score interval (Wilson 1927; recommended by Brown, Cai and DasGupta 2001)

    ``(p + z^2/(2n) +- z sqrt(p (1 - p)/n + z^2/(4 n^2))) / (1 + z^2/n)``

    or the normal interval ``p +- z sqrt(p (1 - p) / n)``, ``z = Phi^-1((1 + confidence) / 2)``.

    Paths are monitored only at their points: the estimate targets the *discrete* hit
    probability (compare with :func:`discrete_hit_probability`, not the continuous formula).
    Many barriers (one per position on the same underlying) cost one sort of the path extremes
    and a binary search each.

    Parameters
    ----------
    paths
        Prices, shape ``(n_steps + 1, n_paths)`` (one column per path, row 0 the start), or an
        iterable of such arrays (chunks of paths with the same start, to bound memory).
    barrier
        Barrier price(s).
    direction
        ``"down"``, ``"up"`` or ``-1`` / ``+1`` per barrier; inferred from the start price when
        omitted, which then must be the same for all paths.
    confidence
        Confidence level of the interval, in ``(0, 1)``.
    interval
        ``"wilson"`` (default) or ``"normal"``.

    Returns
    -------
    HitProbabilityEstimate
        Estimate, interval, standard error and hit counts, one entry per barrier.

    Raises
    ------
    ValidationError
        On paths that are not a finite 2-D array, no paths, or a bad argument.

    Examples
    --------
    >>> paths = np.array([[100.0, 100.0, 100.0], [95.0, 101.0, 98.0], [89.0, 104.0, 91.0]])
    >>> est = mc_hit_probability(paths, [90.0, 103.0])
    >>> est.hits.tolist(), est.probability.round(3).tolist()
    ([1, 1], [0.333, 0.333])
    """
    if interval not in ("wilson", "normal"):
        raise ValidationError("interval", interval, "must be 'wilson' or 'normal'")
    z = _z_score(confidence)
    h = _checked("barrier", barrier, allow_inf=True)
    minima: list[FloatArray] = []
    maxima: list[FloatArray] = []
    starts: list[FloatArray] = []
    for chunk in _path_chunks(paths):
        arr = _float_array("paths", chunk)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValidationError("paths", arr.shape, "must have shape (n_steps + 1, n_paths)")
        if not np.isfinite(arr).all():
            raise ValidationError("paths", "non-finite price", "must be finite")
        minima.append(arr.min(axis=0))
        maxima.append(arr.max(axis=0))
        starts.append(arr[0])
    n = sum(m.size for m in minima)
    if n == 0:
        raise ValidationError("paths", 0, "must hold at least one path")
    if direction is None:
        start = np.concatenate(starts)
        if not (start == start[0]).all():
            raise ValidationError(
                "paths", "different start prices", "must share one start price to infer direction"
            )
        eta = _direction_sign(None, np.asarray(start[0]), h)
    else:
        eta = _direction_sign(direction, h, h)
    h, eta = _broadcast(h, eta)
    low = np.sort(np.concatenate(minima))
    high = np.sort(np.concatenate(maxima))
    down_hits = np.searchsorted(low, h, side="right")
    up_hits = n - np.searchsorted(high, h, side="left")
    hits = np.asarray(np.where(eta < 0, down_hits, up_hits), dtype=np.int64)
    p, lower, upper, se = _binomial_interval(hits, n, z, interval)
    return HitProbabilityEstimate(p, lower, upper, se, hits, n)


def _paths_from_log_returns(s0: float, log_returns: FloatArray) -> FloatArray:
    n_steps, n_paths = log_returns.shape
    out = np.empty((n_steps + 1, n_paths), dtype=np.float64)
    out[0] = 0.0
    np.cumsum(log_returns, axis=0, out=out[1:])
    pm.exp(out, out=out)
    out *= s0
    return out


def merton_jump_paths(
    s0: float,
    *,
    mu: float,
    sigma: float,
    jump_intensity: float,
    jump_mean: float,
    jump_std: float,
    dt_s: float,
    n_steps: int,
    n_paths: int,
    rng: np.random.Generator,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Simulate many paths of Merton's jump diffusion, exactly in log space.

    Per step of ``dt`` years, with ``N ~ Poisson(lambda dt)`` jumps of log size
    ``Y ~ N(m, s^2)`` (Merton 1976, *J. Financial Economics* 3, 125-144):

    ``ln(S_{k+1}/S_k) = (mu - sigma^2/2 - lambda kappa) dt + sigma sqrt(dt) Z + m N + s sqrt(N) W``

    with ``kappa = exp(m + s^2/2) - 1``, so that ``E[S_t] = s0 e^{mu t}``. With
    ``jump_intensity = 0`` this is GBM (:func:`gbm_paths`) and draws no Poisson variates.

    Parameters
    ----------
    s0
        Start price (quote per base), ``> 0``.
    mu, sigma
        Annualized drift and diffusion volatility (``sigma >= 0``).
    jump_intensity
        ``lambda``: expected jumps per year (``>= 0``).
    jump_mean, jump_std
        ``m`` and ``s``: mean and standard deviation of the log jump size (``s >= 0``).
    dt_s
        Step length in seconds (``> 0``).
    n_steps, n_paths
        Number of steps (``>= 1``) and of independent paths (``>= 1``).
    rng
        Source of randomness.
    seconds_per_year
        Length of the year (default 365 days).

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(n_steps + 1, n_paths)``; row 0 is ``s0``.
    """
    start = _positive_scalar("s0", s0)
    drift = float(_checked("mu", mu))
    vol = float(_checked("sigma", sigma, lower=0.0))
    intensity = float(_checked("jump_intensity", jump_intensity, lower=0.0))
    j_mean = float(_checked("jump_mean", jump_mean))
    j_std = float(_checked("jump_std", jump_std, lower=0.0))
    dt = _positive_scalar("dt_s", dt_s) / _positive_scalar("seconds_per_year", seconds_per_year)
    steps = _count("n_steps", n_steps, minimum=1)
    count = _count("n_paths", n_paths, minimum=1)
    generator = _check_rng(rng)

    kappa = math.expm1(j_mean + 0.5 * j_std**2)
    log_returns = generator.standard_normal((steps, count))
    log_returns *= vol * math.sqrt(dt)
    log_returns += (drift - 0.5 * vol**2 - intensity * kappa) * dt
    if intensity > 0.0:
        n_jumps = generator.poisson(intensity * dt, size=(steps, count))
        jumped = np.nonzero(n_jumps)
        k = n_jumps[jumped].astype(np.float64)
        log_returns[jumped] += j_mean * k + j_std * np.sqrt(k) * generator.standard_normal(k.size)
    return _paths_from_log_returns(start, log_returns)


def gbm_paths(
    s0: float,
    *,
    mu: float,
    sigma: float,
    dt_s: float,
    n_steps: int,
    n_paths: int,
    rng: np.random.Generator,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Simulate many GBM paths exactly: ``ln(S_{k+1}/S_k) ~ N((mu - sigma^2/2) dt, sigma^2 dt)``.

    :func:`merton_jump_paths` without jumps. Returns prices of shape ``(n_steps + 1, n_paths)``.

    Examples
    --------
    >>> paths = gbm_paths(100.0, mu=0.0, sigma=0.5, dt_s=60.0, n_steps=10, n_paths=3,
    ...                   rng=np.random.default_rng(0))
    >>> paths.shape
    (11, 3)
    """
    return merton_jump_paths(
        s0,
        mu=mu,
        sigma=sigma,
        jump_intensity=0.0,
        jump_mean=0.0,
        jump_std=0.0,
        dt_s=dt_s,
        n_steps=n_steps,
        n_paths=n_paths,
        rng=rng,
        seconds_per_year=seconds_per_year,
    )


def bootstrap_paths(
    s0: float,
    log_returns: ArrayLike,
    *,
    n_steps: int,
    n_paths: int,
    rng: np.random.Generator,
    block_length: int = 1,
    circular: bool = False,
) -> FloatArray:
    """Build price paths by resampling historical log returns (block bootstrap).

    Each path is ``s0 exp(cumsum(r))`` where ``r`` concatenates blocks of ``block_length``
    consecutive returns from ``log_returns``, each starting at an index drawn uniformly (the
    moving block bootstrap, Künsch 1989, *Annals of Statistics* 17(3); with ``circular=True``
    blocks wrap around the end, the circular bootstrap of Politis and Romano 1992). Blocks keep
    the short-range dependence of the data (volatility clusters); ``block_length=1`` is the iid
    bootstrap. One step of a path lasts one sampling interval of the data.

    Parameters
    ----------
    s0
        Start price, ``> 0``.
    log_returns
        1-D array of historical log returns ``ln(P_{i+1}/P_i)`` (finite, at least
        ``block_length`` of them).
    n_steps, n_paths
        Number of steps (``>= 1``) and of paths (``>= 1``).
    rng
        Source of randomness.
    block_length
        Length of the resampled blocks (``>= 1``).
    circular
        Let blocks wrap around the end of the data.

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(n_steps + 1, n_paths)``.

    Examples
    --------
    >>> paths = bootstrap_paths(100.0, [0.01, -0.01], n_steps=4, n_paths=2,
    ...                         rng=np.random.default_rng(0))
    >>> paths.shape
    (5, 2)
    """
    start = _positive_scalar("s0", s0)
    r = _checked("log_returns", log_returns)
    if r.ndim != 1 or r.size == 0:
        raise ValidationError("log_returns", r.shape, "must be a non-empty 1-D array")
    steps = _count("n_steps", n_steps, minimum=1)
    count = _count("n_paths", n_paths, minimum=1)
    length = _count("block_length", block_length, minimum=1)
    if length > r.size:
        raise ValidationError(
            "block_length", length, f"must be <= the number of log returns ({r.size})"
        )
    generator = _check_rng(rng)

    n_blocks = -(-steps // length)
    n_starts = r.size if circular else r.size - length + 1
    first = generator.integers(0, n_starts, size=(n_blocks, count))
    index = first[:, None, :] + np.arange(length)[None, :, None]  # (block, offset, path)
    index = index.reshape(n_blocks * length, count)[:steps]
    if circular:
        index %= r.size
    return _paths_from_log_returns(start, r[index])
