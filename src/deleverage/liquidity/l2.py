"""An explicit L2 book (:class:`L2Book`): price levels per side walked level by level, loaded
from CSV, Parquet, a DataFrame or a Binance ``bookDepth`` snapshot.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_right
from collections.abc import Callable
from datetime import datetime
from typing import (
    NamedTuple,
)

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import DataError, ValidationError
from deleverage.liquidity.books import (
    _ResilientBook,
)
from deleverage.liquidity.depth_files import (
    _bands,
    _book_depth_mid,
    _check_book_depth,
    _existing_file,
    _read_csv,
    read_binance_book_depth,
)
from deleverage.liquidity.model import (
    _DUST_RTOL,
    BUY,
    SELL,
    ArrayLike,
    BandPlacement,
    Exhaustion,
    FloatArray,
    _check_positive,
    _check_side,
    _check_ts,
)

# --------------------------------------------------------------------------------------------
# L2 book
# --------------------------------------------------------------------------------------------


class _Ladder(NamedTuple):
    """One direction of an L2 book as a supply curve walked upward.

    A buy walks the curve ``G`` up from ``y = x``; a sell walks the mirrored curve
    ``G'(y) = -G(-y)`` up from ``y = -x``. ``values[k]`` is ``G`` on ``(edges[k], edges[k+1]]``;
    below ``edges[0]`` and above ``edges[-1]`` ``G`` continues linearly with the given
    densities (base units per unit relative move; 0 = no depth there) up to ``y_max``.
    """

    edges: tuple[float, ...]
    values: tuple[float, ...]
    density_below: float
    density_above: float
    y_max: float
    touch: float  # half-spread offset of this side's best level from the mid


def _marginal_up(ladder: _Ladder, y: float) -> float:
    """``G`` just above ``y``: where the next unit of an upward walk fills."""
    edges, values = ladder.edges, ladder.values
    if y < edges[0]:
        return values[0] - (edges[0] - y) / ladder.density_below
    if y < edges[-1]:
        return values[bisect_right(edges, y) - 1]
    if ladder.density_above > 0.0:
        return values[-1] + (y - edges[-1]) / ladder.density_above
    return values[-1]


def _walk_up(ladder: _Ladder, y0: float, size: float) -> tuple[float, float, float, float]:
    """Walk ``size`` units up from ``y0``: ``(filled, integral of G, last G, y after)``."""
    edges, values = ladder.edges, ladder.values
    low, high = edges[0], edges[-1]
    y, remaining, cost, last = y0, size, 0.0, math.nan
    # an order that overshoots a level's edge by float dust ends at that edge, so that
    # quote(max_fillable(...)) never reports a last price one level too far
    dust = _DUST_RTOL * size
    if remaining > 0.0 and y < low:  # the opposite side's extrapolated region, walked back
        room = low - y
        take = remaining if remaining <= room + dust else room
        g0 = values[0] - room / ladder.density_below
        g1 = values[0] - max(room - take, 0.0) / ladder.density_below
        cost += take * 0.5 * (g0 + g1)
        last, remaining = g1, remaining - take
        y = low if take >= room else y + take
    if remaining > 0.0 and low <= y < high:
        k = bisect_right(edges, y) - 1
        n = len(values)
        while remaining > 0.0 and k < n:
            room = edges[k + 1] - y
            if room > 0.0:
                take = remaining if remaining <= room + dust else room
                cost += take * values[k]
                last, remaining = values[k], remaining - take
                y = edges[k + 1] if take >= room else y + take
            k += 1
    if remaining > 0.0 and ladder.density_above > 0.0 and y < ladder.y_max:
        take = min(remaining, ladder.y_max - y)
        g0 = values[-1] + (y - high) / ladder.density_above
        g1 = g0 + take / ladder.density_above
        cost += take * 0.5 * (g0 + g1)
        last, remaining = g1, remaining - take
        y += take
    return size - remaining, cost, last, y


def _fillable_up(ladder: _Ladder, y0: float, target: float) -> float:
    """Units an upward walk from ``y0`` fills while ``G <= target``."""
    edges, values = ladder.edges, ladder.values
    low, high = edges[0], edges[-1]
    y = y0
    if y < low:
        if _marginal_up(ladder, y) > target:
            return 0.0
        if target < values[0]:
            return low - ladder.density_below * (values[0] - target) - y0
        y = low
    if y < high:
        k = bisect_right(edges, y) - 1
        while k < len(values):
            if values[k] > target:
                return y - y0
            y = edges[k + 1]
            k += 1
    if ladder.density_above > 0.0:
        y_star = min(high + ladder.density_above * (target - values[-1]), ladder.y_max)
        return max(y_star, y) - y0
    return y - y0


def _level_checks(
    prices: FloatArray,
    sizes: FloatArray,
    *,
    descending: bool,
    name: Callable[[int, str], str],
    error: type[ValidationError],
) -> None:
    """Prices finite > 0 and strictly sorted best first; sizes finite >= 0."""
    for i in range(prices.shape[0]):
        if not 0.0 < prices[i] < math.inf:
            raise error(name(i, "price"), float(prices[i]), "must be a finite number > 0")
        if not 0.0 <= sizes[i] < math.inf:
            raise error(name(i, "size"), float(sizes[i]), "must be a finite number >= 0")
        if i > 0 and (prices[i] >= prices[i - 1] if descending else prices[i] <= prices[i - 1]):
            order = "below" if descending else "above"
            raise error(
                name(i, "price"),
                float(prices[i]),
                f"must be strictly {order} the previous level's {float(prices[i - 1])} "
                f"(levels sorted best first)",
            )


def _as_levels(label: str, prices: ArrayLike, sizes: ArrayLike) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(prices, dtype=np.float64).reshape(-1)
    s = np.asarray(sizes, dtype=np.float64).reshape(-1)
    if p.shape != s.shape:
        raise ValidationError(
            f"{label}_sizes", s.shape[0], f"must have the length of {label}_prices ({p.shape[0]})"
        )
    return p, s


class L2Book(_ResilientBook):
    """Explicit price levels per side, walked level by level.

    Levels are stored relative to the book's reference ``mid`` (``offset = price / mid - 1``);
    a quote at mid ``m`` prices level ``i`` at ``m (1 + offset_i)``, so a snapshot serves as the
    book's shape while the exogenous price moves. At the reference mid the prices are the
    levels' own. Consumed depth ``x`` shifts the whole book (see the module docstring): a buy
    walks the asks from ``x``, and after sells it first walks back up the consumed bids, one
    spread above them.

    Parameters
    ----------
    bid_prices, bid_sizes
        Bid levels, best (highest) first: prices strictly descending, sizes >= 0 base units.
    ask_prices, ask_sizes
        Ask levels, best (lowest) first: prices strictly ascending.
    half_life_s
        Resilience half-life in seconds (> 0; ``math.inf`` for no recovery).
    mid
        Reference mid; default the midpoint of the best bid and ask. Must lie between them.
        Required when a side is empty.
    on_exhausted
        ``"unfilled"``: an order beyond the last level fills what the book holds and reports
        the rest as unfilled. ``"extrapolate"``: past the last level the price keeps moving
        linearly with that level's density (its size over its distance from the previous level,
        or from the mid for a single level); buys without bound, sells until the price reaches
        zero. An empty side fills nothing either way. Once a side is used up (``"unfilled"``),
        :meth:`price_impact` reports the last level's displacement.
    ts_ns
        Time of the initial (untouched) state.
    source
        Free text saying where the levels came from (file and snapshot time).

    Raises
    ------
    ValidationError
        On a non-finite or non-positive price, a negative size, unsorted or crossed levels,
        mismatched lengths, an empty book, or a mid outside the spread.

    Examples
    --------
    >>> book = L2Book([99.5, 99.0], [1.0, 2.0], [100.5, 101.0], [1.0, 2.0], half_life_s=10.0)
    >>> fill = book.quote(1, 2.5, 100.0, 0)
    >>> round(fill.vwap, 9), fill.last_price, fill.unfilled
    (100.8, 101.0, 0.0)
    """

    def __init__(
        self,
        bid_prices: ArrayLike,
        bid_sizes: ArrayLike,
        ask_prices: ArrayLike,
        ask_sizes: ArrayLike,
        *,
        half_life_s: float,
        mid: float | None = None,
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
        source: str = "",
    ) -> None:
        bp, bs = _as_levels("bid", bid_prices, bid_sizes)
        ap, as_ = _as_levels("ask", ask_prices, ask_sizes)
        _level_checks(
            bp, bs, descending=True, name=lambda i, c: f"bid_{c}s[{i}]", error=ValidationError
        )
        _level_checks(
            ap, as_, descending=False, name=lambda i, c: f"ask_{c}s[{i}]", error=ValidationError
        )
        if on_exhausted not in ("unfilled", "extrapolate"):
            raise ValidationError("on_exhausted", on_exhausted, "must be unfilled or extrapolate")
        bp, bs = bp[bs > 0.0], bs[bs > 0.0]
        ap, as_ = ap[as_ > 0.0], as_[as_ > 0.0]
        if bp.size == 0 and ap.size == 0:
            raise ValidationError("ask_sizes", 0.0, "book must hold depth on at least one side")
        if bp.size and ap.size and bp[0] >= ap[0]:
            raise ValidationError(
                "bid_prices[0]", float(bp[0]), f"must be below the best ask {float(ap[0])}"
            )
        if mid is None:
            if bp.size == 0 or ap.size == 0:
                raise ValidationError("mid", None, "must be given when a side of the book is empty")
            reference = 0.5 * (float(bp[0]) + float(ap[0]))
        else:
            reference = _check_positive("mid", mid)
            if (bp.size and reference < bp[0]) or (ap.size and reference > ap[0]):
                raise ValidationError("mid", mid, "must lie between the best bid and best ask")
        super().__init__(half_life_s=half_life_s, ts_ns=ts_ns)
        self.mid = reference
        self.on_exhausted: Exhaustion = on_exhausted
        self.source = source
        self._bids = (bp, bs)
        self._asks = (ap, as_)
        self._ladders = self._build_ladders(bp / reference - 1.0, bs, ap / reference - 1.0, as_)

    def _build_ladders(
        self, bid_off: FloatArray, bid_size: FloatArray, ask_off: FloatArray, ask_size: FloatArray
    ) -> dict[int, _Ladder]:
        b0 = float(bid_off[0]) if bid_off.size else 0.0
        a0 = float(ask_off[0]) if ask_off.size else 0.0
        cum_bid = np.cumsum(bid_size)
        cum_ask = np.cumsum(ask_size)
        edges = np.concatenate([-cum_bid[::-1], [0.0], cum_ask])
        values = np.concatenate([(bid_off - b0)[::-1], ask_off - a0])
        extrapolate = self.on_exhausted == "extrapolate"
        dens_ask = _last_level_density("ask", ask_off, ask_size) if extrapolate else 0.0
        dens_bid = _last_level_density("bid", -bid_off, bid_size) if extrapolate else 0.0
        top_ask = float(cum_ask[-1]) if cum_ask.size else 0.0
        top_bid = float(cum_bid[-1]) if cum_bid.size else 0.0
        # sells stop where the price reaches zero: offset -1
        y_max_sell = top_bid + dens_bid * (1.0 + float(bid_off[-1])) if dens_bid else top_bid
        up = _Ladder(
            tuple(float(v) for v in edges),
            tuple(float(v) for v in values),
            dens_bid,
            dens_ask,
            math.inf if dens_ask else top_ask,
            a0,
        )
        down = _Ladder(
            tuple(float(-v) for v in edges[::-1]),
            tuple(float(-v) for v in values[::-1]),
            dens_ask,
            dens_bid,
            y_max_sell,
            -b0,
        )
        return {BUY: up, SELL: down}

    # -- views ----------------------------------------------------------------------------------

    @property
    def bid_prices(self) -> FloatArray:
        """Bid prices at the reference mid, best first (levels with size > 0)."""
        return self._bids[0].copy()

    @property
    def bid_sizes(self) -> FloatArray:
        """Bid sizes in base units, best first."""
        return self._bids[1].copy()

    @property
    def ask_prices(self) -> FloatArray:
        """Ask prices at the reference mid, best first."""
        return self._asks[0].copy()

    @property
    def ask_sizes(self) -> FloatArray:
        """Ask sizes in base units, best first."""
        return self._asks[1].copy()

    def depth_within(self, side: int, move: float) -> float:
        """Resting base units within a relative ``move`` of the mid on one side (state ignored).

        ``side=+1`` counts asks priced at most ``mid (1 + move)``, ``-1`` bids at least
        ``mid (1 - move)``: the quantity Binance's ``bookDepth`` reports for ``move = k %``.
        Use it to calibrate :class:`ConstantDepthBook` (``depth_per_pct = depth_within(s, 0.01)``).
        """
        s = _check_side(side)
        prices, sizes = self._asks if s == BUY else self._bids
        offsets = s * (prices / self.mid - 1.0)
        # a level exactly on the band's edge counts, whatever the rounding of price / mid
        return float(sizes[offsets <= float(move) + 1e-12].sum())

    def to_frame(self) -> pd.DataFrame:
        """Levels as a table ``side, price, size`` (the :meth:`from_frame` layout)."""
        bp, bs = self._bids
        ap, as_ = self._asks
        return pd.DataFrame(
            {
                "side": ["bid"] * bp.size + ["ask"] * ap.size,
                "price": np.concatenate([bp, ap]),
                "size": np.concatenate([bs, as_]),
            }
        )

    # -- model-specific pieces ------------------------------------------------------------------

    def _fill(
        self, side: int, size: float, mid: float, consumed: float
    ) -> tuple[float, float, float, float]:
        ladder = self._ladders[side]
        y0 = side * consumed
        start = _marginal_up(ladder, y0)
        filled, cost, last, y1 = _walk_up(ladder, y0, size)
        if filled > 0.0:
            average = min(max(cost / filled, start), last)
        else:
            average = last = start
        vwap = mid * (1.0 + side * (ladder.touch + average))
        return filled, vwap, mid * (1.0 + side * (ladder.touch + last)), side * y1

    def _impact(self, consumed: float) -> float:
        if consumed > 0.0:
            return _marginal_up(self._ladders[BUY], consumed)
        if consumed < 0.0:
            return -_marginal_up(self._ladders[SELL], -consumed)
        return 0.0

    def _fillable(self, side: int, consumed: float, limit_offset: float) -> float:
        ladder = self._ladders[side]
        return _fillable_up(ladder, side * consumed, side * limit_offset - ladder.touch)

    def _consumed_bounds(self) -> tuple[float, float]:
        return -self._ladders[SELL].y_max, self._ladders[BUY].y_max

    # -- loaders --------------------------------------------------------------------------------

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        half_life_s: float,
        mid: float | None = None,
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
        source: str = "frame",
        first_line: int = 0,
        line_word: str = "row",
    ) -> L2Book:
        """Build a book from a table with columns ``side`` (``bid``/``ask``), ``price``, ``size``.

        Rows of each side must be sorted best first (bids descending, asks ascending). Other
        columns are ignored. ``first_line`` and ``line_word`` say how errors name a row (a CSV
        file's first data row is ``line 2``).

        Raises
        ------
        DataError
            On a missing column or a bad row; the message names the row, the column, the value
            and the rule.
        """

        def where(i: int) -> str:
            return f"{source} {line_word} {i + first_line}"

        missing = [c for c in ("side", "price", "size") if c not in frame.columns]
        if missing:
            raise DataError(
                f"{source} columns",
                [str(c) for c in frame.columns],
                "must include side, price and size",
            )
        sides = frame["side"].astype(str).str.strip().str.lower().to_numpy()
        bad_side = np.flatnonzero(~np.isin(sides, ["bid", "ask"]))
        if bad_side.size:
            i = int(bad_side[0])
            raise DataError(f"{where(i)} side", frame["side"].iloc[i], "must be bid or ask")
        numbers = {}
        for column in ("price", "size"):
            raw = frame[column]
            text = raw if pd.api.types.is_numeric_dtype(raw) else raw.astype(str).str.strip()
            values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                i = int(bad[0])
                raise DataError(f"{where(i)} {column}", raw.iloc[i], "must be a finite number")
            numbers[column] = values
        rows = {label: np.flatnonzero(sides == label) for label in ("bid", "ask")}
        for label, descending in (("bid", True), ("ask", False)):
            r = rows[label]
            _level_checks(
                numbers["price"][r],
                numbers["size"][r],
                descending=descending,
                name=_row_namer(where, r),
                error=DataError,
            )
        bids = rows["bid"][numbers["size"][rows["bid"]] > 0.0]
        asks = rows["ask"][numbers["size"][rows["ask"]] > 0.0]
        if bids.size and asks.size:
            best_bid, best_ask = numbers["price"][bids[0]], numbers["price"][asks[0]]
            if best_bid >= best_ask:
                raise DataError(
                    f"{where(int(bids[0]))} price",
                    float(best_bid),
                    f"must be below the best ask {float(best_ask)} at "
                    f"{line_word} {int(asks[0]) + first_line} (crossed book)",
                )
        return cls(
            numbers["price"][rows["bid"]],
            numbers["size"][rows["bid"]],
            numbers["price"][rows["ask"]],
            numbers["size"][rows["ask"]],
            half_life_s=half_life_s,
            mid=mid,
            on_exhausted=on_exhausted,
            ts_ns=ts_ns,
            source=source,
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        *,
        half_life_s: float,
        mid: float | None = None,
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
    ) -> L2Book:
        """Load a book from a CSV file with the header ``side,price,size`` (see :meth:`from_frame`).

        Errors name the file line (the header is line 1).
        """
        file = _existing_file(path)
        frame = _read_csv(file, str(file), dtype=str)
        return cls.from_frame(
            frame,
            half_life_s=half_life_s,
            mid=mid,
            on_exhausted=on_exhausted,
            ts_ns=ts_ns,
            source=str(file),
            first_line=2,
            line_word="line",
        )

    @classmethod
    def from_parquet(
        cls,
        path: str | os.PathLike[str],
        *,
        half_life_s: float,
        mid: float | None = None,
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
    ) -> L2Book:
        """Load a book from a Parquet file with columns ``side, price, size``."""
        file = _existing_file(path)
        try:
            frame = pd.read_parquet(file)
        except Exception as exc:  # pyarrow raises several unrelated types on a corrupt file
            raise DataError(str(file), str(exc), "must be a Parquet file") from None
        return cls.from_frame(
            frame,
            half_life_s=half_life_s,
            mid=mid,
            on_exhausted=on_exhausted,
            ts_ns=ts_ns,
            source=str(file),
        )

    @classmethod
    def from_binance_book_depth(
        cls,
        source: str | os.PathLike[str] | pd.DataFrame,
        *,
        half_life_s: float,
        at: str | datetime | pd.Timestamp | None = None,
        mid: float | None = None,
        placement: BandPlacement = "vwap",
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
    ) -> L2Book:
        """Build a book from one snapshot of a Binance ``bookDepth`` file.

        Binance's archive (https://data.binance.vision, ``futures/um/daily/bookDepth``) gives,
        about every 30 s, the *cumulative* depth (base) and notional (quote) from the mid out to
        each percentage band (``-5 .. -1`` bids, ``1 .. 5`` asks; newer files add ``±0.2``). The
        band between consecutive percentages ``p_{k-1} < |p| <= p_k`` becomes one level of size
        ``depth_k - depth_{k-1}``, priced at

        - ``"vwap"``: the band's own average price
          ``(notional_k - notional_{k-1}) / (depth_k - depth_{k-1})``; the reference mid is
          ``mid`` or else the midpoint of the innermost bid and ask bands' average prices;
        - ``"band_mid"``: the middle of the band, ``mid (1 ± (p_{k-1} + p_k) / 200)``, which
          uses depths only (robust to glitched notionals; needs ``mid`` if the innermost
          averages are crossed).

        Bands with no added depth give no level. Buying a whole side at the reference mid with
        ``"vwap"`` placement costs exactly the file's cumulative notional.

        Parameters
        ----------
        source
            Path of the CSV (``.csv`` or ``.csv.gz``), or a table: either as
            :func:`read_binance_book_depth` returns it, or with the file's columns (checked,
            errors name the row).
        at
            Snapshot time (UTC): the last snapshot at or before it; default the first.
        mid, half_life_s, on_exhausted, ts_ns
            As in :class:`L2Book`.
        placement
            ``"vwap"`` or ``"band_mid"``, see above.

        Raises
        ------
        DataError
            On a malformed file, cumulative depth that decreases, a band with depth but no
            notional, or a snapshot whose levels are crossed (on 2025-10-10 after 19:15 UTC a
            stale bid above the market does this: use ``"band_mid"`` and pass ``mid``).
        """
        # check the caller's arguments first: a ValidationError from the constructor below is
        # then about the snapshot's data
        _check_positive("half_life_s", half_life_s, allow_inf=True)
        _check_ts(ts_ns)
        if on_exhausted not in ("unfilled", "extrapolate"):
            raise ValidationError("on_exhausted", on_exhausted, "must be unfilled or extrapolate")
        if placement not in ("vwap", "band_mid"):
            raise ValidationError("placement", placement, "must be vwap or band_mid")
        if isinstance(source, pd.DataFrame):
            label = "frame"
            table = source
            if "ts" not in table.columns:
                table = _check_book_depth(table, label, first_line=0, line_word="row")
        else:
            label = str(source)
            table = read_binance_book_depth(source)
        times = table["ts"]
        if times.empty:
            raise DataError(label, "no rows", "must hold at least one snapshot")
        if at is None:
            chosen = times.min()
        else:
            when = pd.Timestamp(at)
            if when.tzinfo is not None:
                when = when.tz_convert("UTC").tz_localize(None)
            earlier = times[times <= when]
            if earlier.empty:
                raise ValidationError("at", str(at), f"must not be before {times.min()}")
            chosen = earlier.max()
        snap = table[times == chosen]
        levels = {s: _bands(snap[np.sign(snap["percentage"]) == s], label) for s in (SELL, BUY)}
        reference = _book_depth_mid(levels, mid, label, chosen)
        prices: dict[int, FloatArray] = {}
        for s, bands in levels.items():
            if placement == "vwap":
                prices[s] = bands.notionals / bands.sizes
            else:
                prices[s] = reference * (1.0 + s * (bands.start_pct + bands.end_pct) / 200.0)
        try:
            return cls(
                prices[SELL],
                levels[SELL].sizes,
                prices[BUY],
                levels[BUY].sizes,
                half_life_s=half_life_s,
                mid=reference,
                on_exhausted=on_exhausted,
                ts_ns=ts_ns,
                source=f"{label} @ {chosen}",
            )
        except DataError:
            raise
        except ValidationError as exc:
            lines = sorted(int(v) for v in snap.index)
            raise DataError(
                f"{label} snapshot {chosen} ({snap.index.name}s {lines[0]}-{lines[-1]})",
                exc.value,
                f"{exc.field} {exc.rule}; try placement='band_mid' with mid=...",
            ) from None


def _row_namer(
    where: Callable[[int], str], rows: npt.NDArray[np.intp]
) -> Callable[[int, str], str]:
    return lambda i, column: f"{where(int(rows[i]))} {column}"


def _last_level_density(label: str, offsets: FloatArray, sizes: FloatArray) -> float:
    """Base units per unit relative move of a side's last level (offsets taken positive)."""
    if sizes.size == 0:
        return 0.0
    previous = float(offsets[-2]) if sizes.size > 1 else 0.0
    gap = float(offsets[-1]) - previous
    if not gap > 0.0:
        raise ValidationError(
            "on_exhausted",
            "extrapolate",
            f"needs the last {label} level apart from the previous level or the mid",
        )
    return float(sizes[-1]) / gap
