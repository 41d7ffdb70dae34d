"""Multi-asset collateral on the order-book engine: coins posted as margin, valued at their
index with the venue's haircut tiers, and sold into their own book when the account is short.

The engine's margin, scans and liquidations read one quote balance per account (``cash``). A
posted coin enters it as its **collateral credit**, the collateral value of the holding
(:func:`deleverage.rules.collateral.collateral_value`): the account's cash is its quote plus the
credit of every coin it holds, and its net deposits move with the credit, so money is conserved
(``Exchange.conservation``) and every existing rule (cross margin, liquidation, shortfall) sees a
fall of the coin as a fall of margin. Three events carry every change (effects, replayed like
deposits; :mod:`deleverage.engine.events`):

- ``CollateralListed``: a coin and its tiers;
- ``CollateralPriced``: the coin's index moved; each holding's credit is revalued;
- ``CollateralMoved``: a deposit of coins, or a sale: ``q`` coins leave at the average price of
  the coin's own book and the proceeds replace the credit they carried (a sale that fetches more
  than its haircut value raises the account's cash; one whose impact exceeds the haircut lowers
  it).

**When the venue sells** (the venue's :class:`~deleverage.rules.collateral.CollateralPolicy`):

- in a bankruptcy, before anyone pays for it: the shortfall stage asks :func:`cover_deficit`
  (the risk step's ``_cover``), which converts coins worth the account's quote deficit in
  collateral value; only what the sale cannot cover reaches the insurance fund, ADL, socialized
  loss or bad debt (the named lines of ``SolvencyLines``);
- after each risk step, :func:`settle_collateral` converts for every account whose quote balance
  (cash less credit) is below ``-auto_exchange_threshold``.

The coins are sold in the policy's order (pro rata, or highest collateral rate first) into the
coin's book (:func:`set_collateral_liquidity`; none: at the index), whose impact the caller can
read (:attr:`CollateralLedger.sales`); what the book cannot fill stays unsold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from deleverage.engine.events import CollateralListed, CollateralMoved, CollateralPriced
from deleverage.errors import UnknownEntityError, ValidationError
from deleverage.rules.collateral import (
    CollateralAsset,
    CollateralPolicy,
    collateral_value,
    sale_quantities,
)
from deleverage.spec import check_finite_positive

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange
    from deleverage.liquidity import LiquidityModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Quote below which a deficit is float dust, not a reason to sell.
_DUST = 1e-9


@dataclass
class CollateralLedger:
    """Per coin: its spec, index price, and per account the coins held and the credit they
    give (arrays over account ids, grown with the engine). Runtime settings (the policy, the
    books) are not state: replay rebuilds the arrays from the events alone."""

    assets: list[CollateralAsset] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    quantity: list[FloatArray] = field(default_factory=list)
    credit: list[FloatArray] = field(default_factory=list)
    policy: CollateralPolicy = field(default_factory=CollateralPolicy)
    books: dict[int, LiquidityModel] = field(default_factory=dict)
    #: Every sale as (ts_ns, asset, coins, average price, impact after), for the caller.
    sales: list[tuple[int, int, float, float, float]] = field(default_factory=list)

    def _size(self, n: int) -> None:
        for k in range(len(self.assets)):
            if len(self.quantity[k]) < n:
                grown = max(n, 2 * len(self.quantity[k]), 16)
                for arrays in (self.quantity, self.credit):
                    new = np.zeros(grown)
                    new[: len(arrays[k])] = arrays[k]
                    arrays[k] = new

    def total_credit(self, n: int) -> FloatArray:
        """Collateral credit of every account (quote), summed over coins."""
        self._size(n)
        out = np.zeros(n)
        for credit in self.credit:
            out += credit[:n]
        return out

    def holds(self, account: int) -> bool:
        return any(account < len(q) and q[account] > 0.0 for q in self.quantity)

    def state_arrays(self, n: int) -> dict[str, npt.NDArray[np.generic]]:
        """The arrays (trimmed to ``n`` accounts) and prices, for ``Exchange.state_hash``."""
        self._size(n)
        out: dict[str, npt.NDArray[np.generic]] = {
            "collateral.prices": np.asarray(self.prices, dtype=np.float64)
        }
        for k in range(len(self.assets)):
            out[f"collateral.{k}.quantity"] = self.quantity[k][:n]
            out[f"collateral.{k}.credit"] = self.credit[k][:n]
        return out


# ---------------------------------------------------------------------------- applying events
def ledger_of(ex: Any) -> CollateralLedger:
    """The engine's collateral ledger (created on first use)."""
    ledger: CollateralLedger | None = getattr(ex, "_collateral", None)
    if ledger is None:
        ledger = CollateralLedger()
        ex._collateral = ledger
    return ledger


