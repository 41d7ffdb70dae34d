"""Risk figures of one DeFi position: an Aave account, a Maker vault, a GMX v2 position, a
Synthetix perps v3 position (docs/formulas.md §12, "DeFi positions and populations").

Each function reads its protocol's configuration (:mod:`deleverage.protocols`) and applies the
protocol's pure math; the liquidation prices are closed forms of the protocol's own
liquidation condition with every other price held fixed, and the probability of reaching them
within a horizon is :func:`~deleverage.analytics.first_passage.gbm_hit_probability` (GBM,
continuous monitoring; for Maker also :func:`~deleverage.analytics.first_passage.
discrete_hit_probability` at the OSM's pokes). Amounts are token units, values and prices in
the quote currency (USD, DAI); every function returns a frozen dataclass of floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from deleverage.analytics.first_passage import discrete_hit_probability, gbm_hit_probability
from deleverage.errors import ValidationError
from deleverage.protocols.aave import math as am
from deleverage.protocols.aave.config import AaveConfig, reserve_prices
from deleverage.protocols.gmx import math as gm
from deleverage.protocols.gmx.config import GmxConfig
from deleverage.protocols.maker import math as mk
from deleverage.protocols.maker.config import MakerConfig
from deleverage.protocols.synthetix import math as sm
from deleverage.protocols.synthetix.config import SynthetixConfig

__all__ = [
    "AaveAccountMetrics",
    "AaveAssetLevel",
    "GmxPositionMetrics",
    "Horizon",
    "MakerVaultMetrics",
    "SynthetixPositionMetrics",
    "aave_account_metrics",
    "aave_asset_levels",
    "gmx_position_metrics",
    "maker_vault_metrics",
    "synthetix_position_metrics",
]

SECONDS_PER_HOUR = 3600.0
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Horizon:
    """The price model of the first-passage probabilities: GBM with annualized ``volatility``
    and ``drift``, over ``hours``."""

    volatility: float = 0.8
    drift: float = 0.0
    hours: float = 24.0

    @property
    def seconds(self) -> float:
        """The horizon in seconds."""
        return self.hours * SECONDS_PER_HOUR


def _hit(price: float, level: float, horizon: Horizon, *, down: bool) -> float:
    """P(GBM from ``price`` touches ``level`` within the horizon); 0 without a level."""
    if not (math.isfinite(level) and level > 0.0):
        return 0.0
    return float(
        gbm_hit_probability(
            price,
            level,
            horizon.drift,
            horizon.volatility,
            horizon.seconds,
            direction="down" if down else "up",
        )
    )


# --------------------------------------------------------------------------------------------
# Aave v3.3
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AaveAssetLevel:
    """The price of one priced asset at which the account's health factor reaches 1."""

    asset: str
    price: float  # now, quote per unit
    liquidation_price: float  # NaN where no positive price gives HF = 1
    distance: float  # liquidation_price / price - 1
    falls: bool  # True: the account is liquidated when this price falls
    probability: float  # of touching liquidation_price within the horizon


@dataclass(frozen=True, slots=True)
class AaveAccountMetrics:
    """An Aave account's health and what a liquidation of it would do (token units; values in
    quote). ``at_price`` is the price of ``driver`` the liquidation figures are computed at:
    the current one when ``HF < 1``, else the driver's liquidation price (just crossed)."""

    collateral_value: float
    debt_value: float
    health_factor: float
    levels: tuple[AaveAssetLevel, ...]
    collateral_reserve: str  # the liquidation pair: largest collateral, largest debt
    debt_reserve: str
    driver: str  # the asset whose price the liquidation figures assume
    at_price: float
    health_at: float  # health factor at that price
    close_factor: float  # share of the debt reserve that one call may repay
    debt_repaid: float  # debt tokens
    collateral_seized: float  # collateral tokens, bonus included
    bonus: float  # collateral tokens of the seized amount that are bonus
    protocol_fee: float  # collateral tokens to the treasury
    to_liquidator: float  # collateral tokens
    health_after: float
    status: int  # math.LIQUIDATABLE, NOT_BELOW_THRESHOLD or LEAVES_DUST
    deficit_value: float  # quote, debt burned into the reserves' deficit


