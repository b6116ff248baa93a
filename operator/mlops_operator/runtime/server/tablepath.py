"""An exact fast path for models of raw rows: the Pipeline's ColumnTransformer, compiled.

A model trained on a raw table is a Pipeline: a ColumnTransformer that imputes, scales and
encodes (:mod:`mlops_operator.runtime.trainer.preprocess`), then the estimator. scikit-learn
spends most of a small request there, not in the model: a DataFrame is built, every
transformer validates its input and walks its columns, and the blocks are stacked, about
2-4 ms per call whatever the rows. Here the fitted transformers are read once at load into
arrays and dictionaries and applied with the arithmetic scikit-learn itself performs (the
imputer's statistics put where values are missing; the scalers' in-place subtract, divide,
multiply and add in float64; a category's index in the encoder's sorted categories), then
the estimator runs on the encoded rows through its own exact fast path
(:mod:`.fastpath`) or scikit-learn's ``predict``, exactly as the Pipeline would call it.

"Exact or not at all", as for the estimators: at load the compiled encoding must equal the
ColumnTransformer's output bit for bit, and the whole path the Pipeline's predictions, on
typical rows and random rows (numbers inside the training ranges, missing values, known and
unseen categories) in batches of many sizes; any transformer or setting not modelled here,
or any difference, keeps scikit-learn's path and says why. At predict time a value the
encoding does not model (an unseen category an encoder refuses) goes to scikit-learn, which
answers or refuses it as it always did.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mlops_operator.runtime.server import fastpath
from mlops_operator.runtime.server.protocol import Rows
from mlops_operator.runtime.server.table import NUMERIC, Column, Table

Block = npt.NDArray[Any]
"""Some columns of a table on their way through one transformer: float64 for numbers,
objects (text, ``None`` when missing) for categories."""

Step = Callable[[Block], Block]

TablePredict = Callable[[Table, bool], fastpath.Outputs]
"""``(table, with_proba) -> (predictions, proba or None)``."""

_RANDOM_ROWS: Final = 256
_MISSING_SHARE: Final = 0.2
_UNSEEN: Final = "\x00an unseen category"


class _Refused(Exception):
    """A value the compiled encoding does not model: scikit-learn answers it."""


@dataclass(frozen=True)
class TableChoice:
    """The predict path of a model of raw rows."""

    path: str
    """``sklearn``, or ``table(<transformers>)+<the estimator's path>``."""
    reason: str
    """Why scikit-learn's path serves; empty when the compiled one does."""
    predict: TablePredict | None


# ---------------------------------------------------------------------------- columns


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_categories(block: Block) -> Block:
    """``preprocess.as_categories``: text, ``None`` for a missing value."""
    out = np.empty(block.shape, dtype=object)
    for index, value in np.ndenumerate(block):
        out[index] = None if _missing(value) else str(value)
    return out


def _identity(x: Block) -> Block:
    return x


def _numeric_imputer(statistics: npt.NDArray[np.float64]) -> Step:
    def impute(x: Block) -> Block:
        holes = np.isnan(x)
        if holes.any():
            x[holes] = np.take(statistics, np.nonzero(holes)[1])
        return x

    return impute


def _category_imputer(statistics: Sequence[str]) -> Step:
    def impute(x: Block) -> Block:
        for (row, col), value in np.ndenumerate(x):
            if value is None:
                x[row, col] = statistics[col]
        return x

    return impute


def _known(categories: Sequence[Any]) -> tuple[dict[str, int], int | None]:
    """A category's index by its text, and the index of the missing-value category (NaN
    among the fitted categories) if there is one."""
    lookup: dict[str, int] = {}
    missing = None
    for index, category in enumerate(categories):
        if _missing(category):
            missing = index
        elif isinstance(category, str):
            lookup[category] = index
        else:
            raise fastpath.Unsupported(f"a category that is not text: {category!r}")
    return lookup, missing


def _one_hot(encoder: Any) -> Step:
    columns = [_known(c) for c in encoder.categories_]
    offsets = np.cumsum([0] + [len(c) for c in encoder.categories_])
    width = int(offsets[-1])
    refuse_unseen = encoder.handle_unknown == "error"

    def encode(x: Block) -> Block:
        out = np.zeros((len(x), width), dtype=np.float64)
        for j, (lookup, missing) in enumerate(columns):
            start = offsets[j]
            for row, value in enumerate(x[:, j]):
                index = missing if value is None else lookup.get(value)
                if index is not None:
                    out[row, start + index] = 1.0
                elif refuse_unseen:
                    raise _Refused
        return out

    return encode


