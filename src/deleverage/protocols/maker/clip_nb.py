"""The Clipper's step over every running sale in one compiled pass (§M10).

:meth:`deleverage.protocols.maker.clipper.Clipper.run` runs, for each running sale in order, the
per-sale path (``Clipper._run_each``): a sale that needs a reset (older than ``tail``, or
priced under ``cusp x top``) is redone by the first keeper for whom the redo pays
(:meth:`~deleverage.protocols.keepers.Keepers.act` of one opportunity), else passed over; a
sale priced at or below the market is taken by the keepers in priority order, each buying the
slice ``Clipper.take`` sells for its budget when selling it beats its gas and minimum profit;
a sale whose lot or tab is gone ends. After a crash thousands of sales run every step.
:func:`run_sales_nb` does that walk in one pass with the same float operations in the same
order (Python's ``min``/``max`` as written there, IEEE division), so it changes the sales, the
keepers' capital and gas, ``Dirt`` and the collateral returned to the same bits, and hands back
what happened, in order, as events (:data:`REDO`, :data:`TAKE`, :data:`END`) for the Clipper to
book: the Vow, the journal, the sale log and the keepers' proceeds queue keep their one writer
each. The curves' factors ``cut^k`` come from a table of Python's ``**`` (the per-sale path's
``pow``, :func:`~deleverage.protocols.maker.quiet_nb.python_powers`), libm's ``pow`` past it.
tests/unit/protocols/maker/test_maker_clip_kernel.py compares it with the per-sale path.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "CURVE_CODES",
    "END",
    "REDO",
    "TAKE",
    "redo_incentive_nb",
    "redo_keeper_nb",
    "run_sales_nb",
    "take_nb",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
NS_PER_S: Final = 1_000_000_000
#: The Abacus curves by code (``ClipperConfig.curve``).
CURVE_CODES: Final = {"linear": 0, "stairstep": 1, "exponential": 2}
#: Event kinds of :func:`run_sales_nb` (column 0 of its integer events).
REDO: Final = 0
TAKE: Final = 1
END: Final = 2
#: How long before the curve's next step (or the tail) a cached price stops being read (ns):
#: far more than the float rounding of ``(now - tic) / 1e9 / step``.
HOLD_NS: Final = 1_000_000


@njit(cache=True)
def _grown(codes: IntArray, values: FloatArray) -> tuple[IntArray, FloatArray]:
    more_codes = np.empty((2 * codes.shape[0], codes.shape[1]), dtype=np.int64)
    more_values = np.empty((2 * values.shape[0], values.shape[1]))
    more_codes[: codes.shape[0]] = codes
    more_values[: values.shape[0]] = values
    return more_codes, more_values


@njit(cache=True, error_model="numpy")
def take_nb(
    capital: float,
    gas: float,
    price: float,
    tab: float,
    lot: float,
    chost: float,
    market: float,
    depth: float,
    min_profit: float,
) -> tuple[bool, float, float, float]:
    """One keeper's take decision on a sale priced ``price > 0`` (DAI per unit), the rule of
    ``Clipper._takes``: its budget ``capital - gas`` (DAI) buys ``amt = budget / price``, the
    slice ``Clipper.take`` sells for it (dss ``clip.sol`` ``take``,
    :func:`~deleverage.protocols.maker.math.take_amounts` with ``max_price = price``:
    ``slice = min(lot, amt)``, ``owe = slice x price`` capped at ``tab``, a partial purchase
    leaving ``0 < tab - owe < chost`` cut to leave ``chost``, refused when ``tab <= chost``),
    and it takes when selling the slice at the market price less the expected slippage
    (``actions.sale_slippage``, market ``depth`` in units) and the gas beats its
    ``min_profit`` (DAI). Returns whether it takes, the slice (units), ``owe`` (DAI) and the
    sale's proceeds (DAI), with the per-sale path's float operations in its order (Python's
    ``min`` as written there, IEEE division). :func:`run_sales_nb` and
    :func:`.quiet_nb.first_action_nb` both decide with it."""
    budget = capital - gas
    if budget <= 0.0:
        return False, 0.0, 0.0, 0.0
    amt = budget / price  # math.take_amounts (max_price = price)
    piece = amt if amt < lot else lot  # min(lot, amt)
    owe = piece * price
    if owe > tab:
        owe = tab
        piece = owe / price
    elif owe < tab and piece < lot and tab - owe < chost:
        if not tab > chost:
            return False, 0.0, 0.0, 0.0  # refused: only the whole lot may be bought
        owe = tab - chost
        piece = owe / price
    if piece <= 0.0:
        return False, 0.0, 0.0, 0.0
    slip = piece * piece * market / (2.0 * depth)  # actions.sale_slippage
    proceeds = piece * market - slip
    if proceeds - owe - gas <= min_profit:
        return False, 0.0, 0.0, 0.0
    return True, piece, owe, proceeds


@njit(cache=True, error_model="numpy")
def redo_incentive_nb(
    tab: float,
    lot: float,
    feed: float,
    market: float,
    buf: float,
    tip: float,
    chip: float,
    chost: float,
) -> tuple[float, float]:
    """The redo's coin ``tip + chip x tab`` unless the sale is dusty (``tab < chost`` or
    ``lot x feed < chost``: 0; dss ``clip.sol`` ``redo``,
    :func:`~deleverage.protocols.maker.math.redo_incentive`) and what a keeper expects from
    the redo, the coin plus the buying gain ``max(0, lot x (market - feed x buf))`` (DAI), as
    ``Clipper._redo`` computes them."""
    coin = tip + chip * tab if tab >= chost and lot * feed >= chost else 0.0
    gain = lot * (market - feed * buf)
    return coin, coin + (gain if gain > 0.0 else 0.0)  # coin + max(0.0, gain)


@njit(cache=True, error_model="numpy")
def redo_keeper_nb(
    order: IntArray,
    latency: IntArray,
    waited: int,
    capital: FloatArray,
    gas: FloatArray,
    min_profit: FloatArray,
    incentive: float,
) -> int:
    """The keeper that redoes a sale, or -1: ``Keepers.act`` of one opportunity (need and
    slippage 0) seen ``waited`` blocks ago, the first keeper in priority ``order`` whose
    latency has passed, whose capital covers its gas (DAI) and for whom ``incentive - gas``
    beats its minimum profit. Changes nothing (the caller pays the winner's gas)."""
    for r in range(order.shape[0]):
        k = order[r]
        if latency[k] > waited:
            continue
        if capital[k] < 0.0 + gas[k]:
            continue
        if incentive - gas[k] - 0.0 > min_profit[k]:
            return int(k)
    return -1


@njit(cache=True, error_model="numpy")
def run_sales_nb(
    tops: FloatArray,
    tics: IntArray,
    tabs: FloatArray,
    lots: FloatArray,
    raised: FloatArray,
    seen: IntArray,
    prices: FloatArray,
    until: IntArray,
    ts_ns: int,
    block: int,
    feed: float,
    market: float,
    depth: float,
    gas: FloatArray,
    order: IntArray,
    latency: IntArray,
    min_profit: FloatArray,
    capital: FloatArray,
    gas_paid: FloatArray,
    curve: int,
    tau_s: float,
    cut: float,
    cut_powers: FloatArray,
    step_s: float,
    tail_s: float,
    cusp: float,
    buf: float,
    tip: float,
    chip: float,
    chost: float,
    above: float,
    dirt: float,
    returned: float,
) -> tuple[int, IntArray, FloatArray, int, float, float, float]:
    """Run every sale for one step (module docstring), in place.

    Per sale: ``top``, ``tic`` (ns), ``tab`` (DAI), ``lot`` (units), ``raised`` (DAI), the
    block it was first seen, and its price (DAI per unit) as last computed with the time (ns)
    until which that price holds and no reset is due (``until``; 0: compute it). The step's
    time, block, the OSM's published price ``feed``, the market price and depth; per keeper
    the gas of one action now (DAI), the priority ``order``,
    latency, minimum profit, ``capital`` and ``gas_paid`` (DAI). ``curve``: 0 linear, 1
    stairstep, 2 exponential; ``above`` is the Clipper's no-taker factor; ``dirt`` and
    ``returned`` the Clipper's running totals. The sale and keeper arrays are updated in place.

    Returns the position of a sale whose redo incentive is not finite (the walk stops before
    it; ``Keepers.act`` refuses it) or -1, the events ``(kind, position, keeper)`` and their
    values (a redo: coin, 0, 0, new top; a take: slice, owe, proceeds, price; an end: zeros),
    how many there are, the collateral sold (units), and the new ``dirt`` and ``returned``.
    """
    m = tops.shape[0]
    keepers = order.shape[0]
    size = cut_powers.shape[0]
    limit = market * above
    codes = np.empty((16, 3), dtype=np.int64)
    values = np.zeros((16, 4))
    n = 0
    sold = 0.0
    ended = 0
    bad = -1
    todo = np.empty(m, dtype=np.int64)
    t = 0
    for i in range(m):  # its price holds, no reset is due, and it is above the market: no taker
        if not (ts_ns < until[i] and prices[i] > limit):
            todo[t] = i
            t += 1
    for j in range(t):
        i = todo[j]
        if n + keepers + 2 > codes.shape[0]:
            codes, values = _grown(codes, values)
        top = tops[i]
        dur = (ts_ns - tics[i]) / NS_PER_S
        e = 0.0
        if curve == 0:  # math.linear_decrease
            price = 0.0 if dur >= tau_s else top * ((tau_s - dur) / tau_s)
        else:  # math.stairstep_exponential_decrease, math.exponential_decrease
            e = np.floor(dur / step_s) if curve == 1 else np.floor(dur)
            price = top * (cut_powers[int(e)] if 0.0 <= e < size else cut**e)
        tab = tabs[i]
        lot = lots[i]
        until[i] = 0
        if dur > tail_s or price / top < cusp:  # math.needs_redo: Clipper._redo
            coin, incentive = redo_incentive_nb(tab, lot, feed, market, buf, tip, chip, chost)
            if not np.isfinite(incentive):
                bad = i
                break
            waited = block - (block if block < seen[i] else seen[i])
            winner = redo_keeper_nb(order, latency, waited, capital, gas, min_profit, incentive)
            if winner < 0:
                continue
            capital[winner] -= 0.0 + gas[winner]  # Keepers.act's cost (need 0)
            gas_paid[winner] += gas[winner]
            capital[winner] += coin
            top = feed * buf
            tops[i] = top
            tics[i] = ts_ns
            codes[n, 0], codes[n, 1], codes[n, 2] = REDO, i, winner
            values[n, 0], values[n, 1], values[n, 2], values[n, 3] = coin, 0.0, 0.0, top
            n += 1
            price = top
        elif curve != 0:  # the factor holds until the next step of the curve (or the tail)
            span = (e + 1.0) * step_s if curve == 1 else e + 1.0
            until[i] = tics[i] + np.int64((span if span < tail_s else tail_s) * 1e9) - HOLD_NS
            prices[i] = price
        if price > limit or price <= 0.0:
            continue  # Clipper._no_taker, or _takes' zero price
        taken = 0.0
        for r in range(keepers):  # Clipper._takes
            k = order[r]
            if block - seen[i] < latency[k]:
                continue
            g = gas[k]
            takes, piece, owe, proceeds = take_nb(
                capital[k], g, price, tab, lot, chost, market, depth, min_profit[k]
            )
            if not takes:
                continue
            left = capital[k] - owe - g
            capital[k] = left if left > 0.0 else 0.0  # max(0.0, ...)
            gas_paid[k] += g
            taken += piece
            raised[i] += owe
            dirt -= owe
            tab, lot = tab - owe, lot - piece
            tabs[i], lots[i] = tab, lot
            codes[n, 0], codes[n, 1], codes[n, 2] = TAKE, i, k
            values[n, 0], values[n, 1], values[n, 2], values[n, 3] = piece, owe, proceeds, price
            n += 1
            if lot <= 0.0 or tab <= 0.0:  # Clipper._end
                if tab > 0.0:
                    dirt -= tab
                else:
                    returned += lot
                ended += 1
                if ended == m:
                    dirt = 0.0
                codes[n, 0], codes[n, 1], codes[n, 2] = END, i, -1
                values[n, 0], values[n, 1], values[n, 2], values[n, 3] = 0.0, 0.0, 0.0, 0.0
                n += 1
                break
        sold += taken
    return bad, codes, values, n, sold, dirt, returned
