"""Integer-quantum deleveraging, final settlement and liquidation ordering (dYdX v4).

Companion of :mod:`deleverage.rules.quantum` (units and rounding are described there). Sources
are ``dydxprotocol/v4-chain`` at commit ``84d4664bae71e3a077adaac67fb77ad19cd28d30``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

from deleverage.errors import ValidationError
from deleverage.rules.quantum import (
    Markets,
    QuantumAccount,
    Risk,
    account_risk,
    bankruptcy_quote,
)


class Transition(Enum):
    """Outcome of the collateral check of an account update (``UpdateResult``)."""

    SUCCESS = "Success"
    NEWLY_UNDERCOLLATERALIZED = "NewlyUndercollateralized"
    STILL_UNDERCOLLATERALIZED = "StillUndercollateralized"


def undercollateralized_transition(before: Risk, after_nc: int, after_mmr: int) -> Transition:
    """Whether an update leaving an account below initial margin is still allowed.

    Allowed when it is not riskier: maintenance does not rise, and either both maintenance
    figures are zero and NC strictly rises, or ``NC/MMR`` does not fall (compared by
    cross-multiplication; ties allowed) (``IsValidStateTransitionForUndercollateralizedSubaccount``,
    protocol/x/subaccounts/lib/updates.go). A refusal is labelled by the state before.
    """
    refused = (
        Transition.NEWLY_UNDERCOLLATERALIZED
        if before.nc >= before.imr
        else Transition.STILL_UNDERCOLLATERALIZED
    )
    if after_mmr > before.mmr:
        return refused
    if before.mmr == 0 or after_mmr == 0:
        ok = before.mmr == 0 and after_mmr == 0 and after_nc > before.nc
        return Transition.SUCCESS if ok else refused
    ok = after_nc * before.mmr >= before.nc * after_mmr
    return Transition.SUCCESS if ok else refused


def update_allowed(before: QuantumAccount, after: QuantumAccount, markets: Markets) -> bool:
    """The collateral check of a match: ``NC >= IMR`` after, or not riskier than before."""
    new = account_risk(after, markets)
    if new.nc >= new.imr:
        return True
    old = account_risk(before, markets)
    return undercollateralized_transition(old, new.nc, new.mmr) is Transition.SUCCESS


def can_deleverage(nc_quote: int, *, final_settlement: bool) -> tuple[bool, bool]:
    """(at the bankruptcy price, at the oracle price) (``CanDeleverageSubaccount``,
    protocol/x/clob/keeper/deleveraging.go): negative TNC first; a final-settlement market
    closes a solvent account at the oracle."""
    return nc_quote < 0, nc_quote >= 0 and final_settlement


@dataclass(frozen=True, slots=True)
class Deleveraging:
    """Both accounts after a deleveraging fill and the quote moved to the liquidated one."""

    liquidated: QuantumAccount
    offsetting: QuantumAccount
    quote_to_liquidated: int


def deleverage(
    liquidated: QuantumAccount,
    offsetting: QuantumAccount,
    markets: Markets,
    perpetual_id: int,
    delta_base: int,
    *,
    at_oracle: bool = False,
) -> Deleveraging | None:
    """Close ``delta_base`` (for the liquidated account) against ``offsetting``.

    The quote is the liquidated account's bankruptcy quote for the delta, or at the oracle
    ``-notional(delta)`` (truncated) in final settlement; it is added to the liquidated
    account and taken from the offsetting one. Both updates go through the collateral check;
    ``None`` when either is refused (``ProcessDeleveraging``): the price never moves to make
    a match fit. Raises when the delta does not reduce both positions.
    """
    other = offsetting.position(perpetual_id)
    if other == 0 or (other > 0) != (delta_base > 0) or abs(delta_base) > abs(other):
        raise ValidationError(
            "delta_base", delta_base,
            f"must reduce the offsetting position ({other}) (ErrInvalidPerpetualPositionSizeDelta)",
        )  # fmt: skip
    market = markets[perpetual_id]
    if at_oracle:
        bankruptcy_quote(liquidated, markets, perpetual_id, delta_base)  # validates the delta
        quote = -market.notional_quote(delta_base)
    else:
        quote = bankruptcy_quote(liquidated, markets, perpetual_id, delta_base)
    new_liq = liquidated.apply(perpetual_id, delta_base, quote)
    new_off = offsetting.apply(perpetual_id, -delta_base, -quote)
    if not (
        update_allowed(liquidated, new_liq, markets)
        and update_allowed(offsetting, new_off, markets)
    ):
        return None
    return Deleveraging(new_liq, new_off, quote)


@dataclass(frozen=True, slots=True)
class OffsetFill:
    """One deleveraging fill: the offsetting account's key, base quantums, quote moved."""

    offsetting: Hashable
    base: int
    quote_to_liquidated: int


