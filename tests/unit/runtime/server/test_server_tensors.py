"""The binary tensor codec and the v2 request parser with binary data: byte layouts as the
Open Inference Protocol's clients write them, and every way the sizes can fail to add up."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from mlops_operator.runtime.server.protocol import ProtocolError, parse_v2_infer
from mlops_operator.runtime.server.tensors import (
    NUMERIC_DTYPES,
    BinaryReader,
    decode,
    encode,
    encode_bytes,
    split_body,
)

FEATURES = ("a", "b", "c")
OUTPUTS = ("predict", "predict_proba")


@pytest.mark.parametrize("datatype", sorted(NUMERIC_DTYPES))
def test_every_numeric_datatype_round_trips_little_endian(datatype: str) -> None:
    values = np.array([[0, 1, 1], [1, 0, 1]]).astype(NUMERIC_DTYPES[datatype])
    raw = encode(datatype, values)
    assert raw == values.astype(NUMERIC_DTYPES[datatype].newbyteorder("<")).tobytes()
    assert len(raw) == 6 * NUMERIC_DTYPES[datatype].itemsize
    decoded = decode(datatype, (2, 3), raw, "input 'x'")
    assert decoded.shape == (2, 3)
    assert np.array_equal(decoded, values)


def test_fp32_bytes_are_the_little_endian_ieee_floats() -> None:
    assert encode("FP32", [1.5, -2.0]) == struct.pack("<2f", 1.5, -2.0)
    assert encode("INT64", [7]) == struct.pack("<q", 7)
    assert encode("BOOL", [True, False, True]) == b"\x01\x00\x01"


def test_bytes_elements_are_length_prefixed() -> None:
    raw = encode("BYTES", ["setosa", "", "versicolor"])
    assert raw == b"\x06\x00\x00\x00setosa" + b"\x00\x00\x00\x00" + b"\x0a\x00\x00\x00versicolor"
    decoded = decode("BYTES", (3,), raw, "output")
    assert decoded.tolist() == [b"setosa", b"", b"versicolor"]
    assert encode_bytes([b"\xff\x00", 12]) == b"\x02\x00\x00\x00\xff\x00\x02\x00\x00\x0012"


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        ("FP32", (2, 3), b"\x00" * 20, "6 values of 4 bytes need 24 bytes of binary data, got 20"),
        ("INT64", (1,), b"\x00" * 9, "need 8 bytes of binary data, got 9"),
        ("BYTES", (2,), encode_bytes(["1"]), "shape [2] (2 values) but its binary data holds 1"),
        ("BYTES", (1,), b"\x05\x00\x00\x00abc", "declares 5 bytes but only 3 remain"),
        ("BYTES", (2,), encode_bytes(["1"]) + b"\x01\x00", "cut short: a 4-byte length"),
        ("BF16", (1,), b"\x00\x00", "unsupported datatype 'BF16'"),
    ],
)
def test_binary_data_that_does_not_fit_the_tensor_is_refused(
    datatype: str, shape: tuple[int, ...], raw: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(datatype, shape, raw, "input 'x'")
    assert caught.value.status == 400
    assert message in caught.value.message
    assert "input 'x'" in caught.value.message


def test_split_body_cuts_the_json_header_from_the_binary_data() -> None:
    assert split_body(b'{"a":1}XYZ', "7") == (b'{"a":1}', b"XYZ")
    assert split_body(b'{"a":1}', None) == (b'{"a":1}', b"")
    assert split_body(b'{"a":1}', "7") == (b'{"a":1}', b"")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("12", "Inference-Header-Content-Length is 12 but the request body has only 7 bytes"),
        ("-1", "must be a non-negative integer, got '-1'"),
        ("seven", "must be a non-negative integer, got 'seven'"),
    ],
)
def test_a_bad_header_length_is_a_400(header: str, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        split_body(b'{"a":1}', header)
    assert caught.value.status == 400
    assert message in caught.value.message


def test_the_reader_refuses_sizes_beyond_the_data_and_data_left_over() -> None:
    reader = BinaryReader(b"abcdef")
    assert reader.take(4, "input 'x'") == b"abcd"
    with pytest.raises(ProtocolError, match="binary_data_size 3 but only 2 bytes"):
        reader.take(3, "input 'y'")
    reader = BinaryReader(b"abcdef")
    reader.take(4, "input 'x'")
    with pytest.raises(ProtocolError, match="2 bytes of binary data that no input claims"):
        reader.finish()


def binary_request(
    inputs: list[tuple[str, str, list[int], bytes]],
    *,
    parameters: dict[str, Any] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> tuple[Any, bytes]:
    doc: dict[str, Any] = {
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": shape,
                "parameters": {"binary_data_size": len(raw)},
            }
            for name, datatype, shape, raw in inputs
        ]
    }
    if parameters is not None:
        doc["parameters"] = parameters
    if outputs is not None:
        doc["outputs"] = outputs
    return json.loads(json.dumps(doc)), b"".join(raw for *_, raw in inputs)


@pytest.mark.parametrize(
    "datatype", ["FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "BOOL"]
)
def test_a_binary_matrix_of_any_numeric_datatype_becomes_float_rows(datatype: str) -> None:
    values = np.array([[1, 0, 1], [0, 1, 1]])
    doc, binary = binary_request([("x", datatype, [2, 3], encode(datatype, values))])
    parsed = parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary)
    assert parsed.rows.dtype == np.float64
    assert parsed.rows.tolist() == values.tolist()


def test_binary_inputs_per_feature_mix_with_json_inputs_in_order() -> None:
    doc, binary = binary_request(
        [("a", "FP32", [2], encode("FP32", [1.5, 2.5])), ("c", "BYTES", [2], encode_bytes([7, 8]))]
    )
    doc["inputs"].insert(1, {"name": "b", "datatype": "INT64", "shape": [2], "data": [3, 4]})
    parsed = parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary)
    assert parsed.rows.tolist() == [[1.5, 3.0, 7.0], [2.5, 4.0, 8.0]]


def test_binary_outputs_follow_the_request_default_and_each_outputs_override() -> None:
    doc, binary = binary_request([("x", "FP64", [1, 3], encode("FP64", [1, 2, 3]))])
    parsed = parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary)
    assert parsed.binary_outputs == frozenset()
    doc["parameters"] = {"binary_data_output": True}
    parsed = parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary)
    assert parsed.outputs == ("predict",)
    assert parsed.binary_outputs == {"predict"}
    doc["outputs"] = [
        {"name": "predict", "parameters": {"binary_data": False}},
        {"name": "predict_proba"},
    ]
    parsed = parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary)
    assert parsed.binary_outputs == {"predict_proba"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda doc: doc["inputs"][0]["parameters"].update(binary_data_size=-4),
            "'binary_data_size' must be a non-negative integer",
        ),
        (
            lambda doc: doc["inputs"][0]["parameters"].update(binary_data_size="24"),
            "'binary_data_size' must be a non-negative integer",
        ),
        (
            lambda doc: doc["inputs"][0].update(data=[1, 2, 3]),
            "has both 'data' and binary data",
        ),
        (
            lambda doc: doc["inputs"][0]["parameters"].update(binary_data_size=16),
            "FP64 of shape [1, 3]: 3 values of 8 bytes need 24 bytes of binary data, got 16",
        ),
        (
            lambda doc: doc["inputs"][0]["parameters"].update(binary_data_size=32),
            "binary_data_size 32 but only 24 bytes",
        ),
        (
            lambda doc: doc.update(parameters={"binary_data_output": "yes"}),
            "parameter 'binary_data_output' must be true or false",
        ),
        (
            lambda doc: doc.update(outputs=[{"name": "predict", "parameters": {"binary_data": 1}}]),
            "output 'predict': parameter 'binary_data' must be true or false",
        ),
        (
            lambda doc: doc.update(
                outputs=[{"name": "predict", "parameters": {"classification": 2}}]
            ),
            "the 'classification' parameter is not supported",
        ),
    ],
)
def test_bad_binary_requests_are_400s_that_say_what_is_wrong(change: Any, message: str) -> None:
    doc, binary = binary_request([("x", "FP64", [1, 3], encode("FP64", [1, 2, 3]))])
    change(doc)
    with pytest.raises(ProtocolError) as caught:
        parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary)
    assert caught.value.status == 400
    assert message in caught.value.message


def test_binary_data_nobody_claims_is_refused() -> None:
    doc, binary = binary_request([("x", "FP64", [1, 3], encode("FP64", [1, 2, 3]))])
    with pytest.raises(ProtocolError, match="8 bytes of binary data that no input claims"):
        parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary + b"\x00" * 8)


def test_binary_infinities_are_refused_like_json_ones() -> None:
    doc, binary = binary_request([("x", "FP32", [1, 3], encode("FP32", [1, np.inf, 3]))])
    with pytest.raises(ProtocolError, match="row 0, feature 'b' is inf"):
        parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary)


def test_bytes_that_are_not_numbers_are_refused() -> None:
    doc, binary = binary_request([("x", "BYTES", [1, 3], encode_bytes(["1", "two", "3"]))])
    with pytest.raises(ProtocolError, match="not a number"):
        parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False, binary=binary)
