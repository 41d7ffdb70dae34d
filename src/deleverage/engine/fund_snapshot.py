"""An insurance fund's state as plain JSON-compatible data, and back.

:func:`fund_snapshot` writes every field a fund needs to continue exactly where it stood (its
parameters, balance, shares, pending unstake requests and the full flow history);
:func:`restore_fund` rebuilds the fund, replaying the history so the derived running totals
(cumulative PnL, the drawdown window's columns) are recomputed rather than trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from deleverage.engine.fund_records import FlowKind, FundRecord, UnstakeRequest, as_ts, staker_key
from deleverage.errors import ValidationError

if TYPE_CHECKING:
    from deleverage.engine.insurance_fund import InsuranceFund

__all__ = ["SNAPSHOT_VERSION", "fund_snapshot", "restore_fund"]

SNAPSHOT_VERSION = 1

_KEYS = (
    "version",
    "name",
    "protocol_share",
    "unstake_cooldown_s",
    "drawdown_window_s",
    "drawdown_alert_fraction",
    "drawdown_min_balance",
    "balance",
    "total_shares",
    "protocol_shares",
    "stakers",
    "requests",
    "history",
)

F = TypeVar("F", bound="InsuranceFund")


def fund_snapshot(fund: InsuranceFund) -> dict[str, Any]:
    """``fund``'s full state (the keys of ``_KEYS``), as lists, floats, ints and strings."""
    return {
        "version": SNAPSHOT_VERSION,
        "name": fund.name,
        "protocol_share": fund.protocol_share,
        "unstake_cooldown_s": fund.unstake_cooldown_s,
        "drawdown_window_s": fund.drawdown_window_s,
        "drawdown_alert_fraction": fund.drawdown_alert_fraction,
        "drawdown_min_balance": fund.drawdown_min_balance,
        "balance": fund._balance,
        "total_shares": fund._total_shares,
        "protocol_shares": fund._protocol_shares,
        "stakers": [[sid, shares] for sid, shares in fund._shares.items()],
        "requests": [[sid, r.shares, r.value, r.ts_ns] for sid, r in fund._requests.items()],
        "history": [
            [r.ts_ns, r.kind.value, r.amount, r.balance_after, r.ref, r.shares]
            for r in fund._history
        ],
    }


def restore_fund(cls: type[F], data: Mapping[str, Any]) -> F:
    """A fund of class ``cls`` rebuilt from :func:`fund_snapshot` output.

    Raises
    ------
    ValidationError
        A missing key, another snapshot version, or a malformed entry.
    """
    missing = sorted(set(_KEYS) - set(data))
    if missing:
        raise ValidationError("snapshot", missing, "is missing these keys")
    if data["version"] != SNAPSHOT_VERSION:
        raise ValidationError("version", data["version"], f"must be {SNAPSHOT_VERSION}")
    fund = cls(
        data["name"],
        protocol_share=data["protocol_share"],
        unstake_cooldown_s=data["unstake_cooldown_s"],
        drawdown_window_s=data["drawdown_window_s"],
        drawdown_alert_fraction=data["drawdown_alert_fraction"],
        drawdown_min_balance=data["drawdown_min_balance"],
    )
    try:
        fund._balance = float(data["balance"])
        fund._total_shares = float(data["total_shares"])
        fund._protocol_shares = float(data["protocol_shares"])
        fund._shares = {staker_key(sid): float(s) for sid, s in data["stakers"]}
        fund._requests = {
            staker_key(sid): UnstakeRequest(float(s), float(v), as_ts(t))
            for sid, s, v, t in data["requests"]
        }
        for ts, kind, amount, balance_after, ref, shares in data["history"]:
            record = FundRecord(
                as_ts(ts), FlowKind(kind), float(amount), float(balance_after), ref, float(shares)
            )
            fund._push(record)
    except (TypeError, ValueError) as exc:
        raise ValidationError("snapshot", type(exc).__name__, f"is malformed ({exc})") from None
    return fund
