"""Quiet steps of an Aave market (:class:`~deleverage.venues.protocol.QuietVenue`).

A step is quiet when no account is flagged and the §A6 bound the step tests first says no
account can be under ``HF = 1``: the prices' largest ratio to the reference prices over their
smallest is at most the least reference health factor (or, with the narrowed index, the outer
bound stays within its margin and the inner bound under the narrowed floor). Then the step
only advances the chain and records the prices; :func:`advance_quiet` replays that.

With accounts flagged (under water, no keeper takes them: after a crash, for hours), a step
is quiet when the accounts under 1 are exactly the flagged ones and no keeper can act on
them (:mod:`.quiet_nb`, §A10: the narrowed index, the plans and §D3's skip bound with the
gas price of the venue's chain advanced along the path on a copy and the keepers' capital
as proceeds fall due). Such a step also adds the flagged accounts' time under water and
its missed opportunities, settles the keepers' proceeds due when it consults them, and
leaves the flagged accounts in the order of its search; :func:`advance_quiet` replays that.
A world asks about growing heads of one path and then applies a head of it: :class:`Walks`
keeps what the walks found while the venue's state stays, so each step is previewed and
walked once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from deleverage.protocols.aave.math import LIQUIDATABLE
from deleverage.protocols.aave.quiet_nb import flagged_quiet_nb
from deleverage.protocols.chain import GWEI, NS_PER_S
from deleverage.venues.protocol import QuietPath

if TYPE_CHECKING:
    from deleverage.protocols.aave.venue import AaveVenue

__all__ = ["advance_quiet", "quiet_steps"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: A walk's state after its steps: the flag blocks, the flagged accounts, the prices of the
#: plans in memory and whether those are of the state.
State = tuple[IntArray, IntArray, FloatArray, bool]
#: Steps of the first look with flagged accounts, and the growth of each next look.
_FIRST_LOOK: Final = 32
_GROWTH: Final = 8


def _reserve_prices(venue: AaveVenue, path: QuietPath, *, book: bool = False) -> FloatArray:
    """Each step's oracle (``book``: market) price per reserve (quote reserves 1), as the
    step's ``p_list`` (``pm``)."""
    cols = venue._asset_of_list
    source = path.book_prices if book else path.index_prices
    p = np.ones((len(path.ts_ns), len(cols)))
    for r, j in enumerate(cols):
        if j >= 0:
            p[:, r] = source[:, j]
    return p


def _bound(p: FloatArray, ref: list[float]) -> FloatArray:
    ratio = p / np.array(ref)  # the step's ``x / r``, element by element
    out: FloatArray = ratio.max(axis=1) / ratio.min(axis=1)
    return out


def quiet_steps(venue: AaveVenue, path: QuietPath, *, touched_limit: int) -> int:
    """Leading quiet steps of ``path`` (module docstring; ``touched_limit``: the venue's
    count of touched accounts past which a step runs a full pass); changes nothing."""
    if venue._ref is None or venue._touched.size > touched_limit:
        return 0
    if venue._flagged.size or _walks(venue):
        return _flagged_walk(venue, path)
    p = _reserve_prices(venue, path)
    bound = _bound(p, venue._ref_list)
    quiet = bound <= venue._hf_floor
    if venue._inner_ref is not None:
        inner = _bound(p, venue._inner_ref)
        quiet |= (bound <= venue._inner_limit) & (inner <= venue._inner_floor)
    stop = np.flatnonzero(~quiet)
    return int(stop[0]) if stop.size else len(quiet)


def _walks(venue: AaveVenue) -> bool:
    """Whether the steps are counted by the walk of :mod:`.quiet_nb` (a narrowed index and
    the venue's own chain): then accounts may cross 1 within a stretch."""
    return venue._inner_ref is not None and venue._own_chain


def _flagged_walk(venue: AaveVenue, path: QuietPath) -> int:
    """The quiet steps of ``path`` by :func:`.quiet_nb.flagged_quiet_nb`, looked at on
    growing prefixes (the chain's preview costs a Python call a step: a busy stretch ends
    early); 0 without a narrowed index or an own chain (a step on the outer index may re-sort
    it, a shared chain may have moved between this venue's steps). The walks of one state
    of the venue go on from what the last ones found (:class:`Walks`)."""
    if not _walks(venue):
        return 0
    walks = _walks_on(venue, path)
    n = len(path.ts_ns)
    m = min(n, _FIRST_LOOK)
    while True:
        found = walks.walk(venue, path, m)
        if found < m or m == n:
            return found
        m = min(n, m * _GROWTH)


