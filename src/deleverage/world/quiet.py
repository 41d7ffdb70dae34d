"""Quiet stretches of a world: steps where nothing happens anywhere, taken in bulk.

Most steps of a world's day liquidate nothing on any venue. Such a step still decays every
book's dislocation, steps every venue on the new prices, records a round and the step's rows.
:class:`WorldQuiet` takes a stretch of them at once when it can prove the stretch is quiet:

1. **The books are at rest**: no depth dynamics or snapshot series, no consumed depth, and
   the arbitrageurs cannot trade (inactive, or ``|d| <= cost``: decay only shrinks ``|d|``,
   so they stay out; their capital inflow is replayed). Then each step only decays ``d`` (``d <- d x
   decay``) and the prices follow in closed form: ``P_k = max(X_k (1 + D_k), 1e-12)`` for a
   shared market, ``B_k = max(P_k (1 + d_k), 1e-12)`` for a venue's own book. The path ahead
   is computed in one compiled pass with the same float operations as the step loop.
2. **Every venue counts the steps quiet** (:meth:`~deleverage.venues.protocol.QuietVenue.
   quiet_steps` on the path: the perp engine's quiet bands, GMX's trigger band, Aave's
   health-factor bound, Maker's highest trigger against the OSM and the market); the stretch
   is the shortest count. A venue without the method stops every stretch (0).
3. **Nothing else acts**: no risk layers; traders' wallets that watch nobody (their clock is
   replayed) or whose next look is after the stretch.

The stretch is then applied: books to their last ``d`` (the arbitrageurs remember each
step's), venues through ``advance_quiet`` (marks, journal rows, clocks, accruals), and the
world's per-step rows written as the step loop writes them (one round per step, no
liquidations or flow, the venues' solvency lines). A twin test (skipping on and off) compares
result hashes, venue summaries and journals. A try asks the venues about 16 steps first and
about 8 times more while every step asked about was quiet (16, 128, 1024, 2048), so the
counts cost about what the stretch is long. A try that finds fewer than two quiet steps, or
a stretch shorter than 16, makes the next try wait (1, 2, 4, ... 64 steps); missing a quiet
stretch only costs time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.venues.protocol import QuietPath, VenueStep, quiet_steps_of

if TYPE_CHECKING:
    from deleverage.world.core import World
    from deleverage.world.market import _Displaced

__all__ = ["DEFAULT_ENABLED", "WorldQuiet", "decay_path_nb", "stretch_ends"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_NS = 1_000_000_000
#: Whether new worlds skip quiet stretches (tests switch it off to compare).
DEFAULT_ENABLED = True
#: Steps looked ahead per try.
_CHUNK = 2048
#: Steps the first ask of a try looks at, and the growth of each next ask.
_PROBE = 16
_GROWTH = 8
_MIN_SPAN = 2
_MAX_BACKOFF = 64
#: The floor of a book mid (``VenuePrice.book_mid``).
_MIN_MID = 1e-12


@njit(cache=True)
def decay_path_nb(
    reference: FloatArray, d0: float, decay: float, price: FloatArray, dislocation: FloatArray
) -> None:
    """A book at rest over ``len(reference)`` steps: ``d <- d x decay`` each step, then
    ``price = max(reference (1 + d), 1e-12)`` (the step loop's operations, in its order)."""
    d = d0
    for j in range(reference.shape[0]):
        d = d * decay
        p = reference[j] * (1.0 + d)
        price[j] = _MIN_MID if p < _MIN_MID else p
        dislocation[j] = d


def _at_rest(book: _Displaced) -> bool:
    """Whether a book's steps only decay its dislocation (module docstring, 1)."""
    if book.depth.changes:
        return False
    model = book.price_model
    if model.rule != "book":
        return False
    liquidity = book.book
    if liquidity is not None and liquidity.snapshot()["consumed_depth"] != 0.0:
        return False
    arbs = model.arbitrageurs
    d = model.dislocation
    return d == 0.0 or not arbs.active or abs(d) <= arbs.spec.cost


def _settle(book: _Displaced, dislocation: FloatArray, ts_ns: int) -> None:
    """Leave a book as its steps over a stretch would: its last ``d``, the arbitrageurs'
    memory of each step's ``d``, the resilience clock (no consumed depth: nothing decays)."""
    model = book.price_model
    arbs = model.arbitrageurs
    if arbs.active and arbs.spec.inflow_per_s:
        # Each step with d != 0 called them: their capital grew by the step's inflow.
        add = arbs.spec.inflow_per_s * arbs.dt_s
        capital = arbs.capital
        for _ in range(int(np.count_nonzero(dislocation))):
            capital += add
        arbs.capital = capital
    model.dislocation = float(dislocation[-1])
    seen = arbs._seen
    if seen.maxlen:
        seen.extend(dislocation[-seen.maxlen :].tolist())
    if book.book is not None:
        book.book.recover(ts_ns)


class WorldQuiet:
    """A world's quiet-stretch skipping (see the module docstring).

    ``enabled`` switches it off (every step runs the loop); ``skipped`` counts the steps
    taken in bulk and ``stretches`` the stretches; ``blocked`` counts the tries each reason
    stopped (``books``, ``layers``, ``wallets``, or the venue that counted fewer than two).
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.enabled = DEFAULT_ENABLED
        self.skipped = 0
        self.stretches = 0
        self.blocked: dict[str, int] = {}
        self._wait = 0
        self._backoff = 1
        # The order of the asks (the stretch is the least count whatever the order): the
        # venue whose count bound the last try first (a busy venue stays busy for a while:
        # it stops the next try before the others count), then the world's order.
        names = tuple(world.entries)
        self._orders = {n: (n, *(m for m in names if m != n)) for n in names}
        self._order = names

    def skip(self, k: int) -> int:
        """Take the quiet stretch starting at step ``k`` if there is one; return its length
        (0: step ``k`` runs the step loop)."""
        if not self.enabled or k == 0:
            return 0
        if self._wait > 0:
            self._wait -= 1
            return 0
        n = self._try(k)
        if n < _MIN_SPAN:
            self._wait, self._backoff = self._backoff, min(2 * self._backoff, _MAX_BACKOFF)
            return 0
        if n < _PROBE:  # a short stretch: the next try waits as after a miss (no reset)
            self._wait, self._backoff = self._backoff, min(2 * self._backoff, _MAX_BACKOFF)
        else:
            self._backoff = 1
        return n

    def _try(self, k: int) -> int:
        w = self.world
        if w.layers or w._link_gross:
            return self._block("layers")
        books = w._book_list
        links = w._links
        if not all(_at_rest(m._book) for _, m in books):
            return self._block("books")
        if not all(_at_rest(link._book) for _, _, link, _ in links):
            return self._block("books")
        size = min(_CHUNK, w.n_steps + 1 - k)
        size = self._wallet_limit(k, size)
        if size < _MIN_SPAN:
            return self._block("wallets")
        # A short probe first (a busy venue says so cheaply; only its prices are built),
        # then looks 8 times longer while every step looked at was quiet: the venues' counts
        # cost about a step's work each, so a stretch that ends early costs little.
        limit = min(size, _PROBE)
        while True:
            ts, prices, link_prices, paths = self._paths(k, limit)
            n = self._count(paths, limit)
            if n < limit or limit == size:
                break
            limit = min(size, limit * _GROWTH)
        if n < _MIN_SPAN:
            return 0
        self._apply(k, n, ts[:n], prices, link_prices, paths)
        return n

    def _count(self, paths: dict[str, QuietPath], limit: int) -> int:
        """The least count of quiet steps of the venues on their paths (the venue that bound
        the last try first, each on the steps the others left); 0, with the reason recorded,
        when a venue counts fewer than two."""
        n = limit
        entries = self.world.entries
        for name in self._order:
            count = quiet_steps_of(entries[name].venue, paths[name].head(n))
            if count < n:
                n = count
                self._order = self._orders[name]
                if n < _MIN_SPAN:
                    return self._block(name)
        return n

    def _paths(
        self, k: int, size: int
    ) -> tuple[
        IntArray,
        dict[tuple[str, str], tuple[FloatArray, FloatArray]],
        dict[tuple[str, str], tuple[FloatArray, FloatArray]],
        dict[str, QuietPath],
    ]:
        """The times, the books' prices and dislocations and each venue's path of steps
        ``k .. k + size - 1`` (module docstring, 1)."""
        w = self.world
        books, links = w._book_list, w._links
        steps = np.arange(k, k + size, dtype=np.int64)
        ts = w.start_ns + np.round(steps * w.dt_s * _NS).astype(np.int64)
        # Python's round(k dt 1e9) is round-half-even, as NumPy's: the same stamps.
        prices: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = {}
        for key, market in books:
            book = market._book
            p, d = np.empty(size), np.empty(size)
            decay_path_nb(
                np.ascontiguousarray(market.exogenous[k : k + size], dtype=np.float64),
                book.price_model.dislocation, book.decay, p, d,
            )  # fmt: skip
            prices[key] = (p, d)
        link_prices: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = {}
        for name, asset, link, key in links:
            book = link._book
            p, d = np.empty(size), np.empty(size)
            decay_path_nb(prices[key][0], book.price_model.dislocation, book.decay, p, d)
            link_prices[(name, asset)] = (p, d)
        paths = {}
        for name, entry in w._venue_list:
            assets = entry.venue.assets
            index = np.empty((size, len(assets)))
            book_price = np.empty((size, len(assets)))
            for i, (asset, _market, own_book) in enumerate(w._reads[name]):
                index[:, i] = prices[(w._owner[name], asset)][0]
                own = link_prices[(name, asset)][0] if own_book is not None else index[:, i]
                book_price[:, i] = own
            paths[name] = QuietPath(ts, index, book_price)
        return ts, prices, link_prices, paths

    def _block(self, reason: str) -> int:
        self.blocked[reason] = self.blocked.get(reason, 0) + 1
        return 0

    def _wallet_limit(self, k: int, size: int) -> int:
        """Cut the stretch before the traders' next look when they watch anyone."""
        w = self.world
        wallets = w.wallets
        if wallets is None or not w.channels.traders or wallets.idle:
            return size
        t = np.arange(k, k + size, dtype=np.int64) * w.dt_s
        due = np.flatnonzero(t + 1e-9 >= wallets.next_due_s)
        return int(due[0]) if due.size else size

    def _apply(
        self,
        k: int,
        n: int,
        ts: IntArray,
        prices: dict[tuple[str, str], tuple[FloatArray, FloatArray]],
        link_prices: dict[tuple[str, str], tuple[FloatArray, FloatArray]],
        paths: dict[str, QuietPath],
    ) -> None:
        w = self.world
        last_ts = int(ts[-1])
        last = k + n - 1
        for pending in w._pending.values():  # the stretch's first round clears the credits
            pending.clear()
        w._pending_link = {}
        for key, market in w._book_list:
            p, d = prices[key]
            _settle(market._book, d[:n], last_ts)
            market.price = float(p[n - 1])
            market._x = float(market.exogenous[last])
        for name, asset, link, _key in w._links:
            p, d = link_prices[(name, asset)]
            _settle(link._book, d[:n], last_ts)
            link.reference = float(prices[_key][0][n - 1])
            link.price = float(p[n - 1])
        lines = {}
        for name, entry in w._venue_list:
            venue = entry.venue
            path = paths[name].head(n)
            venue.advance_quiet(path)  # type: ignore[attr-defined]  # counted by quiet_steps
            lines[name] = venue.solvency()
            w._last_inputs[name] = path.inputs(n - 1, venue.assets)
            w._last_steps[name] = VenueStep(
                last_ts, 0, 0.0, dict.fromkeys(venue.assets, 0.0), lines[name]
            )
            w._last_lines[name] = lines[name]
        wallets = w.wallets
        if wallets is not None and w.channels.traders and wallets.idle:
            for step in range(k, k + n):  # their clock, as the loop runs it (nobody to rescue)
                wallets.due(step * w.dt_s)
        shared = np.column_stack([prices[("", a)][0][:n] for a in w.markets])
        dislocation = np.column_stack([prices[("", a)][1][:n] for a in w.markets])
        w.recorder.quiet_steps(k, ts, shared, dislocation, lines)
        w.step_index, w.ts_ns = last, last_ts
        w.round_index += n
        self.skipped += n
        self.stretches += 1


def stretch_ends(k: int, n: int, every: int) -> bool:
    """Whether steps ``k .. k + n - 1`` hold a multiple of ``every`` (a progress report)."""
    return math.floor((k + n - 1) / every) > math.floor((k - 1) / every)