def _reserve_index(config: AaveConfig, key: str, option: str) -> int:
    """The reserve named ``key`` (its token, e.g. ``WETH``, or its asset, e.g. ``ETH``)."""
    for k, reserve in enumerate(config.reserves):
        if key.upper() in (reserve.name.upper(), (reserve.asset or "").upper()):
            return k
    names = [r.name for r in config.reserves]
    raise ValidationError(option, key, f"must name a reserve (or its asset) of {names}")


def _amounts(config: AaveConfig, amounts: Mapping[str, float], option: str) -> FloatArray:
    out = np.zeros(len(config.reserves))
    for key, value in amounts.items():
        if not (math.isfinite(value) and value >= 0.0):
            raise ValidationError(option, f"{key}={value}", "must be a finite amount >= 0")
        out[_reserve_index(config, key, option)] += float(value)
    return out


def aave_asset_levels(
    config: AaveConfig,
    collateral: Mapping[str, float],
    debt: Mapping[str, float],
    prices: Mapping[str, float],
) -> dict[str, tuple[float, bool]]:
    """Per priced asset the account holds as collateral: the price at which ``HF = 1`` with
    every other price fixed, and whether the account is liquidated when that price falls.

    With ``w_a = sum over the asset's reserves of c_r LT_r`` (tokens weighted by the
    liquidation threshold) and ``d_a`` the asset's debt tokens,
    ``HF(x) = 1  <=>  x (w_a - d_a) = D_other - W_other``, so ``x = (D_other - W_other) /
    (w_a - d_a)`` (§A6 for every collateral asset); NaN where that is not a positive number.

    Examples
    --------
    >>> levels = aave_asset_levels(AaveConfig(), {"ETH": 10.0}, {"USDC": 17_000.0},
    ...                            {"ETH": 2_000.0})
    >>> round(levels["ETH"][0], 2), levels["ETH"][1]
    (2048.19, True)
    """
    c = _amounts(config, collateral, "--collateral")
    d = _amounts(config, debt, "--debt")
    p = reserve_prices(config, prices)
    lt = np.array([r.liquidation_threshold for r in config.reserves])
    return {
        asset: _asset_level(config, c, d, p, asset)
        for asset in config.assets
        if (c * lt)[[r.asset == asset for r in config.reserves]].sum() > 0.0
    }


def _asset_level(
    config: AaveConfig, c: FloatArray, d: FloatArray, p: FloatArray, asset: str
) -> tuple[float, bool]:
    """``HF = 1`` in the price of ``asset`` (collateral, debt or both), the rest fixed: the
    level (NaN unless positive and finite) and whether the account is liquidated as it falls."""
    lt = np.array([r.liquidation_threshold for r in config.reserves])
    mine = np.array([r.asset == asset for r in config.reserves])
    slope = float((c * lt)[mine].sum() - d[mine].sum())
    rest = float((d * p)[~mine].sum() - (c * lt * p)[~mine].sum())
    level = rest / slope if slope != 0.0 else math.nan
    return (level if math.isfinite(level) and level > 0.0 else math.nan), slope > 0.0


