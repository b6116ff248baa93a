from __future__ import annotations

import datetime as dt

import pytest

from mlops_operator.serving.plan import (
    Candidate,
    change_reason,
    promotion_verdict,
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


@pytest.mark.parametrize(
    ("candidate", "mine", "theirs", "must_beat", "promoted", "reason"),
    [
        (mv(3), {"accuracy": 0.93}, {"accuracy": 0.91}, "accuracy", True, "beats 0.91"),
        (mv(3), {"accuracy": 0.91}, {"accuracy": 0.91}, "accuracy", False, "does not beat"),
        (mv(3), {"accuracy": 0.89}, {"accuracy": 0.91}, "accuracy", False, "higher is better"),
        (mv(3), {"rocAuc": 0.8}, {"rocAuc": 0.7}, "rocAuc", True, "higher is better"),
        (mv(3), {"rmse": 1.2}, {"rmse": 1.5}, "rmse", True, "lower is better"),
        (mv(3), {"rmse": 1.8}, {"rmse": 1.5}, "rmse", False, "does not beat 1.5"),
        (mv(3), {"mae": 0.4}, {"mae": 0.3}, "mae", False, "lower is better"),
        (mv(3), {"r2": 0.9}, {"r2": 0.8}, "r2", True, "beats"),
        (mv(3), {}, {"accuracy": 0.91}, "accuracy", False, "version 3 has no accuracy"),
        (mv(3), {"accuracy": 0.9}, {}, "accuracy", False, "replaced version has no accuracy"),
        (mv(3), {"accuracy": 0.5}, None, "accuracy", True, "no served version to beat"),
        (mv(3), {"accuracy": 0.5}, {"accuracy": 0.9}, None, True, "passed its gates"),
        (mv(3, gates=False), {"accuracy": 0.99}, {}, None, False, "did not pass"),
        (mv(3, "Pending", verified=False), {}, {}, None, False, "not Ready (phase Pending)"),
        (mv(3, "Degraded", degraded=True), {}, {}, None, False, "not Ready (phase Degraded)"),
        (mv(3, degraded=True), {}, {}, None, False, "is Degraded"),
    ],
)
def test_promotion_must_beat_in_both_directions(
    candidate: Candidate,
    mine: dict[str, float],
    theirs: dict[str, float] | None,
    must_beat: str | None,
    promoted: bool,
    reason: str,
) -> None:
    ok, why = promotion_verdict(mine, candidate, theirs, must_beat)
    assert ok is promoted
    assert reason in why


def test_promotion_reason_names_both_values() -> None:
    _, why = promotion_verdict({"accuracy": 0.89}, mv(3), {"accuracy": 0.912}, "accuracy")
    assert why == (
        "version 3 accuracy 0.89 does not beat 0.912 of the replaced version (higher is better)."
    )
