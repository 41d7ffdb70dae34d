"""World scenarios (TOML, ``kind = "world"``): assets, venues, shared traders, channels.

::

    kind = "world"
    name = "two-perps"
    seed = 7
    dt_s = 1.0
    duration_s = 600

    [[assets]]
    name = "BTC"
    price = { process = "shock", s0 = 100000.0, drop_fraction = 0.05, duration_s = 300 }
    liquidity = { depth_per_pct = 50.0, half_life_s = 120.0 }     # the shared book
    arbitrage = { capital = 5e7, latency_s = 2.0 }                # the rest of the market

    [[venues]]
    name = "cex"
    kind = "perp"                          # a registered kind (deleverage.world.registry)
    assets = ["BTC"]
    links = { BTC = { liquidity = { depth_per_pct = 10.0 }, arbitrage = { capital = 1e7 } } }
    config = { preset = "binance", population = { n_positions = 5000 } }

    [[shared_traders]]                     # the first 500 cross accounts of each are one trader
    venues = ["cex", "dex"]
    count = 500

    [wallets]                              # how shared traders move collateral
    interval_s = 60.0

Risk layers (:mod:`deleverage.world.risk_config`): ``[clearinghouse]``, ``[[backstops]]``,
``[risk_oracle]``.

Every table rejects unknown keys; bounds live in the types; a venue's ``config`` is checked
against its kind's model, so an error names ``venues.<i>.config.<field>``.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from deleverage._files import read_text
from deleverage.errors import ConfigError
from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import (
    MAX_STEPS,
    CommonJumps,
    HistoricalPrice,
    LiquiditySpec,
    PriceSpec,
)
from deleverage.spec import PositiveFloat, Slug, _Frozen
from deleverage.world.kinds import venue_kind
from deleverage.world.risk_config import (
    BackstopConfig,
    ClearinghouseConfig,
    RiskOracleSection,
    check_risk_sections,
)

__all__ = [
    "AssetConfig",
    "ChannelsConfig",
    "LinkConfig",
    "SharedTradersConfig",
    "VenueConfig",
    "WalletsConfig",
    "WorldScenario",
    "load_world",
    "scenario_kind",
]

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]


class AssetConfig(_Frozen):
    """One asset: its exogenous price, its shared book and the rest of the market's
    arbitrageurs pulling the shared price back to the exogenous one."""

    name: Name
    price: PriceSpec
    liquidity: LiquiditySpec = LiquiditySpec()
    arbitrage: ArbitrageSpec = ArbitrageSpec()


class LinkConfig(_Frozen):
    """A venue's own book for an asset and the arbitrageurs tying it to the shared market
    (default: unlimited capital, no latency, no cost)."""

    liquidity: LiquiditySpec = LiquiditySpec()
    arbitrage: ArbitrageSpec = ArbitrageSpec(capital=math.inf)


class VenueConfig(_Frozen):
    """One venue: a registered ``kind`` and its ``config`` table, the assets it watches and
    the ones it trades on its own book (``links``)."""

    name: Name
    kind: str
    assets: Annotated[tuple[str, ...], Field(min_length=1)]
    links: dict[str, LinkConfig] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)


class SharedTradersConfig(_Frozen):
    """Traders holding accounts on several venues: the first ``count`` shareable (cross)
    accounts of each listed venue, not taken by an earlier group, are one trader each."""

    venues: Annotated[tuple[str, ...], Field(min_length=2)]
    count: Annotated[int, Field(gt=0, le=10_000_000)]


class WalletsConfig(_Frozen):
    """How shared traders move collateral (:class:`deleverage.world.traders.SharedWallets`)."""

    interval_s: PositiveFloat = 60.0
    trigger_ratio: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    target_ratio: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.5

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.target_ratio >= self.trigger_ratio:
            raise ValueError(
                f"target_ratio must be below trigger_ratio ({self.trigger_ratio}), was "
                f"{self.target_ratio}"
            )
        return self


class ChannelsConfig(_Frozen):
    """Contagion channels: ``prices`` (forced flow reaches the shared market), ``traders``
    (shared traders move collateral)."""

    prices: bool = True
    traders: bool = True


class WorldScenario(_Frozen):
    """A validated world scenario (see the module docstring)."""

    kind: Literal["world"] = "world"
    name: Slug = "world"
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    dt_s: PositiveFloat = 1.0
    duration_s: PositiveFloat | None = None
    max_rounds: Annotated[int, Field(ge=1, le=1000)] = 20
    correlation: tuple[tuple[float, ...], ...] | None = None
    common_jumps: CommonJumps = CommonJumps()
    channels: ChannelsConfig = ChannelsConfig()
    wallets: WalletsConfig = WalletsConfig()
    assets: Annotated[tuple[AssetConfig, ...], Field(min_length=1, max_length=64)]
    venues: Annotated[tuple[VenueConfig, ...], Field(min_length=1, max_length=64)]
    shared_traders: tuple[SharedTradersConfig, ...] = ()
    clearinghouse: ClearinghouseConfig | None = None
    backstops: tuple[BackstopConfig, ...] = ()
    risk_oracle: RiskOracleSection | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        assets = [a.name for a in self.assets]
        if len(set(assets)) != len(assets):
            raise ValueError(f"asset names must be distinct, were {assets}")
        names = [v.name for v in self.venues]
        if len(set(names)) != len(names):
            raise ValueError(f"venue names must be distinct, were {names}")
        historical = all(isinstance(a.price, HistoricalPrice) for a in self.assets)
        if self.duration_s is None and not historical:
            raise ValueError("duration_s is required unless every asset replays history")
        if self.duration_s is not None and self.duration_s / self.dt_s > MAX_STEPS:
            raise ValueError(f"duration_s / dt_s must be at most {MAX_STEPS} steps")
        for i, venue in enumerate(self.venues):
            for asset in venue.assets:
                if asset not in assets:
                    raise ValueError(
                        f"venues.{i}.assets: {asset!r} must be one of the assets {assets}"
                    )
            for asset in venue.links:
                if asset not in venue.assets:
                    raise ValueError(
                        f"venues.{i}.links: {asset!r} must be one of the venue's assets "
                        f"{list(venue.assets)}"
                    )
            try:
                venue_kind(venue.kind).parse(venue.config, where=f"venues.{i}.config")
            except ConfigError as exc:
                where = exc.field if exc.field != "kind" else f"venues.{i}.kind"
                raise ValueError(f"{where}: {exc.rule}, was {exc.value!r}") from None
        for i, group in enumerate(self.shared_traders):
            for venue_name in group.venues:
                if venue_name not in names:
                    raise ValueError(
                        f"shared_traders.{i}.venues: {venue_name!r} must be a venue {names}"
                    )
            if len(set(group.venues)) != len(group.venues):
                raise ValueError(f"shared_traders.{i}.venues must be distinct")
        check_risk_sections(
            venues=names, assets=assets, clearinghouse=self.clearinghouse,
            backstops=self.backstops, risk_oracle=self.risk_oracle,
        )  # fmt: skip
        return self

    def to_toml_dict(self) -> dict[str, Any]:
        """The scenario as plain data (JSON-compatible); ``from_mapping`` of it gives it back."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data

    def venue_config(self, i: int) -> Any:
        """The parsed config model of venue ``i``."""
        venue = self.venues[i]
        return venue_kind(venue.kind).parse(venue.config, where=f"venues.{i}.config")

    def with_overrides(self, overrides: dict[str, Any]) -> WorldScenario:
        """A copy with values replaced by dotted path. A venue may be addressed by name:
        ``venues.cex.config.spec_overrides.liquidation.kind`` (or by index, ``venues.0...``).

        Raises
        ------
        ConfigError
            If a path names no field, or the result is invalid.
        """
        data = self.model_dump(mode="python")
        for path, value in overrides.items():
            _set_path(data, self._resolve(path), value, path)
        return WorldScenario.from_mapping(data)

    def _resolve(self, path: str) -> list[str]:
        parts = path.split(".")
        if len(parts) > 1 and parts[0] in ("venues", "assets") and not parts[1].isdigit():
            names = (
                [v.name for v in self.venues]
                if parts[0] == "venues"
                else [a.name for a in self.assets]
            )
            found = [i for i, name in enumerate(names) if name == parts[1]]
            if not found:
                known = names
                raise ConfigError("path", path, f"must name one of the {parts[0]} {known}")
            parts[1] = str(found[0])
        return parts

    def check_override_path(self, path: str) -> None:
        """Raise :class:`ConfigError` unless ``path`` names a settable field (the value is
        not checked)."""
        parts = self._resolve(path)
        _set_path(self.model_dump(mode="python"), parts, None, path)
        if len(parts) > 3 and parts[0] == "venues" and parts[2] == "config":
            node: Any = self.venue_config(int(parts[1])).model_dump(mode="python")
            for i, part in enumerate(parts[3:], start=3):
                if node is None or parts[i - 1] in ("spec_overrides", "symbols"):
                    return  # an unset table, or a free-form one: the kind's model checks it
                if not (isinstance(node, dict) and part in node):
                    where = ".".join(parts[: i + 1])
                    raise ConfigError(
                        "path",
                        path,
                        f"must name a field of the venue's config (`{where}` is not one)",
                    )
                node = node[part]


