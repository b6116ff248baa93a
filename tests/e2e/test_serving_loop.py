"""The serving path for real: a TrainingJob trains, an InferenceService serves `latest`
through a Deployment whose pods are `mlops-operator serve` processes, and a client talks to
it over HTTP through the sandbox's Service address, with the protocols real clients speak."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import httpx
import joblib
import kubernetes
import numpy as np
import pytest

from mlops_sandbox.process import wait_for

pytestmark = pytest.mark.timeout(300)

ADDRESS = "sandbox.mlops.dev/address"
ADDRESSES = "sandbox.mlops.dev/addresses"


def trainingjob(dataset: str, depth: int) -> dict[str, Any]:
    return {
        "model": "cancer",
        "dataset": {"uri": dataset, "target": "target"},
        "estimator": {
            "className": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 20, "max_depth": depth},
        },
        "gates": [{"metric": "accuracy", "min": 0.9}],
        "backoffLimit": 0,
    }


def service_address(kube: Any, namespace: str, name: str, port: str | None = None) -> str:
    """The sandbox's address of a Service: its first port's, or the named ``port``'s."""
    core = kubernetes.client.CoreV1Api(kube)

    def probe() -> str | None:
        annotations = core.read_namespaced_service(name, namespace).metadata.annotations or {}
        if port is None:
            return annotations.get(ADDRESS)
        address: str | None = json.loads(annotations.get(ADDRESSES, "{}")).get(port)
        return address

    return wait_for(f"Service {name} to get a sandbox address", probe, timeout=30)


def load_model(s3: Any, artifact_uri: str) -> Any:
    bucket, _, prefix = artifact_uri.removeprefix("s3://").partition("/")
    data = s3.get_object(Bucket=bucket, Key=prefix + "model.joblib")["Body"].read()
    return joblib.load(io.BytesIO(data)), "sha256:" + hashlib.sha256(data).hexdigest()


def test_train_serve_predict_feedback_and_roll_forward(
    start_operator: Any, resources: Any, cancer_csv: str, s3: Any, kube: Any, namespace: str
) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    features = list(data.feature_names)
    rows = data.data.iloc[:16]
    labels = data.target.iloc[:16].tolist()

    start_operator()
    resources.create("trainingjobs", "TrainingJob", "cancer-a", trainingjob(cancer_csv, 4))
    resources.wait_status("trainingjobs", "cancer-a", lambda s: s.get("phase") == "Succeeded", "ok")
    resources.create("inferenceservices", "InferenceService", "cancer", {"model": "cancer"})
    isvc = resources.wait_status(
        "inferenceservices", "cancer", lambda s: s.get("phase") == "Ready", "to be Ready"
    )
    assert isvc["status"]["currentVersion"] == 1
    mv = resources.get("modelversions", "cancer-v1")
    model, digest = load_model(s3, mv["spec"]["artifact"]["uri"])
    assert digest == mv["spec"]["artifact"]["digest"]
    base = service_address(kube, namespace, "cancer-predictor")

    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/v2/health/ready").status_code == 200
        meta = http.get("/v2/models/cancer").json()
        assert meta["inputs"][0]["shape"] == [-1, len(features)]

        # Open Inference Protocol v2, one tensor of rows, both outputs.
        response = http.post(
            "/v2/models/cancer/infer",
            json={
                "id": "req-1",
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [len(rows), len(features)],
                        "datatype": "FP64",
                        "data": rows.to_numpy().ravel().tolist(),
                    }
                ],
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == "req-1"
        assert body["model_version"] == "1"
        outputs = {o["name"]: o for o in body["outputs"]}
        expected = model.predict(rows)
        assert outputs["predict"]["data"] == expected.tolist()
        proba = np.array(outputs["predict_proba"]["data"]).reshape(len(rows), -1)
        assert np.allclose(proba, model.predict_proba(rows))
        ids = body["parameters"]["prediction_ids"]
        assert len(ids) == len(rows)

        # KServe v1, rows as objects keyed by feature name.
        instances = [dict(zip(features, row, strict=True)) for row in rows.to_numpy().tolist()]
        v1 = http.post("/v1/models/cancer:predict", json={"instances": instances})
        assert v1.status_code == 200, v1.text
        assert v1.json()["predictions"] == expected.tolist()

        # Feedback with the true labels → online accuracy, also in /metrics.
        feedback = http.post(
            "/v1/models/cancer/feedback",
            json={"feedback": [{"id": i, "label": y} for i, y in zip(ids, labels, strict=True)]},
        )
        assert feedback.status_code == 200, feedback.text
        assert feedback.json()["accepted"] == len(rows)
        accuracy = float(np.mean(expected == np.array(labels)))
        assert feedback.json()["accuracy"] == pytest.approx(accuracy)
        metrics = http.get("/metrics").text
        assert 'mlops_online_accuracy{model="cancer",version="1"}' in metrics
        assert "mlops_requests_total" in metrics

    # The Open Inference Protocol over gRPC, through the Service's `grpc` port.
    import tritonclient.grpc as triton_grpc

    grpc_target = service_address(kube, namespace, "cancer-predictor", "grpc")
    client = triton_grpc.InferenceServerClient(grpc_target.removeprefix("http://"))
    assert client.is_model_ready("cancer", "1")
    tensor = triton_grpc.InferInput("input-0", [len(rows), len(features)], "FP64")
    tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64))
    assert client.infer("cancer", [tensor]).as_numpy("predict").tolist() == expected.tolist()
    client.close()

    resources.wait_status(
        "modelversions", "cancer-v1", lambda s: s.get("servedBy") == ["cancer"], "served"
    )

    # A second training run becomes `latest`: the service rolls forward.
    resources.create("trainingjobs", "TrainingJob", "cancer-b", trainingjob(cancer_csv, 6))
    isvc = resources.wait_rolled_out("cancer", 2)
    assert [(h["version"], h["reason"]) for h in isvc["status"]["history"]] == [
        (1, "Initial"),
        (2, "NewLatest"),
    ]
    with httpx.Client(base_url=base, timeout=10) as http:
        response = http.post(
            "/v2/models/cancer/infer",
            json={
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [1, len(features)],
                        "datatype": "FP64",
                        "data": rows.to_numpy()[0].tolist(),
                    }
                ]
            },
        )
        assert response.json()["model_version"] == "2"


def test_tampered_artifact_keeps_the_service_unready_with_the_reason(
    start_operator: Any, resources: Any, cancer_csv: str, s3: Any, namespace: str
) -> None:
    start_operator()
    resources.create("trainingjobs", "TrainingJob", "cancer-a", trainingjob(cancer_csv, 3))
    tj = resources.wait_status(
        "trainingjobs", "cancer-a", lambda s: s.get("phase") == "Succeeded", "to succeed"
    )
    resources.wait_status("modelversions", "cancer-v1", lambda s: s.get("phase") == "Ready", "ok")
    # Someone overwrites the verified artifact afterwards.
    bucket, _, prefix = tj["status"]["artifactUri"].removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=prefix + "model.joblib", Body=b"not the model")

    resources.create("inferenceservices", "InferenceService", "cancer", {"model": "cancer"})
    try:
        isvc = resources.wait_status(
            "inferenceservices",
            "cancer",
            lambda s: "digest" in resources.condition(s, "Ready").get("message", ""),
            "to report the digest mismatch",
            timeout=60,
        )
    except TimeoutError:
        pytest.fail(f"no digest mismatch reported: {resources.get('inferenceservices', 'cancer')}")
    ready = resources.condition(isvc["status"], "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "PredictorNotReady"
    assert isvc["status"]["readyReplicas"] == 0
