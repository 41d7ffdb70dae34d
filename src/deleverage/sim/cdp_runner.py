"""CDP scenarios (``kind = "cdp"``): one price path, one vault book, several liquidation designs.

A CDP scenario replays a collateral price path (a bundled or user OHLC file turned into a path
by :func:`deleverage.prices.historical.to_path`) through a Maker venue
(:mod:`deleverage.protocols.maker`) once per liquidation design (``"english"``: Cat and
Flipper, Liquidations 1.2; ``"dutch"``: Dog and Clipper, 2.0), each run with the same vault
population, the same keepers and a fresh chain from the same seed, so the designs differ in
nothing else. The oracle is the path itself, delayed by the OSM; keepers sell at the path.

:class:`CdpScenario` is the TOML document (pydantic, unknown keys refused);
:func:`load_cdp_scenario` reads one (a path or a built-in name), :func:`cdp_scenario_problems`
lists every problem at once (what ``deleverage validate`` prints), :func:`run_cdp` runs it and
returns a :class:`CdpResult` (per-step frame, per-sale frame, summaries, journals), which
:meth:`CdpResult.save` writes as Parquet and JSON. The built-in ``black-thursday`` scenario is
one of these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
import pandas as pd
import pydantic
from pydantic import Field, model_validator

from deleverage._files import read_text
from deleverage.engine.events import Journal
from deleverage.errors import ConfigError, DeleverageError
from deleverage.prices.historical import OhlcvBars, bundled_crash, list_bundled, load_ohlcv, to_path
from deleverage.protocols.chain import Chain
from deleverage.protocols.maker import MakerConfig, MakerPopulationSpec, build_maker
from deleverage.protocols.maker.venue import MakerVenue
from deleverage.sim.builtin import builtin_names, builtin_path
from deleverage.sim.problems import validation_problems
from deleverage.spec import Slug, _Frozen, collect_problems
from deleverage.venues.protocol import PriceInputs

__all__ = [
    "CDP_FILES",
    "CDP_STEP_COLUMNS",
    "CdpPopulation",
    "CdpPrices",
    "CdpResult",
    "CdpScenario",
    "cdp_scenario_problems",
    "is_cdp_scenario",
    "load_cdp_scenario",
    "run_cdp",
]

NS_PER_S = 1_000_000_000
Design = Literal["english", "dutch"]

#: What :meth:`CdpResult.save` writes (a folder holding only these may be replaced).
CDP_FILES = frozenset(
    {
        "steps.parquet", "sales.parquet", "journal-english.parquet", "journal-dutch.parquet",
        "summary.json", "scenario.json", "report.html",
    }
)  # fmt: skip

#: Columns of the per-step frame (one row per design and step): time (ns), the market price
#: (DAI per unit) and the OSM's, the gas price (gwei), the keepers' free capital and pending
#: sale proceeds (DAI), the Vow's surplus, pending system debt, what the surplus absorbed, what
#: debt auctions raised and the declared bad debt (cumulative, DAI), liquidations started and
#: collateral sold in the step (units), auctions running, cumulative under-collateralized
#: vault-seconds.
CDP_STEP_COLUMNS = (
    "design", "ts_ns", "market_price", "osm_price", "gas_price_gwei", "keeper_capital",
    "keeper_pending", "surplus", "pending_debt", "insurance_paid", "socialized_loss",
    "bad_debt", "liquidations", "collateral_sold", "running_auctions",
    "undercollateralized_vault_s",
)  # fmt: skip


class CdpPrices(_Frozen):
    """The collateral's price path: a bundled window or an OHLC file, sampled every ``step_s``."""

    #: A bundled window (:func:`deleverage.prices.historical.list_bundled`).
    bundled: str | None = None
    #: An OHLC file (CSV or Parquet, :func:`deleverage.prices.historical.load_ohlcv`).
    file: str | None = None
    #: Seconds between steps.
    step_s: Annotated[float, Field(ge=1.0, le=3600.0)] = 30.0
    #: Each bar's high is capped at ``high_cap x max(open, close)`` (bad ticks).
    high_cap: Annotated[float, Field(ge=1.0, le=100.0)] = 1.1

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.bundled is None) == (self.file is None):
            raise ValueError("prices must name exactly one of bundled and file")
        if self.bundled is not None and self.bundled not in list_bundled():
            raise ValueError(
                f"prices.bundled must be one of {list(list_bundled())}, was {self.bundled!r}"
            )
        return self


