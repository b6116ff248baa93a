"""Request parsing and validation for the Open Inference Protocol (v2) and KServe v1. Pure.

Every function here turns an already decoded JSON document (and, with the binary data
extension, the bytes after it; or the tensors of a gRPC request, see :mod:`.grpc_api`) into
numpy rows of shape ``(N, n_features)`` (float64, in the model's feature order) or raises
:class:`ProtocolError` with the HTTP status and a message that says what was wrong. Nothing
here does I/O, so the whole table of bad inputs is unit-tested without a server.

A model that takes raw rows (text categories, nulls: see :mod:`.table`) passes its
``columns``: the same requests then become a table instead, each column decoded as its kind
asks; without them the numeric path is exactly as it always was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from mlops_operator.runtime.server.errors import ProtocolError as ProtocolError
from mlops_operator.runtime.server.table import (
    Column,
    Table,
    elements,
    table_from_instances,
    table_from_tensors,
)
from mlops_operator.runtime.server.tensors import BYTES, NUMERIC_DTYPES, BinaryReader, decode

Rows = npt.NDArray[np.float64]
Inputs = Rows | Table
"""What a request's rows become: float64 rows, or a table for a model of raw rows."""

NanMask = bool | npt.NDArray[np.bool_]
"""Whether missing values are taken: for every feature, or per feature."""

OUTPUT_PREDICT: Final = "predict"
"""Name of the output holding predicted labels (classifiers) or values (regressors)."""

OUTPUT_PROBA: Final = "predict_proba"
"""Name of the output holding class probabilities, ``[N, n_classes]`` (classifiers only)."""

DATATYPES: Final = frozenset({*NUMERIC_DTYPES, BYTES})
"""Input datatypes accepted by ``/infer``. BYTES holds text: categories for a model of raw
rows, numbers written as text for the others."""

MAX_DIMS: Final = 2
"""Most dimensions an input tensor may have: ``[N, n_features]``, ``[N, 1]`` or ``[N]``."""

MAX_DIM_SIZE: Final = 2**31 - 1
"""Largest size of one dimension; numpy refuses shapes whose sizes multiply past 2**63,
even with no elements, so every dimension is bounded."""

_INTEGER_DATATYPES: Final = frozenset(
    name for name, dtype in NUMERIC_DTYPES.items() if dtype.kind in "iu"
)
_MAX_LISTED: Final = 10


@dataclass(frozen=True)
class InferRequest:
    """A validated v2 inference request."""

    rows: Inputs
    outputs: tuple[str, ...]
    """Requested outputs, in request order; ``("predict",)`` when the request names none."""
    id: str | None
    binary_outputs: frozenset[str] = frozenset()
    """Outputs to return as binary data (HTTP binary data extension)."""


@dataclass(frozen=True)
class Tensor:
    """One input tensor, from either protocol, before it becomes feature columns."""

    name: str
    shape: tuple[int, ...]
    data: npt.NDArray[Any]
    """float64 (or numbers that cast to it), shaped as declared; for a model of raw rows the
    elements as sent (see :func:`.table.elements`)."""


@dataclass(frozen=True)
class LabelledIds:
    """Feedback as ground-truth labels for earlier predictions, by prediction id."""

    ids: tuple[str, ...]
    labels: tuple[Any, ...]