def ex_has_collateral(ex: Any) -> bool:
    """Whether any collateral coin is listed (cheap: no ledger is created)."""
    ledger: CollateralLedger | None = getattr(ex, "_collateral", None)
    return ledger is not None and bool(ledger.assets)


def _credit_to(ex: Any, accounts: IntArray, delta: FloatArray) -> None:
    """Move ``delta`` (quote) of credit into the accounts' cash and net deposits."""
    np.add.at(ex._cash, accounts, delta)
    np.add.at(ex._net_deposit, accounts, delta)
    ex.net_deposits += float(delta.sum())
    ex._touch_cash(accounts)


def apply_collateral_event(
    ex: Any, event: CollateralListed | CollateralPriced | CollateralMoved
) -> None:
    """Apply one collateral event to the engine's state (called by the ledger's ``_apply``)."""
    ledger = ledger_of(ex)
    n = ex._n
    if isinstance(event, CollateralListed):
        if event.asset != len(ledger.assets):
            raise ValidationError("asset", event.asset, f"must be {len(ledger.assets)} (in order)")
        ledger.assets.append(CollateralAsset.from_json(event.asset_json))
        ledger.prices.append(0.0)
        ledger.quantity.append(np.zeros(max(n, 16)))
        ledger.credit.append(np.zeros(max(n, 16)))
        return
    ledger._size(n)
    k = event.asset
    asset = ledger.assets[k]
    if isinstance(event, CollateralPriced):
        ledger.prices[k] = event.price
        holders = np.flatnonzero(ledger.quantity[k][:n] > 0.0).astype(np.int64)
        if len(holders):
            new = collateral_value(asset, ledger.quantity[k][holders], event.price)
            delta = new - ledger.credit[k][holders]
            ledger.credit[k][holders] = new
            _credit_to(ex, holders, delta)
        return
    a = event.account
    ledger.quantity[k][a] = max(ledger.quantity[k][a] + event.quantity, 0.0)
    new_credit = float(collateral_value(asset, [ledger.quantity[k][a]], ledger.prices[k])[0])
    delta = new_credit - ledger.credit[k][a] + event.proceeds
    ledger.credit[k][a] = new_credit
    _credit_to(ex, np.array([a], dtype=np.int64), np.array([delta]))


# ---------------------------------------------------------------------------- operations
def list_collateral(ex: Exchange, asset: CollateralAsset, *, ts_ns: int | None = None) -> int:
    """Make ``asset`` eligible collateral; return its id (listing order)."""
    ledger = ledger_of(ex)
    if any(a.symbol == asset.symbol for a in ledger.assets):
        raise ValidationError("asset.symbol", asset.symbol, "must not be listed already")
    k = len(ledger.assets)
    ex._emit_all([CollateralListed(ts_ns=ex._ts(ts_ns), asset=k, asset_json=asset.to_json())])
    return k


def collateral_id(ex: Exchange, asset: int | str) -> int:
    """The id of a listed collateral coin, by id or symbol."""
    ledger = ledger_of(ex)
    if isinstance(asset, str):
        for k, spec in enumerate(ledger.assets):
            if spec.symbol == asset:
                return k
        raise UnknownEntityError("asset", asset)
    if not 0 <= asset < len(ledger.assets):
        raise UnknownEntityError("asset", asset)
    return asset


def set_collateral_price(
    ex: Exchange, asset: int | str, price: float, *, ts_ns: int | None = None
) -> None:
    """Set a collateral coin's index price and revalue every holding."""
    k = collateral_id(ex, asset)
    value = check_finite_positive("price", price)
    if value == ledger_of(ex).prices[k]:
        return
    ex._emit_all([CollateralPriced(ts_ns=ex._ts(ts_ns), asset=k, price=value)])


