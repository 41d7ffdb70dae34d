"""Seeded populations of leveraged positions, the starting book of a cascade simulation.

A population is a table with one row per position (and one account per position): signed size
in base units, entry price, chosen leverage, margin mode, the collateral the trader posted and,
for isolated positions, the mark price at which the position reaches maintenance margin.

:func:`generate_population` draws one from a :class:`PopulationSpec`:

- leverage is log-normal (``median x exp(sigma Z)``), clipped to ``[1, tier max]`` where the tier
  is the one of the position's entry notional, since venues cap leverage by position size;
- size is heavy-tailed (Pareto, ``size_min x U^(-1/alpha)``, or log-normal with a floor), rounded
  to the market's lot and never below one lot;
- entries are drawn uniformly over a recent price path, or around a reference price, with a
  relative log-normal jitter, rounded to the tick;
- each position is long with probability ``long_fraction`` and isolated with probability
  ``isolated_fraction``.

The collateral is the initial margin at entry plus the opening taker fee,
``|size| x entry / leverage + |size| x entry x taker_fee_rate``, so after the fee the position
holds exactly ``|size| x entry / leverage`` (docs/formulas.md, "Seeded populations").

Populations round-trip through Parquet (:meth:`Population.to_parquet`,
:meth:`Population.from_parquet`, which validates a user's own venue export) and load into an
:class:`~deleverage.engine.exchange.Exchange` with :meth:`Population.load_into`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field, model_validator

from deleverage import portable_math as pm
from deleverage.engine.bulk import add_isolated_margin_many
from deleverage.engine.levels import zone_prices_compiled
from deleverage.errors import DataError, StateError, ValidationError
from deleverage.rules import margin as mm
from deleverage.spec import (
    MarginMode,
    MarketSpec,
    PositiveFloat,
    TierArrays,
    _Frozen,
    check_finite_positive,
)
from deleverage.tolerance import GRID_RTOL, MARGIN_ATOL

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Columns of a population frame, in order.
COLUMNS = (
    "account",
    "side",
    "size",
    "entry_price",
    "leverage",
    "margin_mode",
    "collateral",
    "liquidation_price",
)
#: Columns a user's file must provide; ``side`` and ``liquidation_price`` are derived if absent.
REQUIRED_COLUMNS = ("account", "size", "entry_price", "leverage", "margin_mode", "collateral")
ISOLATED = "isolated"
CROSS = "cross"

UnitFraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class PopulationSpec(_Frozen):
    """How to draw a population of positions.

    Parameters
    ----------
    n_positions
        Number of positions (one account each).
    long_fraction
        Probability that a position is long.
    isolated_fraction
        Probability that a position is isolated (otherwise cross).
    leverage_median, leverage_sigma
        Log-normal leverage ``median x exp(sigma Z)``, clipped to ``[1, tier max]`` of the
        position's entry notional.
    size_distribution
        ``"pareto"``: ``size_min x U^(-1/size_tail_index)`` (tail ``P(S > s) = (size_min/s)^a``);
        ``"lognormal"``: ``max(size_min, size_median x exp(size_sigma Z))``.
    size_min
        Smallest size, base units, before rounding to the lot (never below one lot).
    size_tail_index
        Pareto tail index ``a``; below 2 the variance is infinite, as in real books.
    size_median, size_sigma
        Parameters of the log-normal size (``size_median`` defaults to ``10 x size_min``).
    size_max
        Optional cap on the size, base units.
    entry_rel_std
        Relative (log) standard deviation of entries around the reference price, or of the
        jitter around the price-path point an entry is drawn from.
    seed
        Seed of the ``numpy.random.SeedSequence`` that drives every draw.
    """

    n_positions: Annotated[int, Field(gt=0, le=100_000_000)]
    long_fraction: UnitFraction = 0.5
    isolated_fraction: UnitFraction = 0.5
    leverage_median: Annotated[float, Field(ge=1, le=1000, allow_inf_nan=False)] = 10.0
    leverage_sigma: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 0.5
    size_distribution: Literal["pareto", "lognormal"] = "pareto"
    size_min: PositiveFloat = 0.01
    size_tail_index: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 1.5
    size_median: PositiveFloat | None = None
    size_sigma: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 1.0
    size_max: PositiveFloat | None = None
    entry_rel_std: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.01
    seed: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _check_sizes(self) -> Self:
        if self.size_max is not None and self.size_max < self.size_min:
            raise ValueError(
                f"size_max must be at least size_min ({self.size_min}), was {self.size_max}"
            )
        if self.size_median is not None and self.size_median < self.size_min:
            raise ValueError(
                f"size_median must be at least size_min ({self.size_min}), was {self.size_median}"
            )
        return self


@dataclass(frozen=True, eq=False)
class Population:
    """A table of positions, one per account (columns in :data:`COLUMNS`).

    ``account`` holds local ids ``0..n-1``; ``side`` is +1 (long) or -1 (short); ``size`` is
    signed base units; ``margin_mode`` is ``"isolated"`` or ``"cross"``; ``collateral`` is the
    quote the account deposits; ``liquidation_price`` is NaN for cross rows.
    """

    frame: pd.DataFrame
    symbol: str = field(default="")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def isolated(self) -> npt.NDArray[np.bool_]:
        """Mask of the isolated rows."""
        return np.asarray(self.frame["margin_mode"].to_numpy() == ISOLATED, dtype=np.bool_)

    # ------------------------------------------------------------------ I/O
    def to_parquet(self, path: str | Path) -> None:
        """Write the frame to a Parquet file (columns in :data:`COLUMNS`)."""
        self.frame.to_parquet(Path(path), index=False)

    @classmethod
    def from_parquet(cls, path: str | Path, *, market: MarketSpec) -> Population:
        """Read and validate a population file (for instance a venue's positions export).

        Raises
        ------
        DataError
            If the file cannot be read, a required column is missing, or a value breaks a
            rule (see :meth:`from_frame`); the message names the column, the row and the rule.
        """
        file = Path(path)
        if not file.is_file():  # also refuses folders and FIFOs (reading one would block)
            raise DataError("path", str(file), "must name an existing Parquet file")
        try:
            frame = pd.read_parquet(file)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise DataError("path", str(file), f"must be a readable Parquet file ({exc})") from None
        return cls.from_frame(frame, market=market)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, market: MarketSpec) -> Population:
        """Validate a frame of positions and derive ``side`` and ``liquidation_price`` if absent.

        Rules: required columns present; no NaN or infinity; ``account`` distinct integers;
        ``size`` non-zero; ``side`` (if given) equal to ``sign(size)``; ``entry_price`` and
        ``collateral`` > 0; ``margin_mode`` ``"isolated"`` or ``"cross"``; ``leverage`` in
        ``[1, tier max]`` for the row's entry notional ``|size| x entry_price``.

        Raises
        ------
        DataError
            Naming ``column[row]``, the value and the rule broken.
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataError("frame", type(frame).__name__, "must be a pandas DataFrame")
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError("columns", missing[0], "is a required column and is missing")
        n = len(frame)
        if n == 0:
            raise DataError("frame", 0, "must hold at least one row")
        numeric = {}
        for name in ("account", "size", "entry_price", "leverage", "collateral"):
            try:
                values = np.asarray(frame[name].to_numpy(), dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(name, str(frame[name].dtype), "must be numeric") from None
            _check_rows(name, values, ~np.isfinite(values), "must be a finite number")
            numeric[name] = values
        account = numeric["account"]
        _check_rows("account", account, account != np.round(account), "must be an integer")
        _check_rows("account", account, account < 0, "must be >= 0")
        if len(np.unique(account)) != n:
            dup = pd.Series(account).duplicated().to_numpy()
            _check_rows("account", account, dup, "must be distinct (one position per account)")
        size = numeric["size"]
        entry = numeric["entry_price"]
        leverage = numeric["leverage"]
        collateral = numeric["collateral"]
        _check_rows("size", size, size == 0, "must be non-zero")
        _check_rows("entry_price", entry, entry <= 0, "must be > 0")
        _check_rows("collateral", collateral, collateral <= 0, "must be > 0")
        modes = frame["margin_mode"].astype(str).to_numpy()
        _check_rows(
            "margin_mode", modes, ~np.isin(modes, [ISOLATED, CROSS]),
            "must be 'isolated' or 'cross'",
        )  # fmt: skip
        tiers = market.tier_arrays
        tier_max = _tier_max_leverage(np.abs(size) * entry, tiers)
        _check_rows("leverage", leverage, leverage < 1.0, "must be >= 1")
        over = leverage > tier_max * (1 + GRID_RTOL)
        if over.any():
            k = int(np.flatnonzero(over)[0])
            raise DataError(
                f"leverage[{k}]",
                float(leverage[k]),
                f"must not exceed the tier maximum {tier_max[k]:g} of {market.symbol} for the "
                f"row's notional {abs(size[k]) * entry[k]:g} (row {k})",
            )
        side = np.sign(size).astype(np.int8)
        if "side" in frame.columns:
            given = np.asarray(frame["side"].to_numpy(), dtype=np.float64)
            _check_rows("side", given, given != side, "must equal sign(size) (+1 long, -1 short)")
        if "liquidation_price" in frame.columns:
            liq = np.asarray(frame["liquidation_price"].to_numpy(), dtype=np.float64)
            iso = modes == ISOLATED
            _check_rows(
                "liquidation_price", liq, iso & np.isnan(liq), "must be set for isolated rows"
            )
        else:
            liq = _liquidation_prices(size, entry, collateral, modes == ISOLATED, market)
        out = pd.DataFrame(
            {
                "account": account.astype(np.int64),
                "side": side,
                "size": size,
                "entry_price": entry,
                "leverage": leverage,
                "margin_mode": modes.astype(object),
                "collateral": collateral,
                "liquidation_price": liq,
            }
        )
        return cls(frame=out, symbol=market.symbol)

    # ------------------------------------------------------------------ engine
    def load_into(
        self,
        exchange: Exchange,
        market: MarketSpec | int | str,
        *,
        cross_accounts: IntArray | None = None,
        ts_ns: int | None = None,
    ) -> IntArray:
        """Open one account per row in ``exchange`` and its position; return the account ids.

        Isolated and cross rows get accounts opened with that default margin mode; each account
        deposits its ``collateral`` and opens its position at ``entry_price`` with its
        ``leverage`` against the book, paying the taker fee. The market's mark must be set.

        The engine requires initial margin at the *current mark* after opening. Where the mark
        differs from an entry this changes the margin the engine holds, so the loader evens it
        out: an isolated position in profit at the mark gets the rest of its collateral moved
        into its isolated margin (it then holds ``|size| x entry / leverage`` exactly and
        liquidates at ``liquidation_price``); a position in loss at the mark gets the extra
        deposit the engine needs to open it (it is then safer than its row says). Leverage above
        the tier maximum of the notional at the mark is lowered to that maximum.

        ``cross_accounts``: existing cross accounts to hold this population's cross rows (row
        ``i`` of the cross rows goes to ``cross_accounts[i]`` while there are any), so one
        account holds positions in several markets; the rest get new accounts.

        Returns
        -------
        numpy.ndarray
            Engine account id of each row, in row order.

        Raises
        ------
        ValidationError
            If the population was built for another market.
        StateError
            If the market has no mark price yet.
        """
        symbol = market.symbol if isinstance(market, MarketSpec) else market
        m = exchange.market_id(symbol)
        state = exchange.market(m)
        if self.symbol and state.spec.symbol != self.symbol:
            raise ValidationError(
                "market", state.spec.symbol, f"must be the population's market {self.symbol}"
            )
        mark = float(state.mark)
        if not mark > 0:
            raise StateError(f"market {state.spec.symbol} has no mark price yet: set_mark first")
        frame = self.frame
        n = len(frame)
        iso = self.isolated
        size = frame["size"].to_numpy(dtype=np.float64)
        entry = frame["entry_price"].to_numpy(dtype=np.float64)
        collateral = frame["collateral"].to_numpy(dtype=np.float64)
        tiers = state.tiers
        leverage = np.minimum(
            frame["leverage"].to_numpy(dtype=np.float64),
            _tier_max_leverage(np.abs(size) * mark, tiers),
        )
        fee = np.abs(size) * entry * state.spec.taker_fee_rate
        initial = mm.initial_margin(np.abs(size) * mark, tiers, leverage=leverage)
        upnl = size * (mark - entry)
        # Extra deposit so that collateral - fee + upnl >= initial at the mark (with slack).
        short = np.maximum(0.0, initial - (collateral - fee + upnl))
        extra = np.where(short > 0, short * (1 + 1e-12) + MARGIN_ATOL, 0.0)
        ids = np.empty(n, dtype=np.int64)
        if iso.any():
            ids[iso] = exchange.open_accounts(
                int(iso.sum()), margin_mode=MarginMode.ISOLATED, ts_ns=ts_ns
            )
        n_cross = int((~iso).sum())
        if n_cross:
            reuse = np.zeros(0, dtype=np.int64) if cross_accounts is None else cross_accounts
            reuse = np.asarray(reuse, dtype=np.int64)[:n_cross]
            fresh = n_cross - len(reuse)
            new = (
                exchange.open_accounts(fresh, margin_mode=MarginMode.CROSS, ts_ns=ts_ns)
                if fresh
                else np.zeros(0, dtype=np.int64)
            )
            ids[~iso] = np.concatenate([reuse, new])
            if len(reuse):
                modes = exchange.columns(m).mode[reuse]
                if np.any(modes != MarginMode.CROSS):
                    raise StateError("cross_accounts must default to cross margin in the market")
        exchange.deposit_many(ids, collateral + extra, ts_ns=ts_ns)
        exchange.open_positions(m, ids, size, entry, leverage=leverage, ts_ns=ts_ns)
        # Move the rest of an isolated account's collateral into its position's margin.
        cols = exchange.columns(m)
        target = collateral - fee
        gap = np.where(iso, target - cols.isolated_margin[ids], 0.0)
        amount = np.minimum(gap, exchange._cash[ids])
        moved = amount > MARGIN_ATOL
        if moved.any():
            add_isolated_margin_many(exchange, m, ids[moved], amount[moved], ts_ns=ts_ns)
        return ids


# ---------------------------------------------------------------------------- generation
def generate_population(
    spec: PopulationSpec,
    market: MarketSpec,
    *,
    reference_price: float,
    rng: np.random.Generator | None = None,
    price_path: npt.ArrayLike | None = None,
) -> Population:
    """Draw a population of positions for ``market`` (see the module docstring).

    Draws, in this order from one generator: side, margin mode, size, entry, leverage.

    - side: long with probability ``long_fraction``;
    - isolated with probability ``isolated_fraction``;
    - size (Pareto): ``S = size_min x U^(-1/a)``, so ``P(S > s) = (size_min / s)^a``; or
      (log-normal) ``S = max(size_min, size_median x exp(size_sigma Z))``; then capped at
      ``size_max``, rounded to the lot, at least one lot;
    - entry: ``base x exp(entry_rel_std x Z)``, ``base`` the reference price or a uniformly
      drawn point of ``price_path``; rounded to the tick, at least one tick;
    - leverage: ``clip(leverage_median x exp(leverage_sigma x Z), 1, 1 / imr[t])`` with ``t``
      the tier of the entry notional ``|S| x entry``;
    - collateral ``= |S| x entry / L + |S| x entry x taker_fee_rate``;
    - isolated liquidation price from
      :func:`deleverage.rules.margin.liquidation_price_isolated` with the isolated margin
      ``|S| x entry / L`` (the collateral after the opening fee).

    Parameters
    ----------
    spec
        The distributions and the seed.
    market
        The market: lot and tick sizes, tiers, taker fee.
    reference_price
        Price the entries scatter around when no ``price_path`` is given, quote per base.
    rng
        Generator to draw from; default ``numpy.random.default_rng(SeedSequence(spec.seed))``.
    price_path
        Recent prices (1-D, finite, > 0) to draw entries over.

    Returns
    -------
    Population
        Same spec and seed (and no ``rng``), same frame.

    Raises
    ------
    ValidationError
        If ``reference_price`` or ``price_path`` is not finite and positive.

    Examples
    --------
    >>> from deleverage.spec import MarketSpec
    >>> pop = generate_population(
    ...     PopulationSpec(n_positions=3, seed=1), MarketSpec.simple("BTCUSDT"),
    ...     reference_price=60_000.0,
    ... )
    >>> len(pop), list(pop.frame.columns) == list(COLUMNS)
    (3, True)
    """
    if not isinstance(spec, PopulationSpec):
        raise ValidationError("spec", type(spec).__name__, "must be a PopulationSpec")
    if not isinstance(market, MarketSpec):
        raise ValidationError("market", type(market).__name__, "must be a MarketSpec")
    reference = check_finite_positive("reference_price", reference_price)
    path: FloatArray | None = None
    if price_path is not None:
        path = np.asarray(price_path, dtype=np.float64)
        if path.ndim != 1 or len(path) == 0:
            raise ValidationError("price_path", path.shape, "must be a non-empty 1-D array")
        bad = ~np.isfinite(path) | (path <= 0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValidationError(f"price_path[{k}]", float(path[k]), "must be finite and > 0")
    gen = rng if rng is not None else np.random.default_rng(np.random.SeedSequence(spec.seed))
    n = spec.n_positions
    long = gen.random(n) < spec.long_fraction
    iso = gen.random(n) < spec.isolated_fraction
    size_abs = _draw_sizes(spec, gen, n)
    lot = market.lot_size
    size_abs = np.maximum(np.round(size_abs / lot), 1.0) * lot
    base = reference if path is None else path[gen.integers(0, len(path), size=n)]
    entry = base * pm.exp(spec.entry_rel_std * gen.standard_normal(n))
    tick = market.tick_size
    entry = np.maximum(np.round(entry / tick), 1.0) * tick
    tiers = market.tier_arrays
    tier_max = _tier_max_leverage(size_abs * entry, tiers)
    leverage = spec.leverage_median * pm.exp(spec.leverage_sigma * gen.standard_normal(n))
    leverage = np.clip(leverage, 1.0, tier_max)
    size = np.where(long, size_abs, -size_abs)
    notional = size_abs * entry
    collateral = notional / leverage + notional * market.taker_fee_rate
    modes = np.where(iso, ISOLATED, CROSS).astype(object)
    liq = _liquidation_prices(size, entry, collateral, iso, market)
    frame = pd.DataFrame(
        {
            "account": np.arange(n, dtype=np.int64),
            "side": np.where(long, 1, -1).astype(np.int8),
            "size": size,
            "entry_price": entry,
            "leverage": leverage,
            "margin_mode": modes,
            "collateral": collateral,
            "liquidation_price": liq,
        }
    )
    return Population(frame=frame, symbol=market.symbol)


def _draw_sizes(spec: PopulationSpec, gen: np.random.Generator, n: int) -> FloatArray:
    if spec.size_distribution == "pareto":
        # Inverse CDF of the classic Pareto: 1 - U is in (0, 1], so the size is finite.
        u = 1.0 - gen.random(n)
        sizes = spec.size_min * u ** (-1.0 / spec.size_tail_index)
    else:
        median = spec.size_median if spec.size_median is not None else 10.0 * spec.size_min
        sizes = np.maximum(spec.size_min, median * pm.exp(spec.size_sigma * gen.standard_normal(n)))
    if spec.size_max is not None:
        sizes = np.minimum(sizes, spec.size_max)
    return np.asarray(sizes, dtype=np.float64)


def _tier_max_leverage(notional: FloatArray, tiers: TierArrays) -> FloatArray:
    return np.asarray(1.0 / tiers.imr[mm.tier_index(notional, tiers)], dtype=np.float64)


def _liquidation_prices(
    size: FloatArray,
    entry: FloatArray,
    collateral: FloatArray,
    iso: npt.NDArray[np.bool_],
    market: MarketSpec,
) -> FloatArray:
    margin = collateral - np.abs(size) * entry * market.taker_fee_rate
    # The isolated liquidation price is the zone price at level 1 (docs/formulas.md §14);
    # the compiled pass gives margin.liquidation_price_isolated's result at 10^6 rows quickly.
    liq = zone_prices_compiled(size, entry, margin, 1.0, market.tier_arrays)
    return np.where(iso, liq, math.nan)


def _check_rows(
    column: str, values: npt.NDArray[np.generic], bad: npt.NDArray[np.bool_], rule: str
) -> None:
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        value = values[k].item() if hasattr(values[k], "item") else values[k]
        raise DataError(f"{column}[{k}]", value, f"{rule} (row {k})")
