"""Exogenous price processes: seeded generators of price paths.

A price path is a float64 array of prices (quote per base) on the time grid
``t_k = k * dt_s`` seconds, ``k = 0, ..., n_steps``; element 0 is the start price ``s0``. One
asset gives shape ``(n_steps + 1,)``; pass ``s0`` as a vector (one price per asset) for several
assets and get shape ``(n_steps + 1, n_assets)``, one column per asset.

Drift ``mu``, volatility ``sigma`` and jump intensities are annualized over a year of
:data:`SECONDS_PER_YEAR` = 365 days (crypto venues trade every day of the year); a step of
``dt_s`` seconds lasts ``dt = dt_s / SECONDS_PER_YEAR`` years. The continuous-time models are
simulated exactly in log space (no Euler error): each step draws the log return
``log(S_{k+1} / S_k)`` from its exact distribution, and prices are ``s0 * exp(cumsum(returns))``,
so they stay positive.

Randomness comes only from the :class:`numpy.random.Generator` passed in: the same seed gives the
same path, bit for bit. Several assets are correlated through the Cholesky factor ``L`` of their
correlation matrix ``C = L L^T``: ``Z = L W`` turns independent standard normals ``W`` into normals
with correlation ``C`` (Glasserman 2003, *Monte Carlo Methods in Financial Engineering*, §2.3).

Models (formulas, sources and worked examples in docs/formulas.md, section "Price processes"):

- :func:`gbm`: geometric Brownian motion (Black and Scholes 1973).
- :func:`merton_jump_diffusion`: GBM plus compound-Poisson log-normal jumps, with a common jump
  arrival that hits all assets at once (Merton 1976).
- :func:`garch11`: GARCH(1,1) volatility clustering (Bollerslev 1986).
- :func:`regime_switching`: drift and volatility switching with a Markov chain (Hamilton 1989).
- :func:`shock_path`: a deterministic crash ramp, for tests and stress scenarios.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from deleverage import portable_linalg as pla
from deleverage import portable_math as pm
from deleverage.errors import ValidationError
from deleverage.prices.kernels import garch11_log_returns_nb, markov_chain_nb

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Length of the year that annualizes ``mu``, ``sigma`` and jump intensities: 365 days, in seconds.
SECONDS_PER_YEAR: Final[float] = 365.0 * 86_400.0

#: Largest deviation from symmetry and from a unit diagonal accepted in a correlation matrix.
CORRELATION_ATOL: Final[float] = 1e-9

#: A correlation matrix whose smallest eigenvalue is at least ``-PSD_ATOL`` counts as positive
#: semi-definite (float noise of a valid matrix).
PSD_ATOL: Final[float] = 1e-10

#: Largest deviation of a transition-matrix row sum from 1.
STOCHASTIC_ATOL: Final[float] = 1e-9

#: A pivot of at most this magnitude in the stationary distribution's elimination means the
#: chain has several closed classes (entries are probabilities: rounding leaves ~1e-16).
SINGULAR_PIVOT: Final[float] = 1e-12

CrashShape = Literal["linear", "log"]


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _real(name: str, value: object) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(name, value, "must be a real number") from None
    if not math.isfinite(x):
        raise ValidationError(name, value, "must be finite")
    return x


def _positive(name: str, value: object) -> float:
    x = _real(name, value)
    if x <= 0.0:
        raise ValidationError(name, value, "must be > 0")
    return x


def _non_negative(name: str, value: object) -> float:
    x = _real(name, value)
    if x < 0.0:
        raise ValidationError(name, value, "must be >= 0")
    return x


def _count(name: str, value: object) -> int:
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValidationError(name, value, "must be an integer") from None
    if n < 0:
        raise ValidationError(name, value, "must be >= 0")
    return int(n)


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValidationError(
            "rng", type(rng).__name__, "must be a numpy.random.Generator (np.random.default_rng)"
        )
    return rng


def _step_years(dt_s: float, seconds_per_year: float) -> float:
    return _positive("dt_s", dt_s) / _positive("seconds_per_year", seconds_per_year)


def _as_float_array(name: str, value: object) -> FloatArray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(name, value, "must be numeric") from None


def _start_prices(s0: object) -> tuple[FloatArray, bool]:
    """Start prices as a vector, and whether the caller asked for several assets."""
    prices = _as_float_array("s0", s0)
    if prices.ndim == 0:
        return np.array([_positive("s0", float(prices))]), False
    if prices.ndim != 1 or prices.size == 0:
        raise ValidationError("s0", s0, "must be a price or a non-empty vector of prices")
    bad = np.flatnonzero(~np.isfinite(prices) | (prices <= 0.0))
    if bad.size:
        _positive(f"s0[{bad[0]}]", float(prices[bad[0]]))
    return prices.copy(), True


def _per_asset(
    name: str, value: object, n_assets: int, *, lower: float | None = None
) -> FloatArray:
    """A parameter given once for all assets or once per asset, as a vector of n_assets."""
    arr = _as_float_array(name, value)
    if arr.ndim == 0:
        labels = [name] * n_assets
        arr = np.full(n_assets, float(arr))
    elif arr.shape == (n_assets,):
        labels = [f"{name}[{i}]" for i in range(n_assets)]
    else:
        raise ValidationError(
            name, value, f"must be a number or a vector of one number per asset ({n_assets})"
        )
    bad = ~np.isfinite(arr)
    if lower is not None:
        bad |= arr < lower
    if bad.any():
        i = int(np.argmax(bad))
        raise ValidationError(labels[i], _real(labels[i], float(arr[i])), f"must be >= {lower:g}")
    return arr.copy()


def _correlation_factor_for(
    correlation: npt.ArrayLike | None, n_assets: int, multi: bool
) -> FloatArray | None:
    if correlation is None:
        return None
    if not multi:
        raise ValidationError(
            "correlation", correlation, "needs `s0` given as a vector of one price per asset"
        )
    return correlation_factor(correlation, n_assets=n_assets)


def _normals(
    rng: np.random.Generator, n_steps: int, n_assets: int, factor: FloatArray | None
) -> FloatArray:
    w = rng.standard_normal((n_steps, n_assets))
    return w if factor is None else pla.matmul(w, factor.T)


def _path_from_log_returns(s0: FloatArray, log_returns: FloatArray, multi: bool) -> FloatArray:
    n_steps, n_assets = log_returns.shape
    out = np.empty((n_steps + 1, n_assets), dtype=np.float64)
    out[0] = s0
    out[1:] = s0 * pm.exp(np.cumsum(log_returns, axis=0))
    return out if multi else out[:, 0].copy()


# --------------------------------------------------------------------------------------------
# Correlation and Markov-chain matrices
# --------------------------------------------------------------------------------------------


def validate_correlation(correlation: npt.ArrayLike, *, n_assets: int | None = None) -> FloatArray:
    """Check a correlation matrix and return it as a symmetric float64 array.

    A correlation matrix is square, finite, symmetric, has ones on its diagonal, entries in
    ``[-1, 1]`` and is positive semi-definite (all eigenvalues ``>= 0``; a tolerance of
    :data:`PSD_ATOL` absorbs float noise).

    Parameters
    ----------
    correlation
        The ``n x n`` matrix.
    n_assets
        If given, the number of rows and columns the matrix must have.

    Returns
    -------
    numpy.ndarray
        The matrix, float64, made exactly symmetric.

    Raises
    ------
    ValidationError
        Naming the entry and its value (``correlation[0][1]``), or the smallest eigenvalue of a
        matrix that is not positive semi-definite.
    """
    c = _as_float_array("correlation", correlation)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValidationError("correlation", f"shape {c.shape}", "must be a square matrix")
    n = c.shape[0]
    if n_assets is not None and n != n_assets:
        raise ValidationError(
            "correlation",
            f"shape {c.shape}",
            f"must be {n_assets}x{n_assets}, one row and column per asset",
        )
    for i, j in zip(*np.nonzero(~np.isfinite(c)), strict=True):
        raise ValidationError(f"correlation[{i}][{j}]", float(c[i, j]), "must be finite")
    for i in range(n):
        if abs(c[i, i] - 1.0) > CORRELATION_ATOL:
            raise ValidationError(f"correlation[{i}][{i}]", float(c[i, i]), "must be 1")
    for i in range(n):
        for j in range(i + 1, n):
            if abs(c[i, j] - c[j, i]) > CORRELATION_ATOL:
                raise ValidationError(
                    f"correlation[{i}][{j}]",
                    float(c[i, j]),
                    f"must equal correlation[{j}][{i}] = {float(c[j, i])!r} (symmetric matrix)",
                )
            if abs(c[i, j]) > 1.0 + CORRELATION_ATOL:  # rounding of a normalized matrix
                raise ValidationError(
                    f"correlation[{i}][{j}]", float(c[i, j]), "must be in [-1, 1]"
                )
    c = 0.5 * (c + c.T)
    np.fill_diagonal(c, 1.0)
    smallest = float(np.linalg.eigvalsh(c)[0])
    if smallest < -PSD_ATOL:
        raise ValidationError(
            "correlation",
            float(f"{smallest:.12g}"),
            "must be positive semi-definite: its smallest eigenvalue must be >= 0",
            message=(
                "`correlation` must be positive semi-definite: its smallest eigenvalue must be "
                f">= 0, was {smallest:.12g}"
            ),
        )
    return c


def correlation_factor(correlation: npt.ArrayLike, *, n_assets: int | None = None) -> FloatArray:
    """Factor ``A`` with ``A A^T = C`` of a valid correlation matrix ``C``.

    ``A`` is the lower-triangular Cholesky factor ``L`` when ``C`` is positive definite. A
    singular ``C`` (for example two perfectly correlated assets) has no Cholesky factor; then
    ``A = V diag(sqrt(max(lambda, 0)))`` from the eigendecomposition ``C = V diag(lambda) V^T``.
    Either way ``Z = A W`` has correlation ``C`` when ``W`` is a vector of independent standard
    normals. Both are computed in a fixed order (:mod:`deleverage.portable_linalg`), not by
    LAPACK, so the factor has the same bits on every CPU.

    Raises
    ------
    ValidationError
        If ``correlation`` is not a valid correlation matrix (see :func:`validate_correlation`).
    """
    c = validate_correlation(correlation, n_assets=n_assets)
    lower = pla.cholesky(c)
    if lower is not None:
        return lower
    eigenvalues, eigenvectors = pla.symmetric_eigen(c)
    return np.asarray(eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None)), np.float64)


def validate_transition_matrix(
    transition: npt.ArrayLike, *, n_states: int | None = None
) -> FloatArray:
    """Check a Markov transition matrix (row-stochastic) and return it as float64.

    ``P[i, j]`` is the probability of moving from state ``i`` to state ``j`` in one step: every
    entry lies in ``[0, 1]`` and every row sums to 1 (within :data:`STOCHASTIC_ATOL`; rows are
    then renormalized exactly).

    Raises
    ------
    ValidationError
        Naming the entry or the row that breaks the rule.
    """
    p = _as_float_array("transition", transition)
    if p.ndim != 2 or p.shape[0] != p.shape[1] or p.shape[0] == 0:
        raise ValidationError("transition", f"shape {p.shape}", "must be a square matrix")
    if n_states is not None and p.shape[0] != n_states:
        raise ValidationError(
            "transition",
            f"shape {p.shape}",
            f"must be {n_states}x{n_states}, one row and column per regime",
        )
    for i, j in zip(*np.nonzero(~np.isfinite(p) | (p < 0.0) | (p > 1.0)), strict=True):
        raise ValidationError(f"transition[{i}][{j}]", float(p[i, j]), "must be in [0, 1]")
    sums = p.sum(axis=1)
    for i, total in enumerate(sums):
        if abs(total - 1.0) > STOCHASTIC_ATOL:
            raise ValidationError(f"transition[{i}]", float(total), "must sum to 1")
    return np.asarray(p / sums[:, None], dtype=np.float64)


def stationary_distribution(transition: npt.ArrayLike) -> FloatArray:
    """Stationary distribution ``pi`` of a Markov chain: ``pi P = pi``, ``sum(pi) = 1``.

    Solved from ``(P^T - I) pi = 0`` with its last equation replaced by ``sum(pi) = 1``
    (Gaussian elimination in a fixed order, :func:`deleverage.portable_linalg.solve`). The
    solution is unique when the chain has one closed class (an irreducible chain, or one with
    absorbing regimes that lead to a single one); for two states it is
    ``pi = (p10, p01) / (p01 + p10)`` (Hamilton 1994, *Time Series Analysis*, ch. 22).

    Raises
    ------
    ValidationError
        If ``transition`` is not a valid transition matrix, or has several closed classes (no
        unique stationary distribution: give the initial state instead).
    """
    p = validate_transition_matrix(transition)
    n = p.shape[0]
    a = p.T - np.eye(n)
    a[-1] = 1.0
    b = np.zeros(n)
    b[-1] = 1.0
    pi = pla.solve(a, b, tiny=SINGULAR_PIVOT)
    if pi is None:
        raise ValidationError(
            "transition",
            f"shape {p.shape}",
            "has several closed classes of states: no unique stationary distribution",
        )
    pi = np.clip(pi, 0.0, None)
    return np.asarray(pi / pi.sum(), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def time_grid(dt_s: float, n_steps: int) -> FloatArray:
    """Times in seconds of a path's points: ``t_k = k * dt_s``, ``k = 0, ..., n_steps``."""
    return np.arange(_count("n_steps", n_steps) + 1, dtype=np.float64) * _positive("dt_s", dt_s)


