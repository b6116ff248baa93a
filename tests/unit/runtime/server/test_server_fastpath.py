"""Exact fast predict paths: a served model answers bit for bit what scikit-learn answers, on
rows it was never verified on, in batches of every size; anything unsupported or different
keeps scikit-learn's path and says why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, PolynomialFeatures, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeRegressor
from threadpoolctl import threadpool_limits

from mlops_operator.runtime.refstats import reference_stats
from mlops_operator.runtime.server import fastpath
from mlops_operator.runtime.server.model import ModelInfo, ServedModel, probe_rows

N_FEATURES = 6
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]


def classification(seed: int, n_classes: int, labels: list[Any] | None = None) -> tuple[Any, Any]:
    x, y = make_classification(
        n_samples=300,
        n_features=N_FEATURES,
        n_informative=4,
        n_classes=n_classes,
        n_clusters_per_class=1 if n_classes > 4 else 2,
        random_state=seed,
    )
    return x, (np.asarray(labels)[y] if labels else y)


def regression(seed: int, n_targets: int = 1) -> tuple[Any, Any]:
    x, y = make_regression(
        n_samples=300, n_features=N_FEATURES, n_targets=n_targets, noise=5.0, random_state=seed
    )
    return x, y


def serve(
    estimator: Any, x: Any, y: Any, *, frame: bool = False, refit: bool = True
) -> ServedModel:
    """``estimator`` fitted on ``x, y`` (as a DataFrame, as the trainer does, if ``frame``)
    and loaded into the server's model."""
    if refit:
        estimator.fit(pd.DataFrame(x, columns=COLUMNS) if frame else x, y)
    reference = reference_stats({c: pd.Series(x[:, i]) for i, c in enumerate(COLUMNS)})
    is_classifier = hasattr(estimator, "classes_")
    info = ModelInfo(
        features=tuple(COLUMNS),
        task="classification" if is_classifier else "regression",
        classes=None,
        digest="sha256:" + "0" * 64,
        framework_version=None,
    )
    return ServedModel(info, estimator, reference["features"])


def fresh_rows(x: Any, n: int, seed: int = 99) -> Any:
    """Rows the load-time verification never saw: training rows and random rows a bit
    beyond the training ranges."""
    rng = np.random.default_rng(seed)
    low, high = x.min(axis=0), x.max(axis=0)
    spread = high - low
    random = rng.uniform(low - 0.2 * spread, high + 0.2 * spread, size=(n, x.shape[1]))
    return np.ascontiguousarray(np.concatenate([x[:n], random]))


def assert_same_as_sklearn(model: ServedModel, rows: Any) -> None:
    for size in (1, 3, 32, len(rows)):
        batch = rows[:size]
        fast = model.predict(batch, with_proba=True)
        slow = model._sklearn_predict(batch, True)
        assert fast[0].dtype == slow[0].dtype and fast[0].shape == slow[0].shape
        assert np.array_equal(fast[0], slow[0]), f"predict differs on {size} rows"
        if slow[1] is None:
            assert fast[1] is None
        else:
            assert fast[1] is not None and fast[1].shape == slow[1].shape
            assert np.array_equal(fast[1], slow[1]), f"predict_proba differs on {size} rows"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("depth", [None, 3])
@pytest.mark.parametrize("kind", [RandomForestClassifier, ExtraTreesClassifier])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_forest_classifiers_answer_what_sklearn_answers(
    seed: int, depth: int | None, kind: Any, n_classes: int
) -> None:
    x, y = classification(seed, n_classes)
    model = serve(kind(n_estimators=25, max_depth=depth, random_state=seed), x, y)
    assert model.predict_path == "forest", model.predict_path_reason
    # 400 rows x 25 trees is past the all-at-once limit: the tree-by-tree walk is checked too.
    assert_same_as_sklearn(model, fresh_rows(x, 200))


