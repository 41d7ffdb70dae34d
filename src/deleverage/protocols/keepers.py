"""Keepers: the liquidators and auction bidders of on-chain protocols, as arrays.

No clearinghouse liquidates on chain: a keeper (a bot with capital) sees an opportunity (an
account under its liquidation threshold, an auction whose price has fallen far enough), and
acts only when it pays (docs/formulas.md §D3):

    incentive - gas cost - expected slippage > min_profit      and      capital >= need + gas

where the incentive is what the protocol leaves on the table (Aave's liquidation bonus net of
the protocol fee, Maker's tip + chip, an auction's discount to the market), the gas cost is
:func:`deleverage.protocols.chain.gas_cost_quote` of the keeper's gas units, and the slippage is
what selling the seized collateral into the market is expected to cost (the venue estimates
it, e.g. with :func:`sale_slippage_quote`). ``need`` is the quote the action ties up (debt
repaid, a bid).

**Competition.** Several keepers watch the same opportunities. A keeper with a latency of
``L`` blocks can act on an opportunity first seen at block ``b0`` from block ``b0 + L``; among
those able to act, the one with the smallest latency wins (it lands first), ties going to the
keeper with fewer gas units per action (it can outbid the others' priority fee in the same
gas), then to the lower keeper index. Opportunities are served in the order the venue passes
them (its own priority, e.g. most distressed first), each keeper's capital falling as it acts,
so a keeper can run out of capital in the middle of a step and leave the rest to slower ones.

**Capital** is consumed by ``need + gas`` on acting and comes back as the proceeds of selling
the seized collateral, ``sale_delay_blocks`` blocks later (:meth:`Keepers.receive`,
:meth:`Keepers.settle`); it never goes negative. State is one array per field, one index per
keeper; the assignment is a compiled loop over opportunities x keepers.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, NamedTuple, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit
from pydantic import Field

from deleverage.errors import ValidationError
from deleverage.liquidity.model import linear_vwap
from deleverage.protocols.chain import GWEI, gas_cost_quote
from deleverage.spec import _Frozen

__all__ = [
    "KeeperActions",
    "KeeperSpec",
    "Keepers",
    "KeepersConfig",
    "assign_keepers_nb",
    "none_would_act_nb",
    "sale_slippage_quote",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_F = TypeVar("_F")
NO_KEEPER: Final = -1


def _njit(function: _F) -> _F:
    return cast(_F, njit(cache=True)(function))


def sale_slippage_quote(
    size: npt.ArrayLike, price: npt.ArrayLike, depth: npt.ArrayLike
) -> FloatArray:
    """Expected cost (quote) of selling ``size`` base units on a constant-depth book (§D3).

    ``size x (price - vwap) = size^2 price / (2 D)`` with ``D`` the base units per unit of
    relative price move (:func:`deleverage.liquidity.model.linear_vwap`); ``depth = inf``
    means no slippage.

    Examples
    --------
    >>> float(sale_slippage_quote(10.0, 2_000.0, 1_000.0))  # 10 x 2000 x 10/2000
    100.0
    """
    q = np.asarray(size, dtype=np.float64)
    p = np.asarray(price, dtype=np.float64)
    return np.asarray(q * (p - linear_vwap(-1, q, p, depth)), dtype=np.float64)


@_njit
def assign_keepers_nb(
    order: IntArray,
    latency_blocks: IntArray,
    gas_cost: FloatArray,
    min_profit: FloatArray,
    capital: FloatArray,
    waited_blocks: IntArray,
    incentive: FloatArray,
    need: FloatArray,
    slippage: FloatArray,
) -> IntArray:
    """Winner of each opportunity (-1: none), consuming ``capital`` in place (§D3).

    ``order`` lists keepers by priority (latency, gas units, index); opportunity ``j`` goes to
    the first keeper ``i`` in it with ``latency_blocks[i] <= waited_blocks[j]``,
    ``capital[i] >= need[j] + gas_cost[i]`` and
    ``incentive[j] - gas_cost[i] - slippage[j] > min_profit[i]``.
    """
    m = incentive.shape[0]
    winner = np.full(m, -1, dtype=np.int64)
    for j in range(m):
        for i in order:
            if latency_blocks[i] > waited_blocks[j]:
                continue
            cost = need[j] + gas_cost[i]
            if capital[i] < cost:
                continue
            if incentive[j] - gas_cost[i] - slippage[j] > min_profit[i]:
                capital[i] -= cost
                winner[j] = i
                break
    return winner


@_njit
def none_would_act_nb(
    latency_blocks: IntArray,
    capital: FloatArray,
    gas_units: FloatArray,
    min_profit: FloatArray,
    waited_blocks: int,
    incentive: float,
    gas_per_unit: float,
) -> bool:
    """True when no keeper ``i`` has ``latency_blocks[i] <= waited_blocks``, ``capital[i] >=
    gas`` and ``incentive - gas > min_profit[i]``, with ``gas = gas_units[i] x gas_per_unit``
    (quote: :func:`~deleverage.protocols.chain.gas_cost_quote`'s product, element by element)."""
    for i in range(capital.shape[0]):
        gas = gas_units[i] * gas_per_unit
        able = latency_blocks[i] <= waited_blocks and capital[i] >= gas
        if able and incentive - gas > min_profit[i]:
            return False
    return True


_Quote = Annotated[float, Field(ge=0.0, le=1e13)]


class KeeperSpec(_Frozen):
    """One kind of keeper (``count`` identical copies)."""

    #: Quote the keeper can tie up in actions (debt repaid, bids) and gas.
    capital: _Quote
    #: Blocks between an opportunity appearing and this keeper's transaction landing.
    latency_blocks: Annotated[int, Field(ge=0, le=100_000)] = 1
    #: Gas units one action uses (an Aave liquidation ~ 300-500k, a Clipper take ~ 200k).
    gas_units: Annotated[float, Field(gt=0.0, le=1e8)] = 400_000.0
    #: Profit (quote) below which the keeper does not bother.
    min_profit: _Quote = 0.0
    #: Number of identical keepers of this kind.
    count: Annotated[int, Field(ge=1, le=10_000)] = 1


class KeepersConfig(_Frozen):
    """The keepers watching a venue, and how long a sale takes to pay them back."""

    keepers: Annotated[tuple[KeeperSpec, ...], Field(min_length=1, max_length=1000)]
    #: Blocks between acting and the sale proceeds returning to the keeper's capital.
    sale_delay_blocks: Annotated[int, Field(ge=0, le=10_000_000)] = 1


class KeeperActions(NamedTuple):
    """What the keepers did with a step's opportunities (one entry per opportunity)."""

    #: Keeper index that acted, or -1 when none did.
    winner: IntArray
    #: Gas the winner paid (quote; 0 where nobody acted).
    gas_cost: FloatArray

    @property
    def acted(self) -> npt.NDArray[np.bool_]:
        """Where a keeper acted."""
        return self.winner >= 0


class Keepers:
    """A set of competing keepers (arrays indexed by keeper), see the module docstring.

    Examples
    --------
    >>> keepers = Keepers(KeepersConfig(keepers=(KeeperSpec(capital=10_000.0, latency_blocks=0,
    ...     gas_units=100_000.0),)))
    >>> acts = keepers.act(block=5, seen_block=[5], incentive=[50.0], need=[1_000.0],
    ...     slippage=[5.0], gas_price_gwei=100.0, native_price=2_000.0)
    >>> acts.winner.tolist(), acts.gas_cost.tolist(), keepers.capital.tolist()
    ([0], [20.0], [8980.0])
    """

    def __init__(self, config: KeepersConfig) -> None:
        self.config = config
        specs = [spec for spec in config.keepers for _ in range(spec.count)]
        self.capital = np.array([s.capital for s in specs], dtype=np.float64)
        self.latency_blocks = np.array([s.latency_blocks for s in specs], dtype=np.int64)
        self.gas_units = np.array([s.gas_units for s in specs], dtype=np.float64)
        self.min_profit = np.array([s.min_profit for s in specs], dtype=np.float64)
        index = np.arange(len(specs))
        #: Keeper indices by priority: latency, then gas units, then index.
        self.order = np.lexsort((index, self.gas_units, self.latency_blocks)).astype(np.int64)
        #: The fastest keeper's latency: an opportunity younger than this has no taker.
        self.min_latency_blocks = int(self.latency_blocks.min())
        self._due_keeper = np.empty(0, dtype=np.int64)
        self._due_block = np.empty(0, dtype=np.int64)
        self._due_amount = np.empty(0, dtype=np.float64)
        self._next_due = math.inf
        #: Cumulative gas paid (quote) and proceeds received (quote), per keeper.
        self.gas_paid = np.zeros(len(specs), dtype=np.float64)
        self.received = np.zeros(len(specs), dtype=np.float64)

    def __len__(self) -> int:
        return int(self.capital.shape[0])

    @property
    def pending_proceeds(self) -> float:
        """Sale proceeds not yet back in the keepers' capital (quote)."""
        return float(self._due_amount.sum())

    def settle(self, block: int) -> None:
        """Credit every sale's proceeds due at or before ``block`` to its keeper's capital."""
        if block < self._next_due:
            return
        due = self._due_block <= block
        np.add.at(self.capital, self._due_keeper[due], self._due_amount[due])
        keep = ~due
        self._due_keeper = self._due_keeper[keep]
        self._due_block = self._due_block[keep]
        self._due_amount = self._due_amount[keep]
        self._next_due = float(self._due_block.min()) if self._due_block.size else math.inf

    def capital_path(self, blocks: IntArray) -> tuple[IntArray, FloatArray]:
        """The capital after :meth:`settle` at each block of ``blocks`` (non-decreasing), as
        settling at each in turn would leave it when nobody acts: the steps ``starts`` at
        which it changes (``starts[0] = 0``) and the capital from each on (one row each).
        Computed on copies (the same credits in the same order); changes nothing."""
        capital = self.capital
        due_keeper, due_block, due_amount = self._due_keeper, self._due_block, self._due_amount
        next_due = self._next_due
        starts: list[int] = []
        rows: list[FloatArray] = []
        j, n = 0, len(blocks)
        while j < n:
            block = int(blocks[j])
            if block >= next_due:
                due = due_block <= block
                capital = capital.copy()
                np.add.at(capital, due_keeper[due], due_amount[due])
                keep = ~due
                due_keeper, due_block = due_keeper[keep], due_block[keep]
                due_amount = due_amount[keep]
                next_due = float(due_block.min()) if due_block.size else math.inf
            starts.append(j)
            rows.append(capital)
            j = n if math.isinf(next_due) else int(np.searchsorted(blocks, next_due, "left"))
        if not rows:
            return np.zeros(1, dtype=np.int64), self.capital.reshape(1, -1).copy()
        return np.array(starts, dtype=np.int64), np.vstack(rows)

    def receive(self, keeper: npt.ArrayLike, proceeds: npt.ArrayLike, *, block: int) -> None:
        """Schedule the proceeds of sales made at ``block`` (returned after the sale delay)."""
        who = np.asarray(keeper, dtype=np.int64)
        amount = np.asarray(proceeds, dtype=np.float64)
        if who.shape != amount.shape:
            raise ValidationError("proceeds", amount.shape, f"must match keeper {who.shape}")
        if who.size == 0:
            return
        if who.min() < 0 or who.max() >= len(self):
            raise ValidationError("keeper", who.tolist(), f"must be in [0, {len(self)})")
        if not np.isfinite(amount).all() or (amount < 0).any():
            raise ValidationError("proceeds", amount.tolist(), "must be finite and >= 0")
        due = block + self.config.sale_delay_blocks
        self._due_keeper = np.concatenate([self._due_keeper, who])
        self._due_block = np.concatenate([self._due_block, np.full(who.size, due, np.int64)])
        self._due_amount = np.concatenate([self._due_amount, amount])
        np.add.at(self.received, who, amount)
        self._next_due = min(self._next_due, due)
        if self.config.sale_delay_blocks == 0:
            self.settle(block)

    def receive_one(self, keeper: int, proceeds: float, *, block: int) -> None:
        """:meth:`receive` of one sale's proceeds (plain numbers: a take's, a deal's)."""
        if not 0 <= keeper < self.capital.shape[0]:
            raise ValidationError("keeper", [int(keeper)], f"must be in [0, {len(self)})")
        if not (math.isfinite(proceeds) and proceeds >= 0.0):
            raise ValidationError("proceeds", [float(proceeds)], "must be finite and >= 0")
        due = block + self.config.sale_delay_blocks
        self._due_keeper = np.concatenate((self._due_keeper, np.array([keeper], np.int64)))
        self._due_block = np.concatenate((self._due_block, np.array([due], np.int64)))
        self._due_amount = np.concatenate((self._due_amount, np.array([proceeds], np.float64)))
        self.received[keeper] += proceeds
        self._next_due = min(self._next_due, due)
        if self.config.sale_delay_blocks == 0:
            self.settle(block)

    def act(
        self,
        *,
        block: int,
        seen_block: npt.ArrayLike,
        incentive: npt.ArrayLike,
        need: npt.ArrayLike,
        slippage: npt.ArrayLike,
        gas_price_gwei: float,
        native_price: float,
    ) -> KeeperActions:
        """Let the keepers compete for the opportunities (in the order given) at ``block``.

        Parameters
        ----------
        block
            The current block; due proceeds are credited first.
        seen_block
            Block at which each opportunity first appeared (<= ``block``).
        incentive
            What acting earns before costs (quote).
        need
            Quote the action ties up (debt repaid, a bid), besides gas.
        slippage
            Expected cost of selling what the action seizes (quote).
        gas_price_gwei, native_price
            The chain's gas price and the native token's price (quote per token).
        """
        self.settle(block)
        seen = np.asarray(seen_block, dtype=np.int64)
        columns = {
            "incentive": np.asarray(incentive, dtype=np.float64),
            "need": np.asarray(need, dtype=np.float64),
            "slippage": np.asarray(slippage, dtype=np.float64),
        }
        for name, values in columns.items():
            if values.shape != seen.shape:
                raise ValidationError(name, values.shape, f"must match seen_block {seen.shape}")
            if not np.isfinite(values).all():
                raise ValidationError(name, values.tolist(), "must be finite")
        if (columns["need"] < 0).any() or (columns["slippage"] < 0).any():
            raise ValidationError("need/slippage", "negative", "must be >= 0")
        if (seen > block).any():
            raise ValidationError("seen_block", seen.tolist(), f"must be <= block {block}")
        gas = gas_cost_quote(self.gas_units, gas_price_gwei, native_price)
        winner = assign_keepers_nb(
            self.order,
            self.latency_blocks,
            gas,
            self.min_profit,
            self.capital,
            block - seen,
            columns["incentive"],
            columns["need"],
            columns["slippage"],
        )
        acted = winner >= 0
        paid = np.where(acted, gas[np.where(acted, winner, 0)], 0.0)
        np.add.at(self.gas_paid, winner[acted], paid[acted])
        return KeeperActions(winner=winner, gas_cost=paid)

    def none_would_act(
        self,
        *,
        block: int,
        waited_blocks: int,
        incentive: float,
        gas_price_gwei: float,
        native_price: float,
    ) -> bool:
        """True when :meth:`act` at ``block`` would give no opportunity a taker: none waited
        more than ``waited_blocks`` and none earns more than ``incentive`` (§D3's skip bound).

        Due proceeds are credited first, as :meth:`act` does. A keeper acts on ``j`` only if
        ``latency <= waited_j``, ``capital >= need_j + gas >= gas`` and ``(incentive_j - gas) -
        slippage_j > min_profit``; float subtraction is monotone, so ``incentive - gas <=
        min_profit`` for every keeper that passes the first two tests rules out every ``j``
        exactly (the answer is the pass's own, not an estimate).

        Examples
        --------
        >>> k = Keepers(KeepersConfig(keepers=(KeeperSpec(capital=1e4, gas_units=1e5),)))
        >>> k.none_would_act(block=3, waited_blocks=1, incentive=20.0, gas_price_gwei=100.0,
        ...     native_price=2_000.0)  # gas 20: not more than the min profit 0
        True
        """
        self.settle(block)
        return bool(
            none_would_act_nb(
                self.latency_blocks, self.capital, self.gas_units, self.min_profit,
                waited_blocks, incentive, gas_price_gwei * GWEI * native_price,
            )
        )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """Totals for reports: capital now, pending proceeds, gas paid, proceeds received."""
        return {
            "capital": float(self.capital.sum()),
            "pending_proceeds": self.pending_proceeds,
            "gas_paid": float(self.gas_paid.sum()),
            "received": float(self.received.sum()),
        }
