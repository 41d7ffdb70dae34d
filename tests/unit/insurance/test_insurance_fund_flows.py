"""Insurance fund ledger: inflows, covers, depletion, history, snapshots, validation."""

from __future__ import annotations

import json
import math

import pytest

from deleverage.engine.insurance_fund import FlowKind, FundRecord, InsuranceFund
from deleverage.errors import ValidationError

S_NS = 10**9


def _fund(protocol_share: float = 0.25) -> InsuranceFund:
    return InsuranceFund("ETH-PERP", protocol_share=protocol_share, unstake_cooldown_s=60.0)


def test_a_new_fund_is_empty() -> None:
    fund = _fund()
    assert (fund.balance, fund.total_shares, fund.share_price) == (0.0, 0.0, 1.0)
    assert fund.history == ()
    assert fund.depleted


def test_the_first_inflow_into_a_fund_without_stakers_belongs_to_the_protocol() -> None:
    fund = _fund(protocol_share=0.25)
    fund.receive(1_000.0, 0, ref="fees")
    assert fund.balance == 1_000.0
    assert fund.protocol_value == pytest.approx(1_000.0)
    assert [r.kind for r in fund.history] == [FlowKind.FEE_INFLOW, FlowKind.PROTOCOL_REVENUE]
    assert [r.amount for r in fund.history] == [750.0, 250.0]


def test_a_zero_inflow_records_nothing() -> None:
    fund = _fund()
    fund.receive(0.0, 0)
    assert fund.history == ()


def test_cover_pays_the_whole_shortfall_when_the_fund_can() -> None:
    fund = _fund()
    fund.receive(1_000.0, 0, kind="protocol_revenue")
    assert fund.cover(300.0, S_NS, ref=12) == 300.0
    assert fund.balance == 700.0
    assert fund.history[-1] == FundRecord(S_NS, FlowKind.COVER_SHORTFALL, -300.0, 700.0, 12, 0.0)


def test_cover_beyond_the_balance_pays_the_balance_and_leaves_the_rest_to_the_engine() -> None:
    # Arrange: a staker with a pending request, and the protocol.
    fund = _fund(protocol_share=0.0)
    fund.receive(400.0, 0, kind="protocol_revenue")
    fund.stake("alice", 600.0, 0, available_cash=600.0)
    fund.request_unstake("alice", 600.0, 0)
    # Act
    paid = fund.cover(2_500.0, S_NS, ref="acct-9")
    # Assert: 1,000 paid, 1,500 left for the backstop / ADL; the shares are worthless and gone.
    assert paid == 1_000.0
    assert fund.balance == 0.0
    assert fund.depleted
    assert (fund.total_shares, fund.protocol_shares, fund.stakers) == (0.0, 0.0, ())
    assert fund.pending_unstake("alice") is None
    fund.check_invariants()


def test_a_depleted_fund_restarts_at_price_one_with_the_next_inflow() -> None:
    fund = _fund(protocol_share=0.5)
    fund.stake("alice", 100.0, 0, available_cash=100.0)
    fund.cover(100.0, S_NS)
    fund.receive(10.0, 2 * S_NS)
    shares = fund.stake("bob", 10.0, 3 * S_NS, available_cash=10.0)
    assert fund.share_price == 1.0
    assert shares == 10.0
    assert fund.protocol_value == pytest.approx(10.0)
    fund.check_invariants()


def test_cover_from_an_empty_fund_pays_nothing_and_records_nothing() -> None:
    fund = _fund()
    assert fund.cover(50.0, 0) == 0.0
    assert fund.history == ()


def test_a_loss_write_down_is_recorded_as_loss() -> None:
    fund = _fund()
    fund.receive(100.0, 0, kind="protocol_revenue")
    fund.cover(30.0, S_NS, kind="loss", ref="amm-deficit")
    assert fund.history[-1].kind is FlowKind.LOSS
    assert fund.cumulative_pnl == 70.0


def test_balance_equals_the_sum_of_the_history() -> None:
    fund = _fund()
    fund.receive(1_000.0, 0)
    fund.stake("a", 500.0, S_NS, available_cash=500.0)
    fund.cover(200.0, 2 * S_NS)
    fund.receive(50.0, 3 * S_NS, kind="liquidation_penalty")
    fund.request_unstake("a", fund.staker_shares("a") / 2, 4 * S_NS)
    fund.unstake("a", 100 * S_NS)
    assert fund.balance == pytest.approx(math.fsum(r.amount for r in fund.history), rel=1e-12)
    fund.check_invariants()


