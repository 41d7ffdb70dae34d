"""Validated configuration of markets: margin tiers, fees and policy names.

A market is described by a frozen, keyword-only :class:`MarketSpec` that rejects unknown fields.
It loads from Python, a mapping, JSON or TOML, and round-trips to JSON with a stable hash
(:attr:`MarketSpec.spec_id`) used to key results.

Margin tiers follow the venues' tables (Binance "leverage and margin brackets", Hyperliquid
"margin tiers", OKX "position tiers"): a tier applies to a position whose notional is at or above
the tier's ``notional_floor`` and below the next tier's floor. Each tier gives a maximum leverage
(so an initial margin rate ``1 / max_leverage``) and a maintenance margin rate. The maintenance
deduction (Binance ``cum``, Hyperliquid ``deduction``) that keeps maintenance margin continuous
across tier boundaries is computed from the table, never typed in (docs/formulas.md, "Tiered
maintenance margin").
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from deleverage.errors import ConfigError, ValidationError

FloatArray = npt.NDArray[np.float64]

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]

_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(
            "must be a slug of 1-128 letters, digits, '.', '_' or '-' starting with a letter or "
            f"digit (it names the output folder, so no '/', '..' or spaces), was {value!r}"
        )
    return value


#: A name that is also a folder name: it can never point outside the folder it is joined to.
Slug = Annotated[str, pydantic.AfterValidator(_slug)]


class MarginMode(IntEnum):
    """How a position is margined: from the account's shared cash or from its own margin."""

    CROSS = 0
    ISOLATED = 1


class ContractType(IntEnum):
    """Settlement type. Linear: quote-margined, PnL = size x (exit - entry) in quote."""

    LINEAR = 0
    INVERSE = 1


#: While set, models raise pydantic's own error (every problem) instead of the first one as
#: a ConfigError: see :func:`collect_problems`.
_RAW_ERRORS: contextvars.ContextVar[bool] = contextvars.ContextVar("raw_errors", default=False)


@contextlib.contextmanager
def collect_problems() -> Iterator[None]:
    """Within the block, validation errors of nested models propagate whole (every problem),
    so a caller can list them all (``deleverage validate``)."""
    token = _RAW_ERRORS.set(True)
    try:
        yield
    finally:
        _RAW_ERRORS.reset(token)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            if _RAW_ERRORS.get():
                raise
            raise _config_error(exc, type(self).__name__) from None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """Validate a mapping, turning pydantic's error into a :class:`ConfigError`."""
        try:
            return cls.model_validate(dict(data))
        except pydantic.ValidationError as exc:
            raise _config_error(exc, cls.__name__) from None

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Validate a JSON document."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("json", text[:60], f"must be valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError("json", type(data).__name__, "must be a JSON object")
        return cls.from_mapping(data)

    @classmethod
    def from_toml(cls, source: str | Path) -> Self:
        """Validate a TOML document, given as a path or as TOML text."""
        if isinstance(source, Path) or (isinstance(source, str) and source.endswith(".toml")):
            from deleverage._files import read_text

            text = read_text(source, field="path", what="TOML file")
        else:
            text = source
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("toml", str(source)[:60], f"must be valid TOML ({exc})") from None
        return cls.from_mapping(data)

    def to_json(self) -> str:
        """Serialize to canonical JSON (sorted keys), the input of :attr:`spec_id`."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def spec_id(self) -> str:
        """Stable 16-hex-digit hash of the canonical JSON, used to key results."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def _config_error(exc: pydantic.ValidationError, model: str) -> ConfigError:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or model
    value = first.get("input")
    rule = first["msg"]
    inner = first.get("ctx", {}).get("error")
    if isinstance(inner, ConfigError) and not first["loc"]:
        return inner  # raised by this model's own __init__: already complete
    if isinstance(inner, ConfigError):
        # A nested model (constructed through our __init__) already named its field: put the
        # outer location in front of it.
        sub = inner.field.split(".", 1)[1] if "." in inner.field else inner.field
        # A model-level rule names the model itself ("weights must ..."): do not repeat it.
        field = f"{model}.{loc}" if loc.split(".")[-1] == sub else f"{model}.{loc}.{sub}"
        if inner.rule == str(inner).split(": ", 1)[-1]:
            return ConfigError(field, inner.value, inner.rule, message=f"{field}: {inner.rule}")
        return ConfigError(field, inner.value, inner.rule)
    if first["type"] == "value_error":
        # Our own validators write "field must ..., was value": keep their sentence whole.
        text = rule.removeprefix("Value error, ")
        field = text.split(" ", 1)[0]
        where = f"{model}.{loc}" if loc != model else model
        return ConfigError(field, value, text, message=f"{where}: {text}")
    if first["type"] == "extra_forbidden":
        rule = f"is not a field of {model} (unknown fields are rejected)"
    elif first["type"] == "missing":
        rule = "is required"
        value = None
    else:
        rule = f"must be valid: {rule.lower()}"
    if isinstance(value, dict):
        value = "{...}"
    return ConfigError(f"{model}.{loc}", value, rule)


