from __future__ import annotations

import datetime as dt

from mlops_operator.serving.plan import (
    Candidate,
    change_reason,
    record,
    resolve_version,
    rollout,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def mv(
    version: int,
    phase: str = "Ready",
    *,
    verified: bool = True,
    gates: bool = True,
    degraded: bool = False,
) -> Candidate:
    return Candidate(f"m-v{version}", version, phase, verified, gates, degraded)


def test_latest_is_the_newest_ready_version_that_passed_gates_and_is_healthy() -> None:
    candidates = [
        mv(1),
        mv(2),
        mv(3, "Failed", gates=False),
        mv(4, "Degraded", degraded=True),
        mv(5, "Pending", verified=False),
    ]
    chosen = resolve_version("m", "latest", candidates).candidate
    assert chosen is not None and chosen.version == 2


def test_no_servable_version_waits_with_a_reason() -> None:
    result = resolve_version("m", "latest", [mv(1, "Failed", gates=False)])
    assert result.candidate is None
    assert result.reason == "NoServableVersion"
    assert "waiting" in result.message


def test_a_pinned_version_may_have_missed_its_gates_but_needs_a_verified_artifact() -> None:
    assert resolve_version("m", 3, [mv(3, "Failed", gates=False)]).candidate is not None
    unverified = resolve_version("m", 3, [mv(3, "Failed", verified=False)])
    assert unverified.candidate is None
    assert "no verified artifact" in unverified.message
    assert resolve_version("m", 9, [mv(3)]).message.startswith("Version 9 of model 'm'")


def test_candidate_reads_conditions_from_the_api_object() -> None:
    obj = {
        "metadata": {"name": "m-v2"},
        "spec": {"version": 2},
        "status": {
            "phase": "Ready",
            "conditions": [
                {"type": "ArtifactVerified", "status": "True"},
                {"type": "GatesPassed", "status": "True"},
            ],
        },
    }
    assert Candidate.from_object(obj).servable_as_latest


def test_history_keeps_the_most_recent_entries() -> None:
    history = []
    for version in range(1, 60):
        history = record(history, version, "NewLatest", "", T0)
    assert len(history) == 50
    assert history[-1].version == 59 and history[0].version == 10


def test_change_reasons() -> None:
    assert change_reason(None, "latest", 1) == "Initial"
    assert change_reason(1, "latest", 2) == "NewLatest"
    assert change_reason(2, 1, 1) == "Pinned"
    assert change_reason(2, "latest", 1, previous_degraded=True) == "RolledBack"
    # A newer version replacing a degraded one (nothing was healthy to roll back to).
    assert change_reason(1, "latest", 2, previous_degraded=True) == "NewLatest"


def test_rollout_is_complete_only_when_every_pod_runs_the_new_template() -> None:
    base = {"metadata": {"generation": 2}}
    rolling = {
        **base,
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 1,
            "readyReplicas": 2,
        },
    }
    done = {
        **base,
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
        },
    }
    stale = {
        **base,
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
        },
    }
    assert rollout(rolling, 2).available and not rollout(rolling, 2).complete
    assert rollout(done, 2).complete
    assert not rollout(stale, 2).complete
    assert not rollout({"metadata": {}}, 1).available