def aave_account_metrics(
    config: AaveConfig,
    collateral: Mapping[str, float],
    debt: Mapping[str, float],
    prices: Mapping[str, float],
    horizon: Horizon,
) -> AaveAccountMetrics:
    """Health factor, liquidation price of each collateral asset, and ``liquidationCall``
    with ``debtToCover = max`` on the largest collateral reserve and the largest debt reserve
    (:func:`deleverage.protocols.aave.math.liquidation_plan`, §A1-§A6).

    Below ``HF = 1`` the call is valued at the current prices; above it at the price of the
    largest collateral's asset (or, with only quote collateral, the largest debt's asset)
    that brings ``HF`` just below 1, the moment the account becomes liquidatable.

    Raises
    ------
    ValidationError
        Naming ``--collateral``, ``--debt`` or ``prices[...]`` for an unknown reserve, a
        negative or missing amount or price, or an account without debt or collateral.
    """
    c = _amounts(config, collateral, "--collateral")
    d = _amounts(config, debt, "--debt")
    p = reserve_prices(config, prices)
    reserves = config.reserves
    lt = np.array([r.liquidation_threshold for r in reserves])
    if not (d > 0.0).any():
        raise ValidationError("--debt", dict(debt), "must borrow some reserve")
    if not (c * lt > 0.0).any():
        raise ValidationError(
            "--collateral", dict(collateral), "must supply a reserve with a liquidation threshold"
        )
    levels_by_asset = aave_asset_levels(config, collateral, debt, prices)
    levels = tuple(
        AaveAssetLevel(
            asset=asset,
            price=float(prices[asset]),
            liquidation_price=level,
            distance=level / float(prices[asset]) - 1.0,
            falls=falls,
            probability=_hit(float(prices[asset]), level, horizon, down=falls),
        )
        for asset, (level, falls) in levels_by_asset.items()
    )
    ci = int(np.argmax(c * p * (lt > 0.0)))
    di = int(np.argmax(d * p))
    health = float(am.health_factor(c * p * (lt > 0.0), lt, d * p))
    driver = reserves[ci].asset or reserves[di].asset
    at = dict(prices)
    if health >= 1.0 and driver is not None:
        level, falls = _asset_level(config, c, d, p, driver)
        if math.isfinite(level):
            at[driver] = level * (1.0 - 1e-9 if falls else 1.0 + 1e-9)
    p_at = reserve_prices(config, at)
    plan = am.liquidation_plan(
        c[None, :],
        d[None, :],
        p_at,
        lt,
        [r.liquidation_bonus for r in reserves],
        [r.protocol_fee for r in reserves],
        [ci],
        [di],
        [math.inf],
        close_factor_hf_threshold=config.close_factor_hf_threshold,
        min_base_max_close_factor_threshold=config.min_base_max_close_factor_threshold,
        min_leftover=config.min_leftover_base,
    )
    amounts = plan.amounts
    repaid, seized, fee = (float(a[0]) for a in amounts)
    bonus_rate = reserves[ci].liquidation_bonus
    c_after, d_after = c.copy(), d.copy()
    c_after[ci] -= seized
    d_after[di] -= repaid
    d_after = np.where(plan.deficit[0] > 0.0, 0.0, d_after)
    return AaveAccountMetrics(
        collateral_value=float((c * p).sum()),
        debt_value=float((d * p).sum()),
        health_factor=health,
        levels=levels,
        collateral_reserve=reserves[ci].name,
        debt_reserve=reserves[di].name,
        driver=driver or reserves[ci].name,
        at_price=float(p_at[ci]) if reserves[ci].asset is not None else float(p_at[di]),
        health_at=float(plan.health[0]),
        close_factor=float(plan.max_debt[0] / d[di]),
        debt_repaid=repaid,
        collateral_seized=seized,
        bonus=seized - seized / bonus_rate,
        protocol_fee=fee,
        to_liquidator=seized - fee,
        health_after=float(am.health_factor(c_after * p_at * (lt > 0.0), lt, d_after * p_at)),
        status=int(plan.status[0]),
        deficit_value=float((plan.deficit[0] * p_at).sum()),
    )


# --------------------------------------------------------------------------------------------
# Maker (Liquidations 2.0)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MakerVaultMetrics:
    """A Maker vault: collateral ``ink`` (units), debt ``art x rate`` (DAI) and what a bark of
    it would start (DAI)."""

    ink: float
    debt: float  # art x rate, DAI
    price: float  # the market (source) price now
    osm_price: float  # what the OSM publishes now (the Spotter's price)
    osm_next: float  # what it will publish after the next poke: the source price now
    osm_delay_s: float
    liquidation_price: float  # debt x mat / ink
    ratio_osm: float  # collateralization ink x osm / debt
    ratio_market: float
    unsafe_now: bool  # at the OSM price
    unsafe_next: bool  # at the next OSM price
    due: float  # debt a bark moves to the Vow, DAI
    tab: float  # due x chop: what the auction must raise
    penalty: float  # tab - due
    lot: float  # collateral auctioned (units)
    keeper_incentive: float  # tip + chip x tab, paid by the Vow to the keeper who barks
    auction_top: float  # starting price: liquidation price x buf (the OSM at the trigger)
    refusal: str  # "NONE", or why the bark would not start an auction
    probability_market: float  # source touches the liquidation price within the horizon
    probability_osm: float  # a poke samples it at or below (BGK, every osm_delay_s)


