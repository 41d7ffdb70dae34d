"""MakerDAO dss test vectors against :mod:`deleverage.protocols.maker.math`.

Every number below comes from makerdao/dss @ fa4f6630afb0624d04a003e920b0d71a00331d98
(``src/test/abaci.t.sol``, ``clip.t.sol``, ``flip.t.sol``, ``flop.t.sol``), converted from
wad/ray/rad fixed point to floats; README.md names the test of each vector. The Clipper
tests' set-up: a vault of 40 gold and 100 DAI of debt, the oracle at 4 DAI (spot 2 with
``mat`` 2), ``dust`` 20, ``chop`` 1.1, ``buf`` 1.25 (top 5), a stairstep curve cutting 1% a
second, ``tab`` 110, ``chost`` 22.
"""

from __future__ import annotations

import math

import pytest

from deleverage.protocols.maker import math as mk

REL = 1e-12


def _close(a: float, b: float, rel: float = REL) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# ---- abaci.t.sol -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(11))
def test_linear_decrease_loses_a_tenth_every_360_seconds(k: int) -> None:
    # abaci.t.sol::test_linear_decrease: tau 3600, top 1000; 0 at 3600.
    assert _close(mk.linear_decrease(1000.0, 360.0 * k, 3600.0), 1000.0 - 100.0 * k)


def test_linear_decrease_is_zero_at_and_after_tau() -> None:
    assert mk.linear_decrease(1000.0, 3600.0, 3600.0) == 0.0
    assert mk.linear_decrease(1000.0, 7200.0, 3600.0) == 0.0


@pytest.mark.parametrize("half_lives", range(5))
def test_exponential_decrease_halves_every_900_seconds(half_lives: int) -> None:
    # abaci.t.sol::test_continuous_exp_decrease: cut 0.999230132966 per second, top 4000,
    # tolerance RAY / 1000 (0.001).
    price = mk.exponential_decrease(4000.0, 900.0 * half_lives, 0.999230132966)
    assert abs(price - 4000.0 / 2**half_lives) <= 1e-3


@pytest.mark.parametrize(
    ("top", "drop", "step"),
    [
        (50_000_000.0, 0.011234567890, 1.0),
        (50_000_000.0, 0.021234567890, 5.0),
        (50_000_000.0, 0.011234567890, 300.0),
        (1e-7, 0.021234567890, 5.0),
    ],
)
def test_stairstep_drops_by_cut_only_on_step_boundaries(
    top: float, drop: float, step: float
) -> None:
    # abaci.t.sol::test_stairstep_exp_decrease: price(t) == price(t-1) x cut when t % step == 0,
    # else unchanged, for t in 1..600 s.
    cut = 1.0 - drop
    last = mk.stairstep_exponential_decrease(top, 0.0, cut, step)
    assert last == top
    for t in range(1, 600):
        price = mk.stairstep_exponential_decrease(top, float(t), cut, step)
        expected = last * cut if t % step == 0 else last
        assert _close(price, expected, 1e-9)
        last = price


@pytest.mark.parametrize(
    ("dur", "expected"),
    [
        (60.0, 2.735783211953807380973706855),  # clip.t.sol::test_take_bid_avoids_recalculate...
        (100.0, 1.830161706366147524653080130),  # clip.t.sol::test_redo_incentive
        (30.0, 3.698501866941401),  # clip.t.sol::test_take_multiple_bids_different_prices
    ],
)
def test_clipper_stairstep_prices_of_the_take_tests(dur: float, expected: float) -> None:
    assert _close(mk.stairstep_exponential_decrease(5.0, dur, 0.99, 1.0), expected, 1e-13)


# ---- clip.t.sol: kick, incentives, redo ------------------------------------------------------


def test_kick_incentive_is_tip_plus_chip_of_tab() -> None:
    # clip.t.sol::test_kick: tip 100, chip 0 -> 100; tip 100, chip 2% of tab 110 -> 102.2.
    assert mk.keeper_incentive(110.0, 100.0, 0.0) == 100.0
    assert _close(mk.keeper_incentive(110.0, 100.0, 0.02), 102.2)


def test_issue_example_tab_and_incentive() -> None:
    # Issue #17: 10,000 of debt at chop 13% -> tab 11,300; 300 + 0.1% of tab = 311.3.
    bark = mk.bark_amounts(
        ink=10.0, art=10_000.0, rate=1.0, spot=900.0, dust=0.0, chop=1.13,
        global_room=1e12, ilk_room=1e12,
    )  # fmt: skip
    assert _close(bark.tab, 11_300.0)
    assert _close(mk.keeper_incentive(bark.tab, 300.0, 0.001), 311.3)


