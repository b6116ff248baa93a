"""The trainer: what runs in a TrainingJob's pod, and by hand on a laptop.

``mlops-operator train -f trainingjob.yaml`` reads the dataset, fits the estimator, measures
it on a held-out split and writes, into the output directory and in this order:
``reference.json`` (training distribution for drift detection), ``metrics.json``,
``model.joblib`` and ``manifest.json``. The manifest comes last: its presence marks a
complete run. The outcome goes to the termination message (see
:mod:`mlops_operator.runtime.termination`) and progress to stderr, for ``kubectl logs``.

scikit-learn, pandas and joblib are imported inside functions, so the command line starts
fast and this module can be imported where they are not needed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import importlib
import inspect
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml
from pydantic import ValidationError

from mlops_operator.api.trainingjob import CLASS_NAME, Task, TrainingJobSpec
from mlops_operator.artifacts.layout import (
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    local_run_dir_uri,
)
from mlops_operator.artifacts.store import (
    AccessDenied,
    ArtifactStore,
    ArtifactUri,
    BucketNotFound,
    NotFound,
    StorageError,
    Unreachable,
    parse_uri,
    sha256_file,
)
from mlops_operator.runtime import termination as tm
from mlops_operator.settings import Settings

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

logger = logging.getLogger(__name__)

TRAININGJOB_ENV: Final = "MLOPS_TRAININGJOB"
"""Environment variable holding the TrainingJob as JSON when no ``-f`` is given."""

CLASSIFICATION_METRICS: Final = ("accuracy", "precision", "recall", "f1", "rocAuc")
"""Metrics of a classifier, in report order; precision, recall and f1 are macro averages."""

REGRESSION_METRICS: Final = ("r2", "mae", "rmse")
"""Metrics of a regressor, in report order."""

METRICS_BY_TASK: Final[Mapping[str, tuple[str, ...]]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}

_CLASS_NAME = re.compile(CLASS_NAME)
_MAX_LISTED_COLUMNS: Final = 40


class TrainingFailure(Exception):
    """An expected failure: reported as ``<reason>: <message>``, without a traceback."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class TrainingRequest:
    """A parsed TrainingJob: its name (``None`` for a bare spec) and its spec."""

    name: str | None
    spec: TrainingJobSpec


def _validation_message(exc: ValidationError, prefix: str) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def parse_trainingjob(text: str, source: str) -> TrainingRequest:
    """Parse a TrainingJob (YAML or JSON; a whole object or a bare spec) read from ``source``."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"cannot parse the TrainingJob in {source}: {exc}"
        ) from exc
    if not isinstance(doc, dict):
        raise TrainingFailure(
            tm.INVALID_SPEC, f"{source} does not hold a TrainingJob (expected a mapping)"
        )
    kind = doc.get("kind")
    if kind is not None and kind != "TrainingJob":
        raise TrainingFailure(tm.INVALID_SPEC, f"{source} holds a {kind}, not a TrainingJob")
    name: str | None = None
    raw_spec: Any = doc
    prefix = ""
    if "spec" in doc:
        raw_spec, prefix = doc["spec"], "spec"
        metadata = doc.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
            name = metadata["name"]
    try:
        spec = TrainingJobSpec.model_validate(raw_spec)
    except ValidationError as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"invalid TrainingJob in {source}: {_validation_message(exc, prefix)}"
        ) from exc
    return TrainingRequest(name=name, spec=spec)


def load_trainingjob(manifest_path: str | None) -> TrainingRequest:
    """Read the TrainingJob from a file, from stdin (``-``) or from ``$MLOPS_TRAININGJOB``."""
    if manifest_path is None:
        text = os.environ.get(TRAININGJOB_ENV)
        if not text:
            raise TrainingFailure(
                tm.INVALID_SPEC,
                f"no TrainingJob given: pass -f FILE or set {TRAININGJOB_ENV} to its JSON",
            )
        return parse_trainingjob(text, f"${TRAININGJOB_ENV}")
    if manifest_path == "-":
        return parse_trainingjob(sys.stdin.read(), "stdin")
    try:
        text = Path(manifest_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"cannot read the TrainingJob file {manifest_path}: {exc}"
        ) from exc
    return parse_trainingjob(text, manifest_path)


def default_output_uri(spec: TrainingJobSpec, name: str | None, settings: Settings) -> str:
    """The layout's :func:`~mlops_operator.artifacts.layout.local_run_dir_uri` for the spec's
    bucket and prefix, or the settings' where the spec has none."""
    bucket = spec.storage.bucket or settings.s3_bucket
    prefix = spec.storage.prefix if spec.storage.prefix is not None else settings.s3_prefix
    return local_run_dir_uri(bucket, prefix, spec.model, name)


