"""How storage errors are reported by the trainer."""

from __future__ import annotations

import pytest

from mlops_operator.artifacts.store import (
    AccessDenied,
    BucketNotFound,
    CredentialsMissing,
    NotFound,
    StorageError,
    Unreachable,
)
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.failure import storage_failure


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (Unreachable("down"), tm.STORAGE_UNREACHABLE),
        (BucketNotFound("no bucket"), tm.BUCKET_NOT_FOUND),
        (AccessDenied("denied"), tm.ACCESS_DENIED),
        (CredentialsMissing("no credentials"), tm.ACCESS_DENIED),
        (NotFound("gone"), tm.TRAINING_ERROR),
        (StorageError("other"), tm.TRAINING_ERROR),
    ],
)
def test_each_storage_error_keeps_its_message_under_its_reason(
    error: StorageError, reason: str
) -> None:
    failure = storage_failure(error)
    assert (failure.reason, failure.message) == (reason, error.message)
