"""The Dog's barks of one step, planned in one compiled pass (§M10).

:meth:`deleverage.protocols.maker.venue.MakerVenue._liquidate` walks the vaults unsafe at the
OSM price, most distressed first, and plans ``Dog.bark`` on each within the room ``Hole`` and
``hole`` leave (dss ``dog.sol``): :func:`deleverage.protocols.maker.math.bark_amounts` per vault,
the keeper incentive ``tip + chip x tab``, a stop at the first vault the limit refuses, a skip
of the vaults refused otherwise or whose incentive cannot beat the cheapest keeper's gas, and
the room falling by each planned ``tab``. After a crash the same unsafe vaults are planned again
every step until a keeper barks them (latency, capital), thousands of Python calls a step.
:func:`plan_barks_nb` does that walk in one pass with the same float operations in the same
order (``bark_amounts``'s steps; ``min`` as Python's, which keeps the first of equal values), so
the plans are the same bits (tests/unit/protocols/maker/test_maker_bark_kernel.py compares
them with the scalar loop); the per-vault Python then runs only for the barks that happen.
:func:`bark_prefix_nb` also reads the unsafe vaults from the open-vault index and stamps the
block each was first seen unsafe (keepers' latency counts from it), so the step touches the
thousands of unsafe vaults a crash leaves (most too small to pay a keeper's gas) only here.
"""

from __future__ import annotations

from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["bark_prefix_nb", "plan_barks_nb"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_F = TypeVar("_F")


def _njit(function: _F) -> _F:
    return cast(_F, njit(cache=True)(function))


_SKIP, _STOP, _PLAN = 0, 1, 2


@_njit
def _bark_one(
    ink_i: float, art_i: float, rate: float, spot: float, dust: float, chop: float, room: float,
    tip: float, chip: float, floor: float,
) -> tuple[int, float, float, float, float, float]:  # fmt: skip
    """One vault of the walk: skip it, stop the walk, or plan ``dart``, ``dink``, ``due``,
    ``tab`` and the incentive (``math.bark_amounts``'s steps, then the keepers' floor)."""
    if not (spot > 0.0 and ink_i * spot < art_i * rate):
        return _SKIP, 0.0, 0.0, 0.0, 0.0, 0.0  # not unsafe
    if tip + chip * (art_i * rate * chop) <= floor:
        # No bark of it can pay a keeper (§M9: the incentive of any ``dart <= art`` is at most
        # this, rounding being monotone); the walk would pass over it, or stop on a room no
        # later vault has either.
        return _SKIP, 0.0, 0.0, 0.0, 0.0, 0.0
    if room <= 0.0:
        return _STOP, 0.0, 0.0, 0.0, 0.0, 0.0  # Hole/hole reached: every later one refused
    cap = room / rate / chop
    dart = cap if cap < art_i else art_i  # Python's min(art, cap)
    if art_i > dart:
        if (art_i - dart) * rate < dust:
            dart = art_i  # a dusty remainder: the whole vault
        elif dart * rate < dust:
            return _SKIP, 0.0, 0.0, 0.0, 0.0, 0.0  # a dusty partial auction: refused
    dink = ink_i * dart / art_i if art_i > 0.0 else 0.0
    if dink <= 0.0 or dart <= 0.0:
        return _SKIP, 0.0, 0.0, 0.0, 0.0, 0.0  # a null auction
    due = dart * rate
    tab = due * chop
    coin = tip + chip * tab
    if coin <= floor:
        return _SKIP, 0.0, 0.0, 0.0, 0.0, 0.0  # no keeper's gas is paid
    return _PLAN, dart, dink, due, tab, coin


@_njit
def plan_barks_nb(
    ink: FloatArray,
    art: FloatArray,
    vaults: IntArray,
    rate: float,
    spot: float,
    dust: float,
    chop: float,
    room: float,
    tip: float,
    chip: float,
    floor: float,
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Planned barks over ``vaults`` (in order): vault, ``dart``, ``dink``, ``due``, ``tab``
    (DAI) and the keeper incentive (DAI) of each plan.

    ``spot = price / mat`` (DAI per unit), ``room = min(Hole - Dirt, hole - dirt)`` (DAI) before
    the first plan, ``floor`` the least gas plus minimum profit of any keeper (DAI): a plan
    needs an incentive above it.
    """
    m = vaults.shape[0]
    return bark_prefix_nb(
        vaults, np.arange(m), art[vaults], m, np.zeros(0, dtype=np.int64), 0, ink, art, rate,
        spot, dust, chop, room, tip, chip, floor,
    )  # fmt: skip


@_njit
def bark_prefix_nb(
    order: IntArray,
    ranks: IntArray,
    open_art: FloatArray,
    first: int,
    unsafe_block: IntArray,
    block: int,
    ink: FloatArray,
    art: FloatArray,
    rate: float,
    spot: float,
    dust: float,
    chop: float,
    room: float,
    tip: float,
    chip: float,
    floor: float,
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """The step's barks over the open vaults of sorted ranks ``ranks`` (vault ``order[r]``,
    most distressed first; ``open_art[j]`` is the ``art`` of ``ranks[j]``'s vault): those from
    position ``first`` on are stamped as first seen at ``block`` where ``unsafe_block`` is
    still -1 (in place), and the walk of :func:`plan_barks_nb` runs over all of them in the
    same pass, reading a vault's row only when its incentive bound (``open_art``) can pay."""
    m = ranks.shape[0]
    for j in range(first, m):
        i = order[ranks[j]]
        if unsafe_block[i] < 0:
            unsafe_block[i] = block
    if room <= 0.0:  # Hole/hole reached: _bark_one skips or stops at every vault, plans none
        return (
            np.empty(0, dtype=np.int64), np.empty(0), np.empty(0), np.empty(0), np.empty(0),
            np.empty(0),
        )  # fmt: skip
    # The vaults whose incentive bound can pay, first (a tight loop): _bark_one skips the rest.
    payable = np.empty(m, dtype=np.int64)
    c = 0
    for j in range(m):
        if not tip + chip * (open_art[j] * rate * chop) <= floor:
            payable[c] = j
            c += 1
    out_vault = np.empty(c, dtype=np.int64)
    out_dart = np.empty(c)
    out_dink = np.empty(c)
    out_due = np.empty(c)
    out_tab = np.empty(c)
    out_coin = np.empty(c)
    n = 0
    for q in range(c):
        i = order[ranks[payable[q]]]
        status, dart, dink, due, tab, coin = _bark_one(
            ink[i], art[i], rate, spot, dust, chop, room, tip, chip, floor
        )
        if status == _STOP:
            break
        if status == _PLAN:
            out_vault[n] = i
            out_dart[n] = dart
            out_dink[n] = dink
            out_due[n] = due
            out_tab[n] = tab
            out_coin[n] = coin
            n += 1
            room -= tab
    return (
        out_vault[:n],
        out_dart[:n],
        out_dink[:n],
        out_due[:n],
        out_tab[:n],
        out_coin[:n],
    )
