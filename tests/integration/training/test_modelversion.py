"""ModelVersions applied by hand (a model trained elsewhere) get the same checks."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import joblib
import kubernetes
import pytest

pytestmark = pytest.mark.timeout(120)

BUCKET = "mlops-artifacts"


def upload_model(s3: Any, prefix: str) -> str:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    buffer = io.BytesIO()
    joblib.dump(DecisionTreeClassifier(max_depth=3).fit(x, y), buffer)
    data = buffer.getvalue()
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/model.joblib", Body=data)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def mv_spec(prefix: str, digest: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "iris",
        "version": 7,
        "artifact": {"uri": f"s3://{BUCKET}/{prefix}/", "digest": digest},
        "metrics": {"accuracy": 0.95},
        "gates": [{"metric": "accuracy", "min": 0.9}],
    }
    spec.update(extra)
    return spec


def test_hand_registered_model_is_verified_and_ready(
    start_operator: Any, resources: Any, s3: Any, namespace: str
) -> None:
    digest = upload_model(s3, f"{namespace}/iris/7")
    start_operator()
    resources.create(
        "modelversions", "ModelVersion", "iris-v7", mv_spec(f"{namespace}/iris/7", digest)
    )
    mv = resources.wait_status(
        "modelversions", "iris-v7", lambda s: s.get("phase") == "Ready", "Ready"
    )
    assert resources.condition(mv["status"], "ArtifactVerified")["reason"] == "DigestMatch"
    assert mv["status"]["gateResults"] == [
        {"metric": "accuracy", "value": 0.95, "min": 0.9, "passed": True}
    ]


def test_digest_mismatch_fails_and_says_so(
    start_operator: Any, resources: Any, s3: Any, namespace: str
) -> None:
    upload_model(s3, f"{namespace}/iris/8")
    start_operator()
    wrong = "sha256:" + "0" * 64
    resources.create(
        "modelversions", "ModelVersion", "iris-v8", mv_spec(f"{namespace}/iris/8", wrong)
    )
    mv = resources.wait_status(
        "modelversions", "iris-v8", lambda s: s.get("phase") == "Failed", "to fail"
    )
    verified = resources.condition(mv["status"], "ArtifactVerified")
    assert verified["status"] == "False"
    assert verified["reason"] == "DigestMismatch"
    assert wrong in verified["message"]


def test_version_missing_its_gates_is_registered_but_not_ready(
    start_operator: Any, resources: Any, s3: Any, namespace: str
) -> None:
    digest = upload_model(s3, f"{namespace}/iris/9")
    start_operator()
    resources.create(
        "modelversions",
        "ModelVersion",
        "iris-v9",
        mv_spec(f"{namespace}/iris/9", digest, metrics={"accuracy": 0.71}),
    )
    mv = resources.wait_status(
        "modelversions", "iris-v9", lambda s: s.get("phase") == "Failed", "to fail its gates"
    )
    gates = resources.condition(mv["status"], "GatesPassed")
    assert gates["reason"] == "GateFailed"
    assert "accuracy 0.71 < 0.9" in gates["message"]
    assert resources.condition(mv["status"], "ArtifactVerified")["status"] == "True"


def test_model_version_spec_cannot_be_changed(
    resources: Any, crd_api: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    resources.create(
        "modelversions",
        "ModelVersion",
        "iris-v3",
        mv_spec("x/iris/3", "sha256:" + "a" * 64, version=3),
    )
    with pytest.raises(kubernetes.client.ApiException) as exc:
        crd_api.patch_namespaced_custom_object(
            "mlops.dev",
            "v1alpha1",
            namespace,
            "modelversions",
            "iris-v3",
            {"spec": {"metrics": {"accuracy": 0.99}}},
        )
    assert exc.value.status == 422
    assert "spec is immutable" in exc.value.body
