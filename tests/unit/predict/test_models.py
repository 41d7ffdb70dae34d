"""Models: deterministic, saved with their schema and refused on a mismatch."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
from predict_worlds import HORIZON_S

from deleverage.analytics.first_passage import discrete_hit_probability
from deleverage.errors import DataError, ValidationError
from deleverage.predict.dataset import Dataset, split_by_seed
from deleverage.predict.models import (
    MODEL_FEATURES,
    check_compatible,
    load_model,
    save_model,
    train_model,
)


def _fit(dataset: Dataset, kind: str = "gbt", seed: int = 0):  # type: ignore[no-untyped-def]
    train, _ = split_by_seed(dataset.accounts, [4])
    return train_model(
        kind, train, features=MODEL_FEATURES, label="liquidated", horizon_s=HORIZON_S,  # type: ignore[arg-type]
        random_seed=seed, dataset_hash=dataset.content_hash,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["logistic", "gbt"])
def test_the_same_data_and_seed_give_the_same_predictions(tiny_dataset: Dataset, kind: str) -> None:
    _, test = split_by_seed(tiny_dataset.accounts, [4])

    first = _fit(tiny_dataset, kind).predict_proba(test)
    second = _fit(tiny_dataset, kind).predict_proba(test)

    np.testing.assert_array_equal(first, second)
    assert ((first > 0) & (first < 1)).all()


def test_the_baseline_is_the_first_passage_probability_at_the_realized_volatility(
    tiny_dataset: Dataset,
) -> None:
    # Oracle: the analytics closed form, from the row's own log distance and volatility
    # (a long's barrier below the mark at mark x exp(-log_distance)).
    _, test = split_by_seed(tiny_dataset.accounts, [4])
    longs = test[(test["side"] > 0) & (test["first_passage_probability"] > 1e-4)].head(50)
    expected = discrete_hit_probability(
        1.0, np.exp(-longs["log_distance"].to_numpy()), 0.0,
        longs["realized_volatility"].to_numpy(), HORIZON_S, dt_s=1.0, direction="down",
    )  # fmt: skip

    got = _fit(tiny_dataset, "baseline").predict_proba(longs)

    assert len(longs) > 0
    np.testing.assert_allclose(got, np.clip(expected, 1e-6, 1 - 1e-6), rtol=1e-9)


def test_a_saved_model_predicts_the_same_and_keeps_its_schema(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    model = _fit(tiny_dataset)
    _, test = split_by_seed(tiny_dataset.accounts, [4])

    save_model(model, tmp_path / "gbt.joblib")
    back = load_model(tmp_path / "gbt.joblib")

    np.testing.assert_array_equal(back.predict_proba(test), model.predict_proba(test))
    assert back.meta.features == MODEL_FEATURES
    assert back.meta.training_seeds == (1, 2, 3)
    assert back.meta.random_seed == 0
    assert back.meta.dataset_hash == tiny_dataset.content_hash


def test_a_frame_without_a_model_feature_is_refused_naming_it(tiny_dataset: Dataset) -> None:
    model = _fit(tiny_dataset, "logistic")
    _, test = split_by_seed(tiny_dataset.accounts, [4])

    with pytest.raises(ValidationError, match="margin_ratio"):
        model.predict_proba(test.drop(columns=["margin_ratio"]))


@pytest.mark.parametrize(("field", "value"), [("sklearn_version", "0.0.1"), ("format", 999)])
def test_a_model_file_of_another_version_is_refused_naming_the_field(
    tiny_dataset: Dataset, tmp_path: Path, field: str, value: object
) -> None:
    path = tmp_path / "m.joblib"
    save_model(_fit(tiny_dataset, "logistic"), path)
    payload = joblib.load(path)
    payload["meta"][field] = value
    joblib.dump(payload, path)

    with pytest.raises(ValidationError, match=field):
        load_model(path)


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump([1, 2, 3], path)

    with pytest.raises(DataError, match="model"):
        load_model(path)


def test_a_model_is_refused_on_labels_of_another_horizon(tiny_dataset: Dataset) -> None:
    model = _fit(tiny_dataset, "baseline")

    check_compatible(model, label="liquidated", horizon_s=HORIZON_S)
    with pytest.raises(ValidationError, match="horizon_s"):
        check_compatible(model, label="liquidated", horizon_s=2 * HORIZON_S)
    with pytest.raises(ValidationError, match="label"):
        check_compatible(model, label="cascade", horizon_s=HORIZON_S)


def test_training_on_one_class_is_refused(tiny_dataset: Dataset) -> None:
    rows = tiny_dataset.accounts[tiny_dataset.accounts["liquidated"] == 0]

    with pytest.raises(ValidationError, match="liquidated"):
        train_model(
            "logistic", rows, features=MODEL_FEATURES, label="liquidated",
            horizon_s=HORIZON_S, random_seed=0,
        )  # fmt: skip
