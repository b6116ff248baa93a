"""The TrainingJob plan, branch by branch: pure, from the TrainingJob and its Job to what one
reconcile does."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mlops_operator.training.plan import Observed, Plan, plan

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
PREFIXES = ["sklearn."]


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str
    message: str


REACHABLE = Check(True, "StorageOK", "Storage is reachable.")


def tj(status: dict[str, Any] | None = None, generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"namespace": "ns", "name": "tj", "uid": "u", "generation": generation},
        "spec": {
            "model": "m",
            "dataset": {"uri": "s3://data/x.csv", "target": "y"},
            "estimator": {"className": "sklearn.tree.DecisionTreeClassifier"},
            **spec,
        },
        "status": status or {},
    }


def job(name: str = "tj-train", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def run(obj: dict[str, Any], job: dict[str, Any] | None = None, **observed: Any) -> Plan:
    return plan(Observed(obj=obj, job=job, **observed), PREFIXES, T0)


def after(result: Plan, generation: int = 1, **spec: Any) -> dict[str, Any]:
    return tj(result.status.to_wire(), generation, **spec)


def ready(result: Plan) -> tuple[str, str]:
    wire = result.status.to_wire()
    cond = next(c for c in wire["conditions"] if c["type"] == "Ready")
    return cond["status"], cond["reason"]


def test_an_invalid_spec_fails_once_and_is_not_reconsidered() -> None:
    result = run(tj(gates=[{"metric": "r2", "min": 0.5}]))
    assert result.status.phase == "Failed"
    assert ready(result) == ("False", "InvalidSpec")
    assert [e[1] for e in result.events] == ["InvalidSpec"]
    again = run(after(result))
    assert again.events == [] and again.needs is None and again.create_job is None


def test_a_new_trainingjob_checks_storage_before_anything() -> None:
    result = run(tj())
    assert result.needs == "storage"
    assert result.create_job is None


def test_unreachable_storage_waits_and_retries_without_a_job() -> None:
    check = Check(False, "DatasetNotFound", "s3://data/x.csv does not exist.")
    result = run(tj(), storage=check)
    assert result.create_job is None
    assert result.status.phase == "Pending"
    assert result.requeue_after == 30.0
    assert ready(result) == ("False", "DatasetNotFound")
    assert [e[1] for e in result.events] == ["DatasetNotFound"]
    assert run(after(result), storage=check).events == []  # said once


def test_reachable_storage_creates_the_job_of_the_generation() -> None:
    result = run(tj(), storage=REACHABLE)
    assert result.create_job == "tj-train"
    assert result.status.job_name == "tj-train"
    assert ready(result) == ("False", "JobCreated")


def test_a_job_the_status_does_not_record_is_said_created_once() -> None:
    # A reconcile created the Job, then its status write was refused or the process died.
    found = run(tj(), job(active=1))
    assert found.status.job_name == "tj-train"
    assert [e[1] for e in found.events] == ["JobCreated"]
    assert run(after(found), job(active=1)).events == []  # recorded now: not said again


def test_a_job_deleted_before_it_finished_fails_the_trainingjob() -> None:
    created = run(tj(), storage=REACHABLE)
    result = run(after(created))
    assert result.status.phase == "Failed"
    assert ready(result) == ("False", "JobDeleted")


def test_a_running_job_makes_it_running_and_a_failed_one_asks_the_pods_why() -> None:
    created = after(run(tj(), storage=REACHABLE))
    running = run(created, job(active=1, startTime="2026-03-01T00:00:05Z"))
    assert running.status.phase == "Running"
    failed_job = job(
        failed=1,
        conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
    )
    asks = run(created, failed_job)
    assert asks.needs == "failure"
    told = run(
        created,
        failed_job,
        failure=("MissingColumn", "column 'y' is not in the dataset"),
        failure_read=True,
    )
    assert told.status.phase == "Failed"
    assert ready(told) == ("False", "MissingColumn")
    silent = run(created, failed_job, failure_read=True)
    assert ready(silent) == ("False", "BackoffLimitExceeded")


def test_a_complete_job_is_registered_and_a_succeeded_one_is_left_alone() -> None:
    created = after(run(tj(), storage=REACHABLE))
    done = run(created, job(conditions=[{"type": "Complete", "status": "True"}]))
    assert done.register
    succeeded = tj({"phase": "Succeeded", "modelVersion": "m-v1", "observedGeneration": 1})
    nothing = run(succeeded, job(conditions=[{"type": "Complete", "status": "True"}]))
    assert not nothing.register and nothing.needs is None and nothing.events == []


def test_a_spec_changed_after_failure_trains_again_for_the_new_generation() -> None:
    failed = tj(
        {
            "phase": "Failed",
            "jobName": "tj-train",
            "observedGeneration": 1,
            "failureReason": "column 'y' is not in the dataset",
        },
        generation=2,
    )
    result = run(failed, storage=REACHABLE)
    assert result.create_job == "tj-train-g2"
    assert result.supersede is None  # the failed Job stays for its logs; TTL removes it
    assert result.status.failure_reason is None
    assert result.status.observed_generation == 2
    assert [e[1] for e in result.events] == ["SpecChanged"]


def test_a_spec_changed_while_training_stops_the_old_job() -> None:
    running = tj({"phase": "Running", "jobName": "tj-train", "observedGeneration": 1}, generation=2)
    result = run(running, storage=REACHABLE)
    assert result.supersede == "tj-train"
    assert result.create_job == "tj-train-g2"


def test_a_job_just_created_changes_nothing_until_its_pod_runs() -> None:
    created = after(run(tj(), storage=REACHABLE))
    waiting = run(created, job())
    assert waiting.status.to_wire() == created["status"]  # no second write
