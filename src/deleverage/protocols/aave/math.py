"""Aave v3.3 liquidation math, pure and vectorized (docs/formulas.md §A1-§A5).

The rules of ``LiquidationLogic.executeLiquidationCall`` (aave-dao/aave-v3-origin, tag v3.3.0),
in the contract's order, on float arrays (one entry per liquidation) instead of integers:

1. **Health factor** (``GenericLogic.calculateUserAccountData``): ``HF = sum_i C_i LT_i / D``
   over the reserves used as collateral (liquidation threshold ``LT_i > 0``), collateral and
   debt valued in the base currency at the oracle price; ``inf`` without debt. Liquidatable
   when ``HF < 1``.
2. **Close factor**: the whole debt of the chosen debt reserve may be repaid, unless the
   chosen collateral reserve and the chosen debt reserve are both worth at least
   ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD`` (2,000 USD) and ``HF > CLOSE_FACTOR_HF_THRESHOLD``
   (0.95): then at most ``DEFAULT_LIQUIDATION_CLOSE_FACTOR`` (50%) of the account's *total*
   debt (in base currency), when the reserve's debt exceeds that.
3. **Collateral for the debt**: ``seized = debt x P_debt / P_coll x bonus``; when that exceeds
   the balance, the whole balance is seized and the debt repaid falls to
   ``balance x P_coll / P_debt / bonus``.
4. **Protocol fee** out of the bonus: ``fee = (seized - seized / bonus) x protocol_fee``; the
   liquidator receives ``seized - fee``, the treasury ``fee``.
5. **Dust**: unless the debt reserve is repaid in full or the collateral reserve is seized in
   full, both leftovers must be worth at least ``MIN_LEFTOVER_BASE`` (1,000 USD), else the call
   reverts (``MUST_NOT_LEAVE_DUST``). :func:`adjust_for_leftovers` is the rule the protocol's
   ``LiquidationDataProvider`` uses to shrink a liquidation until it passes.
6. **Deficit** (v3.3): when the seized collateral was all the account's collateral, every
   remaining debt of the account is burned and added to its reserve's ``deficit``.

The contract rounds in integers of each token's decimals (``percentMul`` and ``percentDiv``
half up, divisions down); these floats agree with it to a unit of the token's last decimal
(tests/conformance/aave/).
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "CLOSE_FACTOR_HF_THRESHOLD",
    "DEFAULT_LIQUIDATION_CLOSE_FACTOR",
    "LEAVES_DUST",
    "LIQUIDATABLE",
    "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD",
    "MIN_LEFTOVER_BASE",
    "NOT_BELOW_THRESHOLD",
    "LiquidationAmounts",
    "LiquidationPlan",
    "adjust_for_leftovers",
    "collateral_to_liquidate",
    "health_factor",
    "leaves_dust",
    "liquidation_plan",
    "max_debt_to_liquidate",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: ``LiquidationLogic`` constants (v3.3.0), in base currency units of a USD pool (quote).
DEFAULT_LIQUIDATION_CLOSE_FACTOR: Final = 0.5
CLOSE_FACTOR_HF_THRESHOLD: Final = 0.95
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD: Final = 2_000.0
MIN_LEFTOVER_BASE: Final = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD / 2


def _f(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def health_factor(
    collateral_value: npt.ArrayLike, liquidation_threshold: npt.ArrayLike, debt_value: npt.ArrayLike
) -> FloatArray:
    """``HF = sum_i C_i LT_i / sum_j D_j`` over the last axis (values in quote; §A1).

    Reserves with ``LT = 0`` do not count as collateral; no debt gives ``inf``.

    Examples
    --------
    >>> round(float(health_factor([20_000.0, 0.0], [0.83, 0.0], [0.0, 17_000.0])), 4)
    0.9765
    """
    weighted = (_f(collateral_value) * _f(liquidation_threshold)).sum(axis=-1)
    debt = _f(debt_value).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(debt > 0.0, weighted / np.where(debt > 0.0, debt, 1.0), np.inf)


def max_debt_to_liquidate(
    health: npt.ArrayLike,
    reserve_collateral_value: npt.ArrayLike,
    reserve_debt_value: npt.ArrayLike,
    total_debt_value: npt.ArrayLike,
    *,
    close_factor_hf_threshold: float = CLOSE_FACTOR_HF_THRESHOLD,
    min_base_max_close_factor_threshold: float = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD,
    default_close_factor: float = DEFAULT_LIQUIDATION_CLOSE_FACTOR,
) -> FloatArray:
    """Most debt value (quote) of the chosen debt reserve one liquidation may repay (§A2).

    Examples
    --------
    >>> float(max_debt_to_liquidate(0.9765, 20_000.0, 17_000.0, 17_000.0))  # 50%
    8500.0
    >>> float(max_debt_to_liquidate(0.94, 20_000.0, 17_000.0, 17_000.0))  # HF <= 0.95: 100%
    17000.0
    """
    hf, coll, debt, total = (
        _f(health),
        _f(reserve_collateral_value),
        _f(reserve_debt_value),
        _f(total_debt_value),
    )
    capped = (
        (coll >= min_base_max_close_factor_threshold)
        & (debt >= min_base_max_close_factor_threshold)
        & (hf > close_factor_hf_threshold)
    )
    part = total * default_close_factor
    return np.where(capped & (debt > part), part, debt)


class LiquidationAmounts(NamedTuple):
    """One liquidation's amounts, in units of the tokens (§A3, §A4)."""

    #: Debt tokens the liquidator repays.
    debt_repaid: FloatArray
    #: Collateral tokens taken from the account (to the liquidator and the treasury).
    collateral_seized: FloatArray
    #: Collateral tokens of the seized amount that go to the treasury.
    protocol_fee: FloatArray

    @property
    def to_liquidator(self) -> FloatArray:
        """Collateral tokens the liquidator receives: seized less the protocol fee."""
        return self.collateral_seized - self.protocol_fee


