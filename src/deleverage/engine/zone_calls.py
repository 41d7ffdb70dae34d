"""Isolated margin calls that cost what changed: the zone's statuses kept between risk steps.

Every risk step finds the isolated positions under maintenance and those in the warning zone
(ratio ``MM / E`` at the call level or above), and updates the called set: a position is
called when it enters the zone, once per episode, and leaves the set when it is neither in the
zone nor under maintenance (:meth:`.RiskEngine._margin_calls`). The sorted zone-price index
(:class:`.LevelIndex`) makes the scan cost the zone, not the book; after a crash the zone holds
tens of thousands of positions, and every re-mark read them all again although only a few
could change status.

:class:`ZoneTracker` keeps, per account, the status the scan's exact test gave at the last
mark it looked at (0: neither, 1: under maintenance, 2: in the warning zone), and at a new mark
evaluates only the positions whose status can differ. Where maintenance is continuous
(:attr:`.TierArrays.continuous`) and every tier's rate is below the call level, the zone of a
position is one half-line bounded by its zone price ``z`` at the call level, and maintenance is
broken on the half-line beyond its liquidation price ``z1`` (level 1). A position whose zone
price is more than :data:`CERTAIN_RTOL` (relative) away from both marks, on the same side of
both, has the same zone status at both; likewise for ``z1``. So the step evaluates exactly
(the scan's own arithmetic, ``_classify_nb``):

- the entries of the call-level index whose zone price lies between the old and the new mark,
  each end widened by ``CERTAIN_RTOL`` (a range of each sorted side, two binary searches);
- the entries of a second index, on liquidation prices (this class: a :class:`.LevelIndex` at
  level 1 that the ledger touches like the others), that can be under maintenance at either
  mark (a prefix of each side: few after the batch round liquidated them);
- the dirty entries of both indexes whose live zone price passes the same tests, and every
  position touched since the last evaluation (fills, margin moves, closes, new accounts).

Every other position keeps its status. The positions under maintenance are the evaluated ones
with status 1 (the only ones that can be); the called set changes only at accounts whose status
changed since the last call update (kept in a pending list): status 0 leaves the set, status 2
joins it when not called (a ``MarginCall`` with the ratio the scan computes), status 1 keeps
membership. That is ``calls_update_nb``'s rule per account, so ``risk.called_isolated`` is the
same array, in the same order, as the full scan's.

A mark that crosses more entries than the zone holds (a crash across ten thousand liquidation
prices: the band's scattered reads cost several times the zone's walk over the sorted copies)
takes the index's walk instead (:data:`WALK_WEIGHT`) and the statuses start again from it.
Anything that can move every position (an index rebuilt, funding, a tier change), a called set
replaced by someone else (the quiet stretches write it), or a book whose zone is not one
half-line sends the tracker back to the full scan, from which it starts again
(:meth:`ZoneTracker.resync`). ``check_invariants`` compares every tracked scan and call update
with the full pass (tests/unit/engine/test_zone_calls.py does the same over random books and
mark paths).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from deleverage.engine import level_index as _levels
from deleverage.engine.level_index import LevelIndex
from deleverage.engine.level_scan import refresh_dirty_nb, refresh_pair_nb
from deleverage.engine.levels import index_zone_prices
from deleverage.engine.zone_kernels import calls_apply_nb, refresh_calls_nb, zone_step_nb
from deleverage.errors import InvariantError
from deleverage.spec import TierArrays

if TYPE_CHECKING:
    from deleverage.engine.scans import MarginScans

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Relative distance from a mark beyond which a zone price certainly decides the status
#: (ten times the index's filter slack ``ZONE_RTOL``: a wider band only evaluates more).
CERTAIN_RTOL = 1e-6
#: Touched accounts logged before the tracker stops logging and starts again from a full scan.
LOG_LIMIT = 1 << 20
#: A step takes the index's walk of the zone (and the statuses start again from it) where
#: this many times the entries it would evaluate exceed the entries the walk reads: an entry
#: of the band costs scattered reads of the live columns and the statuses, one of the walk a
#: sequential read of the copies kept in sorted order (a crash that carries the mark across
#: ten thousand liquidation prices: 2 ms against 0.3 ms at 10^6 positions). 0: never.
WALK_WEIGHT = 2.0
#: ... and where they are at least this many, and a 1/``WALK_SHARE`` share of the accounts
#: (the restart clears the statuses and the called flags: two passes over the accounts). A
#: walk whose index has no row copies yet (after a sort or a compaction) first copies the rows
#: of every entry: those count as entries of the walk.
WALK_MIN = 1024
WALK_SHARE = 256
#: :func:`.zone_step_nb`'s arguments: the first of :func:`.zone_calls_nb`'s (the call
#: update's five follow them).
STEP_ARGS = 27


_EMPTY = np.zeros(0, dtype=np.int64)
_TRACKABLE: dict[tuple[int, float], tuple[TierArrays, bool]] = {}


def trackable(tiers: TierArrays, call_level: float, mark: float) -> bool:
    """Whether the zone of every isolated position is one half-line at the call level and
    at maintenance (continuous maintenance, every rate below the call level, ``call_level <
    1``), the condition for :class:`ZoneTracker`; remembered per tier table."""
    if not (math.isfinite(mark) and mark > 0.0):
        return False
    key = (id(tiers), call_level)
    hit = _TRACKABLE.get(key)
    if hit is None or hit[0] is not tiers:
        ok = (
            tiers.continuous
            and 0.0 < call_level < 1.0
            and bool(np.all(tiers.mmr < call_level))
        )  # fmt: skip
        if len(_TRACKABLE) > 256:
            _TRACKABLE.clear()
        hit = _TRACKABLE[key] = (tiers, ok)
    return hit[1]


class ZoneTracker(LevelIndex):
    """The liquidation-price index of one market (a :class:`.LevelIndex` at level 1, kept in
    the ledger's indexes so that it is touched and invalidated with them) and the statuses of
    the isolated positions at one call level (module docstring)."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.call_level = math.nan
        self.synced = False  # statuses valid (from a full scan, then kept)
        self.calls_synced = False  # the called set agrees with the statuses
        self.called_ref: IntArray | None = None  # the called set the statuses agree with
        self.mark = math.nan  # the mark of the last evaluation
        self.version = -1  # the state version of the last evaluation
        self.marks = (-1, -1, -1)  # (call index id, its rebuilds, own rebuilds) at sync
        self.tiers: TierArrays | None = None
        self.status = np.zeros(0, dtype=np.int8)
        self.is_called = np.zeros(0, dtype=np.bool_)
        self.pending_flag = np.zeros(0, dtype=np.bool_)
        self._scratch = np.zeros(0, dtype=np.bool_)
        self.pending: list[IntArray] = []
        self.log: list[IntArray] = []
        self.n_log = 0
        self.checked = (-1, -1, -1, -1)  # index counters when the prices were last found finite
        self._nan = np.full(64, np.nan)  # the dirty entries' prices (never written)
        #: The called set whose update the next step makes too (:meth:`ask_for`), and
        #: that update (the set it started from, the new set, the new accounts, their ratios)
        #: until :meth:`calls` takes it.
        self.ask: IntArray | None = None
        self._made: tuple[IntArray, IntArray, IntArray, FloatArray] | None = None

    # ---------------------------------------------------------------- changes
    def touch(self, accounts: IntArray) -> None:
        """Log the touched accounts for the statuses, then index them as dirty."""
        if self.synced:
            acc = np.asarray(accounts, dtype=np.int64)
            self.log.append(acc)
            self.n_log += len(acc)
            if self.n_log > LOG_LIMIT:
                self.synced = False
        super().touch(accounts)

    def invalidate(self) -> None:
        """Every position may have moved: the statuses start again from a full scan."""
        self.synced = False
        super().invalidate()

    def _refresh_dirty(
        self, size: FloatArray, entry: FloatArray, margin: FloatArray, tiers: TierArrays
    ) -> None:
        """:meth:`.LevelIndex._refresh_dirty` without pricing: the dirty positions of this
        index (the few live ones a fill touched) take NaN liquidation prices, which every
        reader treats as "always a candidate" (:func:`zone_step_nb` evaluates them each
        step); a compaction prices them first (:meth:`_compact`)."""
        touched = self._take_touched()
        args = (touched, self.dirty_flag, self._seen, size, self._dirty_acc, self._dirty_price)
        newly, live, acc, _ = refresh_dirty_nb(*args)
        if newly < 0:  # accounts opened since the sort: grow the flags, then take them in
            flags = np.zeros(int(touched.max()) + 1, dtype=np.bool_)
            flags[: len(self.dirty_flag)] = self.dirty_flag
            self.dirty_flag = flags
            self._seen = np.zeros(len(flags), dtype=np.bool_)
            args = (touched, flags, self._seen, size, self._dirty_acc, self._dirty_price)
            newly, live, acc, _ = refresh_dirty_nb(*args)
        if len(live):
            acc = np.concatenate([acc, live])
        self._take_dirty(newly, acc, self._nan, size, entry, margin, tiers)

    def _take_dirty(
        self,
        newly: int,
        acc: IntArray,
        price: FloatArray,
        size: FloatArray,
        entry: FloatArray,
        margin: FloatArray,
        tiers: TierArrays,
    ) -> None:
        """:meth:`.LevelIndex._take_dirty` with NaN prices (``price`` ignored); a compaction
        prices the dirty positions first."""
        self._n_flagged += newly
        self._dirty_acc = acc
        if len(self._nan) < len(acc):
            self._nan = np.full(2 * len(acc), np.nan)
        self._dirty_price = self._nan[: len(acc)]
        if self.overfull(len(acc)):
            self._dirty_price = index_zone_prices(
                size[acc], entry[acc], margin[acc], self.level, tiers
            )
            self._compact(size, len(self.dirty_flag))

    def _refresh_pair(
        self, call_index: LevelIndex, size: FloatArray, entry: FloatArray, margin: FloatArray,
        tiers: TierArrays,
    ) -> None:  # fmt: skip
        """Both indexes' refreshes (``call_index`` and this one) where both have touched
        accounts: one :func:`.refresh_pair_nb` call (the tracker runs on continuous
        maintenance only, whose prices it computes), else each index's own."""
        if not (call_index._touched and self._touched and tiers.continuous):
            for index in (call_index, self):
                if index._touched:
                    index._refresh_dirty(size, entry, margin, tiers)
            return
        c_touched, l_touched = call_index._take_touched(), self._take_touched()
        newly_c, c_acc, c_price, newly_l, l_acc = refresh_pair_nb(
            c_touched, call_index.dirty_flag, call_index._seen, call_index._dirty_acc,
            call_index._dirty_price, call_index.level, tiers.mmr, tiers.cum, l_touched,
            self.dirty_flag, self._seen, self._dirty_acc, self._dirty_price, size, entry, margin,
        )  # fmt: skip
        if newly_c < 0:  # an account beyond the flags: the one-index refreshes grow them
            call_index._touched, self._touched = [c_touched], [l_touched]
            for index in (call_index, self):
                index._refresh_dirty(size, entry, margin, tiers)
            return
        call_index._take_dirty(newly_c, c_acc, c_price, size, entry, margin, tiers)
        self._take_dirty(newly_l, l_acc, self._nan, size, entry, margin, tiers)

    # ---------------------------------------------------------------- state
    def _grow(self, n: int) -> None:
        if len(self.status) < n:
            for name in ("status", "is_called", "pending_flag", "_scratch"):
                old = getattr(self, name)
                new = np.zeros(n, dtype=old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)

    def current(self, call_index: LevelIndex, tiers: TierArrays, call_level: float) -> bool:
        """Whether the statuses still hold for this call level, index and tiers."""
        return (
            self.synced
            and self.valid
            and call_index.valid
            and self.call_level == call_level
            and self.tiers is tiers
            and self.marks == (id(call_index), call_index.rebuilds, self.rebuilds)
        )

    def resync(
        self,
        call_index: LevelIndex,
        tiers: TierArrays,
        call_level: float,
        mark: float,
        n: int,
        scan: dict[str, Any],
        version: int,
    ) -> None:
        """Take the statuses from a full scan at ``mark``; the called set is checked against
        them at the next call update."""
        self._grow(n)
        self.status[:] = 0
        self.status[scan["warn"]] = 2
        self.status[scan["below"]] = 1
        for part in self.pending:
            self.pending_flag[part] = False
        self.pending = []
        self._made = None
        self.log = []
        self.n_log = 0
        self.call_level = call_level
        self.tiers = tiers
        self.mark = mark
        self.version = version
        self.marks = (id(call_index), call_index.rebuilds, self.rebuilds)
        self.synced = True
        self.calls_synced = False

    def finite(self, call_index: LevelIndex) -> bool:
        """Whether every zone price of both indexes is finite (checked again after a sort or
        a compaction changed the sorted orders)."""
        counters = (
            call_index.rebuilds, call_index.compactions, self.rebuilds, self.compactions
        )  # fmt: skip
        if counters == self.checked:
            return True
        for index in (call_index, self):
            if not (
                np.isfinite(index.long_neg_price[index.long_head :]).all()
                and np.isfinite(index.short_price[index.short_head :]).all()
            ):
                return False
        self.checked = counters
        return True

    def step(
        self,
        call_index: LevelIndex,
        mark: float,
        cols: Any,
        kind: npt.NDArray[np.int8],
        tiers: TierArrays,
    ) -> tuple[IntArray, FloatArray, FloatArray] | None:
        """Evaluate the positions that can have changed since the last mark (both indexes
        refreshed first); return the positions under maintenance, ascending, with their
        equity and maintenance (the full scan's ``below`` columns). None, with nothing
        evaluated, where the index's walk of the zone is cheaper (:data:`WALK_WEIGHT`): the
        caller takes it and starts the statuses again from it (:meth:`resync`)."""
        ask, self.ask = self.ask, None
        self._made = None  # not taken: ``called_ref`` is the set the flags follow already
        if ask is not None and self.calls_synced:
            made = self.calls_step(call_index, mark, cols, kind, tiers, ask)
            if made is None:
                return None
            self._made = (ask, made[3], made[4], made[5])
            return made[0], made[1], made[2]
        size, entry, margin = cols.size, cols.entry, cols.isolated_margin
        if call_index._touched or self._touched:
            self._refresh_pair(call_index, size, entry, margin, tiers)
        if len(self.status) < len(size):
            self._grow(len(size))
        touched = (
            np.concatenate(self.log) if len(self.log) > 1
            else self.log[0] if self.log else np.zeros(0, dtype=np.int64)
        )  # fmt: skip
        self.log = []
        self.n_log = 0
        step = (call_index, touched, mark, cols, kind, tiers)
        below, below_e, below_m, changed, heads, walk = zone_step_nb(*self._step_args(*step))
        if walk:
            self.synced = False  # the touched log is spent: only a restart brings it back
            return None
        self._moved(mark, heads[0], heads[1])
        if len(changed):
            self.pending.append(changed)
        return below, below_e, below_m

    def calls_step(
        self,
        call_index: LevelIndex,
        mark: float,
        cols: Any,
        kind: npt.NDArray[np.int8],
        tiers: TierArrays,
        called: IntArray,
    ) -> tuple[IntArray, FloatArray, FloatArray, IntArray, IntArray, FloatArray] | None:
        """:meth:`step` with the update of the called set ``called`` (the calls synced):
        the step's three ``below`` columns, then the new called set, the new accounts and
        their ratios (the set the flags follow from now on), in one :func:`.refresh_calls_nb`
        call with both indexes' refreshes where both have touched accounts. None as
        :meth:`step` (the walk: nothing evaluated, the pending changes kept).

        One frame, the arguments read once into locals: it runs at every margin-call step
        (7,358 on the isolated day; the frames and helper calls it replaced cost ~10 us a
        call). Where a refresh finds an index to compact or flags to grow (codes 2 and 3),
        the refreshes are made the usual way and the kernel runs again without them (the
        arguments, :meth:`_calls_args`, read again: the dirty entries moved)."""
        c = call_index
        size = cols.size
        c_t, l_t = c._touched, self._touched
        refresh = bool(c_t and l_t) and tiers.continuous
        if (c_t or l_t) and not refresh:
            self._refresh_pair(c, size, cols.entry, cols.isolated_margin, tiers)
        if len(self.status) < len(size):
            self._grow(len(size))
        log = self.log
        touched = np.concatenate(log) if len(log) > 1 else log[0] if log else _EMPTY
        self.log = []
        self.n_log = 0
        parts = self.pending
        pending = np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else _EMPTY
        out = None
        if refresh:
            c_touched, l_touched = c._take_touched(), self._take_touched()
            need = len(self._dirty_acc) + len(l_touched)
            if len(self._nan) < need:
                self._nan = np.full(2 * need, np.nan)
            head = (
                c_touched, c._seen, c.level, c._n_flagged, c.dirty_limits(), l_touched,
                self._seen, self._n_flagged, self.dirty_limits(), self._nan, True,
            )  # fmt: skip
            out = refresh_calls_nb(
                *self._calls_args(head, c, touched, mark, cols, kind, tiers, called, pending)
            )
            code = out[0]
            newly_c, c_acc, c_price, newly_l, l_acc = out[1]
            if code == 3:  # an account beyond the flags: the one-index refreshes grow them
                c._touched, self._touched = [c_touched], [l_touched]
                self._refresh_pair(c, size, cols.entry, cols.isolated_margin, tiers)
                out = None
            elif code == 2:  # an index compacts (:meth:`_take_dirty`)
                entry, margin = cols.entry, cols.isolated_margin
                c._take_dirty(newly_c, c_acc, c_price, size, entry, margin, tiers)
                self._take_dirty(newly_l, l_acc, self._nan, size, entry, margin, tiers)
                out = None
            else:
                c._n_flagged += newly_c
                c._dirty_acc, c._dirty_price = c_acc, c_price
                self._n_flagged += newly_l
                self._dirty_acc, self._dirty_price = l_acc, self._nan[: len(l_acc)]
        if out is None:  # no refresh, or the refreshes made the usual way
            head = (
                _EMPTY, c._seen, c.level, c._n_flagged, (0, 0), _EMPTY, self._seen,
                self._n_flagged, (0, 0), self._nan, False,
            )  # fmt: skip
            out = refresh_calls_nb(
                *self._calls_args(head, c, touched, mark, cols, kind, tiers, called, pending)
            )
        code, _, below, below_e, below_m, new, fresh, ratio, head_long, head_short = out
        if code == 1:  # the walk
            self.synced = False  # the touched log is spent: only a restart brings it back
            return None
        self.pending = []
        self.called_ref = new
        self._moved(mark, head_long, head_short)
        return below, below_e, below_m, new, fresh, ratio

    def _calls_args(
        self,
        head: tuple[Any, ...],
        c: LevelIndex,
        touched: IntArray,
        mark: float,
        cols: Any,
        kind: npt.NDArray[np.int8],
        tiers: TierArrays,
        called: IntArray,
        pending: IntArray,
    ) -> tuple[Any, ...]:
        """:func:`.refresh_calls_nb`'s arguments: its refresh ones ``head``, then those of
        :func:`.zone_calls_nb` at the indexes' current state: the step's (the call index
        ``c``'s sides (sorted key, accounts, head) and dirty entries (flags, any flagged,
        accounts, prices), then this index's, the live columns, the marks, tiers and
        tolerances, the statuses and flags, and the sorted entries whose row copies the call
        index's walk would make first: all of them after a sort or a compaction, none after)
        and the call update's (the called set, the pending accounts, the call flags, the set
        the flags follow and whether ``called`` replaced it). One expression, no helper
        calls: it runs at every margin-call step. One tuple (``head`` and these), which the
        kernel's call takes as it is (a call that unpacks a tuple among other arguments
        builds a list first)."""
        old = self.called_ref
        if old is None:
            old = _EMPTY
        return head + (  # noqa: RUF005 (unpacking would build a list first)
            (c.long_neg_price, c.long_acc, c.long_head), (c.short_price, c.short_acc, c.short_head),
            (c.dirty_flag, c._n_flagged != 0, c._dirty_acc, c._dirty_price),
            (self.long_neg_price, self.long_acc, self.long_head),
            (self.short_price, self.short_acc, self.short_head),
            (self.dirty_flag, self._n_flagged != 0, self._dirty_acc, self._dirty_price),
            touched, cols.size, cols.entry, cols.isolated_margin, cols.mode, kind, self.mark, mark,
            tiers.floor, tiers.mmr, tiers.cum, float(tiers.min_margin), self.call_level,
            CERTAIN_RTOL, self.status, self._scratch, self.pending_flag, _levels.ZONE_RTOL,
            WALK_WEIGHT, max(WALK_MIN, len(self.status) // WALK_SHARE),
            0 if c._rows is not None else len(c.long_acc) + len(c.short_acc), called, pending,
            self.is_called, old, called is not old,
        )  # fmt: skip

    def _moved(self, mark: float, head_long: int, head_short: int) -> None:
        """The statuses now hold at ``mark``; the liquidation index's heads after the step."""
        self.mark = mark
        if head_long != self.long_head or head_short != self.short_head:
            self.long_head, self.short_head = int(head_long), int(head_short)
            self._rows = None  # entries moved: the index's own scan copies its rows again

    def _step_args(
        self,
        call_index: LevelIndex,
        touched: IntArray,
        mark: float,
        cols: Any,
        kind: npt.NDArray[np.int8],
        tiers: TierArrays,
    ) -> tuple[Any, ...]:
        """:func:`.zone_step_nb`'s arguments at the indexes' current state: the first
        :data:`STEP_ARGS` of :meth:`_calls_args` (no call update), the one place they are
        spelled out."""
        args = self._calls_args((), call_index, touched, mark, cols, kind, tiers, _EMPTY, _EMPTY)
        return args[:STEP_ARGS]

    def ask_for(self, called: IntArray) -> bool:
        """Let the next tracked step update the called set ``called`` too (one compiled
        call: :func:`.refresh_calls_nb`, which adopts ``called`` where another path replaced
        the set), where the statuses and the call flags are kept; the caller clears ``ask``
        once the scan is taken (a cached scan runs no step) and takes the update from
        :meth:`calls`. Whether it was asked."""
        if not self.calls_synced:
            return False
        self.ask = called
        return True

    def sync_calls(self, called: IntArray) -> None:
        """The called set agrees with the statuses from now on (after a full call update)."""
        if self.calls_synced and self.called_ref is not None:
            self.is_called[self.called_ref] = False  # the set it agreed with
        else:
            self.is_called[:] = False
        self.is_called[called] = True
        for part in self.pending:
            self.pending_flag[part] = False
        self.pending = []
        self._made = None
        self.called_ref = called
        self.calls_synced = True

    def adopt(self, called: IntArray) -> None:
        """Another path replaced the called set (a quiet stretch, a market without isolated
        traders): follow ``called`` from now on. The accounts in one set and not the other
        are checked at the next update like changed accounts: the update's rule needs no
        more (a member at status 0 leaves, a non-member at 2 joins). Every account not
        pending agrees with the old set (status 0: not a member; 2: a member), since its
        status has not changed since the update that last checked it, so one in both sets
        agrees with the new set too; a quiet stretch calls or releases a few accounts of
        thousands."""
        old = self.called_ref if self.called_ref is not None else np.zeros(0, dtype=np.int64)
        in_new = self._scratch  # all False
        in_new[called] = True
        old_only = old[~in_new[old]]
        in_new[called] = False
        new_only = called[~self.is_called[called]]  # the flags still mark the old set
        self.is_called[old_only] = False
        self.is_called[new_only] = True
        for part in (old_only, new_only):  # each a set of distinct accounts
            extra = part[~self.pending_flag[part]]
            self.pending_flag[extra] = True
            self.pending.append(extra)
        self.called_ref = called

    def calls(
        self, called: IntArray, mark: float, cols: Any, tiers: TierArrays
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """The called set after the status changes since the last update, the new accounts
        (ascending) and their ratios: the update the step made (:meth:`ask_for`) where it
        started from ``called``, else :func:`calls_apply_nb` (a called set replaced by
        another path adopted first)."""
        made, self._made = self._made, None
        if made is not None and made[0] is called:
            return made[1], made[2], made[3]
        if self.called_ref is not called:
            self.adopt(called)
        parts = self.pending
        pending = (
            np.concatenate(parts) if len(parts) > 1
            else parts[0] if parts else np.zeros(0, dtype=np.int64)
        )  # fmt: skip
        self.pending = []
        out, fresh, ratio, _ = calls_apply_nb(
            called, pending, self.status, self.is_called, self.pending_flag, cols.size,
            cols.entry, cols.isolated_margin, mark, tiers.floor, tiers.mmr, tiers.cum,
            float(tiers.min_margin), self.call_level,
        )  # fmt: skip
        self.called_ref = out
        return out, fresh, ratio


# -------------------------------------------------------------------- the scan's glue
def indexed_scan(ex: MarginScans, m: int, call_level: float) -> dict[str, Any]:
    """The isolated scan of market ``m`` from the zone-price index
    (:meth:`.MarginScans._indexed_isolated_scan`): from the tracker's statuses where they
    apply (a :class:`TrackedScan`: ``below`` now, ``warn`` on first read), else the index's
    scan of the zone (which a tracker out of date starts again from)."""
    n = ex._n
    state, cols, t = ex.markets[m], ex._positions[m], ex.markets[m].tiers
    key = (m, min(float(call_level), 1.0))
    index = ex._level_index.get(key)
    if index is None:
        index = ex._level_index[key] = LevelIndex(call_level)
    memo = None  # the call index's sort, when rebuilt here: the tracker's starts from it
    if not index.valid:
        memo = index.rebuild(
            cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n],
            ex._kind[:n], t,
        )  # fmt: skip
    if not trackable(t, float(call_level), state.mark):
        return plain_scan(ex, index, m, call_level)
    tracker = ex._level_index.get((m, 1.0))
    if not isinstance(tracker, ZoneTracker):
        tracker = ex._level_index[(m, 1.0)] = ZoneTracker()
    if not tracker.valid:
        tracker.rebuild(
            cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n],
            ex._kind[:n], t, like=memo,
        )  # fmt: skip
    if not tracker.finite(index):
        tracker.synced = False
        return plain_scan(ex, index, m, call_level)
    if not tracker.current(index, t, float(call_level)):
        scan = plain_scan(ex, index, m, call_level)
        tracker.resync(index, t, float(call_level), state.mark, len(cols.size), scan, ex._version)
        return scan
    step = tracker.step(index, state.mark, cols, ex._kind, t)
    if step is None:
        return walked_scan(ex, tracker, index, m, call_level)
    tracker.version = ex._version
    return TrackedScan(ex, m, call_level, index, *step)


def tracked_calls(
    ex: MarginScans, m: int, call_level: float, called: IntArray
) -> tuple[IntArray, IntArray, FloatArray] | None:
    """The isolated margin calls of market ``m`` in the common case, in one pass: where the
    scan is not cached for this state, both indexes hold, the tracker's statuses and call
    flags are current and nothing is checked (``check_invariants`` off), what
    :meth:`.RiskEngine._isolated_calls` would do through the ask, :func:`indexed_scan`,
    :meth:`ZoneTracker.step` and :meth:`ZoneTracker.calls` (the same decisions and the same
    kernel call, without their frames and look-ups): the step with the call update of
    ``called`` (int64), its :class:`TrackedScan` cached as :meth:`.MarginScans.isolated_scan`
    caches it, and the new called set, the accounts called now and their ratios returned.
    None where it does not apply, with nothing changed, or where the step takes the walk
    (the walked scan cached, the statuses started again from it): the caller then takes the
    general path, which finds that scan cached.

    The checks are :meth:`ZoneTracker.finite`'s and :meth:`ZoneTracker.current`'s written
    out, in the same order (it runs at every margin-call step: 7,358 on the isolated day)."""
    tracker = ex._level_index.get((m, 1.0))
    if (
        ex.check_invariants
        or not ex.use_level_index
        or not isinstance(tracker, ZoneTracker)
        or not tracker.calls_synced
    ):
        return None
    version = ex._version
    key = ("iscan", m, call_level)
    hit = ex._cache.get(key)
    if hit is not None and hit[0] == version:
        return None  # scanned already at this state: the call update alone (general path)
    if len(ex._scan_buffers.get("i_below", ())) < ex._n:
        return None  # the general path sizes the scan's buffers first
    level = float(call_level)
    index = ex._level_index.get((m, min(level, 1.0)))
    state = ex.markets[m]
    t, mark = state.tiers, state.mark
    if (
        index is None
        or not index.valid
        or not trackable(t, level, mark)
        or not tracker.valid
        or (
            (index.rebuilds, index.compactions, tracker.rebuilds, tracker.compactions)
            != tracker.checked
            and not tracker.finite(index)
        )  # :meth:`ZoneTracker.finite`, its remembered answer read here
        or not tracker.synced  # :meth:`ZoneTracker.current` (``valid`` tested above)
        or tracker.call_level != level
        or tracker.tiers is not t
        or tracker.marks != (id(index), index.rebuilds, tracker.rebuilds)
    ):
        return None
    tracker.ask = None
    tracker._made = None
    made = tracker.calls_step(index, mark, ex._positions[m], ex._kind, t, called)
    if made is None:  # the walk (:func:`indexed_scan`'s): the general path goes on from it
        ex._cache[key] = (version, walked_scan(ex, tracker, index, m, call_level))
        return None
    tracker.version = version
    ex._cache[key] = (version, TrackedScan(ex, m, call_level, index, made[0], made[1], made[2]))
    return made[3], made[4], made[5]


def walked_scan(
    ex: MarginScans, tracker: ZoneTracker, index: LevelIndex, m: int, call_level: float
) -> dict[str, Any]:
    """A step whose crossed band costs more than the zone (:meth:`ZoneTracker.step` returned
    None): the index's walk of the zone, from which the statuses start again (the same
    statuses the step would have kept: each is the exact test's at this state and mark)."""
    state, cols, t = ex.markets[m], ex._positions[m], ex.markets[m].tiers
    scan = plain_scan(ex, index, m, call_level)
    tracker.resync(index, t, float(call_level), state.mark, len(cols.size), scan, ex._version)
    return scan


def plain_scan(ex: MarginScans, index: LevelIndex, m: int, call_level: float) -> dict[str, Any]:
    """The index's own scan of the zone (:meth:`.LevelIndex.scan`) as the scan's columns."""
    state, cols, t = ex.markets[m], ex._positions[m], ex.markets[m].tiers
    below, below_e, below_m, warn, warn_r = index.scan(
        state.mark, cols.size, cols.entry, cols.isolated_margin, cols.mode, ex._kind, t,
        call_level,
    )  # fmt: skip
    return {
        "below": below,
        "below_equity": below_e,
        "below_maintenance": below_m,
        "warn": warn,
        "warn_ratio": warn_r,
    }


class TrackedScan(dict[str, Any]):
    """A tracked scan's result: ``below`` and its columns from the statuses; ``warn`` and
    ``warn_ratio`` from the index's scan on first read, at the state the scan saw (reading
    them after the state changed is an error)."""

    def __init__(
        self,
        ex: MarginScans,
        m: int,
        call_level: float,
        index: LevelIndex,
        below: IntArray,
        below_e: FloatArray,
        below_m: FloatArray,
    ) -> None:
        super().__init__(below=below, below_equity=below_e, below_maintenance=below_m)
        self._args = (ex, m, call_level, index)
        self._version = ex._version

    def __missing__(self, key: str) -> Any:
        if key not in ("warn", "warn_ratio"):
            raise KeyError(key)
        ex, m, call_level, index = self._args
        if ex._version != self._version:
            raise InvariantError("warn of an isolated scan read after the state changed")
        full = plain_scan(ex, index, m, call_level)
        self["warn"], self["warn_ratio"] = full["warn"], full["warn_ratio"]
        return self[key]


def tracker_at(ex: MarginScans, m: int, call_level: float) -> ZoneTracker | None:
    """The tracker of market ``m`` when its statuses are those of the current state at this
    call level (an isolated scan just ran through it), else None."""
    tracker = ex._level_index.get((m, 1.0))
    if (
        isinstance(tracker, ZoneTracker)
        and tracker.synced
        and tracker.version == ex._version
        and tracker.call_level == float(call_level)
        and tracker.mark == ex.markets[m].mark
    ):
        return tracker
    return None


def ask_tracker(ex: MarginScans, m: int, called: IntArray) -> ZoneTracker | None:
    """The tracker of market ``m`` asked to update the called set ``called`` in its next
    step (:meth:`ZoneTracker.ask_for`), or None where there is none or it keeps no call
    flags; the caller clears its ``ask`` once the scan is taken."""
    tracker = ex._level_index.get((m, 1.0))
    if isinstance(tracker, ZoneTracker) and tracker.ask_for(called):
        return tracker
    return None


def full_scan(ex: MarginScans, m: int, call_level: float) -> dict[str, Any]:
    """The full pass over every position of market ``m`` (no index: the reference the
    ``check_invariants`` mode compares with)."""
    ex.use_level_index = False
    try:
        return ex._isolated_scan(m, call_level)
    finally:
        ex.use_level_index = True
