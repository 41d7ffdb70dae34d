"""Pure MakerDAO liquidation math: Dog and Cat barks, Clipper takes, Abacus curves, Flipper bids.

Maker's contracts (github.com/makerdao/dss: ``dog.sol``, ``clip.sol``, ``abaci.sol``, ``cat.sol``,
``flip.sol``, ``flop.sol``) work in fixed point (wad 1e18, ray 1e27, rad 1e45); these functions
use float64 in the same units the contracts' numbers mean: collateral in units of the asset
(``ink``, ``lot``), normalized debt ``art`` (DAI at ``rate`` 1), DAI amounts (``tab``, ``owe``,
``dust``) and prices in DAI per unit of collateral. Every function is pure; the stateful shells
(:mod:`deleverage.protocols.maker.clipper`, ``flipper``, ``vow``, ``venue``) call them.

Formulas (docs/formulas.md, section "MakerDAO"):

- a vault is unsafe when ``ink x spot < art x rate`` with ``spot = price / mat``;
- ``Dog.bark``: ``room = min(Hole - Dirt, hole - dirt)``, ``dart = min(art, room / rate / chop)``,
  the whole vault when the remainder would be dusty (``(art - dart) x rate < dust``), refused when
  a partial auction would itself be dusty; ``dink = ink x dart / art``, ``due = dart x rate``,
  ``tab = due x chop``;
- keeper incentive ``coin = tip + chip x tab`` (paid by the Vow on kick and on redo);
- Clipper: ``top = feed price x buf``; ``price = calc(top, now - tic)``; the auction needs a
  reset when ``now - tic > tail`` or ``price / top < cusp``; ``take`` buys
  ``slice = min(lot, amt)`` for ``owe = slice x price``, capped at ``tab`` and leaving at least
  ``chost = dust x chop`` of tab unless it takes the whole lot;
- Abacus: linear ``top x (tau - dur) / tau`` (0 from ``tau``), stairstep exponential
  ``top x cut^floor(dur / step)``, exponential ``top x cut^dur``;
- Cat (Liquidations 1.2): ``dart = min(art, min(dunk, box - litter) / rate / chop)``; the launch
  Cat (live on Black Thursday): ``lot = min(ink, lump)``, ``dart = art x lot / ink``;
- Flipper: a ``tend`` must raise the bid by ``beg`` (or reach ``tab``) and never exceed
  ``tab``; a ``dent`` (at ``bid == tab``) must lower the lot by the factor ``beg``.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "BarkRefusal",
    "BarkResult",
    "TakeRefusal",
    "TakeResult",
    "bark_amounts",
    "bite_amounts",
    "bite_amounts_lump",
    "chost",
    "dent_allowed",
    "exponential_decrease",
    "flop_dent_allowed",
    "flop_tick_lot",
    "is_unsafe",
    "keeper_incentive",
    "linear_decrease",
    "liquidation_price",
    "min_dent_lot",
    "min_tend_bid",
    "needs_redo",
    "redo_incentive",
    "stairstep_exponential_decrease",
    "take_amounts",
    "tend_allowed",
]

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Vaults and the spotter
# --------------------------------------------------------------------------------------------


def is_unsafe(ink: float, art: float, rate: float, price: float, mat: float) -> bool:
    """Return whether a vault is unsafe: ``ink x price / mat < art x rate`` (Vat/Dog rule)."""
    spot = price / mat
    return spot > 0.0 and ink * spot < art * rate


def liquidation_price(ink: FloatArray, art: FloatArray, rate: float, mat: float) -> FloatArray:
    """Return the oracle price (DAI per unit) below which each vault is unsafe.

    ``p_liq = art x rate x mat / ink``; NaN where the vault holds no collateral, 0 where it has
    no debt (never liquidatable by price).
    """
    ink_a = np.asarray(ink, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(art, dtype=np.float64) * rate * mat / ink_a
    out[ink_a <= 0.0] = np.nan
    return out


# --------------------------------------------------------------------------------------------
# Dog.bark (Liquidations 2.0) and Cat.bite (Liquidations 1.2)
# --------------------------------------------------------------------------------------------


class BarkRefusal(IntEnum):
    """Why a bark or bite did not start an auction (0: it did)."""

    NONE = 0
    NOT_UNSAFE = 1
    LIMIT_HIT = 2  # Hole/hole (Dog) or box (Cat) reached
    DUSTY_PARTIAL = 3  # a partial auction would itself be below dust
    NULL_AUCTION = 4  # no collateral or no debt would move


class BarkResult(NamedTuple):
    """What a bark (or bite) takes from a vault and auctions.

    ``dart`` normalized debt and ``dink`` collateral taken from the vault, ``due`` the debt
    written to the Vow (``dart x rate``, DAI), ``tab`` the DAI the auction must raise
    (``due x chop``); ``refusal`` is not ``NONE`` when nothing happens (all amounts 0).
    """

    dart: float
    dink: float
    due: float
    tab: float
    refusal: BarkRefusal = BarkRefusal.NONE


_REFUSED = {r: BarkResult(0.0, 0.0, 0.0, 0.0, r) for r in BarkRefusal}


def bark_amounts(
    *,
    ink: float,
    art: float,
    rate: float,
    spot: float,
    dust: float,
    chop: float,
    global_room: float,
    ilk_room: float,
) -> BarkResult:
    """Return the amounts of ``Dog.bark`` on one vault (dss ``dog.sol``).

    ``spot`` is the price with the liquidation ratio applied (``price / mat``); ``global_room``
    is ``Hole - Dirt`` and ``ilk_room`` ``hole - dirt`` (DAI); ``chop`` the penalty factor
    (1.13 for 13%).
    """
    if not (spot > 0.0 and ink * spot < art * rate):
        return _REFUSED[BarkRefusal.NOT_UNSAFE]
    if global_room <= 0.0 or ilk_room <= 0.0:
        return _REFUSED[BarkRefusal.LIMIT_HIT]
    room = min(global_room, ilk_room)
    dart = min(art, room / rate / chop)
    if art > dart:
        if (art - dart) * rate < dust:
            dart = art  # a dusty remainder: liquidate the whole vault
        elif dart * rate < dust:
            return _REFUSED[BarkRefusal.DUSTY_PARTIAL]
    dink = ink * dart / art if art > 0.0 else 0.0
    if dink <= 0.0 or dart <= 0.0:
        return _REFUSED[BarkRefusal.NULL_AUCTION]
    due = dart * rate
    return BarkResult(dart, dink, due, due * chop)


def bite_amounts(
    *,
    ink: float,
    art: float,
    rate: float,
    spot: float,
    dust: float,
    chop: float,
    dunk: float,
    room: float,
) -> BarkResult:
    """Return the amounts of ``Cat.bite`` on one vault (dss ``cat.sol``, Liquidations 1.2).

    ``room`` is ``box - litter`` (DAI), ``dunk`` the per-ilk maximum tab of one auction (the
    1.2 successor of ``lump``, in DAI); the remainder may be dusty (1.2 allows it).
    """
    if not (spot > 0.0 and ink * spot < art * rate):
        return _REFUSED[BarkRefusal.NOT_UNSAFE]
    if room <= 0.0 or room < dust:
        return _REFUSED[BarkRefusal.LIMIT_HIT]
    dart = min(art, min(dunk, room) / rate / chop)
    dink = min(ink, ink * dart / art) if art > 0.0 else 0.0
    if dart <= 0.0 or dink <= 0.0:
        return _REFUSED[BarkRefusal.NULL_AUCTION]
    due = dart * rate
    return BarkResult(dart, dink, due, due * chop)


def bite_amounts_lump(
    *, ink: float, art: float, rate: float, spot: float, chop: float, lump: float
) -> BarkResult:
    """Return the amounts of the launch ``Cat.bite`` (dss of January 2020, live on 12 March
    2020): ``lot = min(ink, lump)`` collateral, ``dart = min(art, art x lot / ink)``,
    ``tab = dart x rate x chop``; no global limit, no dust rule."""
    if not (spot > 0.0 and ink * spot < art * rate):
        return _REFUSED[BarkRefusal.NOT_UNSAFE]
    dink = min(ink, lump)
    dart = min(art, dink * art / ink) if ink > 0.0 else 0.0
    if dart <= 0.0 or dink <= 0.0:
        return _REFUSED[BarkRefusal.NULL_AUCTION]
    due = dart * rate
    return BarkResult(dart, dink, due, due * chop)


def keeper_incentive(tab: float, tip: float, chip: float) -> float:
    """Return the Clipper's keeper incentive on kick: ``tip + chip x tab`` (DAI).

    The issue's example: tab 11,300 (10,000 at chop 1.13), tip 300, chip 0.001 -> 311.3.
    """
    return tip + chip * tab


def chost(dust: float, chop: float) -> float:
    """Return the Clipper's cached minimum remaining tab: ``dust x chop`` (DAI)."""
    return dust * chop


