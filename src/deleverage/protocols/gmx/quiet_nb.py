"""Compiled quiet-step count and accrual of a GMX v2 market (numba; ``quiet.py`` calls them).

:func:`quiet_count_nb` walks a path with the tests of the step's early return (the oracle
band, the borrowing and funding accrual against the band's look-ahead, the traders' PnL cap,
the quiet band narrowed by the long token's move, ADL due), the same floating-point
operations in the same order as the venue's Python (``oracle_band``, ``math.side_pnl_usd``,
``math.capped_pnl_scale``, ``math.pnl_to_pool_factor``, ``GmxVenue._q_slack``), and returns
the first step that is not quiet. :func:`accrue_nb` replays the accrual of quiet steps. Prices
are quote per base token, times ns since the epoch, factors per USD of size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["accrue_nb", "quiet_count_nb"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NS = 1e-9


@njit(cache=True)
def _side_pnl(is_long: bool, oi_usd: float, oi_tokens: float, price: float) -> float:
    # math.side_pnl_usd
    if oi_usd == 0.0 or oi_tokens == 0.0:
        return 0.0
    value = oi_tokens * price
    out: float = value - oi_usd if is_long else oi_usd - value
    return out


@njit(cache=True)
def _capped_scale(side_pnl: float, pool_usd: float, max_pnl_factor: float) -> float:
    # math.capped_pnl_scale (Python's max(pool, 0.0): 0.0 only when pool < 0.0)
    if side_pnl <= 0.0:
        return 1.0
    cap = (0.0 if pool_usd < 0.0 else pool_usd) * max_pnl_factor
    out: float = 1.0 if side_pnl <= cap else cap / side_pnl
    return out


@njit(cache=True)
def _pool_factor(pnl_usd: float, pool_usd: float) -> float:
    # math.pnl_to_pool_factor
    out: float = 0.0 if pool_usd <= 0.0 else pnl_usd / pool_usd
    return out


@njit(cache=True)
def _q_slack(separate: bool, q_shift: float, q_min: float, reference: float) -> float:
    # GmxVenue._q_slack
    if not separate:
        return 0.0
    dq = abs(q_min - reference)
    out: float = 0.0 if dq == 0.0 else q_shift * dq
    return out


@njit(cache=True)
def quiet_count_nb(
    ts_ns: IntArray,
    index: FloatArray,
    long_index: FloatArray,
    last_ts: int,
    cum_borrow: float,
    cum_fund_long: float,
    cum_fund_short: float,
    borrow_rate: float,
    fund_rate_long: float,
    fund_rate_short: float,
    band_cum: float,
    band_fund_long: float,
    band_fund_short: float,
    half_spread: float,
    separate: bool,
    lo: float,
    hi: float,
    band_q: float,
    edge_q: float,
    q_shift: float,
    oi_long_usd: float,
    oi_long_tokens: float,
    oi_short_usd: float,
    oi_short_tokens: float,
    pool_long_tokens: float,
    pool_short_usd: float,
    max_pnl_factor: float,
    adl_enabled: bool,
    adl_limit: float,
) -> int:
    """Leading quiet steps of the path (step ``j`` at ``ts_ns[j]`` on the index price
    ``index[j]`` and the long token's ``long_index[j]``, used where ``separate``); ``lo`` /
    ``hi``: the quiet band with the venue's slack applied; the rest the venue's state now."""
    last = last_ts
    for j in range(ts_ns.shape[0]):
        mid = index[j]
        p_min = mid * (1.0 - half_spread)
        p_max = mid * (1.0 + half_spread)
        q_min = long_index[j] * (1.0 - half_spread) if separate else p_min
        t = ts_ns[j]
        if last != 0:
            dt = (t - last) * _NS
            cum_borrow += borrow_rate * dt
            cum_fund_long += fund_rate_long * dt
            cum_fund_short += fund_rate_short * dt
        last = t
        if cum_borrow > band_cum or cum_fund_long > band_fund_long:
            return j
        if cum_fund_short > band_fund_short:
            return j
        long_pnl = _side_pnl(True, oi_long_usd, oi_long_tokens, p_max)
        short_pnl = _side_pnl(False, oi_short_usd, oi_short_tokens, p_min)
        long_pool = pool_long_tokens * q_min
        long_s = _capped_scale(long_pnl, long_pool, max_pnl_factor)
        short_s = _capped_scale(short_pnl, pool_short_usd, max_pnl_factor)
        if long_s < 1.0 or short_s < 1.0:
            return j
        slack = _q_slack(separate, q_shift, q_min, band_q)
        edge = slack + _q_slack(separate, q_shift, q_min, edge_q)
        if not (lo + edge < mid and mid < hi - edge):
            return j
        if adl_enabled and (
            _pool_factor(long_pnl, long_pool) > adl_limit
            or _pool_factor(short_pnl, pool_short_usd) > adl_limit
        ):
            return j
    n: int = ts_ns.shape[0]
    return n


@njit(cache=True)
def accrue_nb(
    ts_ns: IntArray,
    last_ts: int,
    cum_borrow: float,
    cum_fund_long: float,
    cum_fund_short: float,
    borrow_rate: float,
    fund_rate_long: float,
    fund_rate_short: float,
) -> tuple[float, float, float]:
    """The borrowing and funding factors after stepping at each of ``ts_ns`` in turn (each
    step adds ``rate x dt``, ``dt`` in s since the last step; none before the first)."""
    last = last_ts
    for j in range(ts_ns.shape[0]):
        t = ts_ns[j]
        if last != 0:
            dt = (t - last) * _NS
            cum_borrow += borrow_rate * dt
            cum_fund_long += fund_rate_long * dt
            cum_fund_short += fund_rate_short * dt
        last = t
    return cum_borrow, cum_fund_long, cum_fund_short
