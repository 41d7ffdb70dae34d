"""Configuration of an Aave v3.3 venue, and a population of accounts for it.

:class:`AaveConfig` (pydantic, frozen, unknown fields rejected, every number bounded) names the
reserves, the protocol's liquidation constants, the chain and the keepers; a scenario's
``[[venues]] kind = "aave"`` block maps onto it (:meth:`AaveConfig.from_mapping`).
:func:`aave_population` draws accounts (collateral and debt per reserve, as arrays) at given
prices; :func:`deleverage.protocols.aave.venue.build_aave` puts the two together.

Reserve rules checked as ``PoolConfigurator.configureReserveAsCollateral`` (v3.3.0) checks
them: ``ltv <= liquidation_threshold``; with a threshold, ``liquidation_bonus > 1`` and
``liquidation_threshold x liquidation_bonus <= 1`` (a liquidation never needs more collateral
than the account has while ``HF`` is near 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, StringConstraints, model_validator

from deleverage import portable_linalg as pla
from deleverage import portable_math as pm
from deleverage.errors import ValidationError
from deleverage.protocols.aave.math import (
    CLOSE_FACTOR_HF_THRESHOLD,
    MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD,
    MIN_LEFTOVER_BASE,
)
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.spec import _Frozen

__all__ = [
    "AaveConfig",
    "AavePopulation",
    "AavePopulationConfig",
    "AaveReserve",
    "aave_population",
    "reserve_prices",
]

FloatArray = npt.NDArray[np.float64]
_Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
_Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


class AaveReserve(_Frozen):
    """One reserve: a token that can be supplied as collateral and borrowed."""

    #: The reserve's token (``WETH``, ``USDC``).
    name: _Name
    #: The world asset whose price the reserve reads (``ETH``); None: the quote currency
    #: itself (a stablecoin priced 1).
    asset: _Name | None = None
    #: Token decimals (recorded; the float model does not round to them).
    decimals: Annotated[int, Field(ge=0, le=36)] = 18
    #: Loan-to-value: the most an account may borrow against it (used by the population).
    ltv: _Fraction = 0.0
    #: Liquidation threshold ``LT`` (0: not a collateral).
    liquidation_threshold: _Fraction = 0.0
    #: Liquidation bonus as a multiplier (1.05 for 105.00%); 1 where ``LT = 0``.
    liquidation_bonus: Annotated[float, Field(ge=1.0, le=2.0)] = 1.0
    #: Share of the bonus that goes to the treasury (``liquidationProtocolFee``, 0.1 = 10%).
    protocol_fee: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    #: Depth keepers expect when they sell this token (base units per 1% price move, a
    #: constant-depth book); None: no slippage.
    sale_depth_per_pct: Annotated[float, Field(gt=0.0, le=1e15)] | None = None

    @model_validator(mode="after")
    def _pool_configurator_rules(self) -> Self:
        lt, bonus = self.liquidation_threshold, self.liquidation_bonus
        if self.ltv > lt:
            raise ValueError(f"ltv must be <= liquidation_threshold ({lt}), was {self.ltv}")
        if lt > 0.0 and bonus <= 1.0:
            raise ValueError(f"liquidation_bonus must be > 1 when LT > 0, was {bonus}")
        if lt * bonus > 1.0 + 1e-12:
            raise ValueError(
                f"liquidation_bonus must keep liquidation_threshold x bonus <= 1 "
                f"(LT {lt}), was {bonus}"
            )
        return self


def _default_keepers() -> KeepersConfig:
    return KeepersConfig(
        keepers=(
            KeeperSpec(capital=5e6, latency_blocks=1, gas_units=450_000.0, min_profit=20.0),
            KeeperSpec(capital=1e6, latency_blocks=2, gas_units=400_000.0, min_profit=10.0),
            KeeperSpec(capital=2e5, latency_blocks=5, gas_units=500_000.0, min_profit=5.0),
        ),
        sale_delay_blocks=1,
    )


def _default_reserves() -> tuple[AaveReserve, ...]:
    # Aave v3 Ethereum-like parameters (docs/formulas.md §A7 gives the sources).
    return (
        AaveReserve(
            name="WETH",
            asset="ETH",
            decimals=18,
            ltv=0.80,
            liquidation_threshold=0.83,
            liquidation_bonus=1.05,
            protocol_fee=0.10,
            sale_depth_per_pct=5_000.0,
        ),
        AaveReserve(
            name="USDC",
            asset=None,
            decimals=6,
            ltv=0.75,
            liquidation_threshold=0.78,
            liquidation_bonus=1.045,
            protocol_fee=0.10,
        ),
    )


class AavePopulationConfig(_Frozen):
    """How :func:`aave_population` draws the accounts of a scenario's venue (§A8)."""

    #: Number of accounts.
    accounts: Annotated[int, Field(ge=0, le=50_000_000)] = 10_000
    #: Median collateral value of an account (quote).
    collateral_median: Annotated[float, Field(gt=0.0, le=1e12)] = 20_000.0
    #: Log standard deviation of the collateral value.
    collateral_sigma: Annotated[float, Field(ge=0.0, le=5.0)] = 1.2
    #: Least health factor drawn (> 1: nobody starts liquidatable).
    min_health: Annotated[float, Field(gt=1.0, le=100.0)] = 1.03
    #: Mean of the exponential excess of the health factor over ``min_health``.
    health_scale: Annotated[float, Field(ge=0.0, le=100.0)] = 0.6
    #: Probability that an account holds a second collateral reserve (30% of its value).
    second_collateral_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    #: Relative weight of each collateral reserve (by name) as an account's main collateral;
    #: None: equal weights over the reserves with ``ltv > 0``.
    collateral_weights: dict[_Name, Annotated[float, Field(ge=0.0, le=1e6)]] | None = None


