"""Quiet steps through running Clipper sales, in one compiled pass (§M11).

A Maker step with running sales changes nothing when, for every sale, the per-sale path of
:meth:`deleverage.protocols.maker.clipper.Clipper.run` (``_run_each``) passes it over: a sale
that needs a reset (older than ``tail``, or priced under ``cusp x top``) finds no keeper for
whom the redo pays, and any other sale priced at or below the market finds no keeper whose
take pays (its latency, a budget ``capital - gas > 0``, the slice ``Clipper.take`` would sell
for it and ``proceeds - owe - gas > min_profit``). :func:`first_action_nb` evaluates exactly
these tests, sale by sale and step by step along a path, with the same float operations in
the same order as the per-sale path (Python's ``min``/``max`` as written there, IEEE
division), so its answer is the per-sale path's own, not a bound. The curve's factors
``cut^k`` come from a table computed by Python's ``**`` (:func:`python_powers`), the per-sale
path's own ``pow``; a sale whose factor is past the table stops the count there (it cannot
tell). tests/unit/protocols/maker/test_maker_quiet_sales.py compares quiet_steps +
advance_quiet with stepping one step at a time.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.protocols.maker.clip_nb import redo_incentive_nb, redo_keeper_nb, take_nb

__all__ = ["first_action_nb", "python_powers"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
NS_PER_S: Final = 1_000_000_000
#: Whole exponents ``k`` of :func:`python_powers` at most.
_MAX_POWERS: Final = 1 << 16


def python_powers(curve: str, cut: float, step_s: float, tail_s: float) -> FloatArray:
    """``cut ** k`` by Python's float power (the per-sale path's ``pow``) for the whole ``k``
    a sale no older than ``tail`` reaches (stairstep: ``floor(age / step)``, exponential:
    ``floor(age)``), at most 2^16 of them; empty for the linear curve."""
    if curve == "linear":
        return np.empty(0)
    last = tail_s / step_s if curve == "stairstep" else tail_s
    size = int(min(last, float(_MAX_POWERS))) + 2
    return np.array([cut**k for k in range(size)], dtype=np.float64)


@njit(cache=True, error_model="numpy")
def first_action_nb(
    ts: IntArray,
    blocks: IntArray,
    feeds: FloatArray,
    markets: FloatArray,
    gas_price_gwei: FloatArray,
    natives: FloatArray,
    starts: IntArray,
    capitals: FloatArray,
    order: IntArray,
    latency: IntArray,
    gas_units: FloatArray,
    min_profit: FloatArray,
    tops: FloatArray,
    tics: IntArray,
    tabs: FloatArray,
    lots: FloatArray,
    seen: IntArray,
    curve: int,
    tau_s: float,
    cut_powers: FloatArray,
    step_s: float,
    tail_s: float,
    cusp: float,
    buf: float,
    tip: float,
    chip: float,
    chost: float,
    depth: float,
    above: float,
    gwei: float,
) -> int:
    """The first step of the path at which some sale would be redone or taken, or cannot be
    told (a curve factor past ``cut_powers``); ``len(ts)`` when none.

    Per step ``j``: time ``ts``, block, the OSM's published price ``feeds``, the market price,
    the chain's gas price and native price; the keepers' capital is ``capitals[s]`` from step
    ``starts[s]`` on (settled proceeds). ``curve``: 0 linear, 1 stairstep, 2 exponential;
    ``above`` is ``Clipper``'s no-taker factor, ``gwei`` the chain's 1e-9 (§D1).
    """
    n: int = ts.shape[0]
    m = tops.shape[0]
    keepers = order.shape[0]
    size = cut_powers.shape[0]
    gas = np.empty(keepers)
    seg = 0
    for j in range(n):
        while seg + 1 < starts.shape[0] and starts[seg + 1] <= j:
            seg += 1
        capital = capitals[seg]
        t = ts[j]
        block = blocks[j]
        feed = feeds[j]
        market = markets[j]
        per_unit = gas_price_gwei[j] * gwei * natives[j]  # gas_cost_quote's order
        for k in range(keepers):
            gas[k] = gas_units[k] * per_unit
        for i in range(m):
            dur = (t - tics[i]) / NS_PER_S
            top = tops[i]
            late = dur > tail_s
            if curve == 0:
                price = 0.0 if dur >= tau_s else top * ((tau_s - dur) / tau_s)
            else:
                e = np.floor(dur / step_s) if curve == 1 else np.floor(dur)
                if 0.0 <= e < size:
                    price = top * cut_powers[int(e)]
                elif late:
                    price = 0.0  # not read: a late sale needs a redo whatever its price
                else:
                    return j
            tab = tabs[i]
            lot = lots[i]
            if late or price / top < cusp:
                # Clipper._redo: mk.redo_incentive, the buying gain, Keepers.act (one row).
                _, incentive = redo_incentive_nb(tab, lot, feed, market, buf, tip, chip, chost)
                waited = block - (seen[i] if seen[i] < block else block)
                if redo_keeper_nb(order, latency, waited, capital, gas, min_profit, incentive) >= 0:
                    return j
                continue
            if price > market * above or price <= 0.0:
                continue  # Clipper._no_taker, or _takes' zero price
            for r in range(keepers):  # Clipper._takes, up to the first take
                k = order[r]
                if block - seen[i] < latency[k]:
                    continue
                if take_nb(
                    capital[k], gas[k], price, tab, lot, chost, market, depth, min_profit[k]
                )[0]:
                    return j
    return n