def test_a_forest_with_string_labels_fitted_on_a_dataframe_predicts_the_same_labels() -> None:
    x, y = classification(3, 3, labels=["setosa", "versicolor", "virginica"])
    model = serve(RandomForestClassifier(n_estimators=30, random_state=3), x, y, frame=True)
    assert model.predict_path == "forest", model.predict_path_reason
    rows = fresh_rows(x, 100)
    assert_same_as_sklearn(model, rows)
    assert set(model.predict(rows, with_proba=False)[0].tolist()) <= {
        "setosa",
        "versicolor",
        "virginica",
    }


@pytest.mark.parametrize("kind", [RandomForestRegressor, ExtraTreesRegressor])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_forest_regressors_single_and_multi_output_answer_what_sklearn_answers(
    kind: Any, n_targets: int
) -> None:
    x, y = regression(5, n_targets)
    model = serve(kind(n_estimators=20, random_state=5), x, y)
    assert model.predict_path == "forest", model.predict_path_reason
    assert_same_as_sklearn(model, fresh_rows(x, 200))


def test_missing_values_go_where_the_forest_sent_them_in_training() -> None:
    x, y = classification(7, 3)
    holes = x.copy()
    holes[np.random.default_rng(7).random(holes.shape) < 0.1] = np.nan
    model = serve(RandomForestClassifier(n_estimators=20, random_state=7), holes, y)
    assert model.allow_nan and model.predict_path == "forest", model.predict_path_reason
    rows = fresh_rows(x, 100)
    rows[np.random.default_rng(8).random(rows.shape) < 0.3] = np.nan
    assert_same_as_sklearn(model, rows)


@pytest.mark.parametrize(
    ("estimator", "data"),
    [
        (DecisionTreeClassifier(random_state=0), classification(0, 3)),
        (DecisionTreeClassifier(max_depth=4, random_state=1), classification(1, 2, ["no", "yes"])),
        (DecisionTreeRegressor(random_state=0), regression(0)),
        (ExtraTreeRegressor(random_state=0), regression(1, 2)),
    ],
)
def test_decision_trees_answer_what_sklearn_answers(estimator: Any, data: Any) -> None:
    model = serve(estimator, *data)
    assert model.predict_path == "tree", model.predict_path_reason
    assert_same_as_sklearn(model, fresh_rows(data[0], 100))


@pytest.mark.parametrize(
    ("estimator", "data"),
    [
        (GradientBoostingClassifier(n_estimators=30, random_state=0), classification(0, 2)),
        (GradientBoostingClassifier(n_estimators=20, random_state=1), classification(1, 3)),
        (
            GradientBoostingClassifier(n_estimators=10, max_depth=5, random_state=2),
            classification(2, 2, ["bad", "good"]),
        ),
        (GradientBoostingClassifier(n_estimators=5, random_state=3), classification(3, 10)),
        (GradientBoostingRegressor(n_estimators=40, random_state=0), regression(0)),
        (GradientBoostingRegressor(loss="huber", n_estimators=20, random_state=1), regression(1)),
    ],
)
def test_gradient_boosting_answers_what_sklearn_answers(estimator: Any, data: Any) -> None:
    model = serve(estimator, *data)
    assert model.predict_path == "gradient-boosting", model.predict_path_reason
    assert_same_as_sklearn(model, fresh_rows(data[0], 100))


def with_holes(data: tuple[Any, Any], share: float = 0.1) -> tuple[Any, Any]:
    x, y = data
    x = x.copy()
    x[np.random.default_rng(1).random(x.shape) < share] = np.nan
    return x, y