def offset_position(
    liquidated: QuantumAccount,
    candidates: Sequence[tuple[Hashable, QuantumAccount]],
    markets: Markets,
    perpetual_id: int,
    delta_base: int,
    *,
    at_oracle: bool = False,
) -> tuple[QuantumAccount, dict[Hashable, QuantumAccount], list[OffsetFill], int]:
    """Deleverage up to ``delta_base`` against candidates in the given order.

    Each fill is ``min(|remaining|, |candidate position|)``, priced on the state left by the
    earlier fills; candidates on the same side are skipped, a refused match is skipped and the
    walk goes on (``OffsetSubaccountPerpetualPosition``). Returns the liquidated account, the
    offsetting accounts after, the fills and the base quantums left unfilled (partial
    deleveraging: they stay open).
    """
    remaining = delta_base
    after: dict[Hashable, QuantumAccount] = {}
    fills: list[OffsetFill] = []
    for key, account in candidates:
        if remaining == 0:
            break
        other = account.position(perpetual_id)
        if other == 0 or (other > 0) != (remaining > 0):
            continue
        size = min(abs(remaining), abs(other))
        signed = size if remaining > 0 else -size
        done = deleverage(liquidated, account, markets, perpetual_id, signed, at_oracle=at_oracle)
        if done is None:
            continue
        liquidated = done.liquidated
        after[key] = done.offsetting
        fills.append(OffsetFill(key, size, done.quote_to_liquidated))
        remaining -= signed
    return liquidated, after, fills, remaining


@dataclass(frozen=True, slots=True)
class LiquidationOrder:
    """A candidate liquidation order: side, base quantums and limit subticks."""

    is_buy: bool
    base: int
    subticks: int
    oracle_notional_quote: int


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def liquidation_order_hash(owner: str, number: int, perpetual_id: int) -> bytes:
    """dYdX v4 ``LiquidationOrder.GetOrderHash``: SHA-256 of the protobuf encoding of
    ``PerpetualLiquidationInfo{subaccount_id: {owner, number}, perpetual_id}`` (fields 1 and 2
    of each message; proto3 leaves zero numbers out; the subaccount id is not nullable, so it
    is always written). The last tie-break of :func:`sort_liquidation_orders` (bytes ascending).
    """
    inner = b"\x0a" + _varint(len(owner.encode())) + owner.encode()
    if number:
        inner += b"\x10" + _varint(number)
    data = b"\x0a" + _varint(len(inner)) + inner
    if perpetual_id:
        data += b"\x10" + _varint(perpetual_id)
    return hashlib.sha256(data).digest()


def sort_liquidation_orders(
    orders: Sequence[LiquidationOrder],
    oracle_subticks: Fraction | int,
    tie_break: Callable[[int], Hashable] | None = None,
) -> list[int]:
    """Indices of ``orders`` in processing order (``SortLiquidationOrders``).

    By ``|subticks - oracle| / oracle`` descending, then oracle notional descending, then
    ``tie_break(index)`` ascending (the venue uses the order hash; the default keeps the
    input order).
    """
    oracle = Fraction(oracle_subticks)

    def key(i: int) -> tuple[Fraction, int, Hashable]:
        o = orders[i]
        gap = abs(Fraction(o.subticks) - oracle) / oracle
        return -gap, -o.oracle_notional_quote, tie_break(i) if tie_break else i

    return sorted(range(len(orders)), key=key)