def _key(venue: AaveVenue) -> tuple[object, ...]:
    """What a walk reads besides the path and the venue's own state (its ``_epoch``, moved
    by every change): the chain and the keepers (either may be shared)."""
    chain, keepers = venue._chain, venue._keepers
    return (
        venue._epoch, chain.ts_ns, chain.block, chain.base_fee_gwei, chain.variance_per_s,
        chain.pending_gas, chain.native_price, chain.gas_price_gwei, keepers.capital.tobytes(),
        keepers.received.tobytes(), keepers.pending_proceeds,
    )  # fmt: skip


def _walks_on(venue: AaveVenue, path: QuietPath) -> Walks:
    """The venue's :class:`Walks` when they are of its state now and their path agrees with
    ``path`` on their common steps, else new ones (kept on the venue)."""
    key = _key(venue)
    walks = venue._walks
    if walks is None or walks.key != key or not walks.agrees(venue, path):
        walks = Walks(key, venue)
        venue._walks = walks
    return walks


class Walks:
    """What the walks of one state of a venue found on one path: a world asks about growing
    heads of the same path (16, 128, ... steps, the venue's own looks 32, 256, ... within
    them), then applies a head of it. Without this every ask walks the path from its first
    step, previewing the chain from the start again (two to four times a stretch).

    Kept: the path's steps seen (times, oracle, market and native prices), their chain
    preview (blocks, gas prices) and the copy of the chain at the last of them (a longer head
    previews on from there, :meth:`~deleverage.protocols.chain.Chain.preview_from`), each
    step's figures the walk wrote (plans that could run, keepers consulted, accounts flagged
    before it), the walk's state after each head found all quiet (a longer head walks on from
    the longest one within it: :func:`.quiet_nb.flagged_quiet_nb`'s ``start``) and the first
    step found not quiet. A step's figures depend only on the steps before it, so every
    answer is the one a walk from step 0 gives."""

    def __init__(self, key: tuple[object, ...], venue: AaveVenue) -> None:
        self.key = key
        r_count = len(venue._asset_of_list)
        self.ts = np.empty(0, dtype=np.int64)
        self.oracle = np.empty((0, r_count))
        self.market = np.empty((0, r_count))
        self.natives = np.empty(0)
        self.blocks = np.empty(0, dtype=np.int64)
        self.gas = np.empty(0)
        self.end = venue._chain
        self.n_ok = np.empty(0, dtype=np.int64)
        self.consults = np.empty(0, dtype=np.bool_)
        self.sizes = np.empty(0, dtype=np.int64)
        memo = venue._memo_key
        valid = memo is not None and memo[1] == venue._version
        prices = np.array(memo[0] if memo is not None else venue._ref_list, dtype=np.float64)
        self.states: dict[int, State] = {0: (venue._since, venue._flagged, prices, valid)}
        self.stop: int | None = None

    def agrees(self, venue: AaveVenue, path: QuietPath) -> bool:
        """Whether ``path``'s steps are the ones seen, as far as both go."""
        n = min(len(self.ts), len(path.ts_ns))
        if not np.array_equal(self.ts[:n], path.ts_ns[:n]):
            return False
        head = path.head(n)
        return np.array_equal(self.oracle[:n], _reserve_prices(venue, head)) and np.array_equal(
            self.market[:n], _reserve_prices(venue, head, book=True)
        )

    def _cover(self, venue: AaveVenue, path: QuietPath, n: int) -> None:
        """See the first ``n`` steps of ``path`` (which agrees): preview the new ones."""
        seen = len(self.ts)
        if n <= seen:
            return
        rest = QuietPath(path.ts_ns[seen:n], path.index_prices[seen:n], path.book_prices[seen:n])
        natives = rest.book_prices[:, venue._native_index]  # the step's ``native``
        blocks, gas, _, self.end = self.end.preview_from(rest.ts_ns.tolist(), natives.tolist())
        new = n - seen
        self.ts = np.concatenate((self.ts, rest.ts_ns))
        self.oracle = np.concatenate((self.oracle, _reserve_prices(venue, rest)))
        self.market = np.concatenate((self.market, _reserve_prices(venue, rest, book=True)))
        self.natives = np.concatenate((self.natives, natives))
        self.blocks = np.concatenate((self.blocks, blocks))
        self.gas = np.concatenate((self.gas, gas))
        self.n_ok = np.concatenate((self.n_ok, np.zeros(new, dtype=np.int64)))
        self.consults = np.concatenate((self.consults, np.zeros(new, dtype=np.bool_)))
        self.sizes = np.concatenate((self.sizes, np.zeros(new, dtype=np.int64)))

    def walk(self, venue: AaveVenue, path: QuietPath, n: int) -> int:
        """The quiet steps among the first ``n`` of ``path`` (which agrees); after it, when
        all are, :attr:`states` holds the walk's state after them."""
        if self.stop is not None and self.stop < n:
            return self.stop
        m = max(k for k in self.states if k <= n)
        if m == n:
            return n
        self._cover(venue, path, n)
        since, flagged, memo, valid = self.states[m]
        keepers = venue._keepers
        blocks = self.blocks[:n]
        starts, capitals = keepers.capital_path(blocks)
        count, since, flagged, memo, valid = flagged_quiet_nb(
            venue._c, venue._d, venue._lt_weight, venue._lt, venue._bonus, venue._fee,
            venue._plan_constants, LIQUIDATABLE, self.oracle[:n], self.market[:n], memo, valid,
            np.array(venue._ref_list), venue._hf_floor, np.array(venue._inner_ref),
            venue._inner_limit, venue._inner_floor, venue._inner_sorted, venue._inner_order,
            venue._inner_c, venue._inner_d, venue._inner_touched, venue._inner_touched_hf,
            flagged, since, blocks, self.gas[:n], self.natives[:n], GWEI, starts, capitals,
            keepers.latency_blocks, keepers.gas_units, keepers.min_profit, venue._depth, m,
            self.n_ok, self.consults, self.sizes,
        )  # fmt: skip
        if count == n:
            self.states[n] = (since, flagged, memo, valid)
        else:
            self.stop = int(count)
        return int(count)