def maker_vault_metrics(
    config: MakerConfig,
    *,
    ink: float,
    debt: float,
    price: float,
    osm_price: float | None,
    horizon: Horizon,
) -> MakerVaultMetrics:
    """A vault's liquidation price ``debt x mat / ink`` (§M1), the prices the OSM publishes
    now and next, and ``Dog.bark`` on it at its liquidation price (§M2, §M3): ``tab = due x
    chop``, the keeper incentive ``tip + chip x tab``.

    The probabilities: the source price touching the liquidation price within the horizon
    (continuous), and a poke of the OSM sampling it there: the price observed every
    ``osm_delay_s`` (Broadie-Glasserman-Kou, §10.2) over the horizon less one hop, since what a
    poke samples is published one hop later.

    Examples
    --------
    >>> m = maker_vault_metrics(MakerConfig(), ink=10.0, debt=10_000.0, price=2_000.0,
    ...                         osm_price=None, horizon=Horizon())
    >>> round(m.liquidation_price, 6), round(m.tab, 6), round(m.keeper_incentive, 6)
    (1500.0, 11300.0, 311.3)
    """
    for option, value in (("--collateral", ink), ("--debt", debt), ("--price", price)):
        if not (math.isfinite(value) and value > 0.0):
            raise ValidationError(option, value, "must be a finite number > 0")
    osm = price if osm_price is None else osm_price
    if not (math.isfinite(osm) and osm > 0.0):
        raise ValidationError("--osm-price", osm, "must be a finite number > 0")
    if debt < config.dust:
        raise ValidationError("--debt", debt, f"must be at least the ilk's dust {config.dust:g}")
    art = debt / config.rate
    level = float(
        mk.liquidation_price(np.array([ink]), np.array([art]), config.rate, config.mat)[0]
    )
    bark = mk.bark_amounts(
        ink=ink,
        art=art,
        rate=config.rate,
        spot=level * (1.0 - 1e-12) / config.mat,
        dust=config.dust,
        chop=config.chop,
        global_room=config.dog.hole_global,
        ilk_room=config.dog.hole,
    )
    clip = config.clipper
    delay = config.osm_delay_s
    sampled_s = max(horizon.seconds - delay, 0.0)
    probability_osm = (
        float(
            discrete_hit_probability(
                osm if delay > 0.0 else price,
                level,
                horizon.drift,
                horizon.volatility,
                sampled_s,
                dt_s=delay,
                direction="down",
            )
        )
        if delay > 0.0
        else _hit(price, level, horizon, down=True)
    )
    return MakerVaultMetrics(
        ink=ink,
        debt=debt,
        price=price,
        osm_price=osm,
        osm_next=price,
        osm_delay_s=delay,
        liquidation_price=level,
        ratio_osm=ink * osm / debt,
        ratio_market=ink * price / debt,
        unsafe_now=mk.is_unsafe(ink, art, config.rate, osm, config.mat),
        unsafe_next=mk.is_unsafe(ink, art, config.rate, price, config.mat),
        due=bark.due,
        tab=bark.tab,
        penalty=bark.tab - bark.due,
        lot=bark.dink,
        keeper_incentive=mk.keeper_incentive(bark.tab, clip.tip, clip.chip) if bark.tab else 0.0,
        auction_top=level * clip.buf,
        refusal=bark.refusal.name,
        probability_market=_hit(price, level, horizon, down=True),
        probability_osm=probability_osm,
    )


