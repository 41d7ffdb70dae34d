"""The chain under the DeFi venues: blocks, block time and a gas price that spikes.

On chain, a liquidation or an auction bid is a transaction: it lands in a block, and it pays
gas. What it costs in the venue's quote currency is

    cost = gas units x gas price (gwei) x 1e-9 x price of the native token (quote per token)

(docs/formulas.md §D1), so a keeper's profit falls exactly when the native token crashes less
than gas rises, and a crash is when gas rises: every keeper, arbitrageur and panicking user
competes for block space at once. This module models that with three pieces, all
deterministic given a seed:

- **Blocks.** ``block = (ts_ns - genesis_ts_ns) // block_time`` (:meth:`Chain.block_at`).
- **Base fee (EIP-1559).** Each block moves the base fee by
  ``1 + (u - 1/2) / 4`` where ``u`` is the block's gas used over its gas limit (the target is
  half the limit; at most +-12.5% a block, EIP-1559's ``BASE_FEE_MAX_CHANGE_DENOMINATOR = 8``
  and ``ELASTICITY_MULTIPLIER = 2``). The utilization is a background level, plus a demand
  term that grows with the **realized volatility** of the native token (an exponentially
  weighted variance of its log returns per second, against a reference volatility), scaled
  down as the fee rises above its initial level (price-elastic demand: the fee settles where
  the background fills half a block), plus the **congestion** of pending transactions
  (liquidations and bids the venues submit, queued for the block space the background leaves;
  a full queue fills blocks and pushes the fee up 12.5% a block whatever it costs).
- **Priority fee.** A tip on top that also scales with volatility, times a log-normal noise
  factor read from a table drawn once from the seed and indexed by block number.

The gas price is ``min(cap, base fee + priority fee)``; the base fee stays within
``[min_base_fee_gwei, max_gas_gwei]``. Several venues may share one :class:`Chain`:
:meth:`Chain.advance` is a no-op when called again at the same ``ts_ns``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Annotated, Final, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from deleverage import portable_math as pm
from deleverage.errors import ValidationError
from deleverage.spec import _Frozen

__all__ = [
    "Chain",
    "ChainConfig",
    "base_fee_after",
    "gas_cost_quote",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NS_PER_S: Final = 1_000_000_000
GWEI: Final = 1e-9
#: EIP-1559: the base fee moves by at most 1/8 of itself per block ...
BASE_FEE_MAX_CHANGE_DENOMINATOR: Final = 8.0
#: ... towards a gas target of half the block's limit.
ELASTICITY_MULTIPLIER: Final = 2.0
SECONDS_PER_YEAR: Final = 365.0 * 86_400.0
_NOISE_TABLE: Final = 4096
#: Blocks mined one by one in one advance; a longer gap jumps to the demand equilibrium.
_MAX_BLOCK_LOOP: Final = 4096


def gas_cost_quote(
    gas_units: npt.ArrayLike, gas_price_gwei: float, native_price: float
) -> FloatArray:
    """Cost in quote of transactions using ``gas_units`` gas each (docs/formulas.md §D1).

    ``gas_units x gas_price_gwei x 1e-9 x native_price`` (native token per gwei is 1e-9).

    Examples
    --------
    >>> float(gas_cost_quote(500_000, 100.0, 2_000.0))
    100.0
    """
    return np.asarray(gas_units, dtype=np.float64) * (gas_price_gwei * GWEI * native_price)


def base_fee_after(base_fee_gwei: float, utilization: float, blocks: int) -> float:
    """Base fee after ``blocks`` blocks each ``utilization`` full (EIP-1559, §D2).

    ``b_{n+1} = b_n (1 + (u E - 1) / (E D))`` with the elasticity ``E = 2`` and the change
    denominator ``D = 8``: ``(1 + (u - 1/2) / 4)`` per block, unbounded here (the caller caps).

    Examples
    --------
    >>> base_fee_after(100.0, 1.0, 1)
    112.5
    >>> base_fee_after(100.0, 0.5, 10)
    100.0
    """
    target = 1.0 / ELASTICITY_MULTIPLIER
    factor = 1.0 + (utilization - target) / target / BASE_FEE_MAX_CHANGE_DENOMINATOR
    try:
        return float(base_fee_gwei * factor**blocks)
    except OverflowError:
        return math.inf


_Positive = Annotated[float, Field(gt=0.0, le=1e9)]
_Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class ChainConfig(_Frozen):
    """Blocks and the gas price model (see the module docstring; units in the names)."""

    #: Seconds between blocks (Ethereum: 12).
    block_time_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 12.0
    #: Time of block 0 (ns).
    genesis_ts_ns: Annotated[int, Field(ge=0)] = 0
    #: Gas limit of a block (gas units; Ethereum 2024: 30 million).
    block_gas_limit: Annotated[float, Field(ge=1e5, le=1e10)] = 30e6
    #: Base fee at the first block (gwei).
    initial_base_fee_gwei: _Positive = 20.0
    #: Floor of the base fee (gwei).
    min_base_fee_gwei: _Positive = 1.0
    #: Cap of the gas price, base fee plus priority fee (gwei).
    max_gas_gwei: _Positive = 2_000.0
    #: Utilization of a calm block, without pending liquidations (0.5 keeps the fee flat).
    background_utilization: _Fraction = 0.5
    #: Utilization added per unit of volatility ratio above 1 (the ratio of realized to
    #: reference volatility).
    volatility_demand: Annotated[float, Field(ge=0.0, le=10.0)] = 0.25
    #: How background demand falls as the base fee rises: ``demand x (initial / fee)^e``
    #: (0, the default: demand ignores the fee, pure EIP-1559 compounding; 1: the fee settles
    #: where demand is half a block, ``initial x demand / 0.5``).
    demand_elasticity: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0
    #: Annualized reference volatility of the native token (e.g. 0.8 for ETH).
    reference_volatility: Annotated[float, Field(gt=0.0, le=100.0)] = 0.8
    #: Half-life of the realized variance's exponential weights (s).
    volatility_half_life_s: Annotated[float, Field(gt=0.0, le=1e7)] = 600.0
    #: Priority fee (tip) at or below the reference volatility (gwei).
    priority_fee_gwei: Annotated[float, Field(ge=0.0, le=1e6)] = 2.0
    #: The tip is multiplied by ``1 + priority_volatility_multiplier (ratio - 1)+``.
    priority_volatility_multiplier: Annotated[float, Field(ge=0.0, le=1e3)] = 1.0
    #: Log-volatility of the tip's per-block noise factor (mean 1).
    priority_noise_sigma: Annotated[float, Field(ge=0.0, le=3.0)] = 0.1

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        if self.min_base_fee_gwei > self.initial_base_fee_gwei:
            raise ValueError(
                f"min_base_fee_gwei must be <= initial_base_fee_gwei "
                f"({self.initial_base_fee_gwei}), was {self.min_base_fee_gwei}"
            )
        if self.initial_base_fee_gwei > self.max_gas_gwei:
            raise ValueError(
                f"initial_base_fee_gwei must be <= max_gas_gwei ({self.max_gas_gwei}), "
                f"was {self.initial_base_fee_gwei}"
            )
        return self


class Chain:
    """One chain's blocks and gas price, advanced by the venues that share it.

    Call :meth:`advance` with the time and the native token's price before reading
    :attr:`gas_price_gwei`; :meth:`submit` queues the gas of transactions sent now (they fill
    the following blocks and push the base fee up).

    Examples
    --------
    >>> chain = Chain(ChainConfig(), seed=1)
    >>> chain.block_at(25 * NS_PER_S)
    2
    >>> chain.advance(0, 2_000.0); chain.submit(60e6); chain.advance(24 * NS_PER_S, 2_000.0)
    >>> round(chain.base_fee_gwei, 4)  # two full blocks: 20 x 1.125^2
    25.3125
    """

    def __init__(self, config: ChainConfig | None = None, *, seed: int = 0) -> None:
        self.config = config if config is not None else ChainConfig()
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValidationError("seed", seed, "must be an integer >= 0")
        cfg = self.config
        self._block_ns = round(cfg.block_time_s * NS_PER_S)
        self._genesis_ns = cfg.genesis_ts_ns  # read per block_at call: kept as a plain int
        sigma = cfg.priority_noise_sigma
        z = np.random.default_rng(np.random.SeedSequence([seed, 0xC4A1])).standard_normal(
            _NOISE_TABLE
        )
        #: Per-block multiplicative noise of the tip (mean 1), indexed by block % table size.
        self._noise: list[float] = pm.exp(sigma * z - 0.5 * sigma * sigma).tolist()
        self._ref_var_per_s = cfg.reference_volatility**2 / SECONDS_PER_YEAR
        self.base_fee_gwei = cfg.initial_base_fee_gwei
        #: Exponentially weighted variance of the native token's log returns per second.
        self.variance_per_s = self._ref_var_per_s
        #: Gas of submitted transactions not yet mined (gas units).
        self.pending_gas = 0.0
        self.block = -1
        self.ts_ns = -1
        self._price = math.nan
        self.gas_price_gwei = min(cfg.max_gas_gwei, cfg.initial_base_fee_gwei)

    def block_at(self, ts_ns: int) -> int:
        """Number of the block that holds time ``ts_ns`` (block 0 starts at genesis)."""
        genesis = self._genesis_ns
        if ts_ns < genesis:
            raise ValidationError("ts_ns", ts_ns, f"must be >= genesis_ts_ns ({genesis})")
        return (ts_ns - genesis) // self._block_ns

    @property
    def volatility_ratio(self) -> float:
        """Realized over reference volatility (1 at the reference)."""
        return math.sqrt(self.variance_per_s / self._ref_var_per_s)

    def gas_cost_quote(self, gas_units: npt.ArrayLike) -> FloatArray:
        """Cost in quote of ``gas_units`` at the current gas price and native price."""
        return gas_cost_quote(gas_units, self.gas_price_gwei, self._price)

    @property
    def native_price(self) -> float:
        """The native token's last price (quote per token; NaN before the first advance)."""
        return self._price

    def submit(self, gas_units: float) -> None:
        """Queue transactions using ``gas_units`` gas in total (they fill the next blocks)."""
        if not math.isfinite(gas_units) or gas_units < 0:
            raise ValidationError("gas_units", gas_units, "must be a finite number >= 0")
        self.pending_gas += gas_units

    def advance(self, ts_ns: int, native_price: float) -> None:
        """Move to ``ts_ns``: update the realized volatility, mine the blocks since the last
        call (base fee, pending gas) and set the gas price of the current block.

        A second call at the same ``ts_ns`` changes nothing (venues share a chain).
        """
        if not (math.isfinite(native_price) and native_price > 0):
            raise ValidationError("native_price", native_price, "must be a finite number > 0")
        if ts_ns < self.ts_ns:
            raise ValidationError("ts_ns", ts_ns, f"must not go backwards (last {self.ts_ns})")
        if ts_ns == self.ts_ns:
            return
        block = self.block_at(ts_ns)
        cfg = self.config
        if self.ts_ns >= 0:
            dt_s = (ts_ns - self.ts_ns) / NS_PER_S
            keep = 0.5 ** (dt_s / cfg.volatility_half_life_s)
            r = math.log(native_price / self._price)
            self.variance_per_s = keep * self.variance_per_s + (1.0 - keep) * r * r / dt_s
            self._mine(block - self.block)
        self.ts_ns, self.block, self._price = ts_ns, block, native_price
        excess = max(0.0, self.volatility_ratio - 1.0)
        tip = cfg.priority_fee_gwei * (1.0 + cfg.priority_volatility_multiplier * excess)
        tip *= self._noise[block % _NOISE_TABLE]
        self.gas_price_gwei = min(cfg.max_gas_gwei, self.base_fee_gwei + tip)

    def preview(
        self, ts_ns: Sequence[int], native_prices: Sequence[float]
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Block, gas price (gwei) and native price at each time of a path, as advancing to
        each in turn with nothing submitted would leave them (times before the chain's are
        no-ops, as :meth:`advance` at the same time); computed on a copy, changes nothing."""
        blocks, gas, native, _ = self.preview_from(ts_ns, native_prices)
        return blocks, gas, native

    def preview_from(
        self, ts_ns: Sequence[int], native_prices: Sequence[float]
    ) -> tuple[IntArray, FloatArray, FloatArray, Chain]:
        """:meth:`preview`, and the copy it advanced, left at the path's end: the preview of
        a longer path goes on from there (``end.preview_from(rest...)``: the same numbers as
        previewing the whole path at once). Changes nothing."""
        sim = copy.copy(self)
        n = len(ts_ns)
        blocks = np.empty(n, dtype=np.int64)
        gas = np.empty(n)
        native = np.empty(n)
        for j, (t, price) in enumerate(zip(ts_ns, native_prices, strict=True)):
            if t >= sim.ts_ns:
                sim.advance(t, price)
            blocks[j] = sim.block_at(t)
            gas[j] = sim.gas_price_gwei
            native[j] = sim._price
        return blocks, gas, native, sim

    def _demand(self, fee: float) -> float:
        # Background demand for block space (a utilization), falling with the fee (§D2).
        cfg = self.config
        excess = max(0.0, self.volatility_ratio - 1.0)
        demand = cfg.background_utilization + cfg.volatility_demand * excess
        if cfg.demand_elasticity > 0.0:
            demand *= (cfg.initial_base_fee_gwei / fee) ** cfg.demand_elasticity
        return min(1.0, demand)

    def _mine(self, blocks: int) -> None:
        if blocks <= 0:
            return
        if self.config.demand_elasticity == 0.0:
            self._mine_inelastic(blocks)
            return
        cfg = self.config
        limit = cfg.block_gas_limit
        fee = self.base_fee_gwei
        for _ in range(min(blocks, _MAX_BLOCK_LOOP)):
            background = self._demand(fee)
            take = min(self.pending_gas, limit * (1.0 - background))
            self.pending_gas -= take
            fee = base_fee_after(fee, background + take / limit, 1)
            fee = min(cfg.max_gas_gwei, max(cfg.min_base_fee_gwei, fee))
        left = blocks - _MAX_BLOCK_LOOP
        if left > 0:
            # A long gap: the fee has reached the level where demand is the target (half the
            # block), the queue drains at the spare half of each block.
            excess = max(0.0, self.volatility_ratio - 1.0)
            demand = cfg.background_utilization + cfg.volatility_demand * excess
            target = 1.0 / ELASTICITY_MULTIPLIER
            equilibrium = cfg.initial_base_fee_gwei * (demand / target) ** (
                1.0 / cfg.demand_elasticity
            )
            fee = min(cfg.max_gas_gwei, max(cfg.min_base_fee_gwei, equilibrium))
            self.pending_gas = max(0.0, self.pending_gas - left * limit * (1.0 - target))
        self.base_fee_gwei = fee

    def _mine_inelastic(self, blocks: int) -> None:
        # Blocks fully filled by the queue (u = 1), one partly filled, the rest at the
        # background utilization; the fee is monotone within each run, so one clamp per run
        # equals a clamp per block.
        cfg = self.config
        background = self._demand(self.base_fee_gwei)
        spare = cfg.block_gas_limit * (1.0 - background)
        runs: list[tuple[float, int]]
        if spare <= 0.0:  # the background alone fills every block: the queue waits
            runs = [(1.0, blocks)]
        else:
            full = min(blocks, int(self.pending_gas // spare))
            self.pending_gas -= full * spare
            runs = [(1.0, full)]
            rest = blocks - full
            if rest > 0 and self.pending_gas > 0.0:
                runs.append((background + self.pending_gas / cfg.block_gas_limit, 1))
                rest -= 1
                self.pending_gas = 0.0
            runs.append((background, rest))
        fee = self.base_fee_gwei
        for utilization, count in runs:
            if count:
                fee = base_fee_after(fee, utilization, count)
                fee = min(cfg.max_gas_gwei, max(cfg.min_base_fee_gwei, fee))
        self.base_fee_gwei = fee
