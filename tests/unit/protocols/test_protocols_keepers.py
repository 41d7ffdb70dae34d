"""Tests of deleverage.protocols.keepers: the profitability rule, competition by latency (ties
by gas, then index), capital consumed and paid back after the sale delay, and the compiled
assignment against a plain-Python oracle of the rule as the module docstring states it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import ConfigError, ValidationError
from deleverage.protocols.chain import gas_cost_quote
from deleverage.protocols.keepers import (
    Keepers,
    KeepersConfig,
    KeeperSpec,
    sale_slippage_quote,
)

GAS_PRICE = 100.0  # gwei
NATIVE = 2_000.0  # quote per native token: 100,000 gas cost 20 quote


def _keepers(*specs: KeeperSpec, delay: int = 1) -> Keepers:
    return Keepers(KeepersConfig(keepers=specs, sale_delay_blocks=delay))


def _act(keepers: Keepers, block: int = 10, **columns: list[float] | list[int]) -> np.ndarray:
    m = len(columns["incentive"])
    defaults: dict[str, list[float] | list[int]] = {
        "seen_block": [0] * m,
        "need": [0.0] * m,
        "slippage": [0.0] * m,
    }
    defaults.update(columns)
    return keepers.act(
        block=block, gas_price_gwei=GAS_PRICE, native_price=NATIVE, **defaults
    ).winner


def test_a_keeper_acts_only_when_incentive_beats_gas_slippage_and_min_profit() -> None:
    # gas = 20, slippage = 5, min profit = 10: the incentive must exceed 35.
    keepers = _keepers(KeeperSpec(capital=1e6, latency_blocks=0, gas_units=1e5, min_profit=10.0))
    winners = _act(keepers, incentive=[35.0, 35.01, 100.0], slippage=[5.0, 5.0, 5.0])
    assert winners.tolist() == [-1, 0, 0]


def test_a_keeper_needs_capital_for_the_repayment_and_the_gas() -> None:
    keepers = _keepers(KeeperSpec(capital=1_019.0, latency_blocks=0, gas_units=1e5))
    assert _act(keepers, incentive=[500.0], need=[1_000.0]).tolist() == [-1]  # 1,000 + 20 > 1,019
    keepers = _keepers(KeeperSpec(capital=1_020.0, latency_blocks=0, gas_units=1e5))
    assert _act(keepers, incentive=[500.0], need=[1_000.0]).tolist() == [0]
    assert keepers.capital.tolist() == [0.0]


def test_the_fastest_keeper_wins_and_ties_go_to_less_gas_then_lower_index() -> None:
    specs = (
        KeeperSpec(capital=1e6, latency_blocks=2, gas_units=1e5),  # 0: slow
        KeeperSpec(capital=1e6, latency_blocks=1, gas_units=3e5),  # 1: fast, heavy
        KeeperSpec(capital=1e6, latency_blocks=1, gas_units=2e5, count=2),  # 2, 3: fast, light
    )
    keepers = _keepers(*specs)
    assert _act(keepers, block=10, seen_block=[9], incentive=[500.0]).tolist() == [2]
    assert _act(keepers, block=10, seen_block=[10], incentive=[500.0]).tolist() == [-1]
    assert _act(keepers, block=10, seen_block=[8], incentive=[500.0]).tolist() == [2]


def test_a_keeper_out_of_capital_leaves_the_rest_to_slower_keepers() -> None:
    keepers = _keepers(
        KeeperSpec(capital=1_100.0, latency_blocks=0, gas_units=1e5),
        KeeperSpec(capital=1e6, latency_blocks=5, gas_units=1e5),
    )
    winners = _act(keepers, block=10, seen_block=[0, 0, 9], incentive=[100.0] * 3, need=[1e3] * 3)
    # The fast keeper takes the first (1,000 + 20 of its 1,100), then cannot pay the second;
    # the slow one takes the second, and the third is too young for it (1 block < 5).
    assert winners.tolist() == [0, 1, -1]
    assert keepers.capital.tolist() == pytest.approx([80.0, 1e6 - 1_020.0])


def test_proceeds_return_to_capital_after_the_sale_delay() -> None:
    keepers = _keepers(KeeperSpec(capital=1_020.0, latency_blocks=0, gas_units=1e5), delay=3)
    assert _act(keepers, block=10, incentive=[100.0], need=[1_000.0]).tolist() == [0]
    keepers.receive([0], [1_080.0], block=10)
    assert keepers.pending_proceeds == 1_080.0
    keepers.settle(12)
    assert keepers.capital.tolist() == [0.0]
    # At block 12 the keeper is still broke; at 13 it is paid and can act again.
    assert _act(keepers, block=12, incentive=[100.0], need=[1_000.0]).tolist() == [-1]
    assert _act(keepers, block=13, incentive=[100.0], need=[1_000.0]).tolist() == [0]
    assert keepers.capital.tolist() == pytest.approx([60.0])
    assert keepers.snapshot() == pytest.approx(
        {"capital": 60.0, "pending_proceeds": 0.0, "gas_paid": 40.0, "received": 1_080.0}
    )


def test_sale_slippage_on_a_constant_depth_book() -> None:
    # Selling q on a book with D base units per unit of relative move costs q^2 p / (2 D).
    assert float(sale_slippage_quote(50.0, 150.0, 500.0)) == pytest.approx(50**2 * 150 / 1_000)
    assert float(sale_slippage_quote(50.0, 150.0, float("inf"))) == 0.0


def test_bad_inputs_are_refused_naming_the_field() -> None:
    keepers = _keepers(KeeperSpec(capital=1e6))
    with pytest.raises(ValidationError, match="incentive"):
        _act(keepers, incentive=[float("nan")])
    with pytest.raises(ValidationError, match="seen_block"):
        _act(keepers, block=1, seen_block=[5], incentive=[1.0])
    with pytest.raises(ValidationError, match="keeper"):
        keepers.receive([3], [1.0], block=1)
    with pytest.raises(ValidationError, match="proceeds"):
        keepers.receive([0], [-1.0], block=1)
    with pytest.raises(ConfigError, match="capital"):
        KeeperSpec(capital=-1.0)
    with pytest.raises(ConfigError, match="keepers"):
        KeepersConfig(keepers=())


def _oracle(
    keepers: Keepers,
    capital: list[float],
    waited: list[int],
    incentive: list[float],
    need: list[float],
    slippage: list[float],
    gas: list[float],
) -> list[int]:
    # The rule as the module docstring states it, one keeper and opportunity at a time.
    ranked = sorted(
        range(len(capital)), key=lambda i: (keepers.latency_blocks[i], keepers.gas_units[i], i)
    )
    winners = []
    for j in range(len(incentive)):
        winner = -1
        for i in ranked:
            if (
                keepers.latency_blocks[i] <= waited[j]
                and capital[i] >= need[j] + gas[i]
                and incentive[j] - gas[i] - slippage[j] > keepers.min_profit[i]
            ):
                capital[i] -= need[j] + gas[i]
                winner = i
                break
        winners.append(winner)
    return winners


keeper_specs = st.builds(
    KeeperSpec,
    capital=st.floats(0.0, 5_000.0),
    latency_blocks=st.integers(0, 4),
    gas_units=st.sampled_from([1e5, 2e5, 5e5]),
    min_profit=st.floats(0.0, 50.0),
    count=st.integers(1, 3),
)
opportunities = st.lists(
    st.tuples(
        st.integers(0, 6), st.floats(0.0, 300.0), st.floats(0.0, 2_000.0), st.floats(0.0, 50.0)
    ),
    min_size=0,
    max_size=30,
)


@given(
    specs=st.lists(keeper_specs, min_size=1, max_size=4),
    opps=opportunities,
    gas_price=st.floats(0.0, 500.0),
)
def test_the_compiled_assignment_matches_the_oracle_and_never_overdraws(
    specs: list[KeeperSpec], opps: list[tuple[int, float, float, float]], gas_price: float
) -> None:
    keepers = _keepers(*specs)
    capital = keepers.capital.tolist()
    gas = (keepers.gas_units * gas_price * 1e-9 * NATIVE).tolist()
    waited = [o[0] for o in opps]
    incentive, need, slippage = ([o[k] for o in opps] for k in (1, 2, 3))
    expected = _oracle(keepers, capital, waited, incentive, need, slippage, gas)
    acts = keepers.act(
        block=10,
        seen_block=[10 - w for w in waited],
        incentive=incentive,
        need=need,
        slippage=slippage,
        gas_price_gwei=gas_price,
        native_price=NATIVE,
    )
    assert acts.winner.tolist() == expected
    assert (keepers.capital >= 0.0).all()
    np.testing.assert_allclose(keepers.capital, capital, atol=1e-6)
    for j, i in enumerate(acts.winner):  # no action when unprofitable for the winner
        if i >= 0:
            assert incentive[j] - gas[i] - slippage[j] > keepers.min_profit[i]


@given(
    specs=st.lists(keeper_specs, min_size=1, max_size=4),
    opps=opportunities,
    low=st.floats(0.0, 300.0),
    extra=st.floats(0.0, 300.0),
)
def test_more_gas_never_adds_actions_when_capital_does_not_bind(
    specs: list[KeeperSpec], opps: list[tuple[int, float, float, float]], low: float, extra: float
) -> None:
    # With capital that never binds, the set acted on at a higher gas price is a subset. (With
    # binding capital it need not be: skipping an unprofitable large opportunity can leave
    # capital for two smaller ones.)
    rich = [s.model_copy(update={"capital": 1e12}) for s in specs]
    acted = []
    for gas_price in (low, low + extra):
        keepers = _keepers(*rich)
        acts = keepers.act(
            block=10,
            seen_block=[10 - o[0] for o in opps],
            incentive=[o[1] for o in opps],
            need=[o[2] for o in opps],
            slippage=[o[3] for o in opps],
            gas_price_gwei=gas_price,
            native_price=NATIVE,
        )
        acted.append(set(np.flatnonzero(acts.acted).tolist()))
    assert acted[1] <= acted[0]


@given(
    specs=st.lists(keeper_specs, min_size=1, max_size=3),
    rounds=st.lists(opportunities, min_size=1, max_size=5),
    delay=st.integers(0, 3),
)
def test_capital_never_goes_negative_through_acts_sales_and_settlements(
    specs: list[KeeperSpec], rounds: list[list[tuple[int, float, float, float]]], delay: int
) -> None:
    keepers = _keepers(*specs, delay=delay)
    total = keepers.capital.sum()
    for block, opps in enumerate(rounds, start=10):
        acts = keepers.act(
            block=block,
            seen_block=[block - o[0] for o in opps],
            incentive=[o[1] for o in opps],
            need=[o[2] for o in opps],
            slippage=[o[3] for o in opps],
            gas_price_gwei=80.0,
            native_price=NATIVE,
        )
        assert (keepers.capital >= 0.0).all()
        need = np.array([o[2] for o in opps])
        keepers.receive(acts.winner[acts.acted], need[acts.acted] * 1.05, block=block)
    keepers.settle(10**6)
    # Money adds up: start + proceeds - needs - gas.
    assert keepers.capital.sum() == pytest.approx(
        total + keepers.received.sum() - keepers.received.sum() / 1.05 - keepers.gas_paid.sum(),
        rel=1e-9,
        abs=1e-6,
    )


_SPEC = st.builds(
    KeeperSpec,
    capital=st.sampled_from([0.0, 15.0, 100.0, 1e4]),
    latency_blocks=st.integers(0, 4),
    gas_units=st.sampled_from([5e4, 1e5, 3e5]),
    min_profit=st.sampled_from([0.0, 1.0, 7.5, 40.0]),
    count=st.integers(1, 2),
)


@given(
    specs=st.lists(_SPEC, min_size=1, max_size=4),
    ops=st.lists(
        st.tuples(
            st.floats(-50.0, 150.0), st.floats(0.0, 200.0), st.floats(0.0, 30.0), st.integers(0, 6)
        ),
        min_size=1,
        max_size=12,
    ),
    nudge=st.sampled_from([None, -1, 0, 1]),
)
def test_the_skip_bound_is_exactly_the_pass_acting_on_nothing(
    specs: list[KeeperSpec],
    ops: list[tuple[float, float, float, int]],
    nudge: int | None,
) -> None:
    # none_would_act may only say True when act gives no opportunity a taker; and at the
    # boundary (the best incentive exactly one keeper's gas plus minimum profit, or one ulp
    # either side), it must not be looser than the pass: with zero slippage and need, and the
    # best opportunity waited long enough for everyone, "False" means somebody acts.
    block = 10
    incentive = np.array([o[0] for o in ops])
    if nudge is not None:
        gas = 1e5 * GAS_PRICE * 1e-9 * NATIVE
        target = float(specs[0].min_profit) + gas
        incentive[0] = np.nextafter(target, target + nudge) if nudge else target
        specs[0] = specs[0].model_copy(update={"gas_units": 1e5, "capital": 1e4})
    seen = np.array([block - o[3] for o in ops])
    keepers = _keepers(*specs)
    twin = _keepers(*specs)
    skip = keepers.none_would_act(
        block=block,
        waited_blocks=int(block - seen.min()),
        incentive=float(incentive.max()),
        gas_price_gwei=GAS_PRICE,
        native_price=NATIVE,
    )
    winners = _act(
        twin,
        block=block,
        incentive=incentive.tolist(),
        need=[o[1] for o in ops],
        slippage=[o[2] for o in ops],
        seen_block=seen.tolist(),
    )
    if skip:
        assert (winners < 0).all()
    best = int(incentive.argmax())
    lone = _act(_keepers(*specs), block=block + 10, incentive=[float(incentive[best])])
    waited_all = keepers.none_would_act(
        block=block + 10,
        waited_blocks=10,
        incentive=float(incentive[best]),
        gas_price_gwei=GAS_PRICE,
        native_price=NATIVE,
    )
    assert waited_all == bool(lone[0] < 0)


@given(
    specs=st.lists(_SPEC, min_size=1, max_size=4),
    waited=st.integers(0, 5),
    incentive=st.one_of(st.floats(-50.0, 150.0), st.sampled_from([0.0, float("nan")])),
    gas_price=st.sampled_from([0.0, 3.0, 100.0, 271.5]),
    native=st.floats(1.0, 5_000.0),
)
def test_the_compiled_skip_bound_is_the_array_expression(
    specs: list[KeeperSpec], waited: int, incentive: float, gas_price: float, native: float
) -> None:
    # none_would_act's compiled loop against the array expression it replaced (gas of each
    # keeper from gas_cost_quote): the same answer on random keepers, prices and incentives.
    keepers = _keepers(*specs)
    gas = gas_cost_quote(keepers.gas_units, gas_price, native)
    able = (keepers.latency_blocks <= waited) & (keepers.capital >= gas)
    want = not bool(((incentive - gas[able]) > keepers.min_profit[able]).any())
    got = keepers.none_would_act(
        block=0, waited_blocks=waited, incentive=incentive, gas_price_gwei=gas_price,
        native_price=native,
    )  # fmt: skip
    assert got is want


@given(
    specs=st.lists(_SPEC, min_size=1, max_size=4),
    delay=st.integers(0, 3),
    sales=st.lists(
        st.tuples(st.integers(0, 7), st.floats(0.0, 1e6), st.integers(0, 3)), max_size=12
    ),
)
def test_one_sale_received_is_the_array_receive(
    specs: list[KeeperSpec], delay: int, sales: list[tuple[int, float, int]]
) -> None:
    # receive_one (a take's proceeds, plain numbers) against receive of one-entry arrays: the
    # same queue, totals and capital after each settlement, and the same refusals.
    one, arrays = _keepers(*specs, delay=delay), _keepers(*specs, delay=delay)
    block = 0
    for keeper, proceeds, gap in sales:
        block += gap
        keeper %= len(one)
        one.receive_one(keeper, proceeds, block=block)
        arrays.receive([keeper], [proceeds], block=block)
        one.settle(block + 1)
        arrays.settle(block + 1)
        for field in ("capital", "received", "_due_keeper", "_due_block", "_due_amount"):
            a, b = getattr(one, field), getattr(arrays, field)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        assert one.pending_proceeds == arrays.pending_proceeds
    with pytest.raises(ValidationError, match="keeper"):
        one.receive_one(len(one), 1.0, block=block)
    with pytest.raises(ValidationError, match="proceeds"):
        one.receive_one(0, -1.0, block=block)
    with pytest.raises(ValidationError, match="proceeds"):
        one.receive_one(0, float("nan"), block=block)
