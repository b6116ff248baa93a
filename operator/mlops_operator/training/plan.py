"""Pure decisions of the training path: Job status → TrainingJob phase, version numbers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_operator.api import reasons
from mlops_operator.api.trainingjob import Phase


@dataclass(frozen=True)
class JobOutcome:
    """What a batch Job's status means for its TrainingJob."""

    phase: Phase
    reason: str
    message: str


def _true_condition(status: Mapping[str, Any], type: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type and cond.get("status") == "True":
            return dict(cond)
    return None


def job_outcome(
    job_status: Mapping[str, Any], failure: tuple[str, str] | None = None
) -> JobOutcome:
    """Map a Job's status to a phase; ``failure`` is the trainer's parsed termination message
    (reason, message) from the last failed pod, when there is one."""
    if _true_condition(job_status, "Complete"):
        return JobOutcome("Succeeded", reasons.REGISTERING, "Training finished; registering.")
    failed = _true_condition(job_status, "Failed")
    if failed:
        job_reason = str(failed.get("reason") or reasons.TRAINING_FAILED)
        if failure is not None:
            trainer_reason, trainer_message = failure
            attempts = int(job_status.get("failed") or 0)
            tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
            return JobOutcome(
                "Failed", trainer_reason, f"Training failed{tries}: {trainer_message}"
            )
        if job_reason == reasons.DEADLINE_EXCEEDED:
            message = "The training Job ran longer than activeDeadlineSeconds and was stopped."
        elif job_reason == reasons.BACKOFF_LIMIT_EXCEEDED:
            message = "The training pod failed more times than backoffLimit allows."
        else:
            message = str(failed.get("message") or "The training Job failed.")
        return JobOutcome("Failed", job_reason, message)
    if int(job_status.get("active") or 0) > 0:
        return JobOutcome("Running", reasons.JOB_RUNNING, "The trainer is running.")
    return JobOutcome("Pending", reasons.JOB_PENDING, "Waiting for the training pod to start.")


def next_version(taken: Iterable[int]) -> int:
    """The next version number of a model given every number already registered or reserved."""
    return max(taken, default=0) + 1