def _search(venue: AaveVenue, p_list: list[float]) -> IntArray:
    """The accounts under 1 at ``p_list`` in the step's order (its ``_liquidatable`` while
    the narrowed index serves, which a walk's steps leave as it is)."""
    ratio = [x / r for x, r in zip(p_list, venue._ref_list, strict=True)]
    if max(ratio) / min(ratio) <= venue._hf_floor:
        return np.empty(0, dtype=np.int64)
    return venue._inner_liquidatable(p_list)


def advance_quiet(venue: AaveVenue, path: QuietPath) -> None:
    """Take the quiet steps of ``path``: the chain, the clock, the prices and the memo key,
    as the steps one by one leave them (with the walk of :mod:`.quiet_nb`: the flagged
    accounts' time under water, the missed opportunities, the keepers' settlements, the
    flag blocks and the flagged accounts in the order of the last search too)."""
    ts = path.ts_ns.tolist()
    chain = venue._chain
    walked = venue._flagged.size > 0 or _walks(venue)
    n_ok: list[int] = []
    consults: list[bool] = []
    sizes: list[int] = []
    if walked:
        walks = _walks_on(venue, path)
        count = walks.walk(venue, path, len(ts))
        assert count == len(ts), "advance_quiet takes only steps quiet_steps counted"
        since = walks.states[count][0]
        n_ok = walks.n_ok[:count].tolist()
        consults = walks.consults[:count].tolist()
        sizes = walks.sizes[:count].tolist()
    native = path.book_prices[:, venue._native_index].tolist()  # the market price: the book's
    for j, (t, price) in enumerate(zip(ts, native, strict=True)):
        if t >= chain.ts_ns:  # (a chain shared with a venue stepped first: advanced already)
            chain.advance(t, price)
        if walked:
            if venue._last_ts >= 0 and sizes[j]:
                dt_s = (t - venue._last_ts) / NS_PER_S
                venue.liquidatable_account_seconds += dt_s * sizes[j]
            venue._last_ts = t
            if consults[j]:
                venue._keepers.settle(chain.block)
                venue.missed_opportunities += n_ok[j]
    venue._last_ts = ts[-1]
    p = _reserve_prices(venue, path)
    keys = [(tuple(row), venue._version) for row in p.tolist()]
    changed = [j for j, key in enumerate(keys) if key != (keys[j - 1] if j else venue._memo_key)]
    if changed:  # a step with other prices re-keys it (and, walked, searches again)
        venue._memo_key, venue._memo_plan = keys[-1], None
        if walked:
            venue._flagged = _search(venue, list(keys[changed[-1]][0]))
            venue._since[:] = since
    venue._price = np.array(keys[-1][0])
    venue._moved()