@dataclass(frozen=True)
class LabelledRows:
    """Feedback as rows with their ground-truth labels: predicted now and compared."""

    rows: Inputs
    labels: tuple[Any, ...]


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def decode_json(body: bytes) -> Any:
    """The JSON document in ``body``; malformed or empty JSON is a 400."""
    if not body.strip():
        raise ProtocolError(400, "the request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(400, f"malformed JSON: {exc}") from exc


def _object(doc: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(doc, dict):
        raise ProtocolError(400, f"{what} must be a JSON object, got {_json_type(doc)}")
    return doc


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _to_numbers(data: Any, where: str, *, strings: bool) -> npt.NDArray[Any]:
    """``data`` (a number, or nested arrays of numbers) as a numeric or object array.

    JSON ``null`` becomes NaN (a missing value) and booleans 1 and 0 (numpy mixes them
    into numbers anyway; refusing them would cost a scan of every value). Strings are
    parsed as numbers only when ``strings`` is set (BYTES tensors).
    """
    try:
        arr = np.asarray(data)
    except ValueError as exc:
        raise ProtocolError(
            400, f"{where} is ragged: its nested arrays have different lengths"
        ) from exc
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr
    if kind in "US" and strings:
        try:
            return arr.astype(np.float64)
        except ValueError as exc:
            raise ProtocolError(400, f"{where} holds a value that is not a number: {exc}") from exc
    if kind == "O":
        flat = arr.ravel()
        out = np.empty(flat.size, dtype=np.float64)
        for i, value in enumerate(flat):
            if value is None:
                out[i] = math.nan
            elif isinstance(value, int | float):
                out[i] = float(value)
            elif strings and isinstance(value, str | bytes):
                try:
                    out[i] = float(value)
                except ValueError as exc:
                    raise ProtocolError(
                        400, f"{where} holds {value!r}, which is not a number"
                    ) from exc
            elif isinstance(value, list):
                raise ProtocolError(
                    400, f"{where} is ragged: its nested arrays have different depths"
                )
            else:
                raise ProtocolError(400, f"{where} holds {_json_type(value)}, expected numbers")
        return out.reshape(arr.shape)
    raise ProtocolError(400, f"{where} holds strings, expected numbers")


def check_range(rows: Rows, features: Sequence[str], limit: float) -> None:
    """Refuse finite values beyond ``limit`` in magnitude: the largest number the model's
    input dtype holds (a float32 model fails on 1e39, which float64 holds)."""
    bad = np.abs(rows) > limit
    if not bad.any():
        return
    row, col = (int(i) for i in np.argwhere(bad)[0])
    raise ProtocolError(
        400,
        f"row {row}, feature {features[col]!r} is {rows[row, col]}, beyond the largest "
        f"magnitude this model takes ({limit:.7g})",
    )


def check_finite(rows: Rows, features: Sequence[str], *, allow_nan: NanMask) -> None:
    """Refuse infinities always, and NaN (missing values) where the model cannot take them
    (``allow_nan``: for every feature, or one flag per feature)."""
    bad = ~np.isfinite(rows)
    if isinstance(allow_nan, bool):
        if allow_nan:
            bad &= ~np.isnan(rows)
    else:
        bad &= ~(np.isnan(rows) & allow_nan)
    if not bad.any():
        return
    row, col = (int(i) for i in np.argwhere(bad)[0])
    value = rows[row, col]
    what = "a missing value (null or NaN)" if np.isnan(value) else f"{value}"
    hint = ""
    if np.isnan(value):
        hint = (
            f"; this model does not accept missing values in {features[col]!r}"
            if not isinstance(allow_nan, bool)
            else "; this model does not accept missing values"
        )
    raise ProtocolError(400, f"row {row}, feature {features[col]!r} is {what}{hint}")


def _shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise ProtocolError(400, f"{where}: 'shape' must be an array of non-negative integers")
    return check_shape(raw, where)


def check_shape(shape: Sequence[int], where: str) -> tuple[int, ...]:
    """``shape`` (non-negative sizes) if a model input can have it: at most :data:`MAX_DIMS`
    dimensions, each at most :data:`MAX_DIM_SIZE`; else a 400 that says so."""
    if len(shape) > MAX_DIMS:
        raise ProtocolError(
            400,
            f"{where} has {len(shape)} dimensions (shape {_short(shape)}); an input has at "
            f"most {MAX_DIMS}: [N, n_features], [N, 1] or [N]",
        )
    if any(d > MAX_DIM_SIZE for d in shape):
        raise ProtocolError(
            400, f"{where} has shape {_short(shape)}; each dimension is at most {MAX_DIM_SIZE}"
        )
    return tuple(shape)


def _short(shape: Sequence[int]) -> str:
    shown = ", ".join(str(d) for d in shape[:_MAX_LISTED])
    return f"[{shown}, ...]" if len(shape) > _MAX_LISTED else f"[{shown}]"


def _parameters(raw: Any, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ProtocolError(400, f"{where}: 'parameters' must be a JSON object")
    return raw


def _flag(parameters: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise ProtocolError(400, f"{where}: parameter {key!r} must be true or false")
    return value


def check_datatype(datatype: Any, where: str) -> str:
    """``datatype`` if the server takes inputs of it, else a 400 listing those it takes."""
    if not isinstance(datatype, str) or not datatype:
        raise ProtocolError(
            400, f"{where} needs a 'datatype', one of {', '.join(sorted(DATATYPES))}"
        )
    if datatype not in DATATYPES:
        raise ProtocolError(
            400,
            f"{where} has unsupported datatype {datatype!r}; "
            f"expected one of {', '.join(sorted(DATATYPES))}",
        )
    return datatype


def tensor_from_data(
    name: str, datatype: str, shape: tuple[int, ...], data: Any, where: str, *, raw: bool = False
) -> Tensor:
    """A tensor from its elements as given: nested lists (JSON) or a flat sequence (gRPC's
    typed contents); checked against the shape and the datatype. ``raw``: for a model of raw
    rows, the elements are kept as sent, for each column to decode."""
    if raw:
        return Tensor(name, shape, elements(data, datatype, shape, where))
    values = _to_numbers(data, f"data of {where}", strings=datatype == BYTES)
    expected = math.prod(shape)
    if values.ndim > 1:
        if values.shape != shape:
            raise ProtocolError(
                400,
                f"{where} has shape {list(shape)} but its nested data has shape "
                f"{list(values.shape)}",
            )
    elif values.size != expected:
        raise ProtocolError(
            400,
            f"{where} has shape {list(shape)} ({expected} values) but {values.size} data values",
        )
    if datatype in _INTEGER_DATATYPES and values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        if not np.array_equal(finite, np.round(finite)):
            raise ProtocolError(400, f"{where} is {datatype} but its data holds fractions")
    return Tensor(name, shape, values.astype(np.float64, copy=False).reshape(shape))


def tensor_from_binary(
    name: str,
    datatype: str,
    shape: tuple[int, ...],
    raw: bytes,
    where: str,
    *,
    keep: bool = False,
) -> Tensor:
    """A tensor from its elements as bytes (binary data extension, gRPC raw contents);
    ``keep``: BYTES elements are kept as bytes (for a model of raw rows)."""
    values = decode(datatype, shape, raw, where)
    if keep:
        return Tensor(name, shape, values)
    if datatype == BYTES:
        return tensor_from_data(name, datatype, shape, values.ravel().tolist(), where)
    return Tensor(name, shape, values)


def _tensor(raw: Any, index: int, binary: BinaryReader, keep: bool) -> Tensor:
    """One v2 input tensor of a JSON request: its data inline, or in the binary data."""
    tensor = _object(raw, f"inputs[{index}]")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(400, f"inputs[{index}] needs a 'name' (a non-empty string)")
    where = f"input {name!r}"
    datatype = check_datatype(tensor.get("datatype"), where)
    shape = _shape(tensor.get("shape"), where)
    parameters = _parameters(tensor.get("parameters"), where)
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ProtocolError(400, f"{where}: 'binary_data_size' must be a non-negative integer")
        if "data" in tensor:
            raise ProtocolError(
                400, f"{where} has both 'data' and binary data (binary_data_size); send one"
            )
        return tensor_from_binary(name, datatype, shape, binary.take(size, where), where, keep=keep)
    if "data" not in tensor:
        raise ProtocolError(400, f"{where} has no 'data' (nor binary data: binary_data_size)")
    if not isinstance(tensor["data"], list):
        raise ProtocolError(
            400, f"{where}: 'data' must be an array, got {_json_type(tensor['data'])}"
        )
    return tensor_from_data(name, datatype, shape, tensor["data"], where, raw=keep)


def _outputs(
    raw: Any, output_names: Sequence[str], binary_default: bool
) -> tuple[tuple[str, ...], frozenset[str]]:
    if raw is None:
        return (OUTPUT_PREDICT,), frozenset({OUTPUT_PREDICT} if binary_default else ())
    if not isinstance(raw, list) or not raw:
        raise ProtocolError(400, "'outputs' must be a non-empty array of {\"name\": ...} objects")
    requested: list[tuple[Any, Mapping[str, Any]]] = []
    for i, item in enumerate(raw):
        output = _object(item, f"outputs[{i}]")
        requested.append(
            (output.get("name"), _parameters(output.get("parameters"), f"outputs[{i}]"))
        )
    return requested_outputs(requested, output_names, binary_default)


def requested_outputs(
    requested: Sequence[tuple[Any, Mapping[str, Any]]],
    output_names: Sequence[str],
    binary_default: bool,
) -> tuple[tuple[str, ...], frozenset[str]]:
    """The outputs a request names (each with its parameters), in order and without
    repeats, and those of them to return as binary data."""
    names: list[str] = []
    binary: set[str] = set()
    for name, parameters in requested:
        if not isinstance(name, str) or name not in output_names:
            raise ProtocolError(
                400,
                f"unknown output {name!r}; this model has outputs {_listed(list(output_names))}",
            )
        where = f"output {name!r}"
        if "classification" in parameters:
            raise ProtocolError(
                400,
                f"{where}: the 'classification' parameter is not supported; ask for "
                f"{OUTPUT_PROBA!r} to get class probabilities",
            )
        if _flag(parameters, "binary_data", where, binary_default):
            binary.add(name)
        if name not in names:
            names.append(name)
    return tuple(names), frozenset(binary)


def parse_v2_infer(
    doc: Any,
    features: Sequence[str],
    output_names: Sequence[str],
    *,
    allow_nan: NanMask,
    binary: bytes = b"",
    columns: Sequence[Column] | None = None,
) -> InferRequest:
    """Validate a v2 ``/infer`` request body (its JSON part, and the ``binary`` data after it
    with the binary data extension).

    The features come either as ONE tensor of shape ``[N, n_features]`` (any name), or as one
    tensor per feature, named after it, of shape ``[N]`` or ``[N, 1]``. With ``columns``
    (a model of raw rows) they become a table.
    """
    body = _object(doc, "the request body")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(400, "'id' must be a string")
    if "parameters" in body and not isinstance(body["parameters"], dict | None):
        raise ProtocolError(400, "'parameters' must be a JSON object")
    parameters = _parameters(body.get("parameters"), "the request")
    binary_default = _flag(parameters, "binary_data_output", "the request", False)
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError(400, "'inputs' must be a non-empty array of input tensors")
    outputs, binary_outputs = _outputs(body.get("outputs"), output_names, binary_default)
    reader = BinaryReader(binary)
    keep = columns is not None
    tensors = [_tensor(raw, i, reader, keep) for i, raw in enumerate(raw_inputs)]
    reader.finish()
    rows = inputs_from_tensors(tensors, features, allow_nan=allow_nan, columns=columns)
    return InferRequest(rows=rows, outputs=outputs, id=request_id, binary_outputs=binary_outputs)


def inputs_from_tensors(
    tensors: Sequence[Tensor],
    features: Sequence[str],
    *,
    allow_nan: NanMask,
    columns: Sequence[Column] | None,
) -> Inputs:
    """The rows of a request's input tensors: a table with ``columns``, else float64 rows."""
    if columns is not None:
        return table_from_tensors([(t.name, t.shape, t.data) for t in tensors], columns)
    return rows_from_tensors(tensors, features, allow_nan=allow_nan)


def rows_from_tensors(
    tensors: Sequence[Tensor], features: Sequence[str], *, allow_nan: NanMask
) -> Rows:
    """The rows of a request's input tensors, in the model's feature order."""
    n_features = len(features)
    names = [t.name for t in tensors]
    if (
        len(tensors) == 1
        and len(tensors[0].shape) == 2
        and (n_features > 1 or names[0] not in features)
    ):
        name, shape, data = tensors[0].name, tensors[0].shape, tensors[0].data
        if shape[1] != n_features:
            raise ProtocolError(
                400,
                f"input {name!r} has {shape[1]} features per row (shape {list(shape)}); "
                f"this model takes {n_features}: {_listed(list(features))}",
            )
        rows = data.astype(np.float64, copy=False)
    else:
        rows = _per_feature(tensors, features)
    if rows.shape[0] == 0:
        raise ProtocolError(400, "the request has no rows")
    check_finite(rows, features, allow_nan=allow_nan)
    return rows


def _per_feature(tensors: Sequence[Tensor], features: Sequence[str]) -> Rows:
    by_name = {t.name: (t.shape, t.data) for t in tensors}
    if len(by_name) != len(tensors):
        raise ProtocolError(400, "two inputs have the same name")
    missing = [f for f in features if f not in by_name]
    unknown = [n for n in by_name if n not in features]
    if unknown or missing:
        if len(tensors) == 1:
            name, shape = tensors[0].name, tensors[0].shape
            raise ProtocolError(
                400,
                f"input {name!r} has shape {list(shape)}; send one input of shape "
                f"[N, {len(features)}] or one input per feature of shape [N]",
            )
        problems = []
        if unknown:
            problems.append(f"unknown features {_listed(unknown)}")
        if missing:
            problems.append(f"missing features {_listed(missing)}")
        raise ProtocolError(400, f"inputs do not match the model's features: {'; '.join(problems)}")
    columns = []
    count: int | None = None
    for feature in features:
        shape, data = by_name[feature]
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(
                400, f"input {feature!r} has shape {list(shape)}; expected [N] or [N, 1]"
            )
        if count is None:
            count = shape[0]
        elif shape[0] != count:
            raise ProtocolError(
                400, f"input {feature!r} has {shape[0]} rows but the others have {count}"
            )
        columns.append(data.reshape(-1))
    return np.column_stack(columns).astype(np.float64, copy=False)


def parse_rows(
    instances: Any,
    features: Sequence[str],
    *,
    allow_nan: NanMask,
    columns: Sequence[Column] | None = None,
) -> Inputs:
    """KServe v1 ``instances``: rows as arrays in feature order, or objects keyed by feature;
    a table with ``columns`` (a model of raw rows)."""
    if columns is not None:
        return table_from_instances(instances, columns)
    if not isinstance(instances, list) or not instances:
        raise ProtocolError(400, "'instances' must be a non-empty array of rows")
    n_features = len(features)
    if all(isinstance(row, dict) for row in instances):
        expected = set(features)
        for i, row in enumerate(instances):
            if row.keys() != expected:
                missing = [f for f in features if f not in row]
                unknown = [k for k in row if k not in expected]
                problems = []
                if unknown:
                    problems.append(f"unknown features {_listed(unknown)}")
                if missing:
                    problems.append(f"missing features {_listed(missing)}")
                raise ProtocolError(400, f"instances[{i}]: {'; '.join(problems)}")
        data: Any = [[row[f] for f in features] for row in instances]
    elif all(isinstance(row, list) for row in instances):
        data = instances
        for i, row in enumerate(instances):
            if len(row) != n_features:
                raise ProtocolError(
                    400,
                    f"instances[{i}] has {len(row)} values; this model takes {n_features} "
                    f"features: {_listed(list(features))}",
                )
    else:
        raise ProtocolError(
            400, "each instance must be an array of feature values or an object keyed by feature"
        )
    rows = _to_numbers(data, "instances", strings=False)
    if rows.ndim != 2:
        raise ProtocolError(400, "each instance must be a flat array of numbers")
    rows = rows.astype(np.float64, copy=False)
    check_finite(rows, features, allow_nan=allow_nan)
    return rows


def parse_v1_predict(
    doc: Any,
    features: Sequence[str],
    *,
    allow_nan: NanMask,
    columns: Sequence[Column] | None = None,
) -> Inputs:
    """Validate a KServe v1 ``:predict`` body, ``{"instances": [...]}``."""
    body = _object(doc, "the request body")
    if "instances" not in body:
        raise ProtocolError(400, "the request needs 'instances': an array of rows")
    return parse_rows(body["instances"], features, allow_nan=allow_nan, columns=columns)


def _label(value: Any, where: str, *, regression: bool) -> Any:
    if regression:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ProtocolError(400, f"{where} must be a finite number for a regression model")
        return value
    if value is None or isinstance(value, list | dict):
        raise ProtocolError(400, f"{where} must be a class label (a string or a number)")
    return value


def parse_feedback(
    doc: Any,
    features: Sequence[str],
    *,
    regression: bool,
    allow_nan: NanMask,
    columns: Sequence[Column] | None = None,
) -> LabelledIds | LabelledRows:
    """Validate a feedback body: ``{"feedback": [{"id", "label"}, ...]}`` or
    ``{"instances": [...], "labels": [...]}``."""
    body = _object(doc, "the request body")
    if "feedback" in body:
        items = body["feedback"]
        if not isinstance(items, list) or not items:
            raise ProtocolError(400, "'feedback' must be a non-empty array of {id, label} objects")
        ids: list[str] = []
        labels: list[Any] = []
        for i, raw in enumerate(items):
            item = _object(raw, f"feedback[{i}]")
            pid = item.get("id")
            if not isinstance(pid, str) or not pid:
                raise ProtocolError(400, f"feedback[{i}].id must be a prediction id (a string)")
            if "label" not in item:
                raise ProtocolError(400, f"feedback[{i}] has no 'label'")
            ids.append(pid)
            labels.append(_label(item["label"], f"feedback[{i}].label", regression=regression))
        return LabelledIds(tuple(ids), tuple(labels))
    if "instances" in body:
        rows = parse_rows(body["instances"], features, allow_nan=allow_nan, columns=columns)
        raw_labels = body.get("labels")
        if not isinstance(raw_labels, list) or len(raw_labels) != rows.shape[0]:
            raise ProtocolError(
                400, f"'labels' must be an array with one label per instance ({rows.shape[0]})"
            )
        return LabelledRows(
            rows,
            tuple(
                _label(v, f"labels[{i}]", regression=regression) for i, v in enumerate(raw_labels)
            ),
        )
    raise ProtocolError(
        400,
        'the request needs \'feedback\' ([{"id": ..., "label": ...}]) '
        "or 'instances' with 'labels'",
    )
