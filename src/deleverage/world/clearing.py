"""A decentralized clearinghouse: venues as clearing members, a default waterfall, cover-2.

Each member is a venue. When a member's liquidations leave a loss beyond its traders' margin
(the defaulters' margin is the first layer and is used up inside the venue before the loss
exists), the clearinghouse meets that loss with these layers, strictly in order (each pays only
what the ones before it left; :func:`deleverage.rules.clearing.run_waterfall`):

1. ``member_fund``: the member venue's own insurance fund, pledged to the clearinghouse;
2. ``own_contribution``: the defaulting member's contribution to the default fund;
3. ``skin_in_game``: the clearinghouse's own capital, **before** the other members'
   contributions by default (EMIR Art. 45(4) and Delegated Regulation 153/2013 Art. 35: the
   CCP's dedicated own resources come before the non-defaulting members' contributions);
   ``skin_position="after_mutual"`` puts it after them instead;
4. ``mutual_fund``: the non-defaulting members' contributions, drawn pro rata to what each
   still holds (:func:`~deleverage.rules.clearing.pro_rata_draw`);
5. ``vm_haircut``: what is still unpaid is taken from the members' variation-margin gains of
   the cycle, pro rata (:func:`~deleverage.rules.clearing.haircut_gains`);
6. ``bad_debt``: the rest, uncovered.

The default fund is sized by a documented rule: :meth:`ClearingHouse.cover2` takes each
member's stressed loss under a named stress scenario, subtracts what the member prefunds ahead
of the mutual fund (its insurance fund), and keeps the two largest (CPMI-IOSCO PFMI Principle
4, key consideration 4); members contribute in proportion to their stressed exposures.
docs/formulas.md §20.1 has the formulas and sources.

Everything the clearinghouse pays is on a named line of :class:`ClearingLines`, and
``sum(deficits) == member_fund + own_contribution + skin_in_game + mutual_fund + vm_haircut +
bad_debt`` in every settlement. :func:`standalone_bad_debt` is the comparison: the same
deficits met by standalone funds of the same total size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import pandas as pd

from deleverage.errors import ValidationError
from deleverage.rules import clearing as cl
from deleverage.venues.protocol import SolvencyLines
from deleverage.world.hooks import Deficit, RiskLayer

if TYPE_CHECKING:
    from deleverage.world.core import World

__all__ = [
    "LINE_NAMES",
    "ClearingHouse",
    "ClearingLayer",
    "ClearingLines",
    "ClearingSettlement",
    "SkinPosition",
    "StressScenario",
    "member_deficits",
    "standalone_bad_debt",
    "standalone_funds",
    "variation_margin",
]

SkinPosition = Literal["before_mutual", "after_mutual"]

#: The waterfall's lines, in the order they pay (then ``bad_debt``).
LINE_NAMES = (
    "member_fund",
    "own_contribution",
    "skin_in_game",
    "mutual_fund",
    "vm_haircut",
    "bad_debt",
)


@dataclass(frozen=True)
class StressScenario:
    """A named stress scenario: a relative move per asset (``-0.25``: the price falls 25 %).

    Cover-2 sizes the default fund on the members' losses under it (for a correlated shock,
    every asset moves the same way).
    """

    name: str
    shocks: Mapping[str, float]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError("stress.name", self.name, "must be a non-empty string")
        if not self.shocks:
            raise ValidationError("stress.shocks", dict(self.shocks), "must name an asset")
        for asset, move in self.shocks.items():
            if isinstance(move, bool) or not isinstance(move, int | float):
                raise ValidationError(f"stress.shocks.{asset}", move, "must be a number")
            if not math.isfinite(move) or move <= -1.0:
                raise ValidationError(
                    f"stress.shocks.{asset}", move, "must be a finite relative move > -1"
                )


class ClearingLines(NamedTuple):
    """Amounts (quote) on each line of the waterfall, cumulative or for one settlement."""

    member_fund: float
    own_contribution: float
    skin_in_game: float
    mutual_fund: float
    vm_haircut: float
    bad_debt: float

    @property
    def total(self) -> float:
        """Every loss the clearinghouse was handed: the sum of all lines."""
        return float(sum(self))

    @property
    def prefunded(self) -> float:
        """What the prefunded layers paid (member funds, default fund, skin in the game)."""
        return self.member_fund + self.own_contribution + self.skin_in_game + self.mutual_fund


class ClearingSettlement(NamedTuple):
    """One settlement: its lines and one row per member (what it lost, paid and received)."""

    ts_ns: int
    lines: ClearingLines
    by_member: pd.DataFrame


class ClearingHouse:
    """Venues as clearing members with a default waterfall (see the module docstring).

    Parameters
    ----------
    member_funds
        Member name -> its insurance fund pledged to the clearinghouse (quote, >= 0).
    contributions
        Member name -> its default-fund contribution (quote, >= 0); same members.
    skin_in_game
        The clearinghouse's own capital (quote, >= 0).
    skin_position
        Where the skin in the game pays: ``before_mutual`` (EMIR) or ``after_mutual``.
    vm_haircut
        Whether unpaid losses are taken from the members' variation-margin gains.

    Examples
    --------
    >>> ch = ClearingHouse(
    ...     member_funds={"a": 10.0, "b": 10.0}, contributions={"a": 5.0, "b": 5.0},
    ...     skin_in_game=2.0,
    ... )
    >>> s = ch.settle({"a": 30.0}, vm_gains={"b": 20.0}, ts_ns=0)
    >>> [round(x, 6) for x in s.lines]  # fund, own share, skin, mutual, haircut, bad debt
    [10.0, 5.0, 2.0, 5.0, 8.0, 0.0]
    """

    def __init__(
        self,
        *,
        member_funds: Mapping[str, float],
        contributions: Mapping[str, float],
        skin_in_game: float,
        skin_position: SkinPosition = "before_mutual",
        vm_haircut: bool = True,
    ) -> None:
        if not member_funds:
            raise ValidationError("member_funds", dict(member_funds), "must name a member")
        names = tuple(member_funds)
        if set(contributions) != set(names):
            raise ValidationError(
                "contributions", sorted(contributions), f"must name exactly the members {names}"
            )
        if skin_position not in ("before_mutual", "after_mutual"):
            raise ValidationError(
                "skin_position", skin_position, "must be 'before_mutual' or 'after_mutual'"
            )
        funds = cl.stressed_exposures([member_funds[n] for n in names], [0.0] * len(names))
        shares = cl.stressed_exposures([contributions[n] for n in names], [0.0] * len(names))
        cl.run_waterfall(0.0, [skin_in_game])  # validates the amount
        self._names = names
        self._fund = funds.copy()
        self._contribution = shares.copy()
        self._skin = float(skin_in_game)
        self._skin_position: SkinPosition = skin_position
        self._vm_haircut = bool(vm_haircut)
        self._initial = (float(funds.sum()), float(shares.sum()), float(skin_in_game))
        self._lines = np.zeros(len(LINE_NAMES))
        self._last_ts = -(2**63)

    @classmethod
    def cover2(
        cls,
        *,
        member_funds: Mapping[str, float],
        stressed_losses: Mapping[str, Mapping[str, float]],
        skin_in_game: float,
        cover: int = 2,
        skin_position: SkinPosition = "before_mutual",
        vm_haircut: bool = True,
    ) -> ClearingHouse:
        """Size the default fund by cover-``n`` over named stress scenarios.

        ``stressed_losses``: scenario name -> member -> its loss beyond its traders' margin
        under that scenario (:func:`deleverage.world.exposure.stressed_deficits`). Per scenario
        ``s``: ``E_is = max(L_is - F_i, 0)`` (``F_i`` the member's insurance fund); the fund is
        ``max over s of the sum of the n largest E_is``; member ``i`` contributes in proportion
        to its largest exposure over the scenarios, ``max_s E_is``.
        """
        names = tuple(member_funds)
        if not stressed_losses:
            raise ValidationError("stressed_losses", {}, "must hold at least one scenario")
        funds = [member_funds[n] for n in names]
        sized, peak = 0.0, np.zeros(len(names))
        for scenario, losses in stressed_losses.items():
            unknown = sorted(set(losses) - set(names))
            if unknown:
                raise ValidationError(
                    f"stressed_losses.{scenario}", unknown[0], f"must name a member {names}"
                )
            exposures = cl.stressed_exposures([losses.get(n, 0.0) for n in names], funds)
            sized = max(sized, cl.cover_n_default_fund(exposures, cover=cover))
            peak = np.maximum(peak, exposures)
        shares = cl.pro_rata_contributions(peak, sized)
        return cls(
            member_funds=member_funds,
            contributions=dict(zip(names, shares.tolist(), strict=True)),
            skin_in_game=skin_in_game,
            skin_position=skin_position,
            vm_haircut=vm_haircut,
        )

    @property
    def members(self) -> tuple[str, ...]:
        """The members' names, in order."""
        return self._names

    @property
    def default_fund(self) -> float:
        """The default fund's balance now (sum of the contributions left), quote."""
        return float(self._contribution.sum())

    @property
    def skin_in_game(self) -> float:
        """The clearinghouse's own capital left, quote."""
        return self._skin

    @property
    def total_resources(self) -> float:
        """Member funds + default fund + skin in the game at the start, quote."""
        return float(sum(self._initial))

    def lines(self) -> ClearingLines:
        """Cumulative amounts on each line since the clearinghouse started."""
        return ClearingLines(*(float(x) for x in self._lines))

    def balances(self) -> pd.DataFrame:
        """One row per member: its insurance fund and default-fund contribution left."""
        return pd.DataFrame(
            {"member": self._names, "member_fund": self._fund, "contribution": self._contribution}
        )

    def settle(
        self,
        deficits: Mapping[str, float],
        *,
        vm_gains: Mapping[str, float] | None = None,
        ts_ns: int,
    ) -> ClearingSettlement:
        """Meet the members' deficits of one cycle with the waterfall.

        Parameters
        ----------
        deficits
            Member -> loss its liquidations left beyond its traders' margin in the cycle
            (quote, >= 0); members not named lost nothing.
        vm_gains
            Member -> its variation margin over the cycle (quote, signed; gains > 0), the
            base of the gains haircut; members not named had none.
        ts_ns
            The settlement's time; never earlier than the previous one.

        Several defaults in one settlement are met in member order (each takes the shared
        layers the ones before it left); a defaulting member's contribution is not mutualized
        for another default of the same settlement, and its gains are not haircut.

        Raises
        ------
        ValidationError
            An unknown member, a negative or non-finite amount, or time going backwards;
            nothing changes.
        """
        loss = self._vector("deficits", deficits, signed=False)
        gains = self._vector("vm_gains", vm_gains or {}, signed=True)
        if isinstance(ts_ns, bool) or not isinstance(ts_ns, int) or ts_ns < self._last_ts:
            raise ValidationError("ts_ns", ts_ns, f"must be an integer >= {self._last_ts}")
        n = len(self._names)
        paid = np.zeros((n, len(LINE_NAMES)))
        defaulting = loss > 0.0
        unpaid = np.zeros(n)
        for i in np.flatnonzero(defaulting):
            unpaid[i] = self._meet(int(i), float(loss[i]), defaulting, paid)
        shortfall = float(unpaid.sum())
        taken = np.zeros(n)
        if shortfall > 0.0 and self._vm_haircut:
            base = np.where(defaulting, 0.0, gains)
            cut = cl.haircut_gains(shortfall, base)
            taken = cut.taken
            # The haircut pays each defaulter's residual in proportion to it.
            paid[:, 4] = unpaid * (1.0 - cut.residual / shortfall)
            unpaid = unpaid - paid[:, 4]
        paid[:, 5] = unpaid
        cycle = paid.sum(axis=0)
        self._lines += cycle
        self._last_ts = ts_ns
        frame = pd.DataFrame(paid, columns=list(LINE_NAMES))
        frame.insert(0, "deficit", loss)
        frame.insert(0, "member", self._names)
        frame["vm_gain"] = gains
        frame["haircut_taken"] = taken
        return ClearingSettlement(ts_ns, ClearingLines(*(float(x) for x in cycle)), frame)

    def _meet(self, i: int, loss: float, defaulting: np.ndarray, paid: np.ndarray) -> float:
        # Layers 1-4 for member i; returns what they left unpaid.
        head = cl.run_waterfall(loss, [self._fund[i], self._contribution[i]])
        self._fund[i] -= head.paid[0]
        self._contribution[i] -= head.paid[1]
        paid[i, 0] += head.paid[0]
        paid[i, 1] += head.paid[1]
        rest = head.residual
        order = ("skin", "mutual") if self._skin_position == "before_mutual" else ("mutual", "skin")
        for layer in order:
            if rest <= 0.0:
                break
            if layer == "skin":
                used = min(self._skin, rest)
                self._skin -= used
                paid[i, 2] += used
                rest -= used
                continue
            others = np.where(defaulting, 0.0, self._contribution)
            draw = cl.pro_rata_draw(rest, others)
            self._contribution -= draw.paid
            paid[i, 3] += float(draw.paid.sum())
            rest = draw.residual
        return max(rest, 0.0)

    def _vector(self, field: str, values: Mapping[str, float], *, signed: bool) -> np.ndarray:
        out = np.zeros(len(self._names))
        index = {n: i for i, n in enumerate(self._names)}
        for name, value in values.items():
            if name not in index:
                raise ValidationError(field, name, f"must name a member {list(self._names)}")
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
                raise ValidationError(f"{field}.{name}", value, "must be a number")
            if not math.isfinite(value) or (not signed and value < 0.0):
                rule = "must be finite" if signed else "must be a finite amount >= 0"
                raise ValidationError(f"{field}.{name}", value, rule)
            out[index[name]] = float(value)
        return out


def standalone_funds(house: ClearingHouse) -> dict[str, float]:
    """Standalone insurance funds of the same total size as ``house``'s resources at start.

    Each member keeps what it put in (its fund and its contribution) plus a share of the skin
    in the game pro rata to that; the funds add up to :attr:`ClearingHouse.total_resources`.
    Read before any settlement.
    """
    table = house.balances()
    own = (table["member_fund"] + table["contribution"]).to_numpy(dtype=np.float64)
    skin = cl.pro_rata_contributions(own, house.skin_in_game)
    return dict(zip(house.members, (own + skin).tolist(), strict=True))


def standalone_bad_debt(deficits: Mapping[str, float], funds: Mapping[str, float]) -> float:
    """Bad debt when each venue meets its own deficit with its own fund only:
    ``sum_i max(D_i - F_i, 0)``."""
    total = 0.0
    for name, deficit in deficits.items():
        if name not in funds:
            raise ValidationError("deficits", name, f"must name a fund {sorted(funds)}")
        total += cl.run_waterfall(deficit, [funds[name]]).residual
    return total


def member_deficits(
    before: Mapping[str, SolvencyLines], after: Mapping[str, SolvencyLines]
) -> dict[str, float]:
    """Each member venue's new loss beyond its traders' margin between two solvency readings.

    A member venue passes its loss to the clearinghouse: run it with an empty insurance fund
    and no ADL or socialization (its fund is pledged to the clearinghouse), so that the whole
    loss beyond margin is declared as the venue's bad debt; the deficit is its increase.
    """
    out = {}
    for name, now in after.items():
        if name not in before:
            raise ValidationError("before", name, "must hold every venue in 'after'")
        out[name] = max(now.bad_debt - before[name].bad_debt, 0.0)
    return out


def variation_margin(
    levels: pd.DataFrame, before: Mapping[str, float], after: Mapping[str, float]
) -> float:
    """A member's variation margin over a cycle: the value change of its traders' net
    positions, ``sum over positions of size x (P_after - P_before)`` (quote, gains > 0).

    ``levels`` is the venue's :meth:`~deleverage.venues.protocol.Venue.liquidation_levels` at
    the start of the cycle (its ``asset`` and ``size`` columns).
    """
    if levels.empty:
        return 0.0
    assets: Sequence[str] = levels["asset"].astype(str).tolist()
    missing = sorted({a for a in assets if a not in before or a not in after})
    if missing:
        raise ValidationError("prices", missing[0], "must be given before and after the cycle")
    move = np.array([after[a] - before[a] for a in assets], dtype=np.float64)
    return float(np.sum(levels["size"].to_numpy(dtype=np.float64) * move))


class ClearingLayer(RiskLayer):
    """The clearinghouse as a world's risk layer.

    A member venue's new bad debt in a round is its default: the layer settles it through the
    waterfall and returns what the clearinghouse absorbed (everything but the residual bad
    debt), which the world books on the venue's ``absorbed`` line. The gains haircut reaches
    the other members' variation margin since the start of the step: their open positions now
    times the move of the shared price since the step began (positions closed during the step
    are left out), less what earlier settlements of the step already took. Member venues
    should run with an empty insurance fund and no ADL (:func:`member_deficits`).
    """

    name = "clearinghouse"

    def __init__(self, house: ClearingHouse) -> None:
        self.house = house
        self.settlements: list[ClearingSettlement] = []
        #: Standalone funds of the same total size, read before any settlement.
        self.standalone = standalone_funds(house)
        self.deficits = dict.fromkeys(house.members, 0.0)
        self._start_prices: dict[str, float] = {}
        self._taken = dict.fromkeys(house.members, 0.0)

    def on_start(self, world: World) -> None:
        """Check every member is a venue of the world; remember the prices."""
        missing = [m for m in self.house.members if m not in world.venues]
        if missing:
            raise ValidationError(
                "clearinghouse.members", missing[0], f"must name a venue {sorted(world.venues)}"
            )
        self._start_prices = dict(world.prices)

    def on_step_end(self, world: World, step: int, ts_ns: int) -> None:
        """The next step's variation margin starts from these prices."""
        self._start_prices = dict(world.prices)
        self._taken = dict.fromkeys(self.house.members, 0.0)

    def route_deficit(self, world: World, deficit: Deficit) -> float:
        """Settle a member's new bad debt; return what the waterfall absorbed."""
        if deficit.venue not in self._taken or deficit.bad_debt <= 0.0:
            return 0.0
        gains = {}
        for member in self.house.members:
            if member == deficit.venue:
                continue
            levels = world.venues[member].liquidation_levels()
            vm = variation_margin(levels, self._start_prices, world.prices)
            gains[member] = max(vm - self._taken[member], 0.0)
        settlement = self.house.settle(
            {deficit.venue: deficit.bad_debt}, vm_gains=gains, ts_ns=deficit.ts_ns
        )
        self.deficits[deficit.venue] += deficit.bad_debt
        self.settlements.append(settlement)
        for member, taken in zip(
            settlement.by_member["member"], settlement.by_member["haircut_taken"], strict=True
        ):
            self._taken[str(member)] += float(taken)
        return settlement.lines.total - settlement.lines.bad_debt

    def panels(self) -> dict[str, pd.DataFrame]:
        """Report tables: the waterfall's lines next to standalone funds of the same size on
        the same deficits, and each member's balances."""
        lines = self.house.lines()
        rows = [(name, float(v)) for name, v in zip(LINE_NAMES, lines, strict=True)]
        rows.append(
            ("standalone funds: bad debt", standalone_bad_debt(self.deficits, self.standalone))
        )
        members = self.house.balances()
        members.insert(1, "deficit", [self.deficits[m] for m in self.house.members])
        members.insert(2, "standalone_fund", [self.standalone[m] for m in self.house.members])
        return {
            "Clearinghouse waterfall (quote)": pd.DataFrame(rows, columns=["line", "amount"]),
            "Clearing members": members,
        }
