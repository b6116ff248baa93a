"""Predicting in the server: bare arrays where the model predicts the same on them (they skip
scikit-learn's per-call DataFrame checks) and DataFrames where it needs column names. The
suite turns warnings into errors, so serving from arrays must not warn either."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops_operator.runtime.refstats import reference_stats
from mlops_operator.runtime.server.model import ModelInfo, ServedModel, probe_rows


def info(features: tuple[str, ...] = ("a", "b")) -> ModelInfo:
    return ModelInfo(
        features=features,
        task="classification",
        classes=(0, 1),
        digest="sha256:" + "0" * 64,
        framework_version=None,
    )


def training_frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    return frame, (frame["a"] + frame["b"] > 0).astype(int)


def reference(frame: pd.DataFrame) -> dict[str, Any]:
    stats: dict[str, Any] = reference_stats({c: frame[c] for c in frame.columns})["features"]
    return stats


def test_a_model_fitted_on_a_dataframe_is_served_from_arrays_with_the_same_answers() -> None:
    frame, y = training_frame()
    estimator = LogisticRegression().fit(frame, y)
    model = ServedModel(info(), estimator, reference(frame))
    assert model.array_input
    predictions, proba = model.predict(frame.to_numpy()[:50], with_proba=True)
    assert predictions.tolist() == estimator.predict(frame.head(50)).tolist()
    assert proba is not None and np.allclose(proba, estimator.predict_proba(frame.head(50)))


def test_a_pipeline_selecting_columns_by_name_keeps_dataframes() -> None:
    frame, y = training_frame()
    pipeline = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), ["b", "a"])]), LogisticRegression()
    ).fit(frame, y)
    model = ServedModel(info(), pipeline, reference(frame))
    assert not model.array_input
    predictions, _ = model.predict(frame.to_numpy()[:20], with_proba=False)
    assert predictions.tolist() == pipeline.predict(frame.head(20)).tolist()


def test_without_reference_statistics_a_named_model_keeps_dataframes() -> None:
    frame, y = training_frame()
    model = ServedModel(info(), LogisticRegression().fit(frame, y), reference=None)
    assert not model.array_input


def test_a_model_fitted_on_arrays_gets_arrays() -> None:
    frame, y = training_frame()
    model = ServedModel(info(), LogisticRegression().fit(frame.to_numpy(), y), reference(frame))
    assert model.array_input
    predictions, _ = model.predict(frame.to_numpy()[:5], with_proba=False)
    assert len(predictions) == 5


def test_probe_rows_span_each_features_quantiles_in_manifest_order() -> None:
    frame, _ = training_frame()
    rows = probe_rows(reference(frame), ["b", "a"])
    assert rows is not None and rows.shape[1] == 2
    assert rows[0, 0] < rows[-1, 0], "rows go from low to high quantiles"
    assert frame["b"].min() <= rows[0, 0] and rows[-1, 0] <= frame["b"].max()
    assert probe_rows(reference(frame), ["a", "missing"]) is None
