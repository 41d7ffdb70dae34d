"""What a world run produced: per-step frames per asset and per venue, the rounds that did
something, and the contagion matrices (who caused whose liquidations, by channel).

:class:`WorldRecorder` fills arrays while the world steps (no per-position work: it reads the
venues' :class:`~deleverage.venues.protocol.VenueStep` totals); :class:`WorldResult` holds the
frames, a summary per venue and for the world, and :attr:`WorldResult.result_hash`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.venues.protocol import VenueStep
from deleverage.world.hooks import RoundView

if TYPE_CHECKING:
    from deleverage.world.core import World

__all__ = ["ASSET_COLUMNS", "VENUE_COLUMNS", "WorldRecorder", "WorldResult"]

FloatArray = npt.NDArray[np.float64]

#: Columns of :attr:`WorldResult.assets` (one row per step and asset).
ASSET_COLUMNS = (
    "step",  # step index k
    "ts_ns",  # ns since the epoch
    "asset",
    "exogenous",  # X, quote/base
    "shared",  # P = X (1 + D) after the step, quote/base
    "dislocation",  # D
    "forced_flow",  # signed base flow that reached the shared book in the step
)
#: Columns of :attr:`WorldResult.venues` (one row per step and venue).
VENUE_COLUMNS = (
    "step",
    "ts_ns",
    "venue",
    "liquidations",  # in the step (all rounds)
    "liquidated_notional",  # quote
    "forced_flow_notional",  # |forced flow| x shared price, summed over assets, quote
    "rounds",  # rounds the step ran
    "fund_balance",  # the venue's insurance fund after the step, quote
    "insurance_paid",  # cumulative, quote
    "backstop_loss",
    "adl_loss",
    "socialized_loss",
    "bad_debt",
    "absorbed",  # cumulative deficit absorbed by the world's risk layers, quote
)
_LINES = ("fund_balance", "insurance_paid", "backstop_loss", "adl_loss", "socialized_loss",
          "bad_debt")  # fmt: skip


class WorldRecorder:
    """Per-step arrays of a running world (see the module docstring)."""

    def __init__(self, world: World) -> None:
        self.world = world
        n = world.n_steps + 1
        self.assets = tuple(world.markets)
        self.venues = tuple(world.entries)
        n_a, n_v, n_s = len(self.assets), len(self.venues), len(world.sources)
        self.a = {name: np.zeros((n, n_a)) for name in ("exogenous", "shared", "dislocation",
                                                          "forced_flow")}  # fmt: skip
        self.v = {name: np.zeros((n, n_v)) for name in VENUE_COLUMNS[3:]}
        for i, market in enumerate(world.markets.values()):  # the path, known ahead
            self.a["exogenous"][:, i] = market.exogenous
        self.ts = np.zeros(n, dtype=np.int64)
        self.contagion = {
            channel: (np.zeros((n_s, n_v)), np.zeros((n_s, n_v)))
            for channel in ("prices", "traders")
        }
        self.rounds: list[tuple[Any, ...]] = []
        self._asset_index = {a: i for i, a in enumerate(self.assets)}
        self._venue_index = {v: i for i, v in enumerate(self.venues)}
        # The step's venue rows as Python lists (cheap to update), written into the
        # preallocated array at the end of each step.
        width = len(VENUE_COLUMNS) - 3
        self._acc = [0.0] * (n_v * width)  # venue j's row at [j * width, (j + 1) * width)
        self._width = width
        self._rows = np.zeros((n, n_v * width))
        self._seen: list[object] = [None] * n_v  # the solvency lines last written per venue
        self._markets = list(world.markets.values())
        self._offsets = [j * width for j in range(n_v)]  # venue j's row starts here in _acc
        self._venue_rows = [(j, j * width, name) for j, name in enumerate(self.venues)]
        # The step row written last by end_step and its step (a step whose row is the same
        # copies it inside the array instead of converting the floats again).
        self._last_acc: list[float] = []
        self._last_k = -2

    def add_flow(self, asset: str, flows: dict[str, float]) -> None:
        k = self.world.step_index
        self.a["forced_flow"][k, self._asset_index[asset]] += math.fsum(flows.values())

    def add_attribution(
        self, channel: str, venue: str, weights: FloatArray, count: float, notional: float
    ) -> None:
        counts, notionals = self.contagion[channel]
        j = self._venue_index[venue]
        counts[:, j] += weights * count
        notionals[:, j] += weights * notional

    def add_trader_attribution(self, venue: str, counts: FloatArray, notional: FloatArray) -> None:
        c, n = self.contagion["traders"]
        j = self._venue_index[venue]
        c[:, j] += counts
        n[:, j] += notional

    def end_round(self, view: RoundView) -> None:
        """A round in which some venue liquidated or forced flow (the world calls only for
        those): its rows in :attr:`rounds` and the step's totals."""
        acc = self._acc
        prices = view.prices
        for at, (name, step) in zip(self._offsets, view.steps.items(), strict=True):
            flow = 0.0
            for asset, f in step.forced_flow.items():
                if f:
                    flow += abs(f) * prices[asset]
            if step.liquidations or flow:
                acc[at] += step.liquidations
                acc[at + 1] += step.liquidated_notional
                acc[at + 2] += flow
                self.rounds.append(
                    (view.step, view.round, view.round_in_step, view.ts_ns, name,
                     int(step.liquidations), float(step.liquidated_notional), flow)
                )  # fmt: skip

    def quiet_steps(
        self,
        k: int,
        ts: npt.NDArray[np.int64],
        shared: FloatArray,
        dislocation: FloatArray,
        lines: Mapping[str, tuple[float, ...]],
    ) -> None:
        """The rows of a quiet stretch from step ``k`` (``world/quiet.py``): one round a step,
        nothing liquidated or forced, each venue's solvency ``lines``; the same values the
        step loop writes."""
        n = len(ts)
        self.ts[k : k + n] = ts
        a = self.a
        a["shared"][k : k + n] = shared
        a["dislocation"][k : k + n] = dislocation
        acc, width, seen = self._acc, self._width, self._seen
        absorbed = self.world.absorbed
        for j, name in enumerate(self.venues):
            at = j * width
            acc[at] = acc[at + 1] = acc[at + 2] = 0.0
            acc[at + 3] = 1.0
            value = lines[name]
            if value is not seen[j]:
                acc[at + 4 : at + 10] = value
                seen[j] = value
            acc[at + 10] = absorbed[name]
        self._rows[k : k + n] = acc

    def end_step(self, k: int, ts: int, rounds: int, steps: Mapping[str, VenueStep]) -> None:
        """The step's row: ``rounds`` rounds, each venue's solvency lines after its last step
        (``steps``: venue -> the last step it took) and the deficits absorbed."""
        self.ts[k] = ts
        a = self.a
        shared, dislocation = a["shared"], a["dislocation"]
        for i, market in enumerate(self._markets):
            shared[k, i] = market.price
            dislocation[k, i] = market.dislocation
        acc, seen = self._acc, self._seen
        absorbed = self.world.absorbed
        offsets = self._offsets
        for j, at, name in self._venue_rows:
            acc[at + 3] = rounds
            lines = steps[name].solvency
            if lines is not seen[j]:  # the same object: the same values (PerpVenue reuses it)
                acc[at + 4 : at + 10] = seen[j] = lines
            acc[at + 10] = absorbed[name]
        rows = self._rows
        if k == self._last_k + 1 and acc == self._last_acc:
            rows[k] = rows[k - 1]  # the same floats (list equality: equal values, or the same
            # object for a NaN): copied within the array
        else:
            rows[k] = acc
            self._last_acc = acc[:]
        self._last_k = k
        for at in offsets:
            acc[at] = acc[at + 1] = acc[at + 2] = 0.0

    def _arrays(self) -> None:
        """Move the venue rows into the column arrays (once, at the end)."""
        rows = self._rows.reshape(len(self._rows), len(self.venues), self._width)
        for i, name in enumerate(VENUE_COLUMNS[3:]):
            self.v[name][:] = rows[:, :, i]

    def result(self, *, wall_s: float) -> WorldResult:
        self._arrays()
        n = self.world.n_steps + 1
        steps = np.arange(n)
        assets = pd.DataFrame(
            {
                "step": np.repeat(steps, len(self.assets)),
                "ts_ns": np.repeat(self.ts, len(self.assets)),
                "asset": pd.Categorical(np.tile(self.assets, n), categories=list(self.assets)),
                **{name: arr.reshape(-1) for name, arr in self.a.items()},
            }
        )
        venues = pd.DataFrame(
            {
                "step": np.repeat(steps, len(self.venues)),
                "ts_ns": np.repeat(self.ts, len(self.venues)),
                "venue": pd.Categorical(np.tile(self.venues, n), categories=list(self.venues)),
                **{name: arr.reshape(-1) for name, arr in self.v.items()},
            }
        )
        for name in ("liquidations", "rounds"):
            venues[name] = venues[name].astype(np.int64)
        rounds = pd.DataFrame(
            self.rounds,
            columns=["step", "round", "round_in_step", "ts_ns", "venue", "liquidations",
                     "liquidated_notional", "forced_flow_notional"],
        )  # fmt: skip
        contagion = []
        for channel, (counts, notionals) in self.contagion.items():
            for i, source in enumerate(self.world.sources):
                for j, target in enumerate(self.venues):
                    contagion.append((channel, source, target, counts[i, j], notionals[i, j]))
        frame = pd.DataFrame(
            contagion, columns=["channel", "source", "target", "liquidations", "notional"]
        )
        return WorldResult(
            assets=assets, venues=venues, rounds=rounds, contagion=frame, wall_s=wall_s,
            kinds={n: e.kind for n, e in self.world.entries.items()},
        )  # fmt: skip


