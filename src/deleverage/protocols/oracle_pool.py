"""What the oracle-pool perpetuals (GMX v2, Synthetix perps v3) share.

In an oracle-pool perpetual the liquidity providers' pool is the counterparty of every
position and trades execute at the oracle's price, so a liquidation moves no order book: the
pool takes over the closed exposure. Whether that becomes flow in the asset's market depends on
who hedges the pool: ``hedge_ratio`` is the fraction of the exposure the pool takes over that
its hedgers (or the arbitrageurs who rebalance it) trade in the market in the same step; 0
models an unhedged pool (no forced flow), 1 a fully hedged one. This is a modelling choice of
deleverage, not a rule of either protocol (docs/architecture.md, "Oracle-pool perpetuals").

Keepers act on chain (:class:`PoolKeepers` over :mod:`deleverage.protocols.keepers` and
:mod:`deleverage.protocols.chain`): they see an opportunity, act after their latency in
blocks, and only when the protocol's reward beats the gas it costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from deleverage.engine.events import EventKind, Journal
from deleverage.errors import ValidationError
from deleverage.protocols.chain import Chain
from deleverage.protocols.keepers import Keepers
from deleverage.venues.protocol import PriceInputs

__all__ = ["PoolAction", "PoolKeepers", "append_actions", "oracle_band"]


class PoolAction(IntEnum):
    """The journal's ``code`` on an oracle-pool venue's rows."""

    GMX_LIQUIDATION = 100
    GMX_ADL = 101
    SYNTHETIX_FLAG = 200
    SYNTHETIX_LIQUIDATION = 201


class PoolKeepers:
    """The keepers of an oracle-pool venue and the chain they act on.

    With ``keepers`` and ``chain`` (:mod:`deleverage.protocols.keepers`,
    :mod:`deleverage.protocols.chain`), each step advances the chain to ``ts_ns`` at the
    native token's price (the oracle price of ``native_asset``, one of the venue's assets),
    lets the keepers compete for the step's opportunities (they act only when the incentive
    beats gas, after their latency in blocks, with capital for gas) and queues the winners'
    gas on the chain. With neither, keepers are perfect: every opportunity is taken in the
    step it appears, at no cost.
    """

    def __init__(
        self, keepers: Keepers | None, chain: Chain | None, native_asset: str | None
    ) -> None:
        if (keepers is None) != (chain is None):
            raise ValidationError("keepers", keepers, "must come with a chain (both or neither)")
        if keepers is not None and native_asset is None:
            raise ValidationError("native_asset", native_asset, "must name the gas token's asset")
        self.keepers = keepers
        self.chain = chain
        self.native_asset = native_asset

    @property
    def perfect(self) -> bool:
        """True when every opportunity is taken at once (no keepers or chain given)."""
        return self.keepers is None

    def advance(self, ts_ns: int, prices: Mapping[str, PriceInputs]) -> int:
        """Advance the chain to ``ts_ns``; return the block (0 with perfect keepers)."""
        if self.chain is None or self.native_asset is None:
            return 0
        self.chain.advance(ts_ns, prices[self.native_asset].oracle)
        return self.chain.block_at(ts_ns)

    def act(
        self, *, block: int, seen_block: npt.NDArray[np.int64], incentive: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Which opportunities (in priority order) a keeper takes, and the gas each paid
        (quote); nobody ties up capital beyond gas and nothing is sold (``need`` and
        ``slippage`` 0): these protocols pay keepers in quote."""
        n = seen_block.shape[0]
        if self.keepers is None or self.chain is None:
            return np.ones(n, dtype=np.bool_), np.zeros(n)
        zeros = np.zeros(n)
        acts = self.keepers.act(
            block=block,
            seen_block=seen_block,
            incentive=np.broadcast_to(np.asarray(incentive, dtype=np.float64), (n,)),
            need=zeros,
            slippage=zeros,
            gas_price_gwei=self.chain.gas_price_gwei,
            native_price=self.chain.native_price,
        )
        acted = acts.acted
        if acted.any():
            self.chain.submit(float(self.keepers.gas_units[acts.winner[acted]].sum()))
        return acted, acts.gas_cost


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