def _fee(seized: FloatArray, bonus: FloatArray, fee: FloatArray) -> FloatArray:
    return (seized - seized / bonus) * fee


def collateral_to_liquidate(
    debt_to_cover: npt.ArrayLike,
    collateral_balance: npt.ArrayLike,
    collateral_price: npt.ArrayLike,
    debt_price: npt.ArrayLike,
    liquidation_bonus: npt.ArrayLike,
    protocol_fee: npt.ArrayLike,
) -> LiquidationAmounts:
    """Collateral seized for ``debt_to_cover`` debt tokens, and the protocol's fee (§A3, §A4).

    ``liquidation_bonus`` is the multiplier (1.05 for a 5% bonus), ``protocol_fee`` the share
    of the bonus for the treasury (0.1 for 10%); prices in quote per token.

    Examples
    --------
    >>> a = collateral_to_liquidate(8_500.0, 10.0, 2_000.0, 1.0, 1.05, 0.10)
    >>> [round(float(x), 6) for x in (a.debt_repaid, a.collateral_seized, a.protocol_fee)]
    [8500.0, 4.4625, 0.02125]
    """
    debt, balance = _f(debt_to_cover), _f(collateral_balance)
    pc, pd, bonus, fee = (
        _f(collateral_price),
        _f(debt_price),
        _f(liquidation_bonus),
        _f(protocol_fee),
    )
    wanted = debt * pd / pc * bonus
    short = wanted > balance
    seized = np.where(short, balance, wanted)
    repaid = np.where(short, balance * pc / pd / bonus, debt)
    return LiquidationAmounts(repaid, seized, _fee(seized, bonus, fee))


def _leftovers(
    amounts: LiquidationAmounts,
    collateral_balance: FloatArray,
    debt_balance: FloatArray,
    collateral_price: FloatArray,
    debt_price: FloatArray,
) -> tuple[BoolArray, FloatArray, FloatArray]:
    partial = (amounts.debt_repaid < debt_balance) & (
        amounts.collateral_seized < collateral_balance
    )
    collateral_left = (collateral_balance - amounts.collateral_seized) * collateral_price
    debt_left = (debt_balance - amounts.debt_repaid) * debt_price
    return partial, collateral_left, debt_left


