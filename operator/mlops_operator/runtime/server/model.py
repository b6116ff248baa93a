"""Loading a model artifact safely, and predicting with it.

``joblib.load`` unpickles, which runs code: the file is checked against the expected sha256
digest before it is loaded, and only a verified file ever sits at its place in the cache.
The cache is keyed by digest, so a restarted worker (or a second worker) loads from disk.

``manifest.json`` is optional. Without it the digest must come from the ModelVersion
(``--digest``), and what the server needs is read from the fitted estimator itself: the task
(classifier or regressor), the classes, the feature count and names. A manifest that is
there wins, field by field, and is checked against the estimator. See
docs/bring-your-own-model.md.

A model trained on a raw table takes raw rows (text categories, nulls): its columns come from
the manifest's ``preprocessing``, ``schema.json`` and the fitted Pipeline's encoders (see
:func:`table_columns`). Every model is tried once at load (:func:`check_inputs`): which
features take a missing value, and the largest number it takes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from mlops_operator.artifacts.layout import MANIFEST_FILE, MODEL_FILE, REFERENCE_FILE, SCHEMA_FILE
from mlops_operator.artifacts.store import (
    ArtifactStore,
    NotFound,
    StorageError,
    parse_uri,
    sha256_file,
)
from mlops_operator.runtime.server import fastpath, tablepath
from mlops_operator.runtime.server.errors import ProtocolError
from mlops_operator.runtime.server.protocol import (
    OUTPUT_PREDICT,
    OUTPUT_PROBA,
    Inputs,
    NanMask,
    Rows,
)
from mlops_operator.runtime.server.table import CATEGORICAL, NUMERIC, Column, Table

logger = logging.getLogger(__name__)


class LoadError(Exception):
    """The model cannot be served (yet); ``message`` says why, for logs and probes."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


TASKS: Final = ("classification", "regression")

FLOAT32_MAX: Final = float(np.finfo(np.float32).max)

INLINE_BUDGET: Final = 150e-6
"""Seconds a batch's prediction may take on the server's event loop rather than its
prediction thread: about what handing it to the thread and back costs."""


@dataclass(frozen=True)
class ModelInfo:
    """What the server knows about the model it serves: from ``manifest.json`` where there is
    one, from the fitted estimator otherwise (see :func:`describe`)."""

    features: tuple[str, ...]
    task: str
    """``classification`` or ``regression``."""
    classes: tuple[Any, ...] | None
    digest: str
    framework_version: str | None
    from_manifest: bool = True
    """Whether a ``manifest.json`` came with the model (else everything was inferred)."""
    drift_unavailable: str | None = None
    """Why input drift cannot be measured (no usable ``reference.json``); ``None`` when it
    can."""
    preprocessing: tuple[Mapping[str, Any], ...] | None = None
    """What the trainer did to each column (the manifest's ``preprocessing``: ``column``,
    ``kind``, ``dropped``...); ``None`` when the estimator saw raw numbers or nobody said."""

    @property
    def is_classifier(self) -> bool:
        """Whether predictions are class labels."""
        return self.task == "classification"

    @property
    def predict_datatype(self) -> str:
        """The v2 datatype of the ``predict`` output."""
        if not self.is_classifier:
            return "FP64"
        classes = self.classes or ()
        if classes and all(isinstance(c, bool) for c in classes):
            return "BOOL"
        if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
            return "INT64"
        if classes and all(isinstance(c, int | float) for c in classes):
            return "FP64"
        return "BYTES"


@dataclass(frozen=True)
class Manifest:
    """The fields of a ``manifest.json`` the server reads; each is optional, and a missing
    one is inferred from the estimator."""

    features: tuple[str, ...] | None = None
    task: str | None = None
    classes: tuple[Any, ...] | None = None
    digest: str | None = None
    framework_version: str | None = None
    preprocessing: tuple[Mapping[str, Any], ...] | None = None


