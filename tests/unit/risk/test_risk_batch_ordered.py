"""The batch path of markets with a fund-drawdown ADL trigger (OKX, Bybit) against the
per-account path: identical journals, fund ledgers, states and step reports.

``engine/risk/ordered_batch.py`` plans a pass of isolated liquidations in the per-account
path's order, replaying the insurance fund's ledger to know the drawdown where the
per-account path asks for it, and hands the rest of the pass to the per-account path at the
first position that goes to ADL. Forcing ``ex.risk._batchable = lambda m: False`` runs the
reference. Outside numbers: OKX's worked example of a partial liquidation to tier 1
(tests/conformance/okx/vectors.json ``okx-partial-to-tier1``: 15,000 contracts in tier 3,
close 13,000) and OKX's drawdown rule (``okx-adl-trigger-drawdown``: a fund at 75% of its
8-hour peak does not trigger ADL, at 70% it does).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import EventKind, FillReason
from deleverage.engine.risk import StepReport
from deleverage.engine.risk import ordered_batch as ob
from deleverage.engine.risk.liquidate import LiquidationStage
from deleverage.liquidity import ConstantDepthBook
from deleverage.venues import preset

S = 1_000_000_000
CONFORMANCE = Path(__file__).parents[2] / "conformance"
OKX = {v["id"]: v for v in json.loads((CONFORMANCE / "okx" / "vectors.json").read_text())}
Run = tuple[Exchange, list[StepReport]]


def _spec(venue: str, **changes: Any) -> MarketSpec:
    """The venue's preset with some fields replaced."""
    return MarketSpec.from_mapping({**preset(venue).model_dump(), **changes})


def _exchange(
    spec: MarketSpec,
    *,
    longs: list[tuple[float, float]],
    shorts: list[tuple[float, float]],
    fund: float,
    depth: float | None,
    mark: float,
    protocol_share: float = 0.0,
) -> tuple[Exchange, int]:
    """Isolated longs then shorts, (size, leverage) opened at ``mark``; ``fund`` deposited."""
    ex = Exchange(insurance_protocol_share=protocol_share)
    m = ex.list_market(spec)
    ex.set_mark(m, mark)
    if fund > 0:
        ex.deposit(ex.insurance_account, fund)
    if depth is not None:
        ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=depth, half_life_s=30.0))
    tiers = spec.tier_arrays
    for sign, book in ((1.0, longs), (-1.0, shorts)):
        if not book:
            continue
        ids = ex.open_accounts(len(book), margin_mode=MarginMode.ISOLATED)
        sizes = np.array([sign * q for q, _ in book])
        notional = np.abs(sizes) * mark
        tier = np.searchsorted(tiers.floor, notional, side="right") - 1
        leverage = np.minimum([lev for _, lev in book], 1.0 / tiers.imr[tier])
        ex.deposit_many(ids, notional / leverage * 1.02 + notional * 0.002 + 1.0)
        ex.open_positions(m, ids, sizes, np.full(len(book), mark), leverage=leverage)
    return ex, m


def _run(ex: Exchange, m: int, marks: list[float], *, batch: bool) -> list[StepReport]:
    if not batch:
        ex.risk._batchable = lambda m: False  # type: ignore[method-assign]
    reports = []
    for k, mark in enumerate(marks, start=1):
        ex.set_mark(m, mark, ts_ns=k * 45 * S)
        reports.append(ex.last_step)
    return reports


def _both(build: Any, marks: list[float], counts: _Counts | None = None) -> tuple[Run, Run]:
    """(batch run, reference run) of the same book and marks; ``counts`` keeps the batch
    run's counts."""
    runs = []
    for batch in (True, False):
        ex, m = build()
        runs.append((ex, _run(ex, m, marks, batch=batch)))
        if counts is not None and batch:
            counts.freeze()
    return runs[0], runs[1]


def _assert_identical(batch: Run, reference: Run) -> None:
    """Same journal (row by row), state arrays (bit for bit), reports, fund ledger and risk
    records."""
    (ex_b, rep_b), (ex_r, rep_r) = batch, reference
    assert ex_b.journal.to_arrow().equals(ex_r.journal.to_arrow())
    arrays_b, arrays_r = ex_b.state_arrays(), ex_r.state_arrays()
    assert arrays_b.keys() == arrays_r.keys()
    for name in arrays_b:
        assert np.array_equal(arrays_b[name], arrays_r[name], equal_nan=True), name
    assert [dataclasses.astuple(r) for r in rep_b] == [dataclasses.astuple(r) for r in rep_r]
    assert ex_b.insurance_fund(0).history == ex_r.insurance_fund(0).history
    risk_b, risk_r = ex_b.risk, ex_r.risk
    assert risk_b.markets[0].fund_trigger_on == risk_r.markets[0].fund_trigger_on
    assert risk_b.markets[0].cooldown_until_ns == risk_r.markets[0].cooldown_until_ns
    assert risk_b.carried_deficit == risk_r.carried_deficit
    assert risk_b.declared_bad_debt == risk_r.declared_bad_debt
    assert risk_b.insurance_paid_by_market == risk_r.insurance_paid_by_market


