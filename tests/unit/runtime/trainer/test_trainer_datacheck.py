"""schema.json capture, and each data check against it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_operator.api.trainingjob import DataChecks
from mlops_operator.runtime.trainer.datacheck import capture_schema, check, summary

RNG = np.random.default_rng(0)
REF = pd.DataFrame(
    {
        "x": RNG.normal(0, 1, 500),
        "city": RNG.choice(["a", "b"], 500),
        "y": RNG.choice(["yes", "no"], 500),
    }
)
SCHEMA = capture_schema(REF, ["x", "city"], "y", "classification")


def found(frame: pd.DataFrame, **thresholds: object) -> dict[tuple[str, str | None], str]:
    checks = DataChecks.model_validate(thresholds)
    return {
        (f.check, f.column): f.severity for f in check(frame, SCHEMA, ["x", "city"], "y", checks)
    }


def test_the_schema_has_types_ranges_categories_gaps_rows_and_labels() -> None:
    assert SCHEMA["rows"] == 500
    x = SCHEMA["columns"]["x"]
    assert x["type"] == "numeric" and x["nullable"] is False and x["min"] < 0 < x["max"]
    assert SCHEMA["columns"]["city"]["categories"] == ["a", "b"]
    assert set(SCHEMA["label"]["shares"]) == {"no", "yes"}


def test_the_same_data_has_no_findings() -> None:
    assert found(REF) == {}


def test_a_missing_column_and_a_changed_type_are_errors() -> None:
    frame = REF.drop(columns=["city"]).assign(x=REF["x"].astype(str) + "kg")
    assert found(frame) == {("missingColumn", "city"): "error", ("typeChanged", "x"): "error"}


def test_gaps_above_the_threshold_are_an_error() -> None:
    frame = REF.copy()
    frame.loc[:200, "x"] = np.nan
    assert found(frame)[("missingShare", "x")] == "error"
    assert ("missingShare", "x") not in found(frame, maxMissingShare=0.5)


def test_values_out_of_range_new_categories_and_drift_are_warnings_by_default() -> None:
    frame = REF.assign(x=REF["x"] + 3, city=REF["city"].replace("a", "c"))
    result = found(frame)
    assert result[("outOfRange", "x")] == "warning"
    assert result[("newCategories", "city")] == "warning"
    assert result[("drift", "x")] == "warning"
    strict = found(frame, drift="error", newCategories="error", outOfRange="off")
    assert strict[("drift", "x")] == "error" and strict[("newCategories", "city")] == "error"
    assert ("outOfRange", "x") not in strict


def test_too_few_rows_and_a_shifted_label_are_found() -> None:
    few = REF.head(10)
    assert found(few)[("tooFewRows", None)] == "error"
    shifted = REF.assign(y="yes")
    assert found(shifted)[("labelDrift", "y")] == "warning"


def test_the_summary_names_the_columns_of_the_errors() -> None:
    frame = REF.drop(columns=["city"])
    findings = check(frame, SCHEMA, ["x", "city"], "y", DataChecks())
    assert summary(findings) == (
        "1 data check failed before fitting (columns: city): missingColumn on 'city'"
    )
