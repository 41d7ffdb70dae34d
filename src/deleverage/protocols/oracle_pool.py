"""What the oracle-pool perpetuals (GMX v2, Synthetix perps v3) share.

In an oracle-pool perpetual the liquidity providers' pool is the counterparty of every
position and trades execute at the oracle's price, so a liquidation moves no order book: the
pool takes over the closed exposure. Whether that becomes flow in the asset's market depends on
who hedges the pool: ``hedge_ratio`` is the fraction of the exposure the pool takes over that
its hedgers (or the arbitrageurs who rebalance it) trade in the market in the same step; 0
models an unhedged pool (no forced flow), 1 a fully hedged one. This is a modelling choice of
deleverage, not a rule of either protocol (docs/architecture.md, "Oracle-pool perpetuals").

Keepers act on chain: :class:`KeeperTerms` says how long a position must have been actionable
before a keeper's transaction lands (``latency_s``: blocks and competition) and what a
transaction costs (``gas_cost_usd``); a keeper acts only when its reward covers the cost.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from deleverage.engine.events import EventKind, Journal
from deleverage.errors import ValidationError
from deleverage.venues.protocol import PriceInputs

__all__ = ["KeeperTerms", "PoolAction", "append_actions", "oracle_band"]


class PoolAction(IntEnum):
    """The journal's ``code`` on an oracle-pool venue's rows."""

    GMX_LIQUIDATION = 100
    GMX_ADL = 101
    SYNTHETIX_FLAG = 200
    SYNTHETIX_LIQUIDATION = 201


class KeeperTerms(NamedTuple):
    """When keepers act: ``latency_s`` after a position became actionable (seconds), and only
    when the reward beats ``gas_cost_usd`` per transaction (USD)."""

    latency_s: float = 0.0
    gas_cost_usd: float = 0.0

    def check(self) -> KeeperTerms:
        """Return self, or raise :class:`ValidationError` naming the bad field."""
        for field in ("latency_s", "gas_cost_usd"):
            value = getattr(self, field)
            if not np.isfinite(value) or value < 0.0:
                raise ValidationError(f"keepers.{field}", value, "must be a finite number >= 0")
        return self


def oracle_band(inputs: PriceInputs, half_spread: float) -> tuple[float, float, float]:
    """The oracle's (min, mid, max) prices: ``mid x (1 -+ half_spread)`` around the oracle
    price the venue reads (quote per base)."""
    mid = inputs.oracle
    return mid * (1.0 - half_spread), mid, mid * (1.0 + half_spread)


def append_actions(
    journal: Journal,
    *,
    kind: EventKind,
    ts_ns: int,
    code: PoolAction,
    account: npt.ArrayLike,
    market: int,
    size: npt.ArrayLike,
    price: float,
    amount: npt.ArrayLike,
    fee: npt.ArrayLike,
) -> None:
    """Append one batch of liquidation / flag / ADL notices (one row per position).

    ``size`` is the signed base size closed (a long's close is < 0), ``amount`` the loss the
    row puts on a solvency line (quote), ``fee`` what the keeper or the pool received.
    """
    accounts = np.asarray(account, dtype=np.int64)
    if accounts.size == 0:
        return
    journal.append_columns(
        kind,
        ts_ns,
        account=accounts,
        market=np.int32(market),
        size=np.asarray(size, dtype=np.float64),
        price=np.float64(price),
        amount=np.asarray(amount, dtype=np.float64),
        fee=np.asarray(fee, dtype=np.float64),
        code=np.int32(int(code)),
    )
