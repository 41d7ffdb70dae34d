"""The batch planner's sizes to close in one compiled pass against ``_sizes_to_close``.

``batch._sizes_to_close_fast`` sends a ``tier_down`` or ``partial`` policy's sizes to
``step_kernels.close_sizes_nb``; the NumPy function stays the reference. Whatever the book
(positions of any size and sign, equity above, at or below zero, any maintenance), the policy
(down to the next or the first tier; maintenance plus a buffer or the initial rate), the tier
table, the fee and the lot, the sizes must be equal bit for bit; the kernel fed no buffer
(a fast path that forgot it) must fail the comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deleverage import MarketSpec
from deleverage.engine.risk.batch import _sizes_to_close_fast
from deleverage.engine.risk.step_kernels import close_sizes_nb
from deleverage.engine.risk.support import _sizes_to_close

TIERS = [
    [{"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01}],
    [
        {"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01},
        {"notional_floor": 10_000.0, "max_leverage": 20.0, "maintenance_rate": 0.025},
        {"notional_floor": 40_000.0, "max_leverage": 10.0, "maintenance_rate": 0.05},
    ],
    [  # Binance's first BTCUSDT tiers
        {"notional_floor": 0.0, "max_leverage": 125.0, "maintenance_rate": 0.004},
        {"notional_floor": 50_000.0, "max_leverage": 100.0, "maintenance_rate": 0.005},
        {"notional_floor": 600_000.0, "max_leverage": 75.0, "maintenance_rate": 0.0065},
    ],
]
FEES = ["none", "maintenance", "initial_and_maintenance"]


def _spec(
    target: str, buffer: float, fee: float, lot: float, tiers: int, fees: str,
    kind: str = "partial", down_to: str = "next",
) -> MarketSpec:  # fmt: skip
    policy: dict[str, Any] = {"kind": kind}
    if kind == "partial":
        policy.update(target=target, buffer=buffer)
    else:
        policy.update(tier_down_target=down_to)
    mapping: dict[str, Any] = {
        "symbol": "BTCUSDT", "lot_size": lot, "liquidation_fee_rate": fee,
        "taker_fee_rate": 0.0005, "taker_fee_in_margin": fees, "liquidation": policy,
        "tiers": TIERS[tiers],
    }  # fmt: skip
    return MarketSpec.from_mapping(mapping)


FINITE = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    size=arrays(np.float64, st.integers(0, 60), elements=st.floats(-800.0, 800.0)),
    data=st.data(),
    mark=st.floats(100.0, 200_000.0),
    target=st.sampled_from(["maintenance", "initial"]),
    buffer=st.sampled_from([0.0, 0.005, 0.02]),
    fee=st.sampled_from([0.0, 0.004, 0.0125, 0.03]),
    lot=st.sampled_from([0.001, 0.01, 1.0]),
    tiers=st.integers(0, 2),
    fees=st.sampled_from(FEES),
    kind=st.sampled_from(["partial", "tier_down"]),
    down_to=st.sampled_from(["next", "first"]),
)
def test_sizes_to_close_match_the_numpy_reference(
    size: np.ndarray, data: st.DataObject, mark: float, target: str, buffer: float, fee: float,
    lot: float, tiers: int, fees: str, kind: str, down_to: str,
) -> None:  # fmt: skip
    n = len(size)
    equity = data.draw(arrays(np.float64, n, elements=FINITE))
    maint = data.draw(arrays(np.float64, n, elements=st.floats(0.0, 1e5)))
    spec = _spec(target, buffer, fee, lot, tiers, fees, kind, down_to)
    fast = _sizes_to_close_fast(size, equity, maint, mark, spec, spec.tier_arrays)
    reference = _sizes_to_close(size, equity, maint, mark, spec)
    assert fast.tobytes() == reference.tobytes()


def test_a_kernel_that_drops_the_buffer_fails() -> None:
    # The same kernel fed no buffer (a fast path that forgot it) must differ from the
    # reference where the buffer sets the size; fed the buffer, it must not.
    spec = _spec("maintenance", 0.02, 0.0125, 0.001, 1, "none")
    t = spec.tier_arrays
    size = np.array([5.0, -3.0, 12.0])
    equity, maint = np.array([45.0, 30.0, 150.0]), np.array([50.0, 40.0, 160.0])
    reference = _sizes_to_close(size, equity, maint, 1_000.0, spec)
    args = (size, equity, maint, 1_000.0, t.floor, t.mmr, 0.0, False, False, False)
    right = close_sizes_nb(*args, 0.02, 0.0125, 0.001)
    wrong = close_sizes_nb(*args, 0.0, 0.0125, 0.001)
    assert right.tobytes() == reference.tobytes()
    assert wrong.tobytes() != reference.tobytes()


@settings(max_examples=200, deadline=None)
@given(
    size=arrays(
        np.float64, st.integers(0, 60),
        elements=st.floats(-800.0, 800.0) | st.sampled_from([0.0, -0.0, np.nan, np.inf]),
    ),
    data=st.data(),
)  # fmt: skip
def test_a_full_policy_closes_the_whole_size_as_the_reference(
    size: np.ndarray, data: st.DataObject
) -> None:
    # A full close takes |size| without the reference's where/minimum: the same bits for any
    # size (signed zeros, NaN, infinity) and any equity (above, at or below zero, NaN).
    n = len(size)
    equity = data.draw(arrays(np.float64, n, elements=FINITE | st.sampled_from([0.0, np.nan])))
    maint = data.draw(arrays(np.float64, n, elements=st.floats(0.0, 1e5)))
    spec = MarketSpec.from_mapping(
        {"symbol": "BTCUSDT", "liquidation": {"kind": "full"}, "tiers": TIERS[1]}
    )
    fast = _sizes_to_close_fast(size, equity, maint, 1_000.0, spec, spec.tier_arrays)
    reference = _sizes_to_close(size, equity, maint, 1_000.0, spec)
    assert fast.tobytes() == reference.tobytes()


def test_a_full_close_that_keeps_the_sign_fails() -> None:
    # A fast path returning the signed size (not its magnitude) must fail the comparison.
    spec = MarketSpec.from_mapping(
        {"symbol": "BTCUSDT", "liquidation": {"kind": "full"}, "tiers": TIERS[1]}
    )
    size, equity, maint = np.array([2.0, -3.0]), np.array([1.0, -1.0]), np.array([5.0, 5.0])
    reference = _sizes_to_close(size, equity, maint, 1_000.0, spec)
    assert size.tobytes() != reference.tobytes()
    assert _sizes_to_close_fast(size, equity, maint, 1_000.0, spec, None).tobytes() == (
        reference.tobytes()
    )
