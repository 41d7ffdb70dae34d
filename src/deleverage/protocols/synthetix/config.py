"""Synthetix perps v3 configuration (pydantic, bounded) and the population generator.

Field names follow the setters of ``markets/perps-market`` (``setLiquidationParameters``,
``setMaxLiquidationParameters``, ``setOrderFees``, ``setFundingParameters``,
``setKeeperRewardGuards``, ``setCollateralLiquidateRewardRatio``) in snake case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from deleverage import portable_math as pm
from deleverage.errors import ConfigError, ValidationError
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig
from deleverage.protocols.synthetix import math as sm
from deleverage.spec import _Frozen

__all__ = [
    "SynthetixConfig",
    "SynthetixMarketConfig",
    "SynthetixPopulation",
    "SynthetixPopulationConfig",
    "synthetix_population",
]

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Usd = Annotated[float, Field(ge=0.0, le=1e12, allow_inf_nan=False)]


class SynthetixMarketConfig(_Frozen):
    """One perps market (one asset) and its liquidation parameters."""

    asset: str = Field(min_length=1, max_length=32)
    #: Funding parameters: skewScale (base units).
    skew_scale: Annotated[float, Field(gt=0.0, le=1e15, allow_inf_nan=False)]
    #: maxFundingVelocity (funding rate per day, per day at full skew); 0: no funding.
    max_funding_velocity: Annotated[float, Field(ge=0.0, le=1_000.0, allow_inf_nan=False)] = 0.0
    #: Order fees (fractions of notional).
    maker_fee: Annotated[float, Field(ge=0.0, le=0.1)] = 0.0002
    taker_fee: Annotated[float, Field(ge=0.0, le=0.1)] = 0.0005
    #: initialMarginFraction, minimumInitialMarginRatio, maintenanceMarginScalar.
    initial_margin_ratio: Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)] = 2.0
    minimum_initial_margin_ratio: Fraction = 0.01
    maintenance_margin_scalar: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    #: minimumPositionMargin (USD) and liquidationRewardRatio (the flag reward ratio).
    minimum_position_margin: Usd = 0.0
    flag_reward_ratio: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0001
    #: maxLiquidationLimitAccumulationMultiplier, maxSecondsInLiquidationWindow, maxLiquidationPd
    #: (0 disables the premium/discount escape when a window is used up).
    max_liquidation_limit_accumulation_multiplier: Annotated[float, Field(ge=0.0, le=1e6)] = 1.0
    max_seconds_in_liquidation_window: Annotated[float, Field(ge=0.0, le=86_400.0)] = 30.0
    max_liquidation_pd: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0

    @property
    def max_liquidation_in_window(self) -> float:
        """Base units liquidatable per window (0: not limited)."""
        return sm.max_liquidation_amount_in_window(
            maker_fee=self.maker_fee,
            taker_fee=self.taker_fee,
            skew_scale=self.skew_scale,
            accumulation_multiplier=self.max_liquidation_limit_accumulation_multiplier,
            window_s=self.max_seconds_in_liquidation_window,
        )


class SynthetixPopulationConfig(_Frozen):
    """How :func:`synthetix_population` draws a scenario's accounts (see its docstring)."""

    accounts: Annotated[int, Field(ge=0, le=50_000_000)] = 10_000
    mean_notional_usd: Annotated[float, Field(gt=0.0, le=1e12, allow_inf_nan=False)] = 20_000.0
    leverage_low: Annotated[float, Field(ge=1.0, le=1_000.0)] = 1.5
    leverage_high: Annotated[float, Field(ge=1.0, le=1_000.0)] = 25.0
    markets_per_account: Annotated[int, Field(ge=1, le=256)] = 1
    long_fraction: Fraction = 0.6
    entry_dispersion: Annotated[float, Field(ge=0.0, le=2.0)] = 0.05

    @model_validator(mode="after")
    def _leverage_in_order(self) -> Self:
        if self.leverage_high < self.leverage_low:
            raise ConfigError(
                "SynthetixPopulationConfig.leverage_high",
                self.leverage_high,
                f"must be >= leverage_low ({self.leverage_low})",
            )
        return self