def _fills(ex: Exchange, reason: FillReason) -> Any:
    frame = ex.journal.to_frame()
    return frame[(frame["kind"] == EventKind.FILL) & (frame["code"] == reason)]


class _Counts:
    """Counts the per-account closes and the positions the batch planned."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.closes = 0
        self.planned = 0
        self.frozen = False
        close, plan = LiquidationStage._close, ob.plan_in_order_nb

        def counting_close(stage: Any, *args: Any) -> None:
            self.closes += not self.frozen
            close(stage, *args)

        def counting_plan(*args: Any) -> Any:
            out = plan(*args)
            if out[1] != ob.STOP_LEDGER and not self.frozen:
                self.planned += int(np.count_nonzero(args[-5][: out[0]]))
            return out

        monkeypatch.setattr(LiquidationStage, "_close", counting_close)
        monkeypatch.setattr(ob, "plan_in_order_nb", counting_plan)

    def freeze(self) -> None:
        """Stop counting (the reference run that follows is not counted)."""
        self.frozen = True


# ------------------------------------------------------------------------ worked examples


def test_okx_partial_liquidation_to_the_first_tier_takes_the_batch_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # OKX's example at mark 1 (notional = contracts): 15,000 contracts in tier 3 (from
    # 12,001; tier 1 up to 2,000) are reduced to tier 1 in one go: close 13,000, keep 2,000.
    v = OKX["okx-partial-to-tier1"]
    i = v["inputs"]
    tiers = [
        {"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01},
        {"notional_floor": i["tier1_max_contracts"] + 1.0, "max_leverage": 33.0,
         "maintenance_rate": 0.015},
        {"notional_floor": float(i["tier3_min_contracts"]), "max_leverage": 25.0,
         "maintenance_rate": i["tier_mmr"]},
    ]  # fmt: skip
    spec = _spec("okx", tiers=tiers, lot_size=1.0, tick_size=0.0001)
    size = float(i["position_contracts"])
    counts = _Counts(monkeypatch)

    def build() -> tuple[Exchange, int]:
        # Opened at 1.03 with 25x (margin 618); at 1 the equity (168) is below the
        # maintenance (2% plus the taker fee, less the tiers' deduction of 70: 237.5) but
        # positive: a partial liquidation, at the example's mark of 1.
        return _exchange(spec, longs=[(size, 25.0)], shorts=[(size, 2.0)], fund=1e4,
                         depth=None, mark=1.03)  # fmt: skip

    batch, reference = _both(build, [1.0], counts)

    fills = _fills(batch[0], FillReason.LIQUIDATION)
    assert fills["size"].tolist()[0] == v["expected"]["contracts_to_close"]
    (long,) = fills["counterparty"].tolist()  # the seller
    assert batch[0].position(long, 0).size == v["expected"]["remaining"]
    assert counts.planned == 1  # the batch closed it
    assert counts.closes == 0
    _assert_identical(batch, reference)


def _okx_drawdown_book() -> tuple[Exchange, int]:
    # OKX's rules, one tier (0.5% maintenance), no fees; a fund of 10M. Three isolated longs
    # at 100 with 4x leverage (sizes 100,000, 20,000 and 40,000) are 25 per unit beyond
    # bankruptcy at 50 (shortfalls 2.5M, 0.5M, 1M, equally distressed: account order); a 1x
    # short of 200,000 is the ADL queue.
    spec = _spec(
        "okx", maker_fee_rate=0.0, taker_fee_rate=0.0, liquidation_fee_rate=0.0,
        tiers=[{"notional_floor": 0.0, "max_leverage": 100.0, "maintenance_rate": 0.005}],
    )  # fmt: skip
    return _exchange(
        spec, longs=[(100_000.0, 4.0), (20_000.0, 4.0), (40_000.0, 4.0)],
        shorts=[(200_000.0, 1.0)], fund=10_000_000.0, depth=None, mark=100.0,
    )  # fmt: skip


def test_okx_drawdown_trigger_stops_the_batch_where_the_fund_is_30_percent_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fund pays 2.5M (now 7.5M, 75% of its peak: no ADL, as the vector says), then 0.5M
    # (7M, 70%: the trigger is on, as the vector says); the third long goes to ADL at the
    # mark, and the fund still pays its deficit (OKX's mark-price ADL leaves it there).
    v = OKX["okx-adl-trigger-drawdown"]
    peak = v["inputs"]["insurance_fund_8h_peak"]
    assert [n / peak for n in v["inputs"]["insurance_fund_now"]] == [0.75, 0.7]
    assert v["expected"]["adl_triggered"] == [False, True]
    counts = _Counts(monkeypatch)

    batch, reference = _both(_okx_drawdown_book, [50.0], counts)

    ex, (step,) = batch
    assert counts.planned == 2  # the two the fund pays without the trigger
    assert counts.closes == 1  # the third, handed to the per-account path
    assert step.adl_rounds == 1
    adl = _fills(ex, FillReason.ADL)
    assert _fills(ex, FillReason.LIQUIDATION)["size"].tolist() == [100_000.0, 20_000.0]
    assert adl["size"].tolist() == [40_000.0]  # the third long, against the short
    assert adl["price"].tolist() == [50.0]  # at the mark
    assert ex.risk.markets[0].fund_trigger_on
    _assert_identical(batch, reference)


def test_a_funded_okx_day_takes_the_batch_path_for_every_first_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # OKX's preset, longs across its tiers (5M and 10M floors at 60,000: 84 and 167 BTC),
    # a funded fund that never draws down 30%, a book: every first pass is batched, the
    # later passes of partly closed positions go account by account, every close is made
    # once by one of the two.
    rng = np.random.default_rng(7)
    longs = list(zip(rng.uniform(0.01, 250.0, 40).tolist(), rng.uniform(5, 60, 40).tolist(),
                     strict=True))  # fmt: skip
    shorts = [(50.0, 2.0), (20.0, 3.0)]

    def build() -> tuple[Exchange, int]:
        return _exchange(_spec("okx"), longs=longs, shorts=shorts, fund=5e7, depth=2_000.0,
                         mark=60_000.0)  # fmt: skip

    counts = _Counts(monkeypatch)
    batch, reference = _both(build, [59_000.0, 57_500.0, 56_000.0, 58_000.0, 55_000.0], counts)

    closes = sum(r.liquidations for r in reference[1])
    assert counts.planned > 0
    assert counts.closes < closes
    assert counts.planned + counts.closes == closes  # each close made once, by one path
    _assert_identical(batch, reference)
    replayed = Exchange.replay(batch[0].journal)
    assert replayed.state_hash() == batch[0].state_hash()
    assert replayed.insurance_fund(0).history == batch[0].insurance_fund(0).history


# ------------------------------------------------------------------------ random books


POLICIES: list[dict[str, Any]] = [
    {"kind": "tier_down", "tier_down_target": "first"},
    {"kind": "tier_down", "tier_down_target": "next"},
    {"kind": "full"},
    {"kind": "partial", "buffer": 0.002},
    {"kind": "fixed_fraction", "fraction": 0.3, "fraction_min_notional": 100_000.0,
     "cooldown_s": 30.0},
]  # fmt: skip


@st.composite
def _books(draw: st.DrawFn) -> dict[str, Any]:
    n_long = draw(st.integers(1, 20))
    n_short = draw(st.integers(0, 6))
    sizes = st.floats(0.01, 250.0)
    return {
        "venue": draw(st.sampled_from(["okx", "bybit"])),
        # The venue's tier down to either target, or the engine's other batchable kinds.
        "policy": draw(st.sampled_from(POLICIES)),
        "longs": [(draw(sizes), draw(st.floats(2.0, 80.0))) for _ in range(n_long)],
        "shorts": [
            (draw(st.floats(0.01, 100.0)), draw(st.floats(1.0, 10.0))) for _ in range(n_short)
        ],
        # From empty to ample: the drawdown trigger fires in many books, early or late.
        "fund": draw(st.sampled_from([0.0, 1e3, 3e4, 1e5, 1e6, 1e8])),
        "depth": draw(st.sampled_from([None, 200.0, 5_000.0])),
        "protocol_share": draw(st.sampled_from([0.0, 0.25])),
        "moves": draw(st.lists(st.floats(-0.08, 0.02), min_size=1, max_size=5)),
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=_books())
def test_batch_path_matches_the_per_account_path_on_random_books(book: dict[str, Any]) -> None:
    spec = _spec(
        book["venue"],
        liquidation={**preset(book["venue"]).liquidation.model_dump(), **book["policy"]},
    )  # fmt: skip
    marks = list(60_000.0 * np.cumprod(1.0 + np.array(book["moves"])))

    def build() -> tuple[Exchange, int]:
        return _exchange(
            spec, longs=book["longs"], shorts=book["shorts"], fund=book["fund"],
            depth=book["depth"], mark=60_000.0, protocol_share=book["protocol_share"],
        )  # fmt: skip

    batch, reference = _both(build, marks)

    _assert_identical(batch, reference)


def test_window_ledger_reads_the_fund_as_its_drawdown_does() -> None:
    # The ledger as the kernel reads it gives InsuranceFund.drawdown_over_window's fraction
    # (10M deposited, 350K paid an hour later: 3.5%).
    ex, m = _okx_drawdown_book()
    fund = ex.insurance_fund(m)
    fund.cover(350_000.0, 3_600 * S, ref="A")
    ledger = ob.window_ledger(fund, 3_600 * S)

    loss = max(ledger.max_pnl - ledger.pnl, 0.0)
    _, fraction = fund.drawdown_over_window(3_600 * S)
    assert loss / ledger.max_balance == fraction == pytest.approx(0.035)
