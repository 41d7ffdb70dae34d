"""GMX v2 market configuration (pydantic, bounded) and the population generator.

Field names follow the DataStore keys of gmx-io/gmx-synthetics (``Keys.sol``) in snake case;
defaults are the repository's ``config/markets.ts`` base values for a major market where one
exists (docs/formulas.md §GMX cites them).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from deleverage import portable_math as pm
from deleverage.errors import ConfigError, ValidationError
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig
from deleverage.spec import _Frozen

__all__ = ["GmxConfig", "GmxPopulation", "GmxPopulationConfig", "gmx_population"]

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, le=1e15, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, le=1e15, allow_inf_nan=False)]


class GmxPopulationConfig(_Frozen):
    """How :func:`gmx_population` draws a scenario's positions (see its docstring)."""

    positions: Annotated[int, Field(ge=0, le=50_000_000)] = 10_000
    mean_size_usd: Annotated[float, Field(gt=0.0, le=1e12, allow_inf_nan=False)] = 20_000.0
    leverage_low: Annotated[float, Field(ge=1.0, le=1_000.0)] = 2.0
    leverage_high: Annotated[float, Field(ge=1.0, le=1_000.0)] = 50.0
    long_fraction: Fraction = 0.6
    long_token_collateral_fraction: Fraction = 0.5
    entry_dispersion: Annotated[float, Field(ge=0.0, le=2.0)] = 0.05

    @model_validator(mode="after")
    def _leverage_in_order(self) -> Self:
        if self.leverage_high < self.leverage_low:
            raise ConfigError(
                "GmxPopulationConfig.leverage_high",
                self.leverage_high,
                f"must be >= leverage_low ({self.leverage_low})",
            )
        return self


class GmxConfig(_Frozen):
    """One GMX v2 market: an index asset, a pool of the long token (the asset itself) and the
    short token (a USD stablecoin at 1), and its risk parameters.

    Examples
    --------
    >>> GmxConfig(asset="ETH", long_pool_tokens=1_000.0, short_pool_usd=5e6).min_collateral_factor
    0.01
    """

    name: str = Field(default="gmx", min_length=1, max_length=64)
    asset: str = Field(default="ETH", min_length=1, max_length=32)
    #: The long token when it is another asset than the index (GMX's SOL/USD market is backed
    #: by WETH); None: the index asset itself.
    long_token_asset: str | None = Field(default=None, min_length=1, max_length=32)
    #: Pool amounts at start: long token (base units of the asset) and short token (USD).
    long_pool_tokens: Positive = 1_000.0
    short_pool_usd: Positive = 5_000_000.0
    #: Relative half-spread of the oracle's min / max prices around its price.
    oracle_half_spread: Annotated[float, Field(ge=0.0, le=0.05, allow_inf_nan=False)] = 0.0
    #: MIN_COLLATERAL_USD (USD) and minCollateralFactorForLiquidation.
    min_collateral_usd: NonNegative = 1.0
    min_collateral_factor: Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)] = 0.01
    #: maxPositionImpactFactorForLiquidations: cap on negative impact counted at liquidation.
    max_impact_factor_for_liquidations: Fraction = 0.01
    #: Position impact: positive / negative factors on imbalance ** exponent (USD).
    positive_impact_factor: Annotated[float, Field(ge=0.0, le=1e-3, allow_inf_nan=False)] = 0.0
    negative_impact_factor: Annotated[float, Field(ge=0.0, le=1e-3, allow_inf_nan=False)] = 0.0
    impact_exponent: Annotated[float, Field(ge=1.0, le=3.0, allow_inf_nan=False)] = 2.0
    #: positionFeeFactor when the close improves / worsens balance; liquidationFeeFactor.
    position_fee_factor_positive: Annotated[float, Field(ge=0.0, le=0.05)] = 0.0004
    position_fee_factor_negative: Annotated[float, Field(ge=0.0, le=0.05)] = 0.0006
    liquidation_fee_factor: Annotated[float, Field(ge=0.0, le=0.05)] = 0.0
    #: Borrowing fee accrued on size (fraction of size per second).
    borrowing_rate_per_s: Annotated[float, Field(ge=0.0, le=1e-5, allow_inf_nan=False)] = 0.0
    #: Static funding: fundingFactor, fundingExponentFactor, maxFundingFactorPerSecond.
    funding_factor: Annotated[float, Field(ge=0.0, le=1e-3, allow_inf_nan=False)] = 0.0
    funding_exponent: Annotated[float, Field(ge=1.0, le=3.0, allow_inf_nan=False)] = 1.0
    max_funding_factor_per_s: Annotated[float, Field(ge=0.0, le=1e-5, allow_inf_nan=False)] = 1e-7
    #: MAX_PNL_FACTOR_FOR_TRADERS, MAX_PNL_FACTOR_FOR_ADL, MIN_PNL_FACTOR_AFTER_ADL.
    max_pnl_factor_for_traders: Annotated[float, Field(gt=0.0, le=10.0)] = 0.9
    max_pnl_factor_for_adl: Annotated[float, Field(gt=0.0, le=10.0)] = 0.85
    min_pnl_factor_after_adl: Annotated[float, Field(ge=0.0, lt=10.0)] = 0.77
    adl_enabled: bool = True
    #: The execution fee a liquidation or ADL keeper is paid (USD): its incentive.
    execution_fee_usd: NonNegative = 1.0
    #: Fraction of the exposure the pool takes over that its hedgers trade in the market.
    hedge_ratio: Fraction = 1.0
    #: Keepers on a chain (None: perfect keepers, every liquidation at once and free); gas is
    #: paid in ``native_asset`` (default: the long token's asset); ``seed`` seeds the chain.
    keepers: KeepersConfig | None = None
    chain: ChainConfig = Field(default_factory=ChainConfig)
    native_asset: str | None = Field(default=None, min_length=1, max_length=32)
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    #: The positions a scenario draws for this market (:func:`gmx_population`).
    population: GmxPopulationConfig = Field(default_factory=GmxPopulationConfig)

    @model_validator(mode="after")
    def _adl_factors(self) -> Self:
        if self.long_token_asset == self.asset:
            raise ConfigError(
                "GmxConfig.long_token_asset", self.long_token_asset, "must differ from asset"
            )
        watched = {self.asset, self.long_token_asset or self.asset}
        if self.native_asset is not None and self.native_asset not in watched:
            raise ConfigError(
                "GmxConfig.native_asset",
                self.native_asset,
                f"must be an asset the market watches {sorted(watched)}",
            )
        if self.min_pnl_factor_after_adl >= self.max_pnl_factor_for_adl:
            raise ConfigError(
                "GmxConfig.min_pnl_factor_after_adl",
                self.min_pnl_factor_after_adl,
                f"must be below max_pnl_factor_for_adl ({self.max_pnl_factor_for_adl})",
            )
        return self