@dataclass
class WorldResult:
    """A world run's frames (:data:`ASSET_COLUMNS`, :data:`VENUE_COLUMNS`), the rounds that
    liquidated or forced flow, and the contagion frame (channel, source, target, liquidations,
    notional: what ``source`` caused on ``target``)."""

    assets: pd.DataFrame
    venues: pd.DataFrame
    rounds: pd.DataFrame
    contagion: pd.DataFrame
    wall_s: float = 0.0
    kinds: dict[str, str] = field(default_factory=dict)
    #: Anything a caller attaches (the scenario, liquidation levels at the end, ...).
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def result_hash(self) -> str:
        """SHA-256 over the frames' values (not wall time)."""
        h = hashlib.sha256()
        for frame in (self.assets, self.venues, self.rounds, self.contagion):
            h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        return h.hexdigest()

    def contagion_matrix(
        self, channel: str = "all", *, value: str = "liquidations"
    ) -> pd.DataFrame:
        """Source (rows: ``market`` and each venue) x target venue (columns)."""
        frame = (
            self.contagion
            if channel == "all"
            else self.contagion[self.contagion["channel"] == channel]
        )
        return frame.pivot_table(
            index="source", columns="target", values=value, aggfunc="sum", sort=False
        )

    def venue_summary(self) -> pd.DataFrame:
        """Per venue: liquidations, notional, loss lines at the end, liquidations caused by
        other venues (both channels) and by the market."""
        last = self.venues.groupby("venue", observed=True).tail(1).set_index("venue")
        totals = self.venues.groupby("venue", observed=True)[
            ["liquidations", "liquidated_notional", "forced_flow_notional"]
        ].sum()
        out = totals.join(last[[*list(_LINES), "absorbed"]])
        matrix = self.contagion_matrix()
        caused_by_others = []
        caused_by_market = []
        for venue in out.index:
            column = matrix[venue] if venue in matrix.columns else pd.Series(dtype=float)
            others = [s for s in column.index if s not in ("market", venue)]
            caused_by_others.append(float(column.loc[others].sum()))
            caused_by_market.append(float(column.get("market", 0.0)))
        out["from_other_venues"] = caused_by_others
        out["from_market"] = caused_by_market
        out.insert(0, "kind", [self.kinds.get(str(v), "") for v in out.index])
        return out

    def summary(self) -> dict[str, float]:
        """World totals."""
        v = self.venue_summary()
        contagion = self.contagion
        cross = contagion[
            (contagion["source"] != "market") & (contagion["source"] != contagion["target"])
        ]
        return {
            "steps": float(self.assets["step"].max()),
            "venues": float(len(v)),
            "liquidations": float(v["liquidations"].sum()),
            "liquidated_notional": float(v["liquidated_notional"].sum()),
            "insurance_paid": float(v["insurance_paid"].sum()),
            "uncovered": float((v["adl_loss"] + v["socialized_loss"] + v["bad_debt"]).sum()),
            "bad_debt": float(v["bad_debt"].sum()),
            "absorbed": float(v["absorbed"].sum()),
            "cross_venue_liquidations": float(cross["liquidations"].sum()),
            "cross_venue_liquidations_prices": float(
                cross.loc[cross["channel"] == "prices", "liquidations"].sum()
            ),
            "cross_venue_liquidations_traders": float(
                cross.loc[cross["channel"] == "traders", "liquidations"].sum()
            ),
            "max_shared_drawdown": _max_drop(self.assets, "shared"),
            "max_exogenous_drawdown": _max_drop(self.assets, "exogenous"),
        }

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write the frames (Parquet) and ``summary.json``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            name: out / f"{name}.parquet" for name in ("assets", "venues", "rounds", "contagion")
        }
        for name, path in paths.items():
            getattr(self, name).to_parquet(path, index=False)
        paths["summary"] = out / "summary.json"
        summary = {**self.summary(), "result_hash": self.result_hash}
        paths["summary"].write_text(json.dumps(summary, indent=2, default=float))
        return paths


def _max_drop(frame: pd.DataFrame, column: str) -> float:
    worst = 0.0
    for _, group in frame.groupby("asset", observed=True):
        v = group[column].to_numpy()
        worst = max(worst, float(np.max(1.0 - v / np.maximum.accumulate(v))))
    return worst
