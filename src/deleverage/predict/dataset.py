"""Datasets of features and labels from simulations over seeds, stored as Parquet.

:func:`build_dataset` runs a scenario once per seed with a
:class:`~deleverage.predict.features.FeatureRecorder` as the runner's observer, labels the rows
from the run's journal and step frame (:mod:`~deleverage.predict.labels`), drops censored rows
and stacks the seeds. The result is two tables, ``accounts`` (one row per open position and
sample) and ``markets`` (one row per market and sample); the schema is documented in
docs/predict.md and written into each Parquet file's metadata (``deleverage.predict``: schema
version, horizon, level, seeds, scenario name), so :func:`read_dataset` refuses a file of
another schema. Same scenario and seeds, same :attr:`Dataset.content_hash`.

Splits never mix what a model learns from with what it is scored on:
:func:`split_by_seed` keeps whole runs apart; :func:`split_by_time` cuts each run at a time
and drops the training rows whose label horizon reaches past the cut (an embargo of ``H``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deleverage._files import atomic_write
from deleverage.errors import DataError, ValidationError
from deleverage.predict.features import (
    ACCOUNT_FEATURES,
    KEY_COLUMNS,
    MARKET_FEATURES,
    FeatureConfig,
    FeatureRecorder,
)
from deleverage.predict.labels import (
    ACCOUNT_LABELS,
    MARKET_LABELS,
    account_labels,
    drop_censored,
    liquidation_times,
    market_labels,
)
from deleverage.sim.runner import Simulation
from deleverage.sim.scenario import Scenario

#: Version of the dataset schema (columns, units, label rules); bumped on any change.
SCHEMA_VERSION: Final = 1
_META_KEY: Final = b"deleverage.predict"

ACCOUNT_COLUMNS: Final = (*KEY_COLUMNS, *ACCOUNT_FEATURES, *ACCOUNT_LABELS)
MARKET_COLUMNS: Final = (
    *(c for c in KEY_COLUMNS if c != "account"),
    *MARKET_FEATURES,
    *MARKET_LABELS,
)


@dataclass
class Dataset:
    """Account and market rows over seeds, and how they were made (``meta``)."""

    accounts: pd.DataFrame
    markets: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """SHA-256 over both tables' values (row order included)."""
        h = hashlib.sha256()
        for frame in (self.accounts, self.markets):
            h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        return h.hexdigest()

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write ``accounts.parquet`` and ``markets.parquet`` (schema in their metadata)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"accounts": out / "accounts.parquet", "markets": out / "markets.parquet"}
        meta = {**self.meta, "content_hash": self.content_hash}
        for name, frame in (("accounts", self.accounts), ("markets", self.markets)):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()}
            )
            _write_table(paths[name], table)
        return paths


def _write_table(path: Path, table: pa.Table) -> None:
    def write(tmp: Path) -> None:
        pq.write_table(table, tmp)

    atomic_write(path, write, field="out")


