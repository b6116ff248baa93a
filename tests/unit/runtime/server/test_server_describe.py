"""What the server learns from a fitted estimator brought without a manifest, what a manifest
adds or contradicts, and the load errors a person reads in the readiness probe."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops_operator.runtime.server.model import (
    LoadError,
    Manifest,
    ServedModel,
    describe,
    force_single_thread,
    parse_manifest,
)

DIGEST = "sha256:" + "ab" * 32
WHERE = "s3://bucket/models/iris/1/model.joblib"


def iris_arrays() -> tuple[Any, Any]:
    x, y = load_iris(return_X_y=True)
    return x, y


def test_an_array_fitted_classifier_gets_x_names_its_classes_and_its_task() -> None:
    x, y = iris_arrays()
    info = describe(LogisticRegression(max_iter=500).fit(x, y), DIGEST, WHERE)
    assert info.features == ("x0", "x1", "x2", "x3")
    assert info.task == "classification"
    assert info.classes == (0, 1, 2)
    assert info.predict_datatype == "INT64"
    assert info.digest == DIGEST
    assert not info.from_manifest


def test_a_dataframe_fitted_pipeline_keeps_its_column_names_and_is_a_regressor() -> None:
    frame = load_diabetes(as_frame=True).frame
    pipeline = make_pipeline(StandardScaler(), RandomForestRegressor(n_estimators=5)).fit(
        frame.drop(columns="target"), frame["target"]
    )
    info = describe(pipeline, DIGEST, WHERE)
    assert info.features == tuple(c for c in frame.columns if c != "target")
    assert info.task == "regression"
    assert info.classes is None
    assert info.predict_datatype == "FP64"


def test_string_classes_are_bytes_outputs() -> None:
    x, y = iris_arrays()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    info = describe(LogisticRegression(max_iter=500).fit(x, names), DIGEST, WHERE)
    assert info.classes == ("setosa", "versicolor", "virginica")
    assert info.predict_datatype == "BYTES"


def test_an_array_fitted_model_is_served_from_arrays_without_reference_statistics() -> None:
    x, y = iris_arrays()
    estimator = LogisticRegression(max_iter=500).fit(x, y)
    model = ServedModel(describe(estimator, DIGEST, WHERE), estimator, reference=None)
    assert model.array_input, "a DataFrame with x0… columns would warn on every call"
    predictions, proba = model.predict(x[:7], with_proba=True)
    assert predictions.tolist() == estimator.predict(x[:7]).tolist()
    assert proba is not None and proba.shape == (7, 3)


@pytest.mark.parametrize(
    ("thing", "expected"),
    [
        ({"weights": [1, 2]}, "holds a builtins.dict, not a model"),
        (np.zeros(3), "holds a numpy.ndarray, not a model"),
        (LogisticRegression(), "holds a LogisticRegression that was never fitted"),
        (
            make_pipeline(StandardScaler(), LogisticRegression()),
            "holds a Pipeline that was never fitted",
        ),
        (KMeans(n_clusters=2, n_init=1).fit(np.eye(4)), "neither a classifier nor a regressor"),
    ],
)
def test_what_is_not_a_servable_model_is_a_load_error_naming_the_file(
    thing: Any, expected: str
) -> None:
    with pytest.raises(LoadError) as caught:
        describe(thing, DIGEST, WHERE)
    assert expected in caught.value.message
    assert WHERE in caught.value.message


def test_a_model_that_does_not_say_its_feature_count_needs_a_manifest() -> None:
    x, y = iris_arrays()
    estimator = LogisticRegression(max_iter=500).fit(x, y)
    del estimator.n_features_in_
    with pytest.raises(LoadError, match="does not say how many features it takes"):
        describe(estimator, DIGEST, WHERE)
    info = describe(estimator, DIGEST, WHERE, Manifest(features=("a", "b", "c", "d")))
    assert info.features == ("a", "b", "c", "d")
    assert info.from_manifest


def test_a_manifest_names_the_features_of_an_array_fitted_model() -> None:
    x, y = iris_arrays()
    estimator = LogisticRegression(max_iter=500).fit(x, y)
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    info = describe(
        estimator, DIGEST, WHERE, parse_manifest(orjson.dumps({"features": names}), "m")
    )
    assert info.features == names
    assert info.task == "classification", "what the manifest leaves out is inferred"
    assert info.classes == (0, 1, 2)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (Manifest(features=("a", "b")), "lists 2 features but s3://"),
        (Manifest(task="regression"), "the task is regression but s3://"),
        (Manifest(classes=("a", "b", "c")), "lists classes ['a', 'b', 'c'] but"),
    ],
)
def test_a_manifest_that_contradicts_the_estimator_is_refused(
    manifest: Manifest, expected: str
) -> None:
    x, y = iris_arrays()
    with pytest.raises(LoadError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        describe(LogisticRegression(max_iter=500).fit(x, y), DIGEST, WHERE, manifest)


def test_manifest_names_must_match_the_names_the_model_was_fitted_on() -> None:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    estimator = LogisticRegression().fit(frame, [0, 1, 0, 1])
    with pytest.raises(
        LoadError, match=r"lists features \['b', 'a'\] but .* fitted on \['a', 'b'\]"
    ):
        describe(estimator, DIGEST, WHERE, Manifest(features=("b", "a")))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"features": []}', "features must be a non-empty list of distinct names"),
        (b'{"features": ["a", "a"]}', "features must be a non-empty list of distinct names"),
        (b'{"task": "clustering"}', "task must be one of classification, regression"),
        (b'{"classes": "abc"}', "classes must be a list"),
    ],
)
def test_an_invalid_manifest_says_what_is_wrong(raw: bytes, expected: str) -> None:
    with pytest.raises(LoadError) as caught:
        parse_manifest(raw, "s3://b/m/manifest.json")
    assert expected in caught.value.message
    assert "s3://b/m/manifest.json" in caught.value.message


def test_the_trainers_manifest_parses_with_every_field() -> None:
    raw = orjson.dumps(
        {
            "digest": DIGEST,
            "task": "classification",
            "features": ["a", "b"],
            "classes": [0, 1],
            "frameworkVersion": "1.9.1",
            "metrics": {"accuracy": 0.9},
        }
    )
    assert parse_manifest(raw, "m") == Manifest(
        features=("a", "b"),
        task="classification",
        classes=(0, 1),
        digest=DIGEST,
        framework_version="1.9.1",
    )


class Thresholds:
    """A predictor of its own kind: no fit, no get_params, no n_features_in_."""

    def predict(self, rows: Any) -> Any:
        return (np.asarray(rows)[:, 0] > 0.5).astype(int)


def test_a_predictor_of_its_own_kind_is_served_with_a_manifest_saying_what_it_is() -> None:
    with pytest.raises(LoadError, match="neither a classifier nor a regressor"):
        describe(Thresholds(), DIGEST, WHERE)
    manifest = Manifest(features=("score", "age"), task="classification", classes=(0, 1))
    info = describe(Thresholds(), DIGEST, WHERE, manifest)
    assert (info.features, info.task, info.classes) == (("score", "age"), "classification", (0, 1))
    assert force_single_thread(Thresholds()) == []
    model = ServedModel(info, Thresholds(), reference=None)
    predictions, _ = model.predict(np.array([[0.9, 30.0], [0.1, 40.0]]), with_proba=False)
    assert predictions.tolist() == [1, 0]
