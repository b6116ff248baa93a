"""Preprocessing: which columns get which step, by default and as declared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_operator.api.trainingjob import PreprocessingSpec
from mlops_operator.runtime.trainer.preprocess import (
    as_categories,
    build_pipeline,
    needs_pipeline,
    plan_columns,
    unknown_columns,
)

FRAME = pd.DataFrame(
    {
        "age": [30.0, np.nan, 50.0, 41.0],
        "code": [1, 2, 1, 3],
        "city": ["paris", None, "lyon", "paris"],
        "active": [True, False, True, True],
    }
)


def described(spec: PreprocessingSpec | None) -> dict[str, dict[str, object]]:
    return {s.column: s.describe() for s in plan_columns(FRAME, list(FRAME.columns), spec)}


def test_defaults_impute_numbers_with_the_median_and_one_hot_encode_categories() -> None:
    steps = described(None)
    assert steps["age"] == {"column": "age", "kind": "numeric", "impute": "median", "scale": "none"}
    assert steps["city"] == {
        "column": "city",
        "kind": "categorical",
        "impute": "most_frequent",
        "encode": "onehot",
    }
    assert steps["active"]["kind"] == "categorical"  # booleans are categories


def test_type_defaults_and_column_overrides_layer_over_the_built_in_ones() -> None:
    spec = PreprocessingSpec.model_validate(
        {
            "numeric": {"scale": "minmax", "impute": "mean"},
            "columns": [
                {"name": "code", "kind": "categorical", "encode": "ordinal"},
                {"name": "age", "impute": "constant"},
                {"name": "active", "drop": True},
            ],
        }
    )
    steps = described(spec)
    assert steps["age"] == {
        "column": "age",
        "kind": "numeric",
        "impute": "constant",
        "scale": "minmax",
    }
    assert steps["code"]["kind"] == "categorical" and steps["code"]["encode"] == "ordinal"
    assert steps["active"] == {"column": "active", "kind": "categorical", "dropped": True}


def test_a_complete_numeric_table_needs_no_pipeline_unless_asked() -> None:
    numeric = FRAME[["code"]]
    assert not needs_pipeline(numeric, ["code"], None)
    assert needs_pipeline(numeric, ["code"], PreprocessingSpec())
    assert needs_pipeline(FRAME, ["age"], None)  # a gap
    assert needs_pipeline(FRAME, ["city"], None)  # text


def test_unknown_choices_and_twice_named_columns_are_refused_by_the_types() -> None:
    with pytest.raises(ValidationError):
        PreprocessingSpec.model_validate({"numeric": {"scale": "log"}})
    with pytest.raises(ValidationError, match="more than once"):
        PreprocessingSpec.model_validate({"columns": [{"name": "a"}, {"name": "a"}]})
    spec = PreprocessingSpec.model_validate({"columns": [{"name": "zip"}]})
    assert unknown_columns(spec, ["age"]) == ["zip"]


def test_categories_become_text_with_gaps_kept_as_nan() -> None:
    out = as_categories(pd.DataFrame({"a": [True, None, 3]}))
    assert out["a"].iloc[0] == "True" and out["a"].iloc[2] == "3"
    assert out["a"].iloc[1] is np.nan


def test_the_pipeline_ignores_a_category_never_seen_in_training() -> None:
    from sklearn.linear_model import LogisticRegression

    pipeline = build_pipeline(plan_columns(FRAME, list(FRAME.columns), None), LogisticRegression())
    pipeline.fit(FRAME, [0, 1, 0, 1])
    unseen = pd.DataFrame({"age": [np.nan], "code": [9], "city": ["tokyo"], "active": [None]})
    assert pipeline.predict(unseen).shape == (1,)
