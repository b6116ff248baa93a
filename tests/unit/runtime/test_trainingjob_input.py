"""Reading the TrainingJob the trainer is given, and where its artifacts go by default."""

from __future__ import annotations

import json

import pytest

from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer import (
    TRAININGJOB_ENV,
    TrainingFailure,
    default_output_uri,
    load_trainingjob,
    parse_trainingjob,
)
from mlops_operator.settings import Settings

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


def test_default_output_comes_from_settings_and_spec() -> None:
    request = parse_trainingjob(json.dumps({"metadata": {"name": "run-1"}, "spec": SPEC}), "t")
    settings = Settings(s3_bucket="artifacts", s3_prefix="/models/")
    assert default_output_uri(request.spec, request.name, settings) == (
        "s3://artifacts/models/_local/iris/runs/run-1/"
    )
    spec = request.spec.model_copy(
        update={"storage": request.spec.storage.model_copy(update={"bucket": "b2", "prefix": ""})}
    )
    assert default_output_uri(spec, None, settings) == "s3://b2/_local/iris/runs/local/"
