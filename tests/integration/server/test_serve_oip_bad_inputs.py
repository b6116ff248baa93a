"""Bad input on each path of the Open Inference Protocol, against a real server: HTTP with
the binary data extension answers a 4xx ``{"error": ...}``, gRPC INVALID_ARGUMENT, NOT_FOUND
or RESOURCE_EXHAUSTED with the reason; never a 5xx or INTERNAL, and the server keeps
serving."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from serving_helpers import ServerProcess, metric
from tritonclient.grpc import service_pb2, service_pb2_grpc

ROW = [5.1, 3.5, 1.4, 0.2]
FP32_ROW = struct.pack("<4f", *ROW)


def binary_body(
    inputs: list[dict[str, Any]], binary: bytes, **extra: Any
) -> tuple[dict[str, str], bytes]:
    header = json.dumps({"inputs": inputs, **extra}).encode()
    return {"Inference-Header-Content-Length": str(len(header))}, header + binary


def fp32_input(size: int = 16, shape: list[int] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "name": "input-0",
        "datatype": "FP32",
        "shape": shape or [1, 4],
        "parameters": {"binary_data_size": size},
        **fields,
    }


def length_prefixed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


HTTP_BAD: list[tuple[str, dict[str, str], bytes, int, str]] = [
    (
        "header length beyond the body",
        {"Inference-Header-Content-Length": "4096"},
        b'{"inputs": []}',
        400,
        "Inference-Header-Content-Length is 4096 but the request body has only 14 bytes",
    ),
    (
        "header length not a number",
        {"Inference-Header-Content-Length": "ten"},
        b'{"inputs": []}',
        400,
        "Inference-Header-Content-Length must be a non-negative integer, got 'ten'",
    ),
    (
        "header length cutting the JSON",
        {"Inference-Header-Content-Length": "5"},
        b'{"inputs": []}',
        400,
        "malformed JSON",
    ),
    (
        "binary size not what the shape needs",
        *binary_body([fp32_input(size=12)], FP32_ROW[:12]),
        400,
        "input 'input-0' is FP32 of shape [1, 4]: 4 values of 4 bytes need 16 bytes of binary "
        "data, got 12",
    ),
    (
        "binary size beyond the data",
        *binary_body([fp32_input(size=32)], FP32_ROW),
        400,
        "input 'input-0' has binary_data_size 32 but only 16 bytes of binary data remain",
    ),
    (
        "binary data nobody claims",
        *binary_body([fp32_input()], FP32_ROW + b"\x00" * 4),
        400,
        "the request has 4 bytes of binary data that no input claims",
    ),
    (
        "negative binary size",
        *binary_body([fp32_input(size=-16)], FP32_ROW),
        400,
        "input 'input-0': 'binary_data_size' must be a non-negative integer",
    ),
    (
        "data and binary data",
        *binary_body([fp32_input(data=ROW)], FP32_ROW),
        400,
        "input 'input-0' has both 'data' and binary data",
    ),
    (
        "unknown datatype",
        *binary_body([fp32_input(size=8, datatype="BF16")], b"\x00" * 8),
        400,
        "input 'input-0' has unsupported datatype 'BF16'",
    ),
    (
        "wrong element count of BYTES",
        *binary_body(
            [fp32_input(size=21, datatype="BYTES")], length_prefixed(b"5.1", b"3.5", b"1.4")
        ),
        400,
        "input 'input-0' has shape [1, 4] (4 values) but its binary data holds 3 BYTES elements",
    ),
    (
        "BYTES element cut short",
        *binary_body([fp32_input(size=7, datatype="BYTES", shape=[1, 1])], b"\x09\x00\x00\x005.1"),
        400,
        "BYTES element 0 declares 9 bytes but only 3 remain",
    ),
    (
        "wrong feature count",
        *binary_body([fp32_input(size=12, shape=[1, 3])], FP32_ROW[:12]),
        400,
        "input 'input-0' has 3 features per row (shape [1, 3]); this model takes 4",
    ),
    (
        "binary_data_output not a boolean",
        *binary_body([fp32_input()], FP32_ROW, parameters={"binary_data_output": 1}),
        400,
        "parameter 'binary_data_output' must be true or false",
    ),
    (
        "unknown content coding",
        {"Content-Encoding": "br", "Inference-Header-Content-Length": "2"},
        b"{}",
        415,
        "unsupported Content-Encoding 'br'; send gzip, deflate or identity",
    ),
    (
        "corrupt gzip",
        {"Content-Encoding": "gzip", "Inference-Header-Content-Length": "2"},
        b"{}",
        400,
        "the body is not valid gzip data",
    ),
    (
        "truncated deflate",
        {"Content-Encoding": "deflate"},
        zlib.compress(b'{"inputs": []}')[:-6],
        400,
        "the body is not valid deflate data: it ends early",
    ),
    (
        "decompressed body over the limit",
        {"Content-Encoding": "gzip"},
        gzip.compress(b" " * 70_000),
        413,
        "the decompressed request body exceeds the limit of 65536 bytes",
    ),
    (
        "body over the limit",
        *binary_body([fp32_input(size=70_000, shape=[4375, 4])], b"\x00" * 70_000),
        413,
        "the limit is 65536",
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [case[1:] for case in HTTP_BAD],
    ids=[case[0] for case in HTTP_BAD],
)
def test_bad_binary_requests_get_a_4xx_with_the_reason(
    iris_server: ServerProcess, headers: dict[str, str], body: bytes, status: int, message: str
) -> None:
    response = httpx.post(
        f"{iris_server.url}/v2/models/iris/infer",
        content=body,
        headers={"Content-Type": "application/octet-stream", **headers},
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]


Request = service_pb2.ModelInferRequest


def infer(**fields: Any) -> Request:
    """An iris request with one FP32 [1, 4] input sent raw, changed by ``fields``."""
    request = Request(model_name="iris")
    request.inputs.add(name="input-0", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(FP32_ROW)
    for key, value in fields.items():
        if key == "inputs":
            del request.inputs[:]
            for tensor in value:
                request.inputs.add(**tensor)
        elif key == "raw":
            del request.raw_input_contents[:]
            request.raw_input_contents.extend(value)
        elif key == "outputs":
            for name in value:
                request.outputs.add(name=name)
        else:
            setattr(request, key, value)
    return request


def typed(datatype: str, shape: list[int], **contents: list[Any]) -> Request:
    request = infer(raw=[], inputs=[{"name": "input-0", "datatype": datatype, "shape": shape}])
    for field, values in contents.items():
        getattr(request.inputs[0].contents, field).extend(values)
    return request


Call = Callable[[service_pb2_grpc.GRPCInferenceServiceStub], Any]

GRPC_BAD: list[tuple[str, Call, grpc.StatusCode, str]] = [
    (
        "unknown model",
        lambda stub: stub.ModelInfer(infer(model_name="wine")),
        grpc.StatusCode.NOT_FOUND,
        "model 'wine' is not served here; this server serves 'iris'",
    ),
    (
        "unknown version",
        lambda stub: stub.ModelInfer(infer(model_version="7")),
        grpc.StatusCode.NOT_FOUND,
        "model 'iris' has no version '7'; it serves version 3",
    ),
    (
        "metadata of an unknown model",
        lambda stub: stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="wine")),
        grpc.StatusCode.NOT_FOUND,
        "model 'wine' is not served here",
    ),
    (
        "readiness of an unknown version",
        lambda stub: stub.ModelReady(service_pb2.ModelReadyRequest(name="iris", version="1")),
        grpc.StatusCode.NOT_FOUND,
        "model 'iris' has no version '1'",
    ),
    (
        "no inputs",
        lambda stub: stub.ModelInfer(infer(inputs=[], raw=[])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'inputs' must hold at least one input tensor",
    ),
    (
        "raw contents for fewer inputs",
        lambda stub: stub.ModelInfer(infer(raw=[FP32_ROW, FP32_ROW])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents has 2 entries for 1 inputs",
    ),
    (
        "raw size not what the shape needs",
        lambda stub: stub.ModelInfer(infer(raw=[FP32_ROW[:12]])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0' is FP32 of shape [1, 4]: 4 values of 4 bytes need 16 bytes of binary "
        "data, got 12",
    ),
    (
        "unknown datatype",
        lambda stub: stub.ModelInfer(
            infer(inputs=[{"name": "input-0", "datatype": "BF16", "shape": [1, 4]}])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0' has unsupported datatype 'BF16'",
    ),
    (
        "typed contents in the wrong field",
        lambda stub: stub.ModelInfer(typed("FP32", [1, 4], fp64_contents=ROW)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0' is FP32: its values go in contents.fp32_contents, not fp64_contents",
    ),
    (
        "wrong element count of typed contents",
        lambda stub: stub.ModelInfer(typed("FP64", [1, 4], fp64_contents=ROW[:3])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0' has shape [1, 4] (4 values) but 3 data values",
    ),
    (
        "raw and typed contents",
        lambda stub: stub.ModelInfer(
            infer(
                inputs=[
                    {
                        "name": "input-0",
                        "datatype": "FP32",
                        "shape": [1, 4],
                        "contents": {"fp32_contents": ROW},
                    }
                ]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0' has both typed contents (fp32_contents) and raw_input_contents",
    ),
    (
        "BYTES that are not numbers",
        lambda stub: stub.ModelInfer(
            typed("BYTES", [1, 4], bytes_contents=[b"1", b"x", b"2", b"3"])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a number",
    ),
    (
        "wrong feature count",
        lambda stub: stub.ModelInfer(typed("FP64", [1, 3], fp64_contents=ROW[:3])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0' has 3 features per row (shape [1, 3]); this model takes 4",
    ),
    (
        "more dimensions than an input has",
        lambda stub: stub.ModelInfer(typed("FP64", [0] * 65)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0' has 65 dimensions",
    ),
    (
        "a dimension numpy cannot shape, with no elements",
        lambda stub: stub.ModelInfer(typed("FP64", [2**62, 0])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0' has shape [4611686018427387904, 0]; each dimension is at most",
    ),
    (
        "unknown output",
        lambda stub: stub.ModelInfer(infer(outputs=["probabilities"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown output 'probabilities'; this model has outputs 'predict', 'predict_proba'",
    ),
    (
        "message over the limit",
        lambda stub: stub.ModelInfer(infer(raw=[b"\x00" * 70_000])),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "larger than max",
    ),
]


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [case[1:] for case in GRPC_BAD],
    ids=[case[0] for case in GRPC_BAD],
)
def test_bad_grpc_calls_get_a_client_error_code_with_the_reason(
    iris_server: ServerProcess, call: Call, code: grpc.StatusCode, message: str
) -> None:
    with grpc.insecure_channel(iris_server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            call(service_pb2_grpc.GRPCInferenceServiceStub(channel))
    error: Any = caught.value
    assert error.code() == code, error.details()
    assert message in error.details()


def test_refused_grpc_calls_count_as_4xx_and_the_server_keeps_serving(
    iris_server: ServerProcess,
) -> None:
    before = httpx.get(f"{iris_server.url}/metrics").text
    with grpc.insecure_channel(iris_server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.ModelInfer(infer(raw=[FP32_ROW[:8]]))
        response = stub.ModelInfer(infer())
    assert response.outputs[0].name == "predict"
    after = httpx.get(f"{iris_server.url}/metrics").text
    count = lambda text, code: metric(text, "mlops_requests_total", protocol="grpc", code=code)  # noqa: E731
    assert (count(after, "400") or 0) - (count(before, "400") or 0) == 1
    assert (count(after, "200") or 0) - (count(before, "200") or 0) == 1
