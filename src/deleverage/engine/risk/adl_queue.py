"""The ADL queue of a market side of isolated positions, scored over every account at once.

BitMEX's ranking (``pnl_leverage``: ``pnl% x effective leverage``, docs/formulas.md 6.1) of
one side of a market whose traders are all isolated. :func:`pnl_leverage_scores_nb` writes
every account's score into one dense array (``-inf`` where the account is no candidate: a
venue account, the other side, flat, or not in profit), in a loop the compiler vectorizes;
the compacting pass it replaces (:func:`deleverage.engine.kernels.pnl_leverage_queue_nb`,
candidates, scores and sizes written one candidate at a time) could not be. The scores are
those of the compacting pass, operation for operation, at the same point of the step, so the
ranking is the same: :class:`DenseQueue` ranks the top of the queue with
:func:`~deleverage.engine.kernels.top_scores_nb` over the dense array (the ``-inf`` rows never
reach the ``k``-th best while ``k`` is at most the number of candidates) and
:func:`deleverage.rules.adl.rank` (score, then account id), as :class:`_Queue` does over the
compacted arrays.

The queue's capacity (the candidates' total size) is what the batch planner compares the
bankrupt sizes with. :func:`capacity_reaches_nb` sums it in account order only until it
reaches a bound; the planner's decisions are the same for every capacity at or above the
total size it could flag (see :meth:`ShortfallStage._queue_capacity`), so the full sum is
taken only when the bound is not reached.
"""

from __future__ import annotations

import weakref

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.adl_index import (
    SAMPLE_COUNT,
    _Side,
    dense_from_cells_nb,
    dirty_scores_nb,
    sampled_candidates_nb,
    select_top_nb,
)
from deleverage.engine.kernels import top_scores_nb
from deleverage.engine.risk.support import FloatArray, _Queue
from deleverage.rules import adl as adl_math

#: Relative margin a ranked prefix must hold above a need before :meth:`DenseQueue.covering`
#: stops growing it (float dust between the pairwise and the running sums of the callers).
_COVER_MARGIN = 1e-9


@njit(cache=True, error_model="numpy")  # rows of flat positions divide by 0: masked out
def pnl_leverage_scores_nb(
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    kind: npt.NDArray[np.int8],
    mark: float,
    side: float,
    score_out: FloatArray,
) -> tuple[int, int]:
    """Every account's BitMEX ADL score on ``side`` (+1 long, -1 short), ``-inf`` for no
    candidate; returns the number of candidates and of NaN scores.

    A candidate is a trader (``kind == 0``) on ``side`` in profit; its score is
    ``side x (mark - entry) / entry x leverage`` with ``leverage = |size| x mark / equity``
    (infinite for non-positive equity), written as
    :func:`deleverage.engine.kernels.pnl_leverage_queue_nb` writes it (same operations, same
    order: the same floats), in a loop without a data-dependent store (the compiler
    vectorizes it).
    """
    count = 0
    nan = 0
    for i in range(len(size)):
        s = size[i]
        move = mark - entry[i]
        upnl = s * move
        eligible = (kind[i] == 0) & (s * side > 0.0) & (upnl > 0.0)
        equity = isolated_margin[i] + upnl
        leverage = abs(s) * mark / equity if equity > 0.0 else np.inf
        score = side * move / entry[i] * leverage
        score = score if eligible else -np.inf
        score_out[i] = score
        count += eligible
        nan += score != score
    return count, nan


@njit(cache=True)
def capacity_reaches_nb(size: FloatArray, score: FloatArray, bound: float) -> float:
    """The candidates' (``score > -inf``) total ``|size|`` summed in account order, stopping
    as soon as it reaches ``bound``: at least ``bound`` when the queue holds that much."""
    total = 0.0
    for i in range(len(score)):
        if score[i] > -np.inf:
            total += abs(size[i])
            if total >= bound:
                break
    return total


