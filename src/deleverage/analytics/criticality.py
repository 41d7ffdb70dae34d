"""Cascade criticality: when forced selling feeds on itself.

Liquidations sell into the book, the selling moves the price, and the move liquidates more
positions. In a *linear* book (every unit of price holds ``depth`` units of resting size, so
selling ``x`` moves the price by ``x / depth``, Kyle's lambda ``1 / depth``) with liquidation
levels spread uniformly at ``rho`` units of size per unit of price, a drop ``D`` liquidates
``rho D`` and so moves the price by a further ``k D``, with the *branching ratio*

``k = rho / depth``.

An exogenous shock ``s`` then unfolds as a geometric series of rounds ``s, k s, k^2 s, ...``,
the total drop is ``s / (1 - k)`` for ``k < 1`` (amplification ``1 / (1 - k)``), and at
``k >= 1`` the cascade does not stop: it is *critical* (a Galton-Watson branching process with
mean offspring ``k``; the same multiplier as the loss spirals of Brunnermeier and Pedersen 2009).

Real books are not uniform. :func:`simulate_cascade_rounds` plays the cascade round by round on
any set of liquidation levels, and :func:`critical_shock` finds the smallest shock that carries
the cascade through the whole population (or to a target price). Both work on the levels sorted
once, with prefix sums of size, so a round is a binary search, not a loop over positions.

The ``"down"`` direction is a falling price liquidating longs; ``"up"`` mirrors it for shorts.
Sizes and depth must be in the same unit (base units by default, or notional for both).
Formulas, sources and worked examples: docs/formulas.md, section "Analytics".
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from deleverage.analytics.first_passage import _broadcast, _checked, _count, _positive_scalar
from deleverage.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

CascadeDirection = Literal["down", "up"]

__all__ = [
    "CascadeRounds",
    "ShockResponse",
    "branching_ratio",
    "branching_ratio_vs_shock",
    "critical_shock",
    "linear_cascade_total_drop",
    "simulate_cascade_rounds",
]


class CascadeRounds(NamedTuple):
    """A cascade, round by round. Round 0 is the exogenous shock."""

    #: Price after each round (quote per base); ``price[0] = start -+ shock``.
    price: FloatArray
    #: Size liquidated in each round (0 in round 0), in the unit of ``sizes``.
    liquidated_size: FloatArray
    #: Size liquidated up to and including each round.
    cumulative_size: FloatArray
    #: ``move[r] / move[r - 1]``, the empirical branching ratio (NaN in round 0).
    branching_ratio: FloatArray
    #: ``|final price - start price|``.
    total_drop: float
    #: Number of positions liquidated.
    n_liquidated: int
    #: False if ``max_rounds`` stopped the cascade before it ran out of liquidations.
    converged: bool


def linear_cascade_total_drop(shock: ArrayLike, k: ArrayLike) -> FloatArray:
    """Total price move of a cascade with constant branching ratio ``k``.

    ``D = s (1 + k + k^2 + ...) = s / (1 - k)`` for ``0 <= k < 1``; ``inf`` for ``k >= 1`` and a
    positive shock (the critical regime); 0 for no shock.

    Parameters
    ----------
    shock
        Exogenous price move ``s`` (quote per base), ``>= 0``.
    k
        Branching ratio, ``>= 0``.

    Returns
    -------
    numpy.ndarray
        Total move, broadcast over the inputs.

    Examples
    --------
    >>> linear_cascade_total_drop(2.0, [0.0, 0.5, 0.9, 1.0]).tolist()
    [2.0, 4.0, 20.000000000000004, inf]
    """
    s = _checked("shock", shock, lower=0.0)
    ratio = _checked("k", k, lower=0.0)
    s, ratio = _broadcast(s, ratio)
    out = np.where(s > 0.0, np.inf, 0.0)
    sub = ratio < 1.0
    out[sub] = s[sub] / (1.0 - ratio[sub])
    return out


def branching_ratio(
    liq_density_notional_per_price: ArrayLike, depth_notional_per_price: ArrayLike
) -> FloatArray:
    """Branching ratio of a linear book: ``k = rho / depth``.

    A price move ``dp`` liquidates ``rho dp`` (``rho`` = liquidation density, size or notional
    per unit of price); selling it through a book holding ``depth`` per unit of price moves the
    price by ``rho dp / depth``. Both arguments must use the same unit.

    Parameters
    ----------
    liq_density_notional_per_price
        Liquidation density ``rho``, ``>= 0``.
    depth_notional_per_price
        Book depth, ``> 0``.

    Returns
    -------
    numpy.ndarray
        ``k``, broadcast over the inputs.

    Examples
    --------
    >>> float(branching_ratio(2.0e6, 4.0e6))
    0.5
    """
    rho = _checked("liq_density_notional_per_price", liq_density_notional_per_price, lower=0.0)
    depth = _checked("depth_notional_per_price", depth_notional_per_price, lower=0.0, strict=True)
    return np.asarray(rho / depth, dtype=np.float64)


class _Levels(NamedTuple):
    distance: FloatArray  # move from the start price that liquidates each level, ascending
    cumulative: FloatArray  # cumulative[i] = size of the first i levels; length n + 1
    sign: float  # -1 for "down" (price = start - move), +1 for "up"


def _levels(
    liquidation_prices: ArrayLike,
    sizes: ArrayLike,
    start_price: float,
    direction: CascadeDirection,
) -> _Levels:
    if direction not in ("down", "up"):
        raise ValidationError("direction", direction, "must be 'down' or 'up'")
    prices = _checked("liquidation_prices", liquidation_prices, allow_inf=True)
    size = np.abs(_checked("sizes", sizes))
    if prices.ndim != 1 or size.shape != prices.shape:
        raise ValidationError(
            "sizes", size.shape, f"must be 1-D with one size per liquidation price {prices.shape}"
        )
    start = _positive_scalar("start_price", start_price)
    sign = -1.0 if direction == "down" else 1.0
    # A long (down) is liquidated once the price is at or below its level: the move needed is
    # start - level; a short (up) at or above: level - start.
    distance = sign * (prices - start)
    order = np.argsort(distance, kind="stable")
    cumulative = np.concatenate(([0.0], np.cumsum(size[order])))
    return _Levels(distance[order], cumulative, sign)


def simulate_cascade_rounds(
    liquidation_prices: ArrayLike,
    sizes: ArrayLike,
    start_price: float,
    shock: float,
    depth: float,
    *,
    direction: CascadeDirection = "down",
    max_rounds: int | None = None,
) -> CascadeRounds:
    """Play a liquidation cascade round by round through a linear book.

    Round 0 moves the price by the exogenous ``shock``. In each later round every position
    whose liquidation price has been reached (price ``<=`` level for ``"down"``) and that is
    still open is liquidated, all at once; the price is then

    ``p_r = p_0 -+ X_r / depth``,

    ``X_r`` the total size liquidated so far (permanent linear impact, no resilience). The
    cascade stops at the first round that liquidates nothing. With the move ``D_r = |p_r -
    start|`` this is the iteration ``D_r = s + X(D_{r-1}) / depth``, which converges to the
    smallest ``D >= s`` with ``D >= s + X(D) / depth``. The empirical branching ratio of round
    ``r`` is ``(D_r - D_{r-1}) / (D_{r-1} - D_{r-2})`` (``D_{-1} = 0``); for a uniform density it
    is ``k = rho / depth``.

    Parameters
    ----------
    liquidation_prices
        Liquidation price of each position (1-D; ``+-inf`` never liquidates).
    sizes
        Size of each position; the sign is ignored.
    start_price
        Price before the shock, ``> 0``.
    shock
        Exogenous move, ``>= 0`` (a drop for ``"down"``, a rise for ``"up"``).
    depth
        Resting size per unit of price, ``> 0``, in the unit of ``sizes``.
    direction
        ``"down"`` (longs liquidated by a falling price, default) or ``"up"`` (shorts).
    max_rounds
        Stop after this many rounds after the shock (default: until no new liquidation, at most
        one round per position).

    Returns
    -------
    CascadeRounds
        Per-round price, liquidated size and branching ratio, and totals.

    Raises
    ------
    ValidationError
        On mismatched arrays, NaN, a non-positive price or depth, or a negative shock.

    Examples
    --------
    Ten longs of 1 BTC each with liquidation prices 99.5, 98.5, ..., 90.5 and a book of 2 BTC
    per dollar (``k = 0.5``): a 1-dollar shock ends with a 2-dollar drop.

    >>> levels = 99.5 - np.arange(10.0)
    >>> rounds = simulate_cascade_rounds(levels, np.ones(10), 100.0, 1.0, 2.0)
    >>> rounds.price.tolist(), rounds.total_drop
    ([99.0, 98.5, 98.0], 2.0)
    """
    levels = _levels(liquidation_prices, sizes, start_price, direction)
    start = float(start_price)
    s = float(_checked("shock", shock, lower=0.0))
    d = _positive_scalar("depth", depth)
    n = levels.distance.size
    limit = n if max_rounds is None else _count("max_rounds", max_rounds)

    moves = [s]
    counts = [0]
    converged = True
    move = s
    while True:
        count = int(np.searchsorted(levels.distance, move, side="right"))
        if count == counts[-1]:
            break
        if len(moves) - 1 >= limit:
            converged = False
            break
        move = s + float(levels.cumulative[count]) / d
        moves.append(move)
        counts.append(count)

    move_arr = np.asarray(moves)
    cumulative = levels.cumulative[np.asarray(counts)]
    steps = np.diff(move_arr, prepend=0.0)
    ratio = np.full(move_arr.size, np.nan)
    with np.errstate(over="ignore"):  # a denormal previous move: the ratio is +inf
        np.divide(steps[1:], steps[:-1], out=ratio[1:], where=steps[:-1] > 0.0)
    return CascadeRounds(
        price=start + levels.sign * move_arr,
        liquidated_size=np.diff(cumulative, prepend=0.0),
        cumulative_size=cumulative,
        branching_ratio=ratio,
        total_drop=float(move_arr[-1]),
        n_liquidated=counts[-1],
        converged=converged,
    )


def critical_shock(
    liquidation_prices: ArrayLike,
    sizes: ArrayLike,
    start_price: float,
    depth: float,
    *,
    direction: CascadeDirection = "down",
    target_price: float | None = None,
) -> float:
    """Smallest exogenous shock whose cascade runs all the way to the target price.

    Definition: with the cascade of :func:`simulate_cascade_rounds`, the critical shock is

    ``s_c = min { s >= 0 : D*(s) >= T }``,

    ``D*(s)`` the cascade's final move and ``T`` the move to ``target_price`` (default: to the
    farthest finite liquidation price, so the cascade liquidates the whole population). Below
    ``s_c`` the cascade stops on its own; from ``s_c`` on it sustains itself to the target.
    For a uniform density over a band of width ``W`` below the price, ``s_c = (1 - k) W``: it
    shrinks to 0 as ``k -> 1`` and is one level's distance for ``k >= 1`` (any shock that
    liquidates one position takes them all).

    Computed exactly, without bisection: ``D*(s) >= T`` iff ``s + X(x)/depth > x`` for every
    ``x`` in ``[s, T)``, ``X(x)`` the size liquidated by a move ``x``. Between two levels
    ``x_i <= x < x_{i+1}`` this is ``s >= min(x_{i+1}, T) - C_i / depth`` (``C_i`` the size of
    the first ``i`` levels), so with the suffix maximum ``M_j`` of these bounds over the gaps
    from ``j`` on, ``s_c`` is the smallest ``max(M_j, x_j, 0)`` that lies in its gap ``j``, or
    ``T`` itself.

    Parameters
    ----------
    liquidation_prices, sizes, start_price, depth, direction
        As in :func:`simulate_cascade_rounds`.
    target_price
        Price the cascade must reach (default: the farthest finite liquidation price).

    Returns
    -------
    float
        The critical shock (a price move, quote per base); 0 if the start price is already at
        or beyond the target.

    Raises
    ------
    ValidationError
        On bad input, or no finite liquidation price when ``target_price`` is omitted.

    Examples
    --------
    The ten levels of :func:`simulate_cascade_rounds` (``k = 0.5``): a shock of 5 reaches the
    last level at 90.5.

    >>> critical_shock(99.5 - np.arange(10.0), np.ones(10), 100.0, 2.0)
    5.0
    """
    levels = _levels(liquidation_prices, sizes, start_price, direction)
    d = _positive_scalar("depth", depth)
    x = levels.distance
    if target_price is None:
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            raise ValidationError(
                "liquidation_prices", "no finite level", "must hold a finite level"
            )
        target = float(finite[-1])
    else:
        target = levels.sign * (_positive_scalar("target_price", target_price) - float(start_price))
    if target <= 0.0:
        return 0.0

    # Gap j (j = 0..n) is [x_j, x_{j+1}) with x_0 = -inf, x_{n+1} = +inf; C_j sized so far.
    lower = np.concatenate(([-np.inf], x))
    upper = np.concatenate((x, [np.inf]))
    bound = np.minimum(upper, target) - levels.cumulative / d
    bound[lower >= target] = -np.inf  # gaps past the target impose nothing
    suffix_max = np.maximum.accumulate(bound[::-1])[::-1]
    candidate = np.maximum(np.maximum(suffix_max, lower), 0.0)
    fits = candidate < upper
    best = min(float(candidate[fits].min()) if fits.any() else target, target)
    # ``x - C / depth`` and the cascade's ``s + C / depth`` round independently: nudge the
    # shock up by ulps until the cascade it starts really reaches the target (a tie otherwise
    # stops one level short).
    for _ in range(64):
        reached = simulate_cascade_rounds(
            liquidation_prices, sizes, start_price, best, depth, direction=direction
        ).total_drop
        if reached >= target or best >= target:
            break
        best = float(np.nextafter(best, np.inf))
    return best


class ShockResponse(NamedTuple):
    """How a book answers shocks of several sizes (one entry per shock)."""

    #: The exogenous shocks, quote per base.
    shock: FloatArray
    #: Final move of each cascade, quote per base.
    total_drop: FloatArray
    #: ``total_drop / shock``.
    amplification: FloatArray
    #: ``1 - shock / total_drop``: the constant branching ratio with the same amplification.
    branching_ratio: FloatArray
    #: Positions liquidated by each cascade.
    n_liquidated: npt.NDArray[np.int64]
    #: False where ``max_rounds`` stopped a cascade early.
    converged: npt.NDArray[np.bool_]


def branching_ratio_vs_shock(
    liquidation_prices: ArrayLike,
    sizes: ArrayLike,
    start_price: float,
    shocks: ArrayLike,
    depth: float,
    *,
    direction: CascadeDirection = "down",
    max_rounds: int | None = None,
) -> ShockResponse:
    """Effective branching ratio and amplification of a real book as functions of the shock.

    Each shock ``s`` is played through :func:`simulate_cascade_rounds`; its final move ``D(s)``
    gives the amplification ``A(s) = D(s) / s`` and, inverting the linear-book law
    ``D = s / (1 - k)``, the effective branching ratio

    ``k_eff(s) = 1 - s / D(s)``,

    the constant ``k`` that would amplify this shock as much. On a uniform book ``k_eff = rho /
    depth`` for every shock; on a real book it varies with the shock (a small shock may stop
    short of the first cluster, a larger one runs through it), and ``k_eff`` close to 1 marks
    shocks near the critical one (:func:`critical_shock`).

    Parameters
    ----------
    liquidation_prices, sizes, start_price, depth, direction, max_rounds
        As in :func:`simulate_cascade_rounds`.
    shocks
        Exogenous moves to try, each ``> 0`` (quote per base), 1-D or scalar.

    Returns
    -------
    ShockResponse
        Per shock: total drop, amplification, effective branching ratio, positions liquidated.

    Raises
    ------
    ValidationError
        On bad input, or a shock that is not a finite number ``> 0``.

    Examples
    --------
    The ten levels of :func:`simulate_cascade_rounds` (2 BTC per dollar of depth, one level per
    dollar: ``k = 0.5``): a 1-dollar shock drops 2 dollars, ``k_eff = 0.5``.

    >>> r = branching_ratio_vs_shock(99.5 - np.arange(10.0), np.ones(10), 100.0, [1.0, 3.0], 2.0)
    >>> r.total_drop.tolist(), r.branching_ratio.tolist()
    ([2.0, 6.0], [0.5, 0.5])
    """
    s = np.atleast_1d(_checked("shocks", shocks, lower=0.0, strict=True))
    if s.ndim != 1:
        raise ValidationError("shocks", s.shape, "must be a scalar or a 1-D array")
    drops = np.empty(s.size)
    counts = np.empty(s.size, dtype=np.int64)
    converged = np.empty(s.size, dtype=np.bool_)
    for i, shock in enumerate(s.tolist()):
        rounds = simulate_cascade_rounds(
            liquidation_prices, sizes, start_price, shock, depth,
            direction=direction, max_rounds=max_rounds,
        )  # fmt: skip
        drops[i] = rounds.total_drop
        counts[i] = rounds.n_liquidated
        converged[i] = rounds.converged
    with np.errstate(divide="ignore", invalid="ignore"):
        amplification = drops / s
    return ShockResponse(
        shock=s,
        total_drop=drops,
        amplification=amplification,
        branching_ratio=1.0 - 1.0 / amplification,
        n_liquidated=counts,
        converged=converged,
    )
