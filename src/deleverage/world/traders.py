"""Traders across venues: who holds which account where, and how they move collateral.

A :class:`TraderMap` lists, per trader of the world, the account it holds on each venue (a
trader may hold accounts on several venues: a long borrowed against ETH on a lending protocol
and a short perp on a CEX, the same trader on two perp venues). Risk layers read it to see a
trader's whole exposure.

:class:`SharedWallets` is the **trader channel** of contagion: a trader with accounts on several
venues rescues the account in trouble with collateral from the others. Every
``interval_s`` seconds, for each trader, the margin ratio ``rho = maintenance / equity`` of each
of its accounts is read (:class:`~deleverage.world.collateral.CollateralAccess`); when the worst
account's ``rho`` reaches ``trigger_ratio`` (and its equity is still positive), the trader
withdraws from its other accounts (most comfortable first, each no more than the venue lets it
withdraw) the cash that brings the worst account back to ``target_ratio``:
``need = maintenance / target_ratio - equity`` (docs/formulas.md §19.3). So a loss on venue A
becomes a thinner margin on venue B: the next move on B liquidates accounts that would have
survived. Each transfer is remembered (donor venue, account, receiving venue, amount) so the
world can attribute a later liquidation of the donor account to the venue that took its
collateral.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import ValidationError
from deleverage.world.collateral import CollateralAccess

__all__ = ["TRADER_COLUMNS", "SharedWallets", "TraderMap", "Transfer"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Columns of :attr:`TraderMap.frame`: the world's trader id, the venue, the venue's account.
TRADER_COLUMNS = ("trader", "venue", "account")


class TraderMap:
    """Traders and their accounts on each venue (one row per trader and venue).

    Examples
    --------
    >>> import pandas as pd
    >>> tm = TraderMap(pd.DataFrame({"trader": [0, 0, 1], "venue": ["a", "b", "a"],
    ...                              "account": [5, 7, 6]}))
    >>> tm.accounts("b").tolist(), tm.traders("b").tolist()
    ([7], [0])
    >>> tm.shared().tolist()
    [0]
    """

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        if frame is None:
            frame = pd.DataFrame({"trader": [], "venue": [], "account": []})
        missing = [c for c in TRADER_COLUMNS if c not in frame.columns]
        if missing:
            raise ValidationError("traders", missing[0], "is a required column of the map")
        data = frame.loc[:, list(TRADER_COLUMNS)].copy()
        data["trader"] = data["trader"].astype(np.int64)
        data["account"] = data["account"].astype(np.int64)
        data["venue"] = data["venue"].astype(str)
        if data.duplicated(["trader", "venue"]).any():
            row = data[data.duplicated(["trader", "venue"])].iloc[0]
            raise ValidationError(
                "traders", (int(row.trader), row.venue), "must hold one account per venue"
            )
        if data.duplicated(["venue", "account"]).any():
            row = data[data.duplicated(["venue", "account"])].iloc[0]
            raise ValidationError(
                "traders", (row.venue, int(row.account)), "must map an account to one trader"
            )
        self.frame = data.reset_index(drop=True)
        self._by_venue = {
            str(v): (
                g["trader"].to_numpy(dtype=np.int64), g["account"].to_numpy(dtype=np.int64)
            )
            for v, g in self.frame.groupby("venue", sort=False)
        }  # fmt: skip

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def venues(self) -> tuple[str, ...]:
        """Venues with at least one mapped account."""
        return tuple(self._by_venue)

    def accounts(self, venue: str) -> IntArray:
        """Accounts of mapped traders on ``venue`` (row order of :meth:`traders`)."""
        empty = np.zeros(0, np.int64)
        found: IntArray = self._by_venue.get(venue, (empty, empty))[1]
        return found

    def traders(self, venue: str) -> IntArray:
        """The trader of each account of :meth:`accounts`."""
        empty = np.zeros(0, np.int64)
        found: IntArray = self._by_venue.get(venue, (empty, empty))[0]
        return found

    def shared(self) -> IntArray:
        """Traders holding accounts on more than one venue, sorted."""
        counts = self.frame.groupby("trader").size()
        return np.asarray(counts[counts > 1].index.to_numpy(), dtype=np.int64)

    def restricted_to_shared(self) -> TraderMap:
        """The rows of traders present on several venues."""
        return TraderMap(self.frame[self.frame["trader"].isin(self.shared())])


@dataclass(frozen=True)
class Transfer:
    """Collateral a trader moved from one venue to another (quote)."""

    ts_ns: int
    trader: int
    from_venue: str
    from_account: int
    to_venue: str
    to_account: int
    amount: float


@dataclass
class SharedWallets:
    """The trader channel (see the module docstring).

    Parameters
    ----------
    traders
        The map; only traders on several venues move collateral.
    access
        Venue name -> its collateral access (venues without one are skipped).
    interval_s
        Seconds between two looks at the accounts.
    trigger_ratio, target_ratio
        ``maintenance / equity`` at which an account is rescued, and to which it is brought
        back (``target_ratio < trigger_ratio``).
    """

    traders: TraderMap
    access: Mapping[str, CollateralAccess]
    interval_s: float = 60.0
    trigger_ratio: float = 0.8
    target_ratio: float = 0.5
    transfers: list[Transfer] = field(default_factory=list)
    _next_s: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 < self.target_ratio < self.trigger_ratio <= 1.0):
            raise ValidationError(
                "target_ratio", self.target_ratio, "must be in (0, trigger_ratio) and "
                f"trigger_ratio in (0, 1] (trigger_ratio was {self.trigger_ratio})",
            )  # fmt: skip
        if not self.interval_s > 0.0:
            raise ValidationError("interval_s", self.interval_s, "must be > 0")
        shared = self.traders.restricted_to_shared()
        self._rows = shared.frame[shared.frame["venue"].isin(list(self.access))].reset_index(
            drop=True
        )
        self.donors: dict[str, dict[int, dict[str, float]]] = {v: {} for v in self.access}

    @property
    def active(self) -> bool:
        """Whether any trader can move collateral."""
        return bool(len(self._rows)) and self._rows["trader"].duplicated().any()

    @property
    def idle(self) -> bool:
        """Whether no account is watched (:meth:`rebalance` then does nothing)."""
        return not len(self._rows)

    @property
    def next_due_s(self) -> float:
        """The earliest time :meth:`due` can say yes at (seconds on the world's grid)."""
        return self._next_s

    def due(self, t_s: float) -> bool:
        """Whether the traders look at their accounts at ``t_s``."""
        if t_s + 1e-9 < self._next_s:
            return False
        self._next_s = t_s + self.interval_s
        return True

    def rebalance(self, ts_ns: int) -> list[Transfer]:
        """Rescue accounts at or past the trigger with the trader's other accounts."""
        rows = self._rows
        if not len(rows):
            return []
        equity = np.zeros(len(rows))
        maint = np.zeros(len(rows))
        for venue, access in self.access.items():
            mask = (rows["venue"] == venue).to_numpy()
            if mask.any():
                e, m = access.margins(rows["account"].to_numpy(dtype=np.int64)[mask])
                equity[mask], maint[mask] = e, m
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(equity > 0.0, maint / equity, np.inf)
        needy = (ratio >= self.trigger_ratio) & (equity > 0.0) & (maint > 0.0)
        if not needy.any():
            return []
        made: list[Transfer] = []
        trader = rows["trader"].to_numpy(dtype=np.int64)
        venue = rows["venue"].to_numpy()
        account = rows["account"].to_numpy(dtype=np.int64)
        for i in np.flatnonzero(needy).tolist():
            need = maint[i] / self.target_ratio - equity[i]
            siblings = np.flatnonzero((trader == trader[i]) & (np.arange(len(rows)) != i))
            for j in siblings[np.argsort(ratio[siblings], kind="stable")].tolist():
                if need <= 0.0 or ratio[j] >= self.trigger_ratio:
                    break
                give = min(need, self.access[venue[j]].withdrawable(int(account[j])))
                if give <= 1e-9:
                    continue
                self.access[venue[j]].withdraw(int(account[j]), give, ts_ns=ts_ns)
                self.access[venue[i]].deposit(int(account[i]), give, ts_ns=ts_ns)
                need -= give
                made.append(
                    Transfer(ts_ns, int(trader[i]), str(venue[j]), int(account[j]),
                             str(venue[i]), int(account[i]), give)
                )  # fmt: skip
                given = self.donors[str(venue[j])].setdefault(int(account[j]), {})
                given[str(venue[i])] = given.get(str(venue[i]), 0.0) + give
        self.transfers.extend(made)
        return made