#: The vault book of a CDP scenario (the protocol's own population spec).
CdpPopulation = MakerPopulationSpec


class CdpScenario(_Frozen):
    """A CDP scenario document (see the module docstring)."""

    name: Slug
    kind: Literal["cdp"]
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    prices: CdpPrices
    population: MakerPopulationSpec = MakerPopulationSpec()
    maker: MakerConfig = MakerConfig()
    #: The designs to run on the same path and keepers, in order.
    designs: Annotated[tuple[Design, ...], Field(min_length=1, max_length=2)] = ("english", "dutch")

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if len(set(self.designs)) != len(self.designs):
            raise ValueError(f"designs must not repeat, was {list(self.designs)}")
        if self.population.ratio_median <= self.maker.mat:
            raise ValueError(
                f"population.ratio_median must be > maker.mat ({self.maker.mat}), "
                f"was {self.population.ratio_median}"
            )
        return self

    @classmethod
    def from_toml(cls, path: str | Path) -> CdpScenario:
        """Read a scenario TOML file (errors name the field)."""
        text = read_text(Path(path), field="scenario", what="TOML file")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("scenario", str(path), f"must be valid TOML ({exc})") from None
        return cls.from_mapping(data)


def _toml_data(source: str | Path | dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(source, dict):
        return source
    try:
        path = Path(source)
        if not path.exists() and isinstance(source, str) and source in builtin_names():
            path = builtin_path(source)
        if not path.is_file():
            return None
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError, ValueError):
        return None  # not a readable TOML file: the perp loader reports why


def is_cdp_scenario(source: str | Path | dict[str, Any]) -> bool:
    """Whether ``source`` (a TOML path, a built-in name or a mapping) says ``kind = "cdp"``."""
    data = _toml_data(source)
    return data is not None and data.get("kind") == "cdp"


def load_cdp_scenario(source: str | Path) -> CdpScenario:
    """Load a CDP scenario from a TOML file or a built-in name."""
    path = Path(source)
    if not path.exists() and isinstance(source, str) and source in builtin_names():
        path = builtin_path(source)
    return CdpScenario.from_toml(path)


def cdp_scenario_problems(data: dict[str, Any]) -> list[str]:
    """Every problem of a CDP scenario mapping, one line each (empty when valid).

    Besides the document's fields, the price path is built (a missing file or a bad row is a
    problem too)."""
    try:
        with collect_problems():
            scenario = CdpScenario.model_validate(data)
    except pydantic.ValidationError as exc:
        return validation_problems(exc)
    except ConfigError as exc:
        return [str(exc)]
    try:
        _path(scenario.prices)
    except (DeleverageError, ValueError, OSError) as exc:
        return [f"prices: {exc}"]
    return []


def _path(prices: CdpPrices) -> tuple[np.ndarray[Any, np.dtype[np.float64]], int]:
    bars: OhlcvBars = (
        bundled_crash(prices.bundled)
        if prices.bundled is not None
        else load_ohlcv(str(prices.file))
    )
    frame = bars.frame.copy()
    cap = prices.high_cap * np.maximum(frame["open"], frame["close"])
    frame["high"] = np.minimum(frame["high"], cap)
    capped = dataclasses.replace(bars, frame=frame)
    return to_path(capped, prices.step_s, method="ohlc"), capped.ts_start_ns


