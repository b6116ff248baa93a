"""A per-class online recall policy through the whole loop: real operator, sandbox pods and
HTTP. Feedback that the model misses class 1 breaches the policy, and the service rolls back;
the status shows the value and the samples behind it."""

from __future__ import annotations

from typing import Any

import httpx
import kubernetes
import pytest

from mlops_sandbox.process import wait_for

pytestmark = pytest.mark.timeout(300)

ADDRESS = "sandbox.mlops.dev/address"
POLICY = {
    "name": "recall-benign",
    "builtin": "recall",
    "class": "1",
    "min": 0.8,
    "minSamples": 20,
    "failureLimit": 2,
}


def train(resources: Any, name: str, dataset: str, depth: int) -> None:
    resources.create(
        "trainingjobs",
        "TrainingJob",
        name,
        {
            "model": "cancer",
            "dataset": {"uri": dataset, "target": "target"},
            "estimator": {
                "className": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 20, "max_depth": depth},
            },
            "backoffLimit": 0,
        },
    )
    tj = resources.wait_status(
        "trainingjobs", name, lambda s: s.get("phase") in ("Succeeded", "Failed"), "to finish"
    )
    assert tj["status"]["phase"] == "Succeeded", tj["status"]
    resources.wait_status(
        "modelversions", tj["status"]["modelVersion"], lambda s: s.get("phase") == "Ready", "ok"
    )


def test_a_breached_per_class_recall_rolls_back_and_the_status_shows_value_and_samples(
    start_operator: Any, resources: Any, cancer_csv: str, kube: Any, namespace: str
) -> None:
    from sklearn.datasets import load_breast_cancer

    start_operator()
    train(resources, "cancer-a", cancer_csv, 4)
    resources.create(
        "inferenceservices",
        "InferenceService",
        "cancer",
        {
            "model": "cancer",
            "onDegradation": "Rollback",
            "monitoring": {"intervalSeconds": 5, "metrics": [POLICY]},
        },
    )
    resources.wait_status("inferenceservices", "cancer", lambda s: s.get("phase") == "Ready", "up")
    train(resources, "cancer-b", cancer_csv, 6)
    resources.wait_rolled_out("cancer", 2)
    core = kubernetes.client.CoreV1Api(kube)
    base = wait_for(
        "the predictor Service's address",
        lambda: (
            core.read_namespaced_service("cancer-predictor", namespace).metadata.annotations or {}
        ).get(ADDRESS),
        timeout=30,
    )
    rows = load_breast_cancer().data[:50].tolist()  # mostly malignant (class 0)
    with httpx.Client(base_url=base, timeout=10) as http:
        body = http.post("/v1/models/cancer:predict", json={"instances": rows}).json()
        predicted = body["predictions"]
        # The ground truth says every row is benign: class 1's recall is the share predicted 1.
        recall = predicted.count(1) / len(predicted)
        assert recall < 0.8
        feedback = [{"id": i, "label": 1} for i in body["prediction_ids"]]
        answer = http.post("/v1/models/cancer/feedback", json={"feedback": feedback}).json()
        assert answer["accepted"] == 50

    breached = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: any(
            m.get("verdict") == "Breached"
            for m in (s.get("lastEvaluation") or {}).get("metrics", [])
        ),
        "a breached evaluation",
    )
    result = breached["status"]["lastEvaluation"]["metrics"][0]
    assert result["name"] == "recall-benign"
    assert result["value"] == pytest.approx(recall)
    assert result["samples"] == 50

    rolled = resources.wait_status(
        "inferenceservices", "cancer", lambda s: s.get("currentVersion") == 1, "rolled back"
    )
    status = rolled["status"]
    assert [(h["version"], h["reason"]) for h in status["history"]][-1] == (1, "RolledBack")
    assert "recall-benign" in status["history"][-1]["message"]
    assert resources.condition(status, "RolledBack")["status"] == "True"
    mv2 = resources.get("modelversions", "cancer-v2")
    assert "recall-benign" in resources.condition(mv2["status"], "Degraded")["message"]