class GmxPopulation(NamedTuple):
    """Positions as arrays (one entry per position)."""

    is_long: npt.NDArray[np.bool_]
    #: Collateral amount in its token (asset units when ``collateral_is_long_token``, else USD).
    collateral_amount: npt.NDArray[np.float64]
    collateral_is_long_token: npt.NDArray[np.bool_]
    size_usd: npt.NDArray[np.float64]
    size_tokens: npt.NDArray[np.float64]

    def check(self) -> Self:
        """Return self, or raise :class:`ValidationError` naming the first bad field."""
        n = self.size_usd.shape[0]
        for field in self._fields:
            arr = np.asarray(getattr(self, field))
            if arr.shape != (n,):
                raise ValidationError(f"population.{field}", arr.shape, f"must have shape ({n},)")
        for field in ("collateral_amount", "size_usd", "size_tokens"):
            arr = getattr(self, field)
            bad = ~np.isfinite(arr) | (arr < 0.0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValidationError(f"population.{field}[{i}]", float(arr[i]), "must be >= 0")
        half_open = (self.size_usd > 0.0) != (self.size_tokens > 0.0)
        if half_open.any():
            i = int(np.flatnonzero(half_open)[0])
            raise ValidationError(
                f"population.size_tokens[{i}]",
                float(self.size_tokens[i]),
                "must be > 0 exactly where size_usd is > 0",
            )
        return self


def gmx_population(
    n: int,
    *,
    seed: int,
    price: float,
    mean_size_usd: float = 20_000.0,
    leverage: tuple[float, float] = (2.0, 50.0),
    long_fraction: float = 0.6,
    long_token_collateral_fraction: float = 0.5,
    entry_dispersion: float = 0.05,
) -> GmxPopulation:
    """Draw ``n`` positions around ``price``: log-normal sizes (mean ``mean_size_usd``),
    leverage log-uniform in ``leverage``, entries ``price x exp(N(0, entry_dispersion))``,
    collateral in the long token with probability ``long_token_collateral_fraction`` (valued
    at ``price``), otherwise in USD."""
    if n < 0:
        raise ValidationError("n", n, "must be >= 0")
    if not np.isfinite(price) or price <= 0.0:
        raise ValidationError("price", price, "must be a finite number > 0")
    lo, hi = leverage
    if not 1.0 <= lo <= hi:
        raise ValidationError("leverage", leverage, "must be (low, high) with 1 <= low <= high")
    for field, value in (
        ("long_fraction", long_fraction),
        ("long_token_collateral_fraction", long_token_collateral_fraction),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValidationError(field, value, "must be in [0, 1]")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    size_usd = rng.lognormal(pm.log(mean_size_usd) - 0.5, 1.0, n)
    lev = pm.exp(rng.uniform(pm.log(lo), pm.log(hi), n))
    entry = price * pm.exp(rng.normal(0.0, entry_dispersion, n))
    in_token = rng.random(n) < long_token_collateral_fraction
    collateral_usd = size_usd / lev
    return GmxPopulation(
        is_long=rng.random(n) < long_fraction,
        collateral_amount=np.where(in_token, collateral_usd / price, collateral_usd),
        collateral_is_long_token=in_token,
        size_usd=size_usd,
        size_tokens=size_usd / entry,
    ).check()