def test_redo_incentive_is_withheld_from_dusty_auctions() -> None:
    # clip.t.sol::test_redo_incentive: tab 110, lot 40, feed 4.
    assert mk.redo_incentive(110.0, 40.0, 4.0, tip=100.0, chip=0.0, chost_dai=22.0) == 100.0
    assert _close(mk.redo_incentive(110.0, 40.0, 4.0, tip=100.0, chip=0.02, chost_dai=22.0), 102.2)
    assert _close(mk.redo_incentive(110.0, 40.0, 4.0, tip=0.0, chip=0.02, chost_dai=22.0), 2.2)
    # dust 100 + 1 wei: chost 110 + 1 wei > tab -> nothing
    assert mk.redo_incentive(110.0, 40.0, 4.0, tip=0.0, chip=0.02, chost_dai=110.0 + 1e-9) == 0.0
    # lot 2 at feed 4 = 8 < chost 22 -> nothing, although tab > chost
    tab_left = 110.0 - 38.0 * 1.830161706366147524653080130
    assert mk.redo_incentive(tab_left, 2.0, 4.0, tip=0.0, chip=0.02, chost_dai=22.0) == 0.0


@pytest.mark.parametrize(
    ("tau", "at", "redo"),
    [
        (36_000.0, 3600.0, False),  # test_auction_reset_tail: not yet at tail
        (36_000.0, 3601.0, True),  # past tail (3600 s)
        (3600.0, 1800.0, False),  # test_auction_reset_cusp: price/top = 0.5, not below cusp
        (3600.0, 1801.0, True),  # below cusp 0.5
    ],
)
def test_auction_reset_by_tail_and_cusp(tau: float, at: float, redo: bool) -> None:
    # clip.t.sol::auctionResetSetup: linear curve, buf 1.25 (top 5), cusp 0.5, tail 3600.
    price = mk.linear_decrease(5.0, at, tau)
    assert mk.needs_redo(price, 5.0, at, tail_s=3600.0, cusp=0.5) is redo


def test_chost_is_dust_times_chop() -> None:
    # clip.t.sol::test_redo_incentive: dust 20, chop 1.1 -> chost 22; dust 100 + 1 -> 110 + 1.
    assert _close(mk.chost(20.0, 1.1), 22.0)


# ---- clip.t.sol: take --------------------------------------------------------------------------


def _take(amt: float, *, tab: float = 110.0, lot: float = 40.0, price: float = 5.0,
          max_price: float = 5.0) -> mk.TakeResult:  # fmt: skip
    return mk.take_amounts(tab=tab, lot=lot, price=price, amt=amt, max_price=max_price,
                           chost_dai=22.0)  # fmt: skip


def test_take_over_tab_pays_tab_and_returns_the_rest() -> None:
    # test_take_over_tab: amt 25 at 5 -> 22 gold for 110, 18 back to the vault.
    r = _take(25.0)
    assert (r.slice, r.owe, r.tab_left, r.lot_left) == (22.0, 110.0, 0.0, 18.0)


def test_take_at_tab() -> None:
    r = _take(22.0)  # test_take_at_tab
    assert (r.slice, r.owe, r.tab_left, r.lot_left) == (22.0, 110.0, 0.0, 18.0)


def test_take_under_tab_leaves_the_auction_running() -> None:
    r = _take(11.0)  # test_take_under_tab: tab 55 and lot 29 left
    assert (r.slice, r.owe, r.tab_left, r.lot_left) == (11.0, 55.0, 55.0, 29.0)


def test_take_full_lot_for_less_than_tab() -> None:
    # test_take_full_lot_partial_tab: 69 s later (about half price), all 40 for about 100.
    price = mk.stairstep_exponential_decrease(5.0, 69.0, 0.99, 1.0)
    r = _take(40.0, price=price, max_price=2.5)
    assert r.slice == 40.0
    assert r.lot_left == 0.0
    assert abs(r.owe - 100.0) < 0.1
    assert r.tab_left > 0.0


def test_take_too_expensive_is_refused() -> None:
    r = _take(22.0, max_price=4.0)  # testFail_take_bid_too_low
    assert r.refusal is mk.TakeRefusal.TOO_EXPENSIVE
    assert r.slice == 0.0


