"""Loading a model artifact safely, and predicting with it.

``joblib.load`` unpickles, which runs code: the file is checked against the expected sha256
digest before it is loaded, and only a verified file ever sits at its place in the cache.
The cache is keyed by digest, so a restarted worker (or a second worker) loads from disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from mlops_operator.artifacts.layout import MANIFEST_FILE, MODEL_FILE, REFERENCE_FILE
from mlops_operator.artifacts.store import ArtifactStore, StorageError, parse_uri, sha256_file
from mlops_operator.runtime.server.protocol import OUTPUT_PREDICT, OUTPUT_PROBA, Rows

logger = logging.getLogger(__name__)


class LoadError(Exception):
    """The model cannot be served (yet); ``message`` says why, for logs and probes."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ModelInfo:
    """What the server needs from ``manifest.json``."""

    features: tuple[str, ...]
    task: str
    """``classification`` or ``regression``."""
    classes: tuple[Any, ...] | None
    digest: str
    framework_version: str | None

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


def parse_manifest(raw: bytes, uri: str) -> ModelInfo:
    """The :class:`ModelInfo` in a ``manifest.json`` written by the trainer."""
    try:
        doc = orjson.loads(raw)
        features = tuple(str(f) for f in doc["features"])
        task = str(doc["task"])
        digest = str(doc["digest"])
        classes = doc.get("classes")
        version = doc.get("frameworkVersion")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise LoadError(f"{uri} is not a valid model manifest: {exc!r}") from exc
    if task not in ("classification", "regression") or not features:
        raise LoadError(f"{uri} is not a valid model manifest: task {task!r}, features {features}")
    return ModelInfo(
        features=features,
        task=task,
        classes=tuple(classes) if isinstance(classes, list) else None,
        digest=digest,
        framework_version=str(version) if version else None,
    )


def force_single_thread(estimator: Any) -> list[str]:
    """Set every ``n_jobs`` parameter (nested estimators included) to 1; returns their names.

    The server parallelises across requests (batches, workers); a model that forks a pool
    per call would oversubscribe the CPUs and add latency to every request.
    """
    names = [k for k in estimator.get_params(deep=True) if k == "n_jobs" or k.endswith("__n_jobs")]
    if names:
        estimator.set_params(**dict.fromkeys(names, 1))
    return names


class ServedModel:
    """A loaded, verified model with its manifest and reference statistics."""

    def __init__(self, info: ModelInfo, estimator: Any, reference: dict[str, Any] | None) -> None:
        import pandas as pd
        from sklearn.utils import get_tags

        self.info = info
        self.estimator = estimator
        self.reference = reference
        self._frame = pd.DataFrame
        self._columns = list(info.features)
        self.has_proba = info.is_classifier and hasattr(estimator, "predict_proba")
        self.array_input = self._arrays_predict_alike()
        """Whether ``predict`` gets bare arrays rather than DataFrames; see
        :meth:`_arrays_predict_alike`."""
        try:
            self.allow_nan = bool(get_tags(estimator).input_tags.allow_nan)
        except (AttributeError, TypeError):
            self.allow_nan = False
        classes = getattr(estimator, "classes_", None)
        self.classes: tuple[Any, ...] = (
            tuple(np.asarray(classes).tolist()) if classes is not None else info.classes or ()
        )

    @property
    def output_names(self) -> tuple[str, ...]:
        """The outputs this model can produce."""
        return (OUTPUT_PREDICT, OUTPUT_PROBA) if self.has_proba else (OUTPUT_PREDICT,)

    def predict(self, rows: Rows, with_proba: bool) -> tuple[npt.NDArray[Any], Rows | None]:
        """Predictions for ``rows`` and, if asked and available, class probabilities."""
        # Arrays where the load-time probe allowed it (see _arrays_predict_alike).
        x = rows if self.array_input else self._frame(rows, columns=self._columns, copy=False)
        predictions = np.asarray(self.estimator.predict(x))
        proba = None
        if with_proba and self.has_proba:
            proba = np.ascontiguousarray(self.estimator.predict_proba(x), dtype=np.float64)
        return predictions, proba

    def _arrays_predict_alike(self) -> bool:
        """Whether this estimator predicts the same on bare arrays as on DataFrames.

        scikit-learn checks a DataFrame's columns and dtypes on every call: 0.7 ms of a
        LogisticRegression's 0.8 ms on one row. The estimator is tried at load on rows made
        of the training quantiles (``reference.json``), both ways; arrays are used only if
        that raises nothing and the predictions are identical. A pipeline that selects
        columns by name fails the trial and keeps DataFrames, as does a model without
        reference statistics.
        """
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
    to the model and could have been replaced with it.
    """
    store = store or ArtifactStore()
    try:
        base = parse_uri(model_uri).as_dir()
    except ValueError as exc:
        raise LoadError(str(exc)) from exc
    manifest_uri = str(base.child(MANIFEST_FILE))
    try:
        info = parse_manifest(store.read_bytes(manifest_uri), manifest_uri)
        digest = expected_digest or info.digest
        path = fetch_verified(store, str(base.child(MODEL_FILE)), digest, cache_dir)
    except StorageError as exc:
        raise LoadError(exc.message) from exc
    reference = _read_reference(store, str(base.child(REFERENCE_FILE)))

    import joblib
    import sklearn

    if info.framework_version and info.framework_version != sklearn.__version__:
        logger.warning(
            "the model was trained with scikit-learn %s but %s is installed; "
            "predictions may differ",
            info.framework_version,
            sklearn.__version__,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = joblib.load(path)
    for warning in caught:
        logger.warning("loading the model: %s", warning.message)
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and tuple(str(f) for f in fitted) != info.features:
        raise LoadError(
            f"{manifest_uri} lists features {list(info.features)} but the model was fitted on "
            f"{list(fitted)}"
        )
    forced = force_single_thread(estimator)
    if forced:
        logger.info("set %s to 1", ", ".join(forced))
    return ServedModel(info, estimator, reference)


def _read_reference(store: ArtifactStore, uri: str) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(store.read_bytes(uri))
    except StorageError as exc:
        logger.warning("no drift detection: %s", exc.message)
        return None
    except orjson.JSONDecodeError as exc:
        logger.warning("no drift detection: %s is not valid JSON: %s", uri, exc)
        return None
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, dict):
        logger.warning("no drift detection: %s has no per-feature statistics", uri)
        return None
    return features
