"""Fixtures of the predict tests (helpers in predict_worlds.py)."""

from __future__ import annotations

import pytest
from predict_worlds import CONFIG, tiny_world

from deleverage.predict.dataset import Dataset, build_dataset


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    return build_dataset(tiny_world(), [1, 2, 3, 4], config=CONFIG)
