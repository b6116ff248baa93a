"""``mlops-operator serve`` over real HTTP: v2 and v1 predictions, metadata, feedback,
metrics and the refusal of bad input."""

from __future__ import annotations

from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from serving_helpers import Artifact, ServerFactory, ServerProcess, metric


def iris_rows(n: int = 6) -> pd.DataFrame:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    return frame.drop(columns="target").iloc[:: 150 // n].head(n)


def expected(model: Artifact, rows: pd.DataFrame) -> tuple[list[Any], np.ndarray]:
    estimator = joblib.load(model.path / "model.joblib")
    return estimator.predict(rows).tolist(), estimator.predict_proba(rows)


def test_v2_infer_matches_the_model_with_probabilities(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    rows = iris_rows()
    labels, proba = expected(iris_model, rows)
    response = httpx.post(
        f"{iris_server.url}/v2/models/iris/versions/3/infer",
        json={
            "id": "req-1",
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.to_numpy().tolist(),
                }
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "iris"
    assert body["model_version"] == "3"
    assert body["id"] == "req-1"
    predict, predict_proba = body["outputs"]
    assert predict == {"name": "predict", "shape": [6], "datatype": "INT64", "data": labels}
    assert predict_proba["name"] == "predict_proba"
    assert predict_proba["shape"] == [6, 3]
    assert predict_proba["datatype"] == "FP64"
    assert np.allclose(np.reshape(predict_proba["data"], (6, 3)), proba)
    ids = body["parameters"]["prediction_ids"]
    assert len(set(ids)) == 6
    assert response.headers["x-prediction-ids"] == ",".join(ids)
    assert response.headers["x-request-id"]


def test_v2_infer_takes_one_input_per_feature(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    rows = iris_rows(4)
    labels, _ = expected(iris_model, rows)
    inputs = [
        {"name": name, "shape": [4, 1] if i % 2 else [4], "datatype": "FP32", "data": col.tolist()}
        for i, (name, col) in enumerate(rows.items())
    ]
    response = httpx.post(
        f"{iris_server.url}/v2/models/iris/infer",
        json={"inputs": inputs},
        headers={"X-Request-Id": "abc"},
    )
    assert response.status_code == 200, response.text
    assert [o["name"] for o in response.json()["outputs"]] == ["predict"]
    assert response.json()["outputs"][0]["data"] == labels
    assert response.json()["id"] == "abc"
    assert response.headers["x-request-id"] == "abc"


def test_v1_predict_takes_arrays_and_objects(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    rows = iris_rows()
    labels, _ = expected(iris_model, rows)
    for instances in (rows.to_numpy().tolist(), rows.to_dict(orient="records")):
        response = httpx.post(
            f"{iris_server.url}/v1/models/iris:predict", json={"instances": instances}
        )
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == labels
        assert len(response.json()["prediction_ids"]) == 6


def test_metadata_and_health(iris_server: ServerProcess) -> None:
    url = iris_server.url
    server = httpx.get(f"{url}/v2").json()
    assert server["name"] == "mlops-operator"
    assert server["extensions"] == ["binary_tensor_data"]
    assert "version" in server
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v2/models/iris/ready").status_code == 200
    assert httpx.get(f"{url}/v2/models/iris/versions/3/ready").status_code == 200
    metadata = httpx.get(f"{url}/v2/models/iris").json()
    assert metadata == {
        "name": "iris",
        "versions": ["3"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [-1, 3],
                "parameters": {"classes": [0, 1, 2]},
            },
        ],
        "parameters": {
            "task": "classification",
            "features": "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)",
            "manifest": True,
            "drift_available": True,
            "drift_unavailable_reason": "",
            "predict_path": "linear",
            "predict_path_reason": "",
        },
    }
    assert httpx.get(f"{url}/v2/models/iris/versions/3").json() == metadata
    assert httpx.get(f"{url}/v1/models").json() == {"models": ["iris"]}
    assert httpx.get(f"{url}/v1/models/iris").json() == {"name": "iris", "ready": True}


def test_feedback_by_id_and_by_rows_drives_online_accuracy(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    url = iris_server.url
    rows = iris_rows()
    labels, _ = expected(iris_model, rows)
    before = httpx.get(f"{url}/metrics").text
    predicted = httpx.post(
        f"{url}/v1/models/iris:predict", json={"instances": rows.to_numpy().tolist()}
    ).json()
    ids = predicted["prediction_ids"]
    # Every label right except the first one.
    truth = [(labels[0] + 1) % 3, *labels[1:]]
    feedback = [{"id": i, "label": y} for i, y in zip(ids, truth, strict=True)]
    response = httpx.post(
        f"{url}/v1/models/iris/feedback",
        json={"feedback": [*feedback, {"id": "ffff-00-0", "label": 1}]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 6
    assert body["unknown_ids"] == ["ffff-00-0"]

    again = httpx.post(f"{url}/v1/models/iris/feedback", json={"feedback": feedback[:1]}).json()
    assert again["accepted"] == 0, "a prediction takes one label only"

    by_rows = httpx.post(
        f"{url}/v1/models/iris/feedback",
        json={"instances": rows.to_numpy().tolist(), "labels": labels},
    ).json()
    assert by_rows["accepted"] == 6

    after = httpx.get(f"{url}/metrics").text
    labelled = lambda text, name: metric(text, name, model="iris", version="3") or 0.0  # noqa: E731
    total = labelled(after, "mlops_feedback_total") - labelled(before, "mlops_feedback_total")
    correct = labelled(after, "mlops_feedback_correct_total") - labelled(
        before, "mlops_feedback_correct_total"
    )
    assert (total, correct) == (12, 11)
    samples = labelled(after, "mlops_labelled_samples")
    assert samples == by_rows["samples"]
    assert labelled(after, "mlops_online_accuracy") == pytest.approx(by_rows["accuracy"])
    assert metric(after, "mlops_online_mae") is None


def test_metrics_count_requests_batches_classes_and_drift(iris_server: ServerProcess) -> None:
    url = iris_server.url
    before = httpx.get(f"{url}/metrics").text
    rows = iris_rows().to_numpy().tolist()
    for _ in range(3):
        assert httpx.post(f"{url}/v1/models/iris:predict", json={"instances": rows}).is_success
    assert httpx.post(f"{url}/v1/models/iris:predict", json={"instances": []}).status_code == 400
    after = httpx.get(f"{url}/metrics").text

    def delta(name: str, **labels: str) -> float:
        labels = {"model": "iris", "version": "3", **labels}
        return (metric(after, name, **labels) or 0.0) - (metric(before, name, **labels) or 0.0)

    assert delta("mlops_requests_total", protocol="v1", code="200") == 3
    assert delta("mlops_requests_total", protocol="v1", code="400") == 1
    assert delta("mlops_request_duration_seconds_count", protocol="v1") == 4
    assert delta("mlops_batch_size_sum") == 18
    assert sum(delta("mlops_predictions_total", **{"class": c}) for c in "012") == 18
    assert metric(after, "mlops_model_ready", model="iris", version="3") == 1
    assert (metric(after, "mlops_drift_window_rows", model="iris", version="3") or 0) > 0
    psi = metric(after, "mlops_feature_drift_psi", feature="petal length (cm)")
    assert psi is not None and psi >= 0
    assert metric(after, "mlops_drift_psi_max", model="iris", version="3") is not None


def test_regression_feedback_reports_mae(
    start_server: ServerFactory, diabetes_model: Artifact
) -> None:
    from sklearn.datasets import load_diabetes

    server = start_server("diabetes", diabetes_model.uri)
    frame = load_diabetes(as_frame=True).frame.head(5)
    rows = frame.drop(columns="target")
    estimator = joblib.load(diabetes_model.path / "model.joblib")
    response = httpx.post(
        f"{server.url}/v2/models/diabetes/infer",
        json={
            "inputs": [
                {
                    "name": "x",
                    "shape": [5, 10],
                    "datatype": "FP64",
                    "data": rows.to_numpy().ravel().tolist(),
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["datatype"] == "FP64"
    assert np.allclose(output["data"], estimator.predict(rows))
    ids = response.json()["parameters"]["prediction_ids"]
    truth = frame["target"].tolist()
    body = httpx.post(
        f"{server.url}/v1/models/diabetes/feedback",
        json={"feedback": [{"id": i, "label": y} for i, y in zip(ids, truth, strict=True)]},
    ).json()
    mae = float(np.mean(np.abs(np.asarray(output["data"]) - truth)))
    assert body["accepted"] == 5
    assert body["mae"] == pytest.approx(mae)
    assert "accuracy" not in body
    text = httpx.get(f"{server.url}/metrics").text
    assert metric(text, "mlops_online_mae") == pytest.approx(mae)
    assert metric(text, "mlops_online_accuracy") is None
    assert httpx.get(f"{server.url}/v2/models/diabetes").json()["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [-1]}
    ]


FEATURES = 4
ROW = [5.1, 3.5, 1.4, 0.2]


def v2(**tensor: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "shape": [1, FEATURES], "datatype": "FP64", "data": ROW, **tensor}]
    }


BAD_REQUESTS = [
    # (method, path, body (bytes or JSON), status, part of the error message)
    ("POST", "/v2/models/iris/infer", b"{not json", 400, "malformed JSON"),
    ("POST", "/v2/models/iris/infer", b"", 400, "body is empty"),
    ("POST", "/v2/models/iris/infer", [1, 2], 400, "must be a JSON object"),
    ("POST", "/v2/models/iris/infer", {"inputs": []}, 400, "non-empty array"),
    ("POST", "/v2/models/iris/infer", v2(shape=[1, 3], data=ROW[:3]), 400, "takes 4"),
    ("POST", "/v2/models/iris/infer", v2(data=ROW[:3]), 400, "3 data values"),
    ("POST", "/v2/models/iris/infer", v2(data=[1, "a", 2, 3]), 400, "holds strings"),
    ("POST", "/v2/models/iris/infer", v2(data=[1, None, 2, 3]), 400, "missing value"),
    ("POST", "/v2/models/iris/infer", v2(datatype="BF16"), 400, "unsupported datatype"),
    (
        "POST",
        "/v2/models/iris/infer",
        v2(datatype="BYTES", data=["1", "x", "2", "3"]),
        400,
        "not a number",
    ),
    ("POST", "/v2/models/iris/infer", v2(datatype="INT64", data=[1.5, 2, 3, 4]), 400, "fractions"),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"data": [1e999]}]}', 400, "infinity"),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"data": [NaN]}]}', 400, "malformed JSON"),
    ("POST", "/v2/models/iris/infer", v2(shape=[0, 4], data=[]), 400, "no rows"),
    ("POST", "/v2/models/iris/infer", v2(data=[[1, 2], [3]]), 400, "ragged"),
    (
        "POST",
        "/v2/models/iris/infer",
        {**v2(), "outputs": [{"name": "decision_function"}]},
        400,
        "unknown output",
    ),
    ("POST", "/v2/models/iris/infer", {"inputs": [{"data": [1]}]}, 400, "needs a 'name'"),
    ("POST", "/v2/models/nope/infer", v2(), 404, "not served here"),
    ("POST", "/v2/models/iris/versions/9/infer", v2(), 404, "no version '9'"),
    ("GET", "/v2/models/nope", None, 404, "not served here"),
    ("GET", "/v2/models/iris/versions/2/ready", None, 404, "no version"),
    ("GET", "/v1/models/nope", None, 404, "not served here"),
    ("GET", "/v3/anything", None, 404, "no route"),
    ("GET", "/v2/models/iris/infer", None, 405, "no route"),
    ("POST", "/v1/models/iris:predict", {"instances": [[1, 2]]}, 400, "takes 4 features"),
    ("POST", "/v1/models/iris:predict", {"instances": [{"a": 1}]}, 400, "unknown features 'a'"),
    ("POST", "/v1/models/iris:predict", {"rows": [ROW]}, 400, "needs 'instances'"),
    ("POST", "/v1/models/iris:predict", {"instances": [[1, 2, 3, {}]]}, 400, "expected numbers"),
    ("POST", "/v1/models/nope:predict", {"instances": [ROW]}, 404, "not served here"),
    ("POST", "/v1/models/iris/feedback", {"feedback": [{"id": "x"}]}, 400, "no 'label'"),
    ("POST", "/v1/models/iris/feedback", {"instances": [ROW]}, 400, "one label per instance"),
    ("POST", "/v1/models/iris/feedback", {}, 400, "needs 'feedback'"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_4xx_with_the_reason(
    iris_server: ServerProcess, method: str, path: str, body: Any, status: int, message: str
) -> None:
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    response = httpx.request(method, iris_server.url + path, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_a_body_over_the_limit_is_refused_whether_declared_or_streamed(
    iris_server: ServerProcess,
) -> None:
    big = b'{"instances": [' + b"[1, 2, 3, 4]," * 10000 + b"[1, 2, 3, 4]]}"
    url = f"{iris_server.url}/v1/models/iris:predict"
    declared = httpx.post(url, content=big)
    assert declared.status_code == 413
    assert "limit is 65536" in declared.json()["error"]

    def chunks() -> Any:
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    streamed = httpx.post(url, content=chunks())
    assert streamed.status_code == 413
    assert "exceeds the limit" in streamed.json()["error"]
    assert httpx.post(url, json={"instances": [ROW]}).status_code == 200