class MarginTier(_Frozen):
    """One row of a margin-tier table.

    Parameters
    ----------
    notional_floor
        Position notional (in the settlement currency: quote, or the coin of an inverse
        market) at which the tier starts; the first tier starts at 0.
    max_leverage
        Highest leverage allowed in the tier; the initial margin rate is ``1 / max_leverage``.
    maintenance_rate
        Maintenance margin rate (fraction of notional), at most the initial rate: in (0, 1],
        1 for a tier that margins 100% (dYdX v4's liquidity tier 0, IMF = MMF = 1).
    """

    notional_floor: NonNegativeFloat
    max_leverage: Annotated[float, Field(ge=1, allow_inf_nan=False)]
    maintenance_rate: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]

    @property
    def initial_rate(self) -> float:
        """Initial margin rate, ``1 / max_leverage``."""
        return 1.0 / self.max_leverage


@dataclass(frozen=True, slots=True)
class TierArrays:
    """A tier table as arrays, the form the margin math takes.

    ``cum[i] = cum[i-1] + floor[i] * (mmr[i] - mmr[i-1])`` with ``cum[0] = 0`` (Binance's
    maintenance amount), so that ``notional * mmr[i] - cum[i]`` is continuous at each floor.
    """

    floor: FloatArray  # notional floor of each tier, quote, increasing from 0
    imr: FloatArray  # initial margin rate of each tier, 1 / max leverage
    mmr: FloatArray  # maintenance margin rate of each tier
    cum: FloatArray  # maintenance deduction of each tier, quote
    min_margin: float = 0.0  # least maintenance of an open position, quote
    initial_fee: float = 0.0  # rate added to the initial rate after the leverage choice
    whole_position: bool = False  # cum = 0: maintenance jumps at the floors

    @property
    def continuous(self) -> bool:
        """Whether maintenance is continuous and piecewise linear in the notional (the
        upper envelope of the tiers' lines), which the engine's zone-price and cross indexes
        rely on; not with a maintenance floor or whole-position tiers."""
        return self.min_margin == 0.0 and not self.whole_position

    @classmethod
    def from_tiers(
        cls,
        tiers: list[MarginTier] | tuple[MarginTier, ...],
        *,
        min_margin: float = 0.0,
        whole_position: bool = False,
        maintenance_fee: float = 0.0,
        initial_fee: float = 0.0,
    ) -> TierArrays:
        """Arrays of a tier table.

        ``whole_position``: no deductions (``cum = 0``), the tier's rate applies to the whole
        notional (BitMEX risk limits). ``maintenance_fee`` is added to every maintenance rate
        and ``initial_fee`` to the initial rate (the taker fee in the margins: BitMEX, OKX).
        """
        floor = np.array([t.notional_floor for t in tiers], dtype=np.float64)
        imr = np.array([t.initial_rate for t in tiers], dtype=np.float64)
        mmr = np.array([t.maintenance_rate for t in tiers], dtype=np.float64)
        cum = np.zeros_like(mmr) if whole_position else maintenance_deductions(floor, mmr)
        if maintenance_fee:
            mmr = mmr + maintenance_fee  # a constant shift: the deductions are unchanged
        return cls(
            floor=floor, imr=imr, mmr=mmr, cum=cum, min_margin=min_margin,
            initial_fee=initial_fee, whole_position=whole_position,
        )  # fmt: skip


