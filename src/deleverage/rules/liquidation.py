"""Liquidation math: who is liquidated, how much is closed, and at what price.

Pure functions over scalars and arrays; the risk step (:mod:`deleverage.engine.risk`) applies
them to the engine's state. Each formula is in docs/formulas.md with its source.

Sizes are base units, prices quote per base, money quote. ``side`` is +1 for a long position
and -1 for a short; closing a position trades ``-side`` (a long is liquidated by selling).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from deleverage.errors import ValidationError
from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]


def bankruptcy_price(size: float, mark: float, equity: float) -> float:
    """Price at which a position's equity pool is exhausted, other marks held fixed.

    ``equity(P) = equity + size x (P - mark) = 0``  =>  ``P = mark - equity / size``.
    For an isolated position ``equity`` is its margin plus unrealized PnL; for a cross account
    it is the account's cross equity. A long's bankruptcy price is below the mark while it has
    positive equity. Returns NaN for a flat position; never negative.
    """
    if size == 0.0:
        return math.nan
    return max(0.0, mark - equity / size)


def size_to_restore(
    *,
    size: float,
    shortage: float,
    mark: float,
    requirement_rate: float,
    fee_rate: float,
    fill_price: float | None = None,
    fee_price: float | None = None,
) -> float:
    """Base units to close so that equity meets the requirement afterwards (partial liquidation).

    Closing ``q`` at the price ``x`` (the mark by default) costs the penalty ``f q y`` (``y``
    the price the fee is charged on: ``x`` by default, the oracle ``P`` where the venue
    charges the oracle value) and the loss ``q |P - x|`` against the mark, and lowers the
    requirement by ``r q P``:

    ``equity - q (f y + |P - x|) >= requirement - r q P``
    => ``q >= shortage / (r P - f y - |P - x|)``,  ``shortage = requirement - equity``

    the margin shortage divided by what each unit closed releases net of costs: Drift's
    ``calculate_base_asset_amount_to_cover_margin_shortage``. A transfer to a liquidator at
    ``x = P (1 - L)`` with the insurance fee on the oracle value (``y = P``) gives Drift's
    ``q = shortage / (P (r - L - I))``. ``requirement_rate`` is the target rate (maintenance
    plus buffer, or initial). Returns 0 when nothing is short and the whole ``|size|`` when
    closing cannot restore the requirement (nothing is released).

    Examples
    --------
    Drift's unit test: a $10 shortage, a 10% margin ratio, no fees, price $100: close 1 unit.

    >>> size_to_restore(size=5.0, shortage=10.0, mark=100.0, requirement_rate=0.1, fee_rate=0.0)
    1.0

    Drift's test with a 1% liquidator fee and a 1% insurance fee: 1.25 units.

    >>> size_to_restore(size=5.0, shortage=10.0, mark=100.0, requirement_rate=0.1,
    ...                 fee_rate=0.01, fill_price=99.0, fee_price=100.0)
    1.25
    """
    abs_size = abs(size)
    if shortage <= 0.0:
        return 0.0
    x = mark if fill_price is None else fill_price
    y = x if fee_price is None else fee_price
    release = mark * requirement_rate - fee_rate * y - abs(mark - x)
    if release <= 0.0:
        return abs_size
    return min(abs_size, shortage / release)


def insurance_fee_rate(
    *,
    shortage: float,
    notional: float,
    requirement_rate: float,
    liquidator_fee_rate: float,
    max_rate: float,
) -> float:
    """Insurance-fund fee rate that shrinks as the margin shortage grows (Drift).

    ``min(max_rate, 0.95 x max(0, r - L - shortage / notional))``: what the requirement rate
    ``r`` (maintenance plus buffer) leaves after the liquidator fee ``L`` and the shortage's
    share of the position's notional, less 5% so the fee cannot itself cause bankruptcy.
    0 for no notional or ``r <= L``. Drift ``calculate_perp_if_fee``; the exact integer form is
    :func:`deleverage.rules.fixed_point.insurance_fee_for_shortage`.

    Examples
    --------
    Drift's test: $20 short on $1,000, 5% ratio, 1% liquidator fee, 5% cap: 1.9%.

    >>> round(insurance_fee_rate(shortage=20.0, notional=1000.0, requirement_rate=0.05,
    ...                          liquidator_fee_rate=0.01, max_rate=0.05), 12)
    0.019
    """
    if notional <= 0.0 or requirement_rate <= liquidator_fee_rate:
        return 0.0
    implied = 0.95 * max(
        0.0, requirement_rate - liquidator_fee_rate - max(shortage, 0.0) / notional
    )
    return min(max_rate, implied)


def ramped_fee_rate(
    *, base_rate: float, max_rate: float, elapsed_s: float, grace_s: float, ramp_per_s: float
) -> float:
    """A liquidator fee that grows with the time the account has spent in liquidation (Drift).

    ``base_rate`` while ``elapsed_s < grace_s``; then ``base_rate + elapsed_s x ramp_per_s``
    (counted from entry), capped at ``max_rate``. Drift ``get_liquidation_fee`` counts slots:
    1,500 slots of grace, +0.0001% per slot, cap ``min(3 x fee, MMR)``.
    """
    if elapsed_s < grace_s or ramp_per_s <= 0.0:
        return base_rate
    return max(base_rate, min(max_rate, base_rate + elapsed_s * ramp_per_s))


def fraction_to_liquidate(
    *,
    shortage: float,
    margin_freed: float,
    elapsed_s: float,
    duration_s: float,
    initial_fraction: float,
    full_below: float = 0.0,
) -> float:
    """Fraction of the cover size a liquidation may close now (Drift's liquidation time ramp).

    The share of the account's total shortage that may have been freed grows linearly from
    ``initial_fraction`` at entry to 1 after ``duration_s``::

        freeable  = min(elapsed / duration + initial_fraction, 1)
        fraction  = max(0, (shortage + freed) x freeable - freed) / shortage

    1 when ``duration_s`` is 0 or the shortage is below ``full_below``. Drift
    ``calculate_max_pct_to_liquidate`` (exact form:
    :func:`deleverage.rules.fixed_point.max_pct_to_liquidate`).
    """
    if duration_s <= 0.0 or shortage <= 0.0 or shortage < full_below:
        return 1.0
    freeable = min(max(elapsed_s, 0.0) / duration_s + initial_fraction, 1.0)
    return max(0.0, (shortage + margin_freed) * freeable - margin_freed) / shortage


def tier_down_size(size: float, mark: float, tiers: TierArrays, *, steps: int = 1) -> float:
    """Base units to close to bring a position ``steps`` tiers down (Binance, Bybit, OKX).

    The position is reduced to just below the floor of tier ``t - steps + 1`` (``t`` its
    tier), the largest notional of tier ``t - steps``; ``steps >= t`` reduces it into the first
    tier (OKX's older rule: "reduced to the maximum of tier 1" in one go). In the first tier
    the whole position is closed.

    Examples
    --------
    OKX: 15,000 contracts in tier 3 (tier 2 from 2,001, tier 3 from 12,001), reduced to tier
    1: close 13,000 in whole contracts (mark 1, so notional = contracts).

    >>> from deleverage.spec import TierArrays, maintenance_deductions
    >>> import numpy as np
    >>> f, r = np.array([0.0, 2001.0, 12001.0]), np.array([0.01, 0.015, 0.02])
    >>> t = TierArrays(floor=f, imr=2 * r, mmr=r, cum=maintenance_deductions(f, r))
    >>> round_up_to_lot(tier_down_size(15_000.0, 1.0, t, steps=2), 1.0)
    13000.0
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValidationError("steps", steps, "must be an int >= 1")
    notional = abs(size) * mark
    t = int(np.searchsorted(tiers.floor, notional, side="right") - 1)
    if t <= 0:
        return abs(size)
    target_notional = float(tiers.floor[max(1, t - steps + 1)]) * (1.0 - 1e-9)
    return max(0.0, abs(size) - target_notional / mark)


def round_up_to_lot(size: float, lot: float) -> float:
    """``size`` rounded up to a whole number of lots (a close never falls short of its aim)."""
    return math.ceil(size / lot - 1e-9) * lot


def fixed_fraction_size(size: float, mark: float, *, fraction: float, min_notional: float) -> float:
    """Hyperliquid: close ``fraction`` of a position whose notional exceeds ``min_notional``.

    Smaller positions are closed whole.
    """
    if abs(size) * mark > min_notional:
        return abs(size) * fraction
    return abs(size)


def capped_penalty(*, fee: float, equity_after_fill: float) -> float:
    """The liquidation penalty, capped so it never makes the account bankrupt.

    dYdX v4: ``insurance_fund_delta = min(fee, quote_received - bankruptcy_quote)``; here the
    remaining equity after the fill plays the part of ``quote_received - bankruptcy_quote``.
    A fill already beyond bankruptcy pays no penalty.
    """
    return max(0.0, min(fee, equity_after_fill))


def adjusted_bankruptcy_rating(
    *, account_equity: float, account_maintenance: float, bankruptcy_adjustment: float = 1.0
) -> float:
    """dYdX v4's ABR: how far toward the full spread a liquidation is priced, in [0, 1].

    ``ABR = clip(BA x (1 - TNC / TMMR), 0, 1)``: 0 while the account's net collateral covers
    its maintenance (no discount), 1 from ``TNC <= (1 - 1/BA) x TMMR`` on (with BA = 1: at
    zero or negative equity). ``GetFillablePrice``, protocol/x/clob/keeper/liquidations.go
    (dydxprotocol/v4-chain@84d4664).
    """
    if account_maintenance <= 0.0:
        return 0.0
    rating = bankruptcy_adjustment * (1.0 - account_equity / account_maintenance)
    return min(1.0, max(0.0, rating))


def fillable_price(
    *,
    side: int,
    oracle_price: float,
    size: float,
    position_maintenance: float,
    account_equity: float,
    account_maintenance: float,
    bankruptcy_adjustment: float = 1.0,
    spread_to_maintenance_ratio: float = 1.5,
) -> float:
    """dYdX v4 fillable price of a liquidation: the worst price its order accepts.

    ``price = oracle - side x ABR x SMMR x PMMR / |size|`` with PMMR the position's
    maintenance margin (quote), SMMR ``spread_to_maintenance_ratio`` and ABR
    :func:`adjusted_bankruptcy_rating` of the account (``account_equity`` TNC over
    ``account_maintenance`` TMMR). A long (``side`` = +1) is sold below the oracle, a short
    bought back above it. The price is **not** clamped to the bankruptcy price: a fill
    beyond it is paid by the insurance fund (:func:`insurance_fund_delta`). Never negative.

    Examples
    --------
    dYdX's test "one long position slightly below maintenance" (TNC 499, TMMR 500, PMMR
    500, 0.1 BTC at 50,000, SMMR 0.1): 49,999.

    >>> fillable_price(side=1, oracle_price=50_000.0, size=0.1, position_maintenance=500.0,
    ...     account_equity=499.0, account_maintenance=500.0, spread_to_maintenance_ratio=0.1)
    49999.0
    """
    if size == 0.0:
        return math.nan
    rating = adjusted_bankruptcy_rating(
        account_equity=account_equity,
        account_maintenance=account_maintenance,
        bankruptcy_adjustment=bankruptcy_adjustment,
    )
    spread = rating * spread_to_maintenance_ratio * position_maintenance / abs(size)
    return max(0.0, oracle_price - side * spread)


def insurance_fund_delta(
    *, side: int, qty: float, price: float, bankruptcy: float, fee_rate: float
) -> float:
    """What a liquidation fill pays the insurance fund (quote; negative: the fund pays).

    Selling ``qty`` of a long (``side`` +1) at ``price`` against its bankruptcy price
    leaves ``raw = side x qty x (price - bankruptcy)`` above bankruptcy. A fill at or beyond
    bankruptcy (``raw <= 0``) costs the fund ``-raw``; otherwise the account pays the fee
    ``fee_rate x qty x price``, capped at ``raw`` so it never makes the account bankrupt
    (``GetLiquidationInsuranceFundDelta``, protocol/x/clob/keeper/liquidations.go,
    dydxprotocol/v4-chain@84d4664).

    >>> insurance_fund_delta(side=-1, qty=1.0, price=50_000.0, bankruptcy=54_999.0,
    ...     fee_rate=0.005)
    250.0
    """
    raw = side * qty * (price - bankruptcy)
    if raw <= 0.0:
        return raw
    return min(fee_rate * qty * price, raw)


def portion_size(
    size: float,
    mark: float,
    *,
    max_portion: float,
    min_notional: float,
    headroom: float = math.inf,
    lot: float = 0.0,
) -> float:
    """dYdX v4's partial liquidation size: base units to close this step (>= 0).

    ``cap = min(max(min(min_notional, N), max_portion x N), headroom)`` of the position's
    notional ``N``; the whole position when ``N <= cap`` or it is at most one lot, else the
    cap in base units rounded down to a lot and kept in ``[lot, |size|]``
    (``GetLiquidatablePositionSizeDelta``, protocol/x/clob/keeper/liquidations.go).
    ``headroom`` is what the account's per-step notional limit still allows.
    """
    abs_size = abs(size)
    notional = abs_size * mark
    least = min(min_notional, notional)
    cap = min(max(least, max_portion * notional), max(headroom, 0.0))
    if notional <= cap or abs_size <= lot:
        return abs_size
    qty = cap / mark
    if lot > 0.0:
        qty = math.floor(qty / lot + 1e-9) * lot
        qty = max(qty, lot)
    return min(qty, abs_size)


def close_order(maintenance: FloatArray) -> npt.NDArray[np.intp]:
    """Order in which a cross account's positions are reduced: largest maintenance first.

    Ties keep the market order (stable sort), so the choice is deterministic.
    """
    return np.argsort(-np.asarray(maintenance, dtype=np.float64), kind="stable")


def bankruptcy_waterfall(
    *, loss: float, fund_available: float, fee_pool: float, open_interest: float
) -> tuple[float, float, float, float]:
    """Split a bankrupt position's loss: insurance fund, then fee pool, then open interest.

    Returns ``(insurance, fee_pool_paid, socialized, per_unit)``: the fund pays
    ``min(loss, fund_available)`` (its cash, within the market's remaining cap), the fee pool
    ``min(rest, fee_pool)``, and the rest is charged to the open interest (base units, longs
    and shorts) at ``per_unit = socialized / open_interest`` per unit of size; ``per_unit`` is
    0 and the rest stays unpaid (bad debt) when there is no open interest. Drift's order in
    ``resolve_perp_bankruptcy``; the exact integer form is
    :func:`deleverage.rules.fixed_point.resolve_bankruptcy`.

    Examples
    --------
    Drift's ``successful_resolve_perp_bankruptcy_with_fee_pool``: $100 loss, empty fund, $50
    fee pool, 5 long and 5 short: $25 per side, $5 per unit.

    >>> bankruptcy_waterfall(loss=100.0, fund_available=0.0, fee_pool=50.0, open_interest=10.0)
    (0.0, 50.0, 50.0, 5.0)
    """
    need = max(0.0, loss)
    insurance = min(need, max(0.0, fund_available))
    from_pool = min(need - insurance, max(0.0, fee_pool))
    rest = need - insurance - from_pool
    per_unit = rest / open_interest if open_interest > 0.0 else 0.0
    return insurance, from_pool, rest, per_unit
