"""Quiet steps of a GMX v2 market (:class:`~deleverage.venues.protocol.QuietVenue`).

A step is quiet when the trigger index is fresh (not dirty, the borrowing and funding
factors within the look-ahead the band assumed), neither side's PnL is capped, the oracle's
mid is inside the quiet band (narrowed by the long token's move where it is another asset)
and ADL is not due: the step's early return. Such a step reads the oracle band, accrues
borrowing and funding, advances the keepers' chain and forgets what was liquidatable before;
:func:`quiet_steps` runs those tests on local copies of the accruals, step by step with the
venue's own functions, and :func:`advance_quiet` replays the steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deleverage.protocols.oracle_pool import oracle_band
from deleverage.venues.protocol import PriceInputs, QuietPath

if TYPE_CHECKING:
    from deleverage.protocols.gmx.venue import GmxVenue

__all__ = ["advance_quiet", "quiet_steps"]

_NS = 1e-9


def _bands(
    venue: GmxVenue, inputs: dict[str, PriceInputs]
) -> tuple[float, float, float, float, float]:
    cfg = venue._cfg
    p_min, mid, p_max = oracle_band(inputs[cfg.asset], cfg.oracle_half_spread)
    if venue._separate:
        q_min, _, q_max = oracle_band(inputs[venue._long_asset], cfg.oracle_half_spread)
    else:
        q_min, q_max = p_min, p_max
    return p_min, mid, p_max, q_min, q_max


def quiet_steps(venue: GmxVenue, path: QuietPath, *, band_rtol: float) -> int:
    """Leading quiet steps of ``path`` (module docstring; ``band_rtol``: the venue's slack on
    its band); changes nothing (the long token's prices the PnL tests read are put back)."""
    if venue._full_pass or venue._dirty:
        return 0
    cfg = venue._cfg
    rate = cfg.borrowing_rate_per_s
    rates = venue._funding_rates()  # the open interest is fixed over quiet steps
    cum_borrow, cum_fund, last = venue._cum_borrow, venue._cum_fund.copy(), venue._last_ts
    lo, hi = venue._lo * (1.0 + band_rtol), venue._hi * (1.0 - band_rtol)
    saved = venue._q_min, venue._q_max
    assets = venue.assets
    try:
        for j, t in enumerate(path.ts_ns.tolist()):
            p_min, mid, p_max, q_min, q_max = _bands(venue, path.inputs(j, assets))
            venue._q_min, venue._q_max = q_min, q_max
            if last:
                dt = (t - last) * _NS
                cum_borrow += rate * dt
                cum_fund += rates * dt
            last = t
            if (
                cum_borrow > venue._band_cum
                or bool((cum_fund > venue._band_fund).any())
                or venue._cap_binds(p_min, p_max)
            ):
                return j
            slack = venue._q_slack(q_min, venue._band_q)
            edge = slack + venue._q_slack(q_min, venue._edge_q)
            if not (lo + edge < mid < hi - edge) or venue._adl_due(p_min, p_max):
                return j
        return len(path.ts_ns)
    finally:
        venue._q_min, venue._q_max = saved


def advance_quiet(venue: GmxVenue, path: QuietPath) -> None:
    """Take the quiet steps of ``path`` one by one, as the step's early return does."""
    cfg = venue._cfg
    assets = venue.assets
    chain = venue._keepers.chain
    for j, t in enumerate(path.ts_ns.tolist()):
        inputs = path.inputs(j, assets)
        _, mid, _, venue._q_min, venue._q_max = _bands(venue, inputs)
        if venue._last_ts:
            dt = (t - venue._last_ts) * _NS
            venue._cum_borrow += cfg.borrowing_rate_per_s * dt
            venue._cum_fund += venue._funding_rates() * dt
        venue._last_ts = t
        venue._mid = mid
        if chain is None or t >= chain.ts_ns:  # (a shared chain advanced already)
            venue._keepers.advance(t, inputs)
        venue._quiet()
