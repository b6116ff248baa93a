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
    CARD_FILE,
    CARD_JSON_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    SCHEMA_FILE,
    local_run_dir_uri,
)
from mlops_operator.artifacts.store import ArtifactStore, ArtifactUri, ObjectVersion, sha256_file
from mlops_operator.runtime.trainer.card import card_document, render_markdown
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
    dataset_version: ObjectVersion | None = None
    """Which version of the dataset object was read."""
    preprocessing: list[dict[str, Any]] | None = None
    """What was done to each column; ``None`` when the estimator sees raw numbers."""
    validation: dict[str, Any] | None = None
    """The version the dataset was checked against and the findings."""
    spec: TrainingJobSpec | None = None
    """The spec trained, for lineage."""


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


def _estimator_of(model: Any) -> Any:
    """The estimator itself: the last step of a preprocessing Pipeline, else the model."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def manifest_document(
    record: RunRecord, estimator: Any, digest: str, created_at: str
) -> dict[str, Any]:
    """The manifest of a run whose ``model.joblib`` has ``digest``: what the registry checks
    and the model server loads by."""
    import joblib
    import sklearn

    version = record.dataset_version
    validation = record.spec.validation if record.spec else None
    split = (
        {
            "testSize": validation.test_size,
            "randomState": validation.random_state,
            "stratify": validation.stratify,
        }
        if validation
        else None
    )
    return {
        "digest": digest,
        "model": record.model,
        "trainingJob": record.training_job,
        "framework": "scikit-learn",
        "frameworkVersion": sklearn.__version__,
        "pythonVersion": ".".join(str(v) for v in sys.version_info[:3]),
        "joblibVersion": joblib.__version__,
        "className": record.class_name,
        "params": json_safe(_estimator_of(estimator).get_params(deep=False)),
        "task": record.task,
        "features": record.features,
        "target": record.target,
        "classes": json_safe(record.classes) if record.task == "classification" else None,
        "metrics": record.metrics,
        "dataset": {
            "uri": record.dataset_uri,
            "digest": record.dataset_digest,
            "versionId": version.version_id if version else None,
            "etag": version.etag if version else None,
            "lastModified": version.last_modified if version else None,
            "rows": record.rows,
            "trainRows": record.train_rows,
            "testRows": record.test_rows,
        },
        "preprocessing": record.preprocessing,
        "split": split,
        "validation": record.validation,
        "lineage": {
            "parentVersion": (record.validation or {}).get("against"),
            "trainingSpec": pinned_spec(record.spec, version),
        },
        "fitSeconds": record.fit_seconds,
        "createdAt": created_at,
    }


def pinned_spec(spec: TrainingJobSpec | None, version: ObjectVersion | None) -> Any:
    """The spec as trained, its dataset pinned to the object version read (when the bucket
    is versioned): training it again reads the same data."""
    if spec is None:
        return None
    if version is not None and version.version_id:
        dataset = spec.dataset.model_copy(update={"version_id": version.version_id})
        spec = spec.model_copy(update={"dataset": dataset})
    return spec.to_wire()


def write_artifacts(
    store: ArtifactStore,
    out: ArtifactUri,
    workdir: Path,
    *,
    estimator: Any,
    reference: Mapping[str, Any],
    record: RunRecord,
    schema: Mapping[str, Any] | None = None,
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
    if schema is not None:
        store.write_bytes(out.child(SCHEMA_FILE), _json_bytes(json_safe(schema)))
        logger.info("wrote %s", out.child(SCHEMA_FILE))
    metrics_uri = out.child(METRICS_FILE)
    store.write_bytes(metrics_uri, _json_bytes(record.metrics))
    logger.info("wrote %s", metrics_uri)

    model_path = workdir / MODEL_FILE
    joblib.dump(estimator, model_path)
    digest = sha256_file(model_path)
    model_uri = out.child(MODEL_FILE)
    store.upload_file(model_path, model_uri)
    logger.info("wrote %s %s (%d bytes)", model_uri, digest, model_path.stat().st_size)

    manifest = json_safe(manifest_document(record, estimator, digest, _now()))
    gates = [g.model_dump(exclude_none=True) for g in record.spec.gates] if record.spec else []
    card = json_safe(card_document(manifest, schema or {}, gates))
    store.write_bytes(out.child(CARD_JSON_FILE), _json_bytes(card))
    store.write_bytes(out.child(CARD_FILE), render_markdown(card).encode())
    logger.info("wrote %s", out.child(CARD_FILE))
    manifest_uri = out.child(MANIFEST_FILE)
    store.write_bytes(manifest_uri, _json_bytes(manifest))
    logger.info("wrote %s", manifest_uri)
    return digest
