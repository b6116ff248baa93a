"""The trainer's expected failures: a reason from :mod:`mlops_operator.runtime.termination`
and a message a person can act on."""

from __future__ import annotations

from mlops_operator.artifacts.store import AccessDenied, BucketNotFound, StorageError, Unreachable
from mlops_operator.runtime import termination as tm


class TrainingFailure(Exception):
    """An expected failure: reported as ``<reason>: <message>``, without a traceback."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class ValidationFailure(TrainingFailure):
    """The dataset failed its data checks: ``DataValidationFailed`` with the findings."""

    def __init__(self, message: str, findings: list[dict[str, object]]) -> None:
        super().__init__(tm.DATA_VALIDATION_FAILED, message)
        self.findings = findings


def storage_failure(exc: StorageError) -> TrainingFailure:
    """The failure a storage error is reported as: its message, with the reason of its kind."""
    if isinstance(exc, Unreachable):
        return TrainingFailure(tm.STORAGE_UNREACHABLE, exc.message)
    if isinstance(exc, BucketNotFound):
        return TrainingFailure(tm.BUCKET_NOT_FOUND, exc.message)
    if isinstance(exc, AccessDenied):
        return TrainingFailure(tm.ACCESS_DENIED, exc.message)
    return TrainingFailure(tm.TRAINING_ERROR, exc.message)
