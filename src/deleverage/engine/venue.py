"""The perpetuals engine as a :class:`~deleverage.venues.protocol.Venue`.

:class:`PerpVenue` wraps an :class:`~deleverage.engine.exchange.Exchange` for a multi-venue
world: each listed market is an asset (named by its symbol unless an alias map is given), a step
sets every market's mark from the prices it is handed (the oracle price by default, the venue's
own book price or the index on request) and runs the risk step, and what the step forced into
the market is read back from the journal: the signed base size of every fill that closed a
liquidated position against the book, a liquidator or the backstop (buys > 0, sells < 0).

Solvency lines are cumulative since the adapter was built, read from the engine's step reports
and journal: insurance paid, socialized loss and bad debt from the reports, ADL loss as the
profit taken from counterparties in ADL rounds, and backstop loss as the largest fall of the
backstop vault's equity (cash plus unrealized PnL) since the adapter was built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from numba import njit

from deleverage.engine.events import EventKind, FillReason, Journal
from deleverage.engine.exchange import Exchange
from deleverage.engine.ledger import MarketRef
from deleverage.engine.quiet_path import apply_quiet_marks, quiet_marks_ahead
from deleverage.errors import ValidationError
from deleverage.venues.protocol import (
    LIQUIDATION_LEVEL_COLUMNS,
    PriceInputs,
    QuietPath,
    SolvencyLines,
    VenueStep,
    check_price_inputs,
)

__all__ = ["PerpVenue", "forced_flow_nb"]

_FORCED_REASONS = (
    int(FillReason.LIQUIDATION),
    int(FillReason.LIQUIDATOR_TAKEOVER),
    int(FillReason.BACKSTOP),
)
_LIQUIDATION, _TAKEOVER, _BACKSTOP = _FORCED_REASONS
_FILL, _ADL_ROUND = int(EventKind.FILL), int(EventKind.ADL_ROUND)
MarkSource = Literal["oracle", "index", "book"]
#: The journal columns a step's forced flow and ADL loss are read from.
_READ_COLUMNS = ("kind", "code", "market", "account", "size", "amount")
#: The kinds of the rows they are read from (fills and ADL rounds).
_READ_KINDS = (_FILL, _ADL_ROUND)


@njit(cache=True)
def forced_flow_nb(
    kind: npt.NDArray[np.int16],
    code: npt.NDArray[np.int16],
    market: npt.NDArray[np.int64],
    buyer: npt.NDArray[np.int64],
    size: npt.NDArray[np.float64],
    liquidity: int,
    liquidator: int,
    backstop: int,
) -> npt.NDArray[np.float64]:
    """Per market (index), the signed base size of the forced fills among a step's rows
    (fills closing a liquidated position against the book, a liquidator or the backstop):
    the liquidated trader is the side that is not the venue's own account, so it sold
    (< 0) where one of ``liquidity``, ``liquidator``, ``backstop`` bought. Summed in row
    order, as ``np.bincount(market, weights=signed)`` sums (the length: the largest market
    with such a fill, plus one; rows with no market are left out)."""
    n_out = 0
    for i in range(len(kind)):
        if (
            kind[i] == _FILL
            and market[i] >= 0
            and (code[i] == _LIQUIDATION or code[i] == _TAKEOVER or code[i] == _BACKSTOP)
        ):
            n_out = max(n_out, market[i] + 1)
    out = np.zeros(n_out)
    for i in range(len(kind)):
        if (
            kind[i] == _FILL
            and market[i] >= 0
            and (code[i] == _LIQUIDATION or code[i] == _TAKEOVER or code[i] == _BACKSTOP)
        ):
            b = buyer[i]
            system = (b == liquidity) | (b == liquidator) | (b == backstop)
            out[market[i]] += -size[i] if system else size[i]
    return out


class PerpVenue:
    """An order-book perpetuals venue (one :class:`Exchange`) behind the Venue protocol.

    Parameters
    ----------
    exchange
        The engine; the adapter only calls its public operations and reads its journal.
    name
        The venue's name in a world.
    assets
        Asset name -> market (id or symbol); default: every listed market by its symbol.
    mark_from
        Which price sets the mark: ``oracle`` (dYdX, Drift, Hyperliquid's oracle-led marks),
        ``index`` or ``book`` (the venue's own book price).

    Examples
    --------
    >>> from deleverage import Exchange, MarketSpec
    >>> ex = Exchange()
    >>> _ = ex.list_market(MarketSpec.simple("BTC"))
    >>> venue = PerpVenue(ex, name="cex")
    >>> venue.assets
    ('BTC',)
    >>> venue.step({"BTC": PriceInputs(60_000.0)}, ts_ns=10**9).liquidations
    0
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        name: str = "perp",
        assets: Mapping[str, MarketRef] | None = None,
        mark_from: MarkSource = "oracle",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError("name", name, "must be a non-empty string")
        if mark_from not in ("oracle", "index", "book"):
            raise ValidationError("mark_from", mark_from, "must be 'oracle', 'index' or 'book'")
        if assets is None:
            assets = {state.spec.symbol: state.id for state in exchange.markets}
        self._markets = {asset: exchange.market_id(ref) for asset, ref in assets.items()}
        if not self._markets:
            raise ValidationError("assets", dict(assets), "must name at least one market")
        self._ex = exchange
        self._name = name
        self._mark_from = mark_from
        self._last_ts = exchange.clock_ns
        self._insurance_paid = 0.0
        self._socialized = 0.0
        self._bad_debt = 0.0
        self._adl_loss = 0.0
        self._backstop_start = self._backstop_equity()
        self._backstop_worst = 0.0
        self._lines: SolvencyLines | None = None  # the last lines and the state version at them
        self._lines_version = -1
        self._lines_flat = False  # whether the backstop vault was flat at those lines
        self._assets = tuple(self._markets)
        # Which field of PriceInputs sets the mark (oracle and book fall back to the index).
        self._mark_field = {"index": 0, "oracle": 1, "book": 2}[mark_from]

    @property
    def name(self) -> str:
        """The venue's name."""
        return self._name

    @property
    def assets(self) -> tuple[str, ...]:
        """The assets (markets) the venue marks, in listing order."""
        return self._assets

    @property
    def exchange(self) -> Exchange:
        """The wrapped engine."""
        return self._ex

    @property
    def asset_markets(self) -> dict[str, int]:
        """Asset name -> the engine's market id."""
        return dict(self._markets)

    def _price(self, inputs: PriceInputs) -> float:
        if self._mark_from == "oracle":
            return inputs.oracle
        if self._mark_from == "book" and inputs.book_price is not None:
            return inputs.book_price
        return inputs.index_price

    def step(self, prices: Mapping[str, PriceInputs], *, ts_ns: int) -> VenueStep:
        """Mark every market at ``ts_ns`` and run its risk step (all prices checked first)."""
        check_price_inputs(prices, self._assets, ts_ns=ts_ns, last_ts_ns=self._last_ts)
        ex = self._ex
        first_seq = len(ex.journal)
        version = ex._version
        liquidations, notional, forced = 0, 0.0, False
        field = self._mark_field
        for asset, market in self._markets.items():
            inputs = prices[asset]
            price = inputs[field]  # self._price(inputs), inline
            ex.set_mark(market, inputs[0] if price is None else price, ts_ns=ts_ns)
            report = ex.last_step
            forced = forced or bool(
                report.liquidations or report.adl_rounds or report.backstop_takeovers
            )
            liquidations += report.liquidations
            notional += report.liquidated_notional
            self._insurance_paid += report.insurance_paid
            self._socialized += report.socialized_loss
            self._bad_debt += report.bad_debt
        self._last_ts = ts_ns
        if not forced:  # a quiet step forced nothing: no journal rows to read
            lines = self._quiet_solvency(version)
            return VenueStep(ts_ns, 0, 0.0, dict.fromkeys(self._markets, 0.0), lines)
        flow, adl_loss = self._journal_since(first_seq)
        self._adl_loss += adl_loss
        return VenueStep(ts_ns, liquidations, notional, flow, self.solvency())

    def quiet_steps(self, path: QuietPath) -> int:
        """How many leading steps of ``path`` are quiet marks for the engine
        (:func:`~deleverage.engine.quiet_path.quiet_marks_ahead`); 0 unless the venue marks
        every market of the engine, in the engine's order."""
        marks = self._path_marks(path)
        return 0 if marks is None else quiet_marks_ahead(self._ex, marks)

    def advance_quiet(self, path: QuietPath) -> None:
        """Take the steps of ``path`` (counted quiet by :meth:`quiet_steps`): their marks in
        one bulk call, as many :meth:`step` calls would leave the engine and the adapter."""
        marks = self._path_marks(path)
        if marks is None or len(path.ts_ns) == 0:
            raise ValidationError("path", len(path.ts_ns), "must be quiet for this venue")
        ts = np.asarray(path.ts_ns, dtype=np.int64)
        check_price_inputs(
            path.inputs(0, self.assets), self.assets, ts_ns=int(ts[0]), last_ts_ns=self._last_ts
        )
        ex = self._ex
        version = ex._version
        apply_quiet_marks(ex, marks, ts)
        self._last_ts = int(ts[-1])
        if self._lines is not None and self._lines_version == version:
            self._lines_version = ex._version  # the marks changed nothing the lines read

    def _path_marks(self, path: QuietPath) -> npt.NDArray[np.float64] | None:
        """The marks ``path`` sets, one column per engine market (None: not every market is
        an asset of the venue, in order)."""
        if list(self._markets.values()) != list(range(len(self._ex.markets))):
            return None
        if self._mark_from == "book":
            return np.asarray(path.book_prices, dtype=np.float64)
        return np.asarray(path.index_prices, dtype=np.float64)  # the oracle is the index on a path

    def _quiet_solvency(self, version_before: int) -> SolvencyLines:
        """:meth:`solvency` after a step that forced nothing: the lines computed last, when
        the engine's state changed only by this step's marks since (one state version per
        mark), the adapter's totals did not move, and the backstop vault holds no position
        (its equity is then its cash, whatever the marks)."""
        ex = self._ex
        lines = self._lines
        if (
            lines is not None
            and self._lines_version == version_before
            and ex._version == version_before + len(self._markets)
            and lines.insurance_paid == self._insurance_paid
            and lines.socialized_loss == self._socialized
            and lines.bad_debt == self._bad_debt
            and lines.adl_loss == self._adl_loss
            and self._lines_flat  # positions unchanged since (marks only): still flat
        ):
            self._lines_version = ex._version
            return lines
        lines = self.solvency()
        self._lines, self._lines_version = lines, ex._version
        self._lines_flat = self._vault_flat()
        return lines

    def _vault_flat(self) -> bool:
        vault = self._ex.backstop_account
        return all(cols.size[vault] == 0.0 for cols in self._ex._positions)

    def _journal_since(self, first_seq: int) -> tuple[dict[str, float], float]:
        """Forced flow per asset and ADL profit taken in the journal rows from ``first_seq``."""
        flow = dict.fromkeys(self._markets, 0.0)
        journal = self._ex.journal
        if len(journal) == first_seq:
            return flow, 0.0
        rows = journal.arrays_since(first_seq, _READ_COLUMNS, _READ_KINDS)
        kind = rows["kind"]
        adl = kind == _ADL_ROUND
        adl_loss = float(np.nansum(rows["amount"][adl])) if adl.any() else 0.0
        ex = self._ex
        per_market = forced_flow_nb(
            kind, rows["code"], rows["market"], rows["account"], rows["size"],
            ex.liquidity_account, ex.liquidator_account, ex.backstop_account,
        )  # fmt: skip
        for asset, m in self._markets.items():
            if m < len(per_market):  # in the market's units (contracts for an inverse market)
                units = self._ex.markets[m].units
                flow[asset] += float(units.venue_size(float(per_market[m])))
        return flow, adl_loss

    def liquidation_levels(self) -> pd.DataFrame:
        """Open traders' positions and their liquidation prices, market by market (an
        inverse market's sizes in contracts, its notional in the coin)."""
        ex = self._ex
        traders = np.flatnonzero(ex.state_arrays()["kind"] == 0).astype(np.int64)
        frames = []
        for asset, m in self._markets.items():
            size = ex.columns(m).size[traders]
            open_ = traders[size != 0.0]
            liq, _ = ex.liquidation_prices(m, open_)
            sizes = ex.columns(m).size[open_]
            units = ex.markets[m].units
            if units.inverse:
                liq = np.where(np.isfinite(liq), liq, np.nan)
            frames.append(
                pd.DataFrame(
                    {
                        "asset": asset,
                        "account": open_,
                        "size": units.venue_size(sizes),
                        "notional": np.abs(sizes) * ex.markets[m].mark,
                        "liquidation_price": np.where(liq > 0.0, liq, np.nan),
                    }
                )
            )
        out = pd.concat(frames, ignore_index=True)
        return out.loc[:, list(LIQUIDATION_LEVEL_COLUMNS)]

    def solvency(self) -> SolvencyLines:
        """Cumulative loss lines since the adapter was built, and the funds' balance now."""
        ex = self._ex
        fund_balance = float(sum(ex.cash(a) for a in ex.funds))
        return SolvencyLines(
            fund_balance=fund_balance,
            insurance_paid=self._insurance_paid,
            backstop_loss=self._backstop_worst_loss(),
            adl_loss=self._adl_loss,
            socialized_loss=self._socialized,
            bad_debt=self._bad_debt,
        )

    def _backstop_worst_loss(self) -> float:
        """The backstop vault's largest loss of equity since the adapter was built (quote):
        a running maximum, so the line is cumulative like the others even while the vault's
        positions recover."""
        loss = self._backstop_start - self._backstop_equity()
        self._backstop_worst = max(self._backstop_worst, loss)
        return self._backstop_worst

    def _backstop_equity(self) -> float:
        """The backstop vault's equity (cash plus unrealized PnL, quote)."""
        ex = self._ex
        vault = ex.backstop_account
        equity = ex.cash(vault)
        for m, state in enumerate(ex.markets):
            cols = ex.columns(m)
            equity += float(cols.size[vault]) * (state.mark - float(cols.entry[vault]))
        return equity

    def journal(self) -> Journal:
        """The engine's journal."""
        return self._ex.journal
