"""Exact integer (fixed-point) liquidation math, to match an on-chain venue to the unit.

On-chain venues keep every amount as an integer in a fixed precision and round each
operation in a stated direction; a float model agrees with them only to a few units of the
last place. These functions take and return integers in the precisions below and round as the
venue does (``//`` floors; ``_ceil_div`` rounds up), so a test can compare with the venue's
own unit tests exactly. The float path of the engine uses the same formulas in
:mod:`deleverage.rules.liquidation`.

Precisions (the defaults are Drift protocol v2's, ``programs/drift/src/math/constants.rs`` at
``drift-labs/protocol-v2`` commit ``0ae3e3b1db782a6765c3525b3dec38ad4d9d3a62``):

=====================  =======  =====================================================
name                   value    holds
=====================  =======  =====================================================
``PRICE``              1e6      oracle prices (quote per base), quote-asset price
``QUOTE``              1e6      money: collateral, shortage, fees, pnl
``BASE``               1e9      position size
``MARGIN``             1e4      margin ratios and the liquidation buffer
``FEE``                1e6      fee rates, liquidation multipliers (parts per million)
``PCT``                1e4      fraction of the shortage a liquidation may cover
``FUNDING``            1e9      cumulative funding rate, per base unit
=====================  =======  =====================================================

Every function names its formula; docs/formulas.md section 4.16 has them with sources.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from deleverage.errors import ValidationError

PRICE = 10**6
QUOTE = 10**6
BASE = 10**9
MARGIN = 10**4
FEE = 10**6
PCT = 10**4
FUNDING = 10**9
#: base x price / BASE_PRICE_TO_QUOTE -> quote
BASE_PRICE_TO_QUOTE = BASE * PRICE // QUOTE
#: quote-per-base (PRICE) -> funding precision
FUNDING_TO_QUOTE = FUNDING // PRICE
#: "no finite size": what the venue returns when closing cannot cover the shortage (u64::MAX)
UNBOUNDED = 2**64 - 1
#: Slots during which the liquidator fee stays at its base rate (about 10 minutes at Drift).
FEE_GRACE_SLOTS = 1500
#: Liquidator fee added per slot after the grace period (FEE precision: 0.0001%).
FEE_INCREASE_PER_SLOT = 1
#: Below this shortage (QUOTE) a liquidation may always cover all of it ($50 at Drift).
FULL_LIQUIDATION_SHORTAGE = 50 * QUOTE


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _trunc_div(numerator: int, denominator: int) -> int:
    """Division rounded toward zero (Rust's signed ``/``)."""
    q = abs(numerator) // abs(denominator)
    return q if (numerator >= 0) == (denominator > 0) else -q


def _check_non_negative(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, value, "must be an int in the venue's fixed precision")
    if value < 0:
        raise ValidationError(field, value, "must be >= 0")
    return value


def quote_value(base: int, price: int) -> int:
    """Quote value of ``|base|`` at ``price``, floored: ``|base| x price / 1e9``.

    Drift ``calculate_base_asset_value_with_oracle_price`` (``math/position.rs``).
    """
    return abs(base) * max(price, 0) // BASE_PRICE_TO_QUOTE


def fee_on_value(base: int, price: int, fee_rate: int) -> int:
    """A fee (QUOTE) at ``fee_rate`` (FEE) on the value of ``base`` at ``price``, floored."""
    return quote_value(base, price) * fee_rate // FEE


def base_to_cover_shortage(
    *,
    shortage: int,
    margin_ratio: int,
    liquidator_fee: int,
    insurance_fee: int,
    oracle_price: int,
    quote_price: int = PRICE,
) -> int:
    """Base units (BASE) to close so that the account covers its margin shortage.

    Each base unit closed frees ``margin_ratio`` of its value in requirement and costs the
    liquidator fee and the insurance-fund fee, both charged on the oracle value::

        denominator = floor(floor(P x Q / 1e6) x (r x 100 - L) / 1e6) - floor(P x I / 1e6)
        base        = floor(shortage x 1e9 / denominator)

    with ``P`` the oracle price, ``Q`` the quote-asset price, ``r`` the margin ratio (MARGIN:
    maintenance plus the liquidation buffer), ``L`` and ``I`` the fee rates (FEE). Returns
    :data:`UNBOUNDED` when ``P = 0`` or ``r x 100 <= L`` (closing frees nothing); a
    non-positive denominator otherwise also means no finite size. The caller rounds the result
    **up** to the order step. Drift
    ``calculate_base_asset_amount_to_cover_margin_shortage`` (``math/liquidation.rs``).

    Examples
    --------
    Drift's test ``one_percent_liquidation_fee_and_one_percent_if_liquidation_fee``:

    >>> base_to_cover_shortage(shortage=10_000_000, margin_ratio=1000, liquidator_fee=10_000,
    ...                        insurance_fee=10_000, oracle_price=100_000_000)
    1250000000
    """
    for field, value in (
        ("shortage", shortage), ("margin_ratio", margin_ratio),
        ("liquidator_fee", liquidator_fee), ("insurance_fee", insurance_fee),
        ("oracle_price", oracle_price), ("quote_price", quote_price),
    ):  # fmt: skip
        _check_non_negative(field, value)
    ratio_fee = margin_ratio * (FEE // MARGIN)
    if oracle_price == 0 or ratio_fee <= liquidator_fee:
        return UNBOUNDED
    price = oracle_price * quote_price // PRICE
    denominator = price * (ratio_fee - liquidator_fee) // FEE - oracle_price * insurance_fee // FEE
    if denominator <= 0:
        return UNBOUNDED
    return shortage * BASE // denominator


def insurance_fee_for_shortage(
    *,
    shortage: int,
    base: int,
    margin_ratio: int,
    liquidator_fee: int,
    oracle_price: int,
    max_insurance_fee: int,
    quote_price: int = PRICE,
) -> int:
    """Insurance-fund fee rate (FEE) that shrinks as the margin shortage grows.

    The shortage as a share of the position's value is taken from what the margin ratio leaves
    after the liquidator fee, and 5% of that is kept back so the fee cannot itself make the
    account bankrupt::

        share   = floor(floor(shortage x 1e9 / |base|) x 1e6 / floor(P x Q / 1e6))
        implied = floor(max(0, r x 100 - L - share) x 19 / 20)
        fee     = min(max_insurance_fee, implied)

    0 when ``P``, ``Q`` or ``base`` is 0, or ``r x 100 <= L``. Drift ``calculate_perp_if_fee``
    (``math/liquidation.rs``).

    Examples
    --------
    Drift's test ``calculate_perp_if_fee::test``: $20 short on $1,000 of value, 5% ratio, 1%
    liquidator fee: ``(5% - 1% - 2%) x 0.95 = 1.9%``.

    >>> insurance_fee_for_shortage(shortage=20_000_000, base=10_000_000_000, margin_ratio=500,
    ...     liquidator_fee=10_000, oracle_price=100_000_000, max_insurance_fee=50_000)
    19000
    """
    for field, value in (
        ("shortage", shortage), ("margin_ratio", margin_ratio),
        ("liquidator_fee", liquidator_fee), ("oracle_price", oracle_price),
        ("max_insurance_fee", max_insurance_fee), ("quote_price", quote_price),
    ):  # fmt: skip
        _check_non_negative(field, value)
    ratio_fee = margin_ratio * (FEE // MARGIN)
    price = oracle_price * quote_price // PRICE
    if price == 0 or base == 0 or ratio_fee <= liquidator_fee:
        return 0
    share = shortage * BASE // abs(base) * FEE // price
    implied = max(0, ratio_fee - liquidator_fee - share) * 19 // 20
    return min(max_insurance_fee, implied)


def max_liquidator_fee(*, liquidator_fee: int, maintenance_ratio: int, multiple: int = 3) -> int:
    """Cap of the ramped liquidator fee (FEE): ``min(multiple x fee, maintenance ratio)``.

    Drift ``PerpMarket::get_max_liquidation_fee`` (``MAX_LIQUIDATION_MULTIPLIER = 3``).
    """
    return min(multiple * liquidator_fee, maintenance_ratio * (FEE // MARGIN))


def ramped_liquidator_fee(
    *,
    base_fee: int,
    max_fee: int,
    entered_slot: int,
    slot: int,
    grace_slots: int = FEE_GRACE_SLOTS,
    increase_per_slot: int = FEE_INCREASE_PER_SLOT,
) -> int:
    """Liquidator fee (FEE) after ``slot - entered_slot`` slots in liquidation.

    The base fee during the grace period; then ``base + elapsed x increase`` (counting from
    entry, so it steps up at the end of the grace period), never above ``max_fee``. Drift
    ``get_liquidation_fee`` (``math/liquidation.rs``).

    Examples
    --------
    >>> ramped_liquidator_fee(base_fee=20_000, max_fee=50_000, entered_slot=0, slot=10_000)
    30000
    """
    elapsed = max(0, slot - entered_slot)
    if elapsed < grace_slots:
        return base_fee
    return min(max_fee, base_fee + elapsed * increase_per_slot)


def max_pct_to_liquidate(
    *,
    shortage: int,
    margin_freed: int,
    slot: int,
    entered_slot: int,
    initial_pct: int,
    duration_slots: int,
    full_below: int = FULL_LIQUIDATION_SHORTAGE,
) -> int:
    """Share (PCT) of the cover size a liquidation may close now (liquidation time ramp).

    The share of the account's total shortage that may have been freed grows linearly from
    ``initial_pct`` to 100% over ``duration_slots`` after the account entered liquidation::

        freeable  = min(floor(elapsed x 1e4 / duration) + initial_pct, 1e4)
        max_freed = floor((shortage + freed) x freeable / 1e4)
        pct       = floor(max(0, max_freed - freed) x 1e4 / shortage)

    100% when the shortage is below ``full_below`` or the duration is 0. Drift
    ``calculate_max_pct_to_liquidate`` (``math/liquidation.rs``).
    """
    if shortage < full_below or duration_slots == 0 or shortage <= 0:
        return PCT
    elapsed = max(0, slot - entered_slot)
    freeable = min(elapsed * PCT // duration_slots + initial_pct, PCT)
    max_freed = (shortage + margin_freed) * freeable // PCT
    return max(0, max_freed - margin_freed) * PCT // shortage


def liquidation_multiplier(fee: int, *, premium: bool) -> int:
    """``1e6 + fee`` (premium) or ``1e6 - fee`` (discount), FEE precision.

    Drift ``calculate_liquidation_multiplier`` (spot and pnl liquidations).
    """
    return FEE + fee if premium else FEE - fee


def transfer_price(*, side: int, oracle_price: int, liquidator_fee: int) -> int:
    """Price (PRICE) at which a liquidator takes over a position: oracle less its fee.

    A long (``side`` = +1) is taken at ``oracle x (1 - fee)``, a short at ``oracle x (1 +
    fee)``; the liquidator's limit price is checked against it (Drift ``liquidate_perp``).
    """
    return oracle_price * (FEE - side * liquidator_fee) // FEE


def size_premium_ratio(*, base: int, margin_ratio: int, imf_factor: int) -> int:
    """Margin ratio (MARGIN) raised for large positions: ``max(r, 0.8 r + imf x sqrt(size))``.

    ``adj = r - floor(r / 5) + floor(isqrt(10 |base| + 1) x imf / 1e7)`` (``imf`` in FEE);
    Drift ``calculate_size_premium_liability_weight`` (``math/margin.rs``), bounded mode.
    """
    if imf_factor == 0:
        return margin_ratio
    root = math.isqrt(10 * abs(base) + 1)
    adjusted = margin_ratio - margin_ratio // 5 + root * imf_factor // (10**5 * FEE // MARGIN)
    return max(margin_ratio, adjusted)


def perp_margin_ratio(
    *,
    base: int,
    kind: str,
    initial_ratio: int,
    maintenance_ratio: int,
    imf_factor: int = 0,
    high_leverage: bool = False,
    hlm_initial_ratio: int = 0,
    hlm_maintenance_ratio: int = 0,
) -> int:
    """A perp position's margin ratio (MARGIN) by kind: ``initial``, ``maintenance``, ``fill``.

    ``fill`` is the floored mean of initial and maintenance. Without high-leverage mode the
    ratio is :func:`size_premium_ratio` of the market's ratio. In high-leverage mode the
    maintenance ratio is the size-premium of the mode's own ratio; the initial (and fill)
    ratio starts from the mode's ratio and moves toward the normal one as the size premium of
    the normal ratio (unbounded: ``0.8 r + imf sqrt(size)``) approaches it::

        adjusted < normal:  hlm + (normal - hlm) x (1 - (normal - adjusted) / (normal / 5))
        adjusted = normal:  hlm
        adjusted > normal:  adjusted

    Drift ``PerpMarket::get_margin_ratio`` and
    ``calc_high_leverage_mode_initial_margin_ratio_from_size`` (``state/perp_market.rs``).
    """
    if kind not in ("initial", "maintenance", "fill"):
        raise ValidationError("kind", kind, "must be 'initial', 'maintenance' or 'fill'")
    hlm = high_leverage and hlm_initial_ratio > 0 and hlm_maintenance_ratio > 0
    if kind == "maintenance":
        ratio = hlm_maintenance_ratio if hlm else maintenance_ratio
        return size_premium_ratio(base=base, margin_ratio=ratio, imf_factor=imf_factor)
    normal = initial_ratio if kind == "initial" else (initial_ratio + maintenance_ratio) // 2
    if not hlm:
        return size_premium_ratio(base=base, margin_ratio=normal, imf_factor=imf_factor)
    default = (
        hlm_initial_ratio if kind == "initial"
        else (hlm_initial_ratio + hlm_maintenance_ratio) // 2
    )  # fmt: skip
    adjusted = normal
    if imf_factor:
        root = math.isqrt(10 * abs(base) + 1)
        adjusted = normal - normal // 5 + root * imf_factor // (10**5 * FEE // MARGIN)
    if adjusted > normal:
        return adjusted
    if adjusted == normal:
        return default
    discount = FEE - (normal - adjusted) * FEE // (normal // 5)
    return default + (normal - default) * discount // FEE


def high_leverage_liquidator_fee(*, liquidator_fee: int, hlm_maintenance_ratio: int) -> int:
    """Base liquidator fee (FEE) in high-leverage mode: at most 80% of its maintenance ratio.

    Drift ``PerpMarket::get_base_liquidator_fee``.
    """
    return min(liquidator_fee, hlm_maintenance_ratio * (FEE // MARGIN) * 4 // 5)


def margin_requirement(
    *, base: int, oracle_price: int, margin_ratio: int, open_orders: int = 0,
    order_requirement: int = QUOTE // 100,
) -> int:  # fmt: skip
    """Requirement (QUOTE): ``floor(value x ratio / 1e4) + $0.01`` per open order.

    Drift ``calculate_perp_position_value_and_pnl`` (``math/margin.rs``); ``base`` is the
    worst-case size (position plus the open orders on its side).
    """
    return (
        quote_value(base, oracle_price) * margin_ratio // MARGIN + open_orders * order_requirement
    )


def collateral_buffer(collateral_component: int, buffer_ratio: int) -> int:
    """Liquidation buffer on a negative collateral component (QUOTE), toward zero.

    Drift ``MarginCalculation`` adds ``component x buffer / 1e4`` for each negative component
    (so the collateral plus buffer is lower than the collateral).
    """
    if collateral_component >= 0:
        return 0
    return _trunc_div(collateral_component * buffer_ratio, MARGIN)


class BankruptcyResolution(NamedTuple):
    """How a bankrupt position's loss is paid (all QUOTE, except the funding delta)."""

    insurance_payment: int  # from the insurance fund vault
    fee_pool_payment: int  # from the market's fee pool
    socialized: int  # charged to the open interest through funding
    funding_rate_delta: int  # added to the longs' cumulative funding rate (FUNDING)


def resolve_bankruptcy(
    *,
    loss: int,
    insurance_vault: int,
    max_insurance: int,
    settled_insurance: int,
    fee_pool: int,
    base_long: int,
    base_short: int,
) -> BankruptcyResolution:
    """Pay a bankrupt position's loss: insurance fund, then fee pool, then open interest.

    1. The fund pays ``min(loss, vault - 1, max_insurance - settled_insurance)`` (it always
       keeps one unit; the market's cap is cumulative);
    2. the market's fee pool pays ``min(rest, fee_pool)``;
    3. the rest is socialized: ``delta = ceil(rest x 1e9 / (|long| + |short|)) x 1000`` is
       added to the longs' and taken from the shorts' cumulative funding rate.

    ``loss`` is the user's negative quote amount (its magnitude is used). Raises when a rest
    remains and there is no open interest to charge. Drift ``resolve_perp_bankruptcy`` and
    ``calculate_funding_rate_deltas_to_resolve_bankruptcy`` (``controller/liquidation.rs``).
    """
    need = abs(loss)
    room = max(0, max_insurance - settled_insurance)
    insurance = min(need, max(0, insurance_vault - 1), room)
    fee_pool_paid = min(need - insurance, max(0, fee_pool))
    rest = need - insurance - fee_pool_paid
    delta = 0
    if rest > 0:
        open_base = abs(base_long) + abs(base_short)
        if open_base == 0:
            raise ValidationError("base_long", base_long, "open interest must be > 0 to socialize")
        delta = _ceil_div(rest * BASE, open_base) * FUNDING_TO_QUOTE
    return BankruptcyResolution(insurance, fee_pool_paid, rest, delta)


def funding_payment(rate_delta: int, base: int) -> int:
    """Quote a position receives (negative: pays) when the funding rate moves by ``rate_delta``.

    Magnitude ``floor(|delta| x |base| / 1e6 / 1e3)``, then ``/ 1e3`` toward zero; a rise of the
    rate costs a long, a fall costs a short. Drift ``calculate_funding_payment``
    (``math/funding.rs``).
    """
    magnitude = abs(rate_delta) * abs(base) // PRICE // FUNDING_TO_QUOTE
    signed = -magnitude if (rate_delta > 0) == (base > 0) else magnitude
    return _trunc_div(signed, FUNDING_TO_QUOTE)


def deposit_index_delta(*, borrow: int, cumulative_interest: int, total_deposits: int) -> int:
    """Fall of a spot market's deposit index that socializes a bankrupt borrow, rounded up.

    ``ceil(index x borrow / total_deposits)``; Drift
    ``calculate_cumulative_deposit_interest_delta_to_resolve_bankruptcy``.
    """
    return _ceil_div(cumulative_interest * borrow, total_deposits)
