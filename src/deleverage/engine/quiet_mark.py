"""The single-mark quiet fast path of :meth:`.Exchange.set_mark`.

A world steps each venue one mark at a time, so it cannot hand the engine a stretch of marks
(:func:`deleverage.engine.quiet.advance_quiet`); most of a day's marks are still quiet. After
``set_mark`` has recorded the mark (the ``MARK_PRICE`` event and the market's mark, as always),
:class:`QuietMarks` decides whether the risk step can do anything at it, with the same test
the quiet stretches use (:func:`~deleverage.engine.quiet.quiet_bands`,
:func:`~deleverage.engine.quiet.quiet_mark_nb`, :func:`~deleverage.engine.quiet.called_step_nb`,
docs/formulas.md §20). At a quiet mark it does exactly what the risk step does there and
nothing else: an empty :class:`~deleverage.engine.risk.support.StepReport` (with the backstop
vault's PnL), the step's capital clock and the book's resilience clock.

The bands are cached between marks and stay valid while the engine's state does not change
other than by marks: the cache holds the state version it was computed at (plus the fast
path's own marks) and the number of risk steps run, and any other event, any risk step run
elsewhere, or any mark the full risk step had to run, drops it. Computing bands costs about a
full risk step, so none are built for a mark that puts a position under maintenance
(:mod:`deleverage.engine.quiet_probe`), and a state that is not quiet (no bands), or bands
that served fewer than 8 marks, are looked at again only after a growing number of marks
(1, 2, 4, ... 64; back to 1 once bands serve 8 marks): missing a quiet mark only costs time,
never exactness. A twin test (fast path on and off) compares journals and result hashes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from deleverage.engine.level_index import ZONE_RTOL
from deleverage.engine.quiet import QuietBands, called_step_nb, quiet_bands, quiet_mark_nb
from deleverage.engine.quiet_probe import liquidates_first

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange
    from deleverage.engine.risk.support import StepReport

__all__ = ["DEFAULT_ENABLED", "QuietMarks"]

#: Whether new engines take the fast path (tests switch it off to compare).
DEFAULT_ENABLED = True
_MAX_BACKOFF = 64
_STREAK = 8  # bands that served this many marks reset the back-off


class QuietMarks:
    """The cached quiet bands of one engine and the single-mark fast path (module docstring).

    ``enabled`` switches the path off (every mark runs the full risk step); ``fast`` and
    ``full`` count the marks that took each path.
    """

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.enabled = DEFAULT_ENABLED
        self.fast = 0
        self.full = 0
        self._bands: QuietBands | None = None
        self._version = -1  # the state version the bands are valid at
        self._reports = -1  # and the count of risk steps run (a step run elsewhere drops them)
        self._wait = 0  # marks left before the state is looked at again
        self._backoff = 1
        self._marks: npt.NDArray[np.float64] = np.zeros(0)
        self._no_drop: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        self._out: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        self._backstop_pnl = 0.0
        self._streak = 0  # quiet marks served by the bands now held

    def step(self, m: int, ts: int, version_before: int) -> StepReport | None:
        """The risk step of market ``m`` at a quiet mark set at ``ts`` (the mark is recorded
        already; ``version_before``: the state version before it was), or None when the mark
        is not certainly quiet (the caller runs the full risk step)."""
        ex = self.ex
        if not self.enabled:
            return None
        risk = ex.risk
        if self._bands is not None and (
            self._version != version_before
            or self._reports != len(risk.reports)
            or not _settings_quiet(ex)
        ):
            # Something besides our marks changed the state, a risk step ran elsewhere, or
            # dynamic or proactive margin was switched on (no event for it).
            self._bands = None
        if self._bands is None:
            if self._wait > 0:
                self._wait -= 1
                return None
            marks = np.array([st.mark for st in ex.markets], dtype=np.float64)
            # A mark that puts a position under maintenance is not quiet: no bands for it.
            self._bands = None if liquidates_first(ex, marks) else quiet_bands(ex)
            if self._bands is None:
                self._back_off()
                return None
            self._streak = 0
            n_called = len(self._bands.called_market)
            self._no_drop = np.zeros(n_called, dtype=np.bool_)
            self._out = np.zeros(n_called, dtype=np.bool_)
            self._marks = marks
            # The vault holds no position in a quiet state: its PnL does not move with marks.
            self._backstop_pnl = risk.backstop_pnl()
        bands = self._bands
        marks = self._marks
        marks[m] = ex.markets[m].mark
        if not self._quiet(bands, marks):
            self._bands = None  # the full step may change anything
            self.full += 1
            if self._streak < _STREAK:
                self._back_off()  # bands that barely served: wait before the next ones
            return None
        report = self._record(m, ts)
        self._version, self._reports = ex._version, len(risk.reports)
        self.fast += 1
        self._streak += 1
        if self._streak == _STREAK:
            self._backoff = 1
        return report

    def _back_off(self) -> None:
        """Look at the state again only after ``backoff`` marks (doubling up to 64)."""
        self._wait, self._backoff = self._backoff, min(2 * self._backoff, _MAX_BACKOFF)

    def _quiet(self, bands: QuietBands, marks: npt.NDArray[np.float64]) -> bool:
        b = bands
        if not quiet_mark_nb(
            marks, b.long_max, b.short_min, b.p0_index, b.q_index, b.p0_dirty, b.q_dirty,
            ZONE_RTOL,
        ):  # fmt: skip
            return False
        if not len(b.called_market):
            return True
        out = self._out
        stays = called_step_nb(
            marks, b.called_market, b.called_long, b.called_zone, b.called_liq, self._no_drop,
            out, ZONE_RTOL,
        )  # fmt: skip
        # A called position leaving the zone is dropped by the full step: not quiet here.
        return bool(stays) and not bool(out.any())

    def _record(self, m: int, ts: int) -> StepReport:
        """What the risk step does at a quiet mark (the mark itself is recorded already)."""
        from deleverage.engine.risk.support import StepReport

        risk = self.ex.risk
        risk._queues.clear()
        r = risk.markets[m]
        if r.liquidity is not None:
            r.liquidity.recover(ts)
        if r.capital_ts != ts:
            r.capital_ts, r.capital_used = ts, 0.0
        report = StepReport(market=m, ts_ns=ts, backstop_pnl=self._backstop_pnl)
        risk.reports.append(report)
        return report


def _settings_quiet(ex: Exchange) -> bool:
    """The settings :func:`quiet_bands` requires that change without an event."""
    if ex.check_invariants or not ex.use_level_index:
        return False
    return all(r.dynamic is None and r.proactive is None for r in ex.risk.markets)
