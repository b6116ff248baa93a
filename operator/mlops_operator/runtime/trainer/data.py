"""The dataset: CSV or Parquet from ``s3://`` or ``file://``, its feature and target columns,
and its split into training and held-out rows. pandas is imported inside the functions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mlops_operator.api.trainingjob import Task
from mlops_operator.artifacts.store import (
    ArtifactStore,
    ArtifactUri,
    BucketNotFound,
    NotFound,
    ObjectVersion,
    parse_uri,
    sha256_file,
)
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.failure import TrainingFailure

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_MAX_LISTED_COLUMNS: Final = 40


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
    store: ArtifactStore,
    uri: str,
    declared_format: str | None,
    workdir: Path,
    version_id: str | None = None,
) -> tuple[pd.DataFrame, str, ObjectVersion]:
    """The dataset as a DataFrame, the ``sha256:`` digest of its file and which version of
    the object was read (``version_id`` when given).

    An ``s3://`` dataset is downloaded into ``workdir`` first; the digest is computed from
    the file, in chunks. The version is read before the download and the download asks for
    exactly that version, so an object overwritten in between is not mixed up.
    """
    loc = parse_uri(uri)
    fmt = dataset_format(loc, declared_format)
    try:
        version = store.describe(loc, version_id)
        if loc.scheme == "s3":
            path = workdir / f"dataset.{fmt}"
            store.download_file(loc, path, version_id=version.version_id)
        else:
            path = loc.path
    except BucketNotFound as exc:
        raise TrainingFailure(
            tm.DATASET_NOT_FOUND, f"dataset {loc} does not exist: {exc.message}"
        ) from exc
    except NotFound as exc:
        if version_id is not None:
            raise TrainingFailure(
                tm.DATASET_NOT_FOUND,
                f"dataset {loc} has no version {version_id!r}; check spec.dataset.versionId",
            ) from exc
        raise TrainingFailure(
            tm.DATASET_NOT_FOUND, f"dataset {loc} does not exist; check spec.dataset.uri"
        ) from exc
    digest = sha256_file(path)
    frame = _read_frame(path, fmt, loc)
    if frame.empty:
        raise TrainingFailure(tm.DATASET_UNREADABLE, f"dataset {loc} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    logger.info(
        "loaded %d rows × %d columns from %s%s",
        len(frame),
        len(frame.columns),
        loc,
        f" (version {version.version_id})" if version.version_id else "",
    )
    return frame, digest, version


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
    """The ordered feature columns, after checking that every named column exists (and, for
    a regression, that the target is numeric). Features of any type are preprocessed."""
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
    if task == "regression" and not is_numeric_dtype(frame[target]):
        raise TrainingFailure(
            tm.NON_NUMERIC_FEATURE,
            f"target column {target!r} of dataset {uri} is {frame[target].dtype}, "
            "but a regression needs a numeric target",
        )
    return chosen


def labelled_rows(frame: pd.DataFrame, target: str, uri: str) -> pd.DataFrame:
    """The rows with a value in ``target``; a dataset with none cannot be trained on."""
    labelled = frame[frame[target].notna()]
    if len(labelled) < len(frame):
        logger.info(
            "dropped %d rows with no value in target %r", len(frame) - len(labelled), target
        )
    if labelled.empty:
        raise TrainingFailure(
            tm.DATASET_UNREADABLE, f"dataset {uri} has no value in target {target!r}"
        )
    return labelled


def split_holdout(
    x: pd.DataFrame, y: pd.Series[Any], task: Task, test_size: float, seed: int, stratify: bool
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series[Any], pd.Series[Any]]:
    """``(x_train, x_test, y_train, y_test)``: a classification is stratified by class when
    asked and every class has two rows; otherwise the split is plain."""
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
        return split_holdout(x, y, task, test_size, seed, stratify=False)
    x_train, x_test, y_train, y_test = parts
    return x_train, x_test, y_train, y_test