class DenseQueue(_Queue):
    """:class:`_Queue` over a dense score array (one score per account, ``-inf``: none).

    ``scores`` may be a view of the risk step's reserved buffer; the candidates' ids are
    listed only when a caller asks for all of them (:attr:`candidates`).
    """

    def __init__(self, scores: FloatArray, n_candidates: int, version: int) -> None:
        super().__init__(np.zeros(0, dtype=np.int64))
        self._dense = scores
        self.n_candidates = n_candidates
        self.version = version
        self.complete = n_candidates == 0
        self._listed: npt.NDArray[np.int64] | None = None

    @property
    def candidates(self) -> npt.NDArray[np.int64]:
        """Every queued account, ascending (as the compacting pass lists them)."""
        if self._listed is None:
            self._listed = np.flatnonzero(self._dense > -np.inf).astype(np.int64)
        return self._listed

    @candidates.setter
    def candidates(self, value: npt.NDArray[np.int64]) -> None:
        self._listed = None if len(value) == 0 else value

    def capacity_at_least(self, size: FloatArray, bound: float) -> float:
        """The queue's total size if it is below ``bound``, else a partial sum >= ``bound``."""
        reached = capacity_reaches_nb(size, self._dense, bound)
        if reached >= bound:
            return reached
        return self.capacity_exact(size)

    def capacity_exact(self, size: FloatArray) -> float:
        """The candidates' total ``|size|``: the sum :class:`_Queue`'s callers take."""
        return float(np.abs(size[self.candidates]).sum())

    def ensure(self, count: int) -> None:
        """Rank at least ``count`` accounts (or all of them): every candidate scoring at or
        above the ``k``-th best, as :meth:`_Queue.ensure` selects them."""
        if self.complete or count <= len(self.accounts):
            return
        n = self.n_candidates
        k = min(n, max(count, 2 * len(self.accounts), 1024))
        scores = self._dense
        if k >= n:
            sel = self.candidates
        else:
            sel = top_scores_nb(scores, k)
            if len(sel) == 0:  # a NaN score: the reference selection (rank refuses NaN)
                threshold = np.partition(-scores, k - 1)[k - 1]
                sel = np.flatnonzero(-scores <= threshold)
        order = adl_math.rank(scores[sel], sel)
        self.accounts = sel[order]
        self.complete = len(sel) == n

    def covering(self, size: FloatArray, need: float) -> npt.NDArray[np.int64]:
        """Ranked accounts from the head whose sizes add up to at least ``need`` (with a
        margin of float dust), or all of them."""
        count = 64
        if not self.complete:
            # First guess from the average candidate size (a strided sample of the accounts).
            mean = _sample_mean_size(size, self._dense)
            count = max(count, int(1.5 * need / mean) + 64) if mean > 0 else count
        while True:
            self.ensure(self.head + count)
            tail = self.accounts[self.head :]
            if self.complete or np.abs(size[tail]).sum() >= need * (1.0 + _COVER_MARGIN):
                return tail
            count *= 4


