"""The risk stage's step reports, with quiet stretches held as runs (issue #20).

Every risk step leaves one :class:`~deleverage.engine.risk.support.StepReport` per market in
``risk.reports``. A quiet stretch of ``L`` steps over ``n`` markets
(:func:`deleverage.engine.quiet.advance_quiet`) leaves ``L n`` reports that differ only in
their market and time stamp (and the margin calls a step made): nothing done but the backstop
vault's PnL, the same for all of them. Building those objects one by one cost 0.18 s of the
isolated cascade day and 0.54 s of the cross day under the profiler, and they are hardly ever
read (the runner records the stretch from its own arrays, the engine reads only the count).

:class:`ReportLog` is the list of reports that holds such a stretch as one *quiet run*: its
time stamps (one array), the market count, the backstop PnL and its margin calls (report
offsets and counts). Indexing, iterating, comparing and copying it gives exactly the reports
the stretch would have appended, built on demand (each a new, equal object). ``append`` and
``extend`` take reports as a list does; ``append`` is the tail list's own method (bound
afresh after each run; a copy or a pickle binds it again), so the step-by-step run's append
costs what a list's does.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Callable

    from deleverage.engine.risk.support import StepReport

IntArray = npt.NDArray[np.int64]

__all__ = ["QuietRun", "ReportLog"]


@dataclass(frozen=True, eq=False)
class QuietRun:
    """The reports of one quiet stretch: ``len(ts_ns) x n_markets`` of them, step by step
    (markets in order within a step), each with ``backstop_pnl`` and no other field set but
    ``margin_calls``: ``calls[i]`` at report offset ``at[i]`` (``at`` ascending), 0 elsewhere."""

    ts_ns: IntArray
    n_markets: int
    backstop_pnl: float
    at: IntArray
    calls: IntArray

    def __len__(self) -> int:
        return len(self.ts_ns) * self.n_markets

    def report(self, i: int) -> StepReport:
        """The ``i``-th report (``0 <= i < len``), a new object."""
        from deleverage.engine.risk.support import StepReport

        step, market = divmod(i, self.n_markets)
        made = 0
        if len(self.at):
            k = int(np.searchsorted(self.at, i))
            if k < len(self.at) and int(self.at[k]) == i:
                made = int(self.calls[k])
        return StepReport(
            market=market,
            ts_ns=int(self.ts_ns[step]),
            backstop_pnl=self.backstop_pnl,
            margin_calls=made,
        )

    def reports(self) -> list[StepReport]:
        """Every report of the run, in order (new objects)."""
        from deleverage.engine.risk.support import StepReport

        pnl, n_m = self.backstop_pnl, self.n_markets
        out = [
            StepReport(market=m, ts_ns=t, backstop_pnl=pnl)
            for t in self.ts_ns.tolist()
            for m in range(n_m)
        ]
        for i, made in zip(self.at.tolist(), self.calls.tolist(), strict=True):
            out[i].margin_calls = made
        return out


Chunk = list["StepReport"] | QuietRun


class ReportLog:
    """A list of step reports whose quiet stretches are held as :class:`QuietRun` (module
    docstring). Supports ``append``, ``extend``, ``add_run``, ``len``, indexing (int and
    slice), iteration, ``reversed``, ``==`` with another log or a list, copy and pickle."""

    append: Callable[[StepReport], None]

    def __init__(self, reports: Iterable[StepReport] = ()) -> None:
        self._chunks: list[Chunk] = []  # closed chunks: report lists and quiet runs
        self._starts: list[int] = []  # each closed chunk's first index
        self._closed = 0  # the reports in closed chunks
        self._tail: list[StepReport] = list(reports)
        self.append = self._tail.append

    def extend(self, reports: Iterable[StepReport]) -> None:
        self._tail.extend(reports)

    def add_run(self, run: QuietRun) -> None:
        """Append the reports of a quiet stretch (held as the run)."""
        if not len(run):
            return
        if self._tail:
            self._close(self._tail)
            self._tail = []
            self.append = self._tail.append
        self._close(run)

    def last(self) -> StepReport:
        """The last report (built when it is a quiet run's)."""
        if self._tail:
            return self._tail[-1]
        return self[-1]

    def _close(self, chunk: Chunk) -> None:
        self._starts.append(self._closed)
        self._chunks.append(chunk)
        self._closed += len(chunk)

    def __len__(self) -> int:
        return self._closed + len(self._tail)

    def __bool__(self) -> bool:
        return len(self) > 0

    @overload
    def __getitem__(self, i: int) -> StepReport: ...

    @overload
    def __getitem__(self, i: slice) -> list[StepReport]: ...

    def __getitem__(self, i: int | slice) -> StepReport | list[StepReport]:
        if isinstance(i, slice):
            return [self._at(k) for k in range(*i.indices(len(self)))]
        n = len(self)
        k = int(i)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError("report index out of range")
        return self._at(k)

    def _at(self, k: int) -> StepReport:
        if k >= self._closed:
            return self._tail[k - self._closed]
        c = bisect.bisect_right(self._starts, k) - 1
        chunk = self._chunks[c]
        off = k - self._starts[c]
        return chunk.report(off) if isinstance(chunk, QuietRun) else chunk[off]

    def __iter__(self) -> Iterator[StepReport]:
        for chunk in self._chunks:
            yield from chunk.reports() if isinstance(chunk, QuietRun) else chunk
        yield from self._tail

    def __reversed__(self) -> Iterator[StepReport]:
        for k in range(len(self) - 1, -1, -1):
            yield self._at(k)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReportLog | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def __repr__(self) -> str:
        return f"ReportLog({len(self)} reports, {len(self._chunks)} closed chunks)"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["append"]  # the tail's bound method: bound again on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.append = self._tail.append