class AaveConfig(_Frozen):
    """An Aave v3.3 market: reserves, liquidation constants, chain and keepers."""

    #: The venue's name in a world.
    name: _Name = "aave"
    #: The reserves (names unique).
    reserves: Annotated[tuple[AaveReserve, ...], Field(min_length=1, max_length=64)] = Field(
        default_factory=_default_reserves
    )
    #: The asset whose price is the chain's native token (gas is paid in it).
    native_asset: _Name = "ETH"
    #: Above this health factor the 50% close factor may apply (``CLOSE_FACTOR_HF_THRESHOLD``).
    close_factor_hf_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = CLOSE_FACTOR_HF_THRESHOLD
    #: Reserve value (quote) below which the close factor is 100%.
    min_base_max_close_factor_threshold: Annotated[float, Field(ge=0.0, le=1e12)] = (
        MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
    )
    #: Least value (quote) a partial liquidation may leave of the debt and of the collateral.
    min_leftover_base: Annotated[float, Field(ge=0.0, le=1e12)] = MIN_LEFTOVER_BASE
    #: The chain (by default with price-elastic demand, so gas settles between spikes).
    chain: ChainConfig = Field(default_factory=lambda: ChainConfig(demand_elasticity=1.0))
    keepers: KeepersConfig = Field(default_factory=_default_keepers)
    #: The accounts a scenario draws for this venue (:func:`aave_population`).
    population: AavePopulationConfig = Field(default_factory=AavePopulationConfig)
    #: Seed of the chain's gas noise.
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0

    @model_validator(mode="after")
    def _names_and_native(self) -> Self:
        names = [r.name for r in self.reserves]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"reserves must have unique names, was {dupes[0]!r} twice")
        if self.native_asset not in self.assets:
            raise ValueError(
                f"native_asset must be the asset of a reserve {list(self.assets)}, "
                f"was {self.native_asset!r}"
            )
        weights = self.population.collateral_weights
        if weights is not None:
            usable = [r.name for r in self.reserves if r.ltv > 0.0 and r.liquidation_threshold > 0]
            for name in weights:
                if name not in usable:
                    raise ValueError(
                        f"population.collateral_weights must name collateral reserves "
                        f"{usable}, was {name!r}"
                    )
            if sum(weights.values()) <= 0.0:
                raise ValueError(
                    f"population.collateral_weights must have a positive sum, was {weights}"
                )
        return self

    @property
    def assets(self) -> tuple[str, ...]:
        """The priced assets the reserves read, in first-seen order."""
        seen: dict[str, None] = {}
        for reserve in self.reserves:
            if reserve.asset is not None:
                seen.setdefault(reserve.asset, None)
        return tuple(seen)


class AavePopulation(NamedTuple):
    """Accounts as arrays: token amounts per (account, reserve)."""

    #: Collateral supplied, shape (accounts, reserves), tokens.
    collateral: FloatArray
    #: Debt, shape (accounts, reserves), tokens.
    debt: FloatArray


def _check_prices(config: AaveConfig, prices: Mapping[str, float]) -> None:
    for asset in config.assets:
        value = prices.get(asset)
        if value is None:
            raise ValidationError("prices", asset, "is missing: every reserve asset needs one")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"prices[{asset}]", value, "must be a number")
        if not (math.isfinite(value) and value > 0):
            raise ValidationError(f"prices[{asset}]", value, "must be a finite number > 0")