def gbm(
    s0: npt.ArrayLike,
    mu: npt.ArrayLike,
    sigma: npt.ArrayLike,
    dt_s: float,
    n_steps: int,
    rng: np.random.Generator,
    *,
    correlation: npt.ArrayLike | None = None,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Simulate geometric Brownian motion, exactly in log space.

    ``dS = mu S dt + sigma S dW`` has the exact step

    ``S_{k+1} = S_k exp((mu - sigma^2 / 2) dt + sigma sqrt(dt) Z_k)``, ``Z_k ~ N(0, 1)`` iid,

    so log returns are ``N((mu - sigma^2/2) dt, sigma^2 dt)`` and ``E[S_t] = s0 e^{mu t}``
    (Black and Scholes 1973; Glasserman 2003, §3.2). With several assets ``Z_k`` is a normal
    vector with correlation ``correlation``.

    Parameters
    ----------
    s0
        Start price (quote per base), or a vector of one start price per asset.
    mu, sigma
        Annualized drift and volatility (fractions, ``sigma >= 0``), for all assets or per asset.
    dt_s
        Step length in seconds.
    n_steps
        Number of steps; the path has ``n_steps + 1`` points.
    rng
        Source of randomness.
    correlation
        ``n_assets x n_assets`` correlation of the Brownian motions (default: independent).
    seconds_per_year
        Length of the year that annualizes ``mu`` and ``sigma`` (default 365 days).

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(n_steps + 1,)`` for one asset, ``(n_steps + 1, n_assets)`` for several.

    Raises
    ------
    ValidationError
        On a non-positive price, negative volatility, non-finite value or invalid correlation.

    Examples
    --------
    >>> path = gbm(100.0, 0.0, 0.8, 1.0, 86_400, np.random.default_rng(7))
    >>> path.shape
    (86401,)
    """
    prices, multi = _start_prices(s0)
    n_assets = prices.size
    drift = _per_asset("mu", mu, n_assets)
    vol = _per_asset("sigma", sigma, n_assets, lower=0.0)
    dt = _step_years(dt_s, seconds_per_year)
    steps = _count("n_steps", n_steps)
    factor = _correlation_factor_for(correlation, n_assets, multi)
    generator = _check_rng(rng)

    z = _normals(generator, steps, n_assets, factor)
    log_returns = (drift - 0.5 * vol**2) * dt + vol * math.sqrt(dt) * z
    return _path_from_log_returns(prices, log_returns, multi)


def merton_jump_diffusion(
    s0: npt.ArrayLike,
    mu: npt.ArrayLike,
    sigma: npt.ArrayLike,
    jump_intensity: npt.ArrayLike,
    jump_mean: npt.ArrayLike,
    jump_std: npt.ArrayLike,
    dt_s: float,
    n_steps: int,
    rng: np.random.Generator,
    *,
    correlation: npt.ArrayLike | None = None,
    common_jump_intensity: float = 0.0,
    common_jump_mean: npt.ArrayLike = 0.0,
    common_jump_std: npt.ArrayLike = 0.0,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Simulate Merton's jump diffusion: GBM plus log-normal jumps, drift-compensated.

    Per step of ``dt`` years, with ``N_k ~ Poisson(lambda dt)`` jumps of log size
    ``Y ~ N(m, s^2)`` (Merton 1976):

    ``log(S_{k+1}/S_k) = (mu - sigma^2/2 - lambda kappa) dt + sigma sqrt(dt) Z_k + J_k``,
    ``J_k = sum_{j <= N_k} Y_j``,

    with ``kappa = E[e^Y - 1] = exp(m + s^2/2) - 1``. The sum of ``N`` jumps is drawn exactly as
    ``m N + s sqrt(N) W``. The compensator ``-lambda kappa`` makes ``E[S_t] = s0 e^{mu t}``:
    ``E[exp(sum Y)] = exp(lambda dt kappa)`` for a compound Poisson sum.

    With several assets, each asset has its own (idiosyncratic) jumps, and a common arrival
    process ``N^c_k ~ Poisson(lambda_c dt)`` hits all assets in the same step: asset ``i`` jumps
    by ``m^c_i N^c + s^c_i sqrt(N^c) W^c`` with one shared ``W^c``, so common jump sizes are
    perfectly correlated across assets (a market-wide crash). Its compensator
    ``lambda_c kappa^c_i`` enters each asset's drift too, keeping ``E[S_t] = s0 e^{mu t}``.

    Parameters
    ----------
    s0, mu, sigma
        As in :func:`gbm`.
    jump_intensity
        ``lambda``: expected idiosyncratic jumps per year (``>= 0``), for all assets or per asset.
    jump_mean, jump_std
        ``m`` and ``s``: mean and standard deviation of the log jump size (``s >= 0``); a jump
        multiplies the price by ``e^Y`` (``m = -0.1`` is a typical 9.5 % drop).
    dt_s, n_steps, rng, correlation, seconds_per_year
        As in :func:`gbm`; ``correlation`` applies to the diffusion part.
    common_jump_intensity
        ``lambda_c``: expected common jumps per year (``>= 0``); default none.
    common_jump_mean, common_jump_std
        ``m^c`` and ``s^c`` of the common jump's log size, for all assets or per asset.

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(n_steps + 1,)`` for one asset, ``(n_steps + 1, n_assets)`` for several.

    Raises
    ------
    ValidationError
        On an invalid parameter (named, with its value).
    """
    prices, multi = _start_prices(s0)
    n_assets = prices.size
    drift = _per_asset("mu", mu, n_assets)
    vol = _per_asset("sigma", sigma, n_assets, lower=0.0)
    intensity = _per_asset("jump_intensity", jump_intensity, n_assets, lower=0.0)
    j_mean = _per_asset("jump_mean", jump_mean, n_assets)
    j_std = _per_asset("jump_std", jump_std, n_assets, lower=0.0)
    c_intensity = _non_negative("common_jump_intensity", common_jump_intensity)
    c_mean = _per_asset("common_jump_mean", common_jump_mean, n_assets)
    c_std = _per_asset("common_jump_std", common_jump_std, n_assets, lower=0.0)
    dt = _step_years(dt_s, seconds_per_year)
    steps = _count("n_steps", n_steps)
    factor = _correlation_factor_for(correlation, n_assets, multi)
    generator = _check_rng(rng)

    kappa = pm.expm1(j_mean + 0.5 * j_std**2)
    c_kappa = pm.expm1(c_mean + 0.5 * c_std**2)
    compensated = drift - 0.5 * vol**2 - intensity * kappa - c_intensity * c_kappa
    log_returns = compensated * dt + vol * math.sqrt(dt) * _normals(
        generator, steps, n_assets, factor
    )

    n_jumps = generator.poisson(intensity * dt, size=(steps, n_assets)).astype(np.float64)
    w = generator.standard_normal((steps, n_assets))
    log_returns += j_mean * n_jumps + j_std * np.sqrt(n_jumps) * w
    if c_intensity > 0.0:
        n_common = generator.poisson(c_intensity * dt, size=steps).astype(np.float64)[:, None]
        w_common = generator.standard_normal(steps)[:, None]
        log_returns += c_mean * n_common + c_std * np.sqrt(n_common) * w_common
    return _path_from_log_returns(prices, log_returns, multi)


def garch11_omega(
    annual_volatility: float,
    alpha: float,
    beta: float,
    dt_s: float,
    *,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> float:
    """GARCH(1,1) ``omega`` whose unconditional volatility is ``annual_volatility``.

    The unconditional variance of one step is ``omega / (1 - alpha - beta)``; matching it to
    ``sigma^2 dt`` gives ``omega = sigma^2 dt (1 - alpha - beta)``.
    """
    vol = _positive("annual_volatility", annual_volatility)
    a, b = _garch_coefficients(alpha, beta)
    return vol**2 * _step_years(dt_s, seconds_per_year) * (1.0 - a - b)


def _garch_coefficients(alpha: float, beta: float) -> tuple[float, float]:
    a = _non_negative("alpha", alpha)
    b = _non_negative("beta", beta)
    if a + b >= 1.0:
        raise ValidationError(
            "alpha + beta", a + b, "must be < 1 (covariance-stationary GARCH(1,1))"
        )
    return a, b


def garch11(
    s0: float,
    omega: float,
    alpha: float,
    beta: float,
    dt_s: float,
    n_steps: int,
    rng: np.random.Generator,
    *,
    mu: float = 0.0,
    initial_variance: float | None = None,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Simulate a price whose per-step log returns follow GARCH(1,1).

    With ``z_k ~ N(0, 1)`` iid and ``dt`` the step in years (Bollerslev 1986):

    ``eps_k = sqrt(h_k) z_k``,
    ``h_{k+1} = omega + alpha eps_k^2 + beta h_k``,
    ``log(S_{k+1}/S_k) = mu dt - h_k/2 + eps_k``.

    ``h_k`` is the conditional variance of one step's log return (not annualized). The process
    is covariance-stationary iff ``alpha + beta < 1``, with unconditional variance
    ``E[h] = omega / (1 - alpha - beta)``; ``-h_k/2`` makes ``E[S_{k+1}/S_k | h_k] = e^{mu dt}``.
    Use :func:`garch11_omega` to pick ``omega`` from an annual volatility.

    Parameters
    ----------
    s0
        Start price (quote per base).
    omega
        Variance intercept per step (``> 0``).
    alpha, beta
        ARCH and GARCH coefficients (``>= 0``, ``alpha + beta < 1``).
    dt_s, n_steps, rng, seconds_per_year
        As in :func:`gbm`.
    mu
        Annualized drift.
    initial_variance
        ``h_0``; default the unconditional variance ``omega / (1 - alpha - beta)``.

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(n_steps + 1,)``.

    Raises
    ------
    ValidationError
        If ``alpha + beta >= 1`` (not stationary) or a parameter is out of range.
    """
    start = _positive("s0", s0)
    w = _positive("omega", omega)
    a, b = _garch_coefficients(alpha, beta)
    h0 = (
        w / (1.0 - a - b)
        if initial_variance is None
        else _positive("initial_variance", initial_variance)
    )
    drift = _real("mu", mu) * _step_years(dt_s, seconds_per_year)
    steps = _count("n_steps", n_steps)
    generator = _check_rng(rng)

    z = generator.standard_normal(steps)
    log_returns = garch11_log_returns_nb(z, w, a, b, h0, drift)
    return _path_from_log_returns(np.array([start]), log_returns[:, None], multi=False)


def markov_chain(
    transition: npt.ArrayLike,
    n_states: int,
    rng: np.random.Generator,
    *,
    initial_state: int | None = None,
) -> IntArray:
    """Sample ``n_states`` consecutive states of a Markov chain.

    ``state[0]`` is ``initial_state``, or drawn from the stationary distribution when it is
    None; then ``P(state[k+1] = j | state[k] = i) = transition[i][j]`` (inverse-CDF sampling,
    one uniform per step).

    Returns
    -------
    numpy.ndarray
        int64 state indices, shape ``(n_states,)``.

    Raises
    ------
    ValidationError
        On an invalid transition matrix or initial state.
    """
    p = validate_transition_matrix(transition)
    count = _count("n_states", n_states)
    generator = _check_rng(rng)
    k = p.shape[0]
    if initial_state is None:
        cdf = np.cumsum(stationary_distribution(p))
        first = int(min(np.searchsorted(cdf, generator.random(), side="right"), k - 1))
    else:
        first = _count("initial_state", initial_state)
        if first >= k:
            raise ValidationError("initial_state", initial_state, f"must be < {k} (states)")
    if count == 0:
        return np.empty(0, dtype=np.int64)
    cumulative = np.cumsum(p, axis=1)
    cumulative[:, -1] = 1.0
    return np.asarray(markov_chain_nb(cumulative, generator.random(count - 1), first))


def regime_switching(
    s0: float,
    regimes: Sequence[tuple[float, float]] | npt.ArrayLike,
    transition: npt.ArrayLike,
    dt_s: float,
    n_steps: int,
    rng: np.random.Generator,
    *,
    initial_regime: int | None = None,
    states: npt.ArrayLike | None = None,
    seconds_per_year: float = SECONDS_PER_YEAR,
) -> FloatArray:
    """Simulate a GBM whose drift and volatility switch with a hidden Markov chain.

    A chain ``s_k`` over regimes ``(mu_r, sigma_r)`` moves with ``P(s_{k+1} = j | s_k = i) =
    transition[i][j]`` (Hamilton 1989); during step ``k`` the price follows GBM with that
    regime's parameters:

    ``log(S_{k+1}/S_k) = (mu_{s_k} - sigma_{s_k}^2/2) dt + sigma_{s_k} sqrt(dt) Z_k``.

    In the long run the chain spends a fraction ``pi_r`` of steps in regime ``r``, ``pi`` the
    :func:`stationary_distribution` of ``transition``; the variance of one step's log return is
    then ``sum_r pi_r sigma_r^2 dt`` plus the (small) variance of the regime drifts.

    Parameters
    ----------
    s0
        Start price (quote per base).
    regimes
        One ``(mu, sigma)`` pair per regime, annualized.
    transition
        Per-step transition matrix (rows sum to 1). It depends on ``dt_s``: a regime with mean
        duration ``D`` seconds stays with probability ``1 - dt_s / D``.
    dt_s, n_steps, rng, seconds_per_year
        As in :func:`gbm`.
    initial_regime
        Regime of the first step; default drawn from the stationary distribution.
    states
        A given regime path (one regime index per step, length ``n_steps``), for example from
        :func:`markov_chain`; then only the price shocks are drawn.

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(n_steps + 1,)``.

    Raises
    ------
    ValidationError
        On an invalid regime, transition matrix or state path.
    """
    start = _positive("s0", s0)
    table = _as_float_array("regimes", regimes)
    if table.ndim != 2 or table.shape[1] != 2 or table.shape[0] == 0:
        raise ValidationError("regimes", regimes, "must be a non-empty list of (mu, sigma) pairs")
    for r, (m, s) in enumerate(table):
        _real(f"regimes[{r}].mu", float(m))
        _non_negative(f"regimes[{r}].sigma", float(s))
    n_regimes = table.shape[0]
    p = validate_transition_matrix(transition, n_states=n_regimes)
    dt = _step_years(dt_s, seconds_per_year)
    steps = _count("n_steps", n_steps)
    generator = _check_rng(rng)

    if states is None:
        path = markov_chain(p, steps, generator, initial_state=initial_regime)
    else:
        path = np.asarray(states)
        if path.shape != (steps,) or (path.size and not np.issubdtype(path.dtype, np.integer)):
            raise ValidationError(
                "states", f"shape {path.shape}", f"must be {steps} integer regime indices"
            )
        outside = np.nonzero((path < 0) | (path >= n_regimes))[0]
        if outside.size:
            i = int(outside[0])
            raise ValidationError(f"states[{i}]", int(path[i]), f"must be in [0, {n_regimes})")
    mu_k = table[path, 0]
    sigma_k = table[path, 1]
    z = generator.standard_normal(steps)
    log_returns = (mu_k - 0.5 * sigma_k**2) * dt + sigma_k * math.sqrt(dt) * z
    return _path_from_log_returns(np.array([start]), log_returns[:, None], multi=False)


def shock_path(
    s0: float,
    drop_fraction: float,
    start_s: float,
    duration_s: float,
    dt_s: float,
    n_steps: int,
    *,
    shape: CrashShape = "linear",
) -> FloatArray:
    """A deterministic crash ramp: flat, a fall of ``drop_fraction`` over ``duration_s``, flat.

    With ``f(t) = clip((t - start_s) / duration_s, 0, 1)`` (when ``duration_s = 0``, a step:
    ``f = 0`` up to ``start_s`` included, 1 after) and ``t_k = k dt_s``:

    - ``shape="linear"``: ``S(t) = s0 (1 - drop_fraction f(t))`` (constant dollar speed);
    - ``shape="log"``: ``S(t) = s0 (1 - drop_fraction)^{f(t)}`` (constant log-return speed).

    Both start at ``s0`` and end at ``s0 (1 - drop_fraction)``; a negative ``drop_fraction``
    is a rise (a squeeze).

    Examples
    --------
    >>> shock_path(100.0, 0.2, 10.0, 20.0, 5.0, 7).tolist()
    [100.0, 100.0, 100.0, 95.0, 90.0, 85.0, 80.0, 80.0]
    """
    start = _positive("s0", s0)
    drop = _real("drop_fraction", drop_fraction)
    if drop >= 1.0:
        raise ValidationError("drop_fraction", drop_fraction, "must be < 1 (prices stay > 0)")
    begin = _non_negative("start_s", start_s)
    duration = _non_negative("duration_s", duration_s)
    if shape not in ("linear", "log"):
        raise ValidationError("shape", shape, "must be 'linear' or 'log'")
    t = time_grid(dt_s, n_steps)
    if duration > 0.0:
        f = np.clip(t - begin, 0.0, duration) / duration
    else:
        f = (t > begin).astype(np.float64)
    if shape == "linear":
        return np.asarray(start * (1.0 - drop * f), dtype=np.float64)
    return np.asarray(start * (1.0 - drop) ** f, dtype=np.float64)
