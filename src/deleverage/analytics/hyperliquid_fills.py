"""Hyperliquid's published fill records turned into ADL rounds.

Hyperliquid's node writes every fill as a JSON line (the ``node_fills`` files in its public S3
bucket and a node's ``--write-fills`` output): ``[user, fill]``, or, in the by-block layout, a
block ``{"block_time": ..., "events": [[user, fill], ...]}``. A fill carries ``coin``,
``px``, ``sz`` (strings), ``side`` (``"B"`` buy / ``"A"`` sell), ``time`` (ms),
``startPosition`` (signed size before the fill), ``dir`` and ``closedPnl``; fills of forced
closures also carry ``liquidation = {"liquidatedUser", "markPx", "method"}``. An ADL fill of a
winner has ``dir == "Auto-Deleveraging"`` and names the bankrupt account in
``liquidation.liquidatedUser``. (Format: Hyperliquid docs, "Info endpoint / user fills" field
list, and the node's fills output as parsed by ConejoCapital/HyperMultiAssetedADL; see
docs/formulas.md, "ADL laboratory".)

:func:`adl_rounds_from_fills` groups the ADL fills by (liquidated user, coin, time) into
rounds in the :mod:`deleverage.analytics.adl_study` schema: the bankrupt row's size is the
opposite of what the winners closed; each winner's entry follows from its closed PnL
(``closedPnl = side x sz x (px - entry)``). Fills do not carry account values, so the
deficit, the bankruptcy price and the winners' equity come from the caller (``deficits``,
``equity``) or stay NaN (the study then rejects the table, naming the missing column).
:func:`adl_totals_by_coin` gives the per-coin totals in the layout of the bundled 2025-10-10
aggregates (``adl_notional``, ``closed_pnl``, ``num_users``, ``num_events``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deleverage.errors import DataError

__all__ = ["ADL_DIR", "adl_rounds_from_fills", "adl_totals_by_coin", "read_fills"]

#: ``dir`` of a winner's fill closed by auto-deleveraging.
ADL_DIR = "Auto-Deleveraging"
_FIELDS = ("coin", "px", "sz", "side", "time", "startPosition", "dir", "closedPnl")


def _pairs(line: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(line, dict) and "events" in line:
        for k, event in enumerate(line["events"]):
            yield from _pairs(event, f"{where}.events[{k}]")
        return
    if not (isinstance(line, list) and len(line) == 2 and isinstance(line[1], dict)):
        raise DataError(where, str(line)[:80], "must be [user, fill] or a block with events")
    yield str(line[0]), line[1]


def read_fills(path: str | Path | Iterable[str]) -> pd.DataFrame:
    """Read node fills (JSON lines, optionally .gz) into one row per fill.

    Columns: ``user``, ``coin``, ``px``, ``sz``, ``side``, ``time`` (ms), ``start_position``,
    ``dir``, ``closed_pnl``, ``liquidated_user`` and ``mark_px`` (NaN / "" when not a forced
    closure).
    """
    if isinstance(path, str | Path):
        p = Path(path)
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as fh:
            lines = list(fh)
    else:
        lines = list(path)
    rows: list[dict[str, Any]] = []
    for n, text in enumerate(lines):
        if not text.strip():
            continue
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {n + 1}", text[:80], f"must be JSON ({exc.msg})") from None
        for user, fill in _pairs(parsed, f"line {n + 1}"):
            missing = [f for f in _FIELDS if f not in fill]
            if missing:
                raise DataError(f"line {n + 1}.{missing[0]}", None, "is a required fill field")
            liq = fill.get("liquidation") or {}
            rows.append({
                "user": user, "coin": str(fill["coin"]), "px": float(fill["px"]),
                "sz": float(fill["sz"]), "side": str(fill["side"]), "time": int(fill["time"]),
                "start_position": float(fill["startPosition"]), "dir": str(fill["dir"]),
                "closed_pnl": float(fill["closedPnl"]),
                "liquidated_user": str(liq.get("liquidatedUser", "")),
                "mark_px": float(liq["markPx"]) if "markPx" in liq else np.nan,
            })  # fmt: skip
    frame = pd.DataFrame(rows)
    if len(frame) and not frame["side"].isin(["A", "B"]).all():
        bad = frame.loc[~frame["side"].isin(["A", "B"]), "side"].iloc[0]
        raise DataError("side", bad, "must be 'A' (sell) or 'B' (buy)")
    return frame


def _adl_fills(fills: pd.DataFrame) -> pd.DataFrame:
    adl = fills[fills["dir"] == ADL_DIR]
    if (adl["liquidated_user"] == "").any():
        raise DataError("liquidation.liquidatedUser", "", "is required on an ADL fill")
    return adl


def adl_totals_by_coin(fills: pd.DataFrame) -> pd.DataFrame:
    """Per-coin ADL totals: ``adl_notional = sum(px x sz)``, ``closed_pnl``, ``num_users``
    (distinct ADL'd winners) and ``num_events`` (fills), as in the bundled aggregates."""
    adl = _adl_fills(fills).assign(notional=lambda f: f["px"] * f["sz"])
    g = adl.groupby("coin", sort=True)
    return pd.DataFrame({
        "adl_notional": g["notional"].sum(), "closed_pnl": g["closed_pnl"].sum(),
        "num_users": g["user"].nunique(), "num_events": g.size(),
    }).reset_index()  # fmt: skip


def _per_winner(fills: pd.DataFrame) -> pd.DataFrame:
    """One row per winner of a round: sizes and PnL summed, price volume-weighted, the
    position before its first fill."""
    g = fills.groupby("user", sort=False)
    out = g.agg(
        sz=("sz", "sum"), closed_pnl=("closed_pnl", "sum"), notional=("notional", "sum"),
        start_position=("start_position", "first"), mark_px=("mark_px", "first"),
    )  # fmt: skip
    out["px"] = out["notional"] / out["sz"]
    return out.reset_index()


def adl_rounds_from_fills(
    fills: pd.DataFrame,
    *,
    deficits: Mapping[str, float] | None = None,
    equity: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """ADL rounds (:mod:`deleverage.analytics.adl_study` schema) from node fills.

    One round per (liquidated user, coin, time). ``deficits``: liquidated user -> its deficit
    in quote, spread over that user's rounds by notional; the bankruptcy price then follows as
    ``mark + side x deficit / size``. ``equity``: winner -> account value. Accounts are numbered
    in order of appearance; ``address`` keeps the user.
    """
    adl = _adl_fills(fills).copy()
    if adl.empty:
        raise DataError("fills", 0, f"must contain fills with dir {ADL_DIR!r}")
    ids = {u: k for k, u in enumerate(pd.unique(pd.concat([adl["liquidated_user"], adl["user"]])))}
    adl["notional"] = adl["px"] * adl["sz"]
    share = adl.groupby(["liquidated_user", "coin", "time"])["notional"].sum()
    share = share / share.groupby(level=0).transform("sum")
    rows: list[dict[str, Any]] = []
    for r, ((bk, coin, ts), fills_r) in enumerate(adl.groupby(["liquidated_user", "coin", "time"])):
        group = _per_winner(fills_r)
        side = np.sign(group["start_position"].to_numpy())  # winners' sides
        closed = group["sz"].to_numpy()
        mark = (
            float(group["mark_px"].dropna().iloc[0])
            if group["mark_px"].notna().any()
            else float(group["px"].iloc[0])
        )
        size = -float(np.sum(side * closed))
        deficit = (
            np.nan
            if deficits is None or bk not in deficits
            else float(deficits[bk]) * float(share[(bk, coin, ts)])
        )
        bankruptcy = mark + np.sign(size) * deficit / abs(size) if size else np.nan
        rows.append({"round": r, "ts_ms": int(ts), "role": "bankrupt", "account": ids[bk],
                     "address": bk, "coin": coin, "size": size, "mark_price": mark,
                     "bankruptcy_price": bankruptcy, "deficit": deficit})  # fmt: skip
        entry = group["px"].to_numpy() - group["closed_pnl"].to_numpy() / (side * closed)
        for (_, fill), e in zip(group.iterrows(), entry.tolist(), strict=True):
            eq = np.nan if equity is None else float(equity.get(fill["user"], np.nan))
            rows.append({"round": r, "ts_ms": int(ts), "role": "counterparty",
                         "account": ids[fill["user"]], "address": fill["user"], "coin": coin,
                         "size": fill["start_position"], "mark_price": mark, "entry_price": e,
                         "equity": eq, "adl_px": fill["px"], "adl_sz": fill["sz"],
                         "closed_pnl": fill["closed_pnl"]})  # fmt: skip
    return pd.DataFrame(rows)
