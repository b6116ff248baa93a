"""A TrainingJob that cannot train is refused before any Job: the schema, an estimator
outside the allowed prefixes, a gate or metric the estimator's task never reports."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_operator.training.plan import task_of, validate

PREFIXES = ["sklearn."]


def spec(
    class_name: str = "sklearn.ensemble.RandomForestClassifier", **extra: Any
) -> dict[str, Any]:
    return {
        "model": "m",
        "dataset": {"uri": "s3://data/x.csv", "target": "y"},
        "estimator": {"className": class_name},
        **extra,
    }


@pytest.mark.parametrize(
    ("class_name", "task"),
    [
        ("sklearn.ensemble.RandomForestClassifier", "classification"),
        ("sklearn.linear_model.LogisticRegression", "classification"),
        ("sklearn.svm.SVC", "classification"),
        ("sklearn.ensemble.GradientBoostingRegressor", "regression"),
        ("sklearn.linear_model.Ridge", "regression"),
        ("sklearn.pipeline.Pipeline", None),
    ],
)
def test_the_task_is_read_from_the_class_name(class_name: str, task: str | None) -> None:
    assert task_of(class_name) == task


def test_a_gate_on_a_metric_the_task_never_reports_is_invalid() -> None:
    problem = validate(spec(gates=[{"metric": "r2", "min": 0.5}]), PREFIXES)
    assert isinstance(problem, str)
    assert problem.startswith("spec.gates[0].metric: 'r2' is never reported for classification")


def test_a_gate_outside_the_requested_metrics_is_invalid() -> None:
    raw = spec(validation={"metrics": ["f1"]}, gates=[{"metric": "accuracy", "min": 0.5}])
    problem = validate(raw, PREFIXES)
    assert isinstance(problem, str) and "spec.gates[0].metric" in problem


def test_a_requested_metric_of_the_other_task_is_invalid() -> None:
    problem = validate(
        spec("sklearn.linear_model.Ridge", validation={"metrics": ["accuracy"]}), PREFIXES
    )
    assert isinstance(problem, str) and problem.startswith("spec.validation.metrics: accuracy")


def test_an_estimator_outside_the_prefixes_is_invalid_and_a_good_spec_passes() -> None:
    problem = validate(spec("os.system"), PREFIXES)
    assert isinstance(problem, str) and "is not allowed" in problem
    assert not isinstance(validate(spec(gates=[{"metric": "accuracy", "min": 0.9}]), PREFIXES), str)


def test_a_negative_quantity_is_a_schema_error() -> None:
    problem = validate(spec(resources={"limits": {"cpu": "-1"}}), PREFIXES)
    assert isinstance(problem, str) and "spec.resources.limits" in problem
