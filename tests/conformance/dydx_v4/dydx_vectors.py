"""Loading dYdX v4 test vectors (vectors.json in this folder) into the integer model.

Each vector keeps the venue test it comes from (``source``: repository, commit, file, test);
the helpers here only translate its inputs into :mod:`deleverage.rules.quantum` objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from deleverage.rules.quantum import QuantumAccount, QuantumMarket

VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "vectors.json").read_text())
BY_ID: dict[str, dict[str, Any]] = {v["id"]: v for v in VECTORS}


def cases(select: Callable[[dict[str, Any]], bool]) -> list[Any]:
    """pytest params of the vectors ``select`` keeps, each with its id and source test."""
    out = []
    for v in VECTORS:
        if select(v):
            out.append(pytest.param(v, id=v["id"]))
    return out


def market(data: Mapping[str, Any]) -> QuantumMarket:
    clob = data.get("clob_pair") or {}
    return QuantumMarket(
        atomic_resolution=int(data["atomic_resolution"]),
        oracle_price=int(data["oracle_price"]),
        price_exponent=int(data["price_exponent"]),
        initial_margin_ppm=int(data["initial_margin_ppm"]),
        maintenance_fraction_ppm=int(data["maintenance_fraction_ppm"]),
        step_base_quantums=int(clob.get("step_base_quantums", 1)),
        subticks_per_tick=int(clob.get("subticks_per_tick", 1)),
        quantum_conversion_exponent=int(clob.get("quantum_conversion_exponent", -9)),
    )


def markets(inputs: Mapping[str, Any]) -> dict[int, QuantumMarket]:
    rows = inputs.get("markets") or [inputs["market"]]
    return {int(m["perpetual_id"]): market(m) for m in rows}


def account(data: Mapping[str, Any]) -> QuantumAccount:
    return QuantumAccount(
        usdc_quote=int(data["usdc_quote_quantums"]),
        positions={
            int(p["perpetual_id"]): int(p["base_quantums"]) for p in data["perpetual_positions"]
        },
    )


def source_of(vector: Mapping[str, Any]) -> str:
    s = vector["source"]
    return f"{s['repo']}@{s['commit'][:12]} {s['path']} :: {s.get('test', '')}"