def maintenance_deductions(floor: FloatArray, mmr: FloatArray) -> FloatArray:
    """Compute each tier's maintenance deduction (Binance ``cum``, Hyperliquid ``deduction``).

    ``cum[0] = 0``, ``cum[i] = cum[i-1] + floor[i] * (mmr[i] - mmr[i-1])``.
    """
    cum = np.zeros_like(mmr)
    if len(mmr) > 1:
        cum[1:] = np.cumsum(floor[1:] * np.diff(mmr))
    return cum


class OpenInterestScaling(_Frozen):
    """dYdX v4 liquidity-tier scaling of the initial margin fraction by open interest.

    The initial margin fraction rises linearly from the tier's base rate at ``lower_cap`` of
    open-interest notional (quote) to 1 at ``upper_cap``:
    ``imf = base + (1 - base) * clip((oi - lower) / (upper - lower), 0, 1)``.
    """

    lower_cap: NonNegativeFloat
    upper_cap: PositiveFloat

    @model_validator(mode="after")
    def _caps_ordered(self) -> Self:
        if self.upper_cap <= self.lower_cap:
            raise ValueError(
                f"upper_cap must be above lower_cap ({self.lower_cap}), was {self.upper_cap}"
            )
        return self


LiquidationKind = Literal["full", "partial", "fixed_fraction", "tier_down", "portion"]
LiquidationExecution = Literal["market", "liquidator"]
PartialTarget = Literal["maintenance", "initial"]
AdlRanking = Literal[
    "pnl_leverage", "binance", "hyperliquid", "okx", "risk_score", "random_start", "pro_rata",
    "socialized_loss",
]  # fmt: skip


