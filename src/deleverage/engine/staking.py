"""Insurance-fund staking as public operations of the exchange.

A layer between :class:`~deleverage.engine.operations.RiskOperations` and
:class:`~deleverage.engine.exchange.Exchange`. Each operation checks its input on a copy of the
fund (:class:`~deleverage.engine.insurance_fund.InsuranceFund` raises, nothing is applied),
then emits the journal's event (a ``Transfer`` with reason ``STAKE`` / ``UNSTAKE``, or an
``InsuranceAction``), which the fund's ledger replays; amounts in the settlement currency.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from deleverage.engine.events import (
    UNSTAKE_CANCEL,
    UNSTAKE_REQUEST,
    InsuranceAction,
    Transfer,
    TransferReason,
)
from deleverage.engine.operations import RiskOperations
from deleverage.spec import check_finite_positive

if TYPE_CHECKING:
    from deleverage.engine.ledger import MarketRef

__all__ = ["StakingOperations"]


class StakingOperations(RiskOperations):
    """Stake into, and unstake from, the exchange's insurance funds (module docstring)."""

    def stake(
        self, account: int, amount: float, *, market: MarketRef | None = None,
        ts_ns: int | None = None,
    ) -> float:  # fmt: skip
        """Stake cash from an account into an insurance fund; return the shares minted.

        The stake must not exceed the account's withdrawable cash. Stakers earn the fund's
        penalty and fee inflows (less the protocol's share) and bear its losses pro rata.
        """
        a = self._check_account(account)
        value = check_finite_positive("amount", amount)
        ts = self._ts(ts_ns)
        fund_account = self._fund_account(market)
        fund = self.funds[fund_account]
        available = self.account_margins(a).withdrawable
        preview = copy.deepcopy(fund)
        shares = preview.stake(a, value, ts, available_cash=available)  # raises, nothing applied
        self._emit_all(
            [
                Transfer(
                    ts_ns=ts, source=a, destination=fund_account, amount=value,
                    reason=int(TransferReason.STAKE),
                )
            ]
        )  # fmt: skip
        return shares

    def request_unstake(
        self, account: int, shares: float, *, market: MarketRef | None = None,
        ts_ns: int | None = None,
    ) -> float:  # fmt: skip
        """Ask to unstake shares, starting the cooldown; return their value now (quote)."""
        a = self._check_account(account)
        ts = self._ts(ts_ns)
        fund_account = self._fund_account(market)
        value = copy.deepcopy(self.funds[fund_account]).request_unstake(a, shares, ts)
        self._emit_all(
            [
                InsuranceAction(
                    ts_ns=ts,
                    staker=a,
                    fund_account=fund_account,
                    action=UNSTAKE_REQUEST,
                    shares=float(shares),
                )
            ]
        )
        return value

    def cancel_unstake(
        self, account: int, *, market: MarketRef | None = None, ts_ns: int | None = None
    ) -> None:
        """Cancel a pending unstake request (a gain since the request is forfeited)."""
        a = self._check_account(account)
        ts = self._ts(ts_ns)
        fund_account = self._fund_account(market)
        copy.deepcopy(self.funds[fund_account]).cancel_unstake(a, ts)
        self._emit_all(
            [InsuranceAction(ts_ns=ts, staker=a, fund_account=fund_account, action=UNSTAKE_CANCEL)]
        )

    def unstake(
        self, account: int, *, market: MarketRef | None = None, ts_ns: int | None = None
    ) -> float:
        """Withdraw requested shares after the cooldown into the account's cash; return it."""
        a = self._check_account(account)
        ts = self._ts(ts_ns)
        fund_account = self._fund_account(market)
        paid = copy.deepcopy(self.funds[fund_account]).unstake(a, ts)  # raises CooldownError
        self._emit_all(
            [
                Transfer(
                    ts_ns=ts, source=fund_account, destination=a, amount=paid,
                    reason=int(TransferReason.UNSTAKE),
                )
            ]
        )  # fmt: skip
        return paid