def leaves_dust(
    amounts: LiquidationAmounts,
    collateral_balance: npt.ArrayLike,
    debt_balance: npt.ArrayLike,
    collateral_price: npt.ArrayLike,
    debt_price: npt.ArrayLike,
    *,
    min_leftover: float = MIN_LEFTOVER_BASE,
) -> BoolArray:
    """Where the liquidation would revert with ``MUST_NOT_LEAVE_DUST`` (§A5).

    Examples
    --------
    >>> a = collateral_to_liquidate(956.0, 2_000.0, 1.0, 1.0, 1.05, 0.1)
    >>> bool(leaves_dust(a, 2_000.0, 5_000.0, 1.0, 1.0))  # 996.2 of collateral left
    True
    """
    partial, collateral_left, debt_left = _leftovers(
        amounts, _f(collateral_balance), _f(debt_balance), _f(collateral_price), _f(debt_price)
    )
    return np.asarray(
        partial & ((collateral_left < min_leftover) | (debt_left < min_leftover)), dtype=np.bool_
    )


def adjust_for_leftovers(
    amounts: LiquidationAmounts,
    collateral_balance: npt.ArrayLike,
    debt_balance: npt.ArrayLike,
    collateral_price: npt.ArrayLike,
    debt_price: npt.ArrayLike,
    liquidation_bonus: npt.ArrayLike,
    protocol_fee: npt.ArrayLike,
    *,
    min_leftover: float = MIN_LEFTOVER_BASE,
) -> LiquidationAmounts:
    """Shrink a liquidation that would leave dust, as ``LiquidationDataProvider`` does (§A5).

    With the shortfalls ``s_c = max(0, MIN - collateral left)`` and ``s_d = max(0, MIN - debt
    left)`` (quote): if ``s_c > s_d`` the liquidator's collateral falls by ``s_c / P_coll`` and
    the debt becomes that collateral's worth over the bonus, else the debt falls by
    ``s_d / P_debt`` and the collateral follows; the fee is taken again. The result can still
    leave dust (then :func:`leaves_dust` says so and the liquidation does not happen).
    """
    balance, debt_balance_ = _f(collateral_balance), _f(debt_balance)
    pc, pd = _f(collateral_price), _f(debt_price)
    bonus, fee = _f(liquidation_bonus), _f(protocol_fee)
    partial, collateral_left, debt_left = _leftovers(amounts, balance, debt_balance_, pc, pd)
    short_c = np.maximum(0.0, min_leftover - collateral_left)
    short_d = np.maximum(0.0, min_leftover - debt_left)
    adjust = partial & ((short_c > 0.0) | (short_d > 0.0))
    by_collateral = short_c > short_d
    # The provider works from the liquidator's part (after fee), then takes the fee again.
    taken = amounts.to_liquidator - short_c / pc
    seized_c = np.maximum(taken, 0.0)
    repaid_c = seized_c * pc / pd / bonus
    repaid_d = np.maximum(amounts.debt_repaid - short_d / pd, 0.0)
    seized_d = repaid_d * pd / pc * bonus
    seized = np.where(by_collateral, seized_c, seized_d)
    repaid = np.where(by_collateral, repaid_c, repaid_d)
    new_fee = _fee(seized, bonus, fee)
    return LiquidationAmounts(
        np.where(adjust, repaid, amounts.debt_repaid),
        np.where(adjust, seized, amounts.collateral_seized),
        np.where(adjust, new_fee, amounts.protocol_fee),
    )


#: :attr:`LiquidationPlan.status` codes: the liquidation goes through, or why it reverts.
LIQUIDATABLE: Final = 0
NOT_BELOW_THRESHOLD: Final = 1  # HEALTH_FACTOR_NOT_BELOW_THRESHOLD
LEAVES_DUST: Final = 2  # MUST_NOT_LEAVE_DUST


