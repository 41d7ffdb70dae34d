"""The Clipper's compiled run (§M10: every sale's per-sale path in one pass over its sale arrays,
which follow kicks and ends once a step, with cached prices) and the venue's compiled bark walk
(§M10) against the per-sale and per-vault paths: a
twin venue whose Clipper runs every sale through the per-sale path (``Clipper.fast = False``)
and whose Dog tries every unsafe vault with ``math.bark_amounts`` (``fast_bark = False``) must do
exactly the same on random populations, curves, limits, keepers and price paths, step by step:
the same steps, journal, solvency lines, keeper state, sales and auctions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deleverage.protocols.chain import gas_cost_quote
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.protocols.maker import (
    ClipperConfig,
    MakerConfig,
    MakerVenue,
    build_maker,
    maker_population,
)
from deleverage.protocols.maker.actions import ActionLog, SaleLog, StepContext
from deleverage.protocols.maker.clipper import Clipper
from deleverage.protocols.maker.config import DogConfig, VowConfig
from deleverage.protocols.maker.vow import Vow
from deleverage.venues.protocol import PriceInputs

S = 10**9


def _pair(
    seed: int,
    curve: str,
    capital: float,
    hole: float,
    dust: float,
    tail_s: float,
    cusp: float,
    delay: int = 3,
    depth: float = 1e7,
) -> tuple[MakerVenue, MakerVenue]:
    config = MakerConfig(
        osm_delay_s=60.0,
        dust=dust,
        dog=DogConfig(hole=hole),
        clipper=ClipperConfig(
            buf=1.1,
            curve=curve,
            step_s=60.0,
            cut=0.97 if curve == "stairstep" else 0.9995,
            tau_s=1800.0,
            tail_s=tail_s,
            cusp=cusp,
        ),
        market_depth=depth,
        keepers=KeepersConfig(
            keepers=(
                KeeperSpec(capital=capital, latency_blocks=0, count=2),
                KeeperSpec(
                    capital=capital * 5, latency_blocks=4, gas_units=150_000.0, min_profit=25.0
                ),
            ),
            sale_delay_blocks=delay,
        ),
    )
    population = maker_population(
        300, seed, price=2_000.0, ratio_median=1.7, ratio_sigma=0.3, collateral_median=6.0
    )
    fast, slow = build_maker(config, population), build_maker(config, population)
    slow.clipper.fast = False
    slow.fast_bark = False
    return fast, slow


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    curve=st.sampled_from(["linear", "stairstep", "exponential"]),
    capital=st.sampled_from([0.0, 500.0, 3e4, 1e7]),  # 0 and 500: budgets at or below gas
    hole=st.sampled_from([2e3, 3e4, 50e6]),  # small holes: dusty partials and limits
    dust=st.sampled_from([0.0, 20.0, 5e3]),
    tail_s=st.sampled_from([600.0, 8400.0]),
    cusp=st.sampled_from([0.0, 0.4, 0.9]),
    delay=st.sampled_from([0, 3]),  # 0: proceeds return to capital within the step
    depth=st.sampled_from([5.0, 60.0, 1e7]),  # thin books: slippage caps a take's gain
    crash=st.floats(0.0, 0.4),
    moves=st.lists(st.floats(-0.08, 0.06), min_size=2, max_size=60),
)
# A hole below dust x chop: partial barks are dusty, only small whole vaults are barked.
@example(
    seed=3, curve="stairstep", capital=3e4, hole=2e3, dust=5e3, tail_s=600.0, cusp=0.4,
    delay=3, depth=1e7, crash=0.0, moves=[-0.03] * 9 + [0.0] * 40,
)  # fmt: skip
def test_the_fast_auction_paths_do_what_the_per_sale_paths_do(
    seed: int,
    curve: str,
    capital: float,
    hole: float,
    dust: float,
    tail_s: float,
    cusp: float,
    delay: int,
    depth: float,
    crash: float,
    moves: list[float],
) -> None:
    fast, slow = _pair(seed, curve, capital, hole, dust, tail_s, cusp, delay, depth)
    price = 2_000.0
    for k, move in enumerate([-crash / 3] * 3 + moves, start=1):
        price *= 1.0 + move
        prices = {"ETH": PriceInputs(price)}
        ts = k * 45 * S
        assert fast.step(prices, ts_ns=ts) == slow.step(prices, ts_ns=ts)
        assert [vars(s) for s in fast.clipper.sales] == [vars(s) for s in slow.clipper.sales]
        assert fast.clipper.dirt == slow.clipper.dirt
        np.testing.assert_array_equal(fast.keepers.capital, slow.keepers.capital)
    np.testing.assert_array_equal(fast.art, slow.art)
    np.testing.assert_array_equal(fast.ink, slow.ink)
    np.testing.assert_array_equal(fast.keepers.gas_paid, slow.keepers.gas_paid)
    np.testing.assert_array_equal(fast.keepers.received, slow.keepers.received)
    assert fast.summary() == slow.summary()
    assert fast.sales.frame().equals(slow.sales.frame())
    assert fast.journal().to_frame().equals(slow.journal().to_frame())
    assert fast.close() == slow.close()


@pytest.mark.parametrize(("cusp", "field"), [(0.4, "sales"), (0.9, "redos")])
def test_the_twin_exercises_redos_takes_and_skips(cusp: float, field: str) -> None:
    # The property above must see the paths it compares: a crash that starts sales, lets some
    # run unbought (priced above the market) and sells others (cusp 0.4), or redoes them when
    # they fall 10% (cusp 0.9).
    fast, slow = _pair(7, "stairstep", 3e4, 50e6, 20.0, 600.0, cusp)
    price = 2_000.0
    for k in range(1, 80):
        price *= 0.97 if k < 8 else 1.0
        prices = {"ETH": PriceInputs(price)}
        assert fast.step(prices, ts_ns=k * 45 * S) == slow.step(prices, ts_ns=k * 45 * S)
    summary = fast.summary()
    assert summary == slow.summary()
    assert summary["auctions"] > 10
    assert summary[field] > 10
    assert fast.journal().to_frame().equals(slow.journal().to_frame())


def _clipper_step(fast: bool, capital: float) -> tuple[object, ...]:
    """One Clipper step over two sales: the first stuck (older than ``tail``), the second at
    half the market price; keepers hold ``capital``."""
    keepers = Keepers(KeepersConfig(keepers=(KeeperSpec(capital=capital, latency_blocks=0),)))
    clipper = Clipper(ClipperConfig(tail_s=600.0), dust=20.0, chop=1.13)
    clipper.fast = fast
    gas = gas_cost_quote(keepers.gas_units, 1.0, 2_000.0)
    ctx = StepContext(
        ts_ns=0, block=10, feed_price=2_000.0, market_price=2_000.0, gas_price_gwei=1.0,
        gas_cost=gas, depth=1e9, native_price=2_000.0,
    )  # fmt: skip
    vow, log, sales = Vow(VowConfig()), ActionLog(), SaleLog()
    clipper.kick(vault=0, tab=11_300.0, lot=10.0, due=10_000.0, ctx=ctx)
    second = ctx._replace(ts_ns=300 * S, feed_price=770.0)
    clipper.kick(vault=1, tab=11_300.0, lot=10.0, due=10_000.0, ctx=second)
    later = ctx._replace(ts_ns=601 * S, block=60)  # the first needs a redo, the second is at
    sold = clipper.run(later, keepers, vow, log, sales)  # 770 x 1.3 x 0.99^3 ~ 971 DAI
    return (
        sold, clipper.redos, keepers.capital.tolist(), [vars(s) for s in clipper.sales],
        sales.frame().to_dict("list"), vow.incentives_paid,
    )  # fmt: skip


@pytest.mark.parametrize("spare", [0.5, 1e6])
def test_a_redo_incentive_gives_a_keeper_the_budget_for_a_later_take(spare: float) -> None:
    # With capital just above gas (spare 0.5 DAI: a slice of 0.5 / 971 units gains ~0.53 DAI,
    # below the 0.8 DAI gas), only the redo's incentive (tip 300 + chip x
    # tab) lets the keeper buy from the second sale in the same step: the fast path must
    # re-read the budgets after the redo, as the per-sale path does.
    capital = float(gas_cost_quote(np.array([400_000.0]), 1.0, 2_000.0)[0]) + spare
    fast, slow = _clipper_step(True, capital), _clipper_step(False, capital)
    assert fast == slow
    assert fast[1] == 1  # the redo
    assert isinstance(fast[0], float)
    assert fast[0] > 0.0  # and the take


@settings(max_examples=60, deadline=None)
@given(
    dp=st.floats(1.0, 300.0),
    r=st.floats(0.2, 3.0),
    lot_share=st.floats(0.3, 2.0),
)
def test_the_slippage_bound_skips_only_sales_nobody_takes(
    dp: float, r: float, lot_share: float
) -> None:
    # One linear-curve sale priced ``dp`` below a 2,000 market on a book of depth ``D`` set so
    # that the best slice's gain after slippage, D dp^2 / (2 P), is ``r`` times the keeper's gas
    # (r < 1: nobody can profit; r > 1: a lot near the best slice D dp / P is taken); the fast
    # path (the compiled run, §M10) must act exactly as the per-sale path at that threshold.
    market = 2_000.0
    keepers_config = KeepersConfig(keepers=(KeeperSpec(capital=1e9, latency_blocks=0),))
    gas = gas_cost_quote(Keepers(keepers_config).gas_units, 1.0, 2_000.0)
    depth = 2.0 * market * float(gas[0]) * r / (dp * dp)
    lot = lot_share * depth * dp / market

    def run(fast: bool) -> tuple[object, ...]:
        keepers = Keepers(keepers_config)
        clipper = Clipper(
            ClipperConfig(curve="linear", tau_s=1_000.0, buf=1.1), dust=0.0, chop=1.13
        )
        clipper.fast = fast
        ctx = StepContext(
            ts_ns=0, block=10, feed_price=market, market_price=market, gas_price_gwei=1.0,
            gas_cost=gas, depth=depth, native_price=2_000.0,
        )  # fmt: skip
        vow, log, sales = Vow(VowConfig()), ActionLog(), SaleLog()
        clipper.kick(vault=0, tab=1e12, lot=lot, due=1e12, ctx=ctx)
        t_s = 1_000.0 * (1.0 - (market - dp) / (market * 1.1))
        sold = clipper.run(ctx._replace(ts_ns=round(t_s * S), block=20), keepers, vow, log, sales)
        return sold, keepers.capital.tolist(), [vars(s) for s in clipper.sales]

    fast, slow = run(True), run(False)
    assert fast == slow


def test_the_twin_walks_past_a_reached_hole() -> None:
    """The fast walk returns at once when ``Hole``/``hole`` is reached and every unsafe vault
    is stamped (§M9: every bark refused); the twin must see such steps, with vaults still
    unsafe at the OSM price."""
    hole = 3e4
    fast, slow = _pair(11, "stairstep", 3e4, hole, 20.0, 600.0, 0.4)
    price, reached = 2_000.0, 0
    for k in range(1, 120):
        price *= 0.96 if k < 10 else 1.0
        prices = {"ETH": PriceInputs(price)}
        before = hole - fast.clipper.dirt
        assert fast.step(prices, ts_ns=k * 45 * S) == slow.step(prices, ts_ns=k * 45 * S)
        if before <= 0.0 and fast._highest_trigger() > fast.osm_price:
            reached += 1
    assert reached > 5
    assert fast.summary() == slow.summary()
    assert fast.summary()["auctions"] >= 2
    assert fast.journal().to_frame().equals(slow.journal().to_frame())
    np.testing.assert_array_equal(fast._unsafe_block, slow._unsafe_block)


def test_a_batch_of_rows_books_as_its_rows_one_by_one() -> None:
    """``ActionLog.add_rows`` and ``SaleLog.add_rows`` between rows added one at a time: the
    same journal (texts included) and sale log as adding every row in turn."""
    from deleverage.engine.events import Journal
    from deleverage.protocols.maker.actions import MakerAction

    rows = [(MakerAction.TAKE, 3, -1.5, 980.25, 7, 1, 1470.375), (MakerAction.REDO, 4, 0.0,
            2_200.0, 8, 0, 312.5), (MakerAction.TAKE, 4, -0.1, 2_100.0, 8, 2, 210.0)]  # fmt: skip
    one, batch = (ActionLog(), SaleLog()), (ActionLog(), SaleLog())
    for log, sales in (one, batch):
        log.add(MakerAction.BARK, vault=9, size=-2.0, price=1_900.0, auction=9, keeper=0)
        sales.add(ts_ns=5, auction=1, vault=2, keeper=0, collateral=1.0, dai=2.0, market_price=3.0)
    for action, vault, size, price, auction, keeper, x in rows:
        detail = {"owe": x} if action == MakerAction.TAKE else {"coin": x}
        one[0].add(action, vault=vault, size=size, price=price, auction=auction, keeper=keeper,
                   **detail)  # fmt: skip
        if action == MakerAction.TAKE:
            one[1].add(ts_ns=7, auction=auction, vault=vault, keeper=keeper, collateral=-size,
                       dai=x, market_price=2_000.0)  # fmt: skip
    batch[0].add_rows(
        [(r[1], r[2], r[3], 0.0, 0.0, int(r[0])) for r in rows],
        [
            {"action": r[0].name.lower(), "auction": r[4], "keeper": r[5],
             ("owe" if r[0] == MakerAction.TAKE else "coin"): r[6]}
            for r in rows
        ],
    )  # fmt: skip
    batch[1].add_rows(
        [(7, r[4], r[1], r[5], -r[2], r[6], 2_000.0) for r in rows if r[0] == MakerAction.TAKE]
    )
    for log, sales in (one, batch):
        log.add(MakerAction.FLOP_KICK, dai=5.0, mkr=1.0)
        sales.add(ts_ns=8, auction=6, vault=1, keeper=1, collateral=4.0, dai=5.0, market_price=6.0)
    journals = []
    for log, _ in (one, batch):
        journal = Journal()
        log.flush(journal, 10)
        journals.append(journal.to_frame())
    assert journals[0].equals(journals[1])
    assert len(journals[0]) == 5
    assert len(one[1]) == len(batch[1]) == 4
    assert one[1].frame().equals(batch[1].frame())
