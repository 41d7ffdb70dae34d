"""A risk step with nothing under maintenance ends after its margin calls
(``risk.step.NONE_BELOW_ENDS``, issue #20): twin against the full step.

Random books of isolated positions and cross accounts over two markets (venue presets whose
isolated liquidations take the batch path, the in-order batch path, and a plain spec) walk
through marks that call, release and liquidate positions, one ``set_mark`` at a time with the
single-mark quiet path off (every mark runs the risk step). With the shortcut on and off the
journals (row by row, every column), the state hashes, the called sets and the step reports
must be identical, and the shortcut must have ended steps that made margin calls, isolated
and cross, while others liquidated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec, preset
from deleverage.engine.events import EventKind
from deleverage.engine.risk import step as risk_step
from deleverage.engine.risk.step import RiskEngine

S = 1_000_000_000
OPENS = (1_000.0, 100.0)


def _plain(symbol: str) -> MarketSpec:
    return MarketSpec.from_mapping(
        {
            "symbol": symbol, "maker_fee_rate": 0.0, "taker_fee_rate": 0.0,
            "liquidation": {"kind": "full", "margin_call_ratio": 0.7},
            "tiers": [
                {"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01},
                {"notional_floor": 10_000.0, "max_leverage": 20.0, "maintenance_rate": 0.025},
            ],
        }
    )  # fmt: skip


def _specs(kind: str) -> list[MarketSpec]:
    if kind == "plain":
        return [_plain("M0"), _plain("M1")]
    base = preset(kind, "BTC").model_dump(mode="json")
    return [MarketSpec.from_mapping({**base, "symbol": f"M{j}"}) for j in range(2)]


def _book(seed: int, kind: str, n: int, cross_share: float) -> Exchange:
    rng = np.random.default_rng(seed)
    ex = Exchange(seed=3)
    ex.quiet_marks.enabled = False  # every mark runs the risk step
    for j, spec in enumerate(_specs(kind)):
        m = ex.list_market(spec)
        ex.set_mark(m, OPENS[j], ts_ns=1)
    ex.deposit(ex.insurance_account, 1e8)
    n_cross = int(n * cross_share)
    groups = [(ex.open_accounts(n - n_cross, margin_mode=MarginMode.ISOLATED), True)]
    if n_cross:
        groups.append((ex.open_accounts(n_cross, margin_mode=MarginMode.CROSS), False))
    for accounts, isolated in groups:
        k = len(accounts)
        sizes, levs = [], []
        for j in range(2):
            side = rng.choice([0.0, 1.0, 1.0, -1.0], k)
            sizes.append(np.round(side * rng.uniform(200.0, 8_000.0, k) / OPENS[j], 4))
            levs.append(np.round(rng.uniform(8.0, 20.0, k), 2))
        need = sum(np.abs(q) * p / lev for q, p, lev in zip(sizes, OPENS, levs, strict=True))
        room = rng.uniform(1.01, 1.3, k) if isolated else rng.uniform(1.2, 3.0, k)
        ex.deposit_many(accounts, np.maximum(need * room, 1.0))
        for j in range(2):
            held = sizes[j] != 0.0
            entry = np.full(int(held.sum()), OPENS[j])
            ex.open_positions(j, accounts[held], sizes[j][held], entry, leverage=levs[j][held])
    return ex


def _walk(seed: int, steps: int, vol: float, drift: float) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    moves = np.exp(np.cumsum(rng.normal(drift, vol, (steps, 2)), axis=0))
    return np.round(np.asarray(OPENS) * moves, 4)


def _run(
    ex: Exchange, marks: np.ndarray, monkeypatch: pytest.MonkeyPatch, on: bool,
    flag: str = "NONE_BELOW_ENDS",
) -> dict[str, int]:  # fmt: skip
    """Set the marks one at a time with ``flag`` (a switch of :mod:`.risk.step`) ``on``;
    count the steps the shortcut ended, by what they did, and the margin calls made in one
    pass (:func:`.zone_calls.tracked_calls`)."""
    monkeypatch.setattr(risk_step, flag, on)
    counts = {
        "ended": 0, "ended_calls": 0, "ended_cross_calls": 0, "liquidating": 0, "tracked": 0,
        "tracked_calls": 0,
    }  # fmt: skip
    original = RiskEngine._none_below
    ended: list[bool] = []
    tracked = risk_step.tracked_calls

    def one_pass(*args: Any) -> Any:
        out = tracked(*args)
        if out is not None:
            counts["tracked"] += 1
            counts["tracked_calls"] += len(out[1])
        return out

    monkeypatch.setattr(risk_step, "tracked_calls", one_pass)

    def spy(self: RiskEngine, m: int, spec: MarketSpec, modes: tuple[bool, bool]) -> bool:
        answer = original(self, m, spec, modes)
        ended.append(answer)  # the vault holds nothing here: True ends the step
        return answer

    monkeypatch.setattr(RiskEngine, "_none_below", spy)
    isolated_step = RiskEngine._isolated_step

    def isolated_spy(self: RiskEngine, m: int, ts: int, *rest: Any) -> Any:
        # A market of isolated traders alone asks its scan, not ``_none_below``: the same
        # question (the scan is the one the margin calls just made, read from the cache)
        level = self.ex.markets[m].spec.liquidation.margin_call_ratio
        ended.append(
            risk_step.NONE_BELOW_ENDS and not len(self.ex.isolated_scan(m, level)["below"])
        )
        return isolated_step(self, m, ts, *rest)

    monkeypatch.setattr(RiskEngine, "_isolated_step", isolated_spy)
    for t, row in enumerate(marks):
        for m, price in enumerate(row.tolist()):
            ended.clear()
            rows = len(ex.journal)
            ex.set_mark(m, price, ts_ns=(10 + t) * S)
            report = ex.last_step
            assert report is not None
            if report.liquidations:
                counts["liquidating"] += 1
            if on and any(ended):
                # the mark's row and the calls, nothing else
                assert report.liquidations == 0
                assert len(ex.journal) - rows == 1 + report.margin_calls
                counts["ended"] += 1
                if report.margin_calls:
                    counts["ended_calls"] += 1
                    journal = ex.journal.to_arrow().slice(rows)
                    kinds = journal.column("kind").to_numpy()
                    called = journal.column("account").to_numpy()[
                        kinds == int(EventKind.MARGIN_CALL)
                    ]
                    modes = ex._positions[m].mode[called]
                    if (modes == int(MarginMode.CROSS)).any():
                        counts["ended_cross_calls"] += 1
    monkeypatch.setattr(RiskEngine, "_none_below", original)
    monkeypatch.setattr(RiskEngine, "_isolated_step", isolated_step)
    monkeypatch.setattr(risk_step, "tracked_calls", tracked)
    return counts


def _twin(
    seed: int, kind: str, monkeypatch: pytest.MonkeyPatch, *, n: int = 600,
    cross_share: float = 0.3, steps: int = 120, vol: float = 0.004, drift: float = -0.0015,
    setup: Callable[[Exchange], None] | None = None, flag: str = "NONE_BELOW_ENDS",
) -> dict[str, int]:  # fmt: skip
    marks = _walk(seed, steps, vol, drift)
    on, off = _book(seed, kind, n, cross_share), _book(seed, kind, n, cross_share)
    if setup is not None:  # the same settings on both books, before the walk
        setup(on)
        setup(off)
    counts = _run(on, marks, monkeypatch, True, flag)
    off_counts = _run(off, marks, monkeypatch, False, flag)
    if flag == "TRACKED_CALLS":
        assert off_counts["tracked"] == 0
    ja, jb = on.journal.to_arrow(), off.journal.to_arrow()
    assert ja.num_rows == jb.num_rows
    for name in ja.column_names:  # row by row, every column
        assert np.array_equal(
            ja.column(name).to_numpy(zero_copy_only=False),
            jb.column(name).to_numpy(zero_copy_only=False),
        ), name
    assert on.state_hash() == off.state_hash()
    for ra, rb in zip(on.risk.markets, off.risk.markets, strict=True):
        assert np.array_equal(ra.called_isolated, rb.called_isolated)
        assert np.array_equal(ra.called_cross, rb.called_cross)
    assert on.risk.reports == off.risk.reports
    return counts


@pytest.mark.parametrize("kind", ["binance", "okx", "plain"])
def test_steps_ended_after_their_calls_equal_the_full_step(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = _twin(11, kind, monkeypatch)
    assert counts["ended_calls"] > 5  # steps that only called positions took the shortcut
    assert counts["ended_cross_calls"] > 0  # cross accounts among them
    assert counts["liquidating"] > 0  # and the walk liquidated too (those ran the rounds)


def _liquidators(latency_s: float, capital: float) -> Callable[[Exchange], None]:
    def setup(ex: Exchange) -> None:
        for m in range(2):
            ex.risk.set_liquidators(
                m, latency_s=latency_s, capital_per_step=capital, mark_interval_s=1.0
            )

    return setup


@pytest.mark.parametrize(
    ("kind", "latency_s", "capital"),
    [("binance", 2.5, 5e4), ("okx", 2.5, 5e4), ("plain", 0.5, np.inf), ("bybit", 1.5, 2e4)],
)
def test_liquidator_latency_and_capital_caps(
    kind: str, latency_s: float, capital: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Liquidations waiting out a latency or a capital cap: a step that ends after its calls
    must not lose the pending ones (they settle in the step's end, shared by both paths)."""
    counts = _twin(3, kind, monkeypatch, setup=_liquidators(latency_s, capital))
    assert counts["ended_calls"] > 0