def _set_path(data: dict[str, Any], parts: list[str], value: Any, path: str) -> None:
    node: Any = data
    for i, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            key: Any = int(part)
        elif isinstance(node, dict) and (part in node or "config" in parts[:i]):
            key = part
        else:
            where = ".".join(parts[: i + 1])
            raise ConfigError(
                "path", path, f"must name a field of the scenario (`{where}` is not one)"
            )
        if i == len(parts) - 1:
            node[key] = value
            return
        child = node[key] if isinstance(node, list) else node.get(key)
        if child is None:
            child = {}
        elif isinstance(child, tuple):
            child = list(child)
        node[key] = child
        node = child


def scenario_kind(source: str | Path) -> str | None:
    """The ``kind`` of a scenario file or built-in world name (None: a single-venue
    scenario, or not a readable TOML file: the caller's own loader reports that)."""
    from deleverage.world.builtin import world_builtin_names

    if isinstance(source, str) and source in world_builtin_names():
        return "world"
    path = Path(source)
    if "\n" in str(source) or not path.is_file():
        return None
    try:
        data = tomllib.loads(read_text(path, field="scenario", what="TOML file"))
    except (ConfigError, tomllib.TOMLDecodeError):
        return None
    kind = data.get("kind")
    return kind if isinstance(kind, str) else None


def load_world(source: str | Path) -> WorldScenario:
    """Load a world scenario from a TOML path, TOML text or a built-in world name."""
    from deleverage.world.builtin import world_builtin_names, world_builtin_path

    if isinstance(source, str) and source in world_builtin_names():
        return WorldScenario.from_toml(world_builtin_path(source))
    if isinstance(source, str) and "\n" in source:
        return WorldScenario.from_toml(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(
            "scenario", str(source),
            f"must be a world TOML file or a built-in world ({', '.join(world_builtin_names())})",
        )  # fmt: skip
    return WorldScenario.from_toml(path)
