"""The results of a sweep: a folder of Parquet part files, one row per (cell, replicate).

Layout of a results folder::

    experiment.json                      the validated experiment and its id
    part-<ns>-<pid>-<seq>.parquet        rows, written as runs finish

A part file is written under a temporary name and renamed into place (``os.replace``, atomic on
one file system), so a reader never sees half a file and a crash loses at most the rows not yet
flushed, which the next run recomputes. Rows are keyed by ``(cell_id, replicate)``; a re-run of
the same experiment into the same folder skips the keys already on disk (resume), and
:meth:`ResultStore.read` drops any duplicate key, keeping the first written.

Columns: ``cell`` (design order), ``cell_id``, ``replicate``, ``seed`` (the scenario seed), one
column per parameter (by name), one per metric (float64, NaN when the run failed), ``error``
(null, or the failed run's exception as ``Type: message``), ``run_s`` and ``cpu_s`` (wall and
CPU seconds of the run in its worker: the only columns that differ between identical sweeps;
``run_s`` well above ``cpu_s`` means the worker waited for a CPU).

The folder is plain Parquet, so DuckDB reads it directly (docs/sweeps.md)::

    SELECT policy, sigma, avg(bad_debt) FROM read_parquet('out/part-*.parquet')
    WHERE error IS NULL GROUP BY ALL ORDER BY ALL
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deleverage._files import check_input_file, read_text
from deleverage.errors import ConfigError, DataError
from deleverage.sweep.experiment import Experiment

__all__ = ["KEY_COLUMNS", "TIMING_COLUMNS", "ResultStore", "read_results"]

#: Columns that identify a row.
KEY_COLUMNS = ("cell_id", "replicate")
#: Columns that vary between identical sweeps (wall-clock time).
TIMING_COLUMNS = ("run_s", "cpu_s")
_PART_GLOB = "part-*.parquet"
_ARROW_TYPES = {"float": pa.float64(), "int": pa.int64(), "str": pa.string(), "bool": pa.bool_()}


def results_schema(experiment: Experiment) -> pa.Schema:
    """The Arrow schema of an experiment's rows (the module docstring lists the columns)."""
    fields = [
        pa.field("cell", pa.int64()),
        pa.field("cell_id", pa.string()),
        pa.field("replicate", pa.int64()),
        pa.field("seed", pa.int64()),
    ]
    fields += [pa.field(n, _ARROW_TYPES[p.kind]) for n, p in experiment.parameters.items()]
    fields += [pa.field(m, pa.float64()) for m in experiment.metrics]
    fields += [pa.field("error", pa.string()), pa.field("run_s", pa.float64())]
    fields += [pa.field("cpu_s", pa.float64())]
    return pa.schema(fields)


class ResultStore:
    """A results folder for one experiment: append rows as part files, list finished keys.

    Raises
    ------
    ConfigError
        If the folder already holds the results of a different experiment.
    """

    def __init__(self, folder: str | Path, experiment: Experiment) -> None:
        self.folder = Path(folder)
        self.experiment = experiment
        self.schema = results_schema(experiment)
        self._seq = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "experiment.json"
        ident = experiment.experiment_id
        if meta.exists():
            stored = _read_meta(self.folder)
            if stored.get("experiment_id") != ident:
                raise ConfigError(
                    "--out",
                    str(self.folder),
                    f"must be empty or hold this experiment's results (it holds experiment "
                    f"{stored.get('experiment_id')!r}, this one is {ident!r}); choose another "
                    f"folder",
                )
        else:
            payload = {
                "experiment_id": ident,
                "experiment": experiment.model_dump(mode="json"),
                "base_scenario": experiment.base_scenario().to_toml_dict(),
            }
            _atomic_write_bytes(meta, json.dumps(payload, indent=2).encode())

    def done_keys(self) -> set[tuple[str, int]]:
        """Keys ``(cell_id, replicate)`` already on disk."""
        frame = self._read_columns(list(KEY_COLUMNS))
        return {(str(c), int(r)) for c, r in zip(frame["cell_id"], frame["replicate"], strict=True)}

    def append(self, rows: Iterable[Mapping[str, Any]]) -> Path | None:
        """Write ``rows`` as one new part file (atomically); return its path (None if empty)."""
        rows = list(rows)
        if not rows:
            return None
        columns = {f.name: [row.get(f.name) for row in rows] for f in self.schema}
        table = pa.table(columns, schema=self.schema)
        self._seq += 1
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}.parquet"
        final = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        return final

    def read(self) -> pd.DataFrame:
        """Every row on disk, duplicates dropped, sorted by ``(cell, replicate)``."""
        return read_results(self.folder)

    def _read_columns(self, columns: list[str]) -> pd.DataFrame:
        parts = sorted(self.folder.glob(_PART_GLOB))
        if not parts:
            return pd.DataFrame({c: [] for c in columns})
        tables = [_read_part(part, self.schema, self.experiment) for part in parts]
        return pa.concat_tables(tables).select(columns).to_pandas()


