"""Fuzzing a real server, a classifier (a forest: float32 inputs), a regressor and a model of
raw rows (text categories, nulls, a text label): requests generated from the server's own
OpenAPI document (schemathesis, valid and invalid) and nearly valid requests with extreme
values, shapes, text and bytes (hypothesis). Never a 5xx, every error
a JSON ``{"error": ...}`` without a traceback, and after every refused request a valid one
succeeds on the same keep-alive connection (a bad request neither closes it nor poisons the
feedback window, drift or metrics)."""

from __future__ import annotations

import http.client
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from serving_helpers import Artifact, ServerProcess, start_server_process, train_model
from tritonclient.grpc import service_pb2, service_pb2_grpc

SCHEMA_EXAMPLES = 60
"""Per server; schemathesis spends most of its time generating, so fewer of these."""
PROPERTY_EXAMPLES = 1000
"""Per server: with the above, more than 2,000 requests a run."""
RAW_EXAMPLES = 500
"""Raw-row requests: each is predicted by a Pipeline (milliseconds), so fewer of these."""


def fuzz_settings(examples: int) -> settings:
    """No deadline (a shared machine is slow at times), no example database in the tree."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def send_generated(
    conn: Connection, strategy: st.SearchStrategy[tuple[str, bytes, dict[str, str]]], examples: int
) -> int:
    """POST ``examples`` requests drawn from ``strategy`` on ``conn``, each answer checked (see
    :meth:`Connection.check`); how many were sent."""
    sent = 0

    @fuzz_settings(examples)
    @given(sample=strategy)
    def fuzz(sample: tuple[str, bytes, dict[str, str]]) -> None:
        nonlocal sent
        conn.check("POST", *sample)
        sent += 1

    fuzz()
    return sent


EXTREME = [1e39, -1e39, 1e308, -1.7e308, 3.4028236e38, 5e-324, -0.0, 2**53 + 1, 2**64, 2**70]


@dataclass
class Served:
    server: ServerProcess
    name: str
    features: int
    valid_row: list[Any]
    regression: bool
    columns: list[str] | None = None
    """The features of a model of raw rows; ``None`` for a model of numbers."""
    label: Any = 0
    """A valid label for feedback."""


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from sklearn.datasets import load_iris

    directory = tmp_path_factory.mktemp("fuzz-forest")
    artifact: Artifact = train_model(
        directory,
        "flowers",
        load_iris(as_frame=True).frame,
        {
            "className": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 5, "random_state": 0},
        },
    )
    yield from _serve(directory, "flowers", artifact, 4, regression=False)


@pytest.fixture(scope="module")
def regressor(
    diabetes_model: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("fuzz-regressor")
    yield from _serve(directory, "diabetes", diabetes_model, 10, regression=True)


RAW_COLUMNS = ["plan", "region", "tenure", "charges", "partner"]


@pytest.fixture(scope="module")
def raw_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A forest on raw rows: text categories with gaps, numbers with gaps, a boolean,
    ``tenure`` not imputed, and a text label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = 200
    frame = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "pro"], rows).astype(object),
            "region": rng.choice(["north", "south", None], rows).astype(object),
            "tenure": rng.gamma(2.0, 12.0, rows),
            "charges": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(50, 10, rows)),
            "partner": rng.random(rows) < 0.5,
        }
    )
    frame["target"] = np.where(frame["tenure"] < 20, "yes", "no")
    directory = tmp_path_factory.mktemp("fuzz-raw")
    artifact = train_model(
        directory,
        "churn",
        frame,
        {
            "className": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 5, "random_state": 0},
        },
        preprocessing={"columns": [{"name": "tenure", "impute": "none"}]},
    )
    valid = ["basic", "north", 12.5, None, True]
    yield from _serve(
        directory, "churn", artifact, 5, regression=False, valid=valid, columns=RAW_COLUMNS
    )


def _serve(
    directory: Any,
    name: str,
    artifact: Artifact,
    features: int,
    *,
    regression: bool,
    valid: list[Any] | None = None,
    columns: list[str] | None = None,
) -> Iterator[Served]:
    # Generating a request takes seconds at times on a busy machine: the idle keep-alive
    # timeout must not be what closes a connection here.
    server = start_server_process(
        directory,
        name,
        artifact.uri,
        *("--model-version", "1", "--drain-seconds", "0", "--keep-alive-seconds", "600"),
        ready=True,
    )
    yield Served(
        server,
        name,
        features,
        valid or [0.01] * features,
        regression,
        columns,
        "yes" if columns else 0,
    )
    server.stop()
    output = server.output()
    assert "Traceback" not in output, output


class Connection:
    """One keep-alive HTTP connection; fails the test if the server ever closes it."""

    def __init__(self, served: Served) -> None:
        self.served = served
        host, port = served.server.url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.conn.connect()
        self.socket = self.conn.sock

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        assert self.conn.sock is self.socket, f"{method} {path} closed the connection"
        assert (response.getheader("connection") or "").lower() != "close", data
        return response.status, data

    def check(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> None:
        status, data = self.send(method, path, body, headers)
        assert status < 500, (status, method, path, body, data)
        assert b"Traceback" not in data
        if status >= 400:
            error = json.loads(data)["error"]
            assert isinstance(error, str) and error, data
            self.valid()

    def valid(self) -> None:
        """A valid prediction right after, on the same connection."""
        doc = {"inputs": [self._input([self.served.valid_row])]}
        status, data = self.send(
            "POST",
            f"/v2/models/{self.served.name}/infer",
            json.dumps(doc).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 200, data

    def _input(self, rows: list[list[Any]]) -> dict[str, Any]:
        return {
            "name": "input-0",
            "datatype": "BYTES" if self.served.columns else "FP64",
            "shape": [len(rows), self.served.features],
            "data": rows,
        }

    def close(self) -> None:
        self.conn.close()


def _schema_strategy(served: Served) -> st.SearchStrategy[Any]:
    schema = schemathesis.openapi.from_url(f"{served.server.url}/openapi.json")
    return st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )


@pytest.mark.parametrize("model", ["forest", "regressor", "raw_table"])
def test_requests_from_the_openapi_document_never_get_a_5xx(
    model: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(model)
    conn = Connection(served)
    sent = 0

    @fuzz_settings(SCHEMA_EXAMPLES)
    @given(case=_schema_strategy(served))
    def fuzz(case: Any) -> None:
        nonlocal sent
        kwargs = case.as_transport_kwargs(base_url="")
        path = kwargs["url"]
        if kwargs.get("params"):
            path += "?" + httpx.QueryParams(kwargs["params"]).__str__()
        body = None
        if "json" in kwargs:
            body = json.dumps(kwargs["json"]).encode()
        elif kwargs.get("data") is not None:
            data = kwargs["data"]
            body = data if isinstance(data, bytes) else str(data).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.check(kwargs["method"], path, body, headers)
        sent += 1

    try:
        fuzz()
    finally:
        conn.close()
    assert sent >= SCHEMA_EXAMPLES


# ---------------------------------------------------------------- nearly valid requests

VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(EXTREME),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.none(),
    st.booleans(),
)
DIMS = st.one_of(st.integers(0, 5), st.sampled_from([2**31, 2**62, 2**63, 2**64]))
SHAPES = st.one_of(st.lists(DIMS, min_size=0, max_size=4), st.just([0] * 65), st.just([2**63, 0]))
DATATYPES = st.sampled_from(["FP64", "FP32", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "FP16"])
LABELS = st.one_of(VALUES, st.text(max_size=5), st.sampled_from([1.7e308, -1.7e308, 0, 1, 2]))


@st.composite
def requests(draw: st.DrawFn, served: Served) -> tuple[str, bytes, dict[str, str]]:
    """A nearly valid request to one of the endpoints: ``(path, body, headers)``."""
    n = served.features
    width = draw(st.sampled_from([n, n, n, n - 1, n + 1, 0]))
    rows = draw(st.lists(st.lists(VALUES, min_size=width, max_size=width), min_size=0, max_size=3))
    kind = draw(st.sampled_from(["v2", "v2-shape", "v2-binary", "v1", "labels", "ids"]))
    headers = {"Content-Type": "application/json"}
    name = served.name
    if kind == "v2":
        doc: Any = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [len(rows), width]}]}
        doc["inputs"][0]["data"] = rows
        if draw(st.booleans()):
            doc["outputs"] = [{"name": draw(st.sampled_from(["predict", "predict_proba"]))}]
        path = f"/v2/models/{name}/infer"
    elif kind == "v2-shape":
        shape = draw(SHAPES)
        data = [v for row in rows for v in row]
        doc = {"inputs": [{"name": "x", "datatype": draw(DATATYPES), "shape": shape, "data": data}]}
        path = f"/v2/models/{name}/versions/1/infer"
    elif kind == "v2-binary":
        values = [v if isinstance(v, float) else 0.0 for row in rows for v in row]
        raw = struct.pack(f"<{len(values)}d", *values)
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] if draw(st.booleans()) else raw
        shape = draw(st.one_of(st.just([len(rows), width]), SHAPES))
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP64",
                        "shape": shape,
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ]
            }
        ).encode()
        headers["Inference-Header-Content-Length"] = str(len(header))
        return f"/v2/models/{name}/infer", header + raw, headers
    elif kind == "v1":
        doc = {"instances": rows}
        path = f"/v1/models/{name}:predict"
    elif kind == "labels":
        labels = draw(st.lists(LABELS, min_size=len(rows), max_size=len(rows) + 1))
        doc = {"instances": rows, "labels": labels}
        path = f"/v1/models/{name}/feedback"
    else:
        ids = draw(
            st.lists(
                st.one_of(st.text(max_size=12), st.from_regex(r"[0-9a-f]{1,9}-\w*")), max_size=3
            )
        )
        doc = {"feedback": [{"id": i, "label": draw(LABELS)} for i in ids]}
        path = f"/v1/models/{name}/feedback"
    return path, json.dumps(doc).encode(), headers


@pytest.mark.parametrize("model", ["forest", "regressor"])
def test_nearly_valid_requests_with_extreme_values_never_get_a_5xx(
    model: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(model)
    conn = Connection(served)
    try:
        sent = send_generated(conn, requests(served), PROPERTY_EXAMPLES)
        # Feedback with huge labels must not have frozen the online score.
        path = f"/v1/models/{served.name}/feedback"
        row, label = served.valid_row, 0.5 if served.regression else served.label
        body = json.dumps({"instances": [row], "labels": [label]}).encode()
        status, data = conn.send("POST", path, body, {"Content-Type": "application/json"})
        assert status == 200, data
        assert json.loads(data)["accepted"] == 1
    finally:
        conn.close()
    assert sent >= PROPERTY_EXAMPLES
    metrics = httpx.get(f"{served.server.url}/metrics").text
    assert "mlops_requests_total" in metrics


@pytest.mark.parametrize(
    ("model", "value", "message"),
    [
        ("forest", 1e39, "beyond the largest magnitude this model takes"),
        ("regressor", 1e308, "is not a finite number"),
    ],
)
def test_grpc_refuses_values_out_of_the_models_range(
    model: str, value: float, message: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(model)
    infer = service_pb2.ModelInferRequest(model_name=served.name)
    tensor = infer.inputs.add(name="input-0", datatype="FP64", shape=[1, served.features])
    tensor.contents.fp64_contents.extend([value] * served.features)
    with grpc.insecure_channel(served.server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(infer)
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert message in error.details()


# ---------------------------------------------------------------- raw rows

RAW_VALUES = st.one_of(
    VALUES,
    st.text(max_size=6),
    st.sampled_from(["basic", "pro", "north", "gold", "nan", "inf", "1e39", "1e400", "True", ""]),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(0, 3), max_size=1),
)
RAW_DATATYPES = st.sampled_from(["BYTES", "BYTES", "FP64", "FP32", "INT64", "BOOL", "UINT8"])
RAW_BYTES = st.one_of(
    st.binary(max_size=6), st.sampled_from([b"basic", b"north", b"\xff\xfe", b"12.5", b"nan"])
)


def _binary_tensor(draw: st.DrawFn, name: str, rows: int) -> tuple[dict[str, Any], bytes]:
    """One input as binary data whose declared sizes may not add up."""
    datatype = draw(st.sampled_from(["BYTES", "BYTES", "FP64", "BOOL"]))
    count = draw(st.sampled_from([rows, rows, rows + 1]))
    if datatype == "BYTES":
        values = draw(st.lists(RAW_BYTES, min_size=count, max_size=count))
        raw = b"".join(struct.pack("<I", len(v)) + v for v in values)
    elif datatype == "FP64":
        floats = draw(st.lists(st.floats(), min_size=count, max_size=count))
        raw = struct.pack(f"<{count}d", *floats)
    else:
        raw = bytes(draw(st.lists(st.integers(0, 1), min_size=count, max_size=count)))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    shape = draw(st.one_of(st.just([count]), SHAPES))
    size = draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw) + 4)))
    header = {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }
    return header, raw


@st.composite
def raw_requests(draw: st.DrawFn, served: Served) -> tuple[str, bytes, dict[str, Any]]:
    """A nearly valid request of raw rows: text, numbers, nulls, containers and bytes in
    any column, columns missing, extra or of different lengths."""
    columns = served.columns or []
    names = draw(
        st.one_of(
            st.just(columns),
            st.lists(st.sampled_from([*columns, "colour"]), max_size=len(columns) + 1, unique=True),
        )
    )
    rows = draw(st.integers(0, 3))
    kind = draw(st.sampled_from(["v1-objects", "v1-arrays", "v2", "v2-binary", "labels"]))
    headers = {"Content-Type": "application/json"}
    name = served.name
    path = f"/v1/models/{name}:predict"
    doc: Any
    if kind in ("v1-objects", "labels"):
        instances = [{c: draw(RAW_VALUES) for c in names} for _ in range(rows)]
        doc = {"instances": instances}
        if kind == "labels":
            doc["labels"] = draw(st.lists(LABELS, min_size=rows, max_size=rows + 1))
            path = f"/v1/models/{name}/feedback"
    elif kind == "v1-arrays":
        width = draw(st.sampled_from([len(columns), len(columns), len(columns) - 1]))
        doc = {"instances": [[draw(RAW_VALUES) for _ in range(width)] for _ in range(rows)]}
    elif kind == "v2":
        inputs = []
        for column in names:
            count = draw(st.sampled_from([rows, rows, rows + 1]))
            data = [draw(RAW_VALUES) for _ in range(count)]
            shape = draw(st.one_of(st.just([count]), st.just([count, 1]), SHAPES))
            inputs.append(
                {"name": column, "datatype": draw(RAW_DATATYPES), "shape": shape, "data": data}
            )
        doc = {"inputs": inputs}
        if draw(st.booleans()):
            doc["outputs"] = [{"name": draw(st.sampled_from(["predict", "predict_proba"]))}]
        path = f"/v2/models/{name}/infer"
    else:
        parts = [_binary_tensor(draw, column, rows) for column in names]
        header = json.dumps({"inputs": [p[0] for p in parts]}).encode()
        headers["Inference-Header-Content-Length"] = str(len(header))
        return f"/v2/models/{name}/infer", header + b"".join(p[1] for p in parts), headers
    return path, json.dumps(doc).encode(), headers


def test_nearly_valid_raw_rows_never_get_a_5xx(raw_table: Served) -> None:
    served = raw_table
    conn = Connection(served)
    try:
        sent = send_generated(conn, st.one_of(raw_requests(served), requests(served)), RAW_EXAMPLES)
        body = json.dumps({"instances": [served.valid_row], "labels": ["yes"]}).encode()
        path = f"/v1/models/{served.name}/feedback"
        status, data = conn.send("POST", path, body, {"Content-Type": "application/json"})
        assert status == 200, data
    finally:
        conn.close()
    assert sent >= RAW_EXAMPLES
    metrics = httpx.get(f"{served.server.url}/metrics").text
    assert 'code="400"' in metrics