def deposit_collateral(
    ex: Exchange, account: int, asset: int | str, quantity: float, *, ts_ns: int | None = None
) -> None:
    """Post ``quantity`` coins of ``asset`` as margin of ``account`` (its price must be set)."""
    a = ex._check_account(account)
    k = collateral_id(ex, asset)
    q = check_finite_positive("quantity", quantity)
    price = ledger_of(ex).prices[k]
    if price <= 0.0:
        raise ValidationError("asset", asset, "must have an index price (set_collateral_price)")
    ex._emit_all(
        [CollateralMoved(ts_ns=ex._ts(ts_ns), account=a, asset=k, quantity=q, price=price)]
    )


def set_collateral_liquidity(ex: Exchange, asset: int | str, book: LiquidityModel | None) -> None:
    """The book a coin's sales fill against (None: at its index, no impact)."""
    k = collateral_id(ex, asset)
    ledger = ledger_of(ex)
    if book is None:
        ledger.books.pop(k, None)
    else:
        ledger.books[k] = book


def set_collateral_policy(ex: Exchange, policy: CollateralPolicy) -> None:
    """The venue's order of sale and auto-exchange threshold."""
    ledger_of(ex).policy = policy


def quote_balance(ex: Exchange, account: int) -> float:
    """The account's quote cash without its collateral credit."""
    ledger = ledger_of(ex)
    credit = sum(float(c[account]) for c in ledger.credit if account < len(c))
    return float(ex._cash[account]) - credit


def cover_deficit(ex: Exchange, account: int, ts_ns: int) -> float:
    """Sell the account's collateral to cover its quote deficit (the coins whose collateral
    value equals it, all of them when worth less), in the venue's order; return the change of
    the account's cash (proceeds less the credit the coins carried: > 0 when the sale fetched
    more than the haircut value)."""
    ledger = ledger_of(ex)
    if not ledger.assets or not ledger.holds(account):
        return 0.0
    deficit = -quote_balance(ex, account)
    if deficit <= _DUST:
        return 0.0
    ledger._size(ex.n_accounts)
    quantities = [float(q[account]) for q in ledger.quantity]
    plan = sale_quantities(ledger.assets, quantities, ledger.prices, deficit, ledger.policy.order)
    before = float(ex._cash[account])
    events = []
    for k in np.flatnonzero(plan > 0.0).tolist():
        q, price, impact = _sell(ledger, k, float(min(plan[k], quantities[k])), ts_ns)
        if q <= 0.0:
            continue
        ledger.sales.append((ts_ns, k, q, price, impact))
        events.append(
            CollateralMoved(
                ts_ns=ts_ns,
                account=account,
                asset=k,
                quantity=-q,
                price=price,
                proceeds=q * price,
                reason="sale",
            )
        )
    if events:
        ex._emit_all(events)
    return float(ex._cash[account]) - before


def _sell(
    ledger: CollateralLedger, k: int, quantity: float, ts_ns: int
) -> tuple[float, float, float]:
    """Fill a sale of ``quantity`` coins on the coin's book from its index: (coins filled,
    average price, impact after). Beyond the book's depth the rest is not sold (the deficit it
    would have covered stays for the shortfall lines)."""
    index = ledger.prices[k]
    book = ledger.books.get(k)
    if book is None:
        return quantity, index, 0.0
    fill = book.execute(-1, quantity, index, ts_ns)
    return float(fill.size), float(fill.vwap), float(fill.impact)


def settle_collateral(ex: Exchange, *, ts_ns: int | None = None) -> int:
    """Convert collateral of every account whose quote balance is below
    ``-auto_exchange_threshold``; return how many accounts sold."""
    ledger = ledger_of(ex)
    if not ledger.assets:
        return 0
    ts = ex._ts(ts_ns)
    n = ex.n_accounts
    quote = ex._cash[:n] - ledger.total_credit(n)
    held = np.zeros(n, dtype=bool)
    for q in ledger.quantity:
        held |= q[:n] > 0.0
    short = np.flatnonzero(held & (quote < -ledger.policy.auto_exchange_threshold - _DUST))
    for a in short.tolist():
        cover_deficit(ex, int(a), ts)
    return len(short)
