"""Integer-quantum liquidation math: exact to the unit, with the venue's rounding directions.

The float engine (:mod:`deleverage.rules.liquidation`, :mod:`deleverage.engine`) works in
quote and base units as floats. Venues that keep their books in integers (dYdX v4: base
quantums, quote quantums of 1e-6 USDC, rates in parts per million, prices in subticks) round
at fixed points; this module reproduces those integer results exactly, so a number can be
compared with the venue to the unit. Everything here is a pure function of Python ints (and
:class:`fractions.Fraction` where the venue keeps an exact rational).

Units
-----
- *base quantums* (``*_base``): integer position sizes, one quantum = ``10**atomic_resolution``
  coins; positive long, negative short.
- *quote quantums* (``*_quote``): integer collateral, one quantum = 1e-6 USDC.
- *ppm* (``*_ppm``): parts per million, ``1_000_000`` = 1.
- *subticks*: order-book prices; a fill of ``b`` base quantums at ``s`` subticks is worth
  ``s x b x 10**quantum_conversion_exponent`` quote quantums.

Rounding primitives name their direction (:class:`Rounding`); each formula states which it uses
and where the venue does the same (docs/formulas.md, "dYdX v4 in integers"). Sources are from
``dydxprotocol/v4-chain`` at commit ``84d4664bae71e3a077adaac67fb77ad19cd28d30``; paths are
relative to that repository.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from fractions import Fraction

from deleverage.errors import ValidationError

#: One in parts per million.
PPM = 1_000_000
#: The largest uint64, the venue's cap on subticks and on several limits.
MAX_UINT64 = 2**64 - 1


class Rounding(Enum):
    """Direction of an integer division."""

    FLOOR = "floor"  # toward -inf (Go big.Int.Div for a positive divisor)
    CEIL = "ceil"  # toward +inf
    TRUNC = "trunc"  # toward zero (Go big.Int.Quo)


def div(numerator: int, denominator: int, rounding: Rounding) -> int:
    """``numerator / denominator`` rounded in the named direction (exact integers)."""
    if denominator == 0:
        raise ValidationError("denominator", denominator, "must be non-zero")
    q, r = divmod(numerator, denominator)  # Python: floor
    if r == 0 or rounding is Rounding.FLOOR:
        return q
    if rounding is Rounding.CEIL:
        return q + 1
    return q + 1 if (numerator < 0) != (denominator < 0) else q


def mul_ppm(value: int, ppm: int, rounding: Rounding) -> int:
    """``value x ppm / 1e6`` rounded (``lib.BigMulPpm``: ceil or floor)."""
    return div(value * ppm, PPM, rounding)


def round_to_multiple(value: int, multiple: int, rounding: Rounding) -> int:
    """``value`` rounded to a multiple of ``multiple`` (``lib.BigIntRoundToMultiple``)."""
    if multiple <= 0:
        raise ValidationError("multiple", multiple, "must be a positive integer")
    return div(value, multiple, rounding) * multiple


# ---------------------------------------------------------------------------- markets


@dataclass(frozen=True, slots=True)
class QuantumMarket:
    """A perpetual and its CLOB pair, in the venue's integer units.

    ``oracle_price x 10**price_exponent`` is the USD price of one coin; the liquidity tier
    gives ``initial_margin_ppm`` (IMF) and ``maintenance_fraction_ppm`` (maintenance as a
    fraction of the initial requirement); the open-interest caps (quote quantums; both 0: no
    scaling) scale IMF with ``open_interest_base`` (protocol/x/perpetuals/types/liquidity_tier.go).
    """

    atomic_resolution: int
    oracle_price: int
    price_exponent: int
    initial_margin_ppm: int
    maintenance_fraction_ppm: int
    step_base_quantums: int = 1
    subticks_per_tick: int = 1
    quantum_conversion_exponent: int = -9
    open_interest_base: int = 0
    open_interest_lower_cap_quote: int = 0
    open_interest_upper_cap_quote: int = 0

    def __post_init__(self) -> None:
        if self.oracle_price < 0:
            raise ValidationError("oracle_price", self.oracle_price, "must be an integer >= 0")
        for name in ("initial_margin_ppm", "maintenance_fraction_ppm"):
            value = getattr(self, name)
            if not 0 <= value <= PPM:
                raise ValidationError(name, value, f"must be in [0, {PPM}] ppm")
        if self.step_base_quantums <= 0 or self.subticks_per_tick <= 0:
            raise ValidationError(
                "step_base_quantums/subticks_per_tick",
                (self.step_base_quantums, self.subticks_per_tick),
                "must be positive integers",
            )

    @property
    def _quote_exponent(self) -> int:
        return self.price_exponent + self.atomic_resolution + 6

    def notional_quote(self, base: int) -> int:
        """Signed oracle value of ``base`` quantums, truncated toward zero
        (``lib.BaseToQuoteQuantums``, protocol/lib/quantums.go)."""
        e = self._quote_exponent
        if e >= 0:
            return int(base * self.oracle_price * 10**e)
        return div(base * self.oracle_price, 10**-e, Rounding.TRUNC)

    def base_from_quote(self, quote: int) -> int:
        """Base quantums worth ``quote`` at the oracle, both divisions truncated toward zero
        (``lib.QuoteToBaseQuantums``)."""
        e = self._quote_exponent
        if self.oracle_price == 0:
            raise ValidationError("oracle_price", 0, "must be positive to convert quote to base")
        scaled = quote * 10**-e if e <= 0 else div(quote, 10**e, Rounding.TRUNC)
        return div(scaled, self.oracle_price, Rounding.TRUNC)

    def oracle_subticks(self) -> Fraction:
        """The oracle price in subticks (``PriceToSubticks``): exact rational."""
        exp = self.price_exponent - self.quantum_conversion_exponent + self.atomic_resolution + 6
        return Fraction(self.oracle_price) * Fraction(10) ** exp


def adjusted_initial_margin_ppm(
    initial_margin_ppm: int, open_interest_quote: int, lower_cap_quote: int, upper_cap_quote: int
) -> int:
    """IMF raised linearly from the tier's rate at the lower cap to 100% at the upper cap
    (``GetAdjustedInitialMarginPpm``); caps of 0 disable the scaling; floor rounding."""
    if upper_cap_quote == 0 or open_interest_quote <= lower_cap_quote:
        return initial_margin_ppm
    if open_interest_quote >= upper_cap_quote:
        return PPM
    extra = (PPM - initial_margin_ppm) * (open_interest_quote - lower_cap_quote)
    return initial_margin_ppm + div(extra, upper_cap_quote - lower_cap_quote, Rounding.FLOOR)


def maintenance_margin_ppm(initial_margin_ppm: int, maintenance_fraction_ppm: int) -> int:
    """Maintenance rate in ppm, ``floor(IMF x MF / 1e6)`` (``GetMaintenanceMarginPpm``)."""
    return mul_ppm(initial_margin_ppm, maintenance_fraction_ppm, Rounding.FLOOR)


def margin_requirements_quote(
    market: QuantumMarket, base: int, *, custom_imf_ppm: int | None = None
) -> tuple[int, int]:
    """Initial and maintenance requirement (quote quantums) of a position of ``base``.

    ``N = |notional|``; ``IMR = ceil(N x IMF_eff / 1e6)`` with IMF_eff the open-interest scaled
    IMF (raised to a user's ``custom_imf_ppm``); ``MMR = ceil(ceil(N x IMF / 1e6) x MF / 1e6)``
    from the *unscaled* IMF, so scaling and leverage never move maintenance
    (``GetMarginRequirementsInQuoteQuantums``, protocol/x/perpetuals/lib/lib.go).
    """
    n = abs(market.notional_quote(base))
    oi = abs(market.notional_quote(market.open_interest_base))
    imf = adjusted_initial_margin_ppm(
        market.initial_margin_ppm, oi,
        market.open_interest_lower_cap_quote, market.open_interest_upper_cap_quote,
    )  # fmt: skip
    if custom_imf_ppm is not None:
        imf = max(imf, custom_imf_ppm)
    base_imr = mul_ppm(n, market.initial_margin_ppm, Rounding.CEIL)
    mmr = mul_ppm(base_imr, market.maintenance_fraction_ppm, Rounding.CEIL)
    return mul_ppm(n, imf, Rounding.CEIL), mmr


# ---------------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class QuantumAccount:
    """A subaccount: USDC in quote quantums and positions (perpetual id -> base quantums)."""

    usdc_quote: int
    positions: Mapping[int, int] = field(default_factory=dict)

    def position(self, perpetual_id: int) -> int:
        return int(self.positions.get(perpetual_id, 0))

    def apply(self, perpetual_id: int, delta_base: int, quote_delta: int) -> QuantumAccount:
        """The account after ``delta_base`` of ``perpetual_id`` and ``quote_delta`` of USDC."""
        positions = dict(self.positions)
        size = positions.get(perpetual_id, 0) + delta_base
        if size:
            positions[perpetual_id] = size
        else:
            positions.pop(perpetual_id, None)
        return replace(self, usdc_quote=self.usdc_quote + quote_delta, positions=positions)


@dataclass(frozen=True, slots=True)
class Risk:
    """Net collateral and the requirements of an account, quote quantums."""

    nc: int
    imr: int
    mmr: int

    @property
    def liquidatable(self) -> bool:
        return is_liquidatable(self.nc, self.mmr)


Markets = Mapping[int, QuantumMarket]


def account_risk(account: QuantumAccount, markets: Markets) -> Risk:
    """NC = USDC + sum of signed notionals; IMR, MMR summed per position
    (``GetRiskForSubaccount``, protocol/x/subaccounts/lib/updates.go)."""
    nc, imr, mmr = account.usdc_quote, 0, 0
    for pid, base in account.positions.items():
        market = markets[pid]
        nc += market.notional_quote(base)
        i, m = margin_requirements_quote(market, base)
        imr, mmr = imr + i, mmr + m
    return Risk(nc=nc, imr=imr, mmr=mmr)


def is_liquidatable(nc_quote: int, mmr_quote: int) -> bool:
    """``MMR > 0 and NC < MMR`` (strict; ``Risk.IsLiquidatable``, protocol/lib/margin/risk.go)."""
    return mmr_quote > 0 and nc_quote < mmr_quote


def _check_reducing(account: QuantumAccount, perpetual_id: int, delta_base: int) -> int:
    size = account.position(perpetual_id)
    if (
        delta_base == 0
        or size == 0
        or (size > 0) == (delta_base > 0)
        or abs(delta_base) > abs(size)
    ):
        raise ValidationError(
            "delta_base", delta_base,
            f"must be non-zero, opposite in sign to the position ({size}) and no larger "
            "(ErrInvalidPerpetualPositionSizeDelta)",
        )  # fmt: skip
    return size


def bankruptcy_quote(
    account: QuantumAccount, markets: Markets, perpetual_id: int, delta_base: int
) -> int:
    """Signed quote quantums at which closing ``delta_base`` leaves no deficit.

    ``-DNNV - floor(TNC x |DMMR| / TMMR)`` with DNNV, DMMR the changes of the position's
    integer notional and MMR (``GetBankruptcyPriceInQuoteQuantums``,
    protocol/x/clob/keeper/liquidations.go): positive, the account must receive at least this
    (closing a long); negative, it may pay at most ``|value|``. Rounded toward +inf.
    """
    size = _check_reducing(account, perpetual_id, delta_base)
    market = markets[perpetual_id]
    risk = account_risk(account, markets)
    dnnv = market.notional_quote(size + delta_base) - market.notional_quote(size)
    dmmr = (
        margin_requirements_quote(market, size + delta_base)[1]
        - margin_requirements_quote(market, size)[1]
    )
    if dmmr > 0 or risk.mmr <= 0:
        raise ValidationError("delta_base", delta_base, "must not raise maintenance margin")
    return -dnnv - div(risk.nc * -dmmr, risk.mmr, Rounding.FLOOR)


def fillable_price(
    account: QuantumAccount,
    markets: Markets,
    perpetual_id: int,
    *,
    bankruptcy_adjustment_ppm: int,
    spread_to_maintenance_ppm: int,
) -> Fraction:
    """Liquidation limit price in quote quantums per base quantum (exact rational).

    ``ABR = clamp(BA/1e6 x (1 - TNC/TMMR), 0, 1)``;
    ``price = (PNNV - ABR x PMMR x SMMR/1e6) / PS`` for the whole position PS
    (``GetFillablePrice``, protocol/x/clob/keeper/liquidations.go).
    """
    size = account.position(perpetual_id)
    if size == 0:
        raise ValidationError("perpetual_id", perpetual_id, "must name an open position")
    market = markets[perpetual_id]
    risk = account_risk(account, markets)
    if risk.mmr <= 0:
        raise ValidationError("mmr", risk.mmr, "must be positive to price a liquidation")
    pnnv = market.notional_quote(size)
    pmmr = margin_requirements_quote(market, size)[1]
    abr = Fraction(bankruptcy_adjustment_ppm, PPM) * (1 - Fraction(risk.nc, risk.mmr))
    abr = min(max(abr, Fraction(0)), Fraction(1))
    price = (pnnv - abr * pmmr * Fraction(spread_to_maintenance_ppm, PPM)) / size
    if price < 0:
        raise ValidationError("fillable_price", price, "must not be negative")
    return price


def fillable_price_subticks(
    price: Fraction,
    *,
    liquidating_long: bool,
    subticks_per_tick: int,
    quantum_conversion_exponent: int,
) -> int:
    """The fillable price as an order's subticks (``ConvertFillablePriceToSubticks``).

    Selling out a long rounds up (to an integer, then to a tick); buying back a short rounds
    down; the result is clamped to ``[subticks_per_tick, MaxUint64 - MaxUint64 mod tick]``.
    Either way the order is never worse for the liquidated account than the exact price.
    """
    raw = price / Fraction(10) ** quantum_conversion_exponent
    rounding = Rounding.CEIL if liquidating_long else Rounding.FLOOR
    subticks = div(raw.numerator, raw.denominator, rounding)
    subticks = round_to_multiple(subticks, subticks_per_tick, rounding)
    top = MAX_UINT64 - MAX_UINT64 % subticks_per_tick
    return min(max(subticks, subticks_per_tick), top)


def fill_quote(subticks: int, base: int, quantum_conversion_exponent: int) -> int:
    """Quote quantums of a fill, ``floor(subticks x |base| x 10**QCE)``
    (``FillAmountToQuoteQuantums``, protocol/x/clob/types/quantums.go)."""
    value = Fraction(subticks * abs(base)) * Fraction(10) ** quantum_conversion_exponent
    return div(value.numerator, value.denominator, Rounding.FLOOR)


# ---------------------------------------------------------------------------- liquidation fills


def insurance_fund_delta(
    account: QuantumAccount,
    markets: Markets,
    perpetual_id: int,
    *,
    is_buy: bool,
    fill_base: int,
    maker_subticks: int,
    max_liquidation_fee_ppm: int,
) -> int:
    """Quote quantums the liquidated account pays the fund for one fill (< 0: the fund pays).

    ``raw = quote_delta - bankruptcy_quote(delta)``; a fill beyond bankruptcy (``raw <= 0``)
    costs the fund ``|raw|``; otherwise the account pays
    ``min(floor(|quote_delta| x fee_ppm / 1e6), raw)`` (``GetLiquidationInsuranceFundDelta``,
    protocol/x/clob/keeper/liquidations.go).
    """
    if fill_base <= 0:
        raise ValidationError(
            "fill_base", fill_base,
            "must be a positive number of base quantums "
            "(ErrInvalidQuantumsForInsuranceFundDeltaCalculation)",
        )  # fmt: skip
    market = markets[perpetual_id]
    quote = fill_quote(maker_subticks, fill_base, market.quantum_conversion_exponent)
    delta_base, quote_delta = (fill_base, -quote) if is_buy else (-fill_base, quote)
    raw = quote_delta - bankruptcy_quote(account, markets, perpetual_id, delta_base)
    if raw <= 0:
        return raw
    return min(mul_ppm(abs(quote_delta), max_liquidation_fee_ppm, Rounding.FLOOR), raw)


def is_valid_insurance_fund_delta(fund_balance_quote: int, delta_quote: int) -> bool:
    """A fill may take from the fund only what it holds (``IsValidInsuranceFundDelta``)."""
    return delta_quote >= 0 or fund_balance_quote + delta_quote >= 0


@dataclass(frozen=True, slots=True)
class BlockUsage:
    """What one subaccount used of its per-block limits (``SubaccountLiquidationInfo``)."""

    notional_liquidated_quote: int = 0
    insurance_lost_quote: int = 0
    perpetuals_liquidated: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class LiquidationFill:
    """One maker fill of a liquidation order: base quantums (> 0) at the maker's subticks."""

    base: int
    subticks: int


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """Result of matching a liquidation order fill by fill (``stopped``: why it stopped)."""

    account: QuantumAccount
    usage: BlockUsage
    insurance_deltas: tuple[int, ...]
    filled_base: int
    stopped: str | None


def apply_liquidation_fills(
    account: QuantumAccount,
    markets: Markets,
    perpetual_id: int,
    *,
    is_buy: bool,
    fills: Sequence[LiquidationFill],
    max_liquidation_fee_ppm: int,
    fund_balance_quote: int = MAX_UINT64,
    max_notional_liquidated_quote: int = MAX_UINT64,
    max_insurance_lost_quote: int = MAX_UINT64,
    usage: BlockUsage = BlockUsage(),
) -> FillOutcome:
    """Match a liquidation order against maker fills in order, as the venue validates them.

    ``stopped`` is the venue's error (``Err`` dropped) or status that ended the matching.
    Per fill: the insurance delta on the state left by earlier fills; the fill's oracle
    notional against the account's remaining ``max_notional_liquidated``; a negative delta
    against the remaining ``max_quantums_insurance_lost`` (per fill, not net) and the fund's
    balance. The first violation stops matching (``validateMatchedLiquidation``,
    ``UpdateSubaccountLiquidationInfo``). The account's USDC moves by
    ``quote_delta - insurance_delta``; the liquidated taker pays no trading fee.
    """
    market = markets[perpetual_id]
    deltas: list[int] = []
    filled = 0
    fund = fund_balance_quote
    for f in fills:
        delta = insurance_fund_delta(
            account, markets, perpetual_id, is_buy=is_buy, fill_base=f.base,
            maker_subticks=f.subticks, max_liquidation_fee_ppm=max_liquidation_fee_ppm,
        )  # fmt: skip
        deltas.append(delta)
        signed = f.base if is_buy else -f.base
        notional = abs(market.notional_quote(signed))
        stop = None
        if notional > max_notional_liquidated_quote - usage.notional_liquidated_quote:
            stop = "LiquidationExceedsSubaccountMaxNotionalLiquidated"
        elif delta < 0 and -delta > max_insurance_lost_quote - usage.insurance_lost_quote:
            stop = "LiquidationExceedsSubaccountMaxInsuranceLost"
        elif not is_valid_insurance_fund_delta(fund, delta):
            stop = "LiquidationRequiresDeleveraging"
        if stop is not None:
            return FillOutcome(account, usage, tuple(deltas), filled, stop)
        quote = fill_quote(f.subticks, f.base, market.quantum_conversion_exponent)
        account = account.apply(perpetual_id, signed, (-quote if is_buy else quote) - delta)
        fund += delta
        filled += f.base
        usage = replace(
            usage,
            notional_liquidated_quote=usage.notional_liquidated_quote + notional,
            insurance_lost_quote=usage.insurance_lost_quote + max(0, -delta),
            perpetuals_liquidated=usage.perpetuals_liquidated | {perpetual_id},
        )
    return FillOutcome(account, usage, tuple(deltas), filled, None)


def block_headroom(
    usage: BlockUsage,
    perpetual_id: int,
    *,
    max_notional_liquidated_quote: int,
    max_insurance_lost_quote: int,
) -> tuple[int, int]:
    """Notional and insurance loss an account may still use this block
    (``GetSubaccountMaxNotionalLiquidatable``, ``GetSubaccountMaxInsuranceLost``); a perpetual
    already liquidated for it this block may not be liquidated again."""
    if perpetual_id in usage.perpetuals_liquidated:
        raise ValidationError(
            "perpetual_id", perpetual_id,
            "was already liquidated for this subaccount this block "
            "(ErrSubaccountHasLiquidatedPerpetual)",
        )  # fmt: skip
    notional = max_notional_liquidated_quote - usage.notional_liquidated_quote
    if notional < 0:
        raise ValidationError(
            "usage.notional_liquidated_quote", usage.notional_liquidated_quote,
            "must not exceed max_notional_liquidated "
            "(ErrLiquidationExceedsSubaccountMaxNotionalLiquidated)",
        )  # fmt: skip
    lost = max_insurance_lost_quote - usage.insurance_lost_quote
    if lost < 0:
        raise ValidationError(
            "usage.insurance_lost_quote", usage.insurance_lost_quote,
            "must not exceed max_quantums_insurance_lost "
            "(ErrLiquidationExceedsSubaccountMaxInsuranceLost)",
        )  # fmt: skip
    return notional, lost


def position_notional_bounds(
    market: QuantumMarket,
    base: int,
    *,
    min_position_notional_quote: int,
    max_position_portion_ppm: int,
) -> tuple[int, int]:
    """Least and most of a position's notional one block may liquidate
    (``GetMaxAndMinPositionNotionalLiquidatable``):
    ``min = min(min_notional, N)``, ``max = max(min, floor(N x portion / 1e6))``."""
    n = abs(market.notional_quote(base))
    low = min(min_position_notional_quote, n)
    return low, max(low, mul_ppm(n, max_position_portion_ppm, Rounding.FLOOR))


def liquidation_size_delta(
    market: QuantumMarket,
    base: int,
    *,
    min_position_notional_quote: int,
    max_position_portion_ppm: int,
    subaccount_headroom_quote: int,
) -> int:
    """Signed base quantums of this block's liquidation order
    (``GetLiquidatablePositionSizeDelta``).

    The whole position when its notional fits ``min(max position notional, headroom)`` or it
    is at most one step; else that cap converted to base (truncated), rounded down to a step
    and clamped to ``[step, |position|]``. The sign closes the position.
    """
    if base == 0:
        raise ValidationError("base", base, "must be an open position")
    _, most = position_notional_bounds(
        market, base, min_position_notional_quote=min_position_notional_quote,
        max_position_portion_ppm=max_position_portion_ppm,
    )  # fmt: skip
    cap = min(most, subaccount_headroom_quote)
    step = market.step_base_quantums
    if abs(market.notional_quote(base)) <= cap or abs(base) <= step:
        return -base
    size = round_to_multiple(market.base_from_quote(cap), step, Rounding.FLOOR)
    size = min(max(size, step), abs(base))
    return -size if base > 0 else size
