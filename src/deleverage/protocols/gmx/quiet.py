"""Quiet steps of a GMX v2 market (:class:`~deleverage.venues.protocol.QuietVenue`).

A step is quiet when the trigger index is fresh (not dirty, the borrowing and funding
factors within the look-ahead the band assumed), neither side's PnL is capped, the oracle's
mid is inside the quiet band (narrowed by the long token's move where it is another asset)
and ADL is not due: the step's early return. Such a step reads the oracle band, accrues
borrowing and funding, advances the keepers' chain and forgets what was liquidatable before;
:func:`quiet_steps` runs those tests on local copies of the accruals in one compiled walk
(:func:`~deleverage.protocols.gmx.quiet_nb.quiet_count_nb`, the venue's float operations in its
order), and :func:`advance_quiet` replays the steps (the accrual compiled too; the keepers'
chain, where there is one, step by step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from deleverage.protocols.gmx.quiet_nb import accrue_nb, quiet_count_nb
from deleverage.protocols.oracle_pool import oracle_band
from deleverage.venues.protocol import PriceInputs, QuietPath

if TYPE_CHECKING:
    from deleverage.protocols.gmx.venue import GmxVenue

__all__ = ["advance_quiet", "quiet_steps"]


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
    its band); changes nothing. One compiled walk (``quiet_nb.quiet_count_nb``)."""
    if venue._full_pass or venue._dirty:
        return 0
    cfg = venue._cfg
    rates = venue._funding_rates()  # the open interest is fixed over quiet steps
    index = path.index_prices
    long_index = index[:, 1] if venue._separate else index[:, 0]
    return int(
        quiet_count_nb(
            path.ts_ns, np.ascontiguousarray(index[:, 0]), np.ascontiguousarray(long_index),
            venue._last_ts, venue._cum_borrow, float(venue._cum_fund[0]),
            float(venue._cum_fund[1]), cfg.borrowing_rate_per_s, float(rates[0]),
            float(rates[1]), venue._band_cum, float(venue._band_fund[0]),
            float(venue._band_fund[1]), cfg.oracle_half_spread, venue._separate,
            venue._lo * (1.0 + band_rtol), venue._hi * (1.0 - band_rtol), venue._band_q,
            venue._edge_q, venue._q_shift, venue._oi_long_usd, venue._oi_long_tok,
            venue._oi_short_usd, venue._oi_short_tok, venue._pool_long, venue._pool_short,
            cfg.max_pnl_factor_for_traders, cfg.adl_enabled, cfg.max_pnl_factor_for_adl,
        )
    )  # fmt: skip


def advance_quiet(venue: GmxVenue, path: QuietPath) -> None:
    """Take the quiet steps of ``path`` as the step's early return takes them one by one: the
    accrual (``quiet_nb.accrue_nb``), the keepers' chain at each step, the last step's oracle
    band and what a quiet step forgets."""
    n = len(path.ts_ns)
    if n == 0:
        return
    cfg = venue._cfg
    keepers = venue._keepers
    chain = keepers.chain
    if chain is not None:
        assets = venue.assets
        for j, t in enumerate(path.ts_ns.tolist()):
            if t >= chain.ts_ns:  # (a shared chain advanced already)
                keepers.advance(t, path.inputs(j, assets))
    rates = venue._funding_rates()  # the open interest is fixed over quiet steps
    cum_fund = venue._cum_fund
    venue._cum_borrow, cum_fund[0], cum_fund[1] = accrue_nb(
        path.ts_ns, venue._last_ts, venue._cum_borrow, float(cum_fund[0]),
        float(cum_fund[1]), cfg.borrowing_rate_per_s, float(rates[0]), float(rates[1]),
    )  # fmt: skip
    _, venue._mid, _, venue._q_min, venue._q_max = _bands(venue, path.inputs(n - 1, venue.assets))
    venue._last_ts = int(path.ts_ns[n - 1])
    venue._quiet()
