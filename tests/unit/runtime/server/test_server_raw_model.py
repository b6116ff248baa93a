"""A model trained on a raw table, as the server loads it: its columns (kinds, datatypes,
known categories) from the manifest, schema.json or the fitted Pipeline; which columns take
a missing value and the largest number, tried once at load; predictions on tables equal to
the Pipeline's own on DataFrames."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, StandardScaler

from mlops_operator.api.trainingjob import PreprocessingSpec
from mlops_operator.runtime.refstats import reference_stats
from mlops_operator.runtime.server import fastpath, tablepath
from mlops_operator.runtime.server.errors import ProtocolError
from mlops_operator.runtime.server.model import FLOAT32_MAX, ModelInfo, ServedModel
from mlops_operator.runtime.server.protocol import parse_v1_predict
from mlops_operator.runtime.trainer.datacheck import capture_schema
from mlops_operator.runtime.trainer.preprocess import build_pipeline, plan_columns


def frame(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series[Any]]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "pro"], rows).astype(object),
            "tenure": rng.gamma(2, 12, rows),
            "charges": rng.normal(50, 10, rows),
            "partner": rng.random(rows) > 0.5,
            "code": rng.choice([10, 20, 30], rows),
        }
    )
    x.loc[rng.random(rows) < 0.1, "charges"] = np.nan
    y = pd.Series(np.where((x["tenure"] < 15) | (x["plan"] == "pro"), "yes", "no"))
    return x, y


def churn_info(
    features: tuple[str, ...], preprocessing: tuple[dict[str, Any], ...] | None = None
) -> ModelInfo:
    """A no/yes classifier's manifest, with the trainer's preprocessing steps if given."""
    return ModelInfo(
        features=features,
        task="classification",
        classes=("no", "yes"),
        digest="sha256:" + "0" * 64,
        framework_version=None,
        preprocessing=preprocessing,
    )


def served(estimator: Any, spec: PreprocessingSpec | None = None) -> tuple[ServedModel, Any]:
    """The trainer's Pipeline for ``estimator``, fitted, and the server's model of it."""
    x, y = frame()
    steps = plan_columns(x, list(x.columns), spec)
    pipeline = build_pipeline(steps, estimator).fit(x, y)
    schema = capture_schema(x.assign(target=y), list(x.columns), "target", "classification")
    numeric = {c: x[c] for c in ("tenure", "charges")}
    info = churn_info(tuple(x.columns), tuple(s.describe() for s in steps))
    return ServedModel(info, pipeline, reference_stats(numeric)["features"], schema), pipeline


def test_columns_come_from_the_manifest_and_schema_with_the_encoders_categories() -> None:
    spec = PreprocessingSpec.model_validate(
        {"columns": [{"name": "code", "kind": "categorical"}, {"name": "tenure", "impute": "none"}]}
    )
    model, _ = served(LogisticRegression(max_iter=500), spec)
    assert model.columns is not None
    described = {c.name: (c.kind, c.datatype, c.nullable) for c in model.columns}
    assert described == {
        "plan": ("categorical", "BYTES", True),
        "tenure": ("numeric", "FP64", False),  # not imputed, and LogisticRegression takes no NaN
        "charges": ("numeric", "FP64", True),
        "partner": ("categorical", "BOOL", True),
        "code": ("categorical", "INT64", True),
    }
    categories = {c.name: c.categories for c in model.columns}
    assert categories["code"] == {"10", "20", "30"} and categories["partner"] == {"True", "False"}
    assert model.input_limit == math.inf  # a linear model computes in float64


def test_a_table_predicts_what_the_pipeline_predicts_on_a_dataframe() -> None:
    model, pipeline = served(RandomForestClassifier(n_estimators=10, random_state=0))
    x, _ = frame(20, seed=1)
    x.loc[0, "plan"] = "gold"  # unseen: encoded as no known category
    x.loc[1, "charges"] = np.nan
    instances = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in x.astype(object).to_dict(orient="records")
    ]
    table = parse_v1_predict(
        {"instances": instances}, model.info.features, allow_nan=False, columns=model.columns
    )
    predictions, proba = model.predict(table, with_proba=True)
    assert predictions.tolist() == pipeline.predict(x).tolist()
    assert proba is not None and np.array_equal(proba, pipeline.predict_proba(x))
    assert model.predict_path == "table(categories,impute,one-hot)+forest"
    # Trees read float32: a number beyond it is a 400, found at load.
    assert model.input_limit == FLOAT32_MAX


def test_a_pipeline_brought_without_manifest_or_schema_is_read_from_its_encoders() -> None:
    x, y = frame()
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                ("numbers", SimpleImputer(), ["tenure", "charges"]),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(x[["plan", "tenure", "charges"]], y)
    info = churn_info(("plan", "tenure", "charges"))
    model = ServedModel(info, pipeline, None)
    assert model.columns is not None
    assert [(c.name, c.kind, c.datatype) for c in model.columns] == [
        ("plan", "categorical", "BYTES"),
        ("tenure", "numeric", "FP64"),
        ("charges", "numeric", "FP64"),
    ]
    assert model.columns[0].categories == {"basic", "pro"}


def test_a_numeric_pipeline_that_imputes_takes_missing_values_on_the_numeric_path() -> None:
    x, y = frame()
    numbers = x[["tenure", "charges"]]
    pipeline = make_pipeline(
        ColumnTransformer([("impute", SimpleImputer(), ["charges"])], remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(numbers, y)
    info = churn_info(("tenure", "charges"))
    model = ServedModel(info, pipeline, reference_stats(dict(numbers.items()))["features"])
    assert model.columns is None
    assert np.array_equal(model.nullable, [False, True])
    rows = parse_v1_predict({"instances": [[10.0, None]]}, info.features, allow_nan=model.nullable)
    assert (
        model.predict(rows, with_proba=False)[0].tolist()
        == pipeline.predict(pd.DataFrame({"tenure": [10.0], "charges": [np.nan]})).tolist()
    )


def test_a_value_the_pipeline_refuses_is_a_422_not_a_500() -> None:
    x, y = frame()
    pipeline = make_pipeline(
        ColumnTransformer([("categories", OneHotEncoder(handle_unknown="error"), ["plan"])]),
        LogisticRegression(),
    ).fit(x[["plan"]], y)
    info = churn_info(("plan",))
    model = ServedModel(info, pipeline, None)
    assert (model.predict_path, model.predict_path_reason) == ("table(one-hot)+linear", "")
    table = np.array([["gold"]], dtype=object)
    with pytest.raises(ProtocolError) as caught:
        model.predict(table, with_proba=False)
    assert caught.value.status == 422
    assert "the model cannot predict these rows" in caught.value.message


def table_of(model: ServedModel, x: pd.DataFrame) -> Any:
    """``x`` as a v1 request's table for ``model``: NaN sent as null."""
    instances = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in x.astype(object).to_dict(orient="records")
    ]
    return parse_v1_predict(
        {"instances": instances}, model.info.features, allow_nan=False, columns=model.columns
    )