# --------------------------------------------------------------------------- estimator


def resolve_estimator_class(class_name: str, allowed_prefixes: Sequence[str]) -> type[Any]:
    """The scikit-learn estimator class named ``class_name``.

    The name is checked against ``allowed_prefixes`` before anything is imported, because
    importing a module runs its code.
    """
    if not _CLASS_NAME.match(class_name) or not any(
        class_name.startswith(prefix) for prefix in allowed_prefixes
    ):
        allowed = ", ".join(allowed_prefixes) or "(none)"
        raise TrainingFailure(
            tm.ESTIMATOR_NOT_ALLOWED,
            f"estimator class {class_name!r} is not allowed; allowed prefixes: {allowed}",
        )
    module_name, _, attr = class_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainingFailure(
            tm.UNKNOWN_ESTIMATOR,
            f"estimator class {class_name!r} not found: there is no module {module_name!r}",
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        close = difflib.get_close_matches(attr, [n for n in dir(module) if n[:1].isupper()], 3)
        hint = f"; did you mean {', '.join(f'{module_name}.{n}' for n in close)}?" if close else ""
        raise TrainingFailure(
            tm.UNKNOWN_ESTIMATOR,
            f"estimator class {class_name!r} not found: module {module_name!r} has no "
            f"{attr!r}{hint}",
        )
    from sklearn.base import BaseEstimator

    if not (
        isinstance(cls, type)
        and issubclass(cls, BaseEstimator)
        and callable(getattr(cls, "fit", None))
        and callable(getattr(cls, "predict", None))
    ):
        raise TrainingFailure(
            tm.UNKNOWN_ESTIMATOR,
            f"{class_name!r} is not a scikit-learn estimator with fit and predict",
        )
    return cls


def _parameter_names(cls: type[Any]) -> list[str]:
    signature = inspect.signature(cls.__init__)
    return [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def build_estimator(cls: type[Any], params: Mapping[str, Any], random_state: int) -> Any:
    """An instance of ``cls`` with ``params``, checked before any fitting.

    ``random_state`` is set when the estimator accepts one and ``params`` leave it unset,
    so runs are reproducible.
    """
    valid = _parameter_names(cls)
    unknown = [name for name in params if name not in valid]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, valid, 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TrainingFailure(
            tm.INVALID_PARAMS,
            f"{cls.__name__} has no parameter {name!r}{hint}; "
            f"its parameters are: {', '.join(valid)}",
        )
    kwargs = dict(params)
    if "random_state" in valid and "random_state" not in kwargs:
        kwargs["random_state"] = random_state
    try:
        estimator = cls(**kwargs)
        # scikit-learn checks parameter values only in fit(); check them now, so a bad
        # value is reported as such and not as a failed training.
        validate = getattr(estimator, "_validate_params", None)
        if callable(validate):
            validate()
    except (TypeError, ValueError) as exc:
        raise TrainingFailure(
            tm.INVALID_PARAMS, f"invalid {cls.__name__} parameters: {exc}"
        ) from exc
    return estimator


def infer_task(estimator: Any, declared: Task | None) -> Task:
    """The task: ``declared`` if set (it must agree with the estimator), else inferred."""
    from sklearn.base import is_classifier, is_regressor

    name = type(estimator).__name__
    kind: Task | None = None
    if is_classifier(estimator):
        kind = "classification"
    elif is_regressor(estimator):
        kind = "regression"
    if declared is None:
        if kind is None:
            raise TrainingFailure(
                tm.INVALID_SPEC,
                f"cannot tell whether {name} is a classifier or a regressor; set spec.task",
            )
        return kind
    if kind is not None and kind != declared:
        raise TrainingFailure(
            tm.INVALID_SPEC,
            f"spec.task is {declared} but {name} is a "
            f"{'classifier' if kind == 'classification' else 'regressor'}",
        )
    return declared


# --------------------------------------------------------------------------- metrics


def select_metrics(task: Task, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The metrics to report: ``requested`` (in the task's order), or all of the task's."""
    valid = METRICS_BY_TASK[task]
    if requested is None:
        return valid
    unknown = [name for name in requested if name not in valid]
    if unknown:
        raise TrainingFailure(
            tm.INVALID_SPEC,
            f"unknown {task} metric {unknown[0]!r} in spec.validation.metrics; "
            f"valid metrics: {', '.join(valid)}",
        )
    return tuple(name for name in valid if name in requested)


def _roc_auc(y_true: npt.ArrayLike, scores: Any, classes: Sequence[Any]) -> float | None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(y_true)
    if scores is None or len(classes) < 2:
        return None
    scores = np.asarray(scores)
    # AUC is undefined unless every class appears among the held-out rows.
    if not all((truth == c).any() for c in classes):
        return None
    if len(classes) == 2:
        positive = scores[:, 1] if scores.ndim == 2 else scores
        return float(roc_auc_score((truth == classes[1]).astype(int), positive))
    if scores.ndim != 2:
        return None
    return float(roc_auc_score(truth, scores, multi_class="ovr", average="macro", labels=classes))


def compute_metrics(
    task: Task,
    names: Sequence[str],
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    scores: Any = None,
    classes: Sequence[Any] = (),
) -> dict[str, float]:
    """Held-out metrics, rounded to 6 digits; undefined ones are left out.

    ``scores`` are ``predict_proba`` rows (or, for a binary classifier without
    probabilities, ``decision_function`` values) in the order of ``classes``.
    """
    import numpy as np
    from sklearn import metrics as m

    values: dict[str, float | None] = {}
    for name in names:
        if name == "accuracy":
            values[name] = m.accuracy_score(y_true, y_pred)
        elif name == "precision":
            values[name] = m.precision_score(y_true, y_pred, average="macro", zero_division=0)
        elif name == "recall":
            values[name] = m.recall_score(y_true, y_pred, average="macro", zero_division=0)
        elif name == "f1":
            values[name] = m.f1_score(y_true, y_pred, average="macro", zero_division=0)
        elif name == "rocAuc":
            values[name] = _roc_auc(y_true, scores, classes)
        elif name == "r2":
            # R² of fewer than two rows is undefined (scikit-learn warns and returns NaN).
            values[name] = m.r2_score(y_true, y_pred) if np.size(y_true) >= 2 else None
        elif name == "mae":
            values[name] = m.mean_absolute_error(y_true, y_pred)
        elif name == "rmse":
            values[name] = m.root_mean_squared_error(y_true, y_pred)
        else:
            raise ValueError(f"unknown metric {name!r}")
    return {
        name: round(float(v), 6)
        for name, v in values.items()
        if v is not None and math.isfinite(float(v))
    }


# --------------------------------------------------------------------------- data


def dataset_format(loc: ArtifactUri, declared: str | None) -> str:
    """``csv`` or ``parquet``: ``declared`` if set, else from the file name's extension."""
    if declared is not None:
        return declared
    name = loc.key.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise TrainingFailure(
        tm.INVALID_SPEC,
        f"cannot tell the format of dataset {loc} from its name; "
        "set spec.dataset.format to csv or parquet",
    )


def _read_frame(path: Path, fmt: str, loc: ArtifactUri) -> pd.DataFrame:
    import pandas as pd

    errors: tuple[type[BaseException], ...] = (ValueError, OSError)
    try:
        if fmt == "parquet":
            import pyarrow

            errors = (*errors, pyarrow.ArrowException)
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except errors as exc:
        raise TrainingFailure(
            tm.DATASET_UNREADABLE, f"cannot read dataset {loc} as {fmt}: {exc}"
        ) from exc


def load_dataset(
    store: ArtifactStore, uri: str, declared_format: str | None, workdir: Path
) -> tuple[pd.DataFrame, str]:
    """The dataset as a DataFrame and the ``sha256:`` digest of its file.

    An ``s3://`` dataset is downloaded into ``workdir`` first; the digest is computed from
    the file, in chunks.
    """
    loc = parse_uri(uri)
    fmt = dataset_format(loc, declared_format)
    try:
        store.head(loc)
        if loc.scheme == "s3":
            path = workdir / f"dataset.{fmt}"
            store.download_file(loc, path)
        else:
            path = loc.path
    except BucketNotFound as exc:
        raise TrainingFailure(
            tm.DATASET_NOT_FOUND, f"dataset {loc} does not exist: {exc.message}"
        ) from exc
    except NotFound as exc:
        raise TrainingFailure(
            tm.DATASET_NOT_FOUND, f"dataset {loc} does not exist; check spec.dataset.uri"
        ) from exc
    digest = sha256_file(path)
    frame = _read_frame(path, fmt, loc)
    if frame.empty:
        raise TrainingFailure(tm.DATASET_UNREADABLE, f"dataset {loc} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    logger.info("loaded %d rows × %d columns from %s", len(frame), len(frame.columns), loc)
    return frame, digest


def _column_list(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:_MAX_LISTED_COLUMNS])
    more = len(columns) - _MAX_LISTED_COLUMNS
    return f"{shown} (and {more} more)" if more > 0 else shown


def select_columns(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str] | None,
    uri: str,
    task: Task,
) -> list[str]:
    """The ordered feature columns, after checking that every named column exists and is
    numeric (there is no implicit encoding)."""
    from pandas.api.types import is_numeric_dtype

    columns = list(frame.columns)
    wanted = [target, *(features or [])]
    missing = [c for c in dict.fromkeys(wanted) if c not in columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise TrainingFailure(
            tm.MISSING_COLUMN,
            f"dataset {uri} has no column {names}; columns are: {_column_list(columns)}",
        )
    if features is None:
        chosen = [c for c in columns if c != target]
    else:
        if target in features:
            raise TrainingFailure(
                tm.INVALID_SPEC,
                f"target column {target!r} is also listed in spec.dataset.features",
            )
        if len(set(features)) != len(features):
            raise TrainingFailure(
                tm.INVALID_SPEC, "spec.dataset.features lists a column more than once"
            )
        chosen = list(features)
    if not chosen:
        raise TrainingFailure(
            tm.MISSING_COLUMN, f"dataset {uri} has no column besides the target {target!r}"
        )
    bad = [f"{c} ({frame[c].dtype})" for c in chosen if not is_numeric_dtype(frame[c])]
    if bad:
        raise TrainingFailure(
            tm.NON_NUMERIC_FEATURE,
            f"feature columns of dataset {uri} are not numeric: {_column_list(bad)}; encode "
            "them as numbers before training, or leave them out of spec.dataset.features",
        )
    if task == "regression" and not is_numeric_dtype(frame[target]):
        raise TrainingFailure(
            tm.NON_NUMERIC_FEATURE,
            f"target column {target!r} of dataset {uri} is {frame[target].dtype}, "
            "but a regression needs a numeric target",
        )
    return chosen


# --------------------------------------------------------------------------- helpers


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: numpy scalars unwrapped, non-finite floats and other
    objects (nested estimators, callables) as their ``repr``."""
    import numpy as np

    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return repr(value)


def _json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n").encode()


@contextlib.contextmanager
def _logged_warnings(stage: str) -> Iterator[None]:
    """Log warnings raised by scikit-learn (convergence, ill-defined metrics) instead of
    letting a warnings filter turn them into errors or print them unformatted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        logger.warning("%s: %s: %s", stage, w.category.__name__, " ".join(str(w.message).split()))


def _storage_failure(exc: StorageError) -> TrainingFailure:
    if isinstance(exc, Unreachable):
        return TrainingFailure(tm.STORAGE_UNREACHABLE, exc.message)
    if isinstance(exc, BucketNotFound):
        return TrainingFailure(tm.BUCKET_NOT_FOUND, exc.message)
    if isinstance(exc, AccessDenied):
        return TrainingFailure(tm.ACCESS_DENIED, exc.message)
    return TrainingFailure(tm.TRAINING_ERROR, exc.message)


def _split(
    x: pd.DataFrame, y: pd.Series[Any], task: Task, test_size: float, seed: int, stratify: bool
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series[Any], pd.Series[Any]]:
    from sklearn.model_selection import train_test_split

    strata = None
    if task == "classification" and stratify:
        counts = y.value_counts()
        if counts.min() >= 2:
            strata = y
        else:
            logger.info("not stratifying the split: class %r has a single row", counts.idxmin())
    try:
        parts = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=strata)
    except ValueError as exc:
        if strata is None:
            raise TrainingFailure(
                tm.TRAINING_ERROR, f"cannot split {len(x)} rows into train and test sets: {exc}"
            ) from exc
        logger.info("not stratifying the split: %s", exc)
        return _split(x, y, task, test_size, seed, stratify=False)
    x_train, x_test, y_train, y_test = parts
    return x_train, x_test, y_train, y_test


def _scores(estimator: Any, x: pd.DataFrame, n_classes: int) -> Any:
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(x)
    if n_classes == 2 and hasattr(estimator, "decision_function"):
        return estimator.decision_function(x)
    return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- training


def train(
    request: TrainingRequest,
    output: str | None = None,
    *,
    store: ArtifactStore | None = None,
    settings: Settings | None = None,
) -> tm.TrainingSummary:
    """Run one training and write its artifacts; raises :class:`TrainingFailure`."""
    spec = request.spec
    try:
        settings = settings or Settings()
    except ValidationError as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"invalid MLOPS_ settings: {_validation_message(exc, '')}"
        ) from exc
    class_name = spec.estimator.class_name
    cls = resolve_estimator_class(class_name, settings.allowed_estimator_prefixes)
    estimator = build_estimator(cls, spec.estimator.params, spec.validation.random_state)
    task = infer_task(estimator, spec.task)
    metric_names = select_metrics(task, spec.validation.metrics)

    try:
        out = parse_uri(output or default_output_uri(spec, request.name, settings)).as_dir()
    except ValueError as exc:
        raise TrainingFailure(tm.INVALID_SPEC, f"invalid output location: {exc}") from exc
    if store is None:
        store = ArtifactStore(
            endpoint=spec.storage.endpoint or settings.s3_endpoint,
            region=spec.storage.region or settings.s3_region,
        )
    try:
        with tempfile.TemporaryDirectory(prefix="mlops-train-") as tmp:
            return _train(request, estimator, task, metric_names, store, out, Path(tmp))
    except StorageError as exc:
        raise _storage_failure(exc) from exc


def _train(
    request: TrainingRequest,
    estimator: Any,
    task: Task,
    metric_names: tuple[str, ...],
    store: ArtifactStore,
    out: ArtifactUri,
    workdir: Path,
) -> tm.TrainingSummary:
    import joblib
    import numpy as np
    import sklearn

    from mlops_operator.runtime.refstats import reference_stats

    spec = request.spec
    class_name = spec.estimator.class_name
    # Fail before the (possibly long) training if the results could not be stored.
    store.check_bucket(out)

    frame, dataset_digest = load_dataset(store, spec.dataset.uri, spec.dataset.format, workdir)
    target = spec.dataset.target
    features = select_columns(frame, target, spec.dataset.features, spec.dataset.uri, task)
    rows = len(frame)
    labelled = frame[frame[target].notna()]
    if len(labelled) < rows:
        logger.info("dropped %d rows with no value in target %r", rows - len(labelled), target)
    if labelled.empty:
        raise TrainingFailure(
            tm.DATASET_UNREADABLE, f"dataset {spec.dataset.uri} has no value in target {target!r}"
        )
    validation = spec.validation
    x_train, x_test, y_train, y_test = _split(
        labelled[features],
        labelled[target],
        task,
        validation.test_size,
        validation.random_state,
        validation.stratify,
    )

    logger.info(
        "fitting %s on %d rows × %d features (%d held out)",
        class_name,
        len(x_train),
        len(features),
        len(x_test),
    )
    started = time.monotonic()
    with _logged_warnings("fit"):
        try:
            estimator.fit(x_train, y_train)
        except (ValueError, TypeError) as exc:
            raise TrainingFailure(tm.TRAINING_ERROR, f"fitting {class_name} failed: {exc}") from exc
    fit_seconds = round(time.monotonic() - started, 3)
    logger.info("fitted in %.2f s", fit_seconds)

    classes: list[Any] = list(getattr(estimator, "classes_", []))
    with _logged_warnings("metrics"):
        y_pred = estimator.predict(x_test)
        scores = _scores(estimator, x_test, len(classes)) if task == "classification" else None
        metrics = compute_metrics(
            task, metric_names, y_test, y_pred, scores=scores, classes=classes
        )
    logger.info("%s", " ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or "no metrics")

    reference = reference_stats(
        {f: x_train[f].to_numpy(dtype=float, na_value=np.nan) for f in features}
    )
    # A manifest left by an earlier attempt (a retried pod) would vouch for files this run
    # is about to overwrite.
    store.delete(out.child(MANIFEST_FILE))
    reference_uri = out.child(REFERENCE_FILE)
    store.write_bytes(reference_uri, _json_bytes(reference))
    logger.info("wrote %s", reference_uri)
    metrics_uri = out.child(METRICS_FILE)
    store.write_bytes(metrics_uri, _json_bytes(metrics))
    logger.info("wrote %s", metrics_uri)

    model_path = workdir / MODEL_FILE
    joblib.dump(estimator, model_path)
    digest = sha256_file(model_path)
    model_uri = out.child(MODEL_FILE)
    store.upload_file(model_path, model_uri)
    logger.info("wrote %s %s (%d bytes)", model_uri, digest, model_path.stat().st_size)

    manifest = {
        "digest": digest,
        "model": spec.model,
        "trainingJob": request.name,
        "framework": "scikit-learn",
        "frameworkVersion": sklearn.__version__,
        "pythonVersion": ".".join(str(v) for v in sys.version_info[:3]),
        "joblibVersion": joblib.__version__,
        "className": class_name,
        "params": json_safe(estimator.get_params(deep=False)),
        "task": task,
        "features": features,
        "target": target,
        "classes": json_safe(classes) if task == "classification" else None,
        "metrics": metrics,
        "dataset": {
            "uri": spec.dataset.uri,
            "digest": dataset_digest,
            "rows": rows,
            "trainRows": len(x_train),
            "testRows": len(x_test),
        },
        "fitSeconds": fit_seconds,
        "createdAt": _now(),
    }
    manifest_uri = out.child(MANIFEST_FILE)
    store.write_bytes(manifest_uri, _json_bytes(manifest))
    logger.info("wrote %s", manifest_uri)
    return tm.TrainingSummary(digest=digest, artifact_uri=str(out), metrics=metrics)


# --------------------------------------------------------------------------- command


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    logging.getLogger("mlops_operator").setLevel(logging.INFO)


def train_command(manifest_path: str | None, output: str | None) -> int:
    """``mlops-operator train``: train, write the termination message, return the exit code.

    Exit code 0 on success, 2 on a failure no retry can fix (``PERMANENT_REASONS``), 1 on
    any other failure. Expected failures are logged as one line; an unexpected error is
    logged with its traceback and reported as ``TrainingError``.
    """
    _configure_logging()
    try:
        summary = train(load_trainingjob(manifest_path), output)
    except TrainingFailure as exc:
        logger.error("training failed: %s: %s", exc.reason, exc.message)
        tm.write_termination_message(tm.format_failure(exc.reason, exc.message))
        return tm.exit_code_for(exc.reason)
    except Exception as exc:
        logger.exception("training failed with an unexpected error")
        tm.write_termination_message(
            tm.format_failure(
                tm.TRAINING_ERROR,
                f"unexpected {type(exc).__name__}: {exc}; the pod's log has the traceback",
            )
        )
        return tm.EXIT_FAILURE
    tm.write_termination_message(tm.format_success(summary))
    logger.info("training succeeded: model %s in %s", summary.digest, summary.artifact_uri)
    return 0
