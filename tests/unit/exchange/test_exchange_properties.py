"""Property tests: money is conserved and every fill has two sides after every operation.

Random sequences of deposits, withdrawals, trades (cross and isolated, traders against each
other and against the outside liquidity), mark moves, margin moves and settings run on 2-3
markets with random tier tables. Some operations are refused; a refusal must leave the state
untouched. After every step the checks below hold, the conservation equation being recomputed
here from the raw state arrays as an oracle independent of :meth:`Exchange.conservation`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc
from hypothesis import event, given, settings

from deleverage import Exchange, MarginMode
from deleverage.engine.events import EventKind
from deleverage.errors import DeleverageError, InvariantError
from strategies import (
    LIQUIDITY,
    AddMarginOp,
    EngineScenario,
    Operation,
    RemoveMarginOp,
    SetLeverageOp,
    TradeOp,
    WithdrawOp,
    account_id,
    build_scenario,
    engine_scenarios,
    run_operation,
)

RTOL = 1e-9
ATOL = 1e-6  # quote: float noise allowed on a margin check after the fact


def _float_arrays(ex: Exchange) -> dict[str, npt.NDArray[np.float64]]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in ex.state_arrays().items()}


def _conservation_oracle(ex: Exchange) -> None:
    """``sum(cash) + sum(isolated margin) + sum(size x (mark - entry)) == net deposits``."""
    arrays = _float_arrays(ex)
    marks = arrays["marks"]
    money = [arrays["cash"]]
    scale = float(np.sum(np.abs(arrays["cash"])) + np.sum(np.abs(arrays["net_deposit"])))
    for m in range(len(ex.markets)):
        size, entry = arrays[f"{m}.size"], arrays[f"{m}.entry"]
        money += [arrays[f"{m}.isolated_margin"], size * marks[m], -size * entry]
        scale += float(
            np.sum(np.abs(arrays[f"{m}.isolated_margin"]))
            + np.sum(np.abs(size)) * marks[m]
            + np.sum(np.abs(size * entry))
        )
    total = sum(float(np.sum(x)) for x in money)
    net = float(np.sum(arrays["net_deposit"]))
    assert abs(total - net) <= RTOL * max(scale, 1.0), (total, net)
    assert net == np.float64(ex.net_deposits) or abs(net - ex.net_deposits) <= RTOL * scale


def _check_state(ex: Exchange) -> None:
    # The engine's own equation ...
    c = ex.conservation()
    assert c.holds, c
    assert c.negative_equity >= 0.0
    # ... and the oracle's.
    _conservation_oracle(ex)
    arrays = _float_arrays(ex)
    for m in range(len(ex.markets)):
        size = arrays[f"{m}.size"]
        # Every fill has two sides: open interest nets to zero in each market.
        assert abs(float(np.sum(size))) <= RTOL * max(float(np.sum(np.abs(size))), 1e-9)
        flat = size == 0.0
        # A flat position has no entry and holds no isolated margin; cross ones never do.
        assert np.all(arrays[f"{m}.entry"][flat] == 0.0)
        assert np.all(arrays[f"{m}.isolated_margin"][flat] == 0.0)
        cross = arrays[f"{m}.mode"] == MarginMode.CROSS
        assert np.all(arrays[f"{m}.isolated_margin"][cross] == 0.0)
        assert np.all(arrays[f"{m}.entry"] >= 0.0)
    # The fee account holds exactly the fees the journal's fills charged (plus any transfers
    # the journal shows into or out of it).
    table = ex.journal.to_arrow()
    fills = table.filter(pc.equal(table["kind"], int(EventKind.FILL)))
    transfers = table.filter(pc.equal(table["kind"], int(EventKind.TRANSFER)))
    amounts = transfers["amount"].to_numpy()
    flows = [
        fills["fee"].to_numpy(),
        fills["counterparty_fee"].to_numpy(),
        amounts[transfers["counterparty"].to_numpy() == ex.fee_account],
        -amounts[transfers["account"].to_numpy() == ex.fee_account],
    ]
    expected = sum(float(np.sum(f)) for f in flows)
    scale = sum(float(np.sum(np.abs(f))) for f in flows)
    assert abs(ex.cash(ex.fee_account) - expected) <= RTOL * max(scale, 1e-6)


def _position_meets_initial_margin(ex: Exchange, a: int, m: int) -> None:
    pos = ex.position(a, m)
    if pos.size == 0.0:
        return  # settings on a flat position need no margin
    if pos.margin_mode is MarginMode.ISOLATED:
        initial = float(ex.valuation(m)["initial"][a])
        assert pos.isolated_margin + pos.unrealized_pnl >= initial - ATOL, (a, m)
    else:
        assert ex.account_margins(a).free_collateral >= -ATOL, (a, m)


def _check_gate(ex: Exchange, op: Operation, traders: list[int], sizes: dict[int, float]) -> None:
    """What an accepted operation promises: margin and cash checks held."""
    if isinstance(op, WithdrawOp | AddMarginOp):
        margins = ex.account_margins(traders[op.account])
        assert margins.cash >= -ATOL
        assert margins.free_collateral >= -ATOL
    elif isinstance(op, RemoveMarginOp | SetLeverageOp):
        _position_meets_initial_margin(ex, traders[op.account], op.market)
    elif isinstance(op, TradeOp):
        for i in (op.buyer, op.seller):
            if i == LIQUIDITY:
                continue
            a = account_id(ex, traders, i)
            old, new = sizes[a], ex.position(a, op.market).size
            if abs(new) > abs(old) or old * new < 0:  # opened or increased risk
                _position_meets_initial_margin(ex, a, op.market)


def _run(scenario: EngineScenario) -> Exchange:
    ex, traders = build_scenario(scenario, check_invariants=True)
    _check_state(ex)
    for op in scenario.operations:
        before = (ex.state_hash(), len(ex.journal))
        sizes = (
            {a: ex.position(a, op.market).size for a in traders} if isinstance(op, TradeOp) else {}
        )
        try:
            run_operation(ex, op, traders)
        except InvariantError:
            raise
        except DeleverageError as exc:
            event(f"refused {type(op).__name__}: {type(exc).__name__}")
            assert (ex.state_hash(), len(ex.journal)) == before, f"{op} half-applied"
        else:
            event(f"applied {type(op).__name__}")
            assert len(ex.journal) > before[1]
            _check_gate(ex, op, traders, sizes)
        _check_state(ex)
    return ex


@settings(max_examples=120)
@given(scenario=engine_scenarios())
def test_random_operations_conserve_money_and_replay_to_the_same_hash(
    scenario: EngineScenario,
) -> None:
    # Act
    ex = _run(scenario)

    # Assert: the journal alone rebuilds the same state
    again = Exchange.replay(ex.journal, check_invariants=True)
    assert again.state_hash() == ex.state_hash()
    for name, arr in ex.state_arrays().items():
        assert np.array_equal(arr, again.state_arrays()[name]), name


@settings(max_examples=50)
@given(scenario=engine_scenarios(min_markets=1, max_markets=1, max_traders=2, max_operations=60))
def test_long_sequences_on_one_market_between_two_traders_conserve_money(
    scenario: EngineScenario,
) -> None:
    ex = _run(scenario)

    assert Exchange.replay(ex.journal).state_hash() == ex.state_hash()
