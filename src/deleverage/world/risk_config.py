"""Scenario tables for the world's risk layers: ``[clearinghouse]``, ``[[backstops]]`` and
``[risk_oracle]``.

::

    [clearinghouse]                        # venues as clearing members (world/clearing.py)
    members = ["cex", "dex"]               # order-book venues; default: every perp venue
    member_funds = { cex = 2e6, dex = 1e6 }   # each member's insurance fund, pledged (quote)
    skin_in_game = 5e5                     # the clearinghouse's own capital (quote)
    skin_position = "before_mutual"        # or "after_mutual"
    vm_haircut = true                      # haircut the members' variation-margin gains
    cover = 2                              # cover-2 of the stressed exposures
    stress = [{ name = "crash", shocks = { BTC = -0.25 } },
              { name = "rally", shocks = { BTC = 0.25 } }]

    [[backstops]]                          # one pool per chain (world/backstop.py)
    chain = "arbitrum"
    capacity = 5e6                         # quote
    latency_s = 12.0                       # bridge latency (or latency_blocks = 2 with
                                           # block_time_s = 6.0)
    fee_rate = 0.0005                      # bridge fee
    discount = 0.002                       # price concession on forced flow
    covers = "flow"                        # "flow", "deficits" or "both" (same for every pool)

    [risk_oracle]                          # cross-venue trigger (world/risk_oracle.py)
    level = 1.0
    target = 1.25
    step_fraction = 0.25
    max_orders = 16
    every = "step"                         # or "round"

A clearinghouse member pledges its fund: its own ``insurance_fund`` must be 0 (the venue then
declares its whole loss beyond margin as bad debt, which the clearinghouse meets). The oracle
watches the world's shared traders (``[[shared_traders]]``) on order-book venues.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import pandas as pd
from pydantic import Field

from deleverage.engine.venue import PerpVenue
from deleverage.errors import ConfigError
from deleverage.spec import PositiveFloat, _Frozen
from deleverage.world.backstop import BackstopLayer, BackstopNetwork, BackstopPool
from deleverage.world.clearing import ClearingHouse, ClearingLayer
from deleverage.world.exposure import perp_positions, stressed_deficits
from deleverage.world.hooks import RiskLayer
from deleverage.world.risk_oracle import RiskOracleConfig, RiskOracleLayer

if TYPE_CHECKING:
    from deleverage.world.config import WorldScenario
    from deleverage.world.core import World

__all__ = [
    "BackstopConfig",
    "ClearinghouseConfig",
    "RiskOracleSection",
    "StressConfig",
    "check_risk_sections",
    "has_risk_layers",
    "risk_layers",
    "without_risk_layers",
]

Fraction = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class StressConfig(_Frozen):
    """A named stress scenario: a relative move per asset (> -1)."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    shocks: Annotated[
        dict[str, Annotated[float, Field(gt=-1, allow_inf_nan=False)]], Field(min_length=1)
    ]


class ClearinghouseConfig(_Frozen):
    """``[clearinghouse]``: members, pledged funds, skin in the game, cover-n stress."""

    members: tuple[str, ...] | None = None
    member_funds: dict[str, NonNegFloat] = Field(default_factory=dict)
    skin_in_game: NonNegFloat = 0.0
    skin_position: Literal["before_mutual", "after_mutual"] = "before_mutual"
    vm_haircut: bool = True
    cover: Annotated[int, Field(ge=1, le=64)] = 2
    stress: Annotated[tuple[StressConfig, ...], Field(min_length=1)]


class BackstopConfig(_Frozen):
    """``[[backstops]]``: one pool of quote capital on one chain; the bridge latency in
    seconds (``latency_s``) or in blocks of the chain it bridges from (``latency_blocks`` x
    ``block_time_s``), not both (default 0)."""

    chain: Annotated[str, Field(min_length=1, max_length=64)]
    capacity: NonNegFloat
    latency_s: NonNegFloat | None = None
    latency_blocks: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    block_time_s: PositiveFloat = 12.0
    fee_rate: Fraction = 0.0
    discount: Fraction = 0.0
    covers: Literal["flow", "deficits", "both"] = "flow"

    @property
    def latency(self) -> float:
        """The bridge latency in seconds."""
        if self.latency_blocks is not None:
            return self.latency_blocks * self.block_time_s
        return self.latency_s or 0.0


class RiskOracleSection(_Frozen):
    """``[risk_oracle]``: the cross-venue trigger's rule."""

    level: PositiveFloat = 1.0
    target: PositiveFloat = 1.25
    step_fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.25
    max_orders: Annotated[int, Field(ge=1, le=10_000)] = 16
    every: Literal["step", "round"] = "step"