class LiquidationPolicy(_Frozen):
    """How an account below maintenance margin is liquidated (behaviour in ``liquidation``).

    Parameters
    ----------
    kind
        ``full`` closes everything; ``partial`` closes just enough to restore ``target`` plus
        ``buffer``; ``fixed_fraction`` closes ``fraction`` of positions above
        ``fraction_min_notional`` then waits ``cooldown_s``; ``tier_down`` reduces to the next
        lower margin tier; ``portion`` closes, per step, at most ``max_position_portion`` of a
        position's notional but at least ``min_position_notional`` (dYdX v4's position block
        limits), the whole position when it is smaller.
    execution
        ``market`` fills against the market's liquidity model; ``liquidator`` sells the
        position to a liquidator account at dYdX v4's fillable price
        ``oracle - side x ABR x SMMR x PMMR / |size|``, ``ABR = clip(BA x (1 - TNC / TMMR),
        0, 1)`` (``bankruptcy_adjustment`` BA, ``spread_to_maintenance_ratio`` SMMR): the fill
        may lie beyond the bankruptcy price, the insurance fund then pays the difference; a
        fill the fund cannot pay is not made and an account with negative equity is
        deleveraged instead (docs/formulas.md, "dYdX v4 liquidation").
    max_notional_per_account_step
        Notional one account may have liquidated per step (dYdX ``max_notional_liquidated``).
    max_insurance_loss_per_account_step
        What the insurance fund may lose per account per step (dYdX
        ``max_quantums_insurance_lost``, in quote); a fill needing more is not made.
    buffer
        Added to the maintenance rate as the partial-liquidation target (Drift: 0.02).
    margin_call_ratio
        Margin ratio (maintenance / equity) at which a margin-call notice is sent.
    backstop_equity_fraction
        When > 0, an account whose equity falls below this fraction of maintenance margin is
        taken over by the backstop vault with its margin (Hyperliquid: 2/3).
    isolated_recourse
        Whether an isolated position's loss beyond its isolated margin may be taken from the
        account's other cash before the insurance fund. ``False`` (every venue's rule, the
        default): the loss is capped at the isolated margin and the rest goes to the fund,
        then ADL, socialized loss or declared bad debt. ``True``: the account's other cash
        is part of the position's collateral (docs/formulas.md, "Shortfall").
    liquidator_fee_rate
        With execution ``liquidator``: when > 0 the liquidator takes the position at the oracle
        less this fee, ``mark x (1 - side x fee)`` (Drift ``liquidator_fee``), instead of the
        fillable price, and the partial size subtracts it (docs/formulas.md 4.4, 4.16).
    liquidator_fee_max_rate, liquidator_fee_grace_s, liquidator_fee_ramp_per_s
        The liquidator fee grows by ``ramp_per_s`` per second the account has spent in
        liquidation once ``grace_s`` has passed, up to ``max_rate`` (Drift: 1,500 slots of
        grace, +0.0001% per slot, cap ``min(3 x fee, MMR)``). ``None``: no ramp.
    fee_basis
        Price the liquidation fee (``MarketSpec.liquidation_fee_rate``) is charged on: the fill
        price, or the oracle (mark) price (Drift's insurance-fund fee).
    insurance_fee
        ``flat``: ``liquidation_fee_rate``; ``shrink_with_shortage``: Drift's insurance-fund fee
        ``min(rate, 0.95 x max(0, mmr + buffer - liquidator fee - shortage / notional))``.
    ramp_duration_s, ramp_initial_fraction, ramp_full_below
        Liquidation time ramp (Drift ``liquidation_duration``, ``initial_pct_to_liquidate``):
        a partial liquidation may cover ``initial_fraction`` of the shortage at entry and all of
        it after ``duration_s``; a shortage below ``full_below`` (quote) is covered at once.
        ``ramp_duration_s = 0``: no ramp.
    tier_down_target
        With ``kind = "tier_down"``: reduce one tier per round (``next``: Binance, Bybit) or
        straight into the first tier (``first``: OKX, "reduced to the maximum of tier 1").
    """

    kind: LiquidationKind = "full"
    execution: LiquidationExecution = "market"
    target: PartialTarget = "maintenance"
    buffer: Annotated[float, Field(ge=0, le=0.5, allow_inf_nan=False)] = 0.0
    fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.2
    fraction_min_notional: NonNegativeFloat = 0.0
    cooldown_s: NonNegativeFloat = 0.0
    #: During a ``fixed_fraction`` cooldown: ``skip`` the account until it ends, or send the
    #: ``full_position`` if it is still below maintenance (Hyperliquid: "liquidation orders are
    #: for the entire position" during the 30 s cooldown).
    cooldown_mode: Literal["skip", "full_position"] = "skip"
    max_notional_per_account_step: PositiveFloat | None = None
    max_notional_per_market_step: PositiveFloat | None = None
    margin_call_ratio: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    backstop_equity_fraction: Fraction = 0.0
    spread_to_maintenance_ratio: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 1.5
    isolated_recourse: StrictBool = False
    bankruptcy_adjustment: Annotated[float, Field(ge=1, le=1000, allow_inf_nan=False)] = 1.0
    max_position_portion: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 1.0
    min_position_notional: NonNegativeFloat = 0.0
    max_insurance_loss_per_account_step: PositiveFloat | None = None
    liquidator_fee_rate: Fraction = 0.0
    liquidator_fee_max_rate: Fraction | None = None
    liquidator_fee_grace_s: NonNegativeFloat = 0.0
    liquidator_fee_ramp_per_s: NonNegativeFloat = 0.0
    fee_basis: Literal["fill", "oracle"] = "fill"
    insurance_fee: Literal["flat", "shrink_with_shortage"] = "flat"
    ramp_duration_s: NonNegativeFloat = 0.0
    ramp_initial_fraction: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    ramp_full_below: NonNegativeFloat = 0.0
    tier_down_target: Literal["next", "first"] = "next"
    #: Order of the accounts liquidated in a step: ``health`` (most distressed first, then
    #: account id) or ``fillable_price`` (dYdX v4 ``SortLiquidationOrders``: the relative
    #: distance of the fillable price from the oracle, descending, then the oracle notional,
    #: descending, then account id where dYdX uses the order hash).
    order: Literal["health", "fillable_price"] = "health"
    #: Accounts attempted per step (dYdX ``MaxLiquidationAttemptsPerBlock``, 50): a window of
    #: the accounts below maintenance, in account order from a pseudo-random start (the
    #: engine's seeded generator), wrapping; one pass per step. ``None``: every account.
    max_liquidations_per_step: Annotated[int, Field(gt=0)] | None = None
    #: Accounts deleveraged per step after a liquidation that could not fill (dYdX
    #: ``MaxDeleveragingAttemptsPerBlock``, 10). ``None``: no cap.
    max_deleveragings_per_step: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check_fraction_needs(self) -> Self:
        if self.kind == "fixed_fraction" and self.fraction >= 1.0:
            raise ValueError(
                f"fraction must be below 1 for kind 'fixed_fraction', was {self.fraction}"
            )
        if self.liquidator_fee_rate > 0.0 and self.execution != "liquidator":
            raise ValueError(
                "liquidator_fee_rate must be 0 unless execution is 'liquidator', was "
                f"{self.liquidator_fee_rate} with execution {self.execution!r}"
            )
        top = self.liquidator_fee_max_rate
        if top is not None and top < self.liquidator_fee_rate:
            raise ValueError(
                f"liquidator_fee_max_rate must be at least liquidator_fee_rate "
                f"({self.liquidator_fee_rate}), was {top}"
            )
        if self.liquidator_fee_ramp_per_s > 0.0 and top is None:
            raise ValueError(
                "liquidator_fee_ramp_per_s must be 0 without a liquidator_fee_max_rate, was "
                f"{self.liquidator_fee_ramp_per_s}"
            )
        return self