def read_results(folder: str | Path) -> pd.DataFrame:
    """Read a results folder into one frame: one row per (cell, replicate), sorted.

    Raises
    ------
    ConfigError
        If the folder holds no valid ``experiment.json`` (it is not a sweep's results folder).
    DataError
        If a part file is unreadable, lacks the experiment's columns, or holds a null or
        out-of-range key (``cell``, ``cell_id``, ``replicate``, ``seed``, a parameter).
    """
    path = Path(folder)
    experiment = Experiment.from_mapping(_read_meta(path)["experiment"])
    schema = results_schema(experiment)
    parts = sorted(path.glob(_PART_GLOB))
    if not parts:
        return schema.empty_table().to_pandas()
    table = pa.concat_tables([_read_part(part, schema, experiment) for part in parts])
    frame = table.to_pandas()
    frame = frame.drop_duplicates(list(KEY_COLUMNS), keep="first")
    return frame.sort_values(["cell", "replicate"], kind="stable").reset_index(drop=True)


def read_experiment(folder: str | Path) -> Experiment:
    """The experiment stored in a results folder."""
    return Experiment.from_mapping(_read_meta(Path(folder))["experiment"])


def _read_meta(folder: Path) -> dict[str, Any]:
    meta_path = folder / "experiment.json"
    if not folder.is_dir() or not meta_path.exists():
        raise ConfigError(
            "RESULTS_DIR", str(folder), "must be a sweep's results folder (with experiment.json)"
        )
    text = read_text(meta_path, field="RESULTS_DIR/experiment.json", what="JSON file")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            "RESULTS_DIR/experiment.json", str(meta_path), f"must be valid JSON ({exc.msg})"
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("experiment"), dict):
        raise ConfigError(
            "RESULTS_DIR/experiment.json",
            str(meta_path),
            "must be a JSON object whose `experiment` is the experiment's table",
        )
    return meta


def _cell_count(experiment: Experiment) -> int:
    if experiment.design == "random":
        assert experiment.samples is not None
        return experiment.samples
    return math.prod(len(p.grid_values(n)) for n, p in experiment.parameters.items())


def _read_part(part: Path, schema: pa.Schema, experiment: Experiment) -> pa.Table:
    field = f"RESULTS_DIR/{part.name}"
    try:
        table = pq.read_table(check_input_file(part, field=field, what="Parquet file"))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(field, str(part), f"must be a readable Parquet file ({exc})") from None
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise DataError(field, missing, "must have every column of the experiment's results")
    try:
        table = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(field, str(exc)[:80], "must have the experiment's column types") from None
    for name in ("cell", "cell_id", "replicate", "seed", *experiment.parameters):
        nulls = table[name].null_count
        if nulls:
            bad = int(np.flatnonzero(np.asarray(table[name].is_null()))[0])
            raise DataError(f"{field}.{name}[{bad}]", None, "must not be null")
    cells = _cell_count(experiment)
    for name, high in (("cell", cells), ("replicate", experiment.seeds_per_cell), ("seed", None)):
        values = np.asarray(table[name])
        low_bad = values < 0
        high_bad = values >= high if high is not None else np.zeros_like(low_bad)
        if (low_bad | high_bad).any():
            bad = int(np.flatnonzero(low_bad | high_bad)[0])
            rule = "must be >= 0" if high is None else f"must be in [0, {high})"
            raise DataError(f"{field}.{name}[{bad}]", int(values[bad]), rule)
    return table


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
