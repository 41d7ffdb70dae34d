"""The Clipper's compiled run (:mod:`deleverage.protocols.maker.clip_nb`, §M10) against the
per-sale path it replaces (``Clipper.fast = False``): one step over random running sales
(ages past ``tail`` and past the curve's table, prices above and below the market, dusty tabs,
zero lots), random keepers (capital at or below gas, latencies, minimum profits) and random
markets, depths and curves must leave the same sales, ``Dirt``, returned collateral, keeper
capital, gas, proceeds queue, Vow, journal rows and sale log, and return the same collateral
sold; the dss curve values read through the run's prices."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deleverage.engine.events import Journal
from deleverage.errors import ValidationError
from deleverage.protocols.chain import gas_cost_quote
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.protocols.maker.actions import ActionLog, SaleLog, StepContext
from deleverage.protocols.maker.clip_nb import CURVE_CODES
from deleverage.protocols.maker.clipper import Clipper
from deleverage.protocols.maker.config import ClipperConfig, VowConfig
from deleverage.protocols.maker.vow import Vow

S = 1_000_000_000
NOW = 50_000 * S

_sale = st.tuples(
    st.one_of(st.floats(100.0, 4e3), st.sampled_from([2_000.0, 1e-3])),  # feed at kick
    st.one_of(st.integers(0, 20_000).map(lambda s: s * S), st.integers(0, 20_000 * S)),  # age
    st.one_of(st.just(0.0), st.floats(1e-6, 1e3)),  # lot
    st.one_of(st.sampled_from([0.0, 22.6, 30.0]), st.floats(0.0, 1e7)),  # tab
    st.integers(0, 8),  # blocks since first seen
)
_keeper = st.builds(
    KeeperSpec,
    capital=st.one_of(st.sampled_from([0.0, 30.0, 1e9]), st.floats(0.0, 1e6)),
    latency_blocks=st.integers(0, 5),
    gas_units=st.sampled_from([150_000.0, 300_000.0]),
    min_profit=st.sampled_from([0.0, 25.0, 1e4]),
    count=st.integers(1, 3),
)


def _run(
    fast: bool, sales: list[tuple[float, int, float, float, int]], config: ClipperConfig,
    keepers: tuple[KeeperSpec, ...], feed: float, market: float, depth: float, steps: int,
    gap_s: int = 30,
) -> tuple[object, ...]:  # fmt: skip
    clipper = Clipper(config, dust=20.0, chop=1.13)
    clipper.fast = fast
    crew = Keepers(KeepersConfig(keepers=keepers, sale_delay_blocks=2))
    vow, log, sold_log, journal = Vow(VowConfig()), ActionLog(), SaleLog(), Journal()
    gas = gas_cost_quote(crew.gas_units, 30.0, 2_000.0)
    ctx = StepContext(
        ts_ns=NOW, block=1_000, feed_price=feed, market_price=market, gas_price_gwei=30.0,
        gas_cost=gas, depth=depth, native_price=2_000.0,
    )  # fmt: skip
    for k, (kick_feed, age, lot, tab, waited) in enumerate(sales):
        kick = ctx._replace(ts_ns=NOW - age, block=1_000 - waited, feed_price=kick_feed)
        clipper.kick(vault=k, tab=tab, lot=lot, due=tab / 1.13, ctx=kick)
    sold = []
    for j in range(steps):  # later steps: the arrays (and cached prices) follow the changes
        step = ctx._replace(ts_ns=NOW + j * gap_s * S, block=1_000 + 3 * j)
        sold.append(clipper.run(step, crew, vow, log, sold_log))
        log.flush(journal, step.ts_ns)
    return (
        sold, [vars(s) for s in clipper.sales], clipper.dirt, clipper.returned, clipper.redos,
        crew.capital.tolist(), crew.gas_paid.tolist(), crew.received.tolist(),
        crew.pending_proceeds, vars(vow), sold_log.frame().to_dict("list"),
        journal.to_frame().fillna(-1.0).to_dict("list"),
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    sales=st.lists(_sale, max_size=25),
    keepers=st.lists(_keeper, min_size=1, max_size=3),
    curve=st.sampled_from(list(CURVE_CODES)),
    cut=st.sampled_from([0.97, 0.99, 0.9995, 1.0]),
    step_s=st.sampled_from([1.0, 60.0, 90.0]),
    tail_s=st.sampled_from([600.0, 8400.0, 1e6]),
    cusp=st.sampled_from([0.0, 0.4, 0.9]),
    feed=st.floats(100.0, 4e3),
    market=st.floats(10.0, 4e3),
    depth=st.one_of(st.sampled_from([1.0, math.inf]), st.floats(1e-3, 1e7)),
    steps=st.integers(1, 6),
    gap_s=st.sampled_from([1, 7, 30, 61]),
)
@example(
    sales=[(2_000.0, 5 * S, 1.0, 0.0, 2), (2_000.0, 700 * S, 5.0, 5e3, 0),
           (1_000.0, 100 * S, 5.0, 5e3, 3)],
    keepers=[KeeperSpec(capital=1e9, latency_blocks=0)], curve="linear", cut=0.99,
    step_s=60.0, tail_s=600.0, cusp=0.4, feed=2_000.0, market=2_000.0, depth=math.inf, steps=2,
    gap_s=30,
)  # fmt: skip
def test_the_compiled_run_is_the_per_sale_path(
    sales: list[tuple[float, int, float, float, int]], keepers: list[KeeperSpec], curve: str,
    cut: float, step_s: float, tail_s: float, cusp: float, feed: float, market: float,
    depth: float, steps: int, gap_s: int,
) -> None:  # fmt: skip
    config = ClipperConfig(
        curve=curve, cut=cut, step_s=step_s, tail_s=tail_s, cusp=cusp, tau_s=1_800.0, buf=1.2
    )
    args = (sales, config, tuple(keepers), feed, market, depth, steps, gap_s)
    assert _run(True, *args) == _run(False, *args)


def test_the_twin_sees_redos_takes_and_ends() -> None:
    # The property above must compare runs that redo, take and end sales: a market below
    # the redone tops (the sales past tail) and a rich keeper.
    sales = [(2_000.0, age * S, 2.0, 3_000.0, 2) for age in (100, 700, 900, 200)]
    config = ClipperConfig(curve="stairstep", tail_s=600.0, buf=1.0)
    keepers = (KeeperSpec(capital=1e9, latency_blocks=0),)
    fast = _run(True, sales, config, keepers, 1_500.0, 2_000.0, 1e9, 2)
    assert fast == _run(False, sales, config, keepers, 1_500.0, 2_000.0, 1e9, 2)
    journal = fast[-1]
    assert isinstance(journal, dict)
    codes = set(journal["code"])
    assert {11, 12} <= codes  # TAKE and REDO
    assert fast[1] == []  # every sale ended


@pytest.mark.parametrize("gap_s", [1, 29, 59])
def test_a_cached_price_is_read_only_until_the_curve_steps(gap_s: int) -> None:
    # Sales at 2,000 above a 1,985 market until the stairstep's first cut (60 s: 1,980), and
    # at 2,100 (2,079 after the cut) until the tail at 90 s: the run must take from the first at
    # the cut and redo the others at the tail, not keep reading what it cached before.
    config = ClipperConfig(curve="stairstep", cut=0.99, step_s=60.0, tail_s=90.0, buf=1.0)
    keepers = (KeeperSpec(capital=1e9, latency_blocks=0, gas_units=1.0),)
    sales = [(feed, age * S, 1.0, 1e9, 1) for age in (0, 1, 30, 58, 59) for feed in (2e3, 2.1e3)]
    args = (sales, config, keepers, 2_000.0, 1_985.0, 1e12, 300 // gap_s, gap_s)
    fast = _run(True, *args)
    assert fast == _run(False, *args)
    journal = fast[-1]
    assert isinstance(journal, dict)
    assert {11, 12} <= set(journal["code"])  # takes at the cut, redos past the tail


def test_a_redo_incentive_that_is_not_finite_is_refused_after_the_sales_before_it() -> None:
    keepers = (KeeperSpec(capital=1e9, latency_blocks=0),)
    sales = [(2_000.0, 900 * S, 1.0, 3_000.0, 1), (2_000.0, 900 * S, 1.0, math.inf, 1)]
    config = ClipperConfig(tail_s=600.0)
    for fast in (True, False):
        with pytest.raises(ValidationError, match="incentive"):
            _run(fast, sales, config, keepers, 2_000.0, 2_000.0, 1e9, 1)


def test_the_run_reads_the_curves_of_dss_abaci() -> None:
    # abaci.t.sol::test_linear_decrease (tau 3600, top 1000: 900 at 360 s) and the clip.t.sol
    # stairstep (1% per second from 5: 5 x 0.99^60 at 60 s): the price a keeper's take pays.
    keepers = (KeeperSpec(capital=1e9, latency_blocks=0, gas_units=1.0),)
    for curve, feed, age, want in (("linear", 1_000.0, 360, 900.0),
                                   ("stairstep", 5.0, 60, 2.735783211953807)):  # fmt: skip
        config = ClipperConfig(curve=curve, tau_s=3_600.0, cut=0.99, step_s=1.0, buf=1.0)
        run = _run(True, [(feed, age * S, 1.0, 1e9, 1)], config, keepers, feed, 1e4, 1e12, 1)
        frame = run[-2]
        assert isinstance(frame, dict)
        assert abs(frame["price"][0] - want) < 1e-12