class CircuitBreakerPolicy(_Frozen):
    """Halt liquidations (and optionally trading) after a fast mark move.

    The market halts when the mark moves more than ``threshold`` (fraction) away from any mark
    of the last ``window_s`` seconds, and resumes ``cooldown_s`` seconds later.
    """

    threshold: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
    window_s: PositiveFloat = 60.0
    cooldown_s: NonNegativeFloat = 300.0
    halt_trading: bool = False


class RiskScoreWeights(_Frozen):
    """Weights of the ``risk_score`` ADL ranking; they must sum to a positive number."""

    leverage: NonNegativeFloat = 1.0
    margin_ratio: NonNegativeFloat = 1.0
    size: NonNegativeFloat = 0.0

    @model_validator(mode="after")
    def _positive_sum(self) -> Self:
        if self.leverage + self.margin_ratio + self.size <= 0:
            raise ValueError("weights must sum to a positive number, sum was 0")
        return self


#: Names of the ADL laboratory's policies (:func:`deleverage.rules.deleveraging.policy_named`).
DeleveragingName = Literal[
    "bitmex", "bybit", "binance", "hyperliquid", "dydx", "risk_score", "okx", "size_pro_rata",
    "whole_lots", "profit_pro_rata", "equity_pro_rata", "notional_pro_rata", "socialized_profit",
    "socialized_open_interest", "min_max",
]  # fmt: skip


