"""How a Prometheus ``/api/v1/query`` answer becomes one metric value, or the reason why not."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_operator.monitoring.measure import PromResult, interpret_query_response


def _vector(*values: str) -> dict[str, Any]:
    return {
        "resultType": "vector",
        "result": [
            {"metric": {"pod": f"p{i}"}, "value": [1700000000.5, value]}
            for i, value in enumerate(values)
        ],
    }


def test_a_single_sample_vector_is_the_value() -> None:
    assert interpret_query_response(_vector("0.93")) == PromResult(0.93, "")


def test_a_scalar_is_the_value() -> None:
    payload = {"resultType": "scalar", "result": [1700000000, "42"]}
    assert interpret_query_response(payload) == PromResult(42.0, "")


def test_an_empty_vector_has_no_value_and_says_so() -> None:
    assert interpret_query_response(_vector()) == PromResult(None, "query returned no samples")


def test_several_series_have_no_value_and_the_message_says_how_to_aggregate() -> None:
    result = interpret_query_response(_vector("1", "2", "3"))

    assert result.value is None
    assert "3 series" in result.message
    assert "sum(" in result.message and "max(" in result.message


@pytest.mark.parametrize("raw", ["NaN", "+Inf", "-Inf"])
def test_non_finite_values_have_no_value(raw: str) -> None:
    result = interpret_query_response(_vector(raw))

    assert result.value is None
    assert raw in result.message


def test_a_range_vector_has_no_value_and_suggests_an_instant_function() -> None:
    payload = {
        "resultType": "matrix",
        "result": [{"metric": {}, "values": [[1, "1"], [2, "2"]]}],
    }
    result = interpret_query_response(payload)

    assert result.value is None
    assert "range vector" in result.message and "rate(" in result.message


def test_a_string_result_has_no_value() -> None:
    payload = {"resultType": "string", "result": [1, "hello"]}
    assert interpret_query_response(payload).value is None


@pytest.mark.parametrize(
    "payload",
    [
        {"resultType": "histogram", "result": []},
        {"resultType": "vector", "result": {}},
        {"resultType": "vector", "result": [{"metric": {}, "value": "1"}]},
        {"resultType": "scalar", "result": [1, "not a number"]},
    ],
)
def test_a_malformed_answer_is_a_value_error(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        interpret_query_response(payload)