def test_take_is_cut_to_leave_chost() -> None:
    # test_take_bid_recalculates_due_to_chost_check: 18 would leave 20 < 22 -> leave 22.
    r = _take(18.0)
    assert _close(r.tab_left, 22.0)
    assert _close(r.lot_left, 40.0 - (110.0 - 22.0) / 5.0)


def test_take_of_the_whole_lot_ignores_chost() -> None:
    # test_take_bid_avoids_recalculate_due_no_more_lot: 60 s in, 40 at 2.7357... -> 109.43.
    price = 2.735783211953807380973706855
    r = _take(40.0, price=price, max_price=2.8)
    assert r.lot_left == 0.0
    assert _close(r.owe, 40.0 * price)


def test_no_partial_take_once_tab_is_at_chost() -> None:
    # test_take_bid_fails_no_partial_allowed: 17.6 -> tab 22, lot 22.4; then a partial
    # purchase is refused and tab / price (4.4) buys the rest of the tab.
    first = _take(17.6)
    assert _close(first.tab_left, 22.0)
    assert _close(first.lot_left, 22.4)
    refused = _take(1.0, tab=first.tab_left, lot=first.lot_left)
    assert refused.refusal is mk.TakeRefusal.NO_PARTIAL
    last = _take(first.tab_left / 5.0, tab=first.tab_left, lot=first.lot_left)
    assert _close(last.tab_left, 0.0, 1e-9)
    assert last.refusal is mk.TakeRefusal.NONE


def test_two_takes_at_different_prices() -> None:
    # test_take_multiple_bids_different_prices: 10 at 5 (tab 60, lot 30 left); 30 s later the
    # rest at 3.6985...: pays 60 for 60 / price, the remainder goes back to the vault.
    first = _take(10.0)
    assert (first.owe, first.tab_left, first.lot_left) == (50.0, 60.0, 30.0)
    price = mk.stairstep_exponential_decrease(5.0, 30.0, 0.99, 1.0)
    second = _take(30.0, tab=60.0, lot=30.0, price=price, max_price=price)
    assert _close(second.owe, 60.0)
    assert _close(second.slice, 60.0 / price)
    assert _close(second.lot_left, 30.0 - 60.0 / price)


# ---- clip.t.sol: Dog.bark ------------------------------------------------------------------------


def _bark(*, room: float, chop: float, rate: float = 1.0, dust: float = 20.0,
          ilk_room: float | None = None) -> mk.BarkResult:  # fmt: skip
    return mk.bark_amounts(
        ink=40.0, art=100.0, rate=rate, spot=2.0, dust=dust, chop=chop,
        global_room=room, ilk_room=room if ilk_room is None else ilk_room,
    )  # fmt: skip


def test_bark_full_vault_tab_includes_chop() -> None:
    r = _bark(room=1000.0, chop=1.1)  # takeSetup: tab 110, lot 40
    assert _close(r.tab, 110.0)
    assert r.dink == 40.0
    assert r.dart == 100.0


def test_bark_not_leaving_dust() -> None:
    r = _bark(room=80.0, chop=1.0)  # test_bark_not_leaving_dust: 80 of 100, 32 of 40
    assert (r.tab, r.dink, r.dart) == (80.0, 32.0, 80.0)


def test_bark_not_leaving_dust_over_hole() -> None:
    # test_bark_not_leaving_dust_over_hole: room 80 + 1 wei -> the remainder would be dusty,
    # so the whole vault. float64 cannot hold 80 + 1e-18: the next float above 80 stands in.
    r = _bark(room=math.nextafter(80.0, math.inf), chop=1.0)
    assert (r.tab, r.dink, r.dart) == (100.0, 40.0, 100.0)


def test_bark_not_leaving_dust_rate() -> None:
    # test_bark_not_leaving_dust_rate: rate 1.02, room 100 -> remainder 2 < dust: whole vault.
    r = _bark(room=100.0, chop=1.0, rate=1.02)
    assert _close(r.tab, 102.0)
    assert r.dink == 40.0


def test_bark_only_leaving_dust_over_hole_rate() -> None:
    # test_bark_only_leaving_dust_over_hole_rate: room 81.6, rate 1.02, dust 20.4 -> dart 80,
    # tab 81.6, lot 32; the vault keeps 8 and 20 (exactly dust).
    r = _bark(room=81.6, chop=1.0, rate=1.02, dust=20.4)
    assert _close(r.tab, 81.6)
    assert _close(r.dink, 32.0)
    assert _close(r.dart, 80.0)


