"""Bad input: each is refused with the project's own error, naming field and value, state intact."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.errors import DeleverageError, UnknownEntityError, ValidationError

NAN = math.nan
INF = math.inf


@dataclass
class Venue:
    ex: Exchange
    market: int
    alice: int
    bob: int


@pytest.fixture
def venue() -> Venue:
    ex = Exchange()
    m = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20), ts_ns=1_000)
    alice = ex.open_account(ts_ns=1_000)
    bob = ex.open_account(margin_mode=MarginMode.ISOLATED, ts_ns=1_000)
    ex.deposit(alice, 10_000.0, ts_ns=1_000)
    ex.deposit(bob, 10_000.0, ts_ns=1_000)
    ex.set_mark(m, 60_000.0, ts_ns=2_000)
    ex.trade(m, buyer=alice, seller=bob, size=0.01, price=60_000.0, ts_ns=2_000)
    return Venue(ex, m, alice, bob)


Call = Callable[[Venue], object]


def _trade(size: object = 0.01, price: object = 60_000.0) -> Call:
    def call(v: Venue) -> object:
        return v.ex.trade(v.market, buyer=v.alice, seller=v.bob, size=size, price=price)  # type: ignore[arg-type]

    return call


# (operation, error class, field, value as it must appear in the message)
CASES: list[tuple[str, Call, type[DeleverageError], str, object]] = [
    *[
        (f"deposit-{v}", lambda s, v=v: s.ex.deposit(s.alice, v), ValidationError, "amount", v)
        for v in (0.0, -5.0, NAN, INF, -INF)
    ],
    *[
        (f"withdraw-{v}", lambda s, v=v: s.ex.withdraw(s.alice, v), ValidationError, "amount", v)
        for v in (0.0, -1.0, NAN, INF)
    ],
    *[
        (f"mark-{v}", lambda s, v=v: s.ex.set_mark(s.market, v), ValidationError, "price", v)
        for v in (0.0, -60_000.0, NAN, INF)
    ],
    *[(f"size-{v}", _trade(size=v), ValidationError, "size", v) for v in (0.0, -0.01, NAN, INF)],
    *[
        (f"price-{v}", _trade(price=v), ValidationError, "price", v)
        for v in (0.0, -60_000.0, NAN, INF)
    ],
    *[
        (
            f"leverage-{v}",
            lambda s, v=v: s.ex.set_leverage(s.alice, s.market, v),
            ValidationError,
            "leverage",
            v,
        )
        for v in (NAN, INF, 0.0)
    ],
    (
        "add-margin-negative",
        lambda s: s.ex.add_isolated_margin(s.bob, s.market, -1.0),
        ValidationError,
        "amount",
        -1.0,
    ),
    (
        "remove-margin-nan",
        lambda s: s.ex.remove_isolated_margin(s.bob, s.market, NAN),
        ValidationError,
        "amount",
        NAN,
    ),
    (
        "unknown-market-symbol",
        lambda s: s.ex.set_mark("ETHUSDT", 3_000.0),
        UnknownEntityError,
        "market",
        "ETHUSDT",
    ),
    (
        "unknown-market-id",
        lambda s: s.ex.trade(7, buyer=s.alice, seller=s.bob, size=0.01, price=60_000.0),
        UnknownEntityError,
        "market",
        7,
    ),
    (
        "market-not-int-or-str",
        lambda s: s.ex.set_mark(0.5, 3_000.0),  # type: ignore[arg-type]
        ValidationError,
        "market",
        0.5,
    ),
    ("unknown-account", lambda s: s.ex.deposit(999, 1.0), UnknownEntityError, "account", 999),
    ("negative-account", lambda s: s.ex.deposit(-1, 1.0), UnknownEntityError, "account", -1),
    (
        "unknown-buyer",
        lambda s: s.ex.trade(s.market, buyer=999, seller=s.bob, size=0.01, price=60_000.0),
        UnknownEntityError,
        "buyer",
        999,
    ),
    (
        "unknown-seller",
        lambda s: s.ex.trade(s.market, buyer=s.alice, seller=42, size=0.01, price=60_000.0),
        UnknownEntityError,
        "seller",
        42,
    ),
    (
        "account-not-int",
        lambda s: s.ex.withdraw("alice", 1.0),  # type: ignore[arg-type]
        ValidationError,
        "account",
        "alice",
    ),
    (
        "self-trade",
        lambda s: s.ex.trade(s.market, buyer=s.alice, seller=s.alice, size=0.01, price=60_000.0),
        ValidationError,
        "seller",
        None,  # filled in by the test: alice's id
    ),
    (
        "bad-taker",
        lambda s: s.ex.trade(
            s.market,
            buyer=s.alice,
            seller=s.bob,
            size=0.01,
            price=60_000.0,
            taker="maker",  # type: ignore[arg-type]
        ),
        ValidationError,
        "taker",
        "maker",
    ),
    (
        "deposit-ts-backwards",
        lambda s: s.ex.deposit(s.alice, 1.0, ts_ns=1_500),
        ValidationError,
        "ts_ns",
        1_500,
    ),
    (
        "trade-ts-backwards",
        lambda s: s.ex.trade(
            s.market, buyer=s.alice, seller=s.bob, size=0.01, price=60_000.0, ts_ns=1_999
        ),
        ValidationError,
        "ts_ns",
        1_999,
    ),
    (
        "mark-ts-backwards",
        lambda s: s.ex.set_mark(s.market, 61_000.0, ts_ns=0),
        ValidationError,
        "ts_ns",
        0,
    ),
    (
        "open-account-ts-backwards",
        lambda s: s.ex.open_account(ts_ns=10),
        ValidationError,
        "ts_ns",
        10,
    ),
    (
        "ts-not-int",
        lambda s: s.ex.deposit(s.alice, 1.0, ts_ns=2_500.5),  # type: ignore[arg-type]
        ValidationError,
        "ts_ns",
        2_500.5,
    ),
    ("open-accounts-zero", lambda s: s.ex.open_accounts(0), ValidationError, "count", 0),
    (
        "list-duplicate-symbol",
        lambda s: s.ex.list_market(MarketSpec.simple("BTCUSDT")),
        ValidationError,
        "spec.symbol",
        "BTCUSDT",
    ),
    (
        "set-mode-not-a-mode",
        lambda s: s.ex.set_margin_mode(s.alice, s.market, 5),  # type: ignore[arg-type]
        ValidationError,
        "mode",
        5,
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "field", "value"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_raises_specific_error_naming_field_and_value_and_changes_nothing(
    venue: Venue, call: Call, error: type[DeleverageError], field: str, value: object
) -> None:
    # Arrange
    if value is None:
        value = venue.alice
    ex = venue.ex
    before = (ex.state_hash(), len(ex.journal), ex.clock_ns)
    arrays = {k: v.copy() for k, v in ex.state_arrays().items()}

    # Act
    with pytest.raises(error) as info:
        call(venue)

    # Assert: the exact class (not just a parent), the field and the value in the message
    assert type(info.value) is error
    message = str(info.value)
    assert field in message
    assert repr(value) in message, message
    assert getattr(info.value, "field", field) == field
    assert (ex.state_hash(), len(ex.journal), ex.clock_ns) == before
    for name, arr in ex.state_arrays().items():
        assert arr.tobytes() == arrays[name].tobytes(), name


def test_unknown_market_message_lists_known_symbols(venue: Venue) -> None:
    with pytest.raises(UnknownEntityError) as info:
        venue.ex.set_mark("ETHUSDT", 3_000.0)

    assert "BTCUSDT" in str(info.value)
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("amount", ["abc", None])
def test_non_numeric_amount_raises_validation_error(venue: Venue, amount: object) -> None:
    with pytest.raises(ValidationError, match="amount"):
        venue.ex.deposit(venue.alice, amount)  # type: ignore[arg-type]


def test_open_accounts_with_invalid_margin_mode_is_rejected(venue: Venue) -> None:
    before = venue.ex.state_hash()

    with pytest.raises(ValidationError, match="margin_mode"):
        venue.ex.open_accounts(2, margin_mode=7)  # type: ignore[arg-type]
    assert venue.ex.state_hash() == before
