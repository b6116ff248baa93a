"""The monitoring loop for real: policies evaluated on the model servers' own metrics (and on
PromQL through a real Prometheus), then rollback, retraining and promotion — all through the
operator process, the sandbox's pods and HTTP."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import kubernetes
import pytest

from mlops_sandbox.process import wait_for

pytestmark = pytest.mark.timeout(300)

ADDRESS = "sandbox.mlops.dev/address"


def trainingjob(dataset: str, depth: int = 4, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "cancer",
        "dataset": {"uri": dataset, "target": "target"},
        "estimator": {
            "className": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 20, "max_depth": depth},
        },
        "gates": [{"metric": "accuracy", "min": 0.9}],
        "backoffLimit": 0,
    }
    spec.update(extra)
    return spec


def policy(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "failureLimit": 2, "minSamples": 20, **fields}


def train(resources: Any, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    resources.create("trainingjobs", "TrainingJob", name, spec)
    tj = resources.wait_status(
        "trainingjobs", name, lambda s: s.get("phase") in ("Succeeded", "Failed"), "to finish"
    )
    assert tj["status"]["phase"] == "Succeeded", tj["status"]
    resources.wait_status(
        "modelversions", tj["status"]["modelVersion"], lambda s: s.get("phase") == "Ready", "ok"
    )
    return tj


def address(kube: Any, namespace: str) -> str:
    core = kubernetes.client.CoreV1Api(kube)
    return wait_for(
        "the predictor Service's address",
        lambda: (
            core.read_namespaced_service("cancer-predictor", namespace).metadata.annotations or {}
        ).get(ADDRESS),
        timeout=30,
    )


def rows(n: int, scale: float = 1.0) -> tuple[list[list[float]], list[int]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return (data.data[:n] * scale).tolist(), data.target[:n].tolist()


def infer(http: httpx.Client, batch: list[list[float]]) -> dict[str, Any]:
    response = http.post(
        "/v2/models/cancer/infer",
        json={
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(batch), len(batch[0])],
                    "datatype": "FP64",
                    "data": [x for row in batch for x in row],
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def watch_accuracy(resources: Any, **spec: Any) -> None:
    """Create service ``cancer`` judged on online accuracy every 5 s (min 0.8, 2 breaches)."""
    resources.create(
        "inferenceservices",
        "InferenceService",
        "cancer",
        {
            "model": "cancer",
            "monitoring": {
                "intervalSeconds": 5,
                "metrics": [policy("online-accuracy", builtin="accuracy", min=0.8)],
            },
            **spec,
        },
    )


def served_version(resources: Any) -> int | None:
    obj = resources.get("inferenceservices", "cancer")
    return ((obj or {}).get("status") or {}).get("currentVersion")


def test_falling_online_accuracy_rolls_back_to_the_last_healthy_version(
    start_operator: Any, resources: Any, cancer_csv: str, kube: Any, namespace: str
) -> None:
    start_operator()
    train(resources, "cancer-a", trainingjob(cancer_csv, 4))
    watch_accuracy(resources, onDegradation="Rollback")
    resources.wait_status("inferenceservices", "cancer", lambda s: s.get("phase") == "Ready", "up")
    train(resources, "cancer-b", trainingjob(cancer_csv, 6))
    resources.wait_rolled_out("cancer", 2)
    base = address(kube, namespace)
    batch, labels = rows(50)
    with httpx.Client(base_url=base, timeout=10) as http:
        body = infer(http, batch)
        assert body["model_version"] == "2"
        predicted = {o["name"]: o["data"] for o in body["outputs"]}["predict"]
        wrong = [
            {"id": i, "label": 1 - p}
            for i, p in zip(body["parameters"]["prediction_ids"], predicted, strict=True)
        ]
        assert http.post("/v1/models/cancer/feedback", json={"feedback": wrong}).status_code == 200
        fed = time.monotonic()

        # Time from the wrong labels to traffic answered by version 1.
        def on_v1() -> bool:
            try:
                return infer(http, batch[:1])["model_version"] == "1"
            except (httpx.HTTPError, AssertionError):
                return False

        wait_for("traffic on version 1", on_v1, timeout=90, interval=0.2)
        elapsed = time.monotonic() - fed
    print(
        f"\nfeedback → traffic on version 1: {elapsed:.1f} s "
        "(failureLimit 2 × interval 5 s + rollout)"
    )

    isvc = resources.wait_status(
        "inferenceservices", "cancer", lambda s: s.get("currentVersion") == 1, "rolled back"
    )
    status = isvc["status"]
    assert [(h["version"], h["reason"]) for h in status["history"]] == [
        (1, "Initial"),
        (2, "NewLatest"),
        (1, "RolledBack"),
    ]
    assert "accuracy" in status["history"][-1]["message"]
    assert resources.condition(status, "RolledBack")["status"] == "True"
    mv2 = resources.get("modelversions", "cancer-v2")
    assert mv2["status"]["phase"] == "Degraded"
    assert "accuracy" in resources.condition(mv2["status"], "Degraded")["message"]
    # `latest` never selects the degraded version again: still version 1 after the next
    # evaluation, and the pods answer from version 1.
    judged = status["lastEvaluation"]["time"]
    later = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: (s.get("lastEvaluation") or {}).get("time", "") > judged,
        "to evaluate again",
    )
    assert later["status"]["currentVersion"] == 1
    assert served_version(resources) == 1


def test_input_drift_triggers_retraining_on_new_data_and_promotes_it(
    start_operator: Any, resources: Any, cancer_csv: str, s3: Any, namespace: str, kube: Any
) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    shifted = frame.copy()
    features = [c for c in frame.columns if c != "target"]
    shifted[features] = shifted[features] * 3
    buffer = io.StringIO()
    shifted.to_csv(buffer, index=False)
    bucket, _, key = cancer_csv.removeprefix("s3://").partition("/")
    new_key = key.replace("breast-cancer", "breast-cancer-2026")
    s3.put_object(Bucket=bucket, Key=new_key, Body=buffer.getvalue().encode())

    start_operator()
    train(resources, "cancer-a", trainingjob(cancer_csv))
    resources.create(
        "inferenceservices",
        "InferenceService",
        "cancer",
        {
            "model": "cancer",
            "monitoring": {
                "intervalSeconds": 5,
                "metrics": [policy("input-drift", builtin="drift", max=0.25, minSamples=100)],
            },
            "onDegradation": "Retrain",
            "retrain": {
                "dataset": {"uri": f"s3://{bucket}/{new_key}", "target": "target"},
                "cooldownSeconds": 3600,
            },
        },
    )
    resources.wait_status("inferenceservices", "cancer", lambda s: s.get("phase") == "Ready", "up")
    batch, _ = rows(200, scale=3.0)
    with httpx.Client(base_url=address(kube, namespace), timeout=10) as http:
        for start in range(0, 200, 50):
            infer(http, batch[start : start + 50])

    isvc = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: s.get("currentVersion") == 2,
        "to promote the retrained version",
        timeout=150,
    )
    status = isvc["status"]
    assert status["history"][-1]["reason"] == "Promoted"
    assert resources.condition(status, "Retraining")["reason"] == "Promoted"
    tj = resources.get("trainingjobs", "cancer-retrain-1")
    assert tj["spec"]["dataset"]["uri"].endswith("breast-cancer-2026.csv")
    assert tj["metadata"]["ownerReferences"][0]["name"] == "cancer"
    mv2 = resources.get("modelversions", "cancer-v2")
    assert mv2["spec"]["source"]["trainingJob"] == "cancer-retrain-1"


def test_a_retrained_version_that_fails_its_gates_is_not_promoted(
    start_operator: Any, resources: Any, cancer_csv: str, namespace: str, kube: Any
) -> None:
    start_operator()
    train(resources, "cancer-a", trainingjob(cancer_csv))
    weak = trainingjob(cancer_csv)
    weak["estimator"] = {"className": "sklearn.dummy.DummyClassifier", "params": {}}
    resources.create(
        "inferenceservices",
        "InferenceService",
        "cancer",
        {
            "model": "cancer",
            "monitoring": {
                "intervalSeconds": 5,
                "metrics": [policy("input-drift", builtin="drift", max=0.25, minSamples=100)],
            },
            "onDegradation": "Retrain",
            "retrain": {"template": weak},
        },
    )
    resources.wait_status("inferenceservices", "cancer", lambda s: s.get("phase") == "Ready", "up")
    batch, _ = rows(200, scale=3.0)
    with httpx.Client(base_url=address(kube, namespace), timeout=10) as http:
        for start in range(0, 200, 50):
            infer(http, batch[start : start + 50])
    isvc = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: resources.condition(s, "Retraining").get("reason") == "NotPromoted",
        "to decline the retrained version",
        timeout=150,
    )
    message = resources.condition(isvc["status"], "Retraining")["message"]
    assert "accuracy" in message and "< 0.9" in message
    assert isvc["status"]["currentVersion"] == 1
    assert resources.get("modelversions", "cancer-v2")["status"]["phase"] == "Failed"


def test_a_breaching_promql_query_through_a_real_prometheus_rolls_back(
    start_operator: Any, resources: Any, cancer_csv: str, kube: Any, namespace: str, sandbox: Any
) -> None:
    start_operator()
    train(resources, "cancer-a", trainingjob(cancer_csv, 4))
    train(resources, "cancer-b", trainingjob(cancer_csv, 6))
    query = (
        'sum(mlops_requests_total{namespace="{{ namespace }}",model="{{ model }}",'
        'version="{{ version }}"})'
    )
    resources.create(
        "inferenceservices",
        "InferenceService",
        "cancer",
        {
            "model": "cancer",
            "monitoring": {
                "intervalSeconds": 5,
                "metrics": [
                    {
                        "name": "request-budget",
                        "prometheus": {"query": query},
                        "max": 10,
                        "failureLimit": 2,
                    }
                ],
            },
            "onDegradation": "Rollback",
        },
    )
    resources.wait_rolled_out("cancer", 2)
    batch, _ = rows(1)
    with httpx.Client(base_url=address(kube, namespace), timeout=10) as http:
        for _ in range(20):
            infer(http, batch)
    isvc = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: s.get("currentVersion") == 1,
        "to roll back on the PromQL breach",
        timeout=120,
    )
    history = isvc["status"]["history"]
    assert history[-1]["reason"] == "RolledBack"
    assert "request-budget" in history[-1]["message"]
    result = isvc["status"]["lastEvaluation"]["metrics"][0]
    assert result["name"] == "request-budget"
    assert resources.get("modelversions", "cancer-v2")["status"]["phase"] == "Degraded"


def test_scheduled_retraining_runs_on_its_cron_and_promotes_a_better_version(
    start_operator: Any, resources: Any, cancer_csv: str
) -> None:
    start_operator()
    # Version 1 is a decision stump (gated low); the scheduled retraining fits a forest.
    stump = {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 1}}
    weak = trainingjob(cancer_csv, estimator=stump, gates=[{"metric": "accuracy", "min": 0.5}])
    train(resources, "cancer-a", weak)
    resources.create(
        "inferenceservices",
        "InferenceService",
        "cancer",
        {
            "model": "cancer",
            "retrain": {"schedule": "* * * * *", "template": trainingjob(cancer_csv, 8)},
            "promotion": {"mustBeat": "accuracy"},
        },
    )
    isvc = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: (s.get("retraining") or {}).get("nextScheduled") and s.get("currentVersion") == 1,
        "to serve version 1 and plan the next scheduled run",
    )
    isvc = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: (s.get("retraining") or {}).get("count", 0) >= 1,
        "to start the scheduled retraining",
        timeout=90,
    )
    assert "scheduled" in isvc["status"]["retraining"]["lastResult"]
    tj = resources.wait_status(
        "trainingjobs", "cancer-retrain-1", lambda s: s.get("phase") == "Succeeded", "to train"
    )
    v1 = resources.get("modelversions", "cancer-v1")["spec"]["metrics"]["accuracy"]
    v2 = resources.get("modelversions", tj["status"]["modelVersion"])["spec"]["metrics"]["accuracy"]
    assert v2 > v1, (v1, v2)  # the forest beats the stump on the same held-out split
    isvc = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: s.get("currentVersion") == 2,
        "to promote the better version",
    )
    assert resources.condition(isvc["status"], "Retraining")["reason"] == "Promoted"
    assert isvc["status"]["history"][-1]["reason"] == "Promoted"
