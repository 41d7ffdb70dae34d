"""Experiments: a base scenario, a design over named parameters, seeds, metrics (TOML).

An experiment is the *sweep* (STYLE.md rule 12): what is simulated stays in the scenario, how it is
executed is the backend's business. A small one::

    name = "vol-vs-policy"
    seed = 42                 # the root of every run's seed
    base = "gbm-stress"       # a built-in name, a TOML path (relative to this file) or a table
    seeds_per_cell = 8        # replicates of each cell
    metrics = ["bad_debt", "adl_rounds", "cascade_amplification"]
    feedback_twin = true      # also run each replicate with feedback=False

    [overrides]               # fixed for every cell
    "markets.0.population.n_positions" = 3000

    [parameters]              # name (a column of the results) -> dotted path + values
    sigma = { path = "markets.0.price.sigma", values = [0.5, 1.0, 2.0] }
    fund = { path = "insurance.fund", low = 1e4, high = 1e6, num = 3, scale = "log" }
    policy = { path = "markets.0.spec_overrides.liquidation.kind", values = ["full", "partial"] }

``design = "grid"`` (the default) crosses every parameter's values (``values``, or ``num`` points
from ``low`` to ``high``, evenly spaced or, with ``scale = "log"``, geometrically);
``design = "random"`` draws ``samples`` cells, each parameter uniformly from its ``values`` or
from ``[low, high]`` (log-uniformly with ``scale = "log"``); ``design = "sobol"`` or
``"latin_hypercube"`` takes ``samples`` points of a scrambled Sobol sequence or a Latin
hypercube (``scipy.stats.qmc``) over the unit cube and maps each coordinate through the
parameter's quantile, which covers the space more evenly than independent draws.

Seeds. Everything random derives from ``numpy.random.SeedSequence(seed)`` by spawn key, never by
position in a queue: replicate ``r`` of the cell with parameter values ``p`` runs with the
scenario seed drawn from ``SeedSequence(seed, spawn_key=(0, key(p), r))``, where ``key(p)`` is
a hash of the canonical JSON of ``p``; with ``common_random_numbers = true`` it is
``SeedSequence(seed, spawn_key=(1, r))`` for every cell (the same price paths and populations
across cells, which sharpens comparisons between cells). Random designs draw cell ``i`` from
``SeedSequence(seed, spawn_key=(2, i))`` and key it by its values and ``i`` (two equal draws
stay two cells). So a cell re-run alone, in another order, on another
worker or after the grid grew gives the same numbers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from deleverage._files import read_text
from deleverage.errors import ConfigError
from deleverage.sim.scenario import Scenario, load_scenario
from deleverage.spec import Slug, _Frozen
from deleverage.world.config import WorldScenario, load_world, scenario_kind

__all__ = [
    "DERIVED_METRICS",
    "SUMMARY_METRICS",
    "TWIN_METRICS",
    "VENUE_METRIC_COLUMNS",
    "WORLD_METRICS",
    "BaseScenario",
    "Cell",
    "Experiment",
    "ParameterSpec",
    "RunTask",
    "cell_id",
    "derived_metrics",
    "load_experiment",
    "run_seed",
    "world_metrics",
]

#: What an experiment sweeps: a single-venue scenario or a multi-venue world.
BaseScenario = Scenario | WorldScenario

#: Metrics copied from :attr:`deleverage.sim.runner.RunResult.summary`.
SUMMARY_METRICS = (
    "liquidations",
    "liquidated_notional",
    "adl_notional",
    "adl_rounds",
    "bad_debt",
    "socialized_loss",
    "insurance_fund_start",
    "insurance_fund_min",
    "insurance_fund_end",
    "cascade_rounds",
    "max_drawdown_mark",
    "max_drawdown_exogenous",
    "under_collateralized_s",
    "top_ups",
    "hedgers_liquidated",
    "shortfall",
    "hedger_spot_sold",
    "hedger_spot_sold_notional",
    "hedgers_unhedged",
    "positions",
    "steps",
)
#: Metrics derived from one run's summary (see :func:`derived_metrics`).
DERIVED_METRICS = ("adl_occurred", "bad_debt_occurred", "fund_drawdown", "price_amplification")
#: Metrics that need the ``feedback=False`` twin run (``feedback_twin = true``).
TWIN_METRICS = (
    "cascade_amplification",
    "twin_liquidated_notional",
    "twin_bad_debt",
    "adl_amplification",
    "twin_adl_notional",
)
DEFAULT_METRICS = (
    "bad_debt",
    "adl_notional",
    "adl_rounds",
    "liquidated_notional",
    "liquidations",
    "insurance_fund_min",
    "socialized_loss",
)
#: Metrics of a world base: :meth:`deleverage.world.result.WorldResult.summary`, and per venue
#: ``venues.<venue>.<column>`` with a column of :data:`VENUE_METRIC_COLUMNS`.
WORLD_METRICS = (
    "liquidations",
    "liquidated_notional",
    "insurance_paid",
    "uncovered",
    "bad_debt",
    "absorbed",
    "cross_venue_liquidations",
    "cross_venue_liquidations_prices",
    "cross_venue_liquidations_traders",
    "max_shared_drawdown",
    "max_exogenous_drawdown",
    "venues",
    "steps",
)
VENUE_METRIC_COLUMNS = (
    "liquidations",
    "liquidated_notional",
    "fund_balance",
    "insurance_paid",
    "backstop_loss",
    "adl_loss",
    "socialized_loss",
    "bad_debt",
    "absorbed",
    "from_other_venues",
    "from_market",
)
_VENUE_METRIC = re.compile(
    r"^venues\.[A-Za-z0-9][A-Za-z0-9_-]*\.(" + "|".join(VENUE_METRIC_COLUMNS) + r")$"
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = frozenset(
    {"cell", "cell_id", "replicate", "seed", "error", "run_s", "cpu_s", *SUMMARY_METRICS}
    | set(DERIVED_METRICS)
    | set(TWIN_METRICS)
)
#: Spawn-key domains of :class:`numpy.random.SeedSequence` (module docstring).
_DOMAIN_CELL, _DOMAIN_COMMON, _DOMAIN_SAMPLE = 0, 1, 2

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class ParameterSpec(_Frozen):
    """One swept parameter: a dotted ``path`` into the scenario and its values.

    Give ``values`` (a list of numbers, strings or booleans, one kind) or a numeric range
    ``low``/``high`` (with ``num`` points for a grid) and ``scale`` (``"linear"`` or ``"log"``).
    """

    path: Annotated[str, Field(min_length=1)]
    values: Annotated[tuple[Scalar, ...], Field(min_length=1)] | None = None
    low: Number | None = None
    high: Number | None = None
    num: Annotated[int, Field(ge=1, le=10_000, strict=True)] | None = None
    scale: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _shape(self) -> Self:
        has_range = self.low is not None or self.high is not None
        if (self.values is None) == (not has_range):
            raise ValueError("give `values` (a list) or a range (`low` and `high`), not both")
        if self.values is not None:
            kinds = {_kind(v) for v in self.values}
            if len(kinds) > 1:
                raise ValueError(
                    f"values must be of one kind (numbers, strings or booleans), were {kinds}"
                )
            if any(isinstance(v, float) and not math.isfinite(v) for v in self.values):
                raise ValueError(f"values must be finite numbers, were {self.values}")
            if any(type(v) is int and not -(2**63) <= v < 2**63 for v in self.values):
                raise ValueError(f"values must fit in 64-bit integers, were {self.values}")
            if self.num is not None:
                raise ValueError("num goes with a range (`low`, `high`), not with `values`")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a range needs both `low` and `high`, were {self.low}, {self.high}")
        if self.high < self.low:
            raise ValueError(f"high must be >= low, were low={self.low}, high={self.high}")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"low must be > 0 on a log scale, was {self.low}")
        return self

    @property
    def kind(self) -> Literal["float", "int", "str", "bool"]:
        """Column type of the parameter in the results."""
        if self.values is None:
            return "float"
        kinds = {_kind(v) for v in self.values}
        if kinds == {"bool"}:
            return "bool"
        if kinds == {"str"}:
            return "str"
        return "int" if all(isinstance(v, int) for v in self.values) else "float"

    def grid_values(self, name: str) -> tuple[Any, ...]:
        """The values a grid takes: ``values``, or ``num`` points from ``low`` to ``high``."""
        if self.values is not None:
            return tuple(_cast(v, self.kind) for v in self.values)
        if self.num is None:
            raise ConfigError(
                f"parameters.{name}.num", None, "is required for a range in a grid design"
            )
        assert self.low is not None
        assert self.high is not None
        if self.scale == "log":
            points = np.geomspace(self.low, self.high, self.num)
        else:
            points = np.linspace(self.low, self.high, self.num)
        return tuple(float(x) for x in points)

    def draw(self, rng: np.random.Generator) -> Any:
        """One value drawn uniformly from ``values`` or from ``[low, high]`` (log-uniform with
        ``scale = "log"``)."""
        if self.values is not None:
            return _cast(self.values[int(rng.integers(len(self.values)))], self.kind)
        return self.from_unit(float(rng.random()))

    def from_unit(self, u: float) -> Any:
        """The value at quantile ``u`` in ``[0, 1)``: ``values[floor(u n)]``, or ``low + u (high
        - low)`` (geometric with ``scale = "log"``); quasi-random designs map their points so."""
        if self.values is not None:
            k = min(int(u * len(self.values)), len(self.values) - 1)
            return _cast(self.values[k], self.kind)
        assert self.low is not None
        assert self.high is not None
        if self.scale == "log":
            return float(math.exp(math.log(self.low) + u * (math.log(self.high / self.low))))
        return float(self.low + u * (self.high - self.low))


class ReportSpec(_Frozen):
    """Which parameters the report's figures use (parameter names; guessed when omitted)."""

    volatility: str | None = None
    policy: str | None = None
    fund: str | None = None
    heatmap: tuple[str, str] | None = None