def rank_distinct(scores: FloatArray, accounts: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """:func:`deleverage.rules.adl.rank` of distinct ``accounts`` with scores free of NaN
    (not checked): highest score first, ties by ascending account id.

    NumPy's quicksort of the negated scores gives that permutation whenever no two scores are
    equal (checked on the sorted values: then no order but one is sorted); with a tie, the
    accounts sorted once and a stable sort of their negated scores (ties keep the account
    order: the permutation ``np.lexsort((positions, accounts, -scores))`` gives, as the
    positions never decide between distinct accounts).
    """
    order = np.argsort(-scores)
    ranked = scores[order]
    if not bool((ranked[1:] == ranked[:-1]).any()):
        return order
    by_id = np.argsort(accounts)
    return by_id[np.argsort(-scores[by_id], kind="stable")]


def _sample_mean_size(size: FloatArray, dense: FloatArray) -> float:
    """Mean ``|size|`` of the candidates among every ``len // 4096``-th account (0: none)."""
    stride = max(1, len(dense) // SAMPLE_COUNT)
    rows = np.flatnonzero(dense[::stride] > -np.inf) * stride
    return float(np.abs(size[rows]).mean()) if len(rows) else 0.0


@njit(cache=True)
def capacity_live_nb(
    size: FloatArray,
    entry: FloatArray,
    kind: npt.NDArray[np.int8],
    mark: float,
    side: float,
    bound: float,
) -> float:
    """:func:`capacity_reaches_nb` with the candidates found from the live columns (a trader
    on ``side`` in profit at ``mark``: :func:`pnl_leverage_scores_nb`'s test), no dense array.

    Written without a branch on the test (a row that is no candidate adds ``0.0``, which
    leaves the running sum as it was): the same sum, stopped at the same account, without
    the mispredicted branch of a book where the sides alternate at random.
    """
    total = 0.0
    for i in range(len(size)):
        s = size[i]
        candidate = (kind[i] == 0) & (s * side > 0.0) & (s * (mark - entry[i]) > 0.0)
        total += abs(s) if candidate else 0.0
        if total >= bound:
            break
    return total


class IndexedQueue(DenseQueue):
    """:class:`DenseQueue` answered from the cells of :mod:`deleverage.engine.adl_index`.

    The queue stands for the dense scores at its creation: the cells' rows (clean positions:
    their copies are the live values) and the dirty accounts' scores taken from the live
    columns then. The top of the queue is selected from the cells (:func:`select_top_nb`: the
    same set as :func:`top_scores_nb` over the dense array); anything else (every candidate,
    the exact capacity, a NaN score) materializes the dense array from the cells once and
    runs :class:`DenseQueue`'s code. The cells' rows do not change while the queue lives: the
    index detaches it (materializes) first.
    """

    def __init__(
        self,
        cells: _Side,
        cols: tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.int8]],
        mark: float,
        n: int,
        version: int,
        *,
        check: bool = False,
    ) -> None:
        super().__init__(np.zeros(0), 0, version)
        self.complete = False
        self._cells = cells
        self._generation = cells.generation
        self._mark = mark
        self._side = cells.side
        self._n = n
        self._cols = cols
        self._dirty_acc = cells.dirty.copy()
        size, entry, margin, kind = cols
        self._dirty_score = dirty_scores_nb(
            self._dirty_acc, size, entry, margin, kind, mark, self._side
        )
        self._materialized = False
        cells.user = weakref.ref(self)
        if check or bool(np.isnan(self._dirty_score).any()):
            self.detach()
            if check:  # the cells and dirty scores stand for the live dense pass
                live = np.empty(n)
                count, _ = pnl_leverage_scores_nb(
                    size[:n], entry[:n], margin[:n], kind[:n], mark, self._side, live
                )
                assert count == self.n_candidates
                assert np.array_equal(live, self._dense, equal_nan=True), "ADL cells drifted"

    @property
    def dirty_accounts(self) -> npt.NDArray[np.int64]:
        """The accounts scored from the live columns at the queue's creation."""
        return self._dirty_acc

    @property
    def detached(self) -> bool:
        """Whether the queue has its own dense scores (no longer reads the cells)."""
        return self._materialized

    def detach(self) -> None:
        """Materialize the dense scores the queue stands for (from then on: DenseQueue)."""
        if self._materialized:
            return
        assert self._generation == self._cells.generation, "ADL cells changed under a queue"
        assert self._cells.cells is not None
        acc, row_s, row_e, row_m, _ = self._cells.cells
        dense = np.empty(self._n)
        count = dense_from_cells_nb(
            acc, row_s, row_e, row_m, self._dirty_acc, self._dirty_score, self._mark,
            self._side, dense,
        )  # fmt: skip
        self._dense = dense
        self.n_candidates = int(count)
        if count == 0:
            self.complete = True
        self._materialized = True
        if self._cells.user is not None and self._cells.user() is self:
            self._cells.user = None

    @property
    def candidates(self) -> npt.NDArray[np.int64]:
        self.detach()
        return super().candidates

    @candidates.setter
    def candidates(self, value: npt.NDArray[np.int64]) -> None:
        self._listed = None if len(value) == 0 else value

    def capacity_at_least(self, size: FloatArray, bound: float) -> float:
        """As :meth:`DenseQueue.capacity_at_least` (called only while no position changed
        since the queue's creation: the live test is the dense array's)."""
        if self._materialized:
            return super().capacity_at_least(size, bound)
        entry, kind = self._cols[1], self._cols[3]
        n = self._n
        reached = capacity_live_nb(size[:n], entry[:n], kind[:n], self._mark, self._side, bound)
        if reached >= bound:
            return reached
        return self.capacity_exact(size)

    def ensure(self, count: int) -> None:
        if self._materialized:
            super().ensure(count)
            return
        if self.complete or count <= len(self.accounts):
            return
        k = max(count, 2 * len(self.accounts), 1024)
        assert self._cells.cells is not None
        acc, row_s, row_e, row_m, start = self._cells.cells
        sel, scores, every = select_top_nb(
            self._cells.bounds(self._mark), start, acc, row_s, row_e, row_m, self._dirty_acc,
            self._dirty_score, self._mark, self._side, k,
        )  # fmt: skip
        if np.isnan(scores).any():  # no bound holds it: the dense array's own fallback
            self.detach()
            super().ensure(count)
            return
        self.accounts = sel[rank_distinct(scores, sel)]
        # Every candidate ranked (known when every cell was read; otherwise a later call
        # with a larger count reads more and finds the same prefix).
        self.complete = every

    def covering(self, size: FloatArray, need: float) -> npt.NDArray[np.int64]:
        if self._materialized:
            return super().covering(size, need)
        count = 64
        if not self.complete:
            mean = self._sample_mean(size)
            count = max(count, int(1.5 * need / mean) + 64) if mean > 0 else count
        while True:
            self.ensure(self.head + count)
            if self._materialized:
                return super().covering(size, need)
            tail = self.accounts[self.head :]
            if self.complete or np.abs(size[tail]).sum() >= need * (1.0 + _COVER_MARGIN):
                return tail
            count *= 4

    def _sample_mean(self, size: FloatArray) -> float:
        """:func:`_sample_mean_size` over the dense array the queue stands for."""
        stride = max(1, self._n // SAMPLE_COUNT)
        rows = sampled_candidates_nb(
            stride, self._n, *self._cells.sample(stride), self._dirty_acc, self._dirty_score,
            self._mark, self._side,
        )  # fmt: skip
        return float(np.abs(size[rows]).mean()) if len(rows) else 0.0
