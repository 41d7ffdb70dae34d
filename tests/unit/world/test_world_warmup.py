"""The install's world warm-up (``python -m deleverage.world.warmup``) runs every venue kind's
busy path: each of its five venues liquidates during the crash, so the kernels a world's
crash calls (books, pool ADL, barks and sales, Aave's plans) and the world's quiet stretches
were compiled and cached before a user's first world run."""

from __future__ import annotations

import pytest

from deleverage.world.warmup import warm_up_world, warm_up_world_scenario


@pytest.mark.slow
def test_every_venue_of_the_warm_up_world_liquidates() -> None:
    liquidations = warm_up_world()
    kinds = {v.name: v.kind for v in warm_up_world_scenario().venues}
    assert set(kinds.values()) == {"perp", "gmx", "maker", "aave"}
    assert set(liquidations) == set(kinds)
    assert all(count > 0 for count in liquidations.values()), liquidations
