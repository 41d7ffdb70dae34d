"""The cross index built from one compiled pass (:func:`.cross_kernels.cross_terms_nb`'s ``E``,
``MM`` and slopes, :meth:`.MarginScans._cross_scan`) against the build from the margin state
(:func:`.kernels.accumulate_market_nb`, market by market, as :meth:`.MarginScans.margin_state`
computes it) and :func:`.cross_kernels.slopes_nb`: the same figures bit for bit, so the same
index (order, bounds, near set, anchor), on random books over one to three markets with
isolated positions, accounts without positions, non-traders and equity at or below zero. A
build from slopes at another level must differ (the comparison can fail).

Also the fresh cross calls' ratios that :meth:`.MarginScans.cross_warn_ratios` takes from a
bounded scan's own evaluation (:func:`.cross_kernels.bounded_scan_nb`), against the kernel it
would call for them, on a small cross day."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine import scans as scans_mod
from deleverage.engine.cross_index import CrossIndex
from deleverage.engine.cross_kernels import bounded_scan_nb, cross_terms_nb
from deleverage.engine.kernels import accumulate_market_nb
from deleverage.engine.risk import step as step_mod
from deleverage.engine.scans import MarginScans
from deleverage.sim.runner import Simulation
from deleverage.venues import preset

_PRESETS = [("binance", "BTCUSDT"), ("okx", "BTC"), ("binance", "BTCUSD_PERP")]
_MARKS = [60_000.0, 3_000.0, 2_000.0]


def _book(seed: int, n_m: int, n: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    tiers = [preset(v, s).tier_arrays for v, s in _PRESETS[:n_m]]
    marks = np.array(_MARKS[:n_m]) * rng.uniform(0.9, 1.1, n_m)
    sizes = [
        np.round(rng.uniform(-3.0, 3.0, n) * 50_000.0 / p * (rng.random(n) < 0.7), 4) for p in marks
    ]
    notional = sum(np.abs(s) * p for s, p in zip(sizes, marks, strict=True))
    return {
        "tiers": tiers,
        "marks": marks,
        "sizes": sizes,
        "entries": [p * rng.uniform(0.95, 1.05, n) for p in marks],
        "modes": [(rng.random(n) < 0.15).astype(np.int8) for _ in marks],
        "cash": notional * rng.uniform(-0.02, 0.1, n),
        "trader": rng.random(n) < 0.95,
        "leverage": rng.choice([0.0, 5.0, 20.0], n),
        "margin": rng.uniform(0.0, 100.0, n),
    }


def _margin_state(b: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    n = len(b["cash"])
    ce, cm, ci, te = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for k, t in enumerate(b["tiers"]):
        accumulate_market_nb(
            b["sizes"][k], b["entries"][k], b["margin"], b["modes"][k], b["leverage"],
            float(b["marks"][k]), t.floor, t.imr, t.mmr, t.cum, t.min_margin, ce, cm, ci, te,
            b["cash"], k == 0, t.initial_fee,
        )  # fmt: skip
    return ce, cm


def _terms(b: dict[str, Any], level: float) -> tuple[np.ndarray, ...]:
    n = len(b["cash"])
    out = tuple(np.empty(n) for _ in range(4))
    t = b["tiers"]
    cross_terms_nb(
        np.arange(n, dtype=np.int64), tuple(b["sizes"]), tuple(b["entries"]), tuple(b["modes"]),
        b["cash"], b["marks"], tuple(x.floor for x in t), tuple(x.mmr for x in t),
        tuple(x.cum for x in t), np.array([x.min_margin for x in t]), level, *out,
    )  # fmt: skip
    return out


def _index(b: dict[str, Any], level: float, e: Any, mt: Any, slopes: Any) -> CrossIndex:
    index = CrossIndex(level)
    index.build(b["marks"], b["sizes"], b["modes"], b["tiers"], e, mt, b["trader"], slopes)
    return index


def _same_index(a: CrossIndex, b: CrossIndex) -> bool:
    arrays = ["acc", "q", "near", "near_by_dist", "near_dist", "p0", "p1"]
    same = all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays)
    same = same and a.n_near == b.n_near
    pairs = zip(a.in_acc + a.in_q, b.in_acc + b.in_q, strict=True)
    return same and all(np.array_equal(x, y) for x, y in pairs)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_m=st.integers(1, 3),
    level=st.sampled_from([0.5, 0.8, 1.0]),
)
def test_build_from_one_pass_equals_build_from_margin_state(
    seed: int, n_m: int, level: float
) -> None:
    b = _book(seed, n_m, 3_000)
    ce, cm = _margin_state(b)
    e, mt, k, k1 = _terms(b, level)
    assert np.array_equal(e, ce)  # the margin state's cross equity, bit for bit
    assert np.array_equal(mt, cm)  # and cross maintenance
    slow = _index(b, level, ce, cm, None)  # slopes_nb market by market
    fast = _index(b, level, e, mt, [k, k1])
    assert _same_index(fast, slow)


def test_wrong_slopes_change_the_index() -> None:
    b = _book(3, 3, 3_000)
    ce, cm = _margin_state(b)
    slow = _index(b, 0.8, ce, cm, None)
    _, _, k, k1 = _terms(b, 0.8 + 1e-3)  # slopes at another level
    assert not _same_index(_index(b, 0.8, ce, cm, [k, k1]), slow)


# ----------------------------------------------------------------- the fresh calls' ratios


def _cross_day_ratios(monkeypatch: Any, scale: float = 1.0) -> dict[str, int]:
    """Run a small cross day of benchmarks/cascade_day.py on the scan's path (the fused
    calls of :mod:`.cross_step` off), comparing every :meth:`.MarginScans.cross_warn_ratios`
    answer with :meth:`.MarginScans._warn_ratios` (the kernel it would call). ``scale``:
    multiply the bounded scans' evaluated ratios (a wrong fast path)."""
    sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
    from cascade_day import cross_scenario  # type: ignore[import-not-found]

    seen = {"compared": 0, "evaluated": 0, "differ": 0}
    real, kernel = MarginScans.cross_warn_ratios, bounded_scan_nb

    def spy(self: MarginScans, m: int, level: float, scan: Any, pick: np.ndarray) -> Any:
        out = real(self, m, level, scan, pick)
        if pick.any() and "warn_ratio" not in scan:
            acc = np.asarray(scan["warn"], dtype=np.int64)[pick]
            want = self._warn_ratios(m, level, acc)
            seen["compared"] += 1
            seen["differ"] += not np.array_equal(out, want)
            seen["evaluated"] += bool(np.isin(acc, scan.evaluated[0]).all())
        return out

    def wrong(*args: Any) -> Any:
        *head, ratio = kernel(*args)
        return (*head, ratio * scale)

    monkeypatch.setattr(step_mod, "cross_calls", lambda *args: None)
    monkeypatch.setattr(MarginScans, "cross_warn_ratios", spy)
    monkeypatch.setattr(scans_mod, "bounded_scan_nb", wrong)
    Simulation(cross_scenario(3_000, 1_800.0)).run()
    return seen


def test_fresh_ratios_from_the_scan_equal_the_kernels(monkeypatch: Any) -> None:
    """The ratios of the fresh cross calls taken from the bounded scan's own evaluation are
    :func:`.cross_kernels.cross_subset_scan_nb`'s figures for them, bit for bit; with ratios
    off by one part in 10^12 the comparison fails."""
    seen = _cross_day_ratios(monkeypatch)
    assert seen["differ"] == 0, seen
    assert seen["evaluated"] > 0, seen  # the scans' figures were used
    assert _cross_day_ratios(monkeypatch, 1.0 + 1e-12)["differ"] > 0