def redo_incentive(
    tab: float, lot: float, feed_price: float, *, tip: float, chip: float, chost_dai: float
) -> float:
    """Return the incentive of a redo: ``tip + chip x tab`` unless the auction is dusty
    (``tab < chost`` or ``lot x feed price < chost``), then 0 (dss ``clip.sol`` redo)."""
    if tab >= chost_dai and lot * feed_price >= chost_dai:
        return tip + chip * tab
    return 0.0


# --------------------------------------------------------------------------------------------
# Abacus price curves
# --------------------------------------------------------------------------------------------


def linear_decrease(top: float, dur_s: float, tau_s: float) -> float:
    """Return ``top x (tau - dur) / tau`` for ``dur < tau``, else 0 (``LinearDecrease``)."""
    if dur_s >= tau_s:
        return 0.0
    return top * ((tau_s - dur_s) / tau_s)  # the fraction first, as rmul(top, (tau - dur) / tau)


def stairstep_exponential_decrease(top: float, dur_s: float, cut: float, step_s: float) -> float:
    """Return ``top x cut^floor(dur / step)`` (``StairstepExponentialDecrease``)."""
    return top * cut ** math.floor(dur_s / step_s)


def exponential_decrease(top: float, dur_s: float, cut: float) -> float:
    """Return ``top x cut^dur`` with ``dur`` in whole seconds (``ExponentialDecrease``)."""
    return top * cut ** math.floor(dur_s)


