"""The batch path's candidates in distress order, in one compiled pass.

:meth:`BatchStage._batch_candidates` ranks the isolated positions under maintenance by
health ``(equity - maintenance) / max(maintenance, 1e-12)``, ties by account id
(``np.lexsort((accounts, health))``, :func:`deleverage.engine.risk.batch.distress_order`).
When no two healths are equal and none is NaN every sort gives the one order by health, so
:func:`ranked_candidates_nb` sorts them (Numba's ``np.argsort``) and gathers the accounts,
equities and maintenance in that order; otherwise it says so and the caller takes
``distress_order`` (tests/unit/risk/test_distress_twin.py compares the two).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True)
def ranked_candidates_nb(
    accounts: IntArray, equity: FloatArray, maintenance: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray, bool]:
    """The accounts, equities and maintenance ordered by health (module docstring), and
    whether that order is the distress order (no tie, no NaN); empty arrays and False when
    it is not."""
    n = len(accounts)
    health = np.empty(n)
    distinct = True
    for i in range(n):
        m = maintenance[i]
        floor = m if (m != m or m > 1e-12) else 1e-12  # np.maximum(m, 1e-12)
        health[i] = (equity[i] - m) / floor
        if health[i] != health[i]:
            distinct = False
    order = np.argsort(health)
    for i in range(1, n):
        if health[order[i]] == health[order[i - 1]]:
            distinct = False
    if not distinct:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), False
    out_accounts = np.empty(n, dtype=np.int64)
    out_equity = np.empty(n)
    out_maintenance = np.empty(n)
    for i in range(n):
        k = order[i]
        out_accounts[i] = accounts[k]
        out_equity[i] = equity[k]
        out_maintenance[i] = maintenance[k]
    return out_accounts, out_equity, out_maintenance, True


def distress_order(accounts: npt.NDArray[np.int64], health: FloatArray) -> npt.NDArray[np.intp]:
    """``np.lexsort((accounts, health))``: by health, ties by account id. NumPy's quicksort
    of the healths gives that order whenever no two are equal and none is NaN (checked on the
    sorted values); otherwise the lexsort itself."""
    order = np.argsort(health)
    ranked = health[order]
    if len(ranked) and (np.isnan(ranked[-1]) or bool((ranked[1:] == ranked[:-1]).any())):
        return np.lexsort((accounts, health))
    return order
