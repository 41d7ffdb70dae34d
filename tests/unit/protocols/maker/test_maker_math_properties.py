"""Invariants of the pure Maker math (Hypothesis): what dss's requires guarantee for any input."""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from deleverage.protocols.maker import math as mk

amounts = st.floats(min_value=1e-3, max_value=1e9)
ratios = st.floats(min_value=1.0, max_value=1.5)


@given(ink=amounts, art=amounts, rate=ratios, spot=amounts, dust=st.floats(0.0, 1e5),
       chop=ratios, room=amounts)  # fmt: skip
def test_bark_never_takes_more_than_the_vault_nor_leaves_dust(
    ink: float, art: float, rate: float, spot: float, dust: float, chop: float, room: float
) -> None:
    r = mk.bark_amounts(ink=ink, art=art, rate=rate, spot=spot, dust=dust, chop=chop,
                        global_room=room, ilk_room=room)  # fmt: skip
    if ink * spot >= art * rate:
        assert r.refusal is mk.BarkRefusal.NOT_UNSAFE
        return
    if r.refusal:
        assert (r.dart, r.dink, r.tab) == (0.0, 0.0, 0.0)
        return
    assert 0.0 < r.dart <= art
    assert 0.0 < r.dink <= ink * (1 + 1e-12)
    assert math.isclose(r.dink / ink, r.dart / art, rel_tol=1e-9)  # p_liq unchanged
    assert math.isclose(r.tab, r.dart * rate * chop, rel_tol=1e-12)
    left = (art - r.dart) * rate
    assert left == 0.0 or left >= dust * (1 - 1e-9)  # never a dusty remainder
    if r.dart < art:
        assert r.tab <= room * (1 + 1e-9)  # a partial bark stays within the room


@given(tab=amounts, lot=amounts, price=amounts, amt=amounts, chost=st.floats(0.0, 1e6))
def test_take_never_collects_more_than_tab_nor_leaves_a_dusty_tab(
    tab: float, lot: float, price: float, amt: float, chost: float
) -> None:
    r = mk.take_amounts(tab=tab, lot=lot, price=price, amt=amt, max_price=price, chost_dai=chost)
    if r.refusal:
        assert r.refusal is mk.TakeRefusal.NO_PARTIAL
        assert tab <= chost
        return
    assert 0.0 <= r.owe <= tab * (1 + 1e-12)
    assert 0.0 <= r.slice <= lot * (1 + 1e-12)
    assert math.isclose(r.owe, r.slice * price, rel_tol=1e-9)
    if r.lot_left > 0.0 and r.tab_left > 0.0:
        assert r.tab_left >= chost * (1 - 1e-9)


@given(top=amounts, dur=st.floats(0.0, 1e6), cut=st.floats(0.5, 1.0), step=st.floats(1.0, 1e4),
       tau=st.floats(1.0, 1e6))  # fmt: skip
def test_curves_start_at_top_and_never_rise(
    top: float, dur: float, cut: float, step: float, tau: float
) -> None:
    def prices(d: float) -> tuple[float, float, float]:
        return (
            mk.linear_decrease(top, d, tau),
            mk.stairstep_exponential_decrease(top, d, cut, step),
            mk.exponential_decrease(top, d, cut),
        )

    assert prices(0.0) == (top, top, top)
    for now, later in zip(prices(dur), prices(dur + step), strict=True):
        assert 0.0 <= later <= now <= top


@given(current=st.floats(0.0, 1e6), tab=amounts, beg=st.floats(1.001, 1.5))
def test_the_minimum_tend_is_a_valid_tend(current: float, tab: float, beg: float) -> None:
    assume(current < tab)
    bid = mk.min_tend_bid(current, tab, beg) if current > 0.0 else min(tab, 1e-6)
    assume(bid > current)
    assert mk.tend_allowed(bid, current, tab, beg)
    assert not mk.tend_allowed(tab * 1.01, current, tab, beg)