class Experiment(_Frozen):
    """A validated experiment (see the module docstring)."""

    name: Slug = "experiment"
    description: str = ""
    seed: Annotated[int, Field(ge=0, strict=True)] = 0
    base: str | dict[str, Any]
    overrides: dict[str, Any] = Field(default_factory=dict)
    design: Literal["grid", "random", "sobol", "latin_hypercube"] = "grid"
    samples: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] | None = None
    parameters: dict[str, ParameterSpec]
    seeds_per_cell: Annotated[int, Field(ge=1, le=100_000, strict=True)] = 1
    common_random_numbers: bool = False
    metrics: Annotated[tuple[str, ...], Field(min_length=1)] = DEFAULT_METRICS
    feedback_twin: bool = False
    report: ReportSpec = ReportSpec()
    #: Folder relative paths (``base``, historical files) are resolved from; set by the loader.
    root: str = "."

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.parameters:
            raise ValueError(
                "parameters must name at least one parameter (the grid is empty), was {}"
            )
        for name, spec in self.parameters.items():
            if not _NAME.match(name) or name in _RESERVED:
                raise ValueError(
                    f"parameters must have identifier names that are not result columns "
                    f"({', '.join(sorted({'cell', 'seed', 'error', 'replicate'}))}, metrics), "
                    f"was {name!r}"
                )
            if spec.path == "seed" or spec.path.startswith("seed."):
                raise ValueError(f"parameters.{name}.path must not be `seed`, which the sweep sets")
            if self.design == "grid" and spec.values is None and spec.num is None:
                raise ValueError(f"parameters.{name}.num is required for a range in a grid")
        if self.design != "grid" and self.samples is None:
            raise ValueError(f"samples is required with design = {self.design!r}, was None")
        if self.design == "grid" and self.samples is not None:
            raise ValueError("samples goes with a random design, was given with a grid")
        known = set(SUMMARY_METRICS) | set(DERIVED_METRICS) | set(TWIN_METRICS)
        known_world = set(WORLD_METRICS)
        for metric in self.metrics:
            if metric not in known | known_world and not _VENUE_METRIC.match(metric):
                raise ValueError(
                    f"metrics must be among {sorted(known | known_world)} or "
                    f"venues.<venue>.<column> (a world), was {metric!r}"
                )
            if metric in TWIN_METRICS and not self.feedback_twin:
                raise ValueError(
                    f"metrics {metric!r} needs the feedback=False twin run: set "
                    f"feedback_twin = true, was false"
                )
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics must be distinct, were {list(self.metrics)}")
        for field in ("volatility", "policy", "fund"):
            chosen = getattr(self.report, field)
            if chosen is not None and chosen not in self.parameters:
                raise ValueError(f"report.{field} must name a parameter, was {chosen!r}")
        for chosen in self.report.heatmap or ():
            if chosen not in self.parameters:
                raise ValueError(f"report.heatmap must name parameters, was {chosen!r}")
        return self

    # ---------------------------------------------------------------- identity
    @property
    def experiment_id(self) -> str:
        """16 hex digits over what decides the results (not ``name`` nor ``report``)."""
        data = self.model_dump(mode="json", exclude={"name", "description", "report", "root"})
        data["base"] = self.base_scenario().to_toml_dict()
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ---------------------------------------------------------------- the design
    def base_scenario(self) -> BaseScenario:
        """The base scenario (a world when it says ``kind = "world"``) with the fixed
        ``overrides`` applied.

        Raises
        ------
        ConfigError
            If the base cannot be loaded or an override is invalid.
        """
        scenario: BaseScenario
        if isinstance(self.base, dict):
            if self.base.get("kind") == "world":
                scenario = WorldScenario.from_mapping(self.base)
            else:
                scenario = Scenario.from_mapping(self.base)
        else:
            candidate = Path(self.root) / self.base
            source = str(candidate) if self.base.endswith(".toml") else self.base
            if scenario_kind(source) == "world":
                scenario = load_world(source)
            else:
                scenario = load_scenario(source)
        if self.overrides:
            scenario = scenario.with_overrides(dict(self.overrides))
        return scenario

    def check(self) -> BaseScenario:
        """Validate everything that can be checked before any run; return the base scenario.

        Every parameter's path must name a field of the base scenario (its values are checked
        per cell: a value that makes one cell's scenario invalid fails that cell alone).

        Raises
        ------
        ConfigError
            Naming the parameter, its path and the rule.
        """
        base = self.base_scenario()
        for name, spec in self.parameters.items():
            try:
                base.check_override_path(spec.path)
            except ConfigError as exc:
                raise ConfigError(
                    f"parameters.{name}.path",
                    spec.path,
                    f"must name a field of the base scenario ({exc.rule})",
                ) from None
        if isinstance(base, WorldScenario):
            for metric in self.metrics:
                if metric not in WORLD_METRICS and not _VENUE_METRIC.match(metric):
                    raise ConfigError(
                        "metrics", metric,
                        f"must be a world metric {list(WORLD_METRICS)} or "
                        "venues.<venue>.<column>: the base is a world",
                    )  # fmt: skip
                venue = metric.split(".")[1] if _VENUE_METRIC.match(metric) else None
                if venue is not None and venue not in {v.name for v in base.venues}:
                    raise ConfigError(
                        "metrics",
                        metric,
                        f"must name a venue of the base {[v.name for v in base.venues]}",
                    )
            if self.feedback_twin:
                raise ConfigError(
                    "feedback_twin", True, "must be false for a world base (not supported)"
                )
        else:
            for metric in self.metrics:
                if metric not in set(SUMMARY_METRICS) | set(DERIVED_METRICS) | set(TWIN_METRICS):
                    raise ConfigError(
                        "metrics", metric, "must be a single-venue metric: the base is no world"
                    )
        self.cells()
        return base

    def cells(self) -> list[Cell]:
        """The cells of the design, in a fixed order (grid: row-major over ``parameters``)."""
        names = list(self.parameters)
        if self.design == "grid":
            axes = [self.parameters[n].grid_values(n) for n in names]
            combos = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]
        elif self.design == "random":
            assert self.samples is not None
            combos = []
            for i in range(self.samples):
                seq = np.random.SeedSequence(self.seed, spawn_key=(_DOMAIN_SAMPLE, i))
                rng = np.random.default_rng(seq)
                combos.append({n: self.parameters[n].draw(rng) for n in names})
        else:
            combos = self._quasi_random(names)
        # a random design may draw the same values twice: the sample number keeps them apart
        keyed = self.design != "grid"
        return [
            Cell(
                index=i,
                cell_id=cell_id({**values, "_sample": i} if keyed else values),
                values=values,
                overrides={self.parameters[n].path: v for n, v in values.items()},
            )
            for i, values in enumerate(combos)
        ]

    def _quasi_random(self, names: list[str]) -> list[dict[str, Any]]:
        """Scrambled Sobol or Latin hypercube points (``scipy.stats.qmc``), one per sample,
        mapped through each parameter's quantile (:meth:`ParameterSpec.from_unit`)."""
        from scipy.stats import qmc

        assert self.samples is not None
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_DOMAIN_SAMPLE,)))
        d = len(names)
        sampler = (
            qmc.Sobol(d, rng=rng) if self.design == "sobol" else qmc.LatinHypercube(d, rng=rng)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Sobol: n not a power of two
            points = sampler.random(self.samples)
        return [
            {n: self.parameters[n].from_unit(float(points[i, j])) for j, n in enumerate(names)}
            for i in range(self.samples)
        ]

    def tasks(self) -> list[RunTask]:
        """One task per (cell, replicate), with its seed (:func:`run_seed`)."""
        out = []
        for cell in self.cells():
            for r in range(self.seeds_per_cell):
                seed = run_seed(
                    self.seed, cell.cell_id, r, common_random_numbers=self.common_random_numbers
                )
                out.append(RunTask(cell=cell, replicate=r, seed=seed))
        return out

    @property
    def needs_twin(self) -> bool:
        return self.feedback_twin


@dataclass(frozen=True, slots=True)
class Cell:
    """One point of the design: parameter values by name and the overrides they make."""

    index: int
    cell_id: str
    values: dict[str, Any]
    overrides: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunTask:
    """One run: a cell, a replicate number and the scenario seed it runs with."""

    cell: Cell
    replicate: int
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.cell.cell_id, self.replicate)