# --------------------------------------------------------------------------------------------
# GMX v2
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GmxPositionMetrics:
    """A GMX v2 position (USD; ``size_tokens`` in index tokens)."""

    side: str
    size_usd: float
    size_tokens: float
    entry_price: float
    price: float  # the oracle price now
    collateral_usd: float  # at the price now
    pnl_usd: float  # at the side's worse oracle price
    close_fee_usd: float  # size x the larger position fee factor
    impact_cap_usd: float  # size x maxPositionImpactFactorForLiquidations (the worst impact)
    remaining_usd: float  # collateral + PnL - fees - capped impact
    threshold_usd: float  # max(MIN_COLLATERAL_USD, size x minCollateralFactorForLiquidation)
    liquidatable: bool
    liquidation_price: float  # with the capped impact and the close fee
    liquidation_price_no_impact: float  # with the close fee, no impact
    distance: float
    leverage: float  # size / collateral
    probability: float


def _gmx_level(
    config: GmxConfig,
    *,
    long: bool,
    in_token: bool,
    amount: float,
    size: float,
    tokens: float,
    costs: float,
    threshold: float,
) -> float:
    h = config.oracle_half_spread
    coll_a = 0.0 if in_token else amount
    coll_b = amount * (1.0 - h) if in_token else 0.0
    a = coll_a + (-size if long else size) - costs
    b = coll_b + (tokens * (1.0 - h) if long else -tokens * (1.0 + h))
    level = (threshold - a) / b if b != 0.0 else math.nan
    return level if math.isfinite(level) and level > 0.0 else math.nan


def gmx_position_metrics(
    config: GmxConfig,
    *,
    side: str,
    size_tokens: float,
    entry_price: float,
    collateral: float,
    collateral_in_token: bool,
    price: float,
    horizon: Horizon,
) -> GmxPositionMetrics:
    """``PositionUtils.isPositionLiquidatable`` on one position at ``price`` and the price at
    which it becomes liquidatable (§G2): remaining collateral ``C(x) + PnL(x) - fees -
    impact`` equals ``max(MIN_COLLATERAL_USD, size x minCollateralFactor)``, linear in the
    oracle price ``x`` (the collateral too when it is the long token), with the close fee at
    the larger position fee factor and the negative impact at its cap ``size x
    maxPositionImpactFactorForLiquidations`` (the worst the open interest can give), as the
    venue's conservative band does; no borrowing or funding accrued (a fresh position).
    """
    long = side == "long"
    size = size_tokens * entry_price
    h = config.oracle_half_spread
    fee = size * max(config.position_fee_factor_positive, config.position_fee_factor_negative)
    cap = size * config.max_impact_factor_for_liquidations
    threshold = float(
        gm.liquidation_threshold_usd(
            np.array([size]),
            min_collateral_usd=config.min_collateral_usd,
            min_collateral_factor=config.min_collateral_factor,
        )[0]
    )
    pnl = float(
        gm.position_pnl_usd(
            np.array([long]),
            np.array([size]),
            np.array([size_tokens]),
            price * (1 - h),
            price * (1 + h),
        )[0]
    )
    collateral_usd = collateral * price * (1.0 - h) if collateral_in_token else collateral
    remaining = float(
        gm.remaining_collateral_usd(
            collateral_usd=np.array([collateral_usd]),
            pnl_usd=np.array([pnl]),
            price_impact_usd=np.array([-cap]),
            fees_usd=np.array([fee]),
            size_usd=np.array([size]),
            max_impact_factor_for_liquidations=config.max_impact_factor_for_liquidations,
        )[0]
    )
    common = {
        "long": long,
        "in_token": collateral_in_token,
        "amount": collateral,
        "size": size,
        "tokens": size_tokens,
        "threshold": threshold,
    }
    level = _gmx_level(config, costs=fee + cap, **common)  # type: ignore[arg-type]
    bare = _gmx_level(config, costs=fee, **common)  # type: ignore[arg-type]
    return GmxPositionMetrics(
        side=side,
        size_usd=size,
        size_tokens=size_tokens,
        entry_price=entry_price,
        price=price,
        collateral_usd=collateral_usd,
        pnl_usd=pnl,
        close_fee_usd=fee,
        impact_cap_usd=cap,
        remaining_usd=remaining,
        threshold_usd=threshold,
        liquidatable=remaining < threshold,
        liquidation_price=level,
        liquidation_price_no_impact=bare,
        distance=level / price - 1.0,
        leverage=size / collateral_usd if collateral_usd > 0.0 else math.inf,
        probability=_hit(price, level, horizon, down=long),
    )


