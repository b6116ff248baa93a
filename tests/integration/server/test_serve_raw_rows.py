"""Serving raw rows: a customer table with text categories, booleans, integer codes, gaps and
a text label, trained by the real trainer into one Pipeline, served by ``mlops-operator
serve`` as a real process and asked over HTTP (v1, v2 JSON, v2 binary with tritonclient) and
gRPC: string labels back, metadata per input, bad rows refused naming the column, unseen
categories predicted and counted, drift of the category mix measured."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from serving_helpers import (
    Artifact,
    ServerFactory,
    ServerProcess,
    metric,
    start_server_process,
    train_model,
)
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.support import eventually

REGIONS = ["north", "south", "east", "west"]


def customers(rows: int, seed: int) -> pd.DataFrame:
    """A raw table: ``target`` (``yes``/``no``) depends on tenure, plan and charges."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{seed}-{i}" for i in range(rows)],
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]).astype(object),
            "region": rng.choice(REGIONS, rows, p=[0.4, 0.3, 0.2, 0.1]).astype(object),
            "tenure": rng.gamma(2.0, 12.0, rows).round(1),
            "charges": rng.normal(50, 15, rows).round(2),
            "partner": rng.random(rows) < 0.45,
            "code": rng.choice([10, 20, 30], rows),
        }
    )
    score = 2 - 0.12 * frame["tenure"] + 0.05 * (frame["charges"] - 50)
    score += np.where(frame["plan"] == "basic", 1.0, 0.0)
    frame["target"] = np.where(score > 0, "yes", "no")
    frame.loc[rng.random(rows) < 0.05, "region"] = None
    frame.loc[rng.random(rows) < 0.05, "charges"] = np.nan
    return frame


