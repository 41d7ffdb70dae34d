"""Twin test of world_day's world with OKX's isolated liquidations on the drawdown-trigger
batch path (engine/risk/ordered_batch.py) and forced onto the per-account path: the same
result hash, and OKX's journal, state and insurance-fund history bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from deleverage.engine.risk.batch import BatchStage
from deleverage.world.build import build_world
from deleverage.world.core import World
from deleverage.world.result import WorldResult

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from world_day import world_scenario  # type: ignore[import-not-found]


def _run(batch: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[World, WorldResult]:
    if not batch:
        batchable = BatchStage._batchable

        def per_account_for_okx(stage: BatchStage, m: int) -> bool:
            if stage.ex.markets[m].spec.adl.trigger_fund_drawdown is not None:
                return False
            return batchable(stage, m)

        monkeypatch.setattr(BatchStage, "_batchable", per_account_for_okx)
    world = build_world(world_scenario(20_000, 3_600.0))
    return world, world.run()


def test_okx_batch_path_leaves_the_world_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    batch_world, batch = _run(True, monkeypatch)
    reference_world, reference = _run(False, monkeypatch)

    assert batch.result_hash == reference.result_hash
    assert batch.venue_summary().loc["okx", "liquidations"] > 0  # the crash liquidates OKX
    okx_b = batch_world.venues["okx"].exchange  # type: ignore[attr-defined]
    okx_r = reference_world.venues["okx"].exchange  # type: ignore[attr-defined]
    assert okx_b.journal.to_arrow().equals(okx_r.journal.to_arrow())
    assert okx_b.state_hash() == okx_r.state_hash()
    assert okx_b.insurance_fund(0).history == okx_r.insurance_fund(0).history
