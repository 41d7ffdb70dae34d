"""Property: every command keeps the contract on mutated scenarios, experiments and options.

Hypothesis takes the valid tiny scenario and experiment (tests/cli_contract.py), changes one to
three of their keys (a nasty value, a deleted key, an unknown key) and runs the commands on the
result, each example in a fresh folder used as the working directory. Whatever the input:

- the exit code is 0 or 2; on 2 the message on stderr names a field; no traceback, no
  "internal error"; JSON output is strict JSON;
- nothing is written outside the working directory, and in it nothing but the command's own
  output (``results/<slug>/``, ``sweep-<slug>/``, the ``--out`` path);
- ``validate`` and ``run`` agree: a scenario ``validate`` passes runs (exit 0), one it rejects
  does not (exit 2).

Example counts stay modest (the ``ci`` profile runs each property 50 times at most; the run and
sweep properties are marked slow).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_contract import (
    TINY_EXPERIMENT,
    TINY_SCENARIO,
    assert_contract,
    call,
    inside,
    snapshot,
    toml_document,
)

_DELETE = object()

NASTY: st.SearchStrategy[Any] = st.one_of(
    st.just(_DELETE),
    st.sampled_from(["", "../escape", "/tmp/abs", "a/b", "nan", "caf\u00e9", "x" * 300, "gbm"]),
    st.sampled_from([0, -1, 1, 10**8, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 1e-308, 5e-324, 1e6]),
    st.booleans(),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=2),
    st.dictionaries(st.sampled_from(["process", "s0", "junk"]), st.integers(), max_size=2),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        out.append((*prefix, key))
        if isinstance(value, dict | list) and value:
            out.extend(_paths(value, (*prefix, key)))
    return out


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with one to three keys replaced, deleted, or joined by an unknown key."""
    data = copy.deepcopy(document)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = data
        for key in path[:-1]:
            parent = parent[key]
        if path[-1] not in (parent if isinstance(parent, dict) else range(len(parent))):
            continue
        if draw(st.booleans()) and isinstance(parent, dict):
            parent["unknown_key"] = 1
            continue
        value = draw(NASTY)
        if value is _DELETE:
            if isinstance(parent, dict):
                del parent[path[-1]]
            continue
        parent[path[-1]] = value
    return data


def _inside_only(root: Path, allowed: tuple[str, ...]) -> None:
    """Everything under ``root`` is the work folder's inputs or an allowed output."""
    for entry in snapshot(root):
        assert entry == "work" or entry.startswith("work/"), f"written outside: {entry}"
        inner = entry.removeprefix("work").lstrip("/")
        if inner and "/" not in inner:
            assert inner in ("scenario.toml", "experiment.toml", *allowed), inner


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(document=mutated(TINY_SCENARIO))
def test_validate_population_and_heatmap_keep_the_contract(document: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        work = root / "work"
        work.mkdir()
        (work / "scenario.toml").write_text(toml_document(document))
        with inside(work):
            outcomes = [
                call("validate", "scenario.toml"),
                call("population", "scenario.toml", "--out", "population.parquet"),
                call("heatmap", "--scenario", "scenario.toml", "--json"),
            ]
        for outcome in outcomes:
            assert_contract(outcome)
        _inside_only(root, allowed=("population.parquet",))


@pytest.mark.slow
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(document=mutated(TINY_SCENARIO))
def test_run_keeps_the_contract_and_agrees_with_validate(document: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        work = root / "work"
        work.mkdir()
        (work / "scenario.toml").write_text(toml_document(document))
        with inside(work):
            checked = call("validate", "scenario.toml")
            ran = call("run", "scenario.toml", "--no-baseline", "--json")

        assert_contract(checked)
        assert_contract(ran)
        assert (checked.code == 0) == (ran.code == 0), (checked.text[-300:], ran.text[-300:])
        _inside_only(root, allowed=("results",))
        results = work / "results"
        if ran.code == 0:
            name = str(document.get("name", "scenario"))  # the field's default
            assert [p.name for p in results.iterdir()] == [name]
        else:
            assert not results.exists()


@pytest.mark.slow
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(document=mutated(TINY_EXPERIMENT))
def test_sweep_and_its_report_keep_the_contract(document: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        work = root / "work"
        work.mkdir()
        (work / "scenario.toml").write_text(toml_document(TINY_SCENARIO))
        (work / "experiment.toml").write_text(toml_document(document))
        with inside(work):
            swept = call("sweep", "experiment.toml", "--workers", "0")
            outputs = [p.name for p in work.iterdir() if p.name.startswith("sweep-")]
            reports = [call("sweep-report", name) for name in outputs]

        assert_contract(swept)
        for report in reports:
            assert_contract(report)
        _inside_only(root, allowed=tuple(outputs))
        assert len(outputs) == (1 if swept.code == 0 else 0)


OPTION_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-1", "1e308", "abc", "", "nan", "inf", "60000", "3000"]),
)


@settings(max_examples=50)
@given(
    side=st.sampled_from(["long", "short", "up", ""]),
    size=OPTION_VALUES,
    entry=OPTION_VALUES,
    margin=OPTION_VALUES,
    extra=st.sampled_from(["--volatility", "--drift", "--horizon-hours", "--mark"]),
    extra_value=OPTION_VALUES,
)
def test_position_keeps_the_contract_for_any_numbers(
    side: str, size: str, entry: str, margin: str, extra: str, extra_value: str
) -> None:
    outcome = call(
        "position", "--side", side, "--size", size, "--entry", entry, "--margin", margin,
        extra, extra_value, "--json",
    )  # fmt: skip

    assert_contract(outcome)
