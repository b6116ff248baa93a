"""Raw rows for models trained on raw tables: v1 instances and v2 tensors become one table
(numbers as floats, categories as text, None/NaN for missing), and every bad row is a 400
naming its row and column."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mlops_operator.runtime.server.protocol import (
    ProtocolError,
    parse_feedback,
    parse_v1_predict,
    parse_v2_infer,
)
from mlops_operator.runtime.server.table import (
    CATEGORICAL,
    NUMERIC,
    Column,
    check_range,
    unseen_categories,
)
from mlops_operator.runtime.server.tensors import encode

COLUMNS = (
    Column("plan", CATEGORICAL, "BYTES", True, frozenset({"basic", "pro"})),
    Column("tenure", NUMERIC, "FP64", nullable=False),
    Column("charges", NUMERIC, "FP64"),
    Column("partner", CATEGORICAL, "BOOL", True, frozenset({"True", "False"})),
    Column("code", CATEGORICAL, "INT64", True, frozenset({"10", "20"})),
    Column("customer_id", CATEGORICAL, "BYTES", used=False),
)
FEATURES = tuple(c.name for c in COLUMNS)
OUTPUTS = ("predict", "predict_proba")


def v1(*instances: Any) -> Any:
    return parse_v1_predict(
        {"instances": list(instances)}, FEATURES, allow_nan=False, columns=COLUMNS
    )


def v2(*inputs: dict[str, Any], binary: bytes = b"") -> Any:
    return parse_v2_infer(
        {"inputs": list(inputs)},
        FEATURES,
        OUTPUTS,
        allow_nan=False,
        binary=binary,
        columns=COLUMNS,
    ).rows


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ProtocolError) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 400
    return caught.value.message


def row(**values: Any) -> dict[str, Any]:
    base = {"plan": "basic", "tenure": 3, "charges": 20.5, "partner": True, "code": 10}
    return {**base, **values}


def test_v1_objects_become_a_table_of_floats_and_text() -> None:
    table = v1(row(), row(plan="pro", charges=None, partner=False, code=20, customer_id="c1"))
    assert table.shape == (2, 6)
    assert table[0, :5].tolist() == ["basic", 3.0, 20.5, "True", "10"]
    assert table[0, 5] is None  # a dropped column may be left out
    assert table[1, 0] == "pro" and math.isnan(table[1, 2]) and table[1, 3] == "False"
    assert table[1, 5] == "c1"


def test_v1_arrays_in_feature_order_take_strings_numbers_and_nulls() -> None:
    table = v1(["pro", "7.5", None, "True", 20.0, None])
    assert table[0, 0] == "pro" and table[0, 1] == 7.5 and math.isnan(table[0, 2])
    assert table[0, 4] == "20"  # a float code written as the trainer wrote the category


def test_numbers_and_booleans_in_a_categorical_column_are_its_categories() -> None:
    table = v1(row(plan=5, code=10.0, partner="False"))
    assert table[0, 0] == "5" and table[0, 4] == "10" and table[0, 3] == "False"


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ({"tenure": 3}, "instances[0]: missing features 'plan', 'charges', 'partner', 'code'"),
        (row(colour="red"), "instances[0]: unknown features 'colour'"),
        (row(tenure="three"), "row 0, feature 'tenure' is the string 'three', but 'tenure' is"),
        (row(tenure=None), "row 0, feature 'tenure' is missing (null), but this model cannot"),
        (row(tenure=[1]), "row 0, feature 'tenure' is an array, but 'tenure' is numeric"),
        (row(plan={"a": 1}), "row 0, feature 'plan' is an object, but 'plan' takes one"),
        (row(charges=1e400), "row 0, feature 'charges' is inf, not a finite number"),
        (row(charges=10**400), "row 0, feature 'charges' is 1000"),
    ],
)
def test_v1_bad_rows_name_the_column(instance: dict[str, Any], message: str) -> None:
    assert message in refused(v1, row(), instance).replace("row 1", "row 0").replace(
        "instances[1]", "instances[0]"
    )


def test_v1_arrays_of_the_wrong_length_list_the_features() -> None:
    message = refused(v1, ["basic", 3])
    assert message.startswith("instances[0] has 2 values; this model takes 6 features: 'plan'")


def tensor(name: str, datatype: str, data: list[Any], shape: list[int] | None = None) -> Any:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def test_v2_one_tensor_per_feature_with_bytes_categories_in_any_order() -> None:
    table = v2(
        tensor("tenure", "INT64", [3, 4]),
        tensor("plan", "BYTES", ["basic", "gold"]),
        tensor("charges", "FP64", [20.5, None]),
        tensor("partner", "BOOL", [True, False]),
        tensor("code", "INT64", [[10], [20]], [2, 1]),
    )
    assert table[:, 0].tolist() == ["basic", "gold"]
    assert table[:, 1].tolist() == [3.0, 4.0]
    assert table[0, 2] == 20.5 and math.isnan(table[1, 2])
    assert table[:, 3].tolist() == ["True", "False"]
    assert table[:, 4].tolist() == ["10", "20"]


def binary_input(name: str, datatype: str, size: int, rows: int = 2) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": [rows],
        "parameters": {"binary_data_size": size},
    }


def test_v2_binary_bytes_and_numbers() -> None:
    plan, tenure = encode("BYTES", ["pro", "basic"]), encode("FP32", [1.5, 2.0])
    rest = [tensor("charges", "FP64", [1, 2]), tensor("partner", "BOOL", [True, True])]
    table = v2(
        binary_input("plan", "BYTES", len(plan)),
        binary_input("tenure", "FP32", len(tenure)),
        *rest,
        tensor("code", "BYTES", ["10", "30"]),
        binary=plan + tenure,
    )
    assert table[:, 0].tolist() == ["pro", "basic"] and table[:, 1].tolist() == [1.5, 2.0]


def test_v2_one_2d_tensor_of_all_features() -> None:
    table = v2(tensor("x", "BYTES", [["basic", "3", None, "True", "10", "c9"]], [1, 6]))
    assert table[0, :2].tolist() == ["basic", 3.0] and table[0, 5] == "c9"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            [tensor("plan", "BYTES", ["basic"]), tensor("tenure", "FP64", [1, 2])],
            "missing features 'charges', 'partner', 'code'",
        ),
        (
            [
                tensor("plan", "BYTES", ["basic"]),
                tensor("tenure", "FP64", [1, 2]),
                tensor("charges", "FP64", [1]),
                tensor("partner", "BOOL", [True]),
                tensor("code", "INT64", [10]),
            ],
            "input 'tenure' has 2 rows but input 'plan' has 1: every feature needs one value",
        ),
        (
            [
                tensor("plan", "FP64", ["basic"]),
                tensor("tenure", "FP64", [1]),
                tensor("charges", "FP64", [1]),
                tensor("partner", "BOOL", [True]),
                tensor("code", "INT64", [10]),
            ],
            "input 'plan' is FP64 but holds the text 'basic'; send categories as BYTES",
        ),
        (
            [
                tensor("plan", "BYTES", ["basic"]),
                tensor("tenure", "BYTES", ["soon"]),
                tensor("charges", "FP64", [1]),
                tensor("partner", "BOOL", [True]),
                tensor("code", "INT64", [10]),
            ],
            "row 0, feature 'tenure' is the string 'soon', but 'tenure' is numeric",
        ),
        (
            [tensor("x", "BYTES", [["basic", "3"]], [1, 2])],
            "input 'x' has 2 features per row (shape [1, 2]); this model takes 6",
        ),
        (
            [tensor("plan", "BYTES", [["basic"], ["pro", "x"]], [2, 1])],
            "data of input 'plan' is ragged",
        ),
    ],
)
def test_v2_bad_tensors_name_the_column(inputs: list[dict[str, Any]], message: str) -> None:
    assert message in refused(v2, *inputs)


def test_bytes_that_are_not_utf8_are_refused() -> None:
    bad = encode("BYTES", [b"\xff\xfe"])
    inputs = [
        binary_input("plan", "BYTES", len(bad), rows=1),
        tensor("tenure", "FP64", [1]),
        tensor("charges", "FP64", [1]),
        tensor("partner", "BOOL", [True]),
        tensor("code", "INT64", [10]),
    ]
    assert "row 0, feature 'plan' is not valid UTF-8 text" in refused(v2, *inputs, binary=bad)


def test_feedback_rows_of_a_raw_model_are_a_table() -> None:
    parsed = parse_feedback(
        {"instances": [row()], "labels": ["yes"]},
        FEATURES,
        regression=False,
        allow_nan=False,
        columns=COLUMNS,
    )
    assert parsed.labels == ("yes",)  # type: ignore[union-attr]
    assert parsed.rows[0, 0] == "basic"  # type: ignore[union-attr]


def test_unseen_categories_are_counted_by_column_and_missing_ones_are_not() -> None:
    table = v1(row(plan="gold"), row(plan="gold", code=30), row(plan=None))
    assert unseen_categories(table, COLUMNS) == {"plan": 2, "code": 1}


def test_numbers_beyond_the_models_range_name_the_column() -> None:
    table = v1(row(), row(charges=1e39))
    check_range(v1(row()), COLUMNS, 3.4e38)
    message = refused(check_range, table, COLUMNS, 3.4e38)
    assert message.startswith("row 1, feature 'charges' is 1e+39, beyond the largest magnitude")


def test_the_numeric_path_is_unchanged_without_columns() -> None:
    rows = parse_v1_predict({"instances": [[1, 2]]}, ("a", "b"), allow_nan=False)
    assert rows.dtype == np.float64
    message = refused(parse_v1_predict, {"instances": [[1, None]]}, ("a", "b"), allow_nan=False)
    assert message == (
        "row 0, feature 'b' is a missing value (null or NaN); this model does not accept "
        "missing values"
    )


def test_a_per_feature_mask_takes_missing_values_only_where_the_model_does() -> None:
    mask = np.array([True, False])
    rows = parse_v1_predict({"instances": [[None, 2]]}, ("a", "b"), allow_nan=mask)
    assert math.isnan(rows[0, 0])
    message = refused(parse_v1_predict, {"instances": [[1, None]]}, ("a", "b"), allow_nan=mask)
    assert message.endswith("this model does not accept missing values in 'b'")
