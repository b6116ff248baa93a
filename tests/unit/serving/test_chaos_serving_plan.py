"""The InferenceService plan after a restart in the middle of a remediation: a retraining
created by a process that died before recording it is found, followed and promoted, and
never started twice."""

from __future__ import annotations

import datetime as dt

from tests.unit.serving.test_serving_service_plan import (
    T0,
    breach,
    cond,
    retrain_spec,
    run,
    service,
    settle,
    version,
)


def test_a_retraining_created_but_not_recorded_is_adopted_and_not_started_again() -> None:
    spec = retrain_spec()
    spec["onDegradation"] = "RollbackAndRetrain"
    versions = [version(1)]
    obj, dep = settle(service(**spec), versions)
    started = run(obj, versions, deployment=dep, measured=breach(1, T0))
    assert started.trainingjob is not None
    meta = started.trainingjob["metadata"]
    created = {
        **started.trainingjob,
        "metadata": {**meta, "creationTimestamp": "2026-03-01T12:00:00Z"},
        "status": {"phase": "Running"},
    }
    # The process died after creating the TrainingJob: the status never said it started.
    later = T0 + dt.timedelta(seconds=30)
    adopted = run(
        obj,
        versions,
        deployment=dep,
        trainingjobs={"svc-retrain-1": created},
        measured=breach(1, later),
        now=later,
    )
    assert adopted.trainingjob is None
    retraining = adopted.status.retraining
    assert (retraining.active, retraining.count) == ("svc-retrain-1", 1)
    assert retraining.started == [T0]
    assert cond(adopted.status, "Retraining")["reason"] == "RetrainingStarted"
    # Nobody said it started (the Event follows the status write that never landed): now.
    assert [e[1] for e in adopted.events].count("RetrainingStarted") == 1

    # It finishes: its version is promoted like any retraining's.
    obj = {**obj, "status": adopted.status.to_wire()}
    new = version(2, source="svc-retrain-1")
    finished = {
        "svc-retrain-1": {
            **created,
            "status": {"phase": "Succeeded", "modelVersion": new["metadata"]["name"]},
        }
    }
    promoted = run(obj, [*versions, new], deployment=dep, trainingjobs=finished, now=later)
    assert promoted.status.current_version == 2
    assert promoted.status.history[-1].reason == "Promoted"
    assert promoted.status.retraining.count == 1


def test_a_trainingjob_of_that_name_not_made_by_the_service_is_not_adopted() -> None:
    versions = [version(1)]
    obj, dep = settle(service(**retrain_spec()), versions)
    someone = {"metadata": {"name": "svc-retrain-1", "labels": {}}, "status": {}}
    result = run(obj, versions, deployment=dep, trainingjobs={"svc-retrain-1": someone})
    assert result.status.retraining.active is None
    assert result.status.retraining.count == 0