class AdlPolicy(_Frozen):
    """How a loss the insurance fund cannot cover is taken from opposing traders.

    ``counterparty``: what protects a counterparty whom the bankruptcy price would make
    insolvent. ``move_price`` moves the ADL price toward the mark just enough (and the fund
    or bad debt takes the rest); ``refuse`` (dYdX v4) skips that counterparty and tries the
    next, at an unchanged price, closing only what willing counterparties take: a match is
    made only if each side ends at or above its initial margin or no riskier than before
    (``NC/MMR`` not lower, maintenance not higher).
    ``deleveraging`` (optional) names an ADL-laboratory policy
    (:mod:`deleverage.rules.deleveraging`) that then decides who pays, instead of ``ranking``;
    ``cap_fraction`` is the share of a winner's profit its haircuts may take, and
    ``fund_drawdown_limit`` (optional) makes it a hybrid: the insurance fund pays first, up to
    that share of its balance, and the policy covers the rest (partially closing the
    bankrupt position when that is all that is needed).
    """

    ranking: AdlRanking = "pnl_leverage"
    price: Literal["bankruptcy", "mark"] = "bankruptcy"
    counterparty: Literal["move_price", "refuse"] = "move_price"
    weights: RiskScoreWeights = RiskScoreWeights()
    socialize_over: Literal["profit", "open_interest"] = "profit"
    deleveraging: DeleveragingName | None = None
    cap_fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 1.0
    fund_drawdown_limit: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    #: After the insurance fund, the venue's fee pool (the exchange's fee account) pays before
    #: any loss is socialized (Drift ``resolve_perp_bankruptcy``: fund, fee pool, funding).
    fee_pool_pays: bool = False
    #: ADL takes over a shortfall the fund could still pay while the fund's PnL drawdown over
    #: its window (8 h by default) is at or above this fraction of the window's highest balance
    #: (Bybit's ADL trigger: -30%; OKX: 30% within 8 h); ``None``: only an exhausted fund
    #: starts ADL.
    trigger_fund_drawdown: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = None
    #: The trigger stops once the drawdown is back below this fraction (Bybit: -25%);
    #: ``None``: the trigger's own level.
    trigger_fund_drawdown_stop: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = (
        None
    )
    #: The fund takes over a bankrupt position only up to this multiple of its balance in
    #: notional at the mark; a larger one goes to ADL even if the fund could pay its deficit
    #: (Binance Insurance Fund: "maximum net notional position ... by default, this is 100%
    #: the size of the insurance fund. Any positions that would increase beyond the max
    #: notional will be subject to counterparty-liquidation"). ``None``: no limit.
    fund_takeover_max_notional: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _check_trigger(self) -> Self:
        stop, start = self.trigger_fund_drawdown_stop, self.trigger_fund_drawdown
        if stop is not None and (start is None or stop > start):
            raise ValueError(
                "trigger_fund_drawdown_stop must be at most trigger_fund_drawdown "
                f"({start}), was {stop}"
            )
        return self