def parse_manifest(raw: bytes, uri: str) -> Manifest:
    """The :class:`Manifest` in a ``manifest.json`` (the trainer's, or one written by hand)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LoadError(f"{uri} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise LoadError(f"{uri} is not a valid model manifest: expected a JSON object")
    problems = []
    features = doc.get("features")
    if features is not None and (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) and f for f in features)
        or len(set(features)) != len(features)
    ):
        problems.append("features must be a non-empty list of distinct names")
    task = doc.get("task")
    if task is not None and task not in TASKS:
        problems.append(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    classes = doc.get("classes")
    if classes is not None and not isinstance(classes, list):
        problems.append("classes must be a list")
    digest = doc.get("digest")
    if digest is not None and not isinstance(digest, str):
        problems.append("digest must be a string")
    version = doc.get("frameworkVersion")
    preprocessing = doc.get("preprocessing")
    if preprocessing is not None and (
        not isinstance(preprocessing, list)
        or not all(isinstance(s, dict) and isinstance(s.get("column"), str) for s in preprocessing)
    ):
        problems.append("preprocessing must be a list of objects with a column name")
    if problems:
        raise LoadError(f"{uri} is not a valid model manifest: {'; '.join(problems)}")
    return Manifest(
        features=tuple(features) if features is not None else None,
        task=task,
        classes=tuple(classes) if classes is not None else None,
        digest=digest,
        framework_version=str(version) if version else None,
        preprocessing=tuple(preprocessing) if preprocessing is not None else None,
    )


def _names(values: Any) -> list[str]:
    return [str(v) for v in np.asarray(values).tolist()]


def describe(
    estimator: Any, digest: str, where: str, manifest: Manifest | None = None
) -> ModelInfo:
    """The :class:`ModelInfo` of a fitted estimator (a scikit-learn estimator or Pipeline, or
    anything with its API), with ``manifest``'s fields winning where given.

    Raises :class:`LoadError` naming ``where`` (the model's URI or path) when the object is no
    estimator, is not fitted, is neither a classifier nor a regressor and no manifest says
    which, or its feature count cannot be known; and when the manifest contradicts it.
    """
    from sklearn.base import is_classifier, is_regressor
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    given = manifest is not None
    manifest = manifest or Manifest()
    kind = type(estimator).__name__
    if not callable(getattr(estimator, "predict", None)):
        raise LoadError(
            f"{where} holds a {type(estimator).__module__}.{kind}, not a model: a scikit-learn "
            "estimator or Pipeline (anything with fit and predict) is needed"
        )
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise LoadError(
            f"{where} holds a {kind} that was never fitted: dump it after calling fit"
        ) from None
    except TypeError:
        pass  # no fit method: a predictor of its own kind, judged by what follows
    try:
        classifier, regressor = is_classifier(estimator), is_regressor(estimator)
    except (AttributeError, TypeError):  # no scikit-learn tags: not one of its estimators
        classifier = regressor = False
    inferred_task = "classification" if classifier else "regression" if regressor else None
    if manifest.task is not None and inferred_task not in (None, manifest.task):
        raise LoadError(
            f"the manifest says the task is {manifest.task} but {where} holds a {kind}, "
            f"a {'classifier' if inferred_task == 'classification' else 'regressor'}"
        )
    task = manifest.task or inferred_task
    if task is None:
        raise LoadError(
            f"{where} holds a {kind}, which is neither a classifier nor a regressor; only "
            "those are served (write a manifest.json with the task if it is one of them)"
        )

    fitted_names = getattr(estimator, "feature_names_in_", None)
    names = _names(fitted_names) if fitted_names is not None else None
    count = getattr(estimator, "n_features_in_", None)
    count = int(count) if isinstance(count, int | np.integer) else None
    if manifest.features is not None:
        if names is not None and list(manifest.features) != names:
            raise LoadError(
                f"the manifest lists features {list(manifest.features)} but {where} was "
                f"fitted on {names}"
            )
        if count is not None and len(manifest.features) != count:
            raise LoadError(
                f"the manifest lists {len(manifest.features)} features but {where} was "
                f"fitted on {count}"
            )
        features = manifest.features
    elif names is not None:
        features = tuple(names)
    elif count is not None and count > 0:
        features = tuple(f"x{i}" for i in range(count))
    else:
        raise LoadError(
            f"{where} holds a {kind} that does not say how many features it takes (no "
            "n_features_in_); write a manifest.json with its features"
        )

    fitted_classes = getattr(estimator, "classes_", None)
    classes: tuple[Any, ...] | None = None
    if task == "classification" and fitted_classes is not None:
        classes = tuple(np.asarray(fitted_classes).tolist())
        if manifest.classes is not None and [str(c) for c in manifest.classes] != [
            str(c) for c in classes
        ]:
            raise LoadError(
                f"the manifest lists classes {list(manifest.classes)} but {where} predicts "
                f"{list(classes)}"
            )
    elif task == "classification":
        classes = manifest.classes
    return ModelInfo(
        features=tuple(features),
        task=task,
        classes=classes,
        digest=digest,
        framework_version=manifest.framework_version,
        from_manifest=given,
        preprocessing=manifest.preprocessing,
    )


def read_estimator(path: Path, where: str) -> tuple[Any, str | None]:
    """Unpickle the model file at ``path``: the object and the scikit-learn version it was
    pickled with, when scikit-learn said it differs from the installed one.

    Only call it on a verified file: unpickling runs code. Any failure to unpickle (a
    module that is not installed, a truncated file) is a :class:`LoadError`.
    """
    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    pickled_with = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator = joblib.load(path)
        except Exception as exc:
            raise LoadError(
                f"{where} cannot be loaded with joblib: {type(exc).__name__}: {exc}"
            ) from exc
    for warning in caught:
        if isinstance(warning.message, InconsistentVersionWarning):
            pickled_with = warning.message.original_sklearn_version
        logger.warning("loading the model: %s", warning.message)
    return estimator, pickled_with


def force_single_thread(estimator: Any) -> list[str]:
    """Set every ``n_jobs`` parameter (nested estimators included) to 1; returns their names.

    The server parallelises across requests (batches, workers); a model that forks a pool
    per call would oversubscribe the CPUs and add latency to every request.
    """
    if not callable(getattr(estimator, "get_params", None)):
        return []  # not a scikit-learn estimator: nothing to tune
    names = [k for k in estimator.get_params(deep=True) if k == "n_jobs" or k.endswith("__n_jobs")]
    if names:
        estimator.set_params(**dict.fromkeys(names, 1))
    return names


class ServedModel:
    """A loaded, verified model with its manifest, reference statistics and schema."""

    def __init__(
        self,
        info: ModelInfo,
        estimator: Any,
        reference: dict[str, Any] | None,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        import pandas as pd
        from sklearn.utils import get_tags

        self.info = info
        self.estimator = estimator
        self.reference = reference
        self.schema = schema
        """``schema.json`` of the training data, when the model came with one."""
        self._frame = pd.DataFrame
        self._columns = list(info.features)
        self.has_proba = info.is_classifier and hasattr(estimator, "predict_proba")
        try:
            self.allow_nan = bool(get_tags(estimator).input_tags.allow_nan)
        except (AttributeError, TypeError):
            self.allow_nan = False
        classes = getattr(estimator, "classes_", None)
        self.classes: tuple[Any, ...] = (
            tuple(np.asarray(classes).tolist()) if classes is not None else info.classes or ()
        )
        columns = table_columns(info.features, estimator, info.preprocessing, schema)
        self.columns: tuple[Column, ...] | None = None
        """The input columns of a model that takes raw rows; ``None`` for a model of numbers,
        which takes float64 rows."""
        self.nullable: NanMask = self.allow_nan
        """Whether a missing value is taken, for every feature or per feature."""
        self.input_limit = math.inf
        """The largest magnitude of a numeric input value the model takes."""
        self._fast: fastpath.Predict | None = None
        if columns is not None:
            self.columns = columns
            self.array_input = False
            numeric = [j for j, c in enumerate(columns) if c.kind == NUMERIC and c.used]
            null = [math.nan if c.kind == NUMERIC else None for c in columns]
            checks = check_inputs(
                self._table_outputs, typical_table(columns, schema, reference), numeric, null
            )
            self.input_limit = checks.limit
            nullable = checks.nullable or (True,) * len(columns)
            self.columns = tuple(
                replace(c, nullable=ok) for c, ok in zip(columns, nullable, strict=True)
            )
            self.nullable = np.array(nullable)
            typical = typical_table(self.columns, schema, reference)
            self._typical: Inputs = typical
            table_choice = tablepath.choose(
                estimator,
                self.columns,
                self._table_predict,
                self.table_frame,
                tablepath.verification_table(typical, self.columns, reference),
                with_proba=self.has_proba,
            )
            self.predict_path = table_choice.path
            self.predict_path_reason = table_choice.reason
            self._fast = table_choice.predict
            log = "predict path: %s%s"
            logger.info(
                log, table_choice.path, f" ({table_choice.reason})" * bool(table_choice.reason)
            )
            return
        self.array_input = self._arrays_predict_alike()
        """Whether ``predict`` gets bare arrays rather than DataFrames; see
        :meth:`_arrays_predict_alike`."""
        probe = probe_rows(reference, self._columns)
        typical = probe[:1].copy() if probe is not None else np.zeros((1, len(self._columns)))
        self._typical = typical
        checks = check_inputs(
            lambda rows: self._sklearn_predict(rows, False),
            typical,
            range(len(self._columns)),
            [math.nan] * len(self._columns),
            nulls=not self.allow_nan,
        )
        self.input_limit = checks.limit
        if checks.nullable is not None and not self.allow_nan:
            self.nullable = all(checks.nullable) or (
                np.array(checks.nullable) if any(checks.nullable) else False
            )
        choice = fastpath.choose(
            estimator,
            self._sklearn_predict,
            probe,
            with_proba=self.has_proba,
            allow_nan=self.allow_nan,
        )
        self.predict_path = choice.path
        """``sklearn``, or the exact compiled path that serves (see :mod:`.fastpath`)."""
        self.predict_path_reason = choice.reason
        """Why scikit-learn's path serves; empty when a compiled path does."""
        self._fast = choice.predict

    @property
    def output_names(self) -> tuple[str, ...]:
        """The outputs this model can produce."""
        return (OUTPUT_PREDICT, OUTPUT_PROBA) if self.has_proba else (OUTPUT_PREDICT,)

    def inline_rows(self, limit: int, budget: float = INLINE_BUDGET) -> int:
        """The most rows (up to ``limit``) the compiled path predicts within ``budget``,
        measured now on the typical row; 0 when scikit-learn's path serves (slow, and it
        releases the GIL where it can)."""
        if self._fast is None:
            return 0

        def cost(rows: int) -> float:
            x = np.repeat(self._typical, rows, axis=0)
            times = []
            for _ in range(15):
                start = time.perf_counter()
                self.predict(x, self.has_proba)
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        one, many = cost(1), cost(32)
        if one > budget:
            return 0
        per_row = max(many - one, 0.0) / 31
        if per_row == 0:
            return limit
        return max(1, min(limit, 1 + int((budget - one) / per_row)))

    def predict(self, rows: Inputs, with_proba: bool) -> tuple[npt.NDArray[Any], Rows | None]:
        """Predictions for ``rows`` (a table for a model of raw rows) and, if asked and
        available, class probabilities."""
        if self._fast is not None:
            return self._fast(rows, with_proba)
        if self.columns is not None:
            return self._table_predict(rows, with_proba)
        return self._sklearn_predict(rows, with_proba)

    def _sklearn_predict(
        self, rows: Rows, with_proba: bool
    ) -> tuple[npt.NDArray[Any], Rows | None]:
        """:meth:`predict` through scikit-learn's own ``predict`` and ``predict_proba``."""
        # Arrays where the load-time probe allowed it (see _arrays_predict_alike).
        x = rows if self.array_input else self._frame(rows, columns=self._columns, copy=False)
        predictions = np.asarray(self.estimator.predict(x))
        proba = None
        if with_proba and self.has_proba:
            proba = np.ascontiguousarray(self.estimator.predict_proba(x), dtype=np.float64)
        return predictions, proba

    def table_frame(self, table: Table) -> Any:
        """A table as the DataFrame the Pipeline was fitted on: numeric columns as float64,
        categories as objects, in the fitted order."""
        columns = self.columns or ()
        data = {
            c.name: table[:, j].astype(np.float64) if c.kind == NUMERIC and c.used else table[:, j]
            for j, c in enumerate(columns)
        }
        return self._frame(data, columns=self._columns)

    def _table_outputs(self, table: Table) -> Any:
        return self.estimator.predict(self.table_frame(table))

    def _table_predict(
        self, table: Table, with_proba: bool
    ) -> tuple[npt.NDArray[Any], Rows | None]:
        """:meth:`predict` for a table. The Pipeline refusing the rows (a value its encoder
        cannot take) is the client's 422, not the server's 500."""
        x = self.table_frame(table)
        try:
            predictions = np.asarray(self.estimator.predict(x))
            proba = None
            if with_proba and self.has_proba:
                proba = np.ascontiguousarray(self.estimator.predict_proba(x), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ProtocolError(422, f"the model cannot predict these rows: {exc}") from exc
        return predictions, proba

    def _arrays_predict_alike(self) -> bool:
        """Whether this estimator predicts the same on bare arrays as on DataFrames.

        scikit-learn checks a DataFrame's columns and dtypes on every call: 0.7 ms of a
        LogisticRegression's 0.8 ms on one row. The estimator is tried at load on rows made
        of the training quantiles (``reference.json``), both ways; arrays are used only if
        that raises nothing and the predictions are identical. A pipeline that selects
        columns by name fails the trial and keeps DataFrames, as does a model without
        reference statistics. A scikit-learn estimator fitted on arrays (``n_features_in_``
        without ``feature_names_in_``) gets arrays: they are what it was fitted on, and a
        DataFrame would make it warn on every call.
        """
        estimator = self.estimator
        if hasattr(estimator, "n_features_in_") and not hasattr(estimator, "feature_names_in_"):
            return True
        probe = probe_rows(self.reference, self._columns)
        if probe is None:
            return False
        # Rows reach predict in the fitted feature order (the protocol layer sees to it, and
        # loading checked the manifest against the estimator's feature names), so
        # scikit-learn's warnings about names present or missing say nothing here. Installed
        # once, before the prediction thread exists: swapping filters per call is not
        # thread-safe.
        for message in ("X does not have valid feature names", "X has feature names, but"):
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        try:
            framed = np.asarray(self.estimator.predict(self._frame(probe, columns=self._columns)))
            bare = np.asarray(self.estimator.predict(probe))
        except Exception as exc:
            logger.info("predicting on DataFrames: the model fails on arrays (%s)", exc)
            return False
        if framed.shape != bare.shape or not np.array_equal(framed, bare):
            logger.info("predicting on DataFrames: the model predicts differently on arrays")
            return False
        return True


def probe_rows(reference: dict[str, Any] | None, features: list[str]) -> Rows | None:
    """Rows spanning the training distribution: row ``k`` holds every feature's ``k``-th
    quantile bin edge. ``None`` unless every feature has edges."""
    if reference is None or not features:
        return None
    columns = []
    for feature in features:
        stats = reference.get(feature)
        edges = stats.get("edges") if isinstance(stats, dict) else None
        if not edges or not all(isinstance(e, int | float) for e in edges):
            return None
        columns.append(np.asarray(edges, dtype=np.float64))
    size = min(len(c) for c in columns)
    return np.column_stack([c[:size] for c in columns])


@dataclass(frozen=True)
class InputChecks:
    """What a model was found to take at load (see :func:`check_inputs`)."""

    limit: float
    """The largest magnitude of a number: float32's largest for a model that fails beyond
    it, else unbounded."""
    nullable: tuple[bool, ...] | None
    """Per feature, whether a missing value there is predicted; ``None`` when not tried."""


def check_inputs(
    predict: Callable[[Any], Any],
    typical: npt.NDArray[Any],
    numeric: Sequence[int],
    missing: Sequence[Any],
    *,
    nulls: bool = True,
) -> InputChecks:
    """Try the model once at load on variations of one ``typical`` row (shape ``(1, F)``),
    through scikit-learn's own predict, so refusals are 400s naming the feature instead of a
    500 from inside the model.

    - The range: the ``numeric`` features set beyond float32's largest. scikit-learn's trees
      cast their input to float32 and fail inside ``predict`` on 1e39, which float64 holds.
    - Missing values (when ``nulls``): one row per feature with that feature set to its
      ``missing`` value, all predicted at once and, if that fails, one by one.

    A model that fails on the typical row itself teaches nothing: no limit, nulls untried.
    """
    count = typical.shape[1]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not _predicts(predict, typical):
            logger.info("input checks skipped: the model fails on a typical row")
            return InputChecks(math.inf, None)
        limit = math.inf
        if numeric:
            row = typical.copy()
            row[0, list(numeric)] = FLOAT32_MAX * 10
            if not _predicts(predict, row):
                limit = FLOAT32_MAX
        if not nulls:
            return InputChecks(limit, None)
        rows = np.repeat(typical, count, axis=0)
        for j in range(count):
            rows[j, j] = missing[j]
        if _predicts(predict, rows):
            return InputChecks(limit, (True,) * count)
        return InputChecks(limit, tuple(_predicts(predict, rows[j : j + 1]) for j in range(count)))


def _predicts(predict: Callable[[Any], Any], rows: npt.NDArray[Any]) -> bool:
    try:
        predict(rows)
    except Exception:
        return False
    return True


def _encoded_categories(estimator: Any) -> dict[str, frozenset[str]]:
    """The categories each encoded column of a fitted preprocessing Pipeline knows (its
    ColumnTransformer's OneHotEncoder or OrdinalEncoder), by column name."""
    steps = getattr(estimator, "steps", None)
    if not steps:
        return {}
    transformers = getattr(steps[0][1], "transformers_", None)
    if not isinstance(transformers, list):
        return {}
    found: dict[str, frozenset[str]] = {}
    for entry in transformers:
        if not isinstance(entry, tuple) or len(entry) != 3:
            continue
        _, transformer, names = entry
        names = list(names) if isinstance(names, list | tuple | np.ndarray) else []
        if not names or not all(isinstance(n, str) for n in names):
            continue
        parts = [step for _, step in getattr(transformer, "steps", [])] or [transformer]
        encoder = next((p for p in parts if hasattr(p, "categories_")), None)
        if encoder is None:
            continue
        for name, values in zip(names, encoder.categories_, strict=False):
            found[name] = frozenset(
                str(v) for v in np.asarray(values, dtype=object).tolist() if not _is_missing(v)
            )
    return found


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _datatype(kind: str, dtype: str) -> str:
    """The v2 datatype of a column of pandas ``dtype`` (``""`` when unknown)."""
    integer = dtype.lower().startswith(("int", "uint"))
    if kind == CATEGORICAL:
        if dtype.lower() in ("bool", "boolean"):
            return "BOOL"
        return "INT64" if integer else "BYTES"
    return "INT64" if integer else "FP64"


def table_columns(
    features: Sequence[str],
    estimator: Any,
    preprocessing: Sequence[Mapping[str, Any]] | None,
    schema: Mapping[str, Any] | None,
) -> tuple[Column, ...] | None:
    """The input columns of a model that takes raw rows, or ``None`` for a model of
    numbers (no feature is categorical or dropped).

    Each feature's kind comes from the manifest's ``preprocessing`` (which has the user's
    overrides), else ``schema.json``, else the fitted Pipeline (a column its encoders
    encode is categorical), else numeric; its datatype from the training dtype in
    ``schema.json`` (unknown: ``FP64`` for numbers, ``BYTES`` for categories); its known
    categories from the Pipeline's encoders, else ``schema.json``.
    """
    steps = {str(s.get("column")): s for s in preprocessing or ()}
    encoded = _encoded_categories(estimator)
    documented = (schema or {}).get("columns")
    documented = documented if isinstance(documented, Mapping) else {}
    columns = []
    for name in features:
        step = steps.get(name)
        doc = documented.get(name)
        doc = doc if isinstance(doc, Mapping) else {}
        if step is not None:
            kind, used = step.get("kind"), not step.get("dropped")
        elif doc.get("type") is not None:
            kind, used = doc.get("type"), True
        else:
            kind, used = CATEGORICAL if name in encoded else NUMERIC, True
        kind = kind if kind in (NUMERIC, CATEGORICAL) else NUMERIC
        categories = encoded.get(name)
        listed = doc.get("categories")
        if categories is None and kind == CATEGORICAL and isinstance(listed, list):
            categories = frozenset(str(c) for c in listed)
        datatype = _datatype(kind, str(doc.get("dtype") or ""))
        columns.append(Column(name, kind, datatype, True, categories, bool(used)))
    if all(c.kind == NUMERIC and c.used for c in columns):
        return None
    return tuple(columns)


def typical_table(
    columns: Sequence[Column],
    schema: Mapping[str, Any] | None,
    reference: Mapping[str, Any] | None,
) -> Table:
    """One row of ordinary values: each number's training mean (or middle quantile), each
    category's most frequent value; the load-time checks vary it."""
    documented = (schema or {}).get("columns")
    documented = documented if isinstance(documented, Mapping) else {}
    row = np.empty((1, len(columns)), dtype=object)
    for j, column in enumerate(columns):
        doc = documented.get(column.name)
        doc = doc if isinstance(doc, Mapping) else {}
        if not column.used:
            row[0, j] = None
        elif column.kind == NUMERIC:
            row[0, j] = _typical_number(doc, (reference or {}).get(column.name))
        else:
            row[0, j] = _typical_category(doc, column.categories)
    return row


def _typical_number(doc: Mapping[str, Any], stats: Any) -> float:
    mean = doc.get("mean")
    if isinstance(mean, int | float) and math.isfinite(mean):
        return float(mean)
    edges = stats.get("edges") if isinstance(stats, Mapping) else None
    if isinstance(edges, list) and edges and all(isinstance(e, int | float) for e in edges):
        return float(edges[len(edges) // 2])
    return 0.0


def _typical_category(doc: Mapping[str, Any], known: frozenset[str] | None) -> str:
    shares = doc.get("shares")
    if isinstance(shares, Mapping):
        ranked = sorted(shares.items(), key=lambda kv: -float(kv[1]))
        for value, _ in ranked:
            if known is None or str(value) in known:
                return str(value)
    return min(known) if known else ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes: one worker downloads, others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch_verified(store: ArtifactStore, uri: str, digest: str, cache_dir: Path) -> Path:
    """The local path of the object at ``uri``, verified to have ``digest``.

    Reuses the cached copy when it still has the digest; otherwise downloads beside it,
    hashes, and only then moves it into place. Raises :class:`LoadError` on a mismatch.
    """
    if not digest.startswith("sha256:") or len(digest) != len("sha256:") + 64:
        raise LoadError(f"expected digest {digest!r} is not of the form sha256:<64 hex digits>")
    target = cache_dir / "models" / digest.removeprefix("sha256:") / MODEL_FILE
    with _locked(target.with_name(".lock")):
        if target.is_file():
            if sha256_file(target) == digest:
                logger.info("using cached %s (%s)", target, digest)
                return target
            target.unlink()
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{MODEL_FILE}.")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            store.download_file(uri, tmp)
            actual = sha256_file(tmp)
            if actual != digest:
                raise LoadError(
                    f"digest mismatch for {uri}: the file has {actual}, expected {digest}; "
                    "refusing to load it"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def load_model(
    model_uri: str,
    cache_dir: Path,
    expected_digest: str | None = None,
    store: ArtifactStore | None = None,
) -> ServedModel:
    """Fetch, verify and load the model in the artifact directory ``model_uri``.

    ``expected_digest`` (from ``--digest``) wins over the manifest's: the manifest sits next
    to the model and could have been replaced with it. Without a manifest it is required.
    """
    store = store or ArtifactStore()
    try:
        base = parse_uri(model_uri).as_dir()
    except ValueError as exc:
        raise LoadError(str(exc)) from exc
    manifest_uri = str(base.child(MANIFEST_FILE))
    file_uri = str(base.child(MODEL_FILE))
    try:
        try:
            manifest: Manifest | None = parse_manifest(store.read_bytes(manifest_uri), manifest_uri)
        except NotFound:
            manifest = None
        digest = expected_digest or (manifest.digest if manifest else None)
        if digest is None:
            raise LoadError(
                f"{manifest_uri} does not exist (or names no digest) and no --digest was given: "
                f"{file_uri} cannot be verified, so it is not loaded"
            )
        path = fetch_verified(store, file_uri, digest, cache_dir)
    except StorageError as exc:
        raise LoadError(exc.message) from exc
    import sklearn

    estimator, pickled_with = read_estimator(path, file_uri)
    info = describe(estimator, digest, file_uri, manifest)
    trained_with = info.framework_version or pickled_with
    if info.framework_version and info.framework_version != sklearn.__version__:
        logger.warning(
            "the model was trained with scikit-learn %s but %s is installed; "
            "predictions may differ",
            info.framework_version,
            sklearn.__version__,
        )
    reference, why = _read_reference(store, str(base.child(REFERENCE_FILE)))
    info = replace(info, framework_version=trained_with, drift_unavailable=why)
    if manifest is None:
        logger.info(
            "no %s: serving %s as a %s of %d features %s (inferred from the estimator)",
            MANIFEST_FILE,
            type(estimator).__name__,
            info.task,
            len(info.features),
            list(info.features[:10]),
        )
    schema = _read_schema(store, str(base.child(SCHEMA_FILE)))
    forced = force_single_thread(estimator)
    if forced:
        logger.info("set %s to 1", ", ".join(forced))
    return ServedModel(info, estimator, reference, schema)


def _read_schema(store: ArtifactStore, uri: str) -> dict[str, Any] | None:
    """The training data's ``schema.json``, if the model came with a readable one: the
    columns' training dtypes, categories and their shares (categorical drift)."""
    try:
        doc = orjson.loads(store.read_bytes(uri))
    except NotFound:
        return None
    except (StorageError, orjson.JSONDecodeError) as exc:
        logger.warning("%s is not used: %s", uri, getattr(exc, "message", exc))
        return None
    return doc if isinstance(doc, dict) else None


def _read_reference(store: ArtifactStore, uri: str) -> tuple[dict[str, Any] | None, str | None]:
    """The per-feature training statistics in ``reference.json``, or why there are none."""
    try:
        doc = orjson.loads(store.read_bytes(uri))
    except NotFound:
        why = f"no training statistics to measure drift against: {uri} does not exist"
    except StorageError as exc:
        why = exc.message
    except orjson.JSONDecodeError as exc:
        why = f"{uri} is not valid JSON: {exc}"
    else:
        features = doc.get("features") if isinstance(doc, dict) else None
        if isinstance(features, dict):
            return features, None
        why = f"{uri} has no per-feature statistics"
    logger.warning("no drift detection: %s", why)
    return None, why
