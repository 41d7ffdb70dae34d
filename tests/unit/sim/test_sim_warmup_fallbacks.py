"""The install's warm-up compiles the kernels a 10^6-position crash day reaches but its small
runs do not (``deleverage.sim.warmup._warm_up_fallbacks``), for the argument types the engine
passes them: C-contiguous arrays and three-market tuples. A kernel compiled there for other
types (a strided view, another tuple length) would compile again on a user's first large day.
The types below are those a numba dispatcher spy recorded on the isolated and the cross day of
benchmarks/cascade_day.py (HISTORY.md, "Speed round 9: merged, and what was not")."""

from __future__ import annotations

from typing import Any

from numba import types

from deleverage.engine.cross_kernels import anchor_nb
from deleverage.engine.kernels import plan_isolated_liquidations_nb
from deleverage.engine.risk.step_kernels import close_sizes_nb, isolated_below_among_nb
from deleverage.sim.warmup import _warm_up_fallbacks

F = types.Array(types.float64, 1, "C")
F2 = types.Array(types.float64, 2, "C")
N = types.Array(types.int64, 1, "C")
B = types.Array(types.bool_, 1, "C")
I8 = types.Array(types.int8, 1, "C")
I8_2 = types.Array(types.int8, 2, "C")
f, b, i = types.float64, types.boolean, types.int64
F3 = types.UniTuple(F, 3)  # type: ignore[no-untyped-call]


def test_the_fallbacks_compile_the_engines_argument_types() -> None:
    _warm_up_fallbacks()
    expected: dict[Any, tuple[Any, ...]] = {
        isolated_below_among_nb: (N, B, F, F, F, I8, I8, f, F, F, F, f),
        close_sizes_nb: (F, F, F, f, F, F, f, b, b, b, f, f, f),
        plan_isolated_liquidations_nb: (F, F, F, F, *[f] * 7, b, *[F] * 6, B, f, f, b, f),
        anchor_nb: (N, F2, F2, I8_2, F, F, F3, F3, F3, F, f, f, i),
    }
    for kernel, signature in expected.items():
        assert signature in kernel.signatures, (kernel.py_func.__name__, kernel.signatures)


def test_the_adl_warm_up_reaches_adl_through_the_cells() -> None:
    # Arrange: the indexed queue's kernels and the batch path's ADL matching
    from deleverage.engine import adl_index
    from deleverage.engine.risk import adl_batch_kernels, adl_queue
    from deleverage.sim.warmup import warm_up_adl_index

    # Act
    rounds = warm_up_adl_index()

    # Assert: ADL ran, and from the cells (each kernel called, so cached at install)
    assert rounds > 0
    for kernel in (
        adl_index.build_side_nb, adl_index.select_top_nb, adl_index.cell_bounds_nb,
        adl_index.dirty_scores_nb, adl_index.sampled_candidates_nb,
        adl_index.dense_from_cells_nb, adl_queue.capacity_live_nb,
        adl_batch_kernels.capped_prices_nb, adl_batch_kernels.match_needs_nb,
    ):  # fmt: skip
        assert kernel.signatures, kernel.py_func.__name__
