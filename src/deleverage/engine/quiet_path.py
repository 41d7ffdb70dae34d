"""How many marks of a given path the engine can take as quiet marks, and applying them.

A multi-venue world knows the prices ahead of a quiet stretch (:mod:`deleverage.world.quiet`)
and asks each venue how many of them it can take without doing anything but record them. For
the perpetuals engine that is the test of :mod:`deleverage.engine.quiet_mark`, run along the
path in one compiled call: the bands of :func:`~deleverage.engine.quiet.quiet_bands` (isolated
zone prices and the cross accounts' distance bounds, docs/formulas.md §20) hold for every mark
vector from the marks now through the path, markets set one after the other within a step.
Called positions (which the step may drop) and margin calls made by the stretch are left to the
step-by-step path: the count stops short of any mark where they could matter. The marks are
then applied by :func:`~deleverage.engine.quiet.advance_quiet` (one journal append), which
leaves the engine as the step-by-step run does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.level_index import ZONE_RTOL
from deleverage.engine.quiet import QuietBands, advance_quiet, quiet_bands, quiet_mark_nb
from deleverage.engine.quiet_mark import _settings_quiet

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange

__all__ = ["apply_quiet_marks", "quiet_marks_ahead", "quiet_prefix_nb"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True)
def quiet_prefix_nb(
    marks_now: FloatArray,
    path: FloatArray,
    long_max: FloatArray,
    short_min: FloatArray,
    p0_index: FloatArray,
    q_index: float,
    p0_dirty: FloatArray,
    q_dirty: float,
    zone_rtol: float,
) -> int:
    """Leading rows of ``path`` (``L x markets``) whose marks are quiet given the bands,
    ``marks_now`` included (0 when the marks now are not). Within a step the markets are
    set in order, so the vectors between two rows mix them; each market's test is on its own
    mark and the cross test on the largest move, so both rows passing covers every mix."""
    if not quiet_mark_nb(
        marks_now, long_max, short_min, p0_index, q_index, p0_dirty, q_dirty, zone_rtol
    ):
        return 0
    for j in range(path.shape[0]):
        if not quiet_mark_nb(
            path[j], long_max, short_min, p0_index, q_index, p0_dirty, q_dirty, zone_rtol
        ):
            return j
    n: int = path.shape[0]
    return n


def quiet_marks_ahead(ex: Exchange, path: FloatArray) -> int:
    """How many leading rows of ``path`` (``L x markets``, every market's mark in the
    engine's order) are quiet marks for ``ex`` now (module docstring); changes nothing."""
    if not ex.quiet_marks.enabled or path.shape[0] == 0:
        return 0
    bands = _cached_bands(ex)
    if bands is None:
        bands = quiet_bands(ex)
    if bands is None or len(bands.called_market) or bands.calls is not None:
        return 0
    marks_now = np.array([st.mark for st in ex.markets], dtype=np.float64)
    b = bands
    ahead = np.ascontiguousarray(path, dtype=np.float64)
    n = quiet_prefix_nb(
        marks_now, ahead, b.long_max, b.short_min, b.p0_index, b.q_index, b.p0_dirty,
        b.q_dirty, ZONE_RTOL,
    )  # fmt: skip
    return int(n)


def _cached_bands(ex: Exchange) -> QuietBands | None:
    """The single-mark path's bands when they hold for the state now (only marks changed it
    since they were computed: what its next mark would use), else None."""
    qm = ex.quiet_marks
    if (
        qm._bands is not None
        and qm._version == ex._version
        and qm._reports == len(ex.risk.reports)
        and _settings_quiet(ex)
    ):
        return qm._bands
    return None


def apply_quiet_marks(ex: Exchange, path: FloatArray, ts_ns: IntArray) -> None:
    """Set the marks of ``path`` (all counted quiet by :func:`quiet_marks_ahead`) at
    ``ts_ns``, with the effects of one :meth:`.Exchange.set_mark` per market and step.

    Each of those marks lets its market's consumed book depth decay to the mark's time
    (``QuietMarks._record``): a decay compounded step by step, not in one step from the first
    time to the last (``x e^-a e^-b`` is not ``x e^-(a+b)`` to the bit), so a book with
    consumed depth recovers at each time of the path here, the last one in ``advance_quiet``.
    """
    qm = ex.quiet_marks
    # The single-mark path's cached bands (engine/quiet_mark.py) hold while only marks change
    # the state: quiet marks applied here keep them (the cache follows the version, the
    # risk steps and the marks, as after its own marks).
    cached = _cached_bands(ex)
    keep = cached is not None and not len(cached.called_market)
    times = np.asarray(ts_ns, dtype=np.int64)[:-1].tolist()
    for r in ex.risk.markets:
        book = r.liquidity
        if book is not None and times and book.snapshot()["consumed_depth"] != 0.0:
            for t in times:
                book.recover(t)
    marks = np.ascontiguousarray(path, dtype=np.float64)
    advance_quiet(ex, marks, ts_ns)
    if keep and len(marks):
        qm._version, qm._reports = ex._version, len(ex.risk.reports)
        qm._marks[:] = marks[-1]