@pytest.mark.parametrize(
    ("estimator", "data"),
    [
        (HistGradientBoostingClassifier(max_iter=30, random_state=0), classification(0, 2)),
        (HistGradientBoostingClassifier(max_iter=10, random_state=1), classification(1, 10)),
        (
            HistGradientBoostingClassifier(max_iter=20, random_state=2),
            with_holes(classification(2, 3, ["x", "y", "z"])),
        ),
        (HistGradientBoostingRegressor(max_iter=40, random_state=0), regression(0)),
        (
            HistGradientBoostingRegressor(loss="poisson", max_iter=20, random_state=1),
            with_holes((regression(1)[0], np.abs(regression(1)[1]))),
        ),
    ],
)
def test_hist_gradient_boosting_answers_what_sklearn_answers(estimator: Any, data: Any) -> None:
    # One OpenMP thread: on a busy machine its spinning threads make fitting take seconds.
    with threadpool_limits(limits=1, user_api="openmp"):
        model = serve(estimator, *data)
        assert model.predict_path == "hist-gradient-boosting", model.predict_path_reason
        rows = fresh_rows(np.nan_to_num(data[0]), 200)
        rows[np.random.default_rng(2).random(rows.shape) < 0.1] = np.nan
        assert_same_as_sklearn(model, rows)


@pytest.mark.parametrize(
    ("estimator", "data", "frame"),
    [
        (LogisticRegression(max_iter=2000), classification(0, 2), False),
        (LogisticRegression(max_iter=2000), classification(1, 4), True),
        (LogisticRegression(max_iter=2000), classification(4, 10), False),
        (LogisticRegression(C=0.1, max_iter=2000), classification(2, 3, ["a", "b", "c"]), True),
        (RidgeClassifier(), classification(3, 3), False),
        (LinearRegression(), regression(0), False),
        (Ridge(alpha=0.5), regression(1), True),
        (Lasso(alpha=0.1), regression(2), False),
        (LinearRegression(), regression(3, 2), False),
    ],
)
def test_linear_models_answer_what_sklearn_answers(estimator: Any, data: Any, frame: bool) -> None:
    model = serve(estimator, *data, frame=frame)
    assert model.predict_path == "linear", model.predict_path_reason
    assert_same_as_sklearn(model, fresh_rows(data[0], 100))


@pytest.mark.parametrize(
    ("pipeline", "data", "path"),
    [
        (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            classification(0, 3),
            "pipeline(standard-scaler)+linear",
        ),
        (
            make_pipeline(MinMaxScaler(), RandomForestClassifier(n_estimators=10, random_state=0)),
            classification(1, 2),
            "pipeline(min-max-scaler)+forest",
        ),
        (
            make_pipeline(MaxAbsScaler(), StandardScaler(with_mean=False), Ridge()),
            regression(0),
            "pipeline(max-abs-scaler,standard-scaler)+linear",
        ),
        (
            make_pipeline(PolynomialFeatures(2), LinearRegression()),
            regression(1),
            "pipeline(PolynomialFeatures)+linear",
        ),
    ],
)
def test_pipelines_of_transforms_and_a_model_answer_what_sklearn_answers(
    pipeline: Any, data: Any, path: str
) -> None:
    model = serve(pipeline, *data, frame=True)
    assert model.predict_path == path, model.predict_path_reason
    assert_same_as_sklearn(model, fresh_rows(data[0], 100))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_input_the_fast_path_does_not_model_fails_as_sklearn_fails() -> None:
    x, y = classification(0, 2)
    boosted = serve(GradientBoostingClassifier(n_estimators=5, random_state=0), x, y)
    assert boosted.predict_path == "gradient-boosting"
    with_hole = x[:3].copy()
    with_hole[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        boosted.predict(with_hole, with_proba=True)
    forest = serve(RandomForestClassifier(n_estimators=5, random_state=0), x, y)
    too_large = x[:2].copy()
    too_large[0, 0] = 1e300  # finite, but no float32 holds it
    with pytest.raises(ValueError, match="too large"):
        forest.predict(too_large, with_proba=True)


class RelabelledForest(RandomForestClassifier):
    """Overrides predict: a subclass is never compiled."""

    def predict(self, X: Any) -> Any:
        return super().predict(X)


class Constant(BaseEstimator):
    """A model scikit-learn serves and nothing here compiles."""

    def fit(self, x: Any, y: Any) -> Constant:
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: Any) -> Any:
        return np.zeros(len(x))