@dataclass
class CdpResult:
    """What :func:`run_cdp` returns: per-step and per-sale frames, summaries and journals."""

    scenario: CdpScenario
    steps: pd.DataFrame
    sales: pd.DataFrame
    summaries: dict[str, dict[str, Any]]
    journals: dict[str, Journal]
    wall_s: float

    @property
    def result_hash(self) -> str:
        """SHA-256 of the per-step and per-sale frames (same scenario, same hash)."""
        digest = hashlib.sha256()
        for frame in (self.steps, self.sales):
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        return digest.hexdigest()

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write steps.parquet, sales.parquet, journal-<design>.parquet, summary.json and
        scenario.json into ``folder``; return the paths by name."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        written = {"steps": out / "steps.parquet", "sales": out / "sales.parquet"}
        self.steps.to_parquet(written["steps"], index=False)
        self.sales.to_parquet(written["sales"], index=False)
        for design, journal in self.journals.items():
            written[f"journal_{design}"] = journal.write_parquet(out / f"journal-{design}.parquet")
        summary = {
            "scenario": self.scenario.name,
            "result_hash": self.result_hash,
            "wall_s": self.wall_s,
            "designs": self.summaries,
        }
        written["summary"] = out / "summary.json"
        written["summary"].write_text(json.dumps(_finite(summary), indent=2, allow_nan=False))
        written["scenario"] = out / "scenario.json"
        written["scenario"].write_text(self.scenario.model_dump_json(indent=2))
        return written


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def run_cdp(
    scenario: CdpScenario, *, progress: Callable[[int, int], None] | None = None
) -> CdpResult:
    """Run every design of ``scenario`` on the same path, vaults and keepers."""
    start = time.perf_counter()
    path, ts0 = _path(scenario.prices)
    dt_ns = round(scenario.prices.step_s * NS_PER_S)
    frames, sales = [], []
    summaries: dict[str, dict[str, Any]] = {}
    journals: dict[str, Journal] = {}
    total = len(path) * len(scenario.designs)
    for d, design in enumerate(scenario.designs):
        venue = _venue(scenario, design, float(path[0]))
        frame = _run_design(venue, path, ts0, dt_ns, progress, d * len(path), total)
        venue.close(ts_ns=ts0 + (len(path) - 1) * dt_ns)
        frame["bad_debt"] = frame["bad_debt"].to_numpy()
        frame.loc[frame.index[-1], "bad_debt"] = venue.vow.bad_debt
        frame.insert(0, "design", design)
        frames.append(frame)
        sold = venue.sales.frame()
        sold.insert(0, "design", design)
        sales.append(sold)
        summaries[design] = venue.summary()
        journals[design] = venue.journal()
    return CdpResult(
        scenario=scenario,
        steps=pd.concat(frames, ignore_index=True),
        sales=pd.concat(sales, ignore_index=True),
        summaries=summaries,
        journals=journals,
        wall_s=time.perf_counter() - start,
    )


def _venue(scenario: CdpScenario, design: Design, price: float) -> MakerVenue:
    config = scenario.maker.model_copy(update={"design": design, "name": f"maker-{design}"})
    population = scenario.population.draw(config, seed=scenario.seed, price=price)
    return build_maker(config, population, chain=Chain(config.chain, seed=scenario.seed))


def _run_design(
    venue: MakerVenue,
    path: np.ndarray[Any, np.dtype[np.float64]],
    ts0: int,
    dt_ns: int,
    progress: Callable[[int, int], None] | None,
    done: int,
    total: int,
) -> pd.DataFrame:
    n = len(path)
    cols = {c: np.zeros(n) for c in CDP_STEP_COLUMNS if c not in ("design", "ts_ns")}
    ts = ts0 + np.arange(n, dtype=np.int64) * dt_ns
    asset = venue.config.asset
    keepers, vow, chain = venue.keepers, venue.vow, venue.chain
    for k in range(n):
        step = venue.step({asset: PriceInputs(float(path[k]))}, ts_ns=int(ts[k]))
        cols["market_price"][k] = path[k]
        cols["osm_price"][k] = venue.osm_price
        cols["gas_price_gwei"][k] = chain.gas_price_gwei
        cols["keeper_capital"][k] = keepers.capital.sum()
        cols["keeper_pending"][k] = keepers.pending_proceeds
        cols["surplus"][k] = vow.joy
        cols["pending_debt"][k] = vow.pending
        cols["insurance_paid"][k] = vow.insurance_paid
        cols["socialized_loss"][k] = vow.socialized_loss
        cols["bad_debt"][k] = vow.bad_debt
        cols["liquidations"][k] = step.liquidations
        cols["collateral_sold"][k] = -step.forced_flow[asset]
        cols["running_auctions"][k] = len(venue.clipper.sales) + len(venue.flipper.flips)
        cols["undercollateralized_vault_s"][k] = venue.undercollateralized_vault_s
        if progress is not None and (k % 500 == 0 or k == n - 1):
            progress(done + k + 1, total)
    return pd.DataFrame({"ts_ns": ts, **cols})
