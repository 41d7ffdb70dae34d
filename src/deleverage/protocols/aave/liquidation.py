"""A step's liquidations on an Aave market: the keepers' pass over the plans and its effects.

:func:`keepers_pass` is what :meth:`.venue.AaveVenue.step` runs once the liquidatable accounts
are flagged and planned (the module docstring of :mod:`.venue`, steps 3 and 4): §D3's skip
bound, the keepers' competition (:meth:`~deleverage.protocols.keepers.Keepers.act`), then the
effects of what they took: collateral seized, debt repaid, the protocol fee to the treasury,
the v3.3 deficits on the bad-debt line, the keepers' sales and buys in the step's forced
flow, their proceeds, the gas they submit to the chain, the accounts left aside from the
sorted index (``_touch``) and the journal rows (their columns in :mod:`.venue`'s docstring).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from deleverage import portable_linalg as pla
from deleverage.engine.events import EventKind
from deleverage.protocols.aave.math import LIQUIDATABLE
from deleverage.protocols.keepers import sale_slippage_quote
from deleverage.venues.protocol import SolvencyLines

if TYPE_CHECKING:
    from deleverage.protocols.aave.venue import AaveVenue

__all__ = ["keepers_pass"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def keepers_pass(
    venue: AaveVenue,
    accounts: IntArray,
    p: FloatArray,
    pm: FloatArray,
    native: float,
    flow: FloatArray,
    ts_ns: int,
    n_ok: int,
    best: float,
    oldest: int,
) -> tuple[int, float]:
    """The keepers on the plans of ``accounts`` at oracle prices ``p`` and market prices
    ``pm`` (quote per token): ``n_ok`` of them can run, the best incentive ``best`` (quote)
    and the oldest flag block ``oldest`` (.plan_nb.best_opportunity_nb). Applies what they
    did to ``venue`` and adds the keepers' trades to ``flow`` (tokens per asset); returns
    the liquidations and the collateral seized at the oracle price (quote).

    The skip bound (§D3) first: the best incentive cannot pay any able keeper's gas and
    minimum profit: the pass would act on nothing (most steps after a crash)."""
    if n_ok == 0:
        return 0, 0.0
    block = venue._chain.block
    if math.isfinite(best) and venue._keepers.none_would_act(
        block=block,
        waited_blocks=block - oldest,
        incentive=best,
        gas_price_gwei=venue._chain.gas_price_gwei,
        native_price=native,
    ):
        venue.missed_opportunities += n_ok
        return 0, 0.0
    plan, coll_reserve, debt_reserve = venue._plan(accounts, p)
    ok = np.flatnonzero((plan.status == LIQUIDATABLE) & (plan.amounts.debt_repaid > 0.0))
    ci, di = coll_reserve[ok], debt_reserve[ok]
    repaid = plan.amounts.debt_repaid[ok]
    seized = plan.amounts.collateral_seized[ok]
    fee = plan.amounts.protocol_fee[ok]
    received = seized - fee
    need = repaid * pm[di]
    incentive = received * pm[ci] - need
    seen = venue._since[accounts[ok]]
    slippage = sale_slippage_quote(received, pm[ci], venue._depth[ci])
    slippage = np.where(np.isfinite(venue._depth[ci]), slippage, 0.0)
    acts = venue._keepers.act(
        block=block,
        seen_block=seen,
        incentive=incentive,
        need=need,
        slippage=slippage,
        gas_price_gwei=venue._chain.gas_price_gwei,
        native_price=native,
    )
    won = np.flatnonzero(acts.acted)
    venue.missed_opportunities += int(ok.size - won.size)
    if won.size == 0:
        return 0, 0.0
    rows = ok[won]
    venue._version += 1  # the state changes: no reuse of this step's plans
    acc, ci, di = accounts[rows], ci[won], di[won]
    repaid, seized, fee, received = repaid[won], seized[won], fee[won], received[won]
    keeper = acts.winner[won]
    # Effects: collateral, debt, treasury, deficit.
    balance = venue._c[acc, ci]
    venue._c[acc, ci] = np.where(seized >= balance, 0.0, balance - seized)
    owed = venue._d[acc, di]
    cleared = repaid >= owed
    venue._d[acc, di] = np.where(cleared, 0.0, owed - repaid)
    np.add.at(venue.treasury, ci, fee)
    deficit = plan.deficit[rows]
    burned = deficit.sum(axis=1) > 0.0
    deficit_quote = pla.matmul(deficit, p)
    if burned.any():
        venue._d[acc[burned]] = 0.0
        venue.deficit += deficit.sum(axis=0)
        venue._bad_debt += float(deficit_quote.sum())
    # The keepers sell the collateral they received and buy the debt they repaid.
    sold = venue._asset_of[ci]
    np.add.at(flow, sold[sold >= 0], -received[sold >= 0])
    bought = venue._asset_of[di]
    np.add.at(flow, bought[bought >= 0], repaid[bought >= 0])
    proceeds = np.maximum(received * pm[ci] - slippage[won], 0.0)
    venue._keepers.receive(keeper, proceeds, block=block)
    venue._chain.submit(float(venue._keepers.gas_units[keeper].sum()))
    # Changed accounts: their health at the reference prices, kept aside from the sort.
    venue._touch(acc)
    if burned.any():
        venue._lines = SolvencyLines(0.0, 0.0, 0.0, 0.0, 0.0, venue._bad_debt)
    _record(
        venue,
        ts_ns,
        acc,
        keeper,
        ci,
        di,
        seized,
        repaid,
        fee,
        p,
        deficit,
        cleared,
        acts.gas_cost[won],
    )
    return int(acc.size), float((seized * p[ci]).sum())


def _record(
    venue: AaveVenue,
    ts_ns: int,
    acc: IntArray,
    keeper: IntArray,
    ci: IntArray,
    di: IntArray,
    seized: FloatArray,
    repaid: FloatArray,
    fee: FloatArray,
    p: FloatArray,
    deficit: FloatArray,
    cleared: npt.NDArray[np.bool_],
    gas: FloatArray,
) -> None:
    names = [r.name for r in venue.config.reserves]

    def texts() -> list[str]:
        return [
            json.dumps({"debt_reserve": names[j], "debt_repaid": float(r), "gas": float(g)})
            for j, r, g in zip(di, repaid, gas, strict=True)
        ]

    venue._journal.append_columns(
        EventKind.LIQUIDATION,
        ts_ns,
        account=acc,
        counterparty=keeper,
        market=ci.astype(np.int32),
        size=-seized,
        price=p[ci],
        amount=pla.matmul(deficit, p),
        fee=fee * p[ci],
        code=np.where(cleared, 0, 1).astype(np.int32),
        text=texts,
    )
    who, reserve = np.nonzero(deficit > 0.0)
    if who.size:
        venue._journal.append_columns(
            EventKind.BAD_DEBT,
            ts_ns,
            account=acc[who],
            market=reserve.astype(np.int32),
            amount=deficit[who, reserve] * p[reserve],
            text="aave v3.3 reserve deficit",
        )