def test_history_frame_has_one_row_per_record_with_readable_kinds() -> None:
    fund = _fund()
    fund.receive(100.0, 0, ref=3)
    fund.stake("a", 50.0, S_NS, available_cash=50.0)
    frame = fund.history_frame()
    assert list(frame.columns) == ["ts_ns", "kind", "amount", "balance_after", "ref", "shares"]
    assert list(frame["kind"]) == ["fee_inflow", "protocol_revenue", "stake"]
    assert str(frame["ts_ns"].dtype) == "int64"
    assert frame["amount"].sum() == pytest.approx(fund.balance)
    assert list(frame["ref"]) == [3, 3, "a"]


def test_empty_history_frame_keeps_its_columns() -> None:
    assert len(_fund().history_frame().columns) == 6


def test_records_are_immutable() -> None:
    fund = _fund()
    fund.receive(1.0, 0)
    with pytest.raises(AttributeError):
        fund.history[0].amount = 5.0  # type: ignore[misc]


def test_time_may_not_go_backwards_and_the_refusal_changes_nothing() -> None:
    fund = _fund()
    fund.receive(10.0, 5 * S_NS)
    before = fund.snapshot()
    with pytest.raises(ValidationError, match=r"`ts_ns` must not precede the last record"):
        fund.receive(10.0, 4 * S_NS)
    assert fund.snapshot() == before


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda f: f.receive(-1.0, 0), "amount"),
        (lambda f: f.receive(math.inf, 0), "amount"),
        (lambda f: f.receive(1.0, 0, kind="stake"), "kind"),
        (lambda f: f.receive(1.0, 0, kind="gift"), "kind"),
        (lambda f: f.receive(1.0, 1.5), "ts_ns"),
        (lambda f: f.cover(-1.0, 0), "shortfall"),
        (lambda f: f.cover(1.0, 0, kind="fee_inflow"), "kind"),
    ],
)
def test_bad_flow_arguments_name_the_field(call: object, field: str) -> None:
    fund = _fund()
    with pytest.raises(ValidationError) as info:
        call(fund)  # type: ignore[operator]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol_share": 1.5}, "`protocol_share` must be in [0, 1], was 1.5"),
        ({"unstake_cooldown_s": -1.0}, "`unstake_cooldown_s` must be >= 0, was -1.0"),
        ({"drawdown_window_s": 0.0}, "`drawdown_window_s` must be > 0, was 0.0"),
        ({"drawdown_alert_fraction": 0.0}, "`drawdown_alert_fraction` must be in (0, 1], was 0.0"),
        ({"protocol_share": math.nan}, "`protocol_share` must be finite, was nan"),
    ],
)
def test_bad_configuration_is_refused_with_the_field_value_and_rule(
    kwargs: dict[str, float], message: str
) -> None:
    config: dict[str, float] = {"protocol_share": 0.5, "unstake_cooldown_s": 1.0, **kwargs}
    with pytest.raises(ValidationError) as info:
        InsuranceFund("X", **config)
    assert str(info.value) == message


# --- snapshots ---------------------------------------------------------------------------------


def _busy_fund() -> InsuranceFund:
    fund = _fund(protocol_share=0.3)
    fund.receive(1_000.0, 0, kind="protocol_revenue", ref="seed")
    fund.stake("a", 700.0, S_NS, available_cash=1_000.0)
    fund.stake(5, 300.0, S_NS, available_cash=300.0)
    fund.receive(77.7, 2 * S_NS, ref=5)
    fund.request_unstake("a", 123.4, 3 * S_NS)
    fund.cover(250.0, 4 * S_NS, ref=9)
    return fund


def test_snapshot_round_trips_through_json_to_an_equal_fund() -> None:
    fund = _busy_fund()
    restored = InsuranceFund.from_snapshot(json.loads(json.dumps(fund.snapshot())))
    assert restored.snapshot() == fund.snapshot()
    assert restored.staker_shares(5) == fund.staker_shares(5)
    assert restored.drawdown_over_window(4 * S_NS) == fund.drawdown_over_window(4 * S_NS)


def test_a_restored_fund_replays_the_same_future_as_the_original() -> None:
    # Arrange
    original = _busy_fund()
    restored = InsuranceFund.from_snapshot(original.snapshot())
    # Act: the same operations on both.
    for fund in (original, restored):
        fund.receive(12.5, 5 * S_NS, kind="liquidation_penalty")
        fund.unstake("a", 100 * S_NS)
        fund.cover(40.0, 101 * S_NS)
    # Assert
    assert restored.snapshot() == original.snapshot()


def test_a_snapshot_with_missing_keys_is_refused() -> None:
    data = _busy_fund().snapshot()
    del data["history"]
    with pytest.raises(ValidationError, match=r"`snapshot` is missing these keys"):
        InsuranceFund.from_snapshot(data)


def test_a_snapshot_with_a_malformed_record_is_refused() -> None:
    data = _busy_fund().snapshot()
    data["history"][0][1] = "windfall"
    with pytest.raises(ValidationError, match=r"`snapshot` is malformed"):
        InsuranceFund.from_snapshot(data)
