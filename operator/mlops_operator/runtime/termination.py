"""The trainer's termination message: how a finished pod tells the operator what happened.

Kubernetes copies the file at the container's ``terminationMessagePath`` into the pod's
status (``state.terminated.message``, at most 4096 bytes). On failure the trainer writes
one line ``<Reason>: <message>``, where Reason is one of the constants below, so the
operator can turn it into a condition reason without parsing prose. On success it writes
one line of JSON: ``{"digest": ..., "metrics": {...}, "artifactUri": ...}``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Final

from mlops_operator.api import reasons

logger = logging.getLogger(__name__)

PATH_ENV: Final = "MLOPS_TERMINATION_MESSAGE_PATH"
"""Environment variable naming the file to write; a pod's default is below."""

DEFAULT_PATH: Final = "/dev/termination-log"
"""Kubernetes' default ``terminationMessagePath``."""

MAX_BYTES: Final = 4096
"""Kubernetes keeps at most this many bytes of a termination message."""

INVALID_SPEC: Final = reasons.INVALID_SPEC
"""The TrainingJob could not be parsed or is inconsistent (e.g. an unknown metric)."""
ESTIMATOR_NOT_ALLOWED: Final = "EstimatorNotAllowed"
"""``className`` is outside the allowed module prefixes; nothing was imported."""
UNKNOWN_ESTIMATOR: Final = "UnknownEstimator"
"""``className`` does not name an importable scikit-learn estimator."""
INVALID_PARAMS: Final = "InvalidParams"
"""``params`` names a parameter the estimator does not have, or a value it rejects."""
DATASET_NOT_FOUND: Final = reasons.DATASET_NOT_FOUND
"""The dataset object or file does not exist."""
DATASET_UNREADABLE: Final = "DatasetUnreadable"
"""The dataset exists but is not valid CSV/Parquet, or has no rows."""
MISSING_COLUMN: Final = "MissingColumn"
"""The target or a feature column is not in the dataset."""
NON_NUMERIC_FEATURE: Final = "NonNumericFeature"
"""A feature column (or a regression target) is not numeric."""
STORAGE_UNREACHABLE: Final = reasons.STORAGE_UNREACHABLE
"""The S3 endpoint could not be reached."""
BUCKET_NOT_FOUND: Final = reasons.BUCKET_NOT_FOUND
"""The artifact bucket does not exist."""
ACCESS_DENIED: Final = reasons.ACCESS_DENIED
"""S3 refused the credentials, or they are missing."""
DATA_VALIDATION_FAILED: Final = reasons.DATA_VALIDATION_FAILED
"""The dataset failed a data check (missing column, changed type, ...) before fitting."""
TRAINING_ERROR: Final = "TrainingError"
"""Anything else: fitting failed, or an unexpected error (the log has the traceback)."""

FAILURE_REASONS: Final = frozenset(
    {
        INVALID_SPEC,
        ESTIMATOR_NOT_ALLOWED,
        UNKNOWN_ESTIMATOR,
        INVALID_PARAMS,
        DATASET_NOT_FOUND,
        DATASET_UNREADABLE,
        MISSING_COLUMN,
        NON_NUMERIC_FEATURE,
        STORAGE_UNREACHABLE,
        BUCKET_NOT_FOUND,
        ACCESS_DENIED,
        DATA_VALIDATION_FAILED,
        TRAINING_ERROR,
    }
)
"""Every reason a failure line can start with."""

PERMANENT_REASONS: Final = frozenset(
    {
        INVALID_SPEC,
        ESTIMATOR_NOT_ALLOWED,
        UNKNOWN_ESTIMATOR,
        INVALID_PARAMS,
        MISSING_COLUMN,
        NON_NUMERIC_FEATURE,
    }
)
"""Failures no retry can fix: the spec or the data's shape is wrong. The trainer exits with
``EXIT_PERMANENT`` for them, and the Job's podFailurePolicy fails the Job at once instead of
spending its backoffLimit. Storage and data-availability failures may heal and are retried."""

EXIT_FAILURE: Final = 1
"""Exit code of a failure that a retry may fix."""

EXIT_PERMANENT: Final = 2
"""Exit code of a failure in ``PERMANENT_REASONS``."""

STORAGE_REASONS: Final = frozenset({STORAGE_UNREACHABLE})
"""Failures of the storage, not of the training: S3 did not answer. The trainer exits with
``EXIT_STORAGE`` for them, and the Job's podFailurePolicy ignores such a pod (it does not
count against backoffLimit): the next pod, after the Job's backoff delay, tries again, so an
outage delays a run instead of failing it."""

