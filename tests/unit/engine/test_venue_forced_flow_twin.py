"""The perp venue's forced flow of a step (``venue.forced_flow_nb``, one compiled pass over
the step's journal rows) against the NumPy expression it replaced (masks, ``np.where`` and
``np.bincount``): the same per-market sums to the bit on random rows (every kind, fill reason,
market and buyer mix, no market too), and on a real venue's crash steps read from the journal."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange
from deleverage.engine.events import NUMPY_DTYPES, EventKind, FillReason
from deleverage.engine.venue import PerpVenue, forced_flow_nb
from deleverage.sim.population import PopulationSpec, generate_population
from deleverage.venues import preset
from deleverage.venues.protocol import PriceInputs

_SYSTEM = (3, 5, 7)  # liquidity, liquidator and backstop accounts of the random rows
_FORCED = (int(FillReason.LIQUIDATION), int(FillReason.LIQUIDATOR_TAKEOVER),
           int(FillReason.BACKSTOP))  # fmt: skip
_KINDS = (int(EventKind.FILL), int(EventKind.ADL_ROUND), int(EventKind.MARK_PRICE))


def _reference(
    rows: dict[str, npt.NDArray[np.generic]], system: tuple[int, int, int]
) -> npt.NDArray[np.float64]:
    """The expression ``PerpVenue._journal_since`` evaluated before the kernel."""
    kind, code = rows["kind"], rows["code"]
    forced = (kind == int(EventKind.FILL)) & (
        (code == _FORCED[0]) | (code == _FORCED[1]) | (code == _FORCED[2])
    )
    if not forced.any():
        return np.zeros(0)
    market = rows["market"][forced].astype(np.int64)
    buyer = rows["account"][forced]
    size = rows["size"][forced]
    is_system = (buyer == system[0]) | (buyer == system[1]) | (buyer == system[2])
    signed = np.where(is_system, -size, size)
    valid = market >= 0
    return np.bincount(market[valid], weights=signed[valid])


def _flow(rows: dict[str, npt.NDArray[np.generic]], system: tuple[int, int, int]) -> np.ndarray:
    return forced_flow_nb(
        rows["kind"], rows["code"], rows["market"], rows["account"], rows["size"], *system
    )


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_forced_flow_equals_the_numpy_expression_on_random_rows(data: st.DataObject) -> None:
    # Arrange: rows of the journal's dtypes, any mix of kinds, reasons, markets and buyers
    n = data.draw(st.integers(0, 60))
    ints = st.lists(st.integers(0, 2**31), min_size=n, max_size=n)
    pick = np.array(data.draw(ints), dtype=np.int64)
    sizes = data.draw(st.lists(st.floats(1e-9, 1e4, allow_nan=False), min_size=n, max_size=n))
    rows = {
        "kind": np.array([_KINDS[p % 3] for p in pick], dtype=NUMPY_DTYPES["kind"]),
        "code": np.array(
            [int(list(FillReason)[p % len(FillReason)]) for p in pick // 3],
            dtype=NUMPY_DTYPES["code"],
        ),
        "market": np.array((pick // 7) % 5 - 1, dtype=NUMPY_DTYPES["market"]),
        "account": np.array((pick // 11) % 9, dtype=NUMPY_DTYPES["account"]),
        "size": np.array(sizes, dtype=NUMPY_DTYPES["size"]),
    }
    # Act
    got = _flow(rows, _SYSTEM)
    # Assert: the same sums, bit for bit, and the same length (markets with a forced fill)
    want = _reference(rows, _SYSTEM)
    assert got.dtype == np.float64
    assert got.tobytes() == want.tobytes()


def test_forced_flow_equals_the_numpy_expression_on_a_venues_crash() -> None:
    # Arrange: a perp venue with a leveraged book, marked down step by step
    spec = preset("binance", "BTC")
    ex = Exchange(seed=3)
    ex.list_market(spec, ts_ns=0)
    ex.set_mark(0, 2_000.0, ts_ns=0)
    ex.deposit(ex.insurance_account, 1e5, ts_ns=0)
    pop = generate_population(
        PopulationSpec(n_positions=2_000, leverage_median=25.0, isolated_fraction=0.7),
        spec, reference_price=2_000.0, rng=np.random.default_rng(3),
    )  # fmt: skip
    pop.load_into(ex, 0, ts_ns=0)
    venue = PerpVenue(ex, name="perp", assets={"ETH": 0})
    system = (ex.liquidity_account, ex.liquidator_account, ex.backstop_account)
    columns = ("kind", "code", "market", "account", "size")
    forced_steps = 0
    for k in range(1, 40):
        first = len(ex.journal)
        # Act: each step's forced flow, then its rows read back
        step = venue.step({"ETH": PriceInputs(2_000.0 * (1.0 - 0.004 * k))}, ts_ns=k * 10**9)
        rows = ex.journal.arrays_since(first, columns)
        # Assert: the kernel's sums are the expression's, and the step reported them
        got, want = _flow(rows, system), _reference(rows, system)
        assert got.tobytes() == want.tobytes()
        if step.liquidations:
            forced_steps += 1
            assert step.forced_flow["ETH"] == (float(want[0]) if len(want) else 0.0)
    assert forced_steps > 3