SPECS = {
    "defaults": None,
    "ordinal, passthrough, scalers": {
        "columns": [
            {"name": "code", "kind": "categorical", "encode": "ordinal"},
            {"name": "tenure", "impute": "none", "scale": "minmax"},
            {"name": "charges", "impute": "mean", "scale": "robust"},
            {"name": "partner", "impute": "constant"},
        ]
    },
    "standard scaler, a dropped column": {
        "columns": [
            {"name": "charges", "impute": "constant", "scale": "standard"},
            {"name": "code", "drop": True},
        ]
    },
}


@pytest.mark.parametrize("spec", SPECS, ids=list(SPECS))
@pytest.mark.parametrize(
    ("estimator", "path"),
    [
        (RandomForestClassifier(n_estimators=30, random_state=0), "forest"),
        (LogisticRegression(max_iter=1000), "linear"),
        (HistGradientBoostingClassifier(max_iter=20, random_state=0), "hist-gradient-boosting"),
    ],
    ids=["forest", "logistic", "hist-gradient-boosting"],
)
def test_a_table_is_encoded_without_the_column_transformer_and_predicts_the_same_bits(
    spec: str, estimator: Any, path: str
) -> None:
    preprocessing = PreprocessingSpec.model_validate(SPECS[spec]) if SPECS[spec] else None
    model, pipeline = served(estimator, preprocessing)
    assert model.predict_path.startswith("table(") and model.predict_path.endswith(f")+{path}")
    assert model.predict_path_reason == ""
    # Rows it was not proved on: another seed, an unseen category, missing values, extremes.
    x, _ = frame(64, seed=7)
    x["partner"] = x["partner"].astype(object)
    x.loc[0, "plan"] = "gold"
    x.loc[1, "partner"] = None
    x.loc[2, "code"] = 40
    x.loc[3, "tenure"] = 1e6
    x.loc[4, "charges"] = -1e6
    table = table_of(model, x)
    for size in (1, 5, 64):  # the Pipeline's own on the same batch (a matmul's sums vary)
        for start in range(0, 64, size):
            rows = slice(start, start + size)
            predictions, proba = model.predict(table[rows], with_proba=True)
            assert np.array_equal(predictions, pipeline.predict(x[rows]))
            assert proba is not None and np.array_equal(proba, pipeline.predict_proba(x[rows]))