def reserve_prices(config: AaveConfig, prices: Mapping[str, float]) -> FloatArray:
    """Price of each reserve's token (quote), 1 for the quote currency's reserves."""
    _check_prices(config, prices)
    return np.array(
        [1.0 if r.asset is None else float(prices[r.asset]) for r in config.reserves],
        dtype=np.float64,
    )


def aave_population(
    config: AaveConfig,
    n: int | None = None,
    *,
    seed: int,
    prices: Mapping[str, float],
    collateral_median: float | None = None,
    collateral_sigma: float | None = None,
    min_health: float | None = None,
    health_scale: float | None = None,
    second_collateral_share: float | None = None,
) -> AavePopulation:
    """Draw ``n`` accounts at ``prices`` (deterministic given ``seed``; docs/formulas.md §A8).

    Arguments left out come from ``config.population``.

    Each account supplies one collateral reserve (``LT > 0``), a second one with probability
    ``second_collateral_share`` (30% of its value), and borrows one reserve of another asset.
    Collateral value (quote) is log-normal (median ``collateral_median``, log-sd
    ``collateral_sigma``); the health factor is ``min_health + Exp(health_scale)``, raised where
    needed so the debt stays within the loan-to-value; debt value = ``sum C LT / HF``.
    """
    spec = config.population
    n = spec.accounts if n is None else n
    collateral_median = spec.collateral_median if collateral_median is None else collateral_median
    collateral_sigma = spec.collateral_sigma if collateral_sigma is None else collateral_sigma
    min_health = spec.min_health if min_health is None else min_health
    health_scale = spec.health_scale if health_scale is None else health_scale
    if second_collateral_share is None:
        second_collateral_share = spec.second_collateral_share
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValidationError("n", n, "must be an integer >= 0")
    if not (math.isfinite(collateral_median) and collateral_median > 0.0):
        raise ValidationError("collateral_median", collateral_median, "must be finite and > 0")
    for field, knob in (("collateral_sigma", collateral_sigma), ("health_scale", health_scale)):
        if not (math.isfinite(knob) and knob >= 0.0):
            raise ValidationError(field, knob, "must be finite and >= 0")
    if not (math.isfinite(min_health) and min_health > 1.0):
        raise ValidationError("min_health", min_health, "must be a finite number > 1")
    if not 0.0 <= second_collateral_share <= 1.0:
        raise ValidationError(
            "second_collateral_share", second_collateral_share, "must be in [0, 1]"
        )
    p = reserve_prices(config, prices)
    reserves = config.reserves
    lt = np.array([r.liquidation_threshold for r in reserves])
    ltv = np.array([r.ltv for r in reserves])
    asset_of = [r.asset for r in reserves]
    collaterals = np.flatnonzero((lt > 0.0) & (ltv > 0.0))
    if collaterals.size == 0:
        raise ValidationError("reserves", len(reserves), "must include a collateral (ltv > 0)")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xAAFE]))
    r_count = len(reserves)
    value = np.zeros((n, r_count))
    weights = config.population.collateral_weights
    if weights is None:  # equal weights (the draws of earlier versions, unchanged)
        first = rng.choice(collaterals, size=n)
    else:
        raw = np.array([weights.get(reserves[k].name, 0.0) for k in collaterals])
        first = rng.choice(collaterals, size=n, p=raw / raw.sum())
    second = rng.choice(collaterals, size=n)
    total = collateral_median * pm.exp(collateral_sigma * rng.standard_normal(n))
    split = np.where(rng.random(n) < second_collateral_share, 0.3, 0.0)
    rows = np.arange(n)
    np.add.at(value, (rows, first), total * (1.0 - split))
    np.add.at(value, (rows, second), total * split)
    # A debt reserve whose asset differs from the first collateral's.
    debt_choice = np.empty(n, dtype=np.int64)
    for k in collaterals:
        others = [j for j in range(r_count) if asset_of[j] != asset_of[k]]
        mask = first == k
        if not others:
            raise ValidationError(
                "reserves", reserves[k].name, "needs a reserve of another asset to borrow"
            )
        debt_choice[mask] = rng.choice(others, size=int(mask.sum()))
    weighted = pla.matmul(value, lt)
    borrowable = pla.matmul(value, ltv)
    health = min_health + rng.exponential(health_scale, size=n)
    health = np.maximum(health, weighted / np.maximum(borrowable, 1e-300))
    debt_value = weighted / health
    collateral = value / p
    debt = np.zeros((n, r_count))
    debt[rows, debt_choice] = debt_value / p[debt_choice]
    return AavePopulation(collateral=collateral, debt=debt)
