"""Quiet steps of an Aave market (:class:`~deleverage.venues.protocol.QuietVenue`).

A step is quiet when no account is flagged and the §A6 bound the step tests first says no
account can be under ``HF = 1``: the prices' largest ratio to the reference prices over their
smallest is at most the least reference health factor (or, with the narrowed index, the outer
bound stays within its margin and the inner bound under the narrowed floor). Then the step
only advances the chain and records the prices; :func:`advance_quiet` replays that.

With accounts flagged (under water, no keeper takes them: after a crash, for hours), a step
is quiet when the accounts under 1 are exactly the flagged ones and no keeper can act on
them (:mod:`.quiet_nb`, §A10: the narrowed index, the plans and §D3's skip bound with the
gas price of the venue's chain advanced along the path on a copy and the keepers' capital
as proceeds fall due). Such a step also adds the flagged accounts' time under water and
its missed opportunities, settles the keepers' proceeds due when it consults them, and
leaves the flagged accounts in the order of its search; :func:`advance_quiet` replays that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from deleverage.protocols.aave.math import LIQUIDATABLE
from deleverage.protocols.aave.quiet_nb import flagged_quiet_nb
from deleverage.protocols.chain import GWEI, NS_PER_S
from deleverage.venues.protocol import QuietPath

if TYPE_CHECKING:
    from deleverage.protocols.aave.venue import AaveVenue

__all__ = ["advance_quiet", "quiet_steps"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: What a walk returns: quiet steps, and per step the plans that could run, whether the
#: keepers were consulted, the accounts flagged before it; the flag blocks after the walk.
Walk = tuple[int, IntArray, BoolArray, IntArray, IntArray]
_NO_STEPS = np.zeros(0, dtype=np.int64)
#: Steps of the first look with flagged accounts, and the growth of each next look.
_FIRST_LOOK: Final = 32
_GROWTH: Final = 8


def _reserve_prices(venue: AaveVenue, path: QuietPath, *, book: bool = False) -> FloatArray:
    """Each step's oracle (``book``: market) price per reserve (quote reserves 1), as the
    step's ``p_list`` (``pm``)."""
    cols = venue._asset_of_list
    source = path.book_prices if book else path.index_prices
    p = np.ones((len(path.ts_ns), len(cols)))
    for r, j in enumerate(cols):
        if j >= 0:
            p[:, r] = source[:, j]
    return p


def _bound(p: FloatArray, ref: list[float]) -> FloatArray:
    ratio = p / np.array(ref)  # the step's ``x / r``, element by element
    out: FloatArray = ratio.max(axis=1) / ratio.min(axis=1)
    return out


def quiet_steps(venue: AaveVenue, path: QuietPath, *, touched_limit: int) -> int:
    """Leading quiet steps of ``path`` (module docstring; ``touched_limit``: the venue's
    count of touched accounts past which a step runs a full pass); changes nothing."""
    if venue._ref is None or venue._touched.size > touched_limit:
        return 0
    if venue._flagged.size or _walks(venue):
        return _flagged_walk(venue, path)[0]
    p = _reserve_prices(venue, path)
    bound = _bound(p, venue._ref_list)
    quiet = bound <= venue._hf_floor
    if venue._inner_ref is not None:
        inner = _bound(p, venue._inner_ref)
        quiet |= (bound <= venue._inner_limit) & (inner <= venue._inner_floor)
    stop = np.flatnonzero(~quiet)
    return int(stop[0]) if stop.size else len(quiet)


def _walks(venue: AaveVenue) -> bool:
    """Whether the steps are counted by the walk of :mod:`.quiet_nb` (a narrowed index and
    the venue's own chain): then accounts may cross 1 within a stretch."""
    return venue._inner_ref is not None and venue._own_chain


def _flagged_walk(venue: AaveVenue, path: QuietPath) -> Walk:
    """:func:`.quiet_nb.flagged_quiet_nb` on ``path``, looked at on growing prefixes (the
    chain's preview costs a Python call a step: a busy stretch ends early); 0 quiet steps
    without a narrowed index or an own chain (a step on the outer index may re-sort it, a
    shared chain may have moved between this venue's steps)."""
    if not _walks(venue):
        return 0, _NO_STEPS, np.zeros(0, dtype=np.bool_), _NO_STEPS, venue._since
    n = len(path.ts_ns)
    m = min(n, _FIRST_LOOK)
    while True:
        found = _flagged_head(venue, path.head(m))
        if found[0] < m or m == n:
            return found
        m = min(n, m * _GROWTH)


