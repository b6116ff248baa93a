"""API types: wire names, validation messages, conditions."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from mlops_operator.api.base import set_condition
from mlops_operator.api.inferenceservice import InferenceServiceSpec
from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.api.validation import describe_validation_error

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)

VALID = {
    "model": "iris",
    "dataset": {"uri": "s3://data/iris.csv", "target": "species"},
    "estimator": {"className": "sklearn.linear_model.LogisticRegression"},
}


def test_spec_round_trips_in_camel_case() -> None:
    spec = TrainingJobSpec.model_validate(
        {**VALID, "backoffLimit": 1, "validation": {"testSize": 0.3}}
    )
    wire = spec.to_wire()
    assert wire["backoffLimit"] == 1
    assert wire["validation"]["testSize"] == 0.3
    assert wire["estimator"]["className"] == "sklearn.linear_model.LogisticRegression"


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"dataset": {"target": "y"}}, "spec.dataset.uri: Field required"),
        (
            {"dataset": {"uri": "http://x/y.csv", "target": "y"}},
            "spec.dataset.uri: String should match",
        ),
        (
            {"validation": {"testSize": 1.5}},
            "spec.validation.testSize: Input should be less than 1",
        ),
        ({"gates": [{"metric": "accuracy"}]}, "gate on 'accuracy' needs min or max"),
        ({"estimatorr": {}}, "spec.estimatorr: unknown field"),
    ],
)
def test_invalid_specs_name_the_field_on_the_wire(patch: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as exc:
        TrainingJobSpec.model_validate({**VALID, **patch})
    assert expected in describe_validation_error(exc.value)


def test_inference_service_version_is_a_number_or_latest() -> None:
    assert InferenceServiceSpec.model_validate({"model": "iris"}).version == "latest"
    assert InferenceServiceSpec.model_validate({"model": "iris", "version": 3}).version == 3
    with pytest.raises(ValidationError):
        InferenceServiceSpec.model_validate({"model": "iris", "version": "newest"})


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    conds = set_condition([], "Ready", "False", "JobPending", "waiting", now=T0)
    conds = set_condition(conds, "Ready", "False", "JobRunning", "running", now=T1)
    assert conds[0].last_transition_time == T0
    assert conds[0].reason == "JobRunning"
    conds = set_condition(conds, "Ready", "True", "ModelRegistered", "done", now=T1)
    assert conds[0].last_transition_time == T1
    assert len(conds) == 1


def test_status_assignment_parses_timestamps_copied_from_other_objects() -> None:
    import warnings

    from mlops_operator.api.trainingjob import TrainingJobStatus

    status = TrainingJobStatus()
    status.start_time = "2026-11-22T08:32:26Z"  # type: ignore[assignment]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire["startTime"] == "2026-11-22T08:32:26Z"
