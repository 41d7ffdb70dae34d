"""The order in which a world asks its venues for quiet steps (``world/quiet.py``): the venue
whose count bound the last try first, then the world's order; it depends on the results only,
so the tries each venue stopped are the same from run to run (the stretches always were)."""

from __future__ import annotations

from deleverage.world.build import build_world
from deleverage.world.warmup import warm_up_world_scenario


def test_the_tries_each_venue_stopped_repeat_from_run_to_run() -> None:
    runs = []
    for _ in range(2):
        world = build_world(warm_up_world_scenario(2_000, 3_600.0))
        result = world.run()
        quiet = world.quiet
        runs.append((result.result_hash, quiet.skipped, quiet.stretches, dict(quiet.blocked)))
    assert runs[0] == runs[1]
    assert runs[0][2] > 0
    assert set(runs[0][3]) - {"books", "layers", "wallets"}  # venues stopped some tries


def test_the_venue_that_bound_a_try_is_asked_first() -> None:
    world = build_world(warm_up_world_scenario(2_000, 3_600.0))
    quiet = world.quiet
    names = tuple(world.entries)
    assert quiet._order == names
    world.run()
    first = quiet._order[0]
    assert sorted(quiet._order) == sorted(names)
    assert quiet._order == (first, *(n for n in names if n != first))