def _flagged_head(venue: AaveVenue, path: QuietPath) -> Walk:
    """:func:`.quiet_nb.flagged_quiet_nb` on ``path``."""
    keepers, chain = venue._keepers, venue._chain
    ts = path.ts_ns.tolist()
    natives = path.book_prices[:, venue._native_index]  # the step's ``native``
    blocks, gas, _ = chain.preview(ts, natives.tolist())
    starts, capitals = keepers.capital_path(blocks)
    memo = venue._memo_key
    memo_valid = memo is not None and memo[1] == venue._version
    memo_prices = np.array(memo[0] if memo is not None else venue._ref_list, dtype=np.float64)
    result = flagged_quiet_nb(
        venue._c, venue._d, venue._lt_weight, venue._lt, venue._bonus, venue._fee,
        venue._plan_constants,
        LIQUIDATABLE, _reserve_prices(venue, path), _reserve_prices(venue, path, book=True),
        memo_prices, memo_valid, np.array(venue._ref_list), venue._hf_floor,
        np.array(venue._inner_ref), venue._inner_limit, venue._inner_floor,
        venue._inner_sorted, venue._inner_order, venue._inner_c, venue._inner_d,
        venue._inner_touched,
        venue._inner_touched_hf, venue._flagged, venue._since, blocks, gas,
        np.ascontiguousarray(natives), GWEI, starts, capitals, keepers.latency_blocks,
        keepers.gas_units, keepers.min_profit, venue._depth,
    )  # fmt: skip
    n, n_ok, consults, sizes, since = result
    return int(n), n_ok, consults, sizes, since


def _search(venue: AaveVenue, p_list: list[float]) -> IntArray:
    """The accounts under 1 at ``p_list`` in the step's order (its ``_liquidatable`` while
    the narrowed index serves, which a walk's steps leave as it is)."""
    ratio = [x / r for x, r in zip(p_list, venue._ref_list, strict=True)]
    if max(ratio) / min(ratio) <= venue._hf_floor:
        return np.empty(0, dtype=np.int64)
    return venue._inner_liquidatable(p_list)


def advance_quiet(venue: AaveVenue, path: QuietPath) -> None:
    """Take the quiet steps of ``path``: the chain, the clock, the prices and the memo key,
    as the steps one by one leave them (with the walk of :mod:`.quiet_nb`: the flagged
    accounts' time under water, the missed opportunities, the keepers' settlements, the
    flag blocks and the flagged accounts in the order of the last search too)."""
    ts = path.ts_ns.tolist()
    chain = venue._chain
    walked = venue._flagged.size > 0 or _walks(venue)
    n_ok: list[int] = []
    consults: list[bool] = []
    sizes: list[int] = []
    if walked:
        count, ok, asked, flagged_before, since = _flagged_head(venue, path)
        assert count == len(ts), "advance_quiet takes only steps quiet_steps counted"
        n_ok, consults, sizes = ok.tolist(), asked.tolist(), flagged_before.tolist()
    native = path.book_prices[:, venue._native_index].tolist()  # the market price: the book's
    for j, (t, price) in enumerate(zip(ts, native, strict=True)):
        if t >= chain.ts_ns:  # (a chain shared with a venue stepped first: advanced already)
            chain.advance(t, price)
        if walked:
            if venue._last_ts >= 0 and sizes[j]:
                dt_s = (t - venue._last_ts) / NS_PER_S
                venue.liquidatable_account_seconds += dt_s * sizes[j]
            venue._last_ts = t
            if consults[j]:
                venue._keepers.settle(chain.block)
                venue.missed_opportunities += n_ok[j]
    venue._last_ts = ts[-1]
    p = _reserve_prices(venue, path)
    keys = [(tuple(row), venue._version) for row in p.tolist()]
    changed = [j for j, key in enumerate(keys) if key != (keys[j - 1] if j else venue._memo_key)]
    if changed:  # a step with other prices re-keys it (and, walked, searches again)
        venue._memo_key, venue._memo_plan = keys[-1], None
        if walked:
            venue._flagged = _search(venue, list(keys[changed[-1]][0]))
            venue._since[:] = since
    venue._price = np.array(keys[-1][0])
