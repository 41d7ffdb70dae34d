"""One regression test per class of bad input that broke the command line's contract (issue 16).

The contract (tests/cli_contract.py): exit 0, or exit 2 with a message naming the option or
field, the value and the rule; never a traceback, "internal error", or a partial result; output
folders appear whole or not at all; a scenario's name never points outside its folder.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli_contract import (
    TINY_EXPERIMENT,
    TINY_SCENARIO,
    assert_contract,
    call,
    inside,
    snapshot,
    toml_document,
)
from deleverage.cli.redact import redact


def _scenario(folder: Path, **changes: Any) -> Path:
    data = json.loads(json.dumps(TINY_SCENARIO))
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        node[keys[-1]] = value
    file = folder / "scenario.toml"
    file.write_text(toml_document(data))
    return file


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    return _scenario(tmp_path)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.toml"
    os.mkfifo(path)
    return path


# ------------------------------------------------------------------ unreadable input files
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"\xff\xfe\x00\x01binary", "binary"),
        ('name = "caf\xe9"\n'.encode("latin-1"), "UTF-8"),
        (None, "FIFO"),
        ("folder", "folder"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run", "sweep", "population"])
def test_binary_non_utf8_fifo_or_folder_input_exits_2_naming_it(
    tmp_path: Path, command: str, content: bytes | str | None, rule: str
) -> None:
    # Arrange
    path = tmp_path / "input.toml"
    if content is None:
        os.mkfifo(path)
    elif content == "folder":
        path.mkdir()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    extra = ["--out", str(tmp_path / "p.parquet")] if command == "population" else []

    # Act
    outcome = call(command, str(path), *extra)

    # Assert
    assert outcome.code == 2
    assert_contract(outcome, names=(rule, str(path)))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["queue", "heatmap"])
def test_a_fifo_or_text_file_as_parquet_input_exits_2(
    tmp_path: Path, fifo: Path, command: str
) -> None:
    text = tmp_path / "x.parquet"
    text.write_text("not parquet")
    extra = ["--market", "BTCUSDT"] if command == "queue" else []

    for path in (fifo, text):
        outcome = call(command, str(path), *extra)

        assert outcome.code == 2
        assert_contract(outcome, names=(str(path),))


# ------------------------------------------------------------------ output paths
def _unwritable() -> Path:
    return Path("/proc/1/deleverage-out")  # /proc refuses new entries, even to root


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda t: t / "a-file.txt", "not a file"),
        (lambda t: t / "missing" / "deeper" / "x.txt" / "y", "Not a directory"),
        (lambda t: Path("/dev/null"), "device"),
        (lambda t: _unwritable(), "writable"),
        (lambda t: Path(""), "folder of its own"),
    ],
)
def test_run_output_folder_that_is_a_file_special_or_unwritable_exits_2(
    tmp_path: Path, scenario: Path, make: Any, rule: str
) -> None:
    (tmp_path / "a-file.txt").write_text("x")
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "deeper").mkdir()
    (tmp_path / "missing" / "deeper" / "x.txt").write_text("x")
    before = snapshot(tmp_path)

    outcome = call("run", str(scenario), "--out", str(make(tmp_path)))

    assert outcome.code == 2
    assert_contract(outcome, names=("`--out`", rule))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ["population", "SCENARIO", "--out", "DIR"],
        ["population", "SCENARIO", "--out", "DIR/missing/p.parquet"],
        ["population", "SCENARIO", "--out", "/dev/null"],
        ["heatmap", "--scenario", "SCENARIO", "--html", "DIR"],
        ["heatmap", "--scenario", "SCENARIO", "--html", "DIR/missing/h.html"],
        ["demo", "--journal", "DIR"],
        ["demo", "--journal", "/proc/1/demo.parquet"],
        ["sweep", "EXPERIMENT", "--out", "/dev/null"],
        ["sweep", "EXPERIMENT", "--out", "SCENARIO/sub"],
    ],
)
def test_output_files_that_are_folders_missing_or_special_exit_2_before_any_work(
    tmp_path: Path, scenario: Path, args: list[str]
) -> None:
    (tmp_path / "experiment.toml").write_text(toml_document(TINY_EXPERIMENT))
    swap = {"DIR": str(tmp_path), "SCENARIO": str(scenario)}
    swap["EXPERIMENT"] = str(tmp_path / "experiment.toml")
    argv = [a for arg in args for a in [_swap(arg, swap)]]
    before = snapshot(tmp_path)

    outcome = call(*argv)

    assert outcome.code == 2
    assert_contract(outcome)
    assert snapshot(tmp_path) == before


def _swap(arg: str, swap: dict[str, str]) -> str:
    for key, value in swap.items():
        arg = arg.replace(key, value) if arg.startswith(key) else arg
    return arg


def test_an_output_folder_holding_other_files_is_refused_and_left_alone(
    tmp_path: Path, scenario: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")

    outcome = call("run", str(scenario), "--out", str(out))

    assert outcome.code == 2
    assert_contract(outcome, names=("`--out`", "thesis.tex"))
    assert (out / "thesis.tex").read_text() == "years of work"


def test_an_interrupted_run_leaves_no_folder_and_an_earlier_one_untouched(
    tmp_path: Path, scenario: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a finished run, then a second one interrupted while writing its report.
    out = tmp_path / "out"
    assert call("run", str(scenario), "--out", str(out), "--no-baseline").code == 0
    first = {p: (out / p).read_bytes() for p in ("summary.json", "metrics.json")}

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("deleverage.analytics.report.write_report", interrupted)
    fresh = tmp_path / "fresh" / "nested"

    # Act
    again = call("run", str(scenario), "--out", str(out), "--no-baseline")
    new = call("run", str(scenario), "--out", str(fresh), "--no-baseline")

    # Assert: exit 130; the old folder whole, the new one absent, no temporary left over.
    assert again.code == new.code == 130
    assert {p: (out / p).read_bytes() for p in first} == first
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scenario.toml"]


# ------------------------------------------------------------------ names are slugs
@pytest.mark.parametrize("name", ["../escape", "/tmp/absolute", "a/b", "..", ".hidden", ""])
def test_a_scenario_name_that_is_not_a_slug_never_writes_outside(tmp_path: Path, name: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    file = _scenario(work, name=name)
    before = snapshot(tmp_path)

    with inside(work):
        checked = call("validate", str(file))
        ran = call("run", str(file), "--no-baseline")

    assert checked.code == ran.code == 2
    assert "slug" in checked.text
    assert_contract(ran, names=("name", "slug"))
    assert snapshot(tmp_path) == before


def test_an_experiment_name_that_is_not_a_slug_never_writes_outside(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _scenario(work)
    bad = {**TINY_EXPERIMENT, "name": "../../outside"}
    (work / "experiment.toml").write_text(toml_document(bad))
    before = snapshot(tmp_path)

    with inside(work):
        outcome = call("sweep", "experiment.toml", "--workers", "0")

    assert outcome.code == 2
    assert_contract(outcome, names=("name", "slug"))
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ validate sees what run needs
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"markets__0__population__n_positions": 100_000_000}, "n_positions"),
        ({"markets__0__price": {"process": "gbm", "s0": 60000.0, "sigma": 1e6}}, "sigma"),
        ({"markets__0__price__s0": 1e308}, "s0"),
        (
            {
                "markets__0__price": {"process": "gbm", "s0": 60000.0, "mu": 1e6, "sigma": 0.5},
                "dt_s": 3600.0,
                "duration_s": 3600.0 * 5000,
            },
            "markets.0.price",
        ),
    ],
)
def test_validate_rejects_what_run_cannot_do_and_run_exits_2_too(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    file = _scenario(tmp_path, **changes)

    checked = call("validate", str(file))
    ran = call("run", str(file), "--out", str(tmp_path / "out"), "--no-baseline")

    assert checked.code == 2
    assert field in checked.text
    assert ran.code == 2
    assert_contract(ran, names=(field,))
    assert not (tmp_path / "out").exists()


def test_memory_estimate_grows_with_positions_and_steps() -> None:
    from deleverage.sim.scenario import (
        BYTES_PER_POSITION,
        Scenario,
        estimated_memory_bytes,
        resource_problems,
    )

    small = Scenario.from_mapping(TINY_SCENARIO)
    bigger = small.with_overrides({"markets.0.population.n_positions": 1150})

    assert estimated_memory_bytes(bigger) - estimated_memory_bytes(small) == 1000 * (
        BYTES_PER_POSITION
    )
    assert resource_problems(small, memory_bytes=2**40) == []
    assert "n_positions" in resource_problems(small, memory_bytes=2**20)[0]


# ------------------------------------------------------------------ corrupt journals
def _journal(tmp_path: Path) -> Path:
    from deleverage.cli.demo import run_demo

    path = tmp_path / "journal.parquet"
    run_demo().exchange.journal.write_parquet(path)
    return path


@pytest.fixture(scope="module")
def demo_journal(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    return pq.read_table(_journal(tmp_path_factory.mktemp("demo")))


def _with(table: pa.Table, column: str, change: Any) -> pa.Table:
    values = table[column].to_pylist()
    values = change(values)
    field = table.schema.field(column)
    typ = field.type
    array = pa.array(values, type=typ)
    return table.set_column(
        table.column_names.index(column), pa.field(column, typ, nullable=True), array
    )


def _set(index: int, value: Any) -> Any:
    def change(values: list[Any]) -> list[Any]:
        values[index] = value
        return values

    return change


@pytest.mark.parametrize(
    ("corrupt", "field"),
    [
        (lambda t: _with(t, "amount", _set(3, None)), "amount[3]"),
        (lambda t: _with(t, "price", _set(8, float("inf"))), "price[8]"),
        (lambda t: _with(t, "code", lambda v: [99_999] * len(v)), "journal["),
        (lambda t: _with(t, "market", _set(5, 999)), "journal[5:6]"),
        (lambda t: _with(t, "amount", lambda v: [-abs(x) - 1 for x in v]), "amount"),
        (lambda t: _with(t, "seq", _set(4, 40)), "seq[4]"),
        (lambda t: t.slice(0, 0), "BTCUSDT"),
    ],
)
def test_a_corrupt_or_empty_journal_exits_2_naming_the_column(
    tmp_path: Path, demo_journal: pa.Table, corrupt: Any, field: str
) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(corrupt(demo_journal), path)

    outcome = call("queue", str(path), "--market", "BTCUSDT")

    assert outcome.code == 2
    assert_contract(outcome, names=(field,))


def test_queue_limit_shows_the_first_positions_in_rank_order(
    tmp_path: Path, demo_journal: pa.Table
) -> None:
    path = tmp_path / "demo.parquet"
    pq.write_table(demo_journal, path)

    full = json.loads(
        call("queue", str(path), "--market", "BTCUSDT", "--side", "short", "--json").out
    )
    one = json.loads(
        call(
            "queue", str(path), "--market", "BTCUSDT", "--side", "short", "--limit", "1", "--json"
        ).out
    )
    zero = call("queue", str(path), "--market", "BTCUSDT", "--limit", "0")

    assert len(full) >= 2
    assert one == full[:1]
    assert zero.code == 2
    assert_contract(zero, names=("`--limit`", ">= 1"))


# ------------------------------------------------------------------ corrupt sweep results
@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sweep")
    _scenario(work)
    (work / "experiment.toml").write_text(toml_document(TINY_EXPERIMENT))
    out = work / "results"
    assert (
        call("sweep", str(work / "experiment.toml"), "--workers", "0", "--out", str(out)).code == 0
    )
    return out


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "results"
    shutil.copytree(folder, target)
    return target


def _rewrite_part(folder: Path, change: Any) -> None:
    part = next(folder.glob("part-*.parquet"))
    pq.write_table(change(pq.read_table(part)), part)


@pytest.mark.parametrize(
    ("corrupt", "field"),
    [
        (lambda f: (f / "experiment.json").write_text("null"), "experiment.json"),
        (lambda f: (f / "experiment.json").write_text(""), "experiment.json"),
        (lambda f: (f / "experiment.json").write_bytes(b"\xff\x00"), "experiment.json"),
        (
            lambda f: _rewrite_part(f, lambda t: _with(t, "replicate", _set(0, None))),
            "replicate[0]",
        ),
        (lambda f: _rewrite_part(f, lambda t: _with(t, "replicate", _set(0, 7))), "replicate[0]"),
        (lambda f: _rewrite_part(f, lambda t: _with(t, "cell", _set(0, 10**6))), "cell[0]"),
        (lambda f: _rewrite_part(f, lambda t: t.drop(["fund"])), "fund"),
        (lambda f: next(f.glob("part-*.parquet")).write_bytes(b""), "part-"),
    ],
)
@pytest.mark.parametrize("command", ["sweep-report", "sweep"])
def test_corrupt_sweep_results_exit_2_for_the_report_and_for_a_resume(
    tmp_path: Path, sweep_folder: Path, corrupt: Any, field: str, command: str
) -> None:
    folder = _copy(sweep_folder, tmp_path)
    corrupt(folder)
    experiment = sweep_folder.parent / "experiment.toml"
    args = [str(folder)] if command == "sweep-report" else [str(experiment), "--out", str(folder)]

    outcome = call(command, *args, *(["--workers", "0"] if command == "sweep" else []))

    assert outcome.code == 2
    assert_contract(outcome, names=(field,))
    assert not (folder / "report.html").exists()


def test_a_failed_sweep_into_a_new_folder_leaves_no_empty_folder(tmp_path: Path) -> None:
    _scenario(tmp_path)
    bad = {**TINY_EXPERIMENT, "parameters": {"x": {"path": "insurance.fnd", "values": [1.0]}}}
    (tmp_path / "experiment.toml").write_text(toml_document(bad))

    outcome = call("sweep", str(tmp_path / "experiment.toml"), "--out", str(tmp_path / "r"))

    assert outcome.code == 2
    assert_contract(outcome, names=("parameters.x.path",))
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ serve
@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("serve must not start on bad input")

    monkeypatch.setattr("uvicorn.run", refuse)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.usefixtures("no_server")
@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda t: _junk(t), "SQLite database"),
        (lambda t: _made_folder(t), "not a folder"),
        (lambda t: _readonly_url(t), "readonly"),
        (lambda t: _foreign_journal(t), "journal.kind"),
        (lambda t: t / "missing" / "risk.db", "existing folder"),
    ],
)
def test_serve_on_a_bad_corrupt_or_read_only_database_exits_2(
    tmp_path: Path, make: Any, rule: str
) -> None:
    db = make(tmp_path)

    outcome = call("serve", "--db", str(db), "--port", str(_free_port()))

    assert outcome.code == 2
    assert_contract(outcome, names=("`--db`", rule))


def _junk(folder: Path) -> Path:
    path = folder / "junk.db"
    path.write_text("not a database")
    return path


def _made_folder(folder: Path) -> Path:
    path = folder / "folder.db"
    path.mkdir()
    return path


def _readonly_url(folder: Path) -> str:
    path = folder / "ro.db"
    sqlite3.connect(path).close()
    return f"sqlite:///file:{path}?mode=ro&uri=true"  # read-only even to root


def _foreign_journal(folder: Path) -> Path:
    path = folder / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, ts_ns BIGINT)")
    return path


@pytest.mark.usefixtures("no_server")
def test_serve_never_echoes_a_password_or_the_admin_key(tmp_path: Path) -> None:
    url = "postgresql+psycopg://risk:hunter2-secret@127.0.0.1:1/risk"
    db = call("serve", "--db", url, "--port", str(_free_port()))
    key = call("serve", "--db", str(tmp_path / "r.db"), "--admin-key", "tooshort-secret")

    assert db.code == key.code == 2
    assert "hunter2-secret" not in db.text
    assert "risk:***@" in db.text
    assert "tooshort-secret" not in key.text
    assert_contract(key, names=("`--admin-key`",))


@pytest.mark.usefixtures("no_server")
def test_serve_on_a_busy_port_exits_2_naming_it(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        outcome = call("serve", "--db", str(tmp_path / "r.db"), "--port", str(port))

    assert outcome.code == 2
    assert_contract(outcome, names=("`--port`",))


def test_redact_masks_url_passwords_only() -> None:
    assert redact("x postgresql://u:p%40ss@h/db y") == "x postgresql://u:***@h/db y"
    assert redact("sqlite:///risk.db and http://host:80/path") == (
        "sqlite:///risk.db and http://host:80/path"
    )


# ------------------------------------------------------------------ position JSON
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--volatility", "1e300"),
        ("--drift", "1e300"),
        ("--size", "1e300"),
        ("--entry", "1e300"),
        ("--horizon-hours", "inf"),
        ("--mark", "nan"),
    ],
)
def test_position_never_prints_nan_or_infinity(option: str, value: str) -> None:
    base = {"--side": "long", "--size": "1", "--entry": "60000", "--margin": "3000"}
    args = [x for k, v in {**base, option: value}.items() for x in (k, v)]

    outcome = call("position", *args, "--json")

    assert outcome.code == 2
    assert_contract(outcome, names=(f"`{option}`",))


def test_position_json_is_strict_json_for_extreme_but_valid_inputs() -> None:
    outcome = call(
        "position", "--side", "short", "--size", "1e-9", "--entry", "1e9", "--margin", "1e6",
        "--volatility", "20", "--horizon-hours", "87600", "--drift", "0.001", "--json",
    )  # fmt: skip

    assert outcome.code == 0
    assert_contract(outcome)
    assert np.isfinite(json.loads(outcome.out)["liquidation_price"])