def test_a_transformer_without_a_compiled_form_keeps_the_pipelines_path_and_says_why() -> None:
    x, y = frame()
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                ("bins", KBinsDiscretizer(n_bins=4, encode="ordinal"), ["tenure"]),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(x[["plan", "tenure"]], y)
    info = churn_info(("plan", "tenure"))
    model = ServedModel(info, pipeline, None)
    assert model.predict_path == "sklearn"
    assert model.predict_path_reason == "the transformer KBinsDiscretizer has no fast path"
    table = table_of(model, x[["plan", "tenure"]].head(3))
    assert np.array_equal(model.predict(table, False)[0], pipeline.predict(x.head(3)))


def test_an_encoding_one_ulp_off_is_refused_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    exact = tablepath._numeric_imputer

    def off_by_an_ulp(statistics: Any) -> Any:
        return exact(np.nextafter(statistics, np.inf))

    monkeypatch.setattr(tablepath, "_numeric_imputer", off_by_an_ulp)
    model, _ = served(LogisticRegression(max_iter=500))
    assert model.predict_path == "sklearn"
    assert model.predict_path_reason.startswith("the encoding is not exact: values differ")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # sklearn's
def test_rows_the_estimator_refuses_after_encoding_are_the_pipelines_422() -> None:
    x, y = frame()
    x["tiny"] = x["tenure"] * 1e-30  # scaled by ~1e30: a large input overflows float32
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                ("numbers", StandardScaler(), ["tiny"]),
            ]
        ),
        RandomForestClassifier(n_estimators=5, random_state=0),
    ).fit(x[["plan", "tiny"]], y)
    info = churn_info(("plan", "tiny"))
    model = ServedModel(info, pipeline, None)
    assert model.predict_path == "table(one-hot,standard-scaler)+forest"
    table = np.array([["pro", 1e20]], dtype=object)
    with pytest.raises(ProtocolError) as caught:
        model.predict(table, with_proba=True)
    assert caught.value.status == 422
    assert "too large for dtype('float32')" in caught.value.message


@functools.cache
def served_for_property(kind: str) -> ServedModel:
    estimator = {
        "forest": RandomForestClassifier(n_estimators=20, random_state=0),
        "logistic": LogisticRegression(max_iter=1000),
    }[kind]
    spec = PreprocessingSpec.model_validate(SPECS["ordinal, passthrough, scalers"])
    return served(estimator, spec if kind == "logistic" else None)[0]


_NUMBER = st.one_of(
    st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, -0.0, 1e-300])
)
_ROW = st.fixed_dictionaries(
    {
        "plan": st.sampled_from(["basic", "pro", "gold", "", None]),
        "tenure": _NUMBER,
        "charges": _NUMBER,
        "partner": st.sampled_from([True, False, None, "True", "maybe"]),
        "code": st.sampled_from([10, 20, 30, 40, None, "20"]),
    }
)


@pytest.mark.parametrize("kind", ["forest", "logistic"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_ROW, min_size=1, max_size=12))
def test_the_table_path_answers_what_the_pipelines_path_answers_on_any_rows(
    kind: str, rows: list[dict[str, Any]]
) -> None:
    model = served_for_property(kind)
    assert model.predict_path.startswith("table(")
    try:
        table = parse_v1_predict(
            {"instances": rows}, model.info.features, allow_nan=False, columns=model.columns
        )
    except ProtocolError:
        return  # refused before any model sees it (a null where none is taken)
    outcomes = []
    for predict in (model.predict, model._table_predict):
        try:
            outcomes.append(predict(table, True))
        except ProtocolError as exc:
            outcomes.append((exc.status, exc.message))
    (fast, sklearn) = outcomes
    if isinstance(sklearn[0], int):
        assert fast == sklearn
    else:
        assert fastpath.differences(sklearn, fast) == ""
