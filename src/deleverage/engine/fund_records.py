"""The insurance fund's record types, flow kinds and input checks.

:class:`FundRecord` is one immutable entry of a fund's history and :class:`FlowKind` its kind;
:class:`UnstakeRequest` is a staker's pending request (Drift ``last_withdraw_request_*``). The
checks turn bad input into a :class:`~deleverage.errors.ValidationError` naming the field, the
value and the rule. :mod:`deleverage.engine.insurance_fund` keeps the ledger that uses them.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from deleverage.errors import ValidationError
from deleverage.rules.insurance import _check_nonnegative

#: Default unstaking cooldown, seconds: 13 days, Drift's (see :mod:`deleverage.venues.drift`).
DEFAULT_UNSTAKE_COOLDOWN_S = 13 * 24 * 3600

#: Default drawdown window of the alert, seconds: 8 hours, Bybit's
#: (:data:`deleverage.venues.bybit.DRAWDOWN_WINDOW_S`).
DEFAULT_DRAWDOWN_WINDOW_S = 8 * 3600

#: Default drawdown alert level, a fraction of the window's maximum balance: 0.3, Bybit's
#: (:data:`deleverage.venues.bybit.DRAWDOWN_ALERT_FRACTION`).
DEFAULT_DRAWDOWN_ALERT_FRACTION = 0.3

StakerId = str | int
Ref = str | int | None
#: A batch's amounts and the accounts it names (lists, or the engine's columns as they are).
Amounts = Sequence[float] | npt.NDArray[np.float64]
Refs = Sequence[Ref] | npt.NDArray[np.int64]

NS_PER_S = 1_000_000_000


class FlowKind(StrEnum):
    """Kind of a fund record; its value is the name used in frames and snapshots."""

    FEE_INFLOW = "fee_inflow"  # trading fees; holders' part of a split inflow
    LIQUIDATION_PENALTY = "liquidation_penalty"  # liquidation fee; holders' part of the split
    PROTOCOL_REVENUE = "protocol_revenue"  # protocol's cut of an inflow, or its own deposit
    COVER_SHORTFALL = "cover_shortfall"  # paid to cover a bankruptcy shortfall (negative)
    LOSS = "loss"  # any other write-down of the fund (negative)
    STAKE = "stake"  # a staker's deposit (positive)
    UNSTAKE_REQUEST = "unstake_request"  # request to unstake shares (no cash moves)
    UNSTAKE_CANCEL = "unstake_cancel"  # request cancelled; forfeited shares (no cash moves)
    UNSTAKE = "unstake"  # a staker's withdrawal after the cooldown (negative)


#: Kinds that are the fund's profit and loss: all but the moves of stakers' capital.
CAPITAL_KINDS = {
    FlowKind.STAKE,
    FlowKind.UNSTAKE_REQUEST,
    FlowKind.UNSTAKE_CANCEL,
    FlowKind.UNSTAKE,
}
PNL_KINDS = frozenset(FlowKind) - CAPITAL_KINDS
SPLIT_KINDS = frozenset({FlowKind.FEE_INFLOW, FlowKind.LIQUIDATION_PENALTY})
RECEIVE_KINDS = SPLIT_KINDS | {FlowKind.PROTOCOL_REVENUE}
COVER_KINDS = frozenset({FlowKind.COVER_SHORTFALL, FlowKind.LOSS})


class FundRecord(NamedTuple):
    """One immutable entry of the fund's history."""

    ts_ns: int  # when, int64 nanoseconds
    kind: FlowKind  # what kind of flow
    amount: float  # quote, signed: > 0 into the fund, < 0 out of it, 0 for requests
    balance_after: float  # fund balance (quote) after this record
    ref: Ref  # account id for inflows and covers, staker id for staking records
    shares: float  # shares minted (> 0) or burned (< 0); requested shares for a request


class UnstakeRequest(NamedTuple):
    """A staker's pending unstake request (Drift ``last_withdraw_request_*``)."""

    shares: float  # shares requested
    value: float  # their value (quote) when requested: the most the withdrawal can pay
    ts_ns: int  # when requested


def flow_kind(kind: FlowKind | str, allowed: frozenset[FlowKind], field: str) -> FlowKind:
    try:
        flow = FlowKind(kind)
    except ValueError:
        flow = None
    if flow is None or flow not in allowed:
        names = ", ".join(sorted(k.value for k in allowed))
        raise ValidationError(field, kind, f"must be one of {names}")
    return flow


def check_positive(field: str, value: float) -> None:
    _check_nonnegative(field, value)
    if value == 0:
        raise ValidationError(field, value, "must be > 0")


def check_staker_id(staker_id: object) -> None:
    if isinstance(staker_id, bool) or not isinstance(staker_id, str | int):
        raise ValidationError("staker_id", staker_id, "must be a str or an int")


def staker_key(staker_id: object) -> StakerId:
    check_staker_id(staker_id)
    return staker_id  # type: ignore[return-value]


def as_ts(ts_ns: object) -> int:
    if type(ts_ns) is int:  # the common case first (``operator.index`` returns it)
        return ts_ns
    if isinstance(ts_ns, bool):
        raise ValidationError("ts_ns", ts_ns, "must be an integer (nanoseconds)")
    try:
        return operator.index(ts_ns)  # type: ignore[arg-type]
    except TypeError:
        raise ValidationError("ts_ns", ts_ns, "must be an integer (nanoseconds)") from None


def batch_ref(refs: Refs) -> Ref:
    """A batch record's ``ref``: the one account it names, or how many accounts."""
    if len(refs) != 1:
        return f"{len(refs)} accounts"
    ref = refs[0]
    return int(ref) if isinstance(ref, np.integer) else ref