def _ordinal(encoder: Any) -> Step:
    columns = [_known(c) for c in encoder.categories_]
    unseen = encoder.unknown_value if encoder.handle_unknown == "use_encoded_value" else None
    encoded_missing = float(encoder.encoded_missing_value)

    def encode(x: Block) -> Block:
        out = np.empty(x.shape, dtype=np.float64)
        for j, (lookup, missing) in enumerate(columns):
            for row, value in enumerate(x[:, j]):
                if value is None and missing is not None:
                    out[row, j] = encoded_missing
                    continue
                index = None if value is None else lookup.get(value)
                if index is None:
                    if unseen is None:
                        raise _Refused
                    out[row, j] = unseen
                else:
                    out[row, j] = index
        return out

    return encode


def _robust(scaler: Any) -> Step:
    center = scaler.center_ if scaler.with_centering else None
    scale = scaler.scale_ if scaler.with_scaling else None

    def robust(x: Block) -> Block:
        if center is not None:
            x -= center
        if scale is not None:
            x /= scale
        return x

    return robust


def _step(step: Any, numeric: bool) -> tuple[str, Step]:
    """One fitted transformer of a column group as a compiled step; :class:`Unsupported`
    (with the reason) for anything not modelled exactly."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import (
        FunctionTransformer,
        MaxAbsScaler,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
    )

    from mlops_operator.runtime.trainer.preprocess import as_categories

    kind = type(step)
    if kind is FunctionTransformer and step.func is None and numeric:
        return "passthrough", _identity  # how a fitted ColumnTransformer keeps "passthrough"
    if kind is FunctionTransformer and step.func is as_categories and not numeric:
        if step.kw_args or step.validate:
            raise fastpath.Unsupported("as_categories with arguments")
        return "categories", _as_categories
    if kind is SimpleImputer:
        if step.add_indicator or not _missing(step.missing_values):
            raise fastpath.Unsupported("an imputer with an indicator or another missing value")
        statistics = step.statistics_
        if numeric:
            statistics = np.asarray(statistics, dtype=np.float64)
            if np.isnan(statistics).any():
                raise fastpath.Unsupported("an imputer with an empty column")
            return "impute", _numeric_imputer(statistics)
        if not all(isinstance(s, str) for s in statistics):
            raise fastpath.Unsupported("a category imputer whose fill value is not text")
        return "impute", _category_imputer(list(statistics))
    if numeric and kind in (StandardScaler, MinMaxScaler, MaxAbsScaler):
        name, scale = fastpath.scaler(step)
        return name, scale
    if numeric and kind is RobustScaler:
        return "robust-scaler", _robust(step)
    if not numeric and kind in (OneHotEncoder, OrdinalEncoder):
        if getattr(step, "_infrequent_enabled", False):
            raise fastpath.Unsupported("an encoder grouping infrequent categories")
        if np.dtype(step.dtype) != np.float64:
            raise fastpath.Unsupported(f"an encoder to {np.dtype(step.dtype)}")
        if kind is OneHotEncoder:
            # A sparse block is fine: the ColumnTransformer's output is dense (checked), and
            # it densifies the block to the same values.
            if step.drop_idx_ is not None:
                raise fastpath.Unsupported("a one-hot encoder that drops a category")
            if step.handle_unknown not in ("ignore", "error"):
                raise fastpath.Unsupported(f"handle_unknown={step.handle_unknown!r}")
            return "one-hot", _one_hot(step)
        if step.handle_unknown not in ("use_encoded_value", "error"):
            raise fastpath.Unsupported(f"handle_unknown={step.handle_unknown!r}")
        return "ordinal", _ordinal(step)
    raise fastpath.Unsupported(f"the transformer {kind.__name__} has no fast path")


@dataclass(frozen=True)
class _Group:
    """One transformer of the ColumnTransformer and the table columns it reads."""

    positions: tuple[int, ...]
    numeric: bool
    steps: tuple[Step, ...]

    def apply(self, table: Table) -> Block:
        block = table[:, self.positions]
        x = np.array(block, dtype=np.float64) if self.numeric else np.array(block, dtype=object)
        for step in self.steps:
            x = step(x)
        return x


class Encoding:
    """The fitted ColumnTransformer of a Pipeline, compiled: a table in, the same float64
    matrix out."""

    def __init__(self, transformer: Any, columns: Sequence[Column]) -> None:
        from sklearn.pipeline import Pipeline

        if getattr(transformer, "sparse_output_", False):
            raise fastpath.Unsupported("a ColumnTransformer with sparse output")
        position = {c.name: j for j, c in enumerate(columns)}
        groups = []
        names: list[str] = []
        for name, fitted, selected in transformer.transformers_:
            if isinstance(fitted, str) and fitted == "drop":
                continue
            try:
                positions = tuple(
                    s if isinstance(s, int) else position[s] for s in _as_list(selected)
                )
            except KeyError as exc:
                raise fastpath.Unsupported(f"the transformer {name!r} reads {exc}") from exc
            if not positions:
                continue
            kinds = {columns[j].kind == NUMERIC for j in positions}
            if len(kinds) != 1:
                raise fastpath.Unsupported(f"the transformer {name!r} mixes kinds")
            numeric = kinds.pop()
            parts = fitted.steps if type(fitted) is Pipeline else [(name, fitted)]
            steps: list[Step] = []
            for _, part in parts:
                if isinstance(part, str) and part == "passthrough":
                    continue
                label, step = _step(part, numeric)
                names.append(label)
                steps.append(step)
            if not numeric and not steps:
                raise fastpath.Unsupported(f"categories passed through by {name!r}")
            groups.append(_Group(positions, numeric, tuple(steps)))
        if not groups:
            raise fastpath.Unsupported("the ColumnTransformer outputs nothing")
        self.groups = groups
        self.name = ",".join(dict.fromkeys(names)) or "passthrough"

    def __call__(self, table: Table) -> npt.NDArray[np.float64]:
        blocks = [group.apply(table) for group in self.groups]
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float64)


def _as_list(selected: Any) -> list[Any]:
    if isinstance(selected, str | int):
        return [selected]
    if isinstance(selected, list | tuple | np.ndarray):
        return list(selected)
    raise fastpath.Unsupported(f"columns selected by {type(selected).__name__}")


# ---------------------------------------------------------------------------- rows to prove on


def verification_table(
    typical: Table,
    columns: Sequence[Column],
    reference: Mapping[str, Any] | None,
    *,
    seed: int = 0,
) -> Table:
    """``typical`` and random rows the compiled path must agree on: numbers inside the
    reference's range (or around the typical value) with some missing where the column
    takes it, categories among the known ones, missing, and one never seen."""
    rng = np.random.default_rng(seed)
    rows = np.empty((_RANDOM_ROWS, len(columns)), dtype=object)
    for j, column in enumerate(columns):
        if not column.used:
            rows[:, j] = None
            continue
        holes = rng.random(_RANDOM_ROWS) < (_MISSING_SHARE if column.nullable else 0.0)
        if column.kind == NUMERIC:
            low, high = _range(typical[0, j], (reference or {}).get(column.name))
            values: list[Any] = rng.uniform(low, high, _RANDOM_ROWS).tolist()
            rows[:, j] = [math.nan if hole else v for v, hole in zip(values, holes, strict=True)]
        else:
            known = sorted(column.categories or ()) or [str(typical[0, j])]
            values = rng.choice([*known, _UNSEEN], _RANDOM_ROWS).tolist()
            rows[:, j] = [None if hole else v for v, hole in zip(values, holes, strict=True)]
    return np.concatenate([typical, rows])


def _range(typical: Any, stats: Any) -> tuple[float, float]:
    edges = stats.get("edges") if isinstance(stats, Mapping) else None
    if isinstance(edges, list) and len(edges) >= 2:
        finite = [float(e) for e in edges if isinstance(e, int | float) and math.isfinite(e)]
        if finite and min(finite) < max(finite):
            return min(finite), max(finite)
    centre = float(typical) if isinstance(typical, int | float) else 0.0
    spread = max(abs(centre), 1.0)
    return centre - spread, centre + spread


# ---------------------------------------------------------------------------- choosing


def choose(
    pipeline: Any,
    columns: Sequence[Column],
    sklearn_predict: TablePredict,
    frame: Callable[[Table], Any],
    rows: Table,
    *,
    with_proba: bool,
) -> TableChoice:
    """The compiled path for a Pipeline of raw rows if every part is modelled and the whole
    equals ``sklearn_predict`` (the server's scikit-learn path for tables) on ``rows``; else
    scikit-learn's, with the reason. ``frame`` makes a table the DataFrame the Pipeline
    was fitted on, as the server does for scikit-learn."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.utils import get_tags

    if type(pipeline) is not Pipeline or len(pipeline.steps) != 2:
        return _sklearn("only a Pipeline of a ColumnTransformer and an estimator is compiled")
    (_, transformer), (_, final) = pipeline.steps
    if type(transformer) is not ColumnTransformer:
        return _sklearn(f"the Pipeline starts with {type(transformer).__name__}")
    try:
        encoding = Encoding(transformer, columns)
    except fastpath.Unsupported as exc:
        return _sklearn(str(exc))
    except Exception as exc:  # a Pipeline from another scikit-learn version
        return _sklearn(f"compiling failed: {type(exc).__name__}: {exc}")
    mismatch = _encoding_mismatch(encoding, transformer, frame, rows)
    if mismatch:
        return _sklearn(f"the encoding is not exact: {mismatch}")

    def final_sklearn(x: Rows, proba: bool) -> fastpath.Outputs:
        predictions = np.asarray(final.predict(x))
        if proba and hasattr(final, "predict_proba"):
            return predictions, np.ascontiguousarray(final.predict_proba(x), dtype=np.float64)
        return predictions, None

    try:
        allow_nan = bool(get_tags(final).input_tags.allow_nan)
    except (AttributeError, TypeError):
        allow_nan = False
    encoded = encoding(rows[~_refused_rows(encoding, rows)])
    # The estimator's own proof adds rows with missing values where it takes them.
    probe = encoded[~np.isnan(encoded).any(axis=1)]
    final_choice = fastpath.choose(
        final, final_sklearn, probe if len(probe) else None, with_proba=with_proba,
        allow_nan=allow_nan,
    )  # fmt: skip
    final_predict = final_choice.predict or final_sklearn

    def predict(table: Table, proba: bool) -> fastpath.Outputs:
        # Whatever the compiled path does not answer, scikit-learn's path for tables answers
        # or refuses (a 422 with its message), exactly as without the compiled path.
        try:
            x = encoding(table)
            if allow_nan or not np.isnan(x).any():
                return final_predict(x, proba)
        except (_Refused, ValueError, TypeError):
            pass
        return sklearn_predict(table, proba)

    difference = _path_mismatch(predict, sklearn_predict, rows, with_proba)
    if difference:
        return _sklearn(f"the table path is not exact: {difference}")
    return TableChoice(f"table({encoding.name})+{final_choice.path}", "", predict)


def _sklearn(reason: str) -> TableChoice:
    return TableChoice(fastpath.SKLEARN, reason, None)


def _refused_rows(encoding: Encoding, rows: Table) -> npt.NDArray[np.bool_]:
    refused = np.zeros(len(rows), dtype=bool)
    for i in range(len(rows)):
        try:
            encoding(rows[i : i + 1])
        except _Refused:
            refused[i] = True
    return refused


_SIZES: Final = (1, 3, 32)
"""Batch sizes the whole path is proved in, besides all rows at once: the estimator's own
proof has tried many more on the encoded rows."""


def _batches(rows: Table) -> list[Table]:
    return [rows] + [rows[s : s + n] for n in _SIZES for s in (0, len(rows) // 2)]


def _encoding_mismatch(
    encoding: Encoding, transformer: Any, frame: Callable[[Table], Any], rows: Table
) -> str:
    # Encoding is row by row (no sums across rows), so two batch sizes prove it; the whole
    # path is then proved in batches of many sizes, for the estimator's sake.
    for batch in (rows, rows[:1]):
        try:
            want = np.asarray(transformer.transform(frame(batch)))
        except ValueError:
            want = None  # scikit-learn refuses the batch: the compiled encoding must too
        try:
            got: npt.NDArray[Any] | None = encoding(batch)
        except _Refused:
            got = None
        if want is None or got is None:
            if (want is None) != (got is None):
                refused = "scikit-learn" if want is None else "the compiled encoding"
                return f"only {refused} refuses a {len(batch)}-row batch"
            continue
        if want.shape != got.shape or want.dtype != got.dtype:
            return f"shape {got.shape} {got.dtype}, expected {want.shape} {want.dtype}"
        if not np.array_equal(want, got, equal_nan=True):
            return f"values differ on a {len(batch)}-row batch"
    return ""


def _path_mismatch(
    predict: TablePredict, sklearn_predict: TablePredict, rows: Table, with_proba: bool
) -> str:
    for batch in _batches(rows):
        try:
            want = sklearn_predict(batch, with_proba)
        except Exception:
            continue  # refused by scikit-learn: the compiled path hands such rows to it
        try:
            got = predict(batch, with_proba)
        except Exception as exc:
            return f"the compiled path failed: {type(exc).__name__}: {exc}"
        difference = fastpath.differences(want, got)
        if difference:
            return f"{difference} ({len(batch)}-row batch)"
    return ""
