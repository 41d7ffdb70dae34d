"""Twin test of a world with the engine's single-mark quiet fast path on and off (issue #20):
the same result hash, venue summary and engine journals; and the perp venues' quiet-step
solvency lines (reused while only marks moved) equal the lines computed afresh."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest

from deleverage.engine import quiet_mark
from deleverage.engine.venue import PerpVenue
from deleverage.venues.protocol import PriceInputs, VenueStep
from deleverage.world.build import build_world
from deleverage.world.core import World
from deleverage.world.result import WorldResult

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from world_day import world_scenario  # type: ignore[import-not-found]


def _checked(venue: PerpVenue, seen: list[int]) -> None:
    """Make every step of ``venue`` check its lines against :meth:`PerpVenue.solvency`."""
    step = venue.step

    def checked(prices: Mapping[str, PriceInputs], *, ts_ns: int) -> VenueStep:
        out = step(prices, ts_ns=ts_ns)
        assert out.solvency == venue.solvency()
        seen[0] += 1
        return out

    venue.step = checked  # type: ignore[method-assign]


def _run(fast: bool, monkeypatch: pytest.MonkeyPatch, *, mixed: bool) -> tuple[World, WorldResult]:
    monkeypatch.setattr(quiet_mark, "DEFAULT_ENABLED", fast)
    world = build_world(world_scenario(3_000, 1_500.0, mixed=mixed))
    # Every step through the venues: world-level stretches (tests/integration/
    # test_world_skip_twin.py) would take quiet steps without calling them.
    world.quiet.enabled = False
    seen = [0]
    for entry in world.entries.values():
        if isinstance(entry.venue, PerpVenue):
            _checked(entry.venue, seen)
    result = world.run()
    assert seen[0] > world.n_steps  # every perp venue step was checked
    return world, result


@pytest.mark.parametrize("mixed", [False, True])
def test_world_identical_with_the_quiet_mark_path(
    mixed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_world, fast = _run(True, monkeypatch, mixed=mixed)
    slow_world, slow = _run(False, monkeypatch, mixed=mixed)
    assert fast.result_hash == slow.result_hash
    pd.testing.assert_frame_equal(fast.venue_summary(), slow.venue_summary())
    assert fast.venue_summary()["liquidations"].sum() > 0  # the crash liquidates
    taken = 0
    for name, entry in fast_world.entries.items():
        if isinstance(entry.venue, PerpVenue):
            other = slow_world.entries[name].venue
            assert isinstance(other, PerpVenue)
            ja, jb = entry.venue.journal().to_arrow(), other.journal().to_arrow()
            assert ja.equals(jb), f"{name}: journals differ"
            taken += entry.venue.exchange.quiet_marks.fast
            assert other.exchange.quiet_marks.fast == 0
    assert taken > fast_world.n_steps // 2  # the fast path carried the quiet marks