class MarketSpec(_Frozen):
    """A perpetual futures market.

    Parameters
    ----------
    symbol
        Market name, e.g. ``"BTCUSDT"``.
    tick_size, lot_size
        Price increment (quote) and size increment (base) accepted by :meth:`Exchange.trade`.
    tiers
        Margin tiers, floors strictly increasing from 0 (see module docstring).
    maker_fee_rate, taker_fee_rate
        Trading fees as fractions of notional; a negative maker rate is a rebate.
    liquidation_fee_rate
        Penalty charged on liquidated notional, paid to the insurance fund; up to 1 (100%),
        always capped at the equity left after the fill (docs/formulas.md 4.8).
    insurance_cap
        Most the insurance fund pays, in total, for losses in this market (quote; Drift
        ``quote_max_insurance``); ``None``: no cap.
    min_maintenance_margin
        Least maintenance margin of an open position (quote): ``max(floor, tiered)``. The
        closed-form liquidation prices of :mod:`deleverage.rules.margin` ignore it.
    contract_type
        ``linear``: sizes in base units, prices, cash, PnL, fees and margins in quote.
        ``inverse`` (coin-margined: BitMEX XBTUSD, Bybit BTCUSD, Binance COIN-M): sizes in
        contracts worth ``contract_value`` quote (USD) each, prices in quote per base, and
        cash, PnL (``contracts x contract_value x (1/entry - 1/exit)``), fees, margins, tier
        floors and the insurance fund in ``settlement_asset`` (the base coin). The engine
        holds such a market as a linear one on the reciprocal price
        (:mod:`deleverage.engine.contracts`; docs/formulas.md 1.13).
    contract_value
        Quote (USD) value of one inverse contract (XBTUSD: 1, Binance BTCUSD_PERP: 100);
        required for inverse markets, ``None`` for linear ones.
    settlement_asset
        The coin an inverse market is margined and settled in (``"XBT"``, ``"BTC"``);
        required for inverse markets, ``None`` for linear ones (settled in quote). An
        :class:`~deleverage.engine.exchange.Exchange` holds cash in one currency, so all its
        markets settle in the same asset.
    tier_margin
        ``deduction`` (Binance, Hyperliquid, OKX): maintenance ``notional x mmr[t] - cum[t]``,
        continuous across floors. ``whole_position`` (BitMEX risk limits): the tier's rate on
        the whole notional, ``notional x mmr[t]`` (230 XBT at the 1% step needs 2.3 XBT).
    taker_fee_in_margin
        ``maintenance``: maintenance adds ``taker_fee_rate x notional`` (the fee to close;
        OKX's requirement ``value x (MMR + fee rate)``, BitMEX). ``initial_and_maintenance``:
        also the initial margin adds ``2 x taker_fee_rate x notional`` (BitMEX: "IM =
        value / leverage + 2 x taker fee x value", open and close).
    """

    symbol: Annotated[str, Field(min_length=1, max_length=64)]
    contract_type: Literal["linear", "inverse"] = "linear"
    tick_size: PositiveFloat = 0.01
    lot_size: PositiveFloat = 0.001
    tiers: Annotated[tuple[MarginTier, ...], Field(min_length=1)]
    maker_fee_rate: Annotated[float, Field(ge=-0.01, le=0.05, allow_inf_nan=False)] = 0.0002
    taker_fee_rate: Annotated[float, Field(ge=0, le=0.05, allow_inf_nan=False)] = 0.0005
    liquidation_fee_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.005
    insurance_cap: NonNegativeFloat | None = None
    min_maintenance_margin: NonNegativeFloat = 0.0
    open_interest_scaling: OpenInterestScaling | None = None
    liquidation: LiquidationPolicy = LiquidationPolicy()
    adl: AdlPolicy = AdlPolicy()
    circuit_breaker: CircuitBreakerPolicy | None = None
    contract_value: PositiveFloat | None = None
    settlement_asset: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}$")] | None = None
    tier_margin: Literal["deduction", "whole_position"] = "deduction"
    taker_fee_in_margin: Literal["none", "maintenance", "initial_and_maintenance"] = "none"

    @model_validator(mode="after")
    def _check_contract(self) -> Self:
        inverse = self.contract_type == "inverse"
        for name in ("contract_value", "settlement_asset"):
            value = getattr(self, name)
            if inverse and value is None:
                raise ValueError(
                    f"{name} is required for contract_type 'inverse' (the contract's USD "
                    "value and the coin it settles in), was None"
                )
            if not inverse and value is not None:
                raise ValueError(
                    f"{name} must be None for contract_type 'linear' (linear markets settle "
                    f"in quote, sizes in base units), was {value!r}"
                )
        return self

    def to_json(self) -> str:
        """Canonical JSON (sorted keys). Fields added since 0.2 are left out while at their
        defaults (:data:`_OMITTED_AT_DEFAULT`), so the JSON and :attr:`spec_id` of a market
        that does not use them (and the journals and result hashes built on it) stay as they
        were."""
        data = self.model_dump(mode="json")
        for path, default in _OMITTED_AT_DEFAULT.items():
            *parents, name = path.split(".")
            node = data
            for part in parents:
                node = node[part]
            if node[name] == default:
                del node[name]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @property
    def is_inverse(self) -> bool:
        """Whether the market is coin-margined (``contract_type == "inverse"``)."""
        return self.contract_type == "inverse"

    @model_validator(mode="after")
    def _check_tiers(self) -> Self:
        tiers = self.tiers
        if tiers[0].notional_floor != 0:
            raise ValueError(f"tiers[0].notional_floor must be 0, was {tiers[0].notional_floor}")
        for i, tier in enumerate(tiers):
            if tier.maintenance_rate > tier.initial_rate:
                raise ValueError(
                    f"tiers[{i}].maintenance_rate must not exceed the initial rate "
                    f"1/max_leverage = {tier.initial_rate:g}, was {tier.maintenance_rate:g}"
                )
            if i == 0:
                continue
            prev = tiers[i - 1]
            if tier.notional_floor <= prev.notional_floor:
                raise ValueError(
                    f"tiers[{i}].notional_floor must be above tiers[{i - 1}].notional_floor "
                    f"({prev.notional_floor:g}), was {tier.notional_floor:g}"
                )
            if tier.maintenance_rate < prev.maintenance_rate:
                raise ValueError(
                    f"tiers[{i}].maintenance_rate must not fall below tiers[{i - 1}]'s "
                    f"({prev.maintenance_rate:g}), was {tier.maintenance_rate:g}"
                )
            if tier.max_leverage > prev.max_leverage:
                raise ValueError(
                    f"tiers[{i}].max_leverage must not rise above tiers[{i - 1}]'s "
                    f"({prev.max_leverage:g}), was {tier.max_leverage:g}"
                )
        return self

    @property
    def tier_arrays(self) -> TierArrays:
        """The tier table as arrays with computed maintenance deductions (none with
        ``tier_margin = "whole_position"``), the taker fee added where
        ``taker_fee_in_margin`` says so."""
        fees = self.taker_fee_in_margin
        return TierArrays.from_tiers(
            self.tiers,
            min_margin=self.min_maintenance_margin,
            whole_position=self.tier_margin == "whole_position",
            maintenance_fee=self.taker_fee_rate if fees != "none" else 0.0,
            initial_fee=2.0 * self.taker_fee_rate if fees == "initial_and_maintenance" else 0.0,
        )

    @property
    def max_leverage(self) -> float:
        """Leverage allowed for the smallest positions."""
        return self.tiers[0].max_leverage

    @classmethod
    def simple(
        cls,
        symbol: str,
        *,
        max_leverage: float = 20.0,
        maintenance_rate: float = 0.025,
        **fields: Any,
    ) -> MarketSpec:
        """Build a one-tier market, handy for examples and tests."""
        tier = MarginTier(
            notional_floor=0.0, max_leverage=max_leverage, maintenance_rate=maintenance_rate
        )
        return cls.from_mapping({"symbol": symbol, "tiers": (tier,), **fields})