@pytest.mark.parametrize(
    ("estimator", "data", "reason"),
    [
        (RelabelledForest(n_estimators=5), classification(0, 2), "RelabelledForest has no fast"),
        (
            HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]),
            (
                np.column_stack([np.arange(300) % 4, classification(0, 2)[0][:, 1:]]),
                np.arange(300) % 2,
            ),
            "categorical features have no fast path",
        ),
        (Constant(), regression(0), "Constant has no fast path"),
        (
            RandomForestClassifier(n_estimators=5, random_state=0),
            (classification(0, 2)[0], np.column_stack([classification(0, 2)[1]] * 2)),
            "multi-output classification",
        ),
    ],
)
def test_unsupported_models_keep_sklearns_path_and_say_why(
    estimator: Any, data: Any, reason: str
) -> None:
    model = serve(estimator, *data)
    assert model.predict_path == fastpath.SKLEARN
    assert reason in model.predict_path_reason


def test_a_forest_computing_differently_from_its_tree_table_keeps_sklearns_path() -> None:
    x, y = classification(0, 3)
    estimator = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    # scikit-learn now keeps one column of the first tree's leaf values and spreads it over
    # all classes; the compiled table still holds every column.
    estimator.estimators_[0].n_classes_ = 1
    model = serve(estimator, x, y, refit=False)
    assert model.predict_path == fastpath.SKLEARN
    assert "the forest path is not exact: predict differs" in model.predict_path_reason
    rows = fresh_rows(x, 20)
    assert np.array_equal(model.predict(rows, True)[1], estimator.predict_proba(rows))


def test_a_tampered_compiled_tree_fails_verification_with_what_differed() -> None:
    x, y = classification(0, 3)
    model = serve(RandomForestClassifier(n_estimators=50, random_state=0), x, y)
    compiled = fastpath.compile_estimator(model.estimator)
    probe = probe_rows(model.reference, COLUMNS)
    assert probe is not None
    rows = fastpath.verification_rows(probe, compiled.thresholds(), allow_nan=True)
    assert fastpath.verify(compiled, model._sklearn_predict, rows, True) == ""
    # The flat table, which walks small batches: every split moved.
    assert compiled.trees.vectorised(1)
    compiled.trees.threshold[~compiled.trees.is_leaf] += 1.0
    difference = fastpath.verify(compiled, model._sklearn_predict, rows, True)
    assert "predict_proba differs from scikit-learn's on" in difference


def test_a_pipeline_selecting_columns_by_name_keeps_sklearns_path_on_dataframes() -> None:
    x, y = classification(0, 2)
    pipeline = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), ["f1", "f0"])]), LogisticRegression()
    )
    model = serve(pipeline, x, y, frame=True)
    assert not model.array_input
    assert model.predict_path == fastpath.SKLEARN
    assert "the compiled path failed" in model.predict_path_reason
    rows = fresh_rows(x, 10)
    expected = pipeline.predict(pd.DataFrame(rows, columns=COLUMNS))
    assert np.array_equal(model.predict(rows, with_proba=False)[0], expected)


def test_without_reference_statistics_nothing_is_proved_and_sklearn_serves() -> None:
    x, y = classification(0, 2)
    estimator = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    info = ModelInfo(tuple(COLUMNS), "classification", None, "sha256:" + "0" * 64, None)
    model = ServedModel(info, estimator, reference=None)
    assert model.predict_path == fastpath.SKLEARN
    assert "no reference statistics" in model.predict_path_reason


def test_only_a_compiled_path_predicts_on_the_event_loop_and_only_within_its_budget() -> None:
    x, y = classification(0, 2)
    compiled = serve(LogisticRegression(max_iter=500), x, y)
    assert compiled.predict_path == "linear"
    assert compiled.inline_rows(limit=64, budget=10.0) == 64  # any batch fits 10 s
    assert compiled.inline_rows(limit=64, budget=0.0) == 0  # none fits no time
    info = ModelInfo(tuple(COLUMNS), "classification", None, "sha256:" + "0" * 64, None)
    sklearn = ServedModel(info, compiled.estimator, reference=None)
    assert sklearn.predict_path == fastpath.SKLEARN
    assert sklearn.inline_rows(limit=64, budget=10.0) == 0
