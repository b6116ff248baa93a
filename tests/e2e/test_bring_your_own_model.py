"""Models trained elsewhere, served for real: a bare ``model.joblib`` with a ModelVersion
written by hand, then a second version brought with ``mlops-operator register`` (with its
training data's statistics, so drift is measured); an InferenceService on ``latest`` serves
the first and rolls forward to the second."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlops_sandbox.cluster import BUCKET, Sandbox
from mlops_sandbox.process import wait_for

pytestmark = pytest.mark.timeout(300)

CLI = str(Path(sys.executable).parent / "mlops-operator")


def infer(http: httpx.Client, rows: Any) -> list[Any]:
    response = http.post(
        "/v2/models/iris/infer",
        json={
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    data: list[Any] = response.json()["outputs"][0]["data"]
    return data


def test_a_bare_model_by_hand_then_a_registered_one_are_served_in_turn(
    sandbox: Sandbox,
    start_operator: Any,
    resources: Any,
    s3: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    iris = load_iris(as_frame=True)
    x = iris.data.to_numpy()
    first = LogisticRegression(max_iter=1000).fit(x, iris.target)
    buffer = io.BytesIO()
    joblib.dump(first, buffer)
    # Version 1: only model.joblib, wherever the user put it, and its digest by hand.
    prefix = f"brought/{namespace}/iris-1/"
    s3.put_object(Bucket=BUCKET, Key=prefix + "model.joblib", Body=buffer.getvalue())
    digest = "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()

    start_operator()
    resources.create(
        "modelversions",
        "ModelVersion",
        "iris-v1",
        {
            "model": "iris",
            "version": 1,
            "artifact": {"uri": f"s3://{BUCKET}/{prefix}", "digest": digest},
        },
    )
    resources.wait_status("modelversions", "iris-v1", lambda s: s.get("phase") == "Ready", "Ready")
    resources.create("inferenceservices", "InferenceService", "iris", {"model": "iris"})
    isvc = resources.wait_status(
        "inferenceservices", "iris", lambda s: s.get("phase") == "Ready", "to be Ready"
    )
    assert isvc["status"]["currentVersion"] == 1
    base = wait_for(
        "the predictor's address", lambda: sandbox.service_address(namespace, "iris-predictor")
    )
    with httpx.Client(base_url=base, timeout=10) as http:
        metadata = http.get("/v2/models/iris").json()
        assert metadata["parameters"]["features"] == "x0,x1,x2,x3"
        assert metadata["parameters"]["manifest"] is False
        assert metadata["parameters"]["drift_available"] is False
        assert infer(http, x[::25]) == first.predict(x[::25]).tolist()

    # Version 2: a pipeline fitted on named columns, registered with the command.
    second = make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=2, random_state=0))
    second.fit(iris.data, iris.target)
    path = tmp_path / "model.joblib"
    joblib.dump(second, path)
    iris.data.to_csv(tmp_path / "train.csv", index=False)
    result = subprocess.run(
        [
            CLI,
            "register",
            str(path),
            "--model",
            "iris",
            "-n",
            namespace,
            "--reference-data",
            str(tmp_path / "train.csv"),
        ],  # fmt: skip
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "modelversion.mlops.dev/iris-v2 created" in result.stdout

    resources.wait_rolled_out("iris", 2)
    with httpx.Client(base_url=base, timeout=10) as http:
        metadata = http.get("/v2/models/iris").json()
        assert metadata["versions"] == ["2"]
        assert metadata["parameters"]["manifest"] is True
        assert metadata["parameters"]["features"] == ",".join(iris.data.columns)
        assert metadata["parameters"]["drift_available"] is True, "from --reference-data"
        rows = iris.data.iloc[::25]
        v1 = http.post(
            "/v1/models/iris:predict", json={"instances": rows.to_dict(orient="records")}
        )
        assert v1.status_code == 200, v1.text
        assert v1.json()["predictions"] == second.predict(rows).tolist()