@pytest.fixture(scope="module")
def churn_model(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """Logistic regression on raw rows; ``tenure`` is not imputed (it had no gaps), so a
    null there cannot be predicted; ``code`` holds category codes."""
    return train_model(
        tmp_path_factory.mktemp("churn"),
        "churn",
        customers(500, seed=0),
        {"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000}},
        preprocessing={
            "columns": [
                {"name": "customer_id", "drop": True},
                {"name": "tenure", "impute": "none"},
                {"name": "code", "kind": "categorical"},
            ]
        },
    )


@pytest.fixture(scope="module")
def churn_server(
    churn_model: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    server = start_server_process(
        tmp_path_factory.mktemp("churn-server"), "churn", churn_model.uri, ready=True
    )
    yield server
    server.stop()
    assert "Traceback" not in server.output(), server.output()


def pipeline(model: Artifact) -> Any:
    return joblib.load(model.path / "model.joblib")


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["target"])


def instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as an application sends them: JSON objects, null for a missing value."""
    rows = json.loads(features(frame).to_json(orient="records"))
    assert isinstance(rows, list)
    return rows


def test_v1_objects_and_arrays_with_text_and_nulls_get_text_labels(
    churn_server: ServerProcess, churn_model: Artifact
) -> None:
    frame = customers(8, seed=1)
    frame.loc[0, "charges"] = np.nan
    frame.loc[1, "region"] = None
    expected = pipeline(churn_model).predict(features(frame)).tolist()
    assert set(expected) <= {"yes", "no"}
    url = f"{churn_server.url}/v1/models/churn:predict"
    by_name = instances(frame)
    assert by_name[0]["charges"] is None and by_name[1]["region"] is None
    response = httpx.post(url, json={"instances": by_name})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected
    # Arrays in feature order; the dropped customer_id may be left out of objects.
    as_arrays = [list(row.values()) for row in by_name]
    assert httpx.post(url, json={"instances": as_arrays}).json()["predictions"] == expected
    without_id = [{k: v for k, v in row.items() if k != "customer_id"} for row in by_name]
    assert httpx.post(url, json={"instances": without_id}).json()["predictions"] == expected


def per_feature(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One v2 JSON tensor per feature: BYTES for text, FP64, BOOL and INT64 for the rest."""
    datatypes = {"tenure": "FP64", "charges": "FP64", "partner": "BOOL", "code": "INT64"}
    rows = instances(frame)
    return [
        {
            "name": name,
            "datatype": datatypes.get(name, "BYTES"),
            "shape": [len(rows)],
            "data": [row[name] for row in rows],
        }
        for name in features(frame).columns
    ]


def test_v2_json_one_tensor_per_feature_with_bytes_labels_and_class_order(
    churn_server: ServerProcess, churn_model: Artifact
) -> None:
    frame = customers(6, seed=2)
    frame.loc[2, "charges"] = np.nan
    model = pipeline(churn_model)
    doc = {
        "inputs": per_feature(frame),
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    response = httpx.post(f"{churn_server.url}/v2/models/churn/infer", json=doc)
    assert response.status_code == 200, response.text
    predict, proba = response.json()["outputs"]
    assert predict["datatype"] == "BYTES"
    assert predict["data"] == model.predict(features(frame)).tolist()
    assert np.allclose(
        np.reshape(proba["data"], proba["shape"]), model.predict_proba(features(frame))
    )

    metadata = httpx.get(f"{churn_server.url}/v2/models/churn").json()
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("customer_id", "BYTES", [-1]),
        ("plan", "BYTES", [-1]),
        ("region", "BYTES", [-1]),
        ("tenure", "FP64", [-1]),
        ("charges", "FP64", [-1]),
        ("partner", "BOOL", [-1]),
        ("code", "INT64", [-1]),
    ]
    by_name = {i["name"]: i["parameters"] for i in metadata["inputs"]}
    assert by_name["tenure"]["nullable"] is False and by_name["charges"]["nullable"] is True
    assert by_name["customer_id"]["used"] is False
    assert metadata["outputs"][0]["datatype"] == "BYTES"
    assert metadata["outputs"][1]["parameters"]["classes"] == list(model.classes_) == ["no", "yes"]
    # Served without the ColumnTransformer's per-call work, proved exact at load.
    parameters = metadata["parameters"]
    assert parameters["predict_path"].startswith("table(categories,impute,one-hot")
    assert parameters["predict_path_reason"] == ""


def triton_inputs(module: Any, frame: pd.DataFrame) -> list[Any]:
    x = features(frame).drop(columns="customer_id")
    arrays = {
        "plan": (x["plan"].to_numpy(dtype=object), "BYTES"),
        "region": (x["region"].fillna("north").to_numpy(dtype=object), "BYTES"),
        "tenure": (x["tenure"].to_numpy(dtype=np.float32), "FP32"),
        "charges": (x["charges"].to_numpy(dtype=np.float64), "FP64"),
        "partner": (x["partner"].to_numpy(dtype=bool), "BOOL"),
        "code": (x["code"].to_numpy(dtype=np.int64), "INT64"),
    }
    tensors = []
    for name, (values, datatype) in arrays.items():
        tensor = module.InferInput(name, [len(values)], datatype)
        tensor.set_data_from_numpy(values)
        tensors.append(tensor)
    return tensors


def test_tritonclient_sends_bytes_tensors_over_http_binary_and_grpc(
    churn_server: ServerProcess, churn_model: Artifact
) -> None:
    frame = customers(5, seed=3)
    frame["region"] = frame["region"].fillna("north")
    frame["tenure"] = frame["tenure"].astype(np.float32).astype(np.float64)
    expected = pipeline(churn_model).predict(features(frame)).tolist()

    http = triton_http.InferenceServerClient(churn_server.url.removeprefix("http://"))
    result = http.infer("churn", triton_inputs(triton_http, frame))
    assert [v.decode() for v in result.as_numpy("predict")] == expected

    grpc_client = triton_grpc.InferenceServerClient(churn_server.grpc_target)
    result = grpc_client.infer("churn", triton_inputs(triton_grpc, frame))
    assert [v.decode() for v in result.as_numpy("predict")] == expected
    metadata = grpc_client.get_model_metadata("churn", as_json=True)
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]}["plan"] == "BYTES"
    assert metadata["outputs"][0]["datatype"] == "BYTES"