class LiquidationPlan(NamedTuple):
    """What ``liquidationCall`` would do to each account (one row per account)."""

    #: Health factor before the liquidation.
    health: FloatArray
    #: Most debt tokens the close factor lets this call repay.
    max_debt: FloatArray
    #: Debt repaid, collateral seized and protocol fee (token units; zero where it reverts).
    amounts: LiquidationAmounts
    #: :data:`LIQUIDATABLE`, :data:`NOT_BELOW_THRESHOLD` or :data:`LEAVES_DUST`.
    status: npt.NDArray[np.int8]
    #: Debt tokens per reserve burned into the reserves' deficit (v3.3), shape (m, reserves).
    deficit: FloatArray


def liquidation_plan(
    collateral: npt.ArrayLike,
    debt: npt.ArrayLike,
    prices: npt.ArrayLike,
    liquidation_threshold: npt.ArrayLike,
    liquidation_bonus: npt.ArrayLike,
    protocol_fee: npt.ArrayLike,
    collateral_reserve: npt.ArrayLike,
    debt_reserve: npt.ArrayLike,
    debt_to_cover: npt.ArrayLike,
    *,
    use_data_provider: bool = False,
    close_factor_hf_threshold: float = CLOSE_FACTOR_HF_THRESHOLD,
    min_base_max_close_factor_threshold: float = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD,
    min_leftover: float = MIN_LEFTOVER_BASE,
) -> LiquidationPlan:
    """``liquidationCall(collateral_reserve, debt_reserve, debt_to_cover)`` on each account
    (§A1-§A6), the steps in the contract's order.

    ``collateral`` and ``debt`` are token amounts of shape (m, reserves), ``prices`` the oracle
    prices (quote per token) and the reserve parameters of shape (reserves,);
    ``debt_to_cover`` may be ``inf`` (``type(uint256).max``: as much as allowed). With
    ``use_data_provider`` the amount is first shrunk as ``LiquidationDataProvider`` does, so
    that it leaves no dust.
    """
    c, d, p = _f(collateral), _f(debt), _f(prices)
    lt, bonus_r, fee_r = _f(liquidation_threshold), _f(liquidation_bonus), _f(protocol_fee)
    ci = np.asarray(collateral_reserve, dtype=np.int64)
    di = np.asarray(debt_reserve, dtype=np.int64)
    rows = np.arange(c.shape[0])
    collateral_value = c * p * (lt > 0.0)
    debt_value = d * p
    health = health_factor(collateral_value, lt, debt_value)
    pc, pd = p[ci], p[di]
    balance, owed = c[rows, ci], d[rows, di]
    bonus, fee = bonus_r[ci], fee_r[ci]
    max_value = max_debt_to_liquidate(
        health,
        balance * pc,
        owed * pd,
        debt_value.sum(axis=1),
        close_factor_hf_threshold=close_factor_hf_threshold,
        min_base_max_close_factor_threshold=min_base_max_close_factor_threshold,
    )
    max_debt = np.where(max_value >= owed * pd, owed, max_value / pd)
    cover = np.minimum(_f(debt_to_cover), max_debt)
    amounts = collateral_to_liquidate(cover, balance, pc, pd, bonus, fee)
    if use_data_provider:
        amounts = adjust_for_leftovers(
            amounts, balance, owed, pc, pd, bonus, fee, min_leftover=min_leftover
        )
    dust = leaves_dust(amounts, balance, owed, pc, pd, min_leftover=min_leftover)
    status = np.where(
        health >= 1.0, NOT_BELOW_THRESHOLD, np.where(dust, LEAVES_DUST, LIQUIDATABLE)
    ).astype(np.int8)
    ok = status == LIQUIDATABLE
    amounts = LiquidationAmounts(*(np.where(ok, a, 0.0) for a in amounts))
    # hasNoCollateralLeft: the seized reserve held all of the account's collateral value.
    # Summed without the seized reserve (not total minus it: a small other collateral must
    # not vanish in the rounding of a large total).
    others = np.arange(c.shape[1])[None, :] != ci[:, None]
    other = (collateral_value * others).sum(axis=1)
    emptied = ok & (amounts.collateral_seized >= balance) & (other <= 0.0)
    left = d.copy()
    left[rows, di] = np.maximum(owed - amounts.debt_repaid, 0.0)
    deficit = np.where(emptied[:, None], left, 0.0)
    return LiquidationPlan(health, max_debt, amounts, status, deficit)
