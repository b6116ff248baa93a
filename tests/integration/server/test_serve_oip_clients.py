"""The Open Inference Protocol as its reference clients speak it: tritonclient over HTTP
(binary tensors, its default, and JSON) and over gRPC, against ``mlops-operator serve`` as a
real process."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from serving_helpers import Artifact, ServerFactory, ServerProcess, metric
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException


def iris_rows(n: int = 6) -> pd.DataFrame:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    return frame.drop(columns="target").iloc[:: 150 // n].head(n)


def diabetes_rows(n: int = 5) -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame.drop(columns="target").head(n)


def estimator(model: Artifact) -> Any:
    return joblib.load(model.path / "model.joblib")


def http_client(server: ServerProcess) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(server.url.removeprefix("http://"))


def http_input(name: str, values: np.ndarray, datatype: str, *, binary: bool = True) -> Any:
    tensor = triton_http.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=binary)
    return tensor


def grpc_input(name: str, values: np.ndarray, datatype: str) -> Any:
    tensor = triton_grpc.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values)
    return tensor


def test_tritonclient_http_defaults_send_and_get_binary_tensors(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    rows = iris_rows()
    x = rows.to_numpy(dtype=np.float32)
    client = http_client(iris_server)
    result = client.infer("iris", [http_input("input-0", x, "FP32")], model_version="3")
    labels = estimator(iris_model).predict(pd.DataFrame(x.astype(np.float64), columns=rows.columns))
    predict = result.as_numpy("predict")
    assert predict.dtype == np.int64
    assert predict.tolist() == labels.tolist()
    response = result.get_response()
    # No outputs named: tritonclient asks for binary_data_output, so predict comes as bytes.
    assert response["outputs"] == [
        {
            "name": "predict",
            "shape": [6],
            "datatype": "INT64",
            "parameters": {"binary_data_size": 48},
        }
    ]
    assert len(set(response["parameters"]["prediction_ids"])) == 6


def test_tritonclient_http_mixes_json_and_binary_tensors_per_tensor(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    rows = iris_rows(4)
    client = http_client(iris_server)
    inputs = [
        http_input(name, column.to_numpy()[:, None], "FP64", binary=i % 2 == 0)
        for i, (name, column) in enumerate(rows.items())
    ]
    outputs = [
        triton_http.InferRequestedOutput("predict", binary_data=False),
        triton_http.InferRequestedOutput("predict_proba", binary_data=True),
    ]
    result = client.infer("iris", inputs, outputs=outputs)
    model = estimator(iris_model)
    response = result.get_response()
    predict, proba = response["outputs"]
    assert predict["data"] == model.predict(rows).tolist()
    assert proba["parameters"] == {"binary_data_size": 4 * 3 * 8}
    assert np.allclose(result.as_numpy("predict_proba"), model.predict_proba(rows))


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_http_compressed_requests_are_inflated(
    iris_server: ServerProcess, iris_model: Artifact, algorithm: str
) -> None:
    rows = iris_rows()
    result = http_client(iris_server).infer(
        "iris",
        [http_input("input-0", rows.to_numpy(dtype=np.float64), "FP64")],
        request_compression_algorithm=algorithm,
    )
    assert result.as_numpy("predict").tolist() == estimator(iris_model).predict(rows).tolist()


def test_tritonclient_http_without_binary_data_is_plain_json(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    rows = iris_rows(3)
    client = http_client(iris_server)
    result = client.infer(
        "iris",
        [http_input("input-0", rows.to_numpy().astype(np.int32), "INT32", binary=False)],
        outputs=[triton_http.InferRequestedOutput("predict", binary_data=False)],
    )
    expected = estimator(iris_model).predict(rows.astype(np.int32).astype(np.float64))
    assert result.get_response()["outputs"][0]["data"] == expected.tolist()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]


def test_tritonclient_grpc_health_metadata_and_inference(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    client = triton_grpc.InferenceServerClient(iris_server.grpc_target)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "3")
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "mlops-operator"
    assert server["extensions"] == ["binary_tensor_data"]
    metadata = client.get_model_metadata("iris", as_json=True)
    assert metadata["versions"] == ["3"]
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": ["-1", "4"]}]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
        ("predict", "INT64"),
        ("predict_proba", "FP64"),
    ]

    rows = iris_rows()
    result = client.infer(
        "iris",
        [grpc_input("input-0", rows.to_numpy(dtype=np.float64), "FP64")],
        outputs=[
            triton_grpc.InferRequestedOutput("predict"),
            triton_grpc.InferRequestedOutput("predict_proba"),
        ],
        request_id="grpc-1",
    )
    model = estimator(iris_model)
    assert result.as_numpy("predict").tolist() == model.predict(rows).tolist()
    assert np.allclose(result.as_numpy("predict_proba"), model.predict_proba(rows))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("iris", "3", "grpc-1")


def test_a_typed_contents_request_gets_typed_contents_back(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    rows = iris_rows(3)
    request = service_pb2.ModelInferRequest(model_name="iris")
    for name, column in rows.items():
        tensor = request.inputs.add(name=name, datatype="FP64", shape=[3])
        tensor.contents.fp64_contents.extend(column.tolist())
    request.outputs.add(name="predict_proba")
    with grpc.insecure_channel(iris_server.grpc_target) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert list(response.raw_output_contents) == []
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("predict_proba", "FP64", [3, 3])
    proba = np.reshape(output.contents.fp64_contents, (3, 3))
    assert np.allclose(proba, estimator(iris_model).predict_proba(rows))


def test_string_labels_are_bytes_tensors_over_http_and_grpc(
    start_server: ServerFactory, species_model: Artifact
) -> None:
    server = start_server("species", species_model.uri)
    rows = iris_rows()
    labels = [s.encode() for s in estimator(species_model).predict(rows)]
    assert {b"setosa", b"versicolor", b"virginica"} == set(labels)
    x = rows.to_numpy(dtype=np.float32)

    over_http = http_client(server).infer("species", [http_input("input-0", x, "FP32")])
    assert over_http.get_response()["outputs"][0]["datatype"] == "BYTES"
    assert over_http.as_numpy("predict").tolist() == labels

    grpc_client = triton_grpc.InferenceServerClient(server.grpc_target)
    over_grpc = grpc_client.infer("species", [grpc_input("input-0", x, "FP32")])
    assert over_grpc.get_output("predict").datatype == "BYTES"
    assert over_grpc.as_numpy("predict").tolist() == labels

    json_only = http_client(server).infer(
        "species",
        [http_input("input-0", x, "FP32", binary=False)],
        outputs=[triton_http.InferRequestedOutput("predict", binary_data=False)],
    )
    assert json_only.get_response()["outputs"][0]["data"] == [s.decode() for s in labels]


def test_a_regressor_answers_fp64_over_http_and_grpc(
    start_server: ServerFactory, diabetes_model: Artifact
) -> None:
    server = start_server("diabetes", diabetes_model.uri)
    rows = diabetes_rows()
    expected = estimator(diabetes_model).predict(rows)
    x = rows.to_numpy(dtype=np.float64)
    over_http = http_client(server).infer("diabetes", [http_input("input-0", x, "FP64")])
    grpc_client = triton_grpc.InferenceServerClient(server.grpc_target)
    over_grpc = grpc_client.infer("diabetes", [grpc_input("input-0", x, "FP64")])
    for result in (over_http, over_grpc):
        predict = result.as_numpy("predict")
        assert predict.dtype == np.float64
        assert np.allclose(predict, expected)
    with pytest.raises(InferenceServerException) as caught:
        grpc_client.infer(
            "diabetes",
            [grpc_input("input-0", x, "FP64")],
            outputs=[triton_grpc.InferRequestedOutput("predict_proba")],
        )
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unknown output 'predict_proba'" in caught.value.message()


def test_feedback_over_http_takes_the_ids_of_grpc_predictions(
    iris_server: ServerProcess, iris_model: Artifact
) -> None:
    url = iris_server.url
    before = httpx.get(f"{url}/metrics").text
    rows = iris_rows()
    result = triton_grpc.InferenceServerClient(iris_server.grpc_target).infer(
        "iris", [grpc_input("input-0", rows.to_numpy(dtype=np.float32), "FP32")]
    )
    ids = result.get_response().parameters["prediction_ids"].string_param.split(",")
    labels = result.as_numpy("predict").tolist()
    assert len(set(ids)) == 6
    truth = [(labels[0] + 1) % 3, *labels[1:]]
    response = httpx.post(
        f"{url}/v1/models/iris/feedback",
        json={"feedback": [{"id": i, "label": y} for i, y in zip(ids, truth, strict=True)]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 6
    assert response.json()["unknown_ids"] == []
    after = httpx.get(f"{url}/metrics").text

    def delta(name: str, **labels: str) -> float:
        return (metric(after, name, **labels) or 0.0) - (metric(before, name, **labels) or 0.0)

    assert delta("mlops_requests_total", protocol="grpc", code="200") == 1
    assert delta("mlops_feedback_total") == 6
    assert delta("mlops_feedback_correct_total") == 5


def test_grpc_predictions_of_every_worker_take_feedback_over_http(
    start_server: ServerFactory, iris_model: Artifact
) -> None:
    server = start_server("iris", iris_model.uri, "--workers", "2")
    x = iris_rows(2).to_numpy(dtype=np.float32)
    ids: list[str] = []
    # A connection stays with one worker: a new client per call spreads them over both.
    for _ in range(16):
        client = triton_grpc.InferenceServerClient(server.grpc_target)
        assert client.is_server_ready()
        result = client.infer("iris", [grpc_input("input-0", x, "FP32")])
        ids += result.get_response().parameters["prediction_ids"].string_param.split(",")
        client.close()
    assert len({i.split("-")[0] for i in ids}) == 2, "both workers answered gRPC calls"
    response = httpx.post(
        f"{server.url}/v1/models/iris/feedback",
        json={"feedback": [{"id": i, "label": 0} for i in ids]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(ids)
    assert response.json()["unknown_ids"] == []
