"""The Ray backend: a local Ray instance gives the same rows as the local backend."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from deleverage.errors import ValidationError
from deleverage.sweep import Experiment, LocalExecutor, RayExecutor, read_results, run_sweep
from deleverage.sweep.results import TIMING_COLUMNS

pytest.importorskip("ray")


def _experiment() -> Experiment:
    data: dict[str, Any] = {
        "name": "tiny-ray",
        "seed": 5,
        "base": "adl-exhaustion",
        "overrides": {"markets.0.population.n_positions": 300, "duration_s": 240,
                      "markets.0.population.isolated_fraction": 1.0,
                      "markets.0.price.start_s": 20.0, "markets.0.price.duration_s": 120.0},
        "seeds_per_cell": 2,
        "metrics": ["bad_debt", "liquidations", "liquidated_notional", "adl_rounds"],
        "parameters": {
            "drop": {"path": "markets.0.price.drop_fraction", "values": [0.1, 0.3]},
            "fund": {"path": "insurance.fund", "values": [-1.0, 10000.0]},
        },
    }  # fmt: skip
    return Experiment.from_mapping(data)


def test_ray_backend_gives_the_same_rows_as_the_local_backend(tmp_path: Path) -> None:
    # Arrange: one cell value is invalid, so failures must match too
    experiment = _experiment()
    run_sweep(experiment, tmp_path / "local", executor=LocalExecutor(0))

    # Act: Ray started here with 2 CPUs
    executor = RayExecutor(2)
    summary = run_sweep(experiment, tmp_path / "ray", executor=executor)

    # Assert
    local = read_results(tmp_path / "local").drop(columns=list(TIMING_COLUMNS))
    ray_rows = read_results(tmp_path / "ray").drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(local, ray_rows)
    assert summary.errors == 4
    assert not executor.ray.is_initialized()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_ray_address_is_refused_before_starting() -> None:
    address = f"127.0.0.1:{_closed_port()}"

    with pytest.raises(ValidationError, match="must be a reachable Ray cluster") as info:
        RayExecutor(2, address=address)

    assert address in str(info.value)


@pytest.mark.parametrize("address", ["nohostport", "host:notaport", "host:70000"])
def test_malformed_ray_address_is_refused(address: str) -> None:
    with pytest.raises(ValidationError, match="host:port"):
        RayExecutor(2, address=address)
