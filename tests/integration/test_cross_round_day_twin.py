"""Twin test of cross rounds on benchmarks/cascade_day.py's cross day (issue #20): three
markets on Binance's tiers and rules (tier-down liquidation on a book, ADL with the fund's
takeover cap), a 7% crash, with cross rounds in columns (engine/risk/cross_round.py) and with
the per-account path alone: the same journal, per-step frame and result hash. The fast run
also checks every bounded cross scan against the full pass (``check_invariants``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from deleverage.engine.events import EventKind
from deleverage.sim.runner import Simulation


def test_cross_day_identical_with_cross_rounds() -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cascade_day import cross_scenario  # type: ignore[import-not-found]

    scenario = cross_scenario(4_000, 3_600.0)
    fast = Simulation(scenario, check_invariants=True)
    slow = Simulation(scenario)
    slow.ex.risk.cross_rounds = False
    a, b = fast.run(), slow.run()
    ja, jb = a.journal.to_arrow(), b.journal.to_arrow()
    assert ja.num_rows == jb.num_rows
    assert ja.equals(jb), "journals differ"
    assert a.steps.equals(b.steps), "per-step frames differ"
    assert a.result_hash == b.result_hash
    assert np.array_equal(a.final_equity, b.final_equity)  # type: ignore[arg-type]
    assert fast.ex.state_hash() == slow.ex.state_hash()
    kinds = ja.column("kind").to_numpy()
    assert (kinds == int(EventKind.LIQUIDATION)).sum() >= 200  # the crash liquidates
