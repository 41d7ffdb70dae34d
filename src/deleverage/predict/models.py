"""Models of the probability of liquidation within a horizon, and how they are kept.

Three kinds (:data:`MODEL_KINDS`), each a :class:`TrainedModel` with ``predict_proba(frame)``:

- ``baseline``: the analytic first-passage probability with realized volatility, already a
  feature (``first_passage_probability``, :mod:`deleverage.predict.features`); nothing is fitted;
- ``logistic``: scikit-learn's ``LogisticRegression`` on standardized features;
- ``gbt``: scikit-learn's ``HistGradientBoostingClassifier``, its probabilities calibrated by
  isotonic regression (``CalibratedClassifierCV``) on folds that keep each seed's rows together
  (``GroupKFold``), so calibration is fitted on runs the trees did not see.

A model file (:func:`save_model`, joblib) holds the estimator and its :class:`ModelMeta`: the
feature schema (names and order), the label and horizon, the training seeds and the random
seed, the dataset's hash, the file format and the library versions. :func:`load_model` refuses
a file whose format or scikit-learn version differs, and :meth:`TrainedModel.check_frame` a
frame without the model's features, naming the field. A model file is a pickle: load only
files you made (docs/predict.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from deleverage._files import atomic_write, check_input_file
from deleverage.errors import DataError, ValidationError

FloatArray = npt.NDArray[np.float64]
ModelKind = Literal["baseline", "logistic", "gbt"]
MODEL_KINDS: Final[tuple[ModelKind, ...]] = ("baseline", "logistic", "gbt")
#: Version of the model file layout; bumped on any change.
MODEL_FORMAT: Final = 1
BASELINE_FEATURE: Final = "first_passage_probability"
#: Features the fitted models use by default: the account features less those that identify a
#: run rather than a position's risk (the open-interest level, position age and notional,
#: which in a simulation where every position opens at the start name the run and the time).
MODEL_FEATURES: Final = (
    "side", "distance_sigma", "log_distance", "leverage", "margin_ratio", "tier",
    "liquidation_density", "open_interest_change", "funding_rate", "realized_volatility",
    "depth_multiplier", "liquidation_intensity", "adl_rank_pct", "first_passage_probability",
)  # fmt: skip
#: OpenMP threads for fitting and predicting. One: on a shared machine with few cores the
#: trees' OpenMP threads spin against other processes: 100 trees on 13,000 rows took 0.8 s
#: with one thread and 15.5 s with two on a busy two-core machine. Raise it where the cores
#: are yours.
THREADS: Final = 1
#: Probabilities are clipped to ``[EPS, 1 - EPS]`` so log loss stays finite.
EPS: Final = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelMeta:
    """What a model was trained on and with (saved beside the estimator)."""

    kind: ModelKind
    features: tuple[str, ...]
    label: str
    horizon_s: float
    training_seeds: tuple[int, ...]
    random_seed: int
    dataset_hash: str
    rows: int
    format: int = MODEL_FORMAT
    deleverage_version: str = ""
    sklearn_version: str = sklearn.__version__


class TrainedModel:
    """A fitted model (or the analytic baseline) and its :class:`ModelMeta`."""

    def __init__(self, meta: ModelMeta, estimator: Any | None) -> None:
        self.meta = meta
        self.estimator = estimator

    def check_frame(self, frame: pd.DataFrame) -> None:
        """Refuse a frame that lacks a feature of the model or holds a non-finite one.

        Raises
        ------
        ValidationError
            Naming the missing or bad feature column.
        """
        for name in self.meta.features:
            if name not in frame.columns:
                raise ValidationError(
                    "features", name, f"is a feature of this {self.meta.kind} model, not in data"
                )
        values = frame[list(self.meta.features)].to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValidationError(self.meta.features[col], values[row, col], "must be finite")

    def predict_proba(self, frame: pd.DataFrame) -> FloatArray:
        """Probability of the label for each row of ``frame`` (clipped to ``[EPS, 1 - EPS]``)."""
        self.check_frame(frame)
        if self.estimator is None:
            p = frame[BASELINE_FEATURE].to_numpy(np.float64)
        else:
            x = frame[list(self.meta.features)].to_numpy(np.float64)
            with threadpool_limits(limits=THREADS):
                p = self.estimator.predict_proba(x)[:, 1]
        return np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)


def train_model(
    kind: ModelKind,
    frame: pd.DataFrame,
    *,
    features: Sequence[str],
    label: str,
    horizon_s: float,
    random_seed: int,
    dataset_hash: str = "",
) -> TrainedModel:
    """Fit a model of ``kind`` on ``frame`` (rows of the training seeds only).

    Raises
    ------
    ValidationError
        If the kind is unknown, a feature or the label is missing, or the label has one class.
    """
    if kind not in MODEL_KINDS:
        raise ValidationError("kind", kind, f"must be one of {', '.join(MODEL_KINDS)}")
    if label not in frame.columns:
        raise ValidationError("label", label, "is not a column of the training data")
    seeds = tuple(sorted(int(s) for s in frame["seed"].unique()))
    used = (BASELINE_FEATURE,) if kind == "baseline" else tuple(features)
    from deleverage import __version__

    meta = ModelMeta(
        kind=kind, features=used, label=label, horizon_s=float(horizon_s),
        training_seeds=seeds, random_seed=int(random_seed), dataset_hash=dataset_hash,
        rows=len(frame), deleverage_version=__version__,
    )  # fmt: skip
    model = TrainedModel(meta, None)
    model.check_frame(frame)
    if kind == "baseline":
        return model
    y = frame[label].to_numpy(np.int64)
    if len(np.unique(y)) < 2:
        raise ValidationError(label, int(y[0]) if len(y) else None, "needs both classes to train")
    x = frame[list(used)].to_numpy(np.float64)
    if kind == "logistic":
        with threadpool_limits(limits=THREADS):
            model.estimator = _logistic(random_seed).fit(x, y)
        return model
    groups = frame["seed"].to_numpy(np.int64)
    folds = (
        list(GroupKFold(n_splits=min(3, len(seeds))).split(x, y, groups))
        if len(seeds) >= 2
        else list(KFold(n_splits=3, shuffle=True, random_state=random_seed).split(x, y))
    )
    trees = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=200,
        l2_regularization=1.0, early_stopping=False, random_state=random_seed,
    )  # fmt: skip
    with threadpool_limits(limits=THREADS):
        model.estimator = CalibratedClassifierCV(trees, method="isotonic", cv=folds).fit(x, y)
    return model


def _logistic(random_seed: int) -> Pipeline:
    return make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, random_state=random_seed)
    )


def save_model(model: TrainedModel, path: str | Path) -> Path:
    """Write ``model`` (estimator and :class:`ModelMeta`) to ``path`` (joblib, atomically)."""
    payload = {"meta": asdict(model.meta), "estimator": model.estimator}
    return atomic_write(path, lambda tmp: joblib.dump(payload, tmp), field="model")


def load_model(path: str | Path) -> TrainedModel:
    """Read a model written by :func:`save_model`.

    Raises
    ------
    DataError
        If the file is not a model file or names no metadata.
    ValidationError
        If its ``format`` or ``sklearn_version`` differs from this installation's (the field
        and both values named).
    """
    file = check_input_file(path, field="model")
    try:
        payload = joblib.load(file)
    except Exception as exc:
        raise DataError(
            "model", str(file), f"must be a model file ({type(exc).__name__})"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict):
        raise DataError("model", str(file), "must be a model file (no metadata)")
    raw = payload["meta"]
    if raw.get("format") != MODEL_FORMAT:
        raise ValidationError("format", raw.get("format"), f"this version reads {MODEL_FORMAT}")
    if raw.get("sklearn_version") != sklearn.__version__:
        raise ValidationError(
            "sklearn_version", raw.get("sklearn_version"),
            f"must equal the installed scikit-learn {sklearn.__version__} (retrain the model)",
        )  # fmt: skip
    try:
        meta = ModelMeta(
            **{
                **raw,
                "features": tuple(raw["features"]),
                "training_seeds": tuple(raw["training_seeds"]),
            }
        )
    except (KeyError, TypeError) as exc:
        raise DataError("model", str(file), f"must hold complete metadata ({exc})") from None
    return TrainedModel(meta, payload.get("estimator"))


def check_compatible(model: TrainedModel, *, label: str, horizon_s: float) -> None:
    """Refuse to score ``model`` on labels of another kind or horizon.

    Raises
    ------
    ValidationError
        Naming ``label`` or ``horizon_s`` with the model's and the data's values.
    """
    if model.meta.label != label:
        raise ValidationError("label", label, f"the model predicts {model.meta.label!r}")
    if not np.isclose(model.meta.horizon_s, horizon_s):
        raise ValidationError(
            "horizon_s", horizon_s, f"the model was trained for {model.meta.horizon_s:g} s"
        )
