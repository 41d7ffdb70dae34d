"""The compiled bark plan (:func:`deleverage.protocols.maker.bark_nb.plan_barks_nb`, §M10)
against the per-vault walk it replaces: ``math.bark_amounts`` (dss ``dog.sol``, checked against
dss's own tests in tests/conformance/maker) vault by vault, in order, with the venue's rules (a
stop at the first limit refusal, a skip of other refusals and of incentives at or below the
keepers' floor, the room falling by each planned tab). The plans must be the same bits."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deleverage.protocols.maker import math as mk
from deleverage.protocols.maker.bark_nb import bark_prefix_nb, plan_barks_nb

Plan = tuple[list[int], list[float], list[float], list[float], list[float], list[float]]


def _walk(
    ink: np.ndarray, art: np.ndarray, vaults: np.ndarray, rate: float, spot: float,
    dust: float, chop: float, room: float, tip: float, chip: float, floor: float,
) -> Plan:  # fmt: skip
    out: Plan = ([], [], [], [], [], [])
    for i in vaults.tolist():
        bark = mk.bark_amounts(
            ink=float(ink[i]), art=float(art[i]), rate=rate, spot=spot, dust=dust, chop=chop,
            global_room=room, ilk_room=room,
        )  # fmt: skip
        coin = mk.keeper_incentive(bark.tab, tip, chip)
        if bark.refusal == mk.BarkRefusal.LIMIT_HIT:
            break
        if bark.refusal or coin <= floor:
            continue
        row = (i, bark.dart, bark.dink, bark.due, bark.tab, coin)
        for column, value in zip(out, row, strict=True):
            column.append(value)  # type: ignore[attr-defined]
        room -= bark.tab
    return out


def _kernel(
    ink: np.ndarray, art: np.ndarray, vaults: np.ndarray, rate: float, spot: float,
    dust: float, chop: float, room: float, tip: float, chip: float, floor: float,
) -> Plan:  # fmt: skip
    vault, dart, dink, due, tab, coin = plan_barks_nb(
        ink, art, vaults, rate, spot, dust, chop, room, tip, chip, floor
    )
    return (vault.tolist(), dart.tolist(), dink.tolist(), due.tolist(), tab.tolist(), coin.tolist())


_amount = st.one_of(st.sampled_from([0.0, 20.0, 100.0]), st.floats(0.0, 1e6, allow_subnormal=False))


@settings(max_examples=300, deadline=None)
@given(
    vaults=st.lists(st.tuples(_amount, _amount), min_size=0, max_size=40),
    order_seed=st.integers(0, 2**31),
    rate=st.sampled_from([1.0, 1.02, 1.0834]),
    spot=st.one_of(st.sampled_from([0.0, 2.0]), st.floats(0.01, 1e4)),
    dust=st.sampled_from([0.0, 20.0, 20.4, 5e3]),
    chop=st.sampled_from([1.0, 1.1, 1.13]),
    room=st.one_of(st.sampled_from([0.0, 75.0, 80.0, math.inf]), st.floats(-1e3, 1e7)),
    tip=st.sampled_from([0.0, 100.0, 300.0]),
    chip=st.sampled_from([0.0, 0.001, 0.02]),
    floor=st.one_of(st.sampled_from([-1.0, 0.0, 100.0, 300.0]), st.floats(0.0, 1e3)),
)
# dss clip.t.sol's vault (ink 40, art 100 at spot 2) with room 80: a partial bark of 80.
@example(
    vaults=[(40.0, 100.0), (40.0, 100.0)], order_seed=0, rate=1.0, spot=2.0, dust=20.0,
    chop=1.0, room=80.0, tip=0.0, chip=0.0, floor=-1.0,
)  # fmt: skip
# An incentive exactly at the floor (no plan): of the whole vault, and of a partial bark whose
# whole-vault bound is above the floor; a partial bark of exactly dust (planned).
@example(
    vaults=[(40.0, 100.0)], order_seed=0, rate=1.0, spot=2.0, dust=0.0, chop=1.0, room=20.0,
    tip=0.0, chip=1.0, floor=20.0,
)  # fmt: skip
@example(
    vaults=[(40.0, 100.0)], order_seed=0, rate=1.0, spot=2.0, dust=20.0, chop=1.0, room=1e3,
    tip=100.0, chip=0.0, floor=100.0,
)  # fmt: skip
@example(
    vaults=[(40.0, 100.0)], order_seed=0, rate=1.0, spot=2.0, dust=20.0, chop=1.0, room=20.0,
    tip=0.0, chip=0.0, floor=-1.0,
)  # fmt: skip
def test_the_compiled_plan_is_the_per_vault_walk(
    vaults: list[tuple[float, float]], order_seed: int, rate: float, spot: float, dust: float,
    chop: float, room: float, tip: float, chip: float, floor: float,
) -> None:  # fmt: skip
    ink = np.array([v[0] for v in vaults], dtype=np.float64)
    art = np.array([v[1] for v in vaults], dtype=np.float64)
    order = np.random.default_rng(order_seed).permutation(len(vaults)).astype(np.int64)
    args = (ink, art, order, rate, spot, dust, chop, room, tip, chip, floor)
    assert _kernel(*args) == _walk(*args)


def _one(room: float, chop: float, rate: float = 1.0, dust: float = 20.0) -> Plan:
    # dss clip.t.sol's setup: ink 40, art 100, spot 2 (unsafe at rate 1: 80 < 100).
    return _kernel(
        np.array([40.0]), np.array([100.0]), np.array([0], dtype=np.int64), rate, 2.0, dust,
        chop, room, 0.0, 0.0, -1.0,
    )  # fmt: skip


def test_dss_bark_vectors_through_the_kernel() -> None:
    # clip.t.sol takeSetup: the whole vault, tab 110 at chop 1.1, lot 40.
    _, dart, dink, _, tab, _ = _one(1000.0, 1.1)
    assert (dart, dink) == ([100.0], [40.0])
    assert math.isclose(tab[0], 110.0)
    # test_bark_not_leaving_dust: room 80 -> tab 80, lot 32, dart 80.
    assert _one(80.0, 1.0)[1:5] == ([80.0], [32.0], [80.0], [80.0])
    # test_bark_not_leaving_dust_over_hole: one step above 80 -> the whole vault.
    assert _one(math.nextafter(80.0, math.inf), 1.0)[1:3] == ([100.0], [40.0])
    # test_bark_only_leaving_dust_over_hole_rate: room 81.6, rate 1.02, dust 20.4 -> dart 80.
    _, dart, dink, _, tab, _ = _one(81.6, 1.0, rate=1.02, dust=20.4)
    assert math.isclose(dart[0], 80.0)
    assert math.isclose(dink[0], 32.0)
    assert math.isclose(tab[0], 81.6)
    # Dog/liquidation-limit-hit and Dog/dusty-auction-from-partial-liquidation: no plan.
    assert _one(0.0, 1.1)[0] == []
    assert _one(10.0, 1.0)[0] == []


def test_the_room_stops_the_walk_at_the_first_limit_refusal() -> None:
    # Three clip.t.sol vaults, room 150 at chop 1: the first takes 100, the second the last 50
    # (its remainder 50 is not dusty), the third finds no room: two plans, the room used up.
    ink, art = np.full(3, 40.0), np.full(3, 100.0)
    plan = _kernel(ink, art, np.arange(3, dtype=np.int64), 1.0, 2.0, 20.0, 1.0, 150.0,
                   0.0, 0.0, -1.0)  # fmt: skip
    assert plan[0] == [0, 1]
    assert plan[4] == [100.0, 50.0]


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(0, 30),
    seed=st.integers(0, 2**31),
    spot=st.floats(0.5, 5.0),
    room=st.one_of(st.just(0.0), st.floats(1.0, 1e4)),
    block=st.integers(0, 10**6),
)
def test_the_prefix_pass_stamps_and_plans_as_the_venue_did(
    n: int, seed: int, spot: float, room: float, block: int
) -> None:
    # The venue's former steps: vaults = order[ranks], stamp those first seen now (from
    # position ``first`` on), then walk.
    rng = np.random.default_rng(seed)
    ink, art = rng.uniform(0.0, 50.0, n), rng.uniform(0.0, 100.0, n)
    order = rng.permutation(n).astype(np.int64)
    ranks = np.flatnonzero(rng.random(n) < 0.7).astype(np.int64)
    seen = np.where(rng.random(n) < 0.5, -1, rng.integers(0, block + 1, n)).astype(np.int64)
    first = int(rng.integers(0, ranks.size + 1))  # those before it were stamped before
    want_seen = seen.copy()
    vaults = order[ranks]
    fresh = vaults[first:][want_seen[vaults[first:]] < 0]
    want_seen[fresh] = block
    args = (1.02, spot, 20.0, 1.13, room, 300.0, 0.001, 50.0)
    got = bark_prefix_nb(order, ranks, art[vaults], first, seen, block, ink, art, *args)
    np.testing.assert_array_equal(seen, want_seen)
    assert [a.tolist() for a in got] == list(_walk(ink, art, vaults, *args))
