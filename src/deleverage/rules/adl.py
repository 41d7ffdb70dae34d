"""Automated deleveraging (ADL): ranking, queue indicator, allocation and socialized loss.

When a bankrupt account's position cannot be closed in the market and the insurance fund cannot
absorb the loss, the venue closes the rest of that position against traders on the *opposite*
side at the bankruptcy price. Which traders, and how much of each, is the ADL policy
(:class:`deleverage.spec.AdlPolicy`):

- **ranked queues** score every opposing position and walk the queue from the highest score,
  closing whole positions until the last, partial one (:func:`allocate_ranked`). The scores are
  BitMEX's :func:`score_pnl_leverage`, Binance's :func:`score_binance`, Hyperliquid's
  :func:`score_hyperliquid` and a configurable :func:`score_risk_score`; dYdX v4 walks opposing
  positions from a random offset instead (:func:`random_start_order`).
- **pro rata** reduces every profitable opposing position by the same fraction
  (:func:`allocate_pro_rata`).
- **socialized loss** leaves positions open and charges the loss to accounts, pro rata to their
  profit or their open interest (:func:`allocate_socialized_loss`).

Everything here is a pure function over the arrays of *one market*: the candidate positions'
signed ``size`` (base units, long > 0), ``entry_price`` and the scalar ``mark_price`` (quote per
base), the collateral backing each position (``margin``: wallet balance or isolated margin,
excluding unrealized PnL; ``equity`` = margin + unrealized PnL) and its ``maintenance`` margin
(quote). Contracts are linear: PnL = size x (mark - entry). The engine applies the results; no
state is kept here. Scores are "higher = deleveraged first"; a flat position scores ``-inf``.

The formulas, their sources and worked examples are in docs/formulas.md ("Automated
deleveraging").
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import InvariantError, UnknownEntityError, ValidationError
from deleverage.spec import RiskScoreWeights, check_finite_positive
from deleverage.tolerance import GRID_RTOL

__all__ = [
    "AdlRoundMetrics",
    "SocializeBasis",
    "adl_round_metrics",
    "allocate_pro_rata",
    "allocate_ranked",
    "allocate_socialized_loss",
    "queue_frame",
    "queue_indicator",
    "queue_indicator_by_size",
    "queue_positions",
    "random_start_order",
    "rank",
    "score_binance",
    "score_hyperliquid",
    "score_pnl_leverage",
    "score_risk_score",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = npt.ArrayLike

SocializeBasis = Literal["profit", "open_interest"]


_LIGHTS = 5  # queue indicator lights (quintiles)


def _float_array(field: str, value: ArrayLike, n: int | None = None) -> FloatArray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1:
        raise ValidationError(field, arr.shape, "must be a one-dimensional array")
    if n is not None and len(arr) != n:
        raise ValidationError(field, len(arr), f"must have one entry per position ({n})")
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)][0]
        raise ValidationError(field, float(bad), "must hold finite numbers")
    return arr


def _nonnegative_array(field: str, value: ArrayLike, n: int | None = None) -> FloatArray:
    arr = _float_array(field, value, n)
    if np.any(arr < 0):
        raise ValidationError(field, float(arr[arr < 0][0]), "must hold numbers >= 0")
    return arr


def _positions(
    size: ArrayLike, entry_price: ArrayLike, mark_price: float
) -> tuple[FloatArray, FloatArray, float]:
    s = _float_array("size", size)
    e = _float_array("entry_price", entry_price, len(s))
    m = check_finite_positive("mark_price", mark_price)
    if np.any((s != 0) & (e <= 0)):
        bad = e[(s != 0) & (e <= 0)][0]
        raise ValidationError("entry_price", float(bad), "must be > 0 for an open position")
    return s, e, m


def _ratio(num: FloatArray, den: FloatArray, *, zero_den: float) -> FloatArray:
    # num / den where den > 0, zero_den elsewhere, without a division warning.
    out = np.full(num.shape, zero_den)
    np.divide(num, den, out=out, where=den > 0)
    return out


def score_pnl_leverage(
    size: ArrayLike, entry_price: ArrayLike, mark_price: float, *, equity: ArrayLike
) -> FloatArray:
    """BitMEX ADL ranking: profit percentage times (or over) effective leverage.

    ``score = pnl_pct x eff_lev`` if ``pnl_pct > 0``, ``pnl_pct / eff_lev`` if ``pnl_pct < 0``
    and 0 at break-even, where (BitMEX "Auto-Deleveraging", linear values ``size x price``)::

        pnl_pct = (mark_value - entry_value) / |entry_value| = side x (mark - entry) / entry
        eff_lev = |mark_value| / (mark_value - bankrupt_value) = |size| x mark / equity

    ``mark_value - bankrupt_value = size x (mark - bankruptcy_price)`` is the collateral left
    to the position at the mark, its ``equity``. The profit percentage is relative to the cost
    basis (entry value), not to the margin.

    Parameters
    ----------
    size, entry_price
        Signed sizes (base) and average entry prices (quote per base) of the candidates.
    mark_price
        Mark price (quote per base).
    equity
        Collateral backing each position at the mark, quote (isolated margin + unrealized PnL,
        or the cross account's equity). Non-positive equity means infinite leverage.

    Returns
    -------
    numpy.ndarray
        Scores, higher = deleveraged first; ``-inf`` for flat positions.

    Examples
    --------
    >>> score_pnl_leverage([10.0], [500.0], 650.0, equity=[650.0])  # 30% x 10x
    array([3.])
    """
    s, e, m = _positions(size, entry_price, mark_price)
    eq = _float_array("equity", equity, len(s))
    open_ = s != 0
    pnl_pct = np.zeros_like(s)
    np.divide(np.sign(s) * (m - e), e, out=pnl_pct, where=open_)
    eff_lev = _ratio(np.abs(s) * m, eq, zero_den=np.inf)
    score = np.zeros_like(s)
    np.multiply(pnl_pct, eff_lev, out=score, where=pnl_pct > 0)
    np.divide(pnl_pct, eff_lev, out=score, where=pnl_pct < 0)  # eff_lev > 0 when open
    return np.where(open_, score, -np.inf)


def score_binance(
    size: ArrayLike,
    entry_price: ArrayLike,
    mark_price: float,
    *,
    wallet_balance: ArrayLike,
    maintenance: ArrayLike,
    min_wallet_balance: float = 1.0,
) -> FloatArray:
    """Binance "Leverage PnL": profit as a share of collateral times the margin ratio.

    From Binance's ADL FAQ::

        pnl_percent  = max(0, unrealized_pnl) / max(1, wallet_balance)
        margin_ratio = maintenance / (wallet_balance + unrealized_pnl)   if that sum > 0, else 0
        leverage_pnl = pnl_percent x margin_ratio

    Traders are ranked by ``leverage_pnl`` (its quantile drives the indicator). Unlike BitMEX,
    the profit is measured against the collateral (wallet balance), not the cost basis; the
    leverage term is the margin ratio (maintenance / equity), not notional / equity; and every
    losing or break-even position scores 0 (no ordering among losers).

    Parameters
    ----------
    size, entry_price, mark_price
        The candidates' positions and the mark price.
    wallet_balance
        Collateral without unrealized PnL, quote (cross wallet balance or isolated margin).
    maintenance
        Maintenance margin of the position or account, quote.
    min_wallet_balance
        Floor of the PnL denominator, quote (Binance's ``max(1, ...)``: 1 USDT).

    Returns
    -------
    numpy.ndarray
        Scores, higher = deleveraged first; ``-inf`` for flat positions.

    Examples
    --------
    >>> float(score_binance([1.0], [100.0], 140.2, wallet_balance=[4.27],
    ...       maintenance=[0.1342 * 44.47])[0].round(2))
    1.26
    """
    s, e, m = _positions(size, entry_price, mark_price)
    wb = _float_array("wallet_balance", wallet_balance, len(s))
    mm = _nonnegative_array("maintenance", maintenance, len(s))
    floor = check_finite_positive("min_wallet_balance", min_wallet_balance)
    upnl = s * (m - e)
    pnl_percent = np.maximum(upnl, 0.0) / np.maximum(wb, floor)
    margin_ratio = _ratio(mm, wb + upnl, zero_den=0.0)
    return np.where(s != 0, pnl_percent * margin_ratio, -np.inf)


def score_hyperliquid(
    size: ArrayLike, entry_price: ArrayLike, mark_price: float, *, account_value: ArrayLike
) -> FloatArray:
    """Hyperliquid ADL sorting index: price ratio times leverage.

    Hyperliquid's docs give ``(mark_price / entry_price) x (notional_position / account_value)``
    for the users in profit. We side-adjust the price ratio so that it is above 1 exactly when
    the position is in profit: ``mark / entry`` for longs, ``entry / mark`` for shorts.
    ``notional = |size| x mark``. A non-positive account value means infinite leverage
    (``+inf``).

    Parameters
    ----------
    size, entry_price, mark_price
        The candidates' positions and the mark price.
    account_value
        Account value (cross) or isolated position value, quote, including unrealized PnL.

    Returns
    -------
    numpy.ndarray
        Scores, higher = deleveraged first; ``-inf`` for flat positions.

    Examples
    --------
    >>> score_hyperliquid([10.0, -10.0], [100.0, 110.0], 100.0, account_value=[500.0, 500.0])
    array([2. , 2.2])
    """
    s, e, m = _positions(size, entry_price, mark_price)
    av = _float_array("account_value", account_value, len(s))
    open_ = s != 0
    ratio = np.ones_like(s)
    np.divide(m, e, out=ratio, where=open_ & (s > 0))
    np.divide(e, m, out=ratio, where=open_ & (s < 0))
    leverage = _ratio(np.abs(s) * m, av, zero_den=np.inf)
    return np.where(open_, ratio * leverage, -np.inf)


def _max_normalized(x: FloatArray) -> FloatArray:
    # x / max(x) over finite values; +inf maps to 1; all zeros stay 0.
    finite = np.isfinite(x)
    top = float(np.max(x[finite])) if np.any(finite) else 0.0
    out = np.ones_like(x)
    if top > 0:
        np.divide(x, top, out=out, where=finite)
    else:
        out[finite] = 0.0
    return out


def score_risk_score(
    size: ArrayLike,
    mark_price: float,
    *,
    equity: ArrayLike,
    maintenance: ArrayLike,
    weights: RiskScoreWeights,
) -> FloatArray:
    """Configurable risk score: weighted sum of normalized leverage, margin ratio and size.

    ``score = (w_lev x L / max L + w_mr x R / max R + w_size x S / max S) / (w_lev + w_mr +
    w_size)`` with leverage ``L = |size| x mark / equity``, margin ratio ``R = maintenance /
    equity`` (1 = at liquidation) and size ``S = |size|``; each feature is divided by its
    largest finite value among the candidates, so it lies in [0, 1] (infinite leverage or
    ratio, from non-positive equity, counts as 1). The score lies in [0, 1].

    Parameters
    ----------
    size, mark_price
        The candidates' signed sizes and the mark price.
    equity, maintenance
        Collateral at the mark and maintenance margin of each position, quote.
    weights
        :class:`~deleverage.spec.RiskScoreWeights`, non-negative with a positive sum.

    Returns
    -------
    numpy.ndarray
        Scores, higher = deleveraged first; ``-inf`` for flat positions.

    Raises
    ------
    ValidationError
        If the weights are negative or sum to 0.

    Examples
    --------
    >>> w = RiskScoreWeights(leverage=1.0, margin_ratio=0.0, size=1.0)
    >>> score_risk_score([1.0, 2.0], 100.0, equity=[50.0, 50.0], maintenance=[1.0, 2.0],
    ...                  weights=w)
    array([0.5, 1. ])
    """
    s = _float_array("size", size)
    m = check_finite_positive("mark_price", mark_price)
    eq = _float_array("equity", equity, len(s))
    mm = _nonnegative_array("maintenance", maintenance, len(s))
    w = np.array([weights.leverage, weights.margin_ratio, weights.size], dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValidationError(
            "weights", weights, "must be finite, non-negative and sum to a positive number"
        )
    open_ = s != 0
    abs_size = np.abs(s)
    leverage = _ratio(abs_size * m, eq, zero_den=np.inf)
    ratio = _ratio(mm, eq, zero_den=np.inf)
    features = (leverage, ratio, abs_size)
    score = np.zeros_like(s)
    if np.any(open_):
        for weight, feature in zip(w, features, strict=True):
            normalized = np.zeros_like(s)
            normalized[open_] = _max_normalized(feature[open_])
            score += weight * normalized
        score /= w.sum()
    return np.where(open_, score, -np.inf)


def random_start_order(n: int, rng: np.random.Generator) -> IntArray:
    """dYdX v4 order: walk the ``n`` candidates from a random offset, wrapping around.

    ``order[k] = (start + k) mod n`` with ``start`` drawn uniformly from ``0..n-1`` by ``rng``
    (one draw; none when ``n == 0``). dYdX v4 seeds its generator from the previous block's
    time and iterates subaccounts from a random start; pass candidates in a fixed order (for
    example sorted by account id) so that the seed alone fixes the result.

    Examples
    --------
    >>> random_start_order(4, np.random.default_rng(0)).tolist()
    [3, 0, 1, 2]
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValidationError("n", n, "must be an integer >= 0")
    if not isinstance(rng, np.random.Generator):
        raise ValidationError("rng", type(rng).__name__, "must be a numpy.random.Generator")
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    start = int(rng.integers(n))
    return ((start + np.arange(n)) % n).astype(np.intp)


def rank(scores: ArrayLike, account_ids: ArrayLike) -> IntArray:
    """Deleveraging order: indices of the candidates, highest score first.

    Ties are broken by ascending account id, then by input position, so the order is
    deterministic and monotonic: ``scores[order]`` is non-increasing. ``-inf`` (flat positions)
    sorts last.

    Parameters
    ----------
    scores
        One score per candidate (no NaN).
    account_ids
        Integer account id per candidate.

    Returns
    -------
    numpy.ndarray
        ``order``: ``order[0]`` is the index of the first position to deleverage.

    Examples
    --------
    >>> rank([1.0, 3.0, 3.0], [7, 9, 8]).tolist()
    [2, 1, 0]
    """
    sc = np.atleast_1d(np.asarray(scores, dtype=np.float64))
    ids = np.atleast_1d(np.asarray(account_ids))
    if sc.ndim != 1:
        raise ValidationError("scores", sc.shape, "must be a one-dimensional array")
    if ids.shape != sc.shape:
        raise ValidationError("account_ids", len(ids), f"must have one entry per score ({len(sc)})")
    if np.any(np.isnan(sc)):
        raise ValidationError("scores", float("nan"), "must not contain NaN")
    if len(ids) and not np.issubdtype(ids.dtype, np.integer):
        raise ValidationError("account_ids", ids.dtype, "must be integers")
    return np.lexsort((np.arange(len(sc)), ids, -sc)).astype(np.intp)


def queue_positions(order: ArrayLike) -> IntArray:
    """Inverse of an order: ``positions[i]`` is candidate ``i``'s 0-based place in the queue."""
    o = _permutation("order", order)
    positions = np.empty_like(o)
    positions[o] = np.arange(len(o), dtype=np.intp)
    return positions


def _permutation(field: str, order: ArrayLike, n: int | None = None) -> IntArray:
    o = np.atleast_1d(np.asarray(order))
    if o.ndim != 1 or (len(o) and not np.issubdtype(o.dtype, np.integer)):
        raise ValidationError(field, o.dtype, "must be a one-dimensional integer array")
    size = len(o) if n is None else n
    if len(o) and (o.min() < 0 or o.max() >= size):
        raise ValidationError(field, o.tolist()[:10], f"must index 0..{size - 1}")
    if len(np.unique(o)) != len(o):
        raise ValidationError(field, o.tolist()[:10], "must not repeat an index")
    return o.astype(np.intp)


def queue_indicator(rank_position: ArrayLike, n: int) -> IntArray:
    """ADL indicator lights (1-5) from the place in a queue of ``n`` positions, by count.

    ``lights = 6 - ceil(5 x (rank_position + 1) / n)``: the position's percentile is the share
    of the queue up to and including it; 5 lights = within the first 20% (deleveraged first),
    1 light = the last 20%. This is BitMEX's convention ("priority in the queue in 20%
    increments", all lights lit = top percentile) with every position weighted equally; see
    :func:`queue_indicator_by_size` for BitMEX's size-weighted percentiles. With fewer than
    five positions the first one is not in the top 20% and shows fewer than 5 lights (a queue
    of one shows 1).

    Parameters
    ----------
    rank_position
        0-based place in the queue (0 = deleveraged first), scalar or array.
    n
        Number of positions in the queue (> 0).

    Examples
    --------
    >>> queue_indicator(np.arange(6), 6).tolist()
    [5, 4, 3, 2, 1, 1]
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
        raise ValidationError("n", n, "must be an integer > 0")
    r = np.asarray(rank_position)
    if r.size and not np.issubdtype(r.dtype, np.integer):
        raise ValidationError("rank_position", r.dtype, "must be integers")
    outside = (r < 0) | (r >= n)
    if np.any(outside):
        raise ValidationError("rank_position", int(r[outside][0]), f"must lie in 0..{n - 1}")
    # Integer ceil of 5 (r + 1) / n: no float rounding at the quintile edges.
    quintile = (_LIGHTS * (r.astype(np.int64) + 1) + n - 1) // n
    return (_LIGHTS + 1 - quintile).astype(np.intp)


def queue_indicator_by_size(sizes_in_order: ArrayLike) -> IntArray:
    """ADL indicator lights (1-5) with percentiles weighted by position size (BitMEX example).

    ``p_k = sum(|size|[:k+1]) / sum(|size|)`` for the ``k``-th position of the queue, and
    ``lights = 6 - ceil(5 p_k)``. BitMEX's six-account example (quantities 10, 20, 30, 10, 10,
    20 in queue order) gives percentiles 20, 40, 60, 80, 80, 100% and lights 5, 4, 3, 2, 2, 1.

    Parameters
    ----------
    sizes_in_order
        Position sizes (base, sign ignored) in queue order; their total must be > 0.

    Examples
    --------
    >>> queue_indicator_by_size([10, 20, 30, 10, 10, 20]).tolist()
    [5, 4, 3, 2, 2, 1]
    """
    a = np.abs(_float_array("sizes_in_order", sizes_in_order))
    total = float(a.sum())
    if len(a) == 0:
        return np.zeros(0, dtype=np.intp)
    if total <= 0:
        raise ValidationError("sizes_in_order", total, "must have a positive total size")
    share = np.cumsum(a) / total
    quintile = np.clip(np.ceil(_LIGHTS * share - GRID_RTOL), 1, _LIGHTS)
    return (_LIGHTS + 1 - quintile).astype(np.intp)


def queue_frame(
    account_ids: ArrayLike, scores: ArrayLike, *, sizes: ArrayLike | None = None
) -> pd.DataFrame:
    """The ADL queue of one market and side as a table, first to be deleveraged on top.

    Columns: ``account``, ``rank`` (1 = deleveraged first), ``score``, ``indicator`` (1-5
    lights, :func:`queue_indicator`) and, when ``sizes`` is given, ``size`` (the indicator is
    then size-weighted, :func:`queue_indicator_by_size`).

    Examples
    --------
    >>> queue_frame([11, 12, 13], [0.5, 2.0, 1.0])["account"].tolist()
    [12, 13, 11]
    """
    raw = np.atleast_1d(np.asarray(scores, dtype=np.float64))
    ids = np.atleast_1d(np.asarray(account_ids))
    order = rank(raw, ids)
    n = len(raw)
    columns: dict[str, object] = {
        "account": ids[order],
        "rank": np.arange(1, n + 1, dtype=np.int64),
        "score": raw[order],
    }
    if sizes is None:
        indicator = queue_indicator(np.arange(n), n) if n else np.zeros(0, dtype=np.intp)
    else:
        sz = _float_array("sizes", sizes, n)
        columns["size"] = sz[order]
        indicator = queue_indicator_by_size(sz[order])
    columns["indicator"] = indicator.astype(np.int64)
    return pd.DataFrame(columns)


def allocate_ranked(order: ArrayLike, available_sizes: ArrayLike, need: float) -> FloatArray:
    """Sizes to close per position, walking the queue and closing whole positions.

    With ``a`` the available sizes taken in queue order and ``before_k = a_0 + ... + a_{k-1}``,
    ``close_k = min(a_k, max(need - before_k, 0))``: whole positions until the last, partial
    one. The total is ``min(need, sum(a))`` (up to float rounding), never more than ``need``
    and never more than a position holds.

    Parameters
    ----------
    order
        Queue order: distinct indices into ``available_sizes`` (from :func:`rank` or
        :func:`random_start_order`); positions not listed are not touched.
    available_sizes
        Size each position can give, base units >= 0 (``|size|`` of eligible candidates, 0 for
        the others).
    need
        Bankrupt size to close, base units > 0.

    Returns
    -------
    numpy.ndarray
        Size (>= 0, base) to close for each position, aligned with ``available_sizes``.

    Examples
    --------
    >>> allocate_ranked([1, 0, 2], [10.0, 10.0, 10.0], 15.0).tolist()
    [5.0, 10.0, 0.0]
    """
    avail = _nonnegative_array("available_sizes", available_sizes)
    q = check_finite_positive("need", need)
    o = _permutation("order", order, len(avail))
    in_order = avail[o]
    before = np.concatenate(([0.0], np.cumsum(in_order)[:-1]))
    take = np.minimum(in_order, np.maximum(q - before, 0.0))
    out = np.zeros_like(avail)
    out[o] = take
    return out


def allocate_pro_rata(available_sizes: ArrayLike, need: float, lot_size: float) -> FloatArray:
    """Reduce every position by the same fraction ``f = min(1, need / sum(a))``, in lots.

    If ``need >= sum(a)`` every position is closed entirely. Otherwise each position's exact
    share ``f x a_i`` is rounded down to whole lots and the lots still missing to reach
    ``L = floor(need / lot)`` lots in total go, one each, to the positions with the largest
    rounded-off fractions (ties: lower index), never beyond a position's own whole lots
    (largest-remainder apportionment). So the total is ``L x lot`` (never above ``need``; the
    part of ``need`` below one lot stays unallocated), and each position is within one lot of
    its exact share. Sizes that are not lot multiples give only their whole lots when ``need <
    sum(a)``; in that case fewer than ``L`` lots may be allocated.

    Parameters
    ----------
    available_sizes
        Size each position can give, base units >= 0 (0 for non-eligible positions).
    need
        Bankrupt size to close, base units > 0.
    lot_size
        Size increment, base units > 0.

    Returns
    -------
    numpy.ndarray
        Size (>= 0, base) to close for each position, aligned with ``available_sizes``.

    Examples
    --------
    >>> allocate_pro_rata([3.0, 3.0, 3.0], 4.0, 1.0).tolist()
    [2.0, 1.0, 1.0]
    """
    avail = _nonnegative_array("available_sizes", available_sizes)
    q = check_finite_positive("need", need)
    lot = check_finite_positive("lot_size", lot_size)
    total = float(avail.sum())
    if q >= total:
        return avail.copy()
    units_avail = np.floor(avail / lot + GRID_RTOL)
    target = min(math.floor(q / lot + GRID_RTOL), int(units_avail.sum()))
    quota = avail * (q / total) / lot
    units = np.minimum(np.floor(quota + GRID_RTOL), units_avail)
    frac = quota - units
    index = np.arange(len(avail))
    missing = target - int(units.sum())
    while missing > 0:
        room = np.flatnonzero(units < units_avail)
        if len(room) == 0:
            break
        chosen = room[np.lexsort((index[room], -frac[room]))][:missing]
        units[chosen] += 1
        frac[chosen] -= 1.0
        missing -= len(chosen)
    while missing < 0:  # only from the rounding slack of floor(quota + GRID_RTOL)
        held = np.flatnonzero(units > 0)
        chosen = held[np.lexsort((-index[held], frac[held]))][:-missing]
        units[chosen] -= 1
        frac[chosen] += 1.0
        missing += len(chosen)
    return units * lot


def allocate_socialized_loss(
    loss: float, profits_or_open_interest: ArrayLike, basis: SocializeBasis
) -> FloatArray:
    """Charge a loss to accounts pro rata to their profit or their open interest.

    ``charge_i = loss x w_i / sum(w)`` with ``w_i = max(unrealized_pnl_i, 0)`` for
    ``basis="profit"`` and ``w_i = open-interest notional_i`` (``|size| x mark``) for
    ``basis="open_interest"``: Drift's perp bankruptcy raises the cumulative funding rate by
    ``loss / open interest (base)``, so every position pays per unit of size, long or short.
    An account with no position (weight 0) is never charged. The float remainder goes to the
    largest charge (ties: lower index), ``c_k = loss - sum(others)`` correctly rounded, so that
    ``math.fsum(charges) == loss`` exactly (should that sum fall on a rounding tie, the next
    largest charges are first raised by one ulp).

    Parameters
    ----------
    loss
        Loss to socialize, quote >= 0.
    profits_or_open_interest
        Unrealized PnL per account (``profit``; losses count as 0) or open-interest notional
        per account (``open_interest``, >= 0).
    basis
        ``"profit"`` or ``"open_interest"``.

    Returns
    -------
    numpy.ndarray
        Amount charged to each account, quote >= 0.

    Raises
    ------
    ValidationError
        If ``loss > 0`` and no account has a positive weight.

    Examples
    --------
    >>> allocate_socialized_loss(30.0, [10.0, -5.0, 20.0], "profit").tolist()
    [10.0, 0.0, 20.0]
    """
    total_loss = float(loss)
    if not math.isfinite(total_loss) or total_loss < 0:
        raise ValidationError("loss", loss, "must be a finite number >= 0")
    if basis == "profit":
        w = np.maximum(_float_array("profits_or_open_interest", profits_or_open_interest), 0.0)
    elif basis == "open_interest":
        w = _nonnegative_array("profits_or_open_interest", profits_or_open_interest)
    else:
        raise UnknownEntityError("basis", basis, "profit, open_interest")
    charges = np.zeros_like(w)
    if total_loss == 0:
        return charges
    weight = math.fsum(w.tolist())
    if weight <= 0:
        raise ValidationError(
            "profits_or_open_interest",
            weight,
            f"must have a positive total ({basis}) to share a loss",
        )
    charges = total_loss * (w / weight)
    # Put the float remainder on the largest charge: c_k = loss - sum(others), correctly
    # rounded by fsum. If the sum then sits on a rounding tie, nudge the next charges by one
    # ulp (never below their share) and recompute c_k.
    by_weight = np.lexsort((np.arange(len(w)), -w))
    k = int(by_weight[0])
    for j in [*by_weight[1:9].tolist(), None]:
        charges[k] = 0.0
        charges[k] = max(math.fsum([total_loss, *(-charges).tolist()]), 0.0)
        if math.fsum(charges.tolist()) == total_loss or j is None or w[j] <= 0:
            break
        charges[j] = np.nextafter(charges[j], np.inf)
    if math.fsum(charges.tolist()) != total_loss:
        raise InvariantError(
            f"socialized charges sum to {math.fsum(charges.tolist())!r}, not {loss!r}"
        )
    return charges


class AdlRoundMetrics(NamedTuple):
    """What an ADL round took, against the minimum that solvency required.

    All amounts in quote. ``profit_taken`` is the positive unrealized PnL (at the mark) of the
    closed portions: the profit haircut of Chitra's ADL papers. ``shortfall`` is the bad debt
    the round had to cover, the minimum haircut. ``notional_required`` is the notional of the
    shortest prefix of the same queue whose profit covers the shortfall.
    """

    notional_closed: float  # sum(closed x execution_price)
    profit_taken: float  # sum(closed x max(side x (mark - entry), 0))
    shortfall: float  # bad debt to cover (input)
    excess_profit: float  # profit_taken - shortfall (< 0: the closed profit fell short)
    profit_ratio: float  # profit_taken / shortfall (inf if shortfall is 0 and profit > 0)
    notional_required: float  # notional of the queue prefix whose profit covers the shortfall
    haircut_vs_mark: float  # sum(closed x side x (mark - execution_price)): lost versus mark


def adl_round_metrics(
    size: ArrayLike,
    entry_price: ArrayLike,
    closed: ArrayLike,
    *,
    mark_price: float,
    execution_price: float,
    shortfall: float,
) -> AdlRoundMetrics:
    """Measure one ADL round: notional closed and profit taken versus the shortfall.

    With ``side = sign(size)`` and ``c`` the size closed from each deleveraged position, listed
    in the order they were closed::

        notional_closed   = sum(c x execution_price)
        profit_taken      = sum(c x max(side x (mark - entry), 0))
        excess_profit     = profit_taken - shortfall
        haircut_vs_mark   = sum(c x side x (mark - execution_price))
        notional_required = notional of the shortest prefix with profit >= shortfall
                            (the last position counted partially)

    After the 10 October 2025 Hyperliquid ADL, Chitra (arXiv:2512.01112, 2602.15182) measured
    the profit the production queue took beyond the shortfall; ``excess_profit`` and
    ``notional_required`` are that comparison for one round.

    Parameters
    ----------
    size, entry_price
        Signed size (before ADL) and entry price of each deleveraged position.
    closed
        Size closed from each position, base >= 0 and at most ``|size|``.
    mark_price, execution_price
        Mark price and the ADL execution (bankruptcy) price, quote per base.
    shortfall
        Bad debt the round had to cover, quote >= 0.

    Examples
    --------
    >>> m = adl_round_metrics([500.0], [1.0], [500.0], mark_price=2.0, execution_price=1.2,
    ...                       shortfall=400.0)
    >>> m.profit_taken, m.haircut_vs_mark, m.notional_required
    (500.0, 400.0, 480.0)
    """
    s, e, m = _positions(size, entry_price, mark_price)
    c = _nonnegative_array("closed", closed, len(s))
    if np.any(c > np.abs(s) * (1 + GRID_RTOL)):
        raise ValidationError("closed", c.tolist()[:10], "must not exceed the position's |size|")
    px = check_finite_positive("execution_price", execution_price)
    need = float(shortfall)
    if not math.isfinite(need) or need < 0:
        raise ValidationError("shortfall", shortfall, "must be a finite number >= 0")
    side = np.sign(s)
    unit_profit = np.maximum(side * (m - e), 0.0)
    profit = c * unit_profit
    notional = c * px
    profit_taken = math.fsum(profit.tolist())
    notional_closed = math.fsum(notional.tolist())
    haircut = math.fsum((c * side * (m - px)).tolist())
    if need == 0:
        ratio = math.inf if profit_taken > 0 else 1.0
        required = 0.0
    else:
        ratio = profit_taken / need
        required = notional_closed
        cumulative = np.cumsum(profit)
        covered = np.flatnonzero(cumulative >= need)
        if len(covered):
            k = int(covered[0])
            before = float(cumulative[k - 1]) if k > 0 else 0.0
            # profit[k] > 0, else position k - 1 would already cover the shortfall.
            partial = min(float((need - before) / unit_profit[k]), float(c[k]))
            required = math.fsum(notional[:k].tolist()) + partial * px
    return AdlRoundMetrics(
        notional_closed=notional_closed,
        profit_taken=profit_taken,
        shortfall=need,
        excess_profit=profit_taken - need,
        profit_ratio=ratio,
        notional_required=required,
        haircut_vs_mark=haircut,
    )