def build_dataset(
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    config: FeatureConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> Dataset:
    """Run ``scenario`` once per seed and return the labelled rows of every run.

    ``progress(seed)`` is called after each run. Rows are in seed order, then time order.
    """
    config = FeatureConfig() if config is None else config
    if len(seeds) == 0:
        raise ValidationError("seeds", list(seeds), "must name at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValidationError("seeds", list(seeds), "must not repeat a seed")
    accounts: list[pd.DataFrame] = []
    markets: list[pd.DataFrame] = []
    for seed in seeds:
        run_scenario = scenario.with_overrides({"seed": int(seed)})
        sim = Simulation(run_scenario)
        recorder = FeatureRecorder(sim, config, seed=int(seed))
        result = sim.run(observer=recorder)
        symbols = {m: spec.symbol for m, spec in enumerate(sim.specs)}
        end_ns = int(result.steps["ts_ns"].max())
        acc = account_labels(
            recorder.account_frame(),
            liquidation_times(result.journal, symbols),
            horizon_s=config.horizon_s,
        )
        mkt = market_labels(
            recorder.market_frame(),
            result.steps,
            horizon_s=config.horizon_s,
            level=config.cascade_level,
        )
        accounts.append(drop_censored(acc, end_ns=end_ns, horizon_s=config.horizon_s))
        markets.append(drop_censored(mkt, end_ns=end_ns, horizon_s=config.horizon_s))
        if progress is not None:
            progress(int(seed))
    meta = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "seeds": [int(s) for s in seeds],
        "horizon_s": config.horizon_s,
        "window_s": config.window_s,
        "sample_every_s": config.sample_every_s,
        "cascade_level": config.cascade_level,
    }
    return Dataset(
        accounts=_typed(pd.concat(accounts, ignore_index=True), ACCOUNT_COLUMNS),
        markets=_typed(pd.concat(markets, ignore_index=True), MARKET_COLUMNS),
        meta=meta,
    )


def _typed(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    frame = frame.loc[:, list(columns)].copy()
    for name in columns:
        if name in ("seed", "step", "ts_ns", "account"):
            frame[name] = frame[name].astype(np.int64)
        elif name in ("liquidated", "cascade"):
            frame[name] = frame[name].astype(np.int8)
        elif name == "market":
            frame[name] = frame[name].astype(str)
        else:
            frame[name] = frame[name].astype(np.float64)
    return frame


def read_dataset(folder: str | Path) -> Dataset:
    """Read a dataset written by :meth:`Dataset.write`, checking its schema.

    Raises
    ------
    DataError
        If a file is missing, carries no dataset metadata, has another schema version, lacks a
        column or holds a non-finite feature.
    """
    root = Path(folder)
    frames: dict[str, pd.DataFrame] = {}
    meta: dict[str, Any] = {}
    for name, columns in (("accounts", ACCOUNT_COLUMNS), ("markets", MARKET_COLUMNS)):
        path = root / f"{name}.parquet"
        if not path.is_file():
            raise DataError(name, str(path), "must exist (write one with `predict train`)")
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise DataError(name, str(path), "must be a predict dataset (no schema metadata)")
        meta = json.loads(raw)
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise DataError(
                "schema_version", meta.get("schema_version"), f"must be {SCHEMA_VERSION} ({path})"
            )
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DataError("columns", missing, f"must all be in {path}")
        frame = table.to_pandas().loc[:, list(columns)]
        features = ACCOUNT_FEATURES if name == "accounts" else MARKET_FEATURES
        values = frame[list(features)].to_numpy(np.float64)
        if not np.isfinite(values).all():
            row, col = np.argwhere(~np.isfinite(values))[0]
            raise DataError(
                list(features)[col], values[row, col], f"must be finite (row {row} of {path})"
            )
        frames[name] = frame
    return Dataset(accounts=frames["accounts"], markets=frames["markets"], meta=meta)


def split_by_seed(
    frame: pd.DataFrame, test_seeds: Sequence[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the rows of ``test_seeds`` are the test set, every other seed trains."""
    present = set(frame["seed"].unique().tolist())
    unknown = sorted(set(test_seeds) - present)
    if unknown:
        raise ValidationError(
            "test_seeds", unknown, f"must be seeds of the dataset {sorted(present)}"
        )
    test = frame["seed"].isin(list(test_seeds)).to_numpy()
    if test.all():
        raise ValidationError("test_seeds", list(test_seeds), "must leave a seed to train on")
    return frame.loc[~test].reset_index(drop=True), frame.loc[test].reset_index(drop=True)


def split_by_time(
    frame: pd.DataFrame, *, cut_s: float, horizon_s: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) cut at ``cut_s`` seconds into every run.

    Test rows have ``t >= cut_s``; training rows have ``t + H <= cut_s``, so no training label
    looks at time the test rows cover (an embargo of one horizon).
    """
    t = frame["t_s"].to_numpy(np.float64)
    train = t + horizon_s <= cut_s
    test = t >= cut_s
    return frame.loc[train].reset_index(drop=True), frame.loc[test].reset_index(drop=True)