def needs_redo(price: float, top: float, elapsed_s: float, *, tail_s: float, cusp: float) -> bool:
    """Return whether a Dutch auction needs a reset: ``elapsed > tail`` or ``price/top < cusp``."""
    return elapsed_s > tail_s or price / top < cusp


# --------------------------------------------------------------------------------------------
# Clipper.take
# --------------------------------------------------------------------------------------------


class TakeRefusal(IntEnum):
    """Why a take bought nothing (0: it bought)."""

    NONE = 0
    TOO_EXPENSIVE = 1  # the auction's price is above the taker's max
    NO_PARTIAL = 2  # tab <= chost: only the whole lot may be bought


class TakeResult(NamedTuple):
    """What one take buys: ``slice`` collateral for ``owe`` DAI; what is left of the sale."""

    slice: float
    owe: float
    tab_left: float
    lot_left: float
    refusal: TakeRefusal = TakeRefusal.NONE


def take_amounts(
    *, tab: float, lot: float, price: float, amt: float, max_price: float, chost_dai: float
) -> TakeResult:
    """Return what ``Clipper.take`` buys (dss ``clip.sol``).

    ``slice = min(lot, amt)`` for ``owe = slice x price``; when ``owe > tab`` the buyer pays
    ``tab`` for ``tab / price``; a partial purchase that would leave ``0 < tab - owe < chost``
    is cut to leave exactly ``chost`` (refused when ``tab <= chost``). When the tab is fully
    paid the rest of the lot goes back to the vault's owner (``lot_left`` is then what returns).
    """
    if max_price < price:
        return TakeResult(0.0, 0.0, tab, lot, TakeRefusal.TOO_EXPENSIVE)
    slice_ = min(lot, amt)
    owe = slice_ * price
    if owe > tab:
        owe = tab
        slice_ = owe / price
    elif owe < tab and slice_ < lot and tab - owe < chost_dai:
        if not tab > chost_dai:
            return TakeResult(0.0, 0.0, tab, lot, TakeRefusal.NO_PARTIAL)
        owe = tab - chost_dai
        slice_ = owe / price
    return TakeResult(slice_, owe, tab - owe, lot - slice_)


# --------------------------------------------------------------------------------------------
# Flipper (English auctions, Liquidations 1.2)
# --------------------------------------------------------------------------------------------


def tend_allowed(bid: float, current_bid: float, tab: float, beg: float) -> bool:
    """Return whether a tend (raise the DAI bid for the whole lot) is valid (dss ``flip.sol``):
    ``bid <= tab``, ``bid > current`` and ``bid >= beg x current`` unless ``bid == tab``."""
    return bid <= tab and bid > current_bid and (bid >= beg * current_bid or bid == tab)


def min_tend_bid(current_bid: float, tab: float, beg: float) -> float:
    """Return the smallest valid next tend bid: ``min(tab, beg x current)``."""
    return min(tab, beg * current_bid)


def dent_allowed(lot: float, current_lot: float, bid: float, tab: float, beg: float) -> bool:
    """Return whether a dent (accept less collateral for the full tab) is valid:
    ``bid == tab``, ``lot < current`` and ``beg x lot <= current``."""
    return bid == tab and lot < current_lot and beg * lot <= current_lot


def min_dent_lot(current_lot: float, beg: float) -> float:
    """Return the largest valid next dent lot: ``current / beg``."""
    return current_lot / beg


# --------------------------------------------------------------------------------------------
# Flopper (debt auctions: MKR minted for a fixed DAI bid)
# --------------------------------------------------------------------------------------------


def flop_dent_allowed(lot: float, current_lot: float, beg: float) -> bool:
    """Return whether a Flopper dent (accept less MKR for the fixed ``sump`` DAI) is valid:
    ``lot < current`` and ``beg x lot <= current`` (dss ``flop.sol``)."""
    return lot < current_lot and beg * lot <= current_lot


def flop_tick_lot(lot: float, pad: float) -> float:
    """Return the MKR lot after a Flopper tick (restart without bids): ``lot x pad``."""
    return lot * pad
