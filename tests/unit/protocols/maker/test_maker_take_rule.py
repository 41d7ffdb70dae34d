"""The Clipper's one take rule and redo rule (``clip_nb.take_nb``, ``redo_incentive_nb``,
``redo_keeper_nb``), which the compiled run and the quiet count both call, against the
per-sale path's Python (``math.take_amounts``, ``actions.sale_slippage``, ``Clipper._takes``'s
profit test; ``math.redo_incentive`` and ``Clipper._redo``'s gain; ``Keepers.act``'s first
keeper for one opportunity): the same decision and the same bits (Hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.maker import math as mk
from deleverage.protocols.maker.actions import sale_slippage
from deleverage.protocols.maker.clip_nb import redo_incentive_nb, redo_keeper_nb, take_nb

amounts = st.floats(min_value=1e-6, max_value=1e9)
small = st.floats(min_value=0.0, max_value=1e4)


def _take_oracle(
    capital: float, gas: float, price: float, tab: float, lot: float, chost: float,
    market: float, depth: float, min_profit: float,
) -> tuple[bool, float, float, float]:  # fmt: skip
    """``Clipper._takes`` for one keeper (its Python, as the per-sale path runs it)."""
    budget = capital - gas
    if budget <= 0.0:
        return False, 0.0, 0.0, 0.0
    taken = mk.take_amounts(
        tab=tab, lot=lot, price=price, amt=budget / price, max_price=price, chost_dai=chost
    )
    if taken.refusal or taken.slice <= 0.0:
        return False, 0.0, 0.0, 0.0
    proceeds = taken.slice * market - sale_slippage(taken.slice, market, depth)
    if proceeds - taken.owe - gas <= min_profit:
        return False, 0.0, 0.0, 0.0
    return True, taken.slice, taken.owe, proceeds


@settings(max_examples=400, deadline=None)
@given(capital=amounts, gas=small, price=amounts, tab=amounts, lot=amounts,
       chost=st.floats(0.0, 1e6), market=amounts, depth=amounts, min_profit=small)  # fmt: skip
def test_take_nb_is_the_per_sale_take_to_the_bit(
    capital: float, gas: float, price: float, tab: float, lot: float, chost: float,
    market: float, depth: float, min_profit: float,
) -> None:  # fmt: skip
    args = (capital, gas, price, tab, lot, chost, market, depth, min_profit)
    assert take_nb(*args) == _take_oracle(*args)


def test_take_nb_near_the_dust_rule() -> None:
    """The cases the dust rule decides: a cut to leave ``chost``, a refusal, the whole tab."""
    market, depth = 1_000.0, 1e6
    cases = [
        (9_950.0 + 1.0, 1.0, 1_000.0, 10_000.0, 20.0, 100.0),  # leaves 50 < chost: cut to 100
        (9_950.0 + 1.0, 1.0, 1_000.0, 80.0, 20.0, 100.0),  # tab <= chost: whole lot only
        (1e9, 1.0, 1_000.0, 10_000.0, 20.0, 100.0),  # buys the whole tab
    ]
    for capital, gas, price, tab, lot, chost in cases:
        args = (capital, gas, price, tab, lot, chost, market, depth, 0.0)
        assert take_nb(*args) == _take_oracle(*args)


@settings(max_examples=300, deadline=None)
@given(tab=amounts, lot=amounts, feed=amounts, market=amounts, buf=st.floats(1.0, 1.5),
       tip=small, chip=st.floats(0.0, 0.1), chost=st.floats(0.0, 1e6))  # fmt: skip
def test_redo_incentive_nb_is_clippers_redo(
    tab: float, lot: float, feed: float, market: float, buf: float, tip: float, chip: float,
    chost: float,
) -> None:  # fmt: skip
    coin = mk.redo_incentive(tab, lot, feed, tip=tip, chip=chip, chost_dai=chost)
    gain = max(0.0, lot * (market - feed * buf))
    assert redo_incentive_nb(tab, lot, feed, market, buf, tip, chip, chost) == (coin, coin + gain)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), keepers=st.integers(1, 6), waited=st.integers(0, 4),
       incentive=st.floats(0.0, 100.0))  # fmt: skip
def test_redo_keeper_nb_is_the_first_keeper_for_whom_it_pays(
    seed: int, keepers: int, waited: int, incentive: float
) -> None:
    rng = np.random.default_rng(seed)
    order = rng.permutation(keepers).astype(np.int64)
    latency = rng.integers(0, 4, keepers).astype(np.int64)
    capital = rng.uniform(0.0, 50.0, keepers)
    gas = rng.uniform(0.0, 30.0, keepers)
    min_profit = rng.uniform(0.0, 20.0, keepers)
    expected = -1
    for k in order.tolist():  # Keepers.act of one opportunity: need and slippage 0
        pays = incentive - gas[k] - 0.0 > min_profit[k]
        if latency[k] <= waited and capital[k] >= 0.0 + gas[k] and pays:
            expected = k
            break
    before = capital.copy()
    assert redo_keeper_nb(order, latency, waited, capital, gas, min_profit, incentive) == expected
    assert np.array_equal(capital, before)  # it changes nothing
