"""What a run leaves behind: ``reference.json``, ``metrics.json``, ``model.joblib`` and,
last, ``manifest.json``, whose presence marks a complete run. The file names and the default
output location are here, and nowhere else in the trainer."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_operator.api.trainingjob import Task, TrainingJobSpec
from mlops_operator.artifacts.layout import (
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    local_run_dir_uri,
)
from mlops_operator.artifacts.store import ArtifactStore, ArtifactUri, sha256_file
from mlops_operator.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST_FILE", "METRICS_FILE", "MODEL_FILE", "REFERENCE_FILE"]


def default_output_uri(spec: TrainingJobSpec, name: str | None, settings: Settings) -> str:
    """The layout's :func:`~mlops_operator.artifacts.layout.local_run_dir_uri` for the spec's
    bucket and prefix, or the settings' where the spec has none."""
    bucket = spec.storage.bucket or settings.s3_bucket
    prefix = spec.storage.prefix if spec.storage.prefix is not None else settings.s3_prefix
    return local_run_dir_uri(bucket, prefix, spec.model, name)


@dataclass(frozen=True)
class RunRecord:
    """What the manifest tells about a run, besides the model's digest and library versions."""

    model: str
    training_job: str | None
    class_name: str
    task: Task
    features: list[str]
    target: str
    classes: list[Any]
    metrics: dict[str, float]
    dataset_uri: str
    dataset_digest: str
    rows: int
    train_rows: int
    test_rows: int
    fit_seconds: float


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


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def manifest_document(
    record: RunRecord, estimator: Any, digest: str, created_at: str
) -> dict[str, Any]:
    """The manifest of a run whose ``model.joblib`` has ``digest``: what the registry checks
    and the model server loads by."""
    import joblib
    import sklearn

    return {
        "digest": digest,
        "model": record.model,
        "trainingJob": record.training_job,
        "framework": "scikit-learn",
        "frameworkVersion": sklearn.__version__,
        "pythonVersion": ".".join(str(v) for v in sys.version_info[:3]),
        "joblibVersion": joblib.__version__,
        "className": record.class_name,
        "params": json_safe(estimator.get_params(deep=False)),
        "task": record.task,
        "features": record.features,
        "target": record.target,
        "classes": json_safe(record.classes) if record.task == "classification" else None,
        "metrics": record.metrics,
        "dataset": {
            "uri": record.dataset_uri,
            "digest": record.dataset_digest,
            "rows": record.rows,
            "trainRows": record.train_rows,
            "testRows": record.test_rows,
        },
        "fitSeconds": record.fit_seconds,
        "createdAt": created_at,
    }


def write_artifacts(
    store: ArtifactStore,
    out: ArtifactUri,
    workdir: Path,
    *,
    estimator: Any,
    reference: Mapping[str, Any],
    record: RunRecord,
) -> str:
    """Write the run's files into ``out``, the manifest last; returns the model's digest.

    The model is dumped into ``workdir`` first, to hash it in chunks and upload it.
    """
    import joblib

    # A manifest left by an earlier attempt (a retried pod) would vouch for files this run
    # is about to overwrite.
    store.delete(out.child(MANIFEST_FILE))
    reference_uri = out.child(REFERENCE_FILE)
    store.write_bytes(reference_uri, _json_bytes(reference))
    logger.info("wrote %s", reference_uri)
    metrics_uri = out.child(METRICS_FILE)
    store.write_bytes(metrics_uri, _json_bytes(record.metrics))
    logger.info("wrote %s", metrics_uri)

    model_path = workdir / MODEL_FILE
    joblib.dump(estimator, model_path)
    digest = sha256_file(model_path)
    model_uri = out.child(MODEL_FILE)
    store.upload_file(model_path, model_uri)
    logger.info("wrote %s %s (%d bytes)", model_uri, digest, model_path.stat().st_size)

    manifest_uri = out.child(MANIFEST_FILE)
    store.write_bytes(
        manifest_uri, _json_bytes(manifest_document(record, estimator, digest, _now()))
    )
    logger.info("wrote %s", manifest_uri)
    return digest