def test_grpc_typed_bytes_contents_answer_in_typed_bytes(
    churn_server: ServerProcess, churn_model: Artifact
) -> None:
    frame = customers(3, seed=4).assign(region="east")
    request = service_pb2.ModelInferRequest(model_name="churn")
    for name, field, values in (
        ("plan", "bytes_contents", [v.encode() for v in frame["plan"]]),
        ("region", "bytes_contents", [v.encode() for v in frame["region"]]),
        ("tenure", "fp64_contents", frame["tenure"].tolist()),
        ("charges", "fp64_contents", frame["charges"].fillna(50.0).tolist()),
        ("partner", "bool_contents", frame["partner"].tolist()),
        ("code", "int64_contents", frame["code"].tolist()),
    ):
        datatype = {"bytes_contents": "BYTES", "fp64_contents": "FP64"}.get(field)
        datatype = datatype or ("BOOL" if field == "bool_contents" else "INT64")
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(values)])
        getattr(tensor.contents, field).extend(values)
    with grpc.insecure_channel(churn_server.grpc_target) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    frame["charges"] = frame["charges"].fillna(50.0)
    expected = pipeline(churn_model).predict(features(frame)).tolist()
    assert [v.decode() for v in response.outputs[0].contents.bytes_contents] == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": "tenure"}, "instances[0]: missing features 'tenure'"),
        ({"tenure": "three"}, "row 0, feature 'tenure' is the string 'three', but 'tenure' is"),
        ({"tenure": None}, "row 0, feature 'tenure' is missing (null), but this model cannot"),
        ({"plan": ["basic"]}, "row 0, feature 'plan' is an array"),
    ],
)
def test_bad_v1_rows_are_400s_naming_the_column(
    churn_server: ServerProcess, change: dict[str, Any], message: str
) -> None:
    row = instances(customers(1, seed=5))[0]
    row.pop(change.pop("drop", None), None)
    row.update(change)
    response = httpx.post(f"{churn_server.url}/v1/models/churn:predict", json={"instances": [row]})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_tensors_of_different_lengths_are_a_400_over_http_and_grpc(
    churn_server: ServerProcess,
) -> None:
    inputs = per_feature(customers(3, seed=6))
    inputs[3]["data"], inputs[3]["shape"] = [1.0, 2.0], [2]  # tenure: two rows of three
    response = httpx.post(f"{churn_server.url}/v2/models/churn/infer", json={"inputs": inputs})
    assert response.status_code == 400
    assert "input 'tenure' has 2 rows but input 'customer_id' has 3" in response.json()["error"]

    request = service_pb2.ModelInferRequest(model_name="churn")
    request.inputs.add(name="plan", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
        b"basic"
    )
    request.inputs.add(name="tenure", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
    with grpc.insecure_channel(churn_server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing features 'region', 'charges', 'partner', 'code'" in error.details()


def test_an_unseen_category_is_predicted_and_counted(churn_server: ServerProcess) -> None:
    def unseen(feature: str) -> float:
        text = httpx.get(f"{churn_server.url}/metrics").text
        return metric(text, "mlops_unseen_categories_total", feature=feature) or 0.0

    before = unseen("plan")
    rows = instances(customers(3, seed=7))
    rows[0]["plan"], rows[1]["plan"] = "platinum", "gold"
    rows[2]["code"] = 40
    response = httpx.post(f"{churn_server.url}/v1/models/churn:predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3
    assert unseen("plan") == before + 2
    assert unseen("code") >= 1


async def test_shifting_the_category_mix_raises_that_features_drift(
    churn_model: Artifact, start_server: ServerFactory
) -> None:
    server = start_server("churn", churn_model.uri)

    async def psi(feature: str) -> float | None:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{server.url}/metrics")).text
        return metric(text, "mlops_feature_drift_psi", feature=feature)

    url = f"{server.url}/v1/models/churn:predict"
    like_training = instances(customers(400, seed=8))
    assert httpx.post(url, json={"instances": like_training}).status_code == 200
    calm = await psi("region")
    assert calm is not None and calm < 0.1, calm
    plan_before = await psi("plan")

    shifted = [{**row, "region": "west"} for row in like_training]
    assert httpx.post(url, json={"instances": shifted}).status_code == 200

    async def drifted() -> float | None:
        value = await psi("region")
        return value if value is not None and value > 0.25 else None

    assert await eventually(drifted, timeout=20)
    plan_after = await psi("plan")
    assert plan_before is not None and plan_after is not None
    assert math.isclose(plan_after, plan_before, abs_tol=0.05)  # the plan mix did not move
    drift_max = metric(httpx.get(f"{server.url}/metrics").text, "mlops_drift_psi_max")
    assert drift_max is not None and drift_max > 0.25
