"""A builtin policy of the other task (a classifier's f1 on a regressor, a regressor's rmse on
a classifier) is an InvalidSpec naming the policy and the metric, not a silent Inconclusive."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mlops_operator.serving.plan import Observed, plan
from mlops_operator.settings import Settings
from tests.unit.serving.test_serving_service_plan import version

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SETTINGS = Settings(runtime_image="runtime:test", s3_credentials_secret=None)


def service(*policies: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "svc", "uid": "u1", "generation": generation},
        "spec": {
            "model": "m",
            "monitoring": {"metrics": [{"min": 0.5, "minSamples": 10, **p} for p in policies]},
        },
        "status": {},
    }


def run(obj: dict[str, Any], versions: list[dict[str, Any]]) -> Any:
    return plan(
        Observed(obj=obj, versions=versions, trainingjobs={}, deployment=None), SETTINGS, T0
    )


def ready(result: Any) -> dict[str, Any]:
    wire = result.status.to_wire()
    return next(c for c in wire["conditions"] if c["type"] == "Ready")


@pytest.mark.parametrize(
    ("task", "metric", "needs"),
    [
        ("regression", {"builtin": "f1"}, "classification"),
        ("regression", {"builtin": "recall", "class": "1"}, "classification"),
        ("regression", {"builtin": "accuracy"}, "classification"),
        ("classification", {"builtin": "rmse", "max": 3.0}, "regression"),
        ("classification", {"builtin": "r2"}, "regression"),
    ],
)
def test_a_metric_of_the_other_task_is_invalid_spec_with_an_event_naming_it(
    task: str, metric: dict[str, Any], needs: str
) -> None:
    obj = service(
        {"name": "latency", "builtin": "latencyP99", "max": 1.0}, {"name": "bad", **metric}
    )
    result = run(obj, [version(1, task=task)])
    assert not result.valid
    assert result.deployment is None
    assert result.status.phase == "Failed"
    condition = ready(result)
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    message = condition["message"]
    assert f"spec.monitoring.metrics[1] (bad): the builtin metric {metric['builtin']}" in message
    assert f"needs a {needs} model" in message
    assert [(e[0], e[1]) for e in result.events] == [("Warning", "InvalidSpec")]
    assert metric["builtin"] in result.events[0][2]


def test_metrics_of_the_models_task_serve_and_an_unknown_task_is_not_refused() -> None:
    classifier = service({"name": "f1", "builtin": "f1"}, {"name": "acc", "builtin": "accuracy"})
    served = run(classifier, [version(1, task="classification")])
    assert served.valid and served.deployment is not None
    regressor = service(
        {"name": "rmse", "builtin": "rmse", "max": 2.0}, {"name": "r2", "builtin": "r2"}
    )
    assert run(regressor, [version(1, task="regression")]).valid
    # A version registered by hand without a task: the measurement will say what it finds.
    assert run(service({"name": "f1", "builtin": "f1"}), [version(1, task=None)]).valid


def test_the_served_versions_task_decides_and_fixing_the_spec_clears_it() -> None:
    versions = [version(1, task="classification"), version(2, task="regression")]
    obj = service({"name": "f1", "builtin": "f1"})
    obj["status"] = {"currentVersion": 1}
    assert run(obj, versions).valid, "version 1, a classifier, is what is served"
    obj["status"] = {}
    refused = run(obj, versions)
    assert not refused.valid, "nothing served yet: the newest version, a regressor, decides"
    fixed = service({"name": "rmse", "builtin": "rmse", "max": 2.0}, generation=2)
    fixed["status"] = refused.status.to_wire()
    result = run(fixed, versions)
    assert result.valid and result.deployment is not None
