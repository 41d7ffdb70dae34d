"""``settle_money_nb``'s bookkeeping outputs against NumPy expressions of the same round.

The kernel (engine/risk/batch_settle.py) selects the positions that fill from the plan, takes
the round's sums as ``np.sum`` takes them and returns index lists that ``settle_round`` reads
(partial closes, closed positions, positions that still owe after the fund, positions that
carry a deficit). The batch twins compare whole runs with the separate batches, but a planned
round whose closed positions still owe after the fund is rare there (the planner sends what
the fund cannot carry to ADL), so here random plans on a small book, including such
positions, must give: the selected accounts, every list and the group bounds as NumPy finds
them from the kernel's own state and figures, ``rest`` and ``left`` by ``_batch_records``'
formulas, the sums bit for bit with ``np.sum``. A kernel list that dropped its last entry
must fail the comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.risk.batch_settle import _HEAD, settle_money_nb

N = 40
FUND, BOOK, FEES = 0, 1, 2


def _round(seed: int, recourse: bool, carried: bool, fund_fills: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    kinds = np.zeros(N, dtype=np.int8)
    kinds[[FUND, BOOK, FEES]] = 1
    size = np.where(rng.random(N) < 0.5, 1.0, -1.0) * rng.uniform(0.1, 5.0, N)
    size[[FUND, BOOK, FEES]] = 0.0
    state: dict[str, np.ndarray] = {
        "cash": rng.uniform(-50.0, 500.0, N), "margin": rng.uniform(0.0, 300.0, N),
        "mode": np.ones(N, dtype=np.int8), "size": size,
        "entry": rng.uniform(900.0, 1_100.0, N), "pnl": np.zeros(N),
    }  # fmt: skip
    k = int(rng.integers(0, 25))
    idx = rng.permutation(np.arange(3, N))[:k].astype(np.int64)
    if fund_fills and k:
        idx[0] = FUND
        state["size"][FUND] = 2.0
    done = rng.random(k) < 0.8
    size_p = state["size"][idx].copy()
    full = rng.random(k) < 0.6
    filled = np.where(full, np.abs(size_p), np.abs(size_p) * rng.uniform(0.1, 0.9, k))
    planned = np.zeros((6, k))
    planned[0] = np.where(done, filled, 0.0)
    planned[1] = rng.uniform(900.0, 1_100.0, k)
    planned[2] = np.where(rng.random(k) < 0.6, rng.uniform(0.0, 20.0, k), 0.0)  # penalty
    planned[3] = np.where(rng.random(k) < 0.5, rng.uniform(0.0, 40.0, k), 0.0)  # shortfall
    planned[4] = planned[3] * np.where(rng.random(k) < 0.5, 1.0, rng.uniform(0.0, 1.0, k))
    planned[5] = np.where(rng.random(k) < 0.3, rng.uniform(0.0, 10.0, k), 0.0)  # own cash
    return {
        "idx": idx, "done": done, "size_p": size_p, "equity_p": rng.uniform(-50.0, 80.0, k),
        "planned": planned, "kinds": kinds, "state": state, "recourse": recourse,
        "carried": rng.uniform(0.0, 5.0, k) if carried else np.zeros(0),
        "debt": rng.uniform(0.0, 5.0, k) if carried else np.zeros(0),
    }  # fmt: skip


def _settle(r: dict[str, Any]) -> tuple[Any, ...]:
    s = r["state"]
    return settle_money_nb(
        r["idx"], r["done"], r["size_p"], r["equity_p"], r["planned"], r["carried"], r["debt"],
        r["kinds"], np.array([FUND], dtype=np.int64), s["cash"], s["margin"], s["mode"],
        s["size"], s["entry"], s["pnl"], FEES, BOOK, FUND, 0, 1, 1_000.0, r["recourse"],
    )  # fmt: skip


def _expected_lists(r: dict[str, Any], accounts: np.ndarray, per_position: np.ndarray) -> list[int]:
    n = len(accounts)
    done = r["done"]
    pen, cov, own = (r["planned"][g][done] for g in (2, 4, 5))
    still_open = r["state"]["size"][accounts] != 0.0
    groups = [
        still_open & (pen > 0), ~still_open & (pen > 0), ~still_open & (cov > 0),
        still_open & (own > 0), still_open & (cov > 0),
    ]  # fmt: skip
    bounds = np.concatenate([[0], np.cumsum([int(g.sum()) for g in groups])])
    partial = still_open & (r["planned"][0][done] < np.abs(r["size_p"][done]))
    rest, left = per_position[:n], per_position[n : 2 * n]
    lists = [np.flatnonzero(partial), np.flatnonzero(~still_open)]
    lists += [np.flatnonzero(rest > 1e-9), np.flatnonzero(left > 1e-9)]
    any_fund = int(bool((accounts == FUND).any()))
    head = [*bounds.tolist(), any_fund, *[len(x) for x in lists]]
    return [*head, *np.concatenate(lists).astype(np.int64).tolist()]


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 100_000), recourse=st.booleans(), carried=st.booleans(),
    fund_fills=st.booleans(),
)  # fmt: skip
def test_the_kernel_lists_and_sums_are_numpy_s(
    seed: int, recourse: bool, carried: bool, fund_fills: bool
) -> None:
    # Arrange: a random plan on a small book; the traders the fills involve, before
    r = _round(seed, recourse, carried, fund_fills)
    accounts_expected = r["idx"][r["done"]]
    involved = np.unique(np.append(accounts_expected, BOOK))
    involved = involved[r["kinds"][involved] == 0]
    long_before = np.maximum(r["state"]["size"][involved], 0.0)

    # Act
    accounts, kind, ints, floats, lists, per_position = _settle(r)

    # Assert: the selection, the lists, the closed positions' rest and the open ones' left
    n = len(accounts)
    assert accounts.tolist() == accounts_expected.tolist()
    assert lists.tolist() == _expected_lists(r, accounts, per_position)
    done = r["done"]
    short, cov, own = (r["planned"][g][done] for g in (3, 4, 5))
    still_open = r["state"]["size"][accounts] != 0.0
    if not recourse:
        rest = np.where(still_open, 0.0, np.minimum(np.maximum(0.0, short - cov), short))
        assert per_position[:n].tobytes() == rest.tobytes()
    left = np.where(still_open, short - own - cov, 0.0)
    assert per_position[n : 2 * n].tobytes() == left.tobytes()
    # ... and the sums, bit for bit with np.sum of the same figures
    long_after = np.maximum(r["state"]["size"][involved], 0.0)
    qty, px = r["planned"][0][done], r["planned"][1][done]
    due = floats[2][len(floats[2]) - n :]
    sums = [
        float(np.sum(long_after)) - float(np.sum(long_before)), float(np.sum(qty * px)),
        float(r["planned"][2][done].sum()), float(cov.sum()), float(np.sum(due)),
    ]  # fmt: skip
    assert np.array(sums).tobytes() == per_position[2 * n :].tobytes()
    assert len(kind) == len(ints[0]) == len(floats[0]) == 2 * n + int(lists[5])


def test_some_rounds_owe_and_a_fund_account_fills() -> None:
    # The random plans above reach every list and the fund check (not vacuous).
    seen = np.zeros(5, dtype=np.int64)
    for seed in range(40):
        lists = _settle(_round(seed, seed % 2 == 0, True, seed % 3 == 0))[4]
        seen += lists[6:_HEAD]
    assert seen.min() > 0, seen


def test_a_kernel_that_drops_a_list_entry_fails() -> None:
    # A list missing its last entry (a position that owes, say) must differ from NumPy's.
    for seed in range(40):
        r = _round(seed, False, False, False)
        accounts, _, _, _, lists, per_position = _settle(r)
        if len(lists) > _HEAD:
            break
    expected = _expected_lists(r, accounts, per_position)
    assert lists.tolist() == expected
    assert lists[:-1].tolist() != expected
