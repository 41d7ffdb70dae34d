"""Greeks of a liquidatable position and sensitivities of its liquidation probability.

A linear perpetual position of ``q`` base units (``q > 0`` long) entered at price ``E`` is worth
``q (S - E)`` while it lives. When the price reaches its liquidation price ``L`` (below ``S`` for
a long, above for a short) the venue closes it, and from then on its value is frozen at a
constant ``R``, the *knock-out value*: what the trader's PnL is after the liquidation. So the
position is a down-and-out (long) or up-and-out (short) forward with a rebate ``R`` (Merton 1973,
Reiner and Rubinstein 1991). Assumptions:

- the price follows GBM with annualized drift ``mu`` (0 by default: zero rates and zero funding,
  the forward is the spot) and volatility ``sigma``; the barrier is monitored continuously;
- no discounting (zero rates), so when ``R`` is paid does not matter;
- ``R`` is a constant. By default ``R = q (L - E)``: the position is closed exactly at the
  liquidation price with no penalty. For an isolated position whose remaining margin goes to the
  insurance fund as the liquidation penalty, ``R = -collateral + remaining``, where ``remaining``
  is what the venue returns after the penalty (0 on most venues); a fill worse than ``L`` is the
  insurance fund's loss, not the trader's.

With ``mu = 0`` the price is a martingale and, by optional stopping,
``E[q (S_{tau ^ T} - E)] = q (S - E)``; hence the value is
``q (S - E) - (q (L - E) - R) P_hit``: the position's whole non-linearity is the penalty
``q (L - E) - R`` times a one-touch binary, and delta and gamma follow from the hit
probability's derivatives.

Functions:

- :func:`knockout_forward_greeks`: value, delta and gamma in closed form (vectorized over
  positions);
- :func:`mc_knockout_forward_greeks`: the same by Monte Carlo bump-and-revalue with common
  random numbers, for any path simulator (jumps, bootstrap), optionally with the Brownian-bridge
  crossing correction between monitoring points;
- :func:`hit_probability_sensitivities`: ``dP/dS`` and ``dP/dsigma`` of the closed-form hit
  probability of :func:`deleverage.analytics.first_passage.gbm_hit_probability`.

Derivations and worked examples: docs/formulas.md, section "Analytics".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from deleverage import portable_math as pm
from deleverage.analytics.first_passage import (
    SECONDS_PER_YEAR,
    Direction,
    _broadcast,
    _cases,
    _checked,
    _direction_sign,
    _float_array,
    _log_distance,
    _positive_scalar,
    _reflection,
    _year_fraction,
)
from deleverage.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

#: A path simulator for :func:`mc_knockout_forward_greeks`: ``(spot, rng) -> paths`` of shape
#: ``(n_steps + 1, n_paths)`` whose row 0 is ``spot``.
PathSimulator = Callable[[float, np.random.Generator], FloatArray]

__all__ = [
    "HitProbabilitySensitivities",
    "MonteCarloGreeks",
    "PathSimulator",
    "PositionGreeks",
    "hit_probability_sensitivities",
    "knockout_forward_greeks",
    "mc_knockout_forward_greeks",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class HitProbabilitySensitivities(NamedTuple):
    """Hit probability and its first derivatives, one entry per position."""

    #: ``P``: probability of touching the barrier within the horizon.
    probability: FloatArray
    #: ``dP/dS`` per unit of price (quote per base).
    d_price: FloatArray
    #: ``dP/dsigma`` per unit of annualized volatility (1.0 = 100 vol points).
    d_sigma: FloatArray


class PositionGreeks(NamedTuple):
    """Value (quote), delta (base) and gamma (base per quote-per-base) of positions."""

    value: FloatArray
    delta: FloatArray
    gamma: FloatArray


class MonteCarloGreeks(NamedTuple):
    """Monte Carlo value, delta and gamma of one position, with their standard errors."""

    value: float
    delta: float
    gamma: float
    value_stderr: float
    delta_stderr: float
    gamma_stderr: float
    n_paths: int


class _Derivatives(NamedTuple):
    probability: FloatArray  # P
    d_b: FloatArray  # dP/db, b = ln(barrier / s0)
    d_bb: FloatArray  # d2P/db2
    phi1: FloatArray  # phi(d1)
    terms_2: FloatArray  # exp(gamma) Phi(-eta d2)


def _derivatives(
    b: FloatArray, nu: FloatArray, sigma: FloatArray, t: FloatArray, eta: FloatArray
) -> _Derivatives:
    # P = Phi(-eta d1) + e^gamma Phi(-eta d2); with e^gamma phi(d2) = phi(d1):
    # dP/db   = -2 eta phi(d1)/a + c e^gamma Phi(-eta d2),                  c = 2 nu / sigma^2
    # d2P/db2 = 2 eta d1 phi(d1)/a^2 - eta c phi(d1)/a + c^2 e^gamma Phi(-eta d2)
    r = _reflection(b, nu, sigma, t, eta)
    a = sigma * np.sqrt(t)
    c = 2.0 * nu / sigma**2
    with np.errstate(under="ignore"):
        phi1 = _INV_SQRT_2PI * pm.exp(-0.5 * r.d1**2)
    d_b = -2.0 * eta * phi1 / a + c * r.term2
    d_bb = 2.0 * eta * r.d1 * phi1 / a**2 - eta * c * phi1 / a + c**2 * r.term2
    return _Derivatives(np.clip(r.term1 + r.term2, 0.0, 1.0), d_b, d_bb, phi1, r.term2)


def hit_probability_sensitivities(
    s0: ArrayLike,
    barrier: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    horizon_s: ArrayLike,
    *,
    direction: Direction | ArrayLike | None = None,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> HitProbabilitySensitivities:
    """Derivatives of the GBM hit probability with respect to the price and the volatility.

    With ``P = Phi(-eta d1) + e^gamma Phi(-eta d2)`` as in
    :func:`~deleverage.analytics.first_passage.gbm_hit_probability` (``b = ln(H/S)``,
    ``a = sigma sqrt(T)``, ``nu = mu - sigma^2/2``, ``gamma = 2 nu b / sigma^2``) and the
    identity ``e^gamma phi(d2) = phi(d1)``:

    ``dP/dS = -(1/S) [-2 eta phi(d1)/a + (2 nu/sigma^2) e^gamma Phi(-eta d2)]``

    ``dP/dsigma = 2 eta b phi(d1) / (sigma^2 sqrt(T)) - (2b/sigma)(1 + 2 nu/sigma^2)
    e^gamma Phi(-eta d2)``

    (``mu`` held fixed, so ``dnu/dsigma = -sigma``). A barrier already reached or never
    reachable has ``P`` equal to 1 or 0 and zero derivatives.

    Parameters
    ----------
    s0, barrier, mu, direction, seconds_per_year
        As in :func:`~deleverage.analytics.first_passage.gbm_hit_probability`.
    sigma
        Annualized volatility, ``> 0``.
    horizon_s
        Horizon in seconds, ``> 0``.

    Returns
    -------
    HitProbabilitySensitivities
        ``probability``, ``d_price`` and ``d_sigma``, broadcast over the inputs.

    Raises
    ------
    ValidationError
        On a non-positive price, volatility or horizon, NaN, or a bad direction.

    Examples
    --------
    >>> sens = hit_probability_sensitivities(100.0, 90.0, 0.0, 0.8, 7 * 86_400)
    >>> round(float(sens.d_price), 4), round(float(sens.d_sigma), 4)
    (-0.0465, 0.6351)
    """
    s = _checked("s0", s0, lower=0.0, strict=True)
    h = _checked("barrier", barrier, allow_inf=True)
    m = _checked("mu", mu)
    v = _checked("sigma", sigma, lower=0.0, strict=True)
    t = _year_fraction("horizon_s", horizon_s, seconds_per_year)
    if (t <= 0.0).any():
        raise ValidationError("horizon_s", horizon_s, "must be > 0")
    eta = _direction_sign(direction, s, h)
    s, h, m, v, t, eta = _broadcast(s, h, m, v, t, eta)
    cases = _cases(s, h, v, t, eta)
    probability = np.where(cases.crossed, 1.0, 0.0)
    d_price = np.zeros(s.shape)
    d_sigma = np.zeros(s.shape)
    r = cases.regular
    if r.any():
        b = _log_distance(s, h, r)[r]
        sig, tt, e = v[r], t[r], eta[r]
        nu = m[r] - 0.5 * sig**2
        d = _derivatives(b, nu, sig, tt, e)
        probability[r] = d.probability
        d_price[r] = -d.d_b / s[r]
        d_sigma[r] = (
            2.0 * e * b * d.phi1 / (sig**2 * np.sqrt(tt))
            - (2.0 * b / sig) * (1.0 + 2.0 * nu / sig**2) * d.terms_2
        )
    return HitProbabilitySensitivities(probability, d_price, d_sigma)


def _knockout_values(
    size: FloatArray, entry: FloatArray, barrier: FloatArray, knockout_value: ArrayLike | None
) -> FloatArray:
    if knockout_value is not None:
        return _checked("knockout_value", knockout_value)
    finite = np.where(np.isfinite(barrier), barrier, 0.0)
    return np.asarray(size * (finite - entry), dtype=np.float64)


def knockout_forward_greeks(
    spot: ArrayLike,
    *,
    size: ArrayLike,
    entry_price: ArrayLike,
    liquidation_price: ArrayLike,
    sigma: ArrayLike,
    horizon_s: ArrayLike,
    mu: ArrayLike = 0.0,
    knockout_value: ArrayLike | None = None,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> PositionGreeks:
    """Value, delta and gamma of a position that is closed at its liquidation price (GBM).

    The position pays ``q (S_T - E)`` at the horizon ``T`` if the price never reached the
    liquidation price ``L``, and the constant ``R`` (``knockout_value``) if it did. With
    ``Q(nu)`` the probability of *not* touching ``L`` by ``T`` for log drift ``nu``:

    ``V = q [S e^{mu T} Q(mu + sigma^2/2) - E Q(mu - sigma^2/2)] + R [1 - Q(mu - sigma^2/2)]``

    (Merton 1973; Reiner and Rubinstein 1991, zero rates, cost of carry ``mu``: the asset-or-
    nothing part is the survival probability under the share measure, whose log drift is
    ``mu + sigma^2/2``). With ``dQ/dS = g/S`` and ``d2Q/dS2 = -(g + g')/S^2``, where ``g`` and
    ``g'`` are the first two derivatives of the hit probability in ``b = ln(L/S)``:

    ``delta = q [e^{mu T} (Q1 + S Q1_S) - E Q0_S] - R Q0_S``

    ``gamma = q [e^{mu T} (2 Q1_S + S Q1_SS) - E Q0_SS] - R Q0_SS``.

    With ``mu = 0`` and no penalty (``R = q (L - E)``) optional stopping gives ``V = q (S - E)``,
    ``delta = q``, ``gamma = 0`` exactly; the penalty ``q (L - E) - R`` adds
    ``-penalty x (dP/dS, d2P/dS2)``. A position already at or beyond its liquidation price is
    worth ``R`` with zero delta and gamma; one that can never be liquidated (a long with
    ``L <= 0``, a short with ``L = inf``) is a plain forward.

    Parameters
    ----------
    spot
        Current price (quote per base), ``> 0``.
    size
        Signed size in base units (``> 0`` long: down barrier; ``< 0`` short: up barrier).
    entry_price
        Entry price of the position.
    liquidation_price
        Liquidation price (``inf`` allowed for a short that cannot be liquidated).
    sigma
        Annualized volatility, ``> 0``.
    horizon_s
        Horizon in seconds, ``> 0``.
    mu
        Annualized drift of the price (default 0).
    knockout_value
        ``R``, the position's value (quote) once liquidated; default ``q (L - E)``.
    seconds_per_year
        Length of the year (default 365 days).

    Returns
    -------
    PositionGreeks
        ``value`` (quote), ``delta`` (d value / d spot, base units) and ``gamma``, broadcast
        over the inputs.

    Raises
    ------
    ValidationError
        On a non-positive spot, volatility or horizon, or a non-finite input.

    Examples
    --------
    A 10x long of 1 BTC entered at 100 with its liquidation price at 90.5; the trader loses
    the whole collateral of 10 when liquidated (penalty 0.5):

    >>> g = knockout_forward_greeks(100.0, size=1.0, entry_price=100.0, liquidation_price=90.5,
    ...                             sigma=0.8, horizon_s=7 * 86_400, knockout_value=-10.0)
    >>> [round(float(x), 4) for x in g]
    [-0.1931, 1.0242, -0.002]
    """
    s = _checked("spot", spot, lower=0.0, strict=True)
    q = _checked("size", size)
    e = _checked("entry_price", entry_price)
    h = _checked("liquidation_price", liquidation_price, allow_inf=True)
    m = _checked("mu", mu)
    v = _checked("sigma", sigma, lower=0.0, strict=True)
    t = _year_fraction("horizon_s", horizon_s, seconds_per_year)
    if (t <= 0.0).any():
        raise ValidationError("horizon_s", horizon_s, "must be > 0")
    rebate = _knockout_values(q, e, h, knockout_value)
    s, q, e, h, m, v, t, rebate = _broadcast(s, q, e, h, m, v, t, rebate)
    eta = np.where(q < 0.0, 1.0, -1.0)
    cases = _cases(s, h, v, t, eta)
    growth = pm.exp(m * t)

    # Never liquidated: a plain forward. Already liquidated: frozen at R.
    value = np.where(cases.crossed, rebate, q * (s * growth - e))
    delta = np.where(cases.crossed, 0.0, q * growth)
    gamma = np.zeros(s.shape)
    r = cases.regular
    if r.any():
        b = _log_distance(s, h, r)[r]
        sr, qr, er, vr, tr, etar, gr, rr = (x[r] for x in (s, q, e, v, t, eta, growth, rebate))
        hit0 = _derivatives(b, m[r] - 0.5 * vr**2, vr, tr, etar)
        hit1 = _derivatives(b, m[r] + 0.5 * vr**2, vr, tr, etar)
        q0, q1 = 1.0 - hit0.probability, 1.0 - hit1.probability
        q0_s, q1_s = hit0.d_b / sr, hit1.d_b / sr
        q0_ss = -(hit0.d_b + hit0.d_bb) / sr**2
        q1_ss = -(hit1.d_b + hit1.d_bb) / sr**2
        value[r] = qr * (sr * gr * q1 - er * q0) + rr * (1.0 - q0)
        delta[r] = qr * (gr * (q1 + sr * q1_s) - er * q0_s) - rr * q0_s
        gamma[r] = qr * (gr * (2.0 * q1_s + sr * q1_ss) - er * q0_ss) - rr * q0_ss
    return PositionGreeks(value, delta, gamma)


def _payoff(
    paths: FloatArray,
    *,
    size: float,
    entry: float,
    barrier: float,
    rebate: float,
    eta: float,
    bridge_variance: float | None,
) -> FloatArray:
    # Distance to the barrier on the alive side, in log space: > 0 while alive.
    if barrier <= 0.0:  # a long is never liquidated, a short already is
        u = np.full(paths.shape, np.inf if eta < 0.0 else -np.inf)
    else:
        with np.errstate(divide="ignore"):
            u = -eta * pm.log(paths / barrier)
    if bridge_variance is None:
        survival = (u > 0.0).all(axis=0).astype(np.float64)
    else:
        # Brownian bridge: P(no crossing between k and k+1 | ends) = 1 - exp(-2 u_k u_{k+1}/v).
        clipped = np.maximum(u, 0.0)
        with np.errstate(under="ignore", invalid="ignore"):
            cross = pm.exp(-2.0 * clipped[:-1] * clipped[1:] / bridge_variance)
        cross = np.where(np.isnan(cross), 0.0, cross)  # inf * 0 on an unreachable barrier
        survival = np.prod(1.0 - cross, axis=0)
    alive_value = size * (paths[-1] - entry)
    return np.asarray(survival * alive_value + (1.0 - survival) * rebate, dtype=np.float64)


def mc_knockout_forward_greeks(
    spot: float,
    *,
    size: float,
    entry_price: float,
    liquidation_price: float,
    simulate: PathSimulator,
    seed: int | np.random.SeedSequence,
    relative_bump: float = 0.01,
    knockout_value: float | None = None,
    bridge_sigma: float | None = None,
    dt_s: float | None = None,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> MonteCarloGreeks:
    """Monte Carlo value, delta and gamma by bump-and-revalue with common random numbers.

    The payoff per path is ``q (S_T - E)`` if the path never touched ``L`` and ``R`` otherwise
    (see :func:`knockout_forward_greeks`). Paths are simulated from ``S - h``, ``S`` and
    ``S + h`` (``h = relative_bump x S``), each with a fresh generator built from the same
    ``seed``, so the three runs share their random numbers (common random numbers, Glasserman
    2003, *Monte Carlo Methods in Financial Engineering*, §7.1) and

    ``delta = (V(S+h) - V(S-h)) / (2h)``, ``gamma = (V(S+h) - 2 V(S) + V(S-h)) / h^2``

    are computed path by path, with standard errors from the per-path differences.

    The hit test uses the simulated points only (discrete monitoring). With ``bridge_sigma`` and
    ``dt_s`` the survival between two points is instead the Brownian-bridge probability
    ``1 - exp(-2 u_k u_{k+1} / (sigma^2 dt))``, ``u`` the log distance to ``L`` (Beaglehole,
    Dybvig and Zhou 1997; Glasserman 2003, §6.4): exact continuous monitoring for GBM, and a
    smooth payoff whose finite-difference gamma has a small variance.

    Parameters
    ----------
    spot
        Current price, ``> 0``.
    size, entry_price, liquidation_price, knockout_value
        The position, as in :func:`knockout_forward_greeks` (one position).
    simulate
        ``(start_price, rng) -> paths`` of shape ``(n_steps + 1, n_paths)``, row 0 the start
        price, drawing all its randomness from ``rng`` (e.g. a closure over
        :func:`~deleverage.analytics.first_passage.merton_jump_paths`).
    seed
        Seed of the generator rebuilt for each bumped run.
    relative_bump
        ``h / S``, in ``(0, 1)``.
    bridge_sigma, dt_s
        Volatility and step (seconds) for the Brownian-bridge correction; both or neither.
    seconds_per_year
        Length of the year (default 365 days).

    Returns
    -------
    MonteCarloGreeks
        Estimates and their standard errors.

    Raises
    ------
    ValidationError
        On a bad argument or paths of the wrong shape or start.
    """
    s = _positive_scalar("spot", spot)
    q = float(_checked("size", size))
    e = float(_checked("entry_price", entry_price))
    h = float(_checked("liquidation_price", liquidation_price, allow_inf=True))
    bump = _positive_scalar("relative_bump", relative_bump)
    if bump >= 1.0:
        raise ValidationError("relative_bump", relative_bump, "must be in (0, 1)")
    rebate = float(_knockout_values(np.asarray(q), np.asarray(e), np.asarray(h), knockout_value))
    if (bridge_sigma is None) != (dt_s is None):
        raise ValidationError("bridge_sigma", bridge_sigma, "must be given together with dt_s")
    variance = None
    if bridge_sigma is not None and dt_s is not None:
        dt = _positive_scalar("dt_s", dt_s) / _positive_scalar("seconds_per_year", seconds_per_year)
        variance = _positive_scalar("bridge_sigma", bridge_sigma) ** 2 * dt
    eta = 1.0 if q < 0.0 else -1.0
    step = bump * s

    payoffs: list[FloatArray] = []
    for start in (s - step, s, s + step):
        paths = _float_array("paths", simulate(start, np.random.default_rng(seed)))
        if paths.ndim != 2 or paths.shape[0] < 1 or paths.shape[1] < 2:
            raise ValidationError("paths", paths.shape, "must have shape (n_steps + 1, n_paths)")
        if not np.allclose(paths[0], start, rtol=1e-12, atol=0.0):
            raise ValidationError("paths", float(paths[0, 0]), f"must start at {start!r}")
        if payoffs and paths.shape[1] != payoffs[0].size:
            raise ValidationError("paths", paths.shape, "must keep n_paths across bumps")
        payoffs.append(
            _payoff(
                paths,
                size=q,
                entry=e,
                barrier=h,
                rebate=rebate,
                eta=eta,
                bridge_variance=variance,
            )
        )
    down, mid, up = payoffs
    n = mid.size
    per_delta = (up - down) / (2.0 * step)
    per_gamma = (up - 2.0 * mid + down) / step**2

    def stderr(x: FloatArray) -> float:
        return float(np.std(x, ddof=1) / math.sqrt(n))

    return MonteCarloGreeks(
        value=float(mid.mean()),
        delta=float(per_delta.mean()),
        gamma=float(per_gamma.mean()),
        value_stderr=stderr(mid),
        delta_stderr=stderr(per_delta),
        gamma_stderr=stderr(per_gamma),
        n_paths=n,
    )
