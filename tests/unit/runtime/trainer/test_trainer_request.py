"""Reading the TrainingJob the trainer is given."""

from __future__ import annotations

import json

import pytest

from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.failure import TrainingFailure
from mlops_operator.runtime.trainer.request import (
    TRAININGJOB_ENV,
    load_trainingjob,
    parse_trainingjob,
)

SPEC = {
    "model": "iris",
    "dataset": {"uri": "s3://data/iris.csv", "target": "species"},
    "estimator": {"className": "sklearn.linear_model.LogisticRegression"},
}


def test_a_whole_object_yields_its_name_and_spec() -> None:
    text = json.dumps({"kind": "TrainingJob", "metadata": {"name": "iris-1"}, "spec": SPEC})
    request = parse_trainingjob(text, "test")
    assert request.name == "iris-1"
    assert request.spec.dataset.target == "species"


def test_a_bare_yaml_spec_is_accepted() -> None:
    text = (
        "model: iris\ndataset: {uri: 's3://data/iris.csv', target: species}\n"
        "estimator: {className: sklearn.linear_model.LogisticRegression}\n"
    )
    request = parse_trainingjob(text, "test")
    assert request.name is None
    assert request.spec.model == "iris"


def test_the_environment_variable_is_read_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRAININGJOB_ENV, json.dumps({"metadata": {"name": "x"}, "spec": SPEC}))
    assert load_trainingjob(None).name == "x"


def test_no_trainingjob_at_all_is_an_invalid_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRAININGJOB_ENV, raising=False)
    with pytest.raises(TrainingFailure) as caught:
        load_trainingjob(None)
    assert caught.value.reason == tm.INVALID_SPEC


def test_validation_errors_name_the_field() -> None:
    spec = {**SPEC, "dataset": {"uri": "s3://data/iris.csv"}}
    with pytest.raises(TrainingFailure) as caught:
        parse_trainingjob(json.dumps({"spec": spec}), "tj.yaml")
    assert caught.value.reason == tm.INVALID_SPEC
    assert "spec.dataset.target: Field required" in caught.value.message
    assert "tj.yaml" in caught.value.message


def test_another_kind_is_refused() -> None:
    with pytest.raises(TrainingFailure, match="holds a ModelVersion"):
        parse_trainingjob(json.dumps({"kind": "ModelVersion", "spec": {}}), "mv.yaml")
