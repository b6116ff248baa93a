"""The TrainingJob plan under storage outages: a trainer pod that cannot reach storage is not
a failed run, and ``StorageReachable`` follows what the trainer and the operator see."""

from __future__ import annotations

from typing import Any

from mlops_operator.runtime.termination import EXIT_FAILURE, EXIT_PERMANENT, EXIT_STORAGE
from mlops_sandbox.runner import pod_failure_action
from tests.unit.training.test_training_build import _job
from tests.unit.training.test_training_plan import Check, after, job, ready, run, tj

STARTED = "2026-03-01T00:00:00Z"
OUTAGE = ("StorageUnreachable", "cannot reach the S3 endpoint http://s3:9000")


def storage(result: Any) -> tuple[str, str]:
    wire = result.status.to_wire()
    cond = next(c for c in wire["conditions"] if c["type"] == "StorageReachable")
    return cond["status"], cond["reason"]


def created() -> dict[str, Any]:
    """A TrainingJob whose storage check passed and whose Job was created."""
    return after(run(tj(), storage=Check(True, "StorageOK", "Storage is reachable.")))


def test_the_job_ignores_the_storage_exit_code_and_counts_a_training_error() -> None:
    policy = _job()["spec"]["podFailurePolicy"]
    assert pod_failure_action(policy, "trainer", EXIT_STORAGE) == "Ignore"
    assert pod_failure_action(policy, "trainer", EXIT_FAILURE) == "Count"
    assert pod_failure_action(policy, "trainer", EXIT_PERMANENT) == "FailJob"


def test_a_job_between_pods_asks_what_the_last_pod_said() -> None:
    result = run(created(), job(startTime=STARTED, ready=0))
    assert result.needs == "failure"


def test_a_pod_that_could_not_reach_storage_keeps_the_run_going_and_says_so() -> None:
    result = run(created(), job(startTime=STARTED, ready=0), failure=OUTAGE, failure_read=True)
    assert result.status.phase == "Running"
    assert storage(result) == ("False", "StorageUnreachable")
    assert ready(result) == ("False", "StorageUnreachable")
    assert [e[1] for e in result.events] == ["StorageUnreachable"]
    # Said once: the next pod failing the same way posts no second Event.
    again = run(after(result), job(startTime=STARTED, ready=0), failure=OUTAGE, failure_read=True)
    assert again.events == []


def test_a_new_pod_after_an_outage_checks_storage_and_says_it_is_back() -> None:
    down = after(run(created(), job(startTime=STARTED, ready=0), failure=OUTAGE, failure_read=True))
    running = job(startTime=STARTED, active=1, ready=1)
    assert run(down, running).needs == "storage"
    back = run(down, running, storage=Check(True, "StorageOK", "Storage is reachable."))
    assert storage(back) == ("True", "StorageOK")
    assert back.status.phase == "Running"
    still = run(down, running, storage=Check(False, "StorageUnreachable", "no answer"))
    assert storage(still) == ("False", "StorageUnreachable")
    assert still.requeue_after == 30.0


def test_a_job_failed_on_storage_says_storage_is_unreachable() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
    result = run(
        created(),
        job(startTime=STARTED, conditions=[failed]),
        failure=OUTAGE,
        failure_read=True,
    )
    assert result.status.phase == "Failed"
    assert storage(result) == ("False", "StorageUnreachable")