class SynthetixConfig(_Frozen):
    """A Synthetix perps v3 deployment: its markets, keeper reward guards and keeper costs.

    Examples
    --------
    >>> cfg = SynthetixConfig(markets=(SynthetixMarketConfig(asset="ETH", skew_scale=1e6),))
    >>> cfg.assets
    ('ETH',)
    """

    name: str = Field(default="synthetix", min_length=1, max_length=64)
    markets: Annotated[tuple[SynthetixMarketConfig, ...], Field(min_length=1, max_length=256)]
    #: setKeeperRewardGuards: minKeeperRewardUsd, minKeeperProfitRatioD18, maxKeeperRewardUsd,
    #: maxKeeperScalingRatioD18.
    min_keeper_reward_usd: Usd = 1.0
    min_keeper_profit_ratio: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0
    max_keeper_reward_usd: Usd = 500.0
    max_keeper_scaling_ratio: Annotated[float, Field(ge=0.0, le=10.0)] = 0.005
    #: collateralLiquidateRewardRatio (fraction of the collateral's value).
    collateral_liquidate_reward_ratio: Fraction = 0.0
    #: The keeper-cost oracle (KeeperCosts): USD per updated feed to flag and per liquidate
    #: call when no chain is given; gas units when one is (priced at the chain's gas price).
    flag_cost_usd_per_feed: Usd = 0.0
    liquidate_cost_usd: Usd = 0.0
    flag_gas_units_per_feed: Annotated[float, Field(ge=0.0, le=1e8)] = 150_000.0
    liquidate_gas_units: Annotated[float, Field(ge=0.0, le=1e8)] = 400_000.0
    #: Fraction of the exposure the pool takes over that its hedgers trade in the market.
    hedge_ratio: Fraction = 1.0
    #: Keepers on a chain (None: perfect keepers, every action at once and free); gas is paid
    #: in ``native_asset`` (default: the first market's asset); ``seed`` seeds the chain.
    keepers: KeepersConfig | None = None
    chain: ChainConfig = Field(default_factory=ChainConfig)
    native_asset: str | None = Field(default=None, min_length=1, max_length=32)
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    #: The accounts a scenario draws (:func:`synthetix_population`).
    population: SynthetixPopulationConfig = Field(default_factory=SynthetixPopulationConfig)

    @model_validator(mode="after")
    def _distinct_assets(self) -> Self:
        assets = [m.asset for m in self.markets]
        if len(set(assets)) != len(assets):
            raise ConfigError("SynthetixConfig.markets", assets, "must name each asset once")
        if self.native_asset is not None and self.native_asset not in assets:
            raise ConfigError(
                "SynthetixConfig.native_asset",
                self.native_asset,
                f"must be a market's asset {assets}",
            )
        if self.population.markets_per_account > len(assets):
            raise ConfigError(
                "SynthetixConfig.population.markets_per_account",
                self.population.markets_per_account,
                f"must be <= the number of markets ({len(assets)})",
            )
        if self.max_keeper_reward_usd < self.min_keeper_reward_usd:
            raise ConfigError(
                "SynthetixConfig.max_keeper_reward_usd",
                self.max_keeper_reward_usd,
                f"must be >= min_keeper_reward_usd ({self.min_keeper_reward_usd})",
            )
        return self

    @property
    def assets(self) -> tuple[str, ...]:
        """The markets' assets, in order."""
        return tuple(m.asset for m in self.markets)

    @property
    def guards(self) -> dict[str, float]:
        """The keeper reward guards as keyword arguments of ``math.keeper_reward``."""
        return {
            "min_keeper_reward_usd": self.min_keeper_reward_usd,
            "min_keeper_profit_ratio": self.min_keeper_profit_ratio,
            "max_keeper_reward_usd": self.max_keeper_reward_usd,
            "max_keeper_scaling_ratio": self.max_keeper_scaling_ratio,
        }