#: MarketSpec fields left out of the canonical JSON while at these defaults (added after the
#: built-in scenarios' hashes were fixed; see :meth:`MarketSpec.to_json`).
_OMITTED_AT_DEFAULT: dict[str, object] = {
    "contract_value": None,
    "settlement_asset": None,
    "tier_margin": "deduction",
    "taker_fee_in_margin": "none",
    "adl.fund_takeover_max_notional": None,
    "liquidation.order": "health",
    "liquidation.max_liquidations_per_step": None,
    "liquidation.max_deleveragings_per_step": None,
}


def _as_number(field: str, value: object) -> float:
    if type(value) is float:  # the common case first (``float(value)`` is ``value``)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(field, value, "must be a number (int or float)")
    return float(value)


def check_finite_positive(field: str, value: float) -> float:
    """Return ``value`` as float, or raise naming the field if it is not finite and > 0."""
    v = _as_number(field, value)
    if not math.isfinite(v) or v <= 0:
        raise ValidationError(field, value, "must be a finite number > 0")
    return v


def check_finite(field: str, value: float) -> float:
    """Return ``value`` as float, or raise naming the field if it is NaN or infinite."""
    v = _as_number(field, value)
    if not math.isfinite(v):
        raise ValidationError(field, value, "must be a finite number")
    return v