# --------------------------------------------------------------------------------------------
# Synthetix perps v3
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SynthetixPositionMetrics:
    """A Synthetix perps v3 account with one position (USD; ratios as fractions)."""

    asset: str
    size: float  # signed, base units
    entry_price: float
    price: float
    margin: float  # collateral, USD
    pnl: float
    available_margin: float  # margin + PnL
    initial_margin_ratio: float  # |size| / skewScale x IMF + minimum IMR
    maintenance_margin_ratio: float  # IMR x maintenanceMarginScalar
    initial_margin: float
    maintenance_margin: float
    flag_reward: float  # notional x flagRewardRatio (before the keeper reward guards)
    liquidation_reward: float  # keeperReward(...) on the flag and the windows
    windows: float  # liquidation windows needed for the size
    liquidatable: bool  # available margin < maintenance margin + liquidation reward
    liquidation_price: float  # rewards held at their value now
    distance: float
    probability: float


def synthetix_position_metrics(
    config: SynthetixConfig,
    *,
    size: float,
    entry_price: float,
    margin: float,
    price: float,
    horizon: Horizon,
) -> SynthetixPositionMetrics:
    """``PerpsAccount.isEligibleForLiquidation`` for an account holding one position in the
    first market (§S2, §S3): liquidatable when ``margin + PnL < MM + reward``, with ``MM =
    |size| x price x MMR + minimumPositionMargin``, ``MMR = (|size| / skewScale x IMF +
    minIMR) x maintenanceMarginScalar``, and the reward ``keeperReward(max(flag reward,
    collateral reward), costs, collateral)`` plus one ``keeperReward(0, cost, 0)`` per further
    window; the liquidation price solves ``margin + s (x - entry) = |s| x MMR + minimum
    margin + reward`` with the reward held at its value now (as the venue's levels do).
    """
    market = config.markets[0]
    absolute = abs(size)
    im, mm = sm.required_margins(
        np.array([absolute]),
        price,
        skew_scale=market.skew_scale,
        initial_margin_ratio=market.initial_margin_ratio,
        minimum_initial_margin_ratio=market.minimum_initial_margin_ratio,
        maintenance_margin_scalar=market.maintenance_margin_scalar,
        minimum_position_margin=market.minimum_position_margin,
    )
    imr = absolute / market.skew_scale * market.initial_margin_ratio
    imr += market.minimum_initial_margin_ratio
    mmr = imr * market.maintenance_margin_scalar
    notional = absolute * price
    flag = notional * market.flag_reward_ratio
    windows = sm.number_of_windows(np.array([absolute]), market.max_liquidation_in_window)
    reward = float(
        sm.possible_liquidation_reward(
            flag_rewards=np.array([flag]),
            collateral_reward=np.array([margin * config.collateral_liquidate_reward_ratio]),
            flag_cost=np.array([config.flag_cost_usd_per_feed]),
            liquidate_cost=config.liquidate_cost_usd,
            collateral_value=np.array([margin]),
            windows=windows,
            guards=config.guards,
        )[0]
    )
    pnl = size * (price - entry_price)
    denominator = size - absolute * mmr
    level = (
        (entry_price * size + market.minimum_position_margin + reward - margin) / denominator
        if denominator != 0.0
        else math.nan
    )
    level = level if math.isfinite(level) and level > 0.0 else math.nan
    return SynthetixPositionMetrics(
        asset=market.asset,
        size=size,
        entry_price=entry_price,
        price=price,
        margin=margin,
        pnl=pnl,
        available_margin=margin + pnl,
        initial_margin_ratio=imr,
        maintenance_margin_ratio=mmr,
        initial_margin=float(im[0]),
        maintenance_margin=float(mm[0]),
        flag_reward=flag,
        liquidation_reward=reward,
        windows=float(windows[0]),
        liquidatable=margin + pnl < float(mm[0]) + reward,
        liquidation_price=level,
        distance=level / price - 1.0,
        probability=_hit(price, level, horizon, down=size > 0.0),
    )
