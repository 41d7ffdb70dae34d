"""Quiet steps of an Aave market (:class:`~deleverage.venues.protocol.QuietVenue`).

A step is quiet when no account is flagged and the §A6 bound the step tests first says no
account can be under ``HF = 1``: the prices' largest ratio to the reference prices over their
smallest is at most the least reference health factor (or, with the narrowed index, the outer
bound stays within its margin and the inner bound under the narrowed floor). Then the step
only advances the chain and records the prices; :func:`advance_quiet` replays that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from deleverage.venues.protocol import QuietPath

if TYPE_CHECKING:
    from deleverage.protocols.aave.venue import AaveVenue

__all__ = ["advance_quiet", "quiet_steps"]

FloatArray = npt.NDArray[np.float64]


def _reserve_prices(venue: AaveVenue, path: QuietPath) -> FloatArray:
    """Each step's oracle price per reserve (quote reserves 1), as the step's ``p_list``."""
    cols = venue._asset_of_list
    p = np.ones((len(path.ts_ns), len(cols)))
    for r, j in enumerate(cols):
        if j >= 0:
            p[:, r] = path.index_prices[:, j]
    return p


def _bound(p: FloatArray, ref: list[float]) -> FloatArray:
    ratio = p / np.array(ref)  # the step's ``x / r``, element by element
    out: FloatArray = ratio.max(axis=1) / ratio.min(axis=1)
    return out


def quiet_steps(venue: AaveVenue, path: QuietPath, *, touched_limit: int) -> int:
    """Leading quiet steps of ``path`` (module docstring; ``touched_limit``: the venue's
    count of touched accounts past which a step runs a full pass); changes nothing."""
    if venue._flagged.size or venue._ref is None or venue._touched.size > touched_limit:
        return 0
    p = _reserve_prices(venue, path)
    bound = _bound(p, venue._ref_list)
    quiet = bound <= venue._hf_floor
    if venue._inner_ref is not None:
        inner = _bound(p, venue._inner_ref)
        quiet |= (bound <= venue._inner_limit) & (inner <= venue._inner_floor)
    stop = np.flatnonzero(~quiet)
    return int(stop[0]) if stop.size else len(quiet)


def advance_quiet(venue: AaveVenue, path: QuietPath) -> None:
    """Take the quiet steps of ``path``: the chain, the clock, the prices and the memo key,
    as the steps one by one leave them."""
    ts = path.ts_ns.tolist()
    chain = venue._chain
    native = path.book_prices[:, venue._native_index].tolist()  # the market price: the book's
    for t, price in zip(ts, native, strict=True):
        if t >= chain.ts_ns:  # (a chain shared with a venue stepped first: advanced already)
            chain.advance(t, price)
    venue._last_ts = ts[-1]
    p = _reserve_prices(venue, path)
    keys = [(tuple(row), venue._version) for row in p.tolist()]
    if any(key != venue._memo_key for key in keys):  # a step with other prices re-keys it
        venue._memo_key, venue._memo_plan = keys[-1], None
    venue._price = np.array(keys[-1][0])