class SynthetixPopulation(NamedTuple):
    """Accounts as arrays: USD collateral ``(n,)``, signed sizes and last interaction prices
    ``(n, markets)`` (base units; quote per base)."""

    collateral_usd: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]
    entry_price: npt.NDArray[np.float64]

    def check(self, markets: int) -> Self:
        """Return self, or raise :class:`ValidationError` naming the first bad field."""
        n = self.collateral_usd.shape[0]
        if self.collateral_usd.ndim != 1:
            raise ValidationError(
                "population.collateral_usd", self.collateral_usd.shape, "must be 1-D"
            )
        for field in ("size", "entry_price"):
            arr = getattr(self, field)
            if arr.shape != (n, markets):
                raise ValidationError(
                    f"population.{field}", arr.shape, f"must have shape ({n}, {markets})"
                )
        bad = ~np.isfinite(self.collateral_usd) | (self.collateral_usd < 0.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"population.collateral_usd[{i}]", float(self.collateral_usd[i]), "must be >= 0"
            )
        if not np.isfinite(self.size).all():
            i, j = (int(x) for x in np.argwhere(~np.isfinite(self.size))[0])
            raise ValidationError(
                f"population.size[{i},{j}]", float(self.size[i, j]), "must be finite"
            )
        bad_entry = (self.size != 0.0) & ~(np.isfinite(self.entry_price) & (self.entry_price > 0.0))
        if bad_entry.any():
            i, j = (int(x) for x in np.argwhere(bad_entry)[0])
            raise ValidationError(
                f"population.entry_price[{i},{j}]",
                float(self.entry_price[i, j]),
                "must be a finite number > 0 where the size is not 0",
            )
        return self


def synthetix_population(
    n: int,
    *,
    seed: int,
    config: SynthetixConfig,
    prices: Mapping[str, float],
    mean_notional_usd: float = 20_000.0,
    leverage: tuple[float, float] = (1.5, 25.0),
    markets_per_account: int = 1,
    long_fraction: float = 0.6,
    entry_dispersion: float = 0.05,
) -> SynthetixPopulation:
    """Draw ``n`` accounts, each with positions in ``markets_per_account`` markets drawn at
    random: log-normal notionals (mean ``mean_notional_usd``), entries
    ``price x exp(N(0, entry_dispersion))``, USD collateral = total notional / leverage with
    leverage log-uniform in ``leverage``."""
    if n < 0:
        raise ValidationError("n", n, "must be >= 0")
    m = len(config.markets)
    if not 1 <= markets_per_account <= m:
        raise ValidationError("markets_per_account", markets_per_account, f"must be in [1, {m}]")
    missing = [a for a in config.assets if a not in prices]
    if missing:
        raise ValidationError("prices", missing[0], "must give every market's price")
    lo, hi = leverage
    if not 1.0 <= lo <= hi:
        raise ValidationError("leverage", leverage, "must be (low, high) with 1 <= low <= high")
    if not 0.0 <= long_fraction <= 1.0:
        raise ValidationError("long_fraction", long_fraction, "must be in [0, 1]")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    price = np.array([float(prices[a]) for a in config.assets])
    held = np.argsort(rng.random((n, m)), axis=1)[:, :markets_per_account]
    notional = np.zeros((n, m))
    rows = np.repeat(np.arange(n), markets_per_account)
    notional[rows, held.ravel()] = rng.lognormal(
        pm.log(mean_notional_usd) - 0.5, 1.0, n * markets_per_account
    )
    entry = price * pm.exp(rng.normal(0.0, entry_dispersion, (n, m)))
    side = np.where(rng.random((n, m)) < long_fraction, 1.0, -1.0)
    size = side * notional / entry
    lev = pm.exp(rng.uniform(pm.log(lo), pm.log(hi), n))
    return SynthetixPopulation(
        collateral_usd=notional.sum(axis=1) / lev, size=size, entry_price=entry
    ).check(m)
