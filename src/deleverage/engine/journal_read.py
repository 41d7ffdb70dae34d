"""Reading a journal's newest events as NumPy columns (the hot path of a step's reader).

A :class:`~deleverage.engine.events.Journal` keeps its events as segments, in order: Arrow
tables, column batches (dicts of arrays and scalars, from ``append_columns``) and runs of
single rows (lists of row dicts). :func:`arrays_since` builds the asked columns of the events
numbered ``seq`` and later straight from the newest segments: a run of rows is read row by row
for the asked columns only (it is not converted to Arrow: the journal converts it when it is
read whole), and a batch column is cut to the rows asked for before it is cast. The values and
dtypes are those of ``Journal.since(seq, columns)``'s columns (a differential test compares
them). ``kinds`` keeps only the events of those kinds (in order): a batch of one other kind is
passed over without building any of its columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["arrays_since", "kinds_mask"]

Segment: TypeAlias = pa.Table | dict[str, Any] | list[dict[str, Any]]


def arrays_since(
    segments: Sequence[Segment],
    seq: int,
    columns: tuple[str, ...],
    dtypes: Mapping[str, Any],
    defaults: Mapping[str, Any],
    kinds: tuple[int, ...] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """The ``columns`` of the events numbered ``seq`` and later in ``segments`` (the journal's,
    in order; ``dtypes`` and ``defaults`` its column tables), as NumPy arrays; only the events
    whose kind is one of ``kinds`` when given."""
    parts: list[dict[str, npt.NDArray[Any]]] = []
    part: dict[str, npt.NDArray[Any]] | None
    for i in range(len(segments) - 1, -1, -1):
        segment = segments[i]
        if isinstance(segment, list):  # a run of single rows: only the asked cells are read
            if not segment:
                continue
            first, n = int(segment[0]["seq"]), len(segment)
            if first + n <= seq:
                break
            rows = segment[seq - first :] if first < seq else segment
            if kinds is not None:
                rows = [row for row in rows if row["kind"] in kinds]
            part = {c: np.array([row[c] for row in rows], dtype=dtypes[c]) for c in columns}
        elif isinstance(segment, pa.Table):
            if segment.num_rows == 0:
                continue
            first, n = int(segment.column("seq")[0].as_py()), segment.num_rows
            if first + n <= seq:
                break
            start = max(seq - first, 0)
            table = segment.slice(start)
            if kinds is not None:
                keep = kinds_mask(table.column("kind").to_numpy(), kinds)
                table = table.filter(pa.array(keep))
            part = {c: table.column(c).to_numpy(zero_copy_only=False) for c in columns}
        else:
            first, n = int(segment["__seq0"]), int(segment["__n"])
            if first + n <= seq:
                break
            start = max(seq - first, 0)
            per_row = "__kind_rows" in segment
            if kinds is not None and not per_row and int(segment["__kind"]) not in kinds:
                part = None  # one kind, not asked for: none of its columns is built
            else:
                part = {c: _batch_column(segment, c, start, dtypes, defaults) for c in columns}
                if kinds is not None and per_row:
                    keep = kinds_mask(segment["__kind_rows"][start:], kinds)
                    part = {c: values[keep] for c, values in part.items()}
        if part is not None:
            parts.append(part)
        if first <= seq:
            break
    if not parts:
        return {c: np.zeros(0, dtype=dtypes[c]) for c in columns}
    if len(parts) == 1:
        return parts[0]
    return {c: np.concatenate([p[c] for p in parts[::-1]]) for c in columns}


def kinds_mask(kind: npt.NDArray[Any], kinds: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """``np.isin(kind, kinds)`` for the few kinds a reader asks for: one comparison per kind
    (``np.isin`` costs ~40 us of set logic on a step's few dozen rows)."""
    keep = np.zeros(len(kind), dtype=np.bool_)
    for value in kinds:
        keep |= kind == value
    return keep


def _batch_column(
    batch: dict[str, Any],
    name: str,
    start: int,
    dtypes: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> npt.NDArray[Any]:
    """Column ``name`` of a column batch from its row ``start`` on."""
    n = int(batch["__n"])
    m = n - start
    if name == "seq":
        return np.arange(batch["__seq0"] + start, batch["__seq0"] + n, dtype=np.int64)
    if name == "ts_ns":
        rows = batch.get("__ts_rows")
        return rows[start:] if rows is not None else np.full(m, batch["__ts"], dtype=np.int64)
    if name == "kind":
        rows = batch.get("__kind_rows")
        if rows is not None:
            return rows[start:]  # type: ignore[no-any-return]
        return np.full(m, int(batch["__kind"]), dtype=np.int16)
    if name in batch:
        value = np.asarray(batch[name])
        if value.ndim:
            return value[start:].astype(dtypes[name])
        return np.full(m, value.astype(dtypes[name])[()], dtype=dtypes[name])
    return np.full(m, defaults[name], dtype=dtypes[name])
