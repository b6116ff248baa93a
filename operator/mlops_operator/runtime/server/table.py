"""Raw rows: numbers, text categories, booleans and nulls, for models that take them. Pure.

A model trained on a raw table (a scikit-learn Pipeline whose ColumnTransformer imputes and
encodes, see :mod:`mlops_operator.runtime.trainer.preprocess`) takes rows as applications
have them. Each feature is a :class:`Column`: numeric or categorical, whether it takes a
missing value, the categories the model knows. A request becomes a *table*: a 2-D object
array in the model's feature order, numeric columns as floats (NaN for a missing value) and
categorical columns as text (``None`` for a missing value), text as the trainer turned each
category into text (``str`` of the value: ``True``, ``10``).

Every refusal is a :class:`~.errors.ProtocolError` (400) naming the row and the column, so
the client can fix its request from the message alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mlops_operator.runtime.server.errors import ProtocolError

NUMERIC: Final = "numeric"
CATEGORICAL: Final = "categorical"

Table = npt.NDArray[Any]
"""``(N, n_features)`` objects: floats in numeric columns, text or ``None`` in categorical."""

_MAX_LISTED: Final = 10


@dataclass(frozen=True)
class Column:
    """One input feature of a model that takes raw rows."""

    name: str
    kind: str
    """:data:`NUMERIC` or :data:`CATEGORICAL`."""
    datatype: str
    """The v2 datatype its tensor has, as the model's metadata gives it: ``FP64`` or
    ``INT64`` for numbers, ``BYTES`` (text) or ``BOOL`` (booleans), or ``INT64`` (codes)
    for categories. Others are taken too: numbers for a category, numbers as text."""
    nullable: bool = True
    """Whether a missing value (null) is taken: the model imputes it, or had missing values
    there in training."""
    categories: frozenset[str] | None = None
    """The categories the model knows; another one is *unseen* (encoded as none of them,
    and counted). ``None`` when not known."""
    used: bool = True
    """``False`` for a column the preprocessing drops: a request may leave it out."""


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _mismatch(missing: Sequence[str], unknown: Sequence[str]) -> str:
    """The missing and unknown features of a request, as one phrase."""
    problems = []
    if missing:
        problems.append(f"missing features {_listed(missing)}")
    if unknown:
        problems.append(f"unknown features {_listed(unknown)}")
    return "; ".join(problems)


def _where(row: int, column: Column) -> str:
    return f"row {row}, feature {column.name!r}"


def _kind_of_value(value: Any) -> str:
    if isinstance(value, list | tuple | np.ndarray):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _text(value: bytes, row: int, column: Column) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            400, f"{_where(row, column)} is not valid UTF-8 text: {exc.reason}"
        ) from exc


def _number(value: Any, row: int, column: Column) -> float:
    if value is None:
        return math.nan
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = _text(value, row, column)
    if isinstance(value, bool | int | float):
        try:
            return float(value)
        except OverflowError:
            raise ProtocolError(
                400, f"{_where(row, column)} is {value}, too large for a number"
            ) from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ProtocolError(
                400,
                f"{_where(row, column)} is the string {_short(value)}, but {column.name!r} "
                "is numeric: send a number (or null for a missing value)",
            ) from None
    raise ProtocolError(
        400, f"{_where(row, column)} is {_kind_of_value(value)}, but {column.name!r} is numeric"
    )


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def numeric_column(column: Column, values: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A numeric column's values as float64 (NaN for missing); numbers written as text are
    read as numbers. Refuses anything else, infinities, and missing values where the column
    takes none."""
    out: npt.NDArray[np.float64] | None = None
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        out = values.astype(np.float64).reshape(-1)
    elif isinstance(values, np.ndarray) and values.dtype.kind == "O":
        try:
            # None, text that is no number and containers fail here and are named below.
            out = values.astype(np.float64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            out = None
    if out is None:
        out = np.array([_number(v, i, column) for i, v in enumerate(values)], dtype=np.float64)
    bad = np.isinf(out)
    if bad.any():
        row = int(np.argmax(bad))
        raise ProtocolError(400, f"{_where(row, column)} is {out[row]}, not a finite number")
    if not column.nullable:
        missing = np.isnan(out)
        if missing.any():
            raise _missing(int(np.argmax(missing)), column)
    return out


def _missing(row: int, column: Column) -> ProtocolError:
    return ProtocolError(
        400,
        f"{_where(row, column)} is missing (null), but this model cannot take a missing "
        f"value in {column.name!r}: it had none in training and is not imputed",
    )


def category(value: Any, row: int, column: Column) -> str | None:
    """One value of a categorical column as the model's text (``None`` when missing).

    A number is written as the trainer wrote it (``10`` for an integer code, ``2.5``); where
    the model knows the category written the other way (``10.0`` for the JSON ``10`` of a
    column read as floats), that one is taken.
    """
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return _text(value, row, column)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return None
        text = str(value)
        known = column.categories
        if known is not None and text not in known:
            other = _other_spelling(value)
            if other is not None and other in known:
                return other
        return text
    raise ProtocolError(
        400,
        f"{_where(row, column)} is {_kind_of_value(value)}, but {column.name!r} takes one "
        "category (text, a number or a boolean)",
    )


def _other_spelling(value: int | float) -> str | None:
    if isinstance(value, int):
        return str(float(value)) if abs(value) < 2**53 else None
    if math.isfinite(value) and value.is_integer():
        return str(int(value))
    return None


def categorical_column(
    column: Column, values: Sequence[Any] | npt.NDArray[Any]
) -> npt.NDArray[Any]:
    """A categorical column's values as text (``None`` for missing); refuses containers,
    text that is not UTF-8, and missing values where the column takes none."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        text = category(value, i, column)
        if text is None and not column.nullable:
            raise _missing(i, column)
        out[i] = text
    return out


def build_table(columns: Sequence[Column], data: Sequence[Any], rows: int) -> Table:
    """The table of ``data``, one sequence of ``rows`` values per column (``None`` for a
    column the request left out, which only an unused column may be)."""
    table = np.empty((rows, len(columns)), dtype=object)
    for j, (column, values) in enumerate(zip(columns, data, strict=True)):
        if values is None:
            table[:, j] = math.nan if column.kind == NUMERIC else None
        elif column.kind == NUMERIC and column.used:
            table[:, j] = numeric_column(column, values)
        else:
            table[:, j] = categorical_column(column, values)
    return table


def table_from_instances(instances: Any, columns: Sequence[Column]) -> Table:
    """KServe v1 ``instances`` as a table: rows as arrays in feature order, or objects
    keyed by feature (where a feature the model drops may be left out)."""
    if not isinstance(instances, list) or not instances:
        raise ProtocolError(400, "'instances' must be a non-empty array of rows")
    names = [c.name for c in columns]
    data: list[Any]
    if all(isinstance(row, dict) for row in instances):
        known = set(names)
        for i, row in enumerate(instances):
            unknown = [k for k in row if k not in known]
            missing = [c.name for c in columns if c.used and c.name not in row]
            if unknown or missing:
                raise ProtocolError(400, f"instances[{i}]: {_mismatch(missing, unknown)}")
        data = [
            [row.get(c.name) for row in instances]
            if c.used or any(c.name in row for row in instances)
            else None
            for c in columns
        ]
    elif all(isinstance(row, list) for row in instances):
        for i, row in enumerate(instances):
            if len(row) != len(columns):
                raise ProtocolError(
                    400,
                    f"instances[{i}] has {len(row)} values; this model takes {len(columns)} "
                    f"features: {_listed(names)}",
                )
        data = [[row[j] for row in instances] for j in range(len(columns))]
    else:
        raise ProtocolError(
            400, "each instance must be an array of feature values or an object keyed by feature"
        )
    return build_table(columns, data, len(instances))


def table_from_tensors(
    tensors: Sequence[tuple[str, tuple[int, ...], npt.NDArray[Any]]], columns: Sequence[Column]
) -> Table:
    """A v2 request's input tensors ``(name, shape, elements)`` as a table: one tensor per
    feature, named after it, of shape ``[N]`` or ``[N, 1]`` (a feature the model drops may
    be left out); or one tensor of shape ``[N, n_features]``."""
    names = [c.name for c in columns]
    data: list[Any]
    if (
        len(tensors) == 1
        and len(tensors[0][1]) == 2
        and (len(names) > 1 or tensors[0][0] not in names)
    ):
        name, shape, values = tensors[0]
        if shape[1] != len(names):
            raise ProtocolError(
                400,
                f"input {name!r} has {shape[1]} features per row (shape {list(shape)}); "
                f"this model takes {len(names)}: {_listed(names)}",
            )
        grid = values.reshape(shape)
        rows = shape[0]
        data = [grid[:, j] for j in range(len(names))]
    else:
        by_name = {name: (shape, values) for name, shape, values in tensors}
        if len(by_name) != len(tensors):
            raise ProtocolError(400, "two inputs have the same name")
        unknown = [n for n in by_name if n not in names]
        missing = [c.name for c in columns if c.used and c.name not in by_name]
        if unknown or missing:
            raise ProtocolError(
                400,
                f"inputs do not match the model's features: {_mismatch(missing, unknown)}; "
                "send one input per feature, named after it, of shape [N]",
            )
        counted: tuple[str, int] | None = None
        data = []
        for column in columns:
            if column.name not in by_name:
                data.append(None)
                continue
            shape, values = by_name[column.name]
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                raise ProtocolError(
                    400, f"input {column.name!r} has shape {list(shape)}; expected [N] or [N, 1]"
                )
            if counted is None:
                counted = (column.name, shape[0])
            elif shape[0] != counted[1]:
                raise ProtocolError(
                    400,
                    f"input {column.name!r} has {shape[0]} rows but input {counted[0]!r} has "
                    f"{counted[1]}: every feature needs one value per row",
                )
            data.append(values.reshape(-1))
        rows = counted[1] if counted is not None else 0
    if rows == 0:
        raise ProtocolError(400, "the request has no rows")
    return build_table(columns, data, rows)


def check_range(table: Table, columns: Sequence[Column], limit: float) -> None:
    """Refuse numbers beyond ``limit`` in magnitude in numeric columns (see
    :func:`.protocol.check_range`)."""
    for j, column in enumerate(columns):
        if column.kind != NUMERIC or not column.used:
            continue
        values = table[:, j].astype(np.float64)
        bad = np.abs(values) > limit
        if bad.any():
            row = int(np.argmax(bad))
            raise ProtocolError(
                400,
                f"{_where(row, column)} is {values[row]}, beyond the largest magnitude this "
                f"model takes ({limit:.7g})",
            )


def unseen_categories(table: Table, columns: Sequence[Column]) -> dict[str, int]:
    """How many values of each categorical column the model never saw in training (missing
    values are not counted); columns with none are left out."""
    counts: dict[str, int] = {}
    for j, column in enumerate(columns):
        known = column.categories
        if column.kind != CATEGORICAL or known is None or not column.used:
            continue
        unseen = sum(1 for value in table[:, j] if value is not None and value not in known)
        if unseen:
            counts[column.name] = unseen
    return counts


def elements(data: Any, datatype: str, shape: tuple[int, ...], where: str) -> npt.NDArray[Any]:
    """A tensor's elements as given in JSON or gRPC's typed contents, unconverted (each
    column converts its own), shaped as declared. Numeric datatypes hold numbers, booleans
    or nulls; BYTES holds anything scalar."""
    values = np.empty(0, dtype=object)
    try:
        values = np.asarray(data, dtype=object)
    except ValueError as exc:
        raise ProtocolError(
            400, f"data of {where} is ragged: its nested arrays have different lengths"
        ) from exc
    expected = math.prod(shape)
    if values.ndim > 1 and values.shape != shape:
        raise ProtocolError(
            400,
            f"{where} has shape {list(shape)} but its nested data has shape {list(values.shape)}",
        )
    flat = values.reshape(-1)
    for value in flat:
        if isinstance(value, list | dict):
            raise ProtocolError(
                400, f"data of {where} is ragged or nested: it holds {_kind_of_value(value)}"
            )
        if datatype != "BYTES" and isinstance(value, str | bytes):
            raise ProtocolError(
                400,
                f"{where} is {datatype} but holds the text {_short(str(value))}; send "
                "categories as BYTES",
            )
    if flat.size != expected:
        raise ProtocolError(
            400,
            f"{where} has shape {list(shape)} ({expected} values) but {flat.size} data values",
        )
    return flat.reshape(shape)


def category_shares(schema: Mapping[str, Any] | None, name: str) -> dict[str, float] | None:
    """A column's training shares of each category from ``schema.json``, if it has them."""
    columns = (schema or {}).get("columns")
    doc = columns.get(name) if isinstance(columns, Mapping) else None
    shares = doc.get("shares") if isinstance(doc, Mapping) else None
    if not isinstance(shares, Mapping) or not shares:
        return None
    try:
        return {str(k): float(v) for k, v in shares.items()}
    except (TypeError, ValueError):
        return None