@pytest.mark.parametrize("which", ["Hole", "hole"])
def test_partial_liquidation_at_the_hole_limit(which: str) -> None:
    # test_partial_liquidation_{Hole,hole}_limit: room 75, chop 1.1 -> tab 75 (the test's 0.2 ray
    # is fixed-point rounding), lot = 40 x (75 / 1.1) / 100.
    r = (
        _bark(room=75.0, chop=1.1)
        if which == "Hole"
        else _bark(room=1000.0, chop=1.1, ilk_room=75.0)
    )
    assert _close(r.tab, 75.0)
    assert _close(r.dink, 40.0 * (75.0 / 1.1) / 100.0)


def test_bark_refusals() -> None:
    assert _bark(room=0.0, chop=1.1).refusal is mk.BarkRefusal.LIMIT_HIT
    safe = mk.bark_amounts(ink=40.0, art=100.0, rate=1.0, spot=2.5, dust=20.0, chop=1.1,
                           global_room=1e3, ilk_room=1e3)  # fmt: skip
    assert safe.refusal is mk.BarkRefusal.NOT_UNSAFE  # 40 x 2.5 == 100: not below
    # a partial auction of 10 DAI under dust 20 with 70 left: refused (Dog/dusty-auction...)
    assert _bark(room=10.0, chop=1.0).refusal is mk.BarkRefusal.DUSTY_PARTIAL


# ---- flip.t.sol / flop.t.sol -------------------------------------------------------------------


def test_flip_beg_rules_of_test_beg() -> None:
    # flip.t.sol::test_beg: beg 1.05, tab 50, lot 100.
    beg, tab = 1.05, 50.0
    assert mk.tend_allowed(1.00, 0.0, tab, beg)
    assert not mk.tend_allowed(1.01, 1.00, tab, beg)
    assert mk.tend_allowed(1.07, 1.00, tab, beg)
    assert mk.tend_allowed(49.0, 1.07, tab, beg)
    assert mk.tend_allowed(50.0, 49.0, tab, beg)  # less than beg, but reaches tab
    assert not mk.dent_allowed(100.0, 100.0, 50.0, tab, beg)
    assert not mk.dent_allowed(99.0, 100.0, 50.0, tab, beg)
    assert mk.dent_allowed(95.0, 100.0, 50.0, tab, beg)


def test_flip_tend_never_above_tab_and_dent_only_at_tab() -> None:
    # flip.sol: Flipper/higher-than-tab; test_dent: tend 1, tend 50 (= tab), dent to 95.
    assert not mk.tend_allowed(51.0, 1.0, 50.0, 1.05)
    assert not mk.dent_allowed(95.0, 100.0, 49.0, 50.0, 1.05)
    assert mk.dent_allowed(95.0, 100.0, 50.0, 50.0, 1.05)
    assert _close(mk.min_dent_lot(100.0, 1.05), 100.0 / 1.05)
    assert mk.min_tend_bid(49.0, 50.0, 1.05) == 50.0


def test_flop_dent_and_tick() -> None:
    # flop.t.sol::test_dent: 200 -> 100 -> 80 MKR for 10 DAI; test_tick: pad 1.5, 200 -> 300.
    assert mk.flop_dent_allowed(100.0, 200.0, 1.05)
    assert mk.flop_dent_allowed(80.0, 100.0, 1.05)
    assert not mk.flop_dent_allowed(99.0, 100.0, 1.05)
    assert mk.flop_tick_lot(200.0, 1.5) == 300.0


# ---- the launch Cat (dss @ 44330065999621834b08de1edf3b962f6bbd74c6, src/test/vat.t.sol) --------


def test_launch_cat_bites_everything_under_lump() -> None:
    # vat.t.sol::test_bite_under_lump: 40 gold, 100 DAI, spot 2, lump 50, chop 1.1.
    r = mk.bite_amounts_lump(ink=40.0, art=100.0, rate=1.0, spot=2.0, chop=1.1, lump=50.0)
    assert (r.dink, r.dart, r.due) == (40.0, 100.0, 100.0)
    assert _close(r.tab, 110.0)


def test_launch_cat_bites_lump_over_lump() -> None:
    # vat.t.sol::test_bite_over_lump: lump 30 -> lot 30, 75 DAI to the Vow, tab 82.5; the vault
    # keeps 10 gold and 25 DAI.
    r = mk.bite_amounts_lump(ink=40.0, art=100.0, rate=1.0, spot=2.0, chop=1.1, lump=30.0)
    assert (r.dink, r.dart, r.due) == (30.0, 75.0, 75.0)
    assert _close(r.tab, 82.5)
    assert (40.0 - r.dink, 100.0 - r.dart) == (10.0, 25.0)
