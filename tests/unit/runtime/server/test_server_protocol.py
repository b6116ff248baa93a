"""v2 and v1 request validation: what is accepted, and every bad input with its reason."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlops_operator.runtime.server.protocol import (
    LabelledIds,
    LabelledRows,
    ProtocolError,
    decode_json,
    parse_feedback,
    parse_v1_predict,
    parse_v2_infer,
)

FEATURES = ("a", "b", "c")
OUTPUTS = ("predict", "predict_proba")


def tensor(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "x",
        "shape": [2, 3],
        "datatype": "FP64",
        "data": [1, 2, 3, 4, 5, 6],
        **overrides,
    }


def v2(*tensors: dict[str, Any], **body: Any) -> dict[str, Any]:
    return {"inputs": list(tensors) or [tensor()], **body}


def test_v2_one_tensor_flat_or_nested() -> None:
    for data in ([1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]]):
        parsed = parse_v2_infer(v2(tensor(data=data)), FEATURES, OUTPUTS, allow_nan=False)
        assert parsed.rows.tolist() == [[1, 2, 3], [4, 5, 6]]
        assert parsed.rows.dtype == np.float64
        assert parsed.outputs == ("predict",)
        assert parsed.id is None


def test_v2_one_tensor_per_feature_in_any_order() -> None:
    doc = v2(
        tensor(name="c", shape=[2], data=[3, 6]),
        tensor(name="a", shape=[2, 1], data=[[1], [4]], datatype="INT64"),
        tensor(name="b", shape=[2], data=["2", "5.0"], datatype="BYTES"),
        id="r1",
        outputs=[{"name": "predict_proba"}, {"name": "predict"}, {"name": "predict_proba"}],
        parameters={"x": 1},
    )
    parsed = parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False)
    assert parsed.rows.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert parsed.outputs == ("predict_proba", "predict")
    assert parsed.id == "r1"


def test_missing_values_pass_only_for_models_that_take_them() -> None:
    doc = v2(tensor(data=[1, None, 3, 4, 5, 6]))
    rows = parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=True).rows
    assert np.isnan(rows[0, 1])
    with pytest.raises(ProtocolError, match="row 0, feature 'b' is a missing value"):
        parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False)


def test_booleans_count_as_one_and_zero() -> None:
    rows = parse_v1_predict({"instances": [[True, 0, 1.5]]}, FEATURES, allow_nan=False)
    assert rows.tolist() == [[1.0, 0.0, 1.5]]


V2_BAD: list[tuple[Any, str]] = [
    ([], "the request body must be a JSON object, got an array"),
    ({}, "'inputs' must be a non-empty array"),
    ({"inputs": "x"}, "'inputs' must be a non-empty array"),
    (v2(id=5), "'id' must be a string"),
    (v2(parameters=[1]), "'parameters' must be a JSON object"),
    ({"inputs": [5]}, "inputs[0] must be a JSON object, got a number"),
    ({"inputs": [{"data": [1]}]}, "inputs[0] needs a 'name'"),
    (v2(tensor(datatype=None)), "needs a 'datatype'"),
    (v2(tensor(datatype="BF16")), "unsupported datatype 'BF16'"),
    (v2(tensor(shape=[2, -1])), "'shape' must be an array of non-negative integers"),
    (v2(tensor(shape="2,3")), "'shape' must be an array of non-negative integers"),
    (v2(tensor(data=None)), "'data' must be an array, got null"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64"}]}, "has no 'data'"),
    (v2(tensor(data=[1, 2, 3, 4, 5])), "shape [2, 3] (6 values) but 5 data values"),
    (v2(tensor(data=[[1, 2], [3, 4], [5, 6]])), "nested data has shape [3, 2]"),
    (v2(tensor(data=[[1, 2, 3], [4, 5]])), "ragged"),
    (v2(tensor(data=[1, 2, "x", 4, 5, 6])), "holds strings, expected numbers"),
    (v2(tensor(data=[1, 2, {"v": 3}, 4, 5, 6])), "holds an object, expected numbers"),
    (v2(tensor(datatype="BYTES", data=["1", "2", "x", "4", "5", "6"])), "not a number"),
    (v2(tensor(datatype="INT32", data=[1, 2, 3.5, 4, 5, 6])), "INT32 but its data holds fractions"),
    (v2(tensor(shape=[2, 4], data=list(range(8)))), "has 4 features per row"),
    (v2(tensor(shape=[0, 3], data=[])), "the request has no rows"),
    (v2(tensor(shape=[6], data=list(range(6)))), "send one input of shape [N, 3]"),
    (v2(tensor(shape=[1, 2, 3])), "has 3 dimensions (shape [1, 2, 3]); an input has at most 2"),
    (
        v2(tensor(shape=[0] * 65, data=[])),
        "has 65 dimensions (shape [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ",
    ),
    (v2(tensor(shape=[2**63, 0], data=[])), "has shape [9223372036854775808, 0]; each dimension"),
    (
        v2(tensor(name="a", shape=[1], data=[1]), tensor(name="z", shape=[1], data=[1])),
        "unknown features 'z'; missing features 'b', 'c'",
    ),
    (
        v2(
            *(tensor(name=f, shape=[1], data=[1]) for f in "abc"),
            tensor(name="a", shape=[1], data=[2]),
        ),
        "two inputs have the same name",
    ),
    (
        v2(
            *(
                tensor(name=f, shape=[2 if f == "c" else 1], data=[1] * (2 if f == "c" else 1))
                for f in "abc"
            )
        ),
        "input 'c' has 2 rows but the others have 1",
    ),
    (
        v2(*(tensor(name=f, shape=[1, 2], data=[1, 2]) for f in "abc")),
        "input 'a' has shape [1, 2]; expected [N] or [N, 1]",
    ),
    (v2(outputs=[]), "'outputs' must be a non-empty array"),
    (v2(outputs=[{"name": "decision_function"}]), "unknown output 'decision_function'"),
    (v2(tensor(data=[1, 2, 3, 4, 5, float("inf")])), "row 1, feature 'c' is inf"),
]


@pytest.mark.parametrize(("doc", "message"), V2_BAD)
def test_v2_bad_requests_are_400s_that_say_what_is_wrong(doc: Any, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_v2_infer(doc, FEATURES, OUTPUTS, allow_nan=False)
    assert caught.value.status == 400
    assert message in caught.value.message


def test_v1_rows_as_arrays_or_objects() -> None:
    arrays = parse_v1_predict({"instances": [[1, 2, 3], [4, 5, 6]]}, FEATURES, allow_nan=False)
    objects = parse_v1_predict(
        {"instances": [{"c": 3, "b": 2, "a": 1}, {"a": 4, "b": 5, "c": 6}]},
        FEATURES,
        allow_nan=False,
    )
    assert arrays.tolist() == objects.tolist() == [[1, 2, 3], [4, 5, 6]]


V1_BAD: list[tuple[Any, str]] = [
    ("x", "must be a JSON object, got a string"),
    ({"inputs": [[1, 2, 3]]}, "needs 'instances'"),
    ({"instances": []}, "'instances' must be a non-empty array"),
    ({"instances": [[1, 2]]}, "instances[0] has 2 values; this model takes 3 features"),
    ({"instances": [[1, 2, 3], {"a": 1}]}, "each instance must be an array"),
    ({"instances": [1, 2, 3]}, "each instance must be an array"),
    ({"instances": [{"a": 1, "b": 2}]}, "instances[0]: missing features 'c'"),
    ({"instances": [{"a": 1, "b": 2, "c": 3, "d": 4}]}, "instances[0]: unknown features 'd'"),
    ({"instances": [[1, 2, "3"]]}, "holds strings, expected numbers"),
    ({"instances": [[1, 2, [3]]]}, "ragged"),
    ({"instances": [[1, None, 3]]}, "is a missing value"),
]


@pytest.mark.parametrize(("doc", "message"), V1_BAD)
def test_v1_bad_requests_are_400s_that_say_what_is_wrong(doc: Any, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_v1_predict(doc, FEATURES, allow_nan=False)
    assert caught.value.status == 400
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"", "the request body is empty"), (b"  ", "body is empty"), (b"{", "malformed JSON")],
)
def test_undecodable_bodies_are_400s(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        decode_json(body)
    assert caught.value.status == 400


def test_feedback_by_ids_or_by_rows() -> None:
    by_ids = parse_feedback(
        {"feedback": [{"id": "a-1-0", "label": "setosa"}, {"id": "a-1-1", "label": 2}]},
        FEATURES,
        regression=False,
        allow_nan=False,
    )
    assert by_ids == LabelledIds(("a-1-0", "a-1-1"), ("setosa", 2))
    by_rows = parse_feedback(
        {"instances": [[1, 2, 3]], "labels": [1.5]}, FEATURES, regression=True, allow_nan=False
    )
    assert isinstance(by_rows, LabelledRows)
    assert by_rows.rows.tolist() == [[1, 2, 3]] and by_rows.labels == (1.5,)


FEEDBACK_BAD: list[tuple[Any, bool, str]] = [
    ({}, False, "needs 'feedback'"),
    ({"feedback": []}, False, "'feedback' must be a non-empty array"),
    ({"feedback": [{"label": 1}]}, False, "feedback[0].id must be a prediction id"),
    ({"feedback": [{"id": "x"}]}, False, "feedback[0] has no 'label'"),
    ({"feedback": [{"id": "x", "label": [1]}]}, False, "must be a class label"),
    ({"feedback": [{"id": "x", "label": "high"}]}, True, "must be a finite number"),
    ({"instances": [[1, 2, 3]]}, False, "one label per instance (1)"),
    ({"instances": [[1, 2, 3]], "labels": [1, 2]}, False, "one label per instance (1)"),
    ({"instances": [[1, 2]], "labels": [1]}, False, "has 2 values"),
]


@pytest.mark.parametrize(("doc", "regression", "message"), FEEDBACK_BAD)
def test_bad_feedback_is_a_400(doc: Any, regression: bool, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_feedback(doc, FEATURES, regression=regression, allow_nan=False)
    assert caught.value.status == 400
    assert message in caught.value.message
