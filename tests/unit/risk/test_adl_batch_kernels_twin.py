"""The compiled parts of the batch ADL (``engine/risk/adl_batch_kernels.py``) against the NumPy
forms they replaced in ``BatchStage._batch_adl_side`` (kept below, verbatim, as the oracles).

Random sides of a batch ADL (needs and queue sizes on a coarse grid, so cumulative sums tie
and differ by float dust, or spread; counterparties serving one or many rounds; equities
negative, zero, signed zeros; prices on both sides of the mark) give the same fills and the
same capped prices, bit for bit. Each twin is shown to catch a deliberately wrong fast path.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.risk.adl_batch_kernels import capped_prices_nb, match_needs_nb

FloatArray = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]


def _match_needs_numpy(
    cum_need: FloatArray, cum_av: FloatArray, total: float, n_queue: int
) -> tuple[IntpArray, IntpArray, FloatArray]:
    """The NumPy form (batch.py before liq-step6)."""
    end = min(float(cum_need[-1]), total)
    cum_need = np.minimum(cum_need, end)
    breaks = np.union1d(cum_need, cum_av[cum_av < end])
    starts = np.concatenate(([0.0], breaks[:-1]))
    lengths = breaks - starts
    keep = lengths > 0
    mids = (starts + lengths / 2)[keep]
    lengths = lengths[keep]
    i = np.minimum(np.searchsorted(cum_need, mids, side="right"), len(cum_need) - 1)
    j = np.minimum(np.searchsorted(cum_av, mids, side="right"), n_queue - 1)
    return i, j, np.asarray(lengths, dtype=np.float64)


def _capped_prices_numpy(
    price: FloatArray,
    i: IntpArray,
    counterparties: npt.NDArray[np.int64],
    lengths: FloatArray,
    cp_equity: FloatArray,
    mark: float,
    side: float,
) -> FloatArray:
    """The NumPy form (``BatchStage._capped_adl_prices`` before liq-step6, after its early
    return and with the floored equity given)."""
    adverse = side * (price - mark)
    _, slot = np.unique(counterparties, return_inverse=True)
    taken = np.bincount(slot, weights=lengths)[slot]
    bounds = np.searchsorted(i, np.arange(len(price)))
    room = np.minimum.reduceat(cp_equity / taken, bounds) * (1.0 - 1e-9)
    return np.asarray(
        np.where(adverse > 0.0, mark + side * np.minimum(adverse, room), price), dtype=np.float64
    )


def _side(
    rng: np.random.Generator, n_bankrupt: int, n_queue: int, grid: bool
) -> tuple[FloatArray, FloatArray, float]:
    """Cumulative needs (the served ones, as ``_batch_adl_side`` keeps them) and queue sizes."""
    if grid:  # 0.1 + 0.2 != 0.3: cumulative sums that tie or miss by dust
        need = rng.choice([0.1, 0.2, 0.3, 1.0, 2.5], n_bankrupt)
        avail = rng.choice([0.1, 0.2, 0.3, 0.6, 1.0, 3.0], n_queue)
    else:
        need = rng.uniform(0.001, 10.0, n_bankrupt).round(3)
        avail = rng.uniform(0.001, 10.0, n_queue)
    cum_need = np.cumsum(need)
    cum_av = np.cumsum(avail)
    total = float(cum_av[-1])
    served = cum_need <= total * (1 + 1e-12)
    if not served.any():
        cum_need = cum_need[:1] * 0.0 + min(float(cum_need[0]), total)
        return cum_need, cum_av, total
    return cum_need[served], cum_av, total


@settings(max_examples=400, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_bankrupt=st.integers(1, 400),
    n_queue=st.integers(1, 400),
    grid=st.booleans(),
)
def test_match_needs_is_the_numpy_merge(
    seed: int, n_bankrupt: int, n_queue: int, grid: bool
) -> None:
    # Arrange
    rng = np.random.default_rng(seed)
    cum_need, cum_av, total = _side(rng, n_bankrupt, n_queue, grid)

    # Act
    i, j, lengths = match_needs_nb(cum_need, cum_av, total, n_queue)

    # Assert: the same fills, bit for bit
    want_i, want_j, want_lengths = _match_needs_numpy(cum_need, cum_av, total, n_queue)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(j, want_j)
    assert lengths.tobytes() == want_lengths.tobytes()


@settings(max_examples=400, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_bankrupt=st.integers(1, 300),
    n_queue=st.integers(1, 300),
    grid=st.booleans(),
    side=st.sampled_from([1.0, -1.0]),
    equities=st.sampled_from(["spread", "weak", "signed_zeros"]),
)
def test_capped_prices_are_the_numpy_caps(
    seed: int, n_bankrupt: int, n_queue: int, grid: bool, side: float, equities: str
) -> None:
    # Arrange: the fills of a side, counterparties' equities, prices around the mark
    rng = np.random.default_rng(seed)
    cum_need, cum_av, total = _side(rng, n_bankrupt, n_queue, grid)
    i, j, lengths = match_needs_nb(cum_need, cum_av, total, n_queue)
    queue_accounts = rng.choice(10 * n_queue, n_queue, replace=False).astype(np.int64)
    counterparties = queue_accounts[j]
    mark = 100.0
    if equities == "spread":
        equity = rng.uniform(0.0, 50.0, n_queue)
    elif equities == "weak":
        equity = rng.choice([-3.0, 0.0, 0.01, 0.5, 40.0], n_queue)
    else:
        equity = rng.choice([-0.0, 0.0, 1.0], n_queue)
    cp_equity = np.maximum(equity[j], 0.0)
    price = mark + rng.choice([-1.0, 1.0, 0.0], len(cum_need)) * rng.uniform(0.0, 30.0)

    # Act
    got = capped_prices_nb(price, i, j, lengths, cp_equity, n_queue, mark, side)

    # Assert: the same prices, bit for bit
    want = _capped_prices_numpy(price, i, counterparties, lengths, cp_equity, mark, side)
    assert got.tobytes() == want.tobytes()


def test_the_twins_catch_a_wrong_fast_path() -> None:
    # A merge that drops the queue's breaks, and a cap that does not spread a counterparty's
    # equity over all it takes, both differ from the NumPy forms.
    cum_need = np.cumsum([1.0, 1.0])
    cum_av = np.cumsum([0.5, 1.5])
    i, j, lengths = match_needs_nb(cum_need, cum_av, 2.0, 2)
    want = _match_needs_numpy(cum_need, cum_av, 2.0, 2)
    assert lengths.tolist() == want[2].tolist() == [0.5, 0.5, 1.0]
    assert len(np.diff(np.concatenate(([0.0], cum_need)))) != len(want[2])  # needs alone
    # One counterparty (slot 1) serves both rounds: its room is E / (0.5 + 1.0), not E / 1.0.
    price = np.array([110.0, 110.0])
    cp_equity = np.full(len(j), 3.0)
    got = capped_prices_nb(price, i, j, lengths, cp_equity, 2, 100.0, 1.0)
    ref = _capped_prices_numpy(price, i, np.array([7, 9])[j], lengths, cp_equity, 100.0, 1.0)
    unspread = capped_prices_nb(price, i, j, lengths, cp_equity, 2 * len(j), 100.0, 1.0)
    assert got.tobytes() == ref.tobytes()
    wrong_j = np.arange(len(j), dtype=np.intp)  # every fill its own counterparty
    wrong = capped_prices_nb(price, i, wrong_j, lengths, cp_equity, len(j), 100.0, 1.0)
    assert wrong.tobytes() != ref.tobytes()
    assert unspread.tobytes() == ref.tobytes()  # the slot count alone changes nothing
