"""A model brought without a manifest: only ``model.joblib`` and the digest from its
ModelVersion. The server reads what it needs from the estimator, says that drift cannot be
measured, and turns anything it cannot serve into a readiness error, never a crash loop."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
from serving_helpers import ServerFactory, ServerProcess, metric
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def bare(directory: Path, estimator: Any) -> tuple[str, str]:
    """``estimator`` dumped alone into ``directory``; its URI and digest."""
    directory.mkdir()
    joblib.dump(estimator, directory / "model.joblib")
    digest = "sha256:" + hashlib.sha256((directory / "model.joblib").read_bytes()).hexdigest()
    return f"file://{directory}/", digest


def not_ready_reason(server: ServerProcess, timeout: float = 20.0) -> str:
    """The readiness error once the first load attempt has failed."""
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{server.url}/v2/health/ready").json()
        assert body["ready"] is False, body
        if not body["error"].endswith("is loading") or time.monotonic() > deadline:
            return str(body["error"])
        time.sleep(0.05)


def test_an_array_fitted_classifier_serves_with_only_its_digest(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    x, y = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=1000).fit(x, y)
    uri, digest = bare(tmp_path / "iris", estimator)
    server = start_server("iris", uri, "--digest", digest, "--model-version", "1")

    metadata = httpx.get(f"{server.url}/v2/models/iris").json()
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert metadata["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [-1]}
    assert metadata["outputs"][1]["shape"] == [-1, 3]
    parameters = metadata["parameters"]
    assert parameters["task"] == "classification"
    assert parameters["features"] == "x0,x1,x2,x3"
    assert parameters["manifest"] is False
    assert parameters["drift_available"] is False
    assert "reference.json does not exist" in parameters["drift_unavailable_reason"]

    rows = x[::30]
    response = httpx.post(
        f"{server.url}/v2/models/iris/infer",
        json={
            "inputs": [
                {
                    "name": "x",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        },
    )
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["predict"]["data"] == estimator.predict(rows).tolist()
    assert outputs["predict_proba"]["shape"] == [len(rows), 3]
    v1 = httpx.post(
        f"{server.url}/v1/models/iris:predict",
        json={
            "instances": [
                dict(zip(["x0", "x1", "x2", "x3"], r, strict=True)) for r in rows.tolist()
            ]
        },
    )
    assert v1.json()["predictions"] == estimator.predict(rows).tolist()

    metrics = httpx.get(f"{server.url}/metrics").text
    assert metric(metrics, "mlops_drift_available", model="iris", version="1") == 0
    assert metric(metrics, "mlops_model_ready") == 1
    assert metric(metrics, "mlops_drift_psi_max") is None, "no PSI of 0 that reads as no drift"
    assert "no manifest.json: serving LogisticRegression" in server.output()


def test_a_dataframe_fitted_pipeline_takes_rows_by_column_name(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    data = load_diabetes(as_frame=True)
    pipeline = make_pipeline(
        StandardScaler(), RandomForestRegressor(n_estimators=10, random_state=0)
    )
    pipeline.fit(data.data, data.target)
    uri, digest = bare(tmp_path / "diabetes", pipeline)
    server = start_server("diabetes", uri, "--digest", digest)

    metadata = httpx.get(f"{server.url}/v2/models/diabetes").json()
    assert metadata["parameters"]["features"] == ",".join(data.data.columns)
    assert metadata["parameters"]["task"] == "regression"
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    rows = data.data.iloc[:5]
    response = httpx.post(
        f"{server.url}/v1/models/diabetes:predict",
        json={"instances": rows.to_dict(orient="records")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pipeline.predict(rows).tolist()
    feedback = httpx.post(
        f"{server.url}/v1/models/diabetes/feedback",
        json={"feedback": [{"id": i, "label": 100.0} for i in response.json()["prediction_ids"]]},
    )
    assert feedback.status_code == 200 and feedback.json()["samples"] == 5


def test_without_a_manifest_the_digest_is_required(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    x, y = load_iris(return_X_y=True)
    uri, _ = bare(tmp_path / "iris", LogisticRegression(max_iter=1000).fit(x, y))
    server = start_server("iris", uri, ready=False)
    reason = not_ready_reason(server)
    assert "manifest.json does not exist" in reason and "no --digest was given" in reason
    assert "cannot be verified, so it is not loaded" in reason


def test_an_unfitted_estimator_is_a_readiness_error_not_a_crash(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    uri, digest = bare(tmp_path / "raw", LogisticRegression())
    server = start_server(
        "raw", uri, "--digest", digest, "--load-retry-seconds", "0.2", ready=False
    )
    reason = not_ready_reason(server)
    assert "holds a LogisticRegression that was never fitted" in reason
    assert server.proc.poll() is None
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    assert (
        httpx.post(f"{server.url}/v1/models/raw:predict", json={"instances": [[1]]}).status_code
        == 503
    )
    assert server.output().count("never fitted") == 1


def test_a_pickle_that_is_not_a_model_is_a_readiness_error(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    uri, digest = bare(tmp_path / "dict", {"coef": [1.0, 2.0]})
    server = start_server("dict", uri, "--digest", digest, ready=False)
    assert "holds a builtins.dict, not a model" in not_ready_reason(server)