EXIT_STORAGE: Final = 3
"""Exit code of a failure in ``STORAGE_REASONS``."""

EXIT_DATA_VALIDATION: Final = 4
"""Exit code of a dataset that failed its data checks: nothing was fitted, and a retry of
the same data would fail the same way."""

FINDINGS_MARK: Final = " findings="
"""Separates a ``DataValidationFailed`` message from its findings (a JSON list)."""


def exit_code_for(reason: str) -> int:
    """The trainer's exit code for a failure reason: ``EXIT_PERMANENT`` (bad input, no retry
    helps), ``EXIT_DATA_VALIDATION`` (the dataset failed its checks), ``EXIT_STORAGE``
    (storage unreachable, retried without counting) or ``EXIT_FAILURE`` (a training error,
    retried within backoffLimit)."""
    if reason == DATA_VALIDATION_FAILED:
        return EXIT_DATA_VALIDATION
    if reason in PERMANENT_REASONS:
        return EXIT_PERMANENT
    if reason in STORAGE_REASONS:
        return EXIT_STORAGE
    return EXIT_FAILURE


def format_validation_failure(message: str, findings: list[dict[str, object]]) -> str:
    """``DataValidationFailed: <message> findings=<JSON>``, within 4096 bytes: findings are
    dropped from the end until it fits (the run's log has them all)."""
    head = f"{DATA_VALIDATION_FAILED}: {' '.join(message.split())}"
    kept = list(findings)
    while True:
        text = head + FINDINGS_MARK + json.dumps(kept, separators=(",", ":"))
        if len(text.encode()) <= MAX_BYTES or not kept:
            return _truncate(text)
        kept.pop()


def split_findings(message: str) -> tuple[str, list[dict[str, object]]]:
    """A ``DataValidationFailed`` message without its findings, and the findings."""
    text, sep, tail = message.rpartition(FINDINGS_MARK)
    if not sep:
        return message, []
    try:
        found = json.loads(tail)
    except ValueError:
        return message, []
    if not isinstance(found, list):
        return message, []
    return text.strip(), [f for f in found if isinstance(f, dict)]


@dataclass(frozen=True)
class TrainingSummary:
    """What a successful run reports: the model digest, its metrics and where it is."""

    digest: str
    artifact_uri: str
    metrics: dict[str, float] = field(default_factory=dict)


def _truncate(text: str, limit: int = MAX_BYTES) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


def format_failure(reason: str, message: str) -> str:
    """The one-line failure message ``<Reason>: <message>``, within 4096 bytes."""
    if reason not in FAILURE_REASONS:
        raise ValueError(f"unknown failure reason {reason!r}")
    one_line = " ".join(message.split())
    return _truncate(f"{reason}: {one_line}")


def format_success(summary: TrainingSummary) -> str:
    """The one-line JSON success message, within 4096 bytes.

    Metrics are dropped if they would not fit: they are in ``metrics.json`` anyway.
    """
    doc: dict[str, object] = {
        "digest": summary.digest,
        "metrics": summary.metrics,
        "artifactUri": summary.artifact_uri,
    }
    text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > MAX_BYTES:
        doc["metrics"] = {}
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
    return text


def parse_termination_message(text: str) -> tuple[str, str]:
    """``(reason, message)`` of a failure line.

    Text that does not start with a known reason (a message truncated by Kubernetes, or
    log lines when the pod used ``FallbackToLogsOnError``) maps to ``TrainingError`` with the
    text itself as the message.
    """
    stripped = text.strip()
    reason, sep, message = stripped.partition(": ")
    if sep and reason in FAILURE_REASONS:
        return reason, message.strip()
    return TRAINING_ERROR, stripped


def parse_success_message(text: str) -> TrainingSummary | None:
    """The summary of a successful run's message, or ``None`` if it is not one."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    digest, uri, metrics = doc.get("digest"), doc.get("artifactUri"), doc.get("metrics", {})
    if not isinstance(digest, str) or not isinstance(uri, str) or not isinstance(metrics, dict):
        return None
    return TrainingSummary(
        digest=digest,
        artifact_uri=uri,
        metrics={
            str(k): float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
    )


def write_termination_message(text: str) -> None:
    """Write ``text`` to ``$MLOPS_TERMINATION_MESSAGE_PATH`` (default ``/dev/termination-log``).

    Outside a pod the file usually cannot be written; that is not an error.
    """
    path = os.environ.get(PATH_ENV) or DEFAULT_PATH
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(_truncate(text))
    except OSError as exc:
        logger.debug("not writing the termination message to %s: %s", path, exc)