@pytest.mark.parametrize("kind", ["bitmex", "bybit", "drift", "dydx_v4", "hyperliquid"])
def test_other_presets(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other venues' rules (their ADL queues, fund rules, liquidation orders)."""
    counts = _twin(4, kind, monkeypatch)
    assert counts["ended_calls"] > 0


def test_isolated_only_book(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _twin(11, "binance", monkeypatch, cross_share=0.0)
    assert counts["ended_calls"] > 3
    assert counts["ended_cross_calls"] == 0


@settings(
    max_examples=12, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["binance", "okx", "plain"]),
    cross_share=st.sampled_from([0.0, 0.2, 0.6]),
    vol=st.floats(0.001, 0.01),
    drift=st.floats(-0.003, 0.003),
)
def test_random_walks_equal_the_full_step(
    seed: int, kind: str, cross_share: float, vol: float, drift: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _twin(seed, kind, monkeypatch, n=200, cross_share=cross_share, steps=60, vol=vol,
          drift=drift)  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "cross_share"), [("binance", 0.3), ("okx", 0.0), ("plain", 0.3), ("bybit", 0.0)]
)
def test_margin_calls_in_one_pass_equal_the_general_path(
    kind: str, cross_share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common isolated case of the margin calls in one pass
    (:func:`.zone_calls.tracked_calls`, ``risk.step.TRACKED_CALLS``) against the general
    path (the ask, the cached scan, the tracker's step and its call update): the same
    journals, state, called sets and reports, with most steps' calls made in one pass and
    calls among them."""
    counts = _twin(11, kind, monkeypatch, cross_share=cross_share, flag="TRACKED_CALLS")
    assert counts["tracked"] > 100
    assert counts["tracked_calls"] > 0
    assert counts["liquidating"] > 0


@settings(
    max_examples=8, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["binance", "okx", "plain"]),
    cross_share=st.sampled_from([0.0, 0.3]),
    vol=st.floats(0.001, 0.02),
    drift=st.floats(-0.004, 0.004),
)
def test_random_walks_in_one_pass_equal_the_general_path(
    seed: int, kind: str, cross_share: float, vol: float, drift: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _twin(seed, kind, monkeypatch, n=200, cross_share=cross_share, steps=60, vol=vol,
          drift=drift, flag="TRACKED_CALLS")  # fmt: skip
