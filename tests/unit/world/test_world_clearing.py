"""The clearinghouse's default waterfall: money is conserved, layers pay strictly in order, the
gains haircut is pro rata, and cover-2 sizes the default fund on the two largest exposures.

The oracle for the order of layers is a plain sequential loop written here (pay from each layer
in turn what is still unpaid), independent of the numpy code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import ValidationError
from deleverage.rules import clearing as cl
from deleverage.world.clearing import (
    LINE_NAMES,
    ClearingHouse,
    StressScenario,
    standalone_bad_debt,
    standalone_funds,
)

amounts = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_infinity=False)
signed = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False)
MEMBERS = ("cex", "dex", "lend", "cdp")


def _sequential(loss: float, capacities: list[float]) -> tuple[list[float], float]:
    paid, rest = [], loss
    for capacity in capacities:
        take = capacity if rest > capacity else rest
        paid.append(take)
        rest -= take
    return paid, rest


@given(loss=amounts, capacities=st.lists(amounts, max_size=6))
def test_waterfall_matches_a_sequential_loop_and_conserves_the_loss(
    loss: float, capacities: list[float]
) -> None:
    # Act
    split = cl.run_waterfall(loss, capacities)
    # Assert
    expected, rest = _sequential(loss, capacities)
    np.testing.assert_allclose(split.paid, expected, rtol=1e-12, atol=1e-6)
    assert split.residual == pytest.approx(rest, rel=1e-12, abs=1e-6)
    assert float(split.paid.sum()) + split.residual == pytest.approx(loss, rel=1e-12, abs=1e-6)


@given(loss=amounts, capacities=st.lists(amounts, min_size=1, max_size=6))
def test_a_layer_pays_only_once_every_layer_before_it_is_exhausted(
    loss: float, capacities: list[float]
) -> None:
    split = cl.run_waterfall(loss, capacities)
    for j in range(1, len(capacities)):
        if split.paid[j] > 0.0:
            np.testing.assert_allclose(split.paid[:j], capacities[:j], rtol=1e-12)


def test_cover2_keeps_the_two_largest_exposures_net_of_each_members_fund() -> None:
    # Stressed losses 100, 400, 250, 50 against funds 20, 100, 50, 80: exposures 80, 300, 200,
    # 0; cover-2 = 300 + 200 = 500, split 80:300:200:0 of 580.
    house = ClearingHouse.cover2(
        member_funds=dict(zip(MEMBERS, (20.0, 100.0, 50.0, 80.0), strict=True)),
        stressed_losses={"crash": dict(zip(MEMBERS, (100.0, 400.0, 250.0, 50.0), strict=True))},
        skin_in_game=10.0,
    )
    assert house.default_fund == pytest.approx(500.0)
    np.testing.assert_allclose(
        house.balances()["contribution"], [500 * 80 / 580, 500 * 300 / 580, 500 * 200 / 580, 0]
    )
    assert house.total_resources == pytest.approx(250.0 + 500.0 + 10.0)
    assert cl.cover_n_default_fund([80.0, 300.0, 200.0, 0.0], cover=1) == 300.0


def test_cover2_over_scenarios_keeps_the_worst_and_shares_by_peak_exposure() -> None:
    # crash: exposures 80, 300, 0, 0 (cover-2 380); rally: 0, 0, 200, 120 (320). Fund 380,
    # shared by peak exposures 80 : 300 : 200 : 120 (sum 700).
    funds = dict.fromkeys(MEMBERS, 0.0)
    house = ClearingHouse.cover2(
        member_funds=funds,
        stressed_losses={
            "crash": {"cex": 80.0, "dex": 300.0},
            "rally": {"lend": 200.0, "cdp": 120.0},
        },
        skin_in_game=0.0,
    )
    assert house.default_fund == pytest.approx(380.0)
    np.testing.assert_allclose(
        house.balances()["contribution"], np.array([80.0, 300.0, 200.0, 120.0]) * 380.0 / 700.0
    )


def _house(
    funds: list[float], shares: list[float], skin: float, position: str = "before_mutual"
) -> ClearingHouse:
    return ClearingHouse(
        member_funds=dict(zip(MEMBERS, funds, strict=True)),
        contributions=dict(zip(MEMBERS, shares, strict=True)),
        skin_in_game=skin,
        skin_position=position,  # type: ignore[arg-type]
    )


def test_a_worked_default_walks_every_layer_in_order() -> None:
    # cex defaults with a 1,000 loss: its fund 100, its contribution 50, skin 30, the others'
    # contributions 60 + 40 + 20 = 120 (all of it), 300 paid so far; the other members' gains
    # 200 + 400 = 600 < 700 are all taken (rate 1), bad debt 100.
    house = _house([100.0, 10.0, 10.0, 10.0], [50.0, 60.0, 40.0, 20.0], 30.0)
    s = house.settle(
        {"cex": 1_000.0},
        vm_gains={"cex": 500.0, "dex": 200.0, "lend": -5.0, "cdp": 400.0},
        ts_ns=1,
    )
    assert s.lines == pytest.approx((100.0, 50.0, 30.0, 120.0, 600.0, 100.0))
    assert s.by_member["haircut_taken"].tolist() == pytest.approx([0.0, 200.0, 0.0, 400.0])
    assert house.default_fund == pytest.approx(0.0)
    assert house.lines().total == pytest.approx(1_000.0)


def test_skin_in_game_after_the_mutual_fund_is_used_only_once_the_others_are_exhausted() -> None:
    house = _house([0.0, 0.0, 0.0, 0.0], [0.0, 50.0, 50.0, 0.0], 30.0, "after_mutual")
    s = house.settle({"cex": 120.0}, ts_ns=1)
    assert (s.lines.mutual_fund, s.lines.skin_in_game, s.lines.bad_debt) == pytest.approx(
        (100.0, 20.0, 0.0)
    )


@st.composite
def _cycles(draw: st.DrawFn) -> tuple[list[float], list[float], float, list[float], list[float]]:
    funds = draw(st.lists(amounts, min_size=4, max_size=4))
    shares = draw(st.lists(amounts, min_size=4, max_size=4))
    skin = draw(amounts)
    losses = draw(st.lists(amounts, min_size=4, max_size=4))
    gains = draw(st.lists(signed, min_size=4, max_size=4))
    return funds, shares, skin, losses, gains


@given(cycle=_cycles(), position=st.sampled_from(["before_mutual", "after_mutual"]))
def test_settlement_conserves_money_and_resources_fall_by_what_they_paid(
    cycle: tuple[list[float], list[float], float, list[float], list[float]], position: str
) -> None:
    funds, shares, skin, losses, gains = cycle
    house = _house(funds, shares, skin, position)
    s = house.settle(
        dict(zip(MEMBERS, losses, strict=True)),
        vm_gains=dict(zip(MEMBERS, gains, strict=True)),
        ts_ns=0,
    )
    total_loss = sum(losses)
    assert s.lines.total == pytest.approx(total_loss, rel=1e-9, abs=1e-6)
    assert all(x >= 0.0 for x in s.lines)
    table = house.balances()
    assert sum(funds) - float(table["member_fund"].sum()) == pytest.approx(
        s.lines.member_fund, rel=1e-9, abs=1e-6
    )
    assert sum(shares) - house.default_fund == pytest.approx(
        s.lines.own_contribution + s.lines.mutual_fund, rel=1e-9, abs=1e-6
    )
    assert skin - house.skin_in_game == pytest.approx(s.lines.skin_in_game, rel=1e-9, abs=1e-6)
    assert float(s.by_member["haircut_taken"].sum()) == pytest.approx(
        s.lines.vm_haircut, rel=1e-9, abs=1e-6
    )
    # Per member: its lines add up to its deficit.
    rows = s.by_member[list(LINE_NAMES)].sum(axis=1).to_numpy()
    np.testing.assert_allclose(rows, losses, rtol=1e-9, atol=1e-6)


@given(cycle=_cycles())
def test_each_layer_is_used_only_when_the_one_before_is_exhausted(
    cycle: tuple[list[float], list[float], float, list[float], list[float]],
) -> None:
    funds, shares, skin, losses, gains = cycle
    loss = losses[0]
    house = _house(funds, shares, skin)
    s = house.settle({"cex": loss}, vm_gains=dict(zip(MEMBERS, gains, strict=True)), ts_ns=0)
    others = sum(shares[1:])
    capacities = [funds[0], shares[0], skin, others, sum(max(g, 0.0) for g in gains[1:])]
    expected, rest = _sequential(loss, capacities)
    np.testing.assert_allclose(list(s.lines)[:5], expected, rtol=1e-9, atol=1e-6)
    assert s.lines.bad_debt == pytest.approx(rest, rel=1e-9, abs=1e-6)


@given(shortfall=amounts, gains=st.lists(signed, min_size=1, max_size=8))
def test_the_gains_haircut_is_pro_rata_and_never_takes_more_than_a_gain(
    shortfall: float, gains: list[float]
) -> None:
    cut = cl.haircut_gains(shortfall, gains)
    positive = np.maximum(np.asarray(gains), 0.0)
    assert np.all(cut.taken <= positive * (1 + 1e-12))
    np.testing.assert_allclose(cut.taken, cut.rate * positive, rtol=1e-12)
    assert 0.0 <= cut.rate <= 1.0
    assert float(cut.taken.sum()) + cut.residual == pytest.approx(shortfall, rel=1e-9, abs=1e-6)
    if cut.residual > 1e-6 * max(shortfall, 1.0):
        np.testing.assert_allclose(cut.taken, positive, rtol=1e-12)  # every gain all taken


@given(amount=amounts, balances=st.lists(amounts, min_size=1, max_size=6))
def test_the_mutual_fund_draws_every_contribution_at_the_same_rate(
    amount: float, balances: list[float]
) -> None:
    draw = cl.pro_rata_draw(amount, balances)
    held = np.asarray(balances)
    assert np.all(draw.paid <= held * (1 + 1e-12))
    if held.sum() > 0:
        rate = min(amount / held.sum(), 1.0)
        np.testing.assert_allclose(draw.paid, held * rate, rtol=1e-9)


def test_standalone_funds_have_the_clearinghouses_total_size() -> None:
    house = _house([100.0, 50.0, 0.0, 10.0], [40.0, 10.0, 0.0, 0.0], 21.0)
    funds = standalone_funds(house)
    assert sum(funds.values()) == pytest.approx(house.total_resources)
    assert funds["lend"] == 0.0
    # One venue's deficit beyond its own fund is bad debt there, whatever the others hold.
    assert standalone_bad_debt({"cex": 200.0, "dex": 0.0}, funds) == pytest.approx(
        200.0 - funds["cex"]
    )


@pytest.mark.parametrize(
    ("deficits", "field"),
    [
        ({"nobody": 1.0}, "deficits"),
        ({"cex": -1.0}, "deficits.cex"),
        ({"cex": math.nan}, "deficits.cex"),
    ],
)
def test_bad_settlements_are_refused_naming_the_field_and_change_nothing(
    deficits: dict[str, float], field: str
) -> None:
    house = _house([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], 1.0)
    with pytest.raises(ValidationError) as info:
        house.settle(deficits, ts_ns=0)
    assert info.value.field == field
    assert house.lines().total == 0.0
    assert house.default_fund == 4.0


def test_a_stress_scenario_refuses_a_move_past_minus_one() -> None:
    with pytest.raises(ValidationError, match=r"stress\.shocks\.ETH"):
        StressScenario("crash", {"ETH": -1.5})
