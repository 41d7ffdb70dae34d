"""Insurance-fund share arithmetic: pure functions of amounts, shares and the fund's value.

Ownership of a fund is kept in shares, as in Drift's insurance fund staking (program
``drift-labs/protocol-v2``, ``controller/insurance.rs``; docs/formulas.md, "Insurance fund"):
a stake mints shares at the current share price, a payout is ``min(value at request, value
now)``, a cancelled request forfeits the gain since it was made. The stateful ledger that uses
these is :class:`deleverage.engine.insurance_fund.InsuranceFund`.
"""

from __future__ import annotations

import math
import numbers

from deleverage.errors import ValidationError

__all__ = [
    "shares_for_deposit",
    "shares_forfeited_on_cancel",
    "unstake_payout",
    "value_of_shares",
]


# --------------------------------------------------------------------------------------------
# Pure helpers


def shares_for_deposit(amount: float, total_shares: float, fund_value: float) -> float:
    """Shares minted for a deposit, at the current share price.

    ``shares = amount x total_shares / fund_value``; the first deposit into a fund without
    shares is priced at 1 (``shares = amount``). Drift ``vault_amount_to_if_shares``.

    Parameters
    ----------
    amount
        Quote deposited, ``>= 0``.
    total_shares
        Shares outstanding before the deposit, ``>= 0``.
    fund_value
        Fund balance (quote) before the deposit; ``> 0`` whenever shares are outstanding.

    Returns
    -------
    float
        Shares to mint.

    Raises
    ------
    ValidationError
        A negative or non-finite argument, or shares outstanding in a fund worth nothing.

    Examples
    --------
    >>> shares_for_deposit(10_000.0, 5_000.0, 5_000.0)
    10000.0
    >>> shares_for_deposit(100.0, 1_000.0, 2_000.0)
    50.0
    """
    _check_nonnegative("amount", amount)
    _check_nonnegative("total_shares", total_shares)
    _check_nonnegative("fund_value", fund_value)
    if total_shares == 0.0:
        return float(amount)
    if fund_value == 0.0:
        raise ValidationError("fund_value", fund_value, "must be > 0 while shares are outstanding")
    return amount * total_shares / fund_value


def value_of_shares(shares: float, total_shares: float, fund_value: float) -> float:
    """Quote value of ``shares``: ``shares x fund_value / total_shares`` (0 without shares).

    Drift ``if_shares_to_vault_amount``.

    Raises
    ------
    ValidationError
        A negative or non-finite argument, or ``shares > total_shares``.

    Examples
    --------
    >>> value_of_shares(10_000.0, 15_000.0, 15_015.0)
    10010.0
    """
    _check_nonnegative("shares", shares)
    _check_nonnegative("total_shares", total_shares)
    _check_nonnegative("fund_value", fund_value)
    if shares > total_shares:
        raise ValidationError("shares", shares, f"must be <= total_shares {total_shares!r}")
    if total_shares == 0.0:
        return 0.0
    return shares * fund_value / total_shares


def unstake_payout(
    shares: float, request_value: float, total_shares: float, fund_value: float
) -> float:
    """Amount paid for an unstake: ``min(value at request, value now)``.

    Drift ``remove_insurance_fund_stake``: ``withdraw_amount =
    amount.min(last_withdraw_request_value)``. A loss during the cooldown is the unstaker's;
    a gain stays in the fund for the remaining holders.

    Examples
    --------
    >>> unstake_payout(100.0, 100.0, 1_000.0, 1_200.0)  # fund gained: paid the request value
    100.0
    >>> unstake_payout(100.0, 100.0, 1_000.0, 800.0)  # fund lost: paid today's value
    80.0
    """
    _check_nonnegative("request_value", request_value)
    return min(request_value, value_of_shares(shares, total_shares, fund_value))


def shares_forfeited_on_cancel(
    shares: float, request_value: float, total_shares: float, fund_value: float
) -> float:
    """Shares a staker forfeits when cancelling an unstake request.

    Drift ``calculate_if_shares_lost``: when the requested shares are now worth ``V`` more than
    the value at request ``R``, cancelling is a withdrawal of ``R`` and an immediate re-stake
    of ``R``; the staker keeps ``n' = R x (T - n) / (B - R)`` of its ``n`` requested shares
    (``T`` total shares, ``B`` balance) and forfeits ``n - n'``. Burning those shares leaves the
    staker's requested part worth exactly ``R`` and hands the gain to the other holders. When
    the staker holds every share (``T == n``) there is nobody to burn them for; the gain is
    then handed over as ``n x (1 - R / V)`` shares (:class:`InsuranceFund` gives them to the
    protocol). Nothing is forfeited when ``V <= R``.

    Examples
    --------
    >>> shares_forfeited_on_cancel(100.0, 100.0, 200.0, 300.0)  # V = 150 > R = 100
    50.0
    >>> shares_forfeited_on_cancel(100.0, 100.0, 200.0, 150.0)  # V = 75 <= R: nothing lost
    0.0
    """
    _check_nonnegative("request_value", request_value)
    value_of_shares(shares, total_shares, fund_value)  # validates the rest
    kept, _ = _kept_on_cancel(shares, request_value, total_shares - shares, fund_value)
    return shares - kept


def _mint(amount: float, total_shares: float, fund_value: float) -> float:
    if total_shares == 0.0:
        return amount
    return amount * total_shares / fund_value


def _kept_on_cancel(
    shares: float, request_value: float, other_shares: float, fund_value: float
) -> tuple[float, float]:
    # Returns (requested shares the staker keeps, shares handed to the protocol).
    total = other_shares + shares
    if total <= 0.0:
        return shares, 0.0
    value_now = shares * fund_value / total
    if value_now <= request_value:
        return shares, 0.0
    if other_shares <= 0.0:
        kept = shares * (request_value / value_now)
        return kept, shares - kept
    kept = request_value * other_shares / (fund_value - request_value)
    return min(max(kept, 0.0), shares), 0.0


def _check_nonnegative(field: str, value: float, *, allow_inf: bool = False) -> None:
    # The engine's hot path passes plain floats: skip the slower ABC check for them.
    if type(value) is float and value >= 0.0 and (allow_inf or value != math.inf):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(field, value, "must be a real number")
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ValidationError(field, value, "must be finite")
    if number < 0.0:
        raise ValidationError(field, value, "must be >= 0")
