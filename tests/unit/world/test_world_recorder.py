"""The world's per-step venue rows and round rows (``WorldRecorder``: round rows only for
rounds that liquidated or forced flow, the solvency lines once per step) against a replay of
every round's view as a risk layer sees it (each round's totals added up per step, the lines
of each step's last round), on a small world of the five venue kinds through a crash with a
venue that sells without liquidating."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.venues.protocol import PriceInputs, SolvencyLines, VenueStep
from deleverage.world import RiskLayer, World, WorldVenue
from deleverage.world.build import build_world
from deleverage.world.hooks import RoundView
from deleverage.world.result import VENUE_COLUMNS
from deleverage.world.warmup import warm_up_world_scenario


class _Rounds(RiskLayer):
    """Keeps every round's view (a layer that only watches)."""

    name = "rounds"

    def __init__(self) -> None:
        self.views: list[RoundView] = []

    def on_round(self, world: World, view: RoundView) -> None:
        self.views.append(view)


class _Seller:
    """A venue that sells a little BTC every seventh step, liquidating nothing, its bad debt
    line growing each time (new lines objects)."""

    name = "seller"
    assets = ("BTC",)

    def __init__(self) -> None:
        self._steps = 0
        self._lines = SolvencyLines(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def solvency(self) -> SolvencyLines:
        return self._lines

    def step(self, prices: dict[str, PriceInputs], *, ts_ns: int) -> VenueStep:
        self._steps += 1
        flow = -0.5 if self._steps % 7 == 0 else 0.0
        if flow:
            self._lines = self._lines._replace(bad_debt=self._lines.bad_debt + 1.0)
        return VenueStep(ts_ns, 0, 0.0, {"BTC": flow}, self._lines)


def _world(n: int, duration_s: float, *, seller: bool) -> World:
    world = build_world(warm_up_world_scenario(n, duration_s))
    if not seller:
        return world
    return World(
        list(world.markets.values()), [*world.entries.values(), WorldVenue(_Seller())],
        dt_s=world.dt_s, start_ns=world.start_ns,
    )  # fmt: skip


def _replay(views: list[RoundView], n_steps: int, venues: tuple[str, ...]) -> tuple[
    dict[str, np.ndarray], list[tuple[object, ...]]
]:  # fmt: skip
    """The venue columns and round rows the views give, round by round."""
    columns = {name: np.zeros((n_steps, len(venues))) for name in VENUE_COLUMNS[3:]}
    rows = []
    for view in views:
        k = view.step
        columns["rounds"][k] += 1
        for j, (name, step) in enumerate(view.steps.items()):
            flow = 0.0
            for asset, f in step.forced_flow.items():
                if f:
                    flow += abs(f) * view.prices[asset]
            if step.liquidations or flow:
                columns["liquidations"][k, j] += step.liquidations
                columns["liquidated_notional"][k, j] += step.liquidated_notional
                columns["forced_flow_notional"][k, j] += flow
                rows.append(
                    (view.step, view.round, view.round_in_step, view.ts_ns, name,
                     int(step.liquidations), float(step.liquidated_notional), flow)
                )  # fmt: skip
            for i, line in enumerate(VENUE_COLUMNS[7:13]):
                columns[line][k, j] = step.solvency[i]
    return columns, rows


def test_the_rows_equal_a_round_by_round_replay() -> None:
    # Arrange: the warm-up's small world (a crash: liquidations, flow, several rounds a step)
    layer = _Rounds()
    world = _world(2_000, 2_400.0, seller=True)
    world.add_layer(layer)
    # Act
    result = world.run()
    # Assert: every column, and the round rows, as the replay adds them up
    venues = tuple(world.entries)
    expected, rows = _replay(layer.views, world.n_steps + 1, venues)
    assert (expected["rounds"] > 1).any()
    assert expected["liquidations"].sum() > 0
    assert expected["forced_flow_notional"].sum() > 0
    assert any(  # rounds with flow and no liquidation
        not any(s.liquidations for s in v.steps.values()) and v.steps["seller"].forced_flow["BTC"]
        for v in layer.views
    )
    frame = result.venues
    for name, column in expected.items():
        got = frame[name].to_numpy(dtype=np.float64).reshape(-1, len(venues))
        np.testing.assert_array_equal(got, column, err_msg=name)
    assert len(rows) < len(layer.views) * len(venues)  # quiet rounds leave no row
    pd.testing.assert_frame_equal(
        result.rounds, pd.DataFrame(rows, columns=result.rounds.columns), check_dtype=False
    )


def test_a_watching_layer_changes_no_result() -> None:
    # Arrange: the same world with and without a layer that only watches (with it, every
    # step runs the loop and the deficits are routed to nobody)
    plain = _world(2_000, 2_400.0, seller=False).run()
    watched = _world(2_000, 2_400.0, seller=False)
    watched.add_layer(_Rounds())
    # Act / Assert
    assert watched.run().result_hash == plain.result_hash
