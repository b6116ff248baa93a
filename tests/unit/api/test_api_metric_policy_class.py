"""A policy's ``class``: only with precision, recall or f1, in the types and in the CRD."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops_operator.api import crds
from mlops_operator.api.inferenceservice import MetricPolicy


def test_a_per_class_policy_reads_and_writes_class() -> None:
    policy = MetricPolicy.model_validate(
        {"name": "recall-1", "builtin": "recall", "class": "1", "min": 0.8}
    )
    assert policy.class_ == "1"
    assert policy.to_wire()["class"] == "1"


@pytest.mark.parametrize("builtin", ["accuracy", "rmse", "drift"])
def test_class_on_another_metric_is_refused_naming_the_policy(builtin: str) -> None:
    with pytest.raises(ValidationError, match="'p': class applies to the builtin metrics"):
        MetricPolicy.model_validate({"name": "p", "builtin": builtin, "class": "1", "min": 0.1})


def test_the_crd_holds_the_same_rule_for_the_api_server() -> None:
    resource = next(r for r in crds.RESOURCES if r.kind == "InferenceService")
    schema = crds.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    policy = schema["properties"]["spec"]["properties"]["monitoring"]["properties"]["metrics"][
        "items"
    ]
    assert {"precision", "recall", "f1", "mae", "rmse", "r2"} <= set(
        policy["properties"]["builtin"]["enum"]
    )
    rules = {r["rule"]: r["message"] for r in policy["x-kubernetes-validations"]}
    rule = (
        "!has(self.class) || (has(self.builtin) && self.builtin in ['precision', 'recall', 'f1'])"
    )
    assert rules[rule].startswith("class applies to the builtin metrics")
