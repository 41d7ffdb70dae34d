"""GMX v2 auto-deleveraging of one side of a market (step 4 of
:mod:`deleverage.protocols.gmx.venue`).

While a side's PnL-to-pool factor exceeds ``max_pnl_factor_for_adl``, ADL keepers close the most
profitable positions of that side (by PnL at the side's price, ties by position), the last one
partly, until the factor is at ``min_pnl_factor_after_adl`` (never below: GMX reverts an
over-correcting ADL; ``math.adl_profit_to_target``). Each close pays the position fee (by
whether it improves the open-interest balance) and borrowing into the collateral's pool, its
funding owed to the other side's claimable funding, and its profit from the PnL token's pool
scaled by the MAX_PNL_FACTOR_FOR_TRADERS cap; the cut profit is ``adl_loss``, what the pool
cannot pay is bad debt. Keepers act only when the execution fee beats their gas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from deleverage.engine.events import EventKind
from deleverage.protocols.gmx import math as gm
from deleverage.protocols.oracle_pool import PoolAction, append_actions

if TYPE_CHECKING:
    from deleverage.protocols.gmx.venue import GmxVenue

__all__ = ["deleverage_side"]


def deleverage_side(
    venue: GmxVenue,
    ts_ns: int,
    block: int,
    is_long: bool,
    p_min: float,
    mid: float,
    p_max: float,
) -> float:
    """Deleverage one side of ``venue`` down to MIN_PNL_FACTOR_AFTER_ADL at block ``block``
    (oracle band ``p_min`` / ``mid`` / ``p_max``, USD per token); return the signed flow
    (index tokens, sold negative) the keepers' closes put into the market."""
    cfg = venue._cfg
    side = 0 if is_long else 1
    side_price = p_max if is_long else p_min
    side_pnl = venue._side_pnl(is_long, side_price)
    pool = venue._pool_usd(is_long, venue._q_min)
    if gm.pnl_to_pool_factor(side_pnl, pool) <= cfg.max_pnl_factor_for_adl:
        venue._adl_seen[side] = -1
        return 0.0
    if venue._adl_seen[side] < 0:
        venue._adl_seen[side] = block
    target = cfg.min_pnl_factor_after_adl
    cands = np.flatnonzero((venue._size_usd > 0.0) & (venue._is_long == is_long))
    pnl_pay = gm.position_pnl_usd(
        venue._is_long[cands], venue._size_usd[cands], venue._size_tok[cands], p_min, p_max
    )
    pnl_side = gm.position_pnl_usd(
        venue._is_long[cands],
        venue._size_usd[cands],
        venue._size_tok[cands],
        side_price,
        side_price,
    )
    keep = (pnl_pay > 0.0) & (pnl_side > 0.0)
    cands, pnl_pay, pnl_side = cands[keep], pnl_pay[keep], pnl_side[keep]
    order = np.argsort(-pnl_side, kind="stable")
    cands, pnl_pay, pnl_side = cands[order], pnl_pay[order], pnl_side[order]
    scale = gm.capped_pnl_scale(side_pnl, pool, cfg.max_pnl_factor_for_traders)
    # position fee (by balanceWasImproved) and borrowing; funding owed is paid apart
    improved = gm.close_improves_balance(
        is_long=venue._is_long[cands],
        size_usd=venue._size_usd[cands],
        long_open_interest_usd=venue._oi_long_usd,
        short_open_interest_usd=venue._oi_short_usd,
    )
    fee_factor = np.where(
        improved, cfg.position_fee_factor_positive, cfg.position_fee_factor_negative
    )
    fee = venue._size_usd[cands] * (fee_factor + venue._cum_borrow - venue._borrow_entry[cands])
    same_pool = venue._coll_long[cands] == is_long
    # What leaves this side's pool per unit of side PnL realized.
    paid = (scale * pnl_pay - np.where(same_pool, fee, 0.0)) / pnl_side
    closed = np.zeros(cands.size)
    P, Pool = side_pnl, pool
    for k in range(cands.size):
        need = gm.adl_profit_to_target(
            side_pnl=P, pool_usd=Pool, target_factor=target, paid_per_unit=float(paid[k])
        )
        if need <= 0.0:
            break
        part = min(1.0, need / float(pnl_side[k]))
        closed[k] = part
        P -= part * float(pnl_side[k])
        Pool -= part * float(pnl_side[k]) * float(paid[k])
        if part < 1.0:
            break
    hit = np.flatnonzero(closed > 0.0)
    # ADL keepers execute the planned closes (in order) when the fee beats their gas; a
    # skipped one leaves the factor above target (never below): ADL stays due
    acted, _ = venue._keepers.act(
        block=block,
        seen_block=np.full(hit.size, venue._adl_seen[side], dtype=np.int64),
        incentive=cfg.execution_fee_usd,
    )
    hit = hit[acted]
    idx, frac = cands[hit], closed[hit]
    if idx.size == 0:
        return 0.0
    fee_paid = frac * fee[hit]
    # The closed part's funding is paid from the collateral to the other side.
    funding = frac * venue._funding_owed(idx)
    funding_tokens = np.minimum(
        funding / np.where(venue._coll_long[idx], venue._q_min, 1.0), venue._coll[idx]
    )
    venue._coll[idx] -= funding_tokens
    venue._funding_claimable += float(funding.sum())
    profit_paid = frac * scale * pnl_pay[hit]
    cut = frac * (1.0 - scale) * pnl_pay[hit]
    venue._adl_loss += float(cut.sum())
    coll_long = venue._coll_long[idx]
    fee_tokens = np.minimum(fee_paid / np.where(coll_long, venue._q_min, 1.0), venue._coll[idx])
    venue._coll[idx] -= fee_tokens
    venue._pool_long += float(fee_tokens[coll_long].sum())
    venue._pool_short += float(fee_tokens[~coll_long].sum())
    if is_long:
        venue._pay_profit(float(profit_paid.sum()) / venue._q_max, 0.0)
    else:
        venue._pay_profit(0.0, float(profit_paid.sum()))
    closed_tok = frac * venue._size_tok[idx]
    venue._size_usd[idx] *= 1.0 - frac
    venue._size_tok[idx] *= 1.0 - frac
    whole = frac >= 1.0
    venue._coll[idx[whole]] = 0.0  # a whole close returns the rest of the collateral
    venue._size_usd[idx[whole]] = 0.0
    venue._size_tok[idx[whole]] = 0.0
    signed = -closed_tok if is_long else closed_tok
    append_actions(
        venue._journal,
        kind=EventKind.ADL_ROUND,
        ts_ns=ts_ns,
        code=PoolAction.GMX_ADL,
        account=idx,
        market=0,
        size=signed,
        price=mid,
        amount=cut,
        fee=fee_paid,
    )
    venue._refresh_open_interest()
    venue._dirty = True
    return float(signed.sum())