def cell_id(values: Mapping[str, Any]) -> str:
    """16 hex digits naming a cell by its parameter values (canonical JSON, SHA-256).

    >>> cell_id({"sigma": 1.0, "policy": "full"}) == cell_id({"policy": "full", "sigma": 1.0})
    True
    """
    text = json.dumps(dict(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_seed(root: int, cell: str, replicate: int, *, common_random_numbers: bool = False) -> int:
    """The scenario seed of ``replicate`` of ``cell`` (a :func:`cell_id`), from
    ``SeedSequence(root)`` by spawn key (module docstring); an integer in ``[0, 2^63)``."""
    if common_random_numbers:
        key: tuple[int, ...] = (_DOMAIN_COMMON, replicate)
    else:
        key = (_DOMAIN_CELL, int(cell, 16), replicate)
    seq = np.random.SeedSequence(root, spawn_key=key)
    return int(seq.generate_state(1, np.uint64)[0]) & (2**63 - 1)


def derived_metrics(
    summary: Mapping[str, float], twin: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Metrics derived from a run's summary (and its ``feedback=False`` twin's).

    - ``adl_occurred``, ``bad_debt_occurred``: 1.0 when the run had ADL rounds / bad debt, else
      0.0 (their mean over seeds is a frequency);
    - ``fund_drawdown = 1 - insurance_fund_min / insurance_fund_start`` (NaN with no fund);
    - ``price_amplification = max_drawdown_mark - max_drawdown_exogenous`` (the extra fall the
      cascade added, a fraction of the price);
    - with a twin: ``cascade_amplification = liquidated_notional / twin liquidated_notional``
      (1.0 when both are 0, ``inf`` when only the twin's is 0), ``twin_liquidated_notional``,
      ``twin_bad_debt``; ``adl_amplification = adl_notional / twin adl_notional`` (same
      conventions) and ``twin_adl_notional``.

    >>> d = derived_metrics({"adl_rounds": 2.0, "bad_debt": 0.0, "insurance_fund_start": 100.0,
    ...     "insurance_fund_min": 25.0, "max_drawdown_mark": 0.3, "max_drawdown_exogenous": 0.2,
    ...     "liquidated_notional": 30.0}, {"liquidated_notional": 10.0, "bad_debt": 0.0})
    >>> d["adl_occurred"], d["fund_drawdown"], round(d["price_amplification"], 12)
    (1.0, 0.75, 0.1)
    >>> d["cascade_amplification"]
    3.0
    """
    start = float(summary["insurance_fund_start"])
    out = {
        "adl_occurred": 1.0 if summary["adl_rounds"] > 0 else 0.0,
        "bad_debt_occurred": 1.0 if summary["bad_debt"] > 0 else 0.0,
        "fund_drawdown": 1.0 - float(summary["insurance_fund_min"]) / start
        if start > 0
        else math.nan,
        "price_amplification": float(summary["max_drawdown_mark"])
        - float(summary["max_drawdown_exogenous"]),
    }
    if twin is not None:
        with_feedback = float(summary["liquidated_notional"])
        without = float(twin["liquidated_notional"])
        if without > 0:
            out["cascade_amplification"] = with_feedback / without
        else:
            out["cascade_amplification"] = 1.0 if with_feedback == 0 else math.inf
        out["twin_liquidated_notional"] = without
        out["twin_bad_debt"] = float(twin["bad_debt"])
        adl = float(summary.get("adl_notional", 0.0))
        twin_adl = float(twin.get("adl_notional", 0.0))
        out["adl_amplification"] = (
            adl / twin_adl if twin_adl > 0 else (1.0 if adl == 0 else math.inf)
        )
        out["twin_adl_notional"] = twin_adl
    return out


def load_experiment(source: str | Path) -> Experiment:
    """Load and validate an experiment from a TOML file (or TOML text).

    Relative paths in it (``base``) are resolved from the file's folder. Only the document is
    validated here; :meth:`Experiment.check` validates it against the base scenario.

    Raises
    ------
    ConfigError
        Naming the field, the value and the rule.
    """
    text_given = isinstance(source, str) and "\n" in source
    if text_given:
        text, root = str(source), Path.cwd()
    else:
        path = Path(source)
        text = read_text(path, field="experiment", what="TOML file")
        root = path.resolve().parent
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("toml", str(source)[:60], f"must be valid TOML ({exc})") from None
    data.setdefault("root", str(root))
    return Experiment.from_mapping(data)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "str"


def _cast(value: Any, kind: str) -> Any:
    if kind == "float":
        return float(value)
    return value


def world_metrics(result: Any) -> dict[str, float]:
    """A world run's metrics: :data:`WORLD_METRICS` and ``venues.<venue>.<column>``."""
    out = dict(result.summary())
    table = result.venue_summary()
    for venue, row in table.iterrows():
        for column in VENUE_METRIC_COLUMNS:
            out[f"venues.{venue}.{column}"] = float(row[column])
    return out