def check_risk_sections(
    *,
    venues: Sequence[str],
    assets: Sequence[str],
    clearinghouse: ClearinghouseConfig | None,
    backstops: Sequence[BackstopConfig],
    risk_oracle: RiskOracleSection | None,
) -> None:
    """Raise ``ValueError`` (a scenario validation message naming the field) on a reference to
    an unknown venue or asset, or inconsistent settings."""
    if clearinghouse is not None:
        members = clearinghouse.members or ()
        for name in (*members, *clearinghouse.member_funds):
            if name not in venues:
                raise ValueError(f"clearinghouse.members: {name!r} must be a venue {list(venues)}")
        if clearinghouse.members is not None:
            extra = sorted(set(clearinghouse.member_funds) - set(members))
            if extra:
                raise ValueError(f"clearinghouse.member_funds: {extra[0]!r} must be a member")
        for i, stress in enumerate(clearinghouse.stress):
            for asset in stress.shocks:
                if asset not in assets:
                    where = f"clearinghouse.stress.{i}.shocks"
                    raise ValueError(f"{where}: {asset!r} must be an asset {list(assets)}")
    chains = [b.chain for b in backstops]
    if len(set(chains)) != len(chains):
        raise ValueError(f"backstops: each chain once, were {chains}")
    if len({b.covers for b in backstops}) > 1:
        raise ValueError("backstops.covers must be the same for every pool")
    for i, pool in enumerate(backstops):
        if pool.latency_s is not None and pool.latency_blocks is not None:
            raise ValueError(f"backstops.{i}.latency_blocks: give latency_s or latency_blocks")
        if pool.fee_rate + pool.discount >= 1:
            raise ValueError(f"backstops.{i}.discount: fee_rate + discount must stay below 1")
    if clearinghouse is not None and any(b.covers != "flow" for b in backstops):
        # The world hands every layer the whole deficit: two layers would both absorb it.
        raise ValueError(
            "backstops.covers: only 'flow' with a [clearinghouse] (one layer absorbs deficits)"
        )
    if risk_oracle is not None and risk_oracle.target < risk_oracle.level:
        raise ValueError(
            f"risk_oracle.target must be >= level ({risk_oracle.level}), was {risk_oracle.target}"
        )


def has_risk_layers(scenario: WorldScenario) -> bool:
    """Whether the scenario asks for any risk layer."""
    return bool(scenario.clearinghouse or scenario.backstops or scenario.risk_oracle)


def without_risk_layers(scenario: WorldScenario) -> WorldScenario:
    """The same scenario (same seed, same shocks) without its risk layers."""
    return scenario.model_copy(update={"clearinghouse": None, "backstops": (), "risk_oracle": None})


def risk_layers(
    world: World,
    *,
    clearinghouse: ClearinghouseConfig | None,
    backstops: Sequence[BackstopConfig],
    risk_oracle: RiskOracleSection | None,
) -> list[RiskLayer]:
    """The layers a scenario asks for, built on the world's venues (before it runs)."""
    layers: list[RiskLayer] = []
    if clearinghouse is not None:
        layers.append(ClearingLayer(_house(world.venues, clearinghouse)))
    if backstops:
        network = BackstopNetwork(
            [
                BackstopPool(b.chain, b.capacity, latency_s=b.latency, fee_rate=b.fee_rate,
                             discount=b.discount)
                for b in backstops
            ]
        )  # fmt: skip
        covers = backstops[0].covers
        layers.append(
            BackstopLayer(
                network,
                absorb_flow=covers in ("flow", "both"),
                cover_deficits=covers in ("deficits", "both"),
            )
        )
    if risk_oracle is not None:
        config = RiskOracleConfig(
            level=risk_oracle.level, target=risk_oracle.target,
            step_fraction=risk_oracle.step_fraction, max_orders=risk_oracle.max_orders,
        )  # fmt: skip
        layers.append(RiskOracleLayer(config=config, every=risk_oracle.every))
    return layers


def _house(venues: Mapping[str, object], config: ClearinghouseConfig) -> ClearingHouse:
    names = config.members or tuple(n for n, v in venues.items() if isinstance(v, PerpVenue))
    perps: dict[str, PerpVenue] = {}
    for name in names:
        venue = venues[name]
        if not isinstance(venue, PerpVenue):
            raise ConfigError("clearinghouse.members", name, "must be an order-book (perp) venue")
        if venue.solvency().fund_balance > 0.0:
            raise ConfigError(
                f"venues.{name}.config.insurance_fund", venue.solvency().fund_balance,
                "must be 0 for a clearing member (pledge it in clearinghouse.member_funds)",
            )  # fmt: skip
        perps[name] = venue
    if not perps:
        raise ConfigError("clearinghouse.members", [], "must name at least one perp venue")
    positions = pd.concat([perp_positions(v) for v in perps.values()], ignore_index=True)
    stressed = {s.name: stressed_deficits(positions, s.shocks) for s in config.stress}
    return ClearingHouse.cover2(
        member_funds={n: config.member_funds.get(n, 0.0) for n in perps},
        stressed_losses={k: {n: v.get(n, 0.0) for n in perps} for k, v in stressed.items()},
        skin_in_game=config.skin_in_game, cover=config.cover,
        skin_position=config.skin_position, vm_haircut=config.vm_haircut,
    )  # fmt: skip
