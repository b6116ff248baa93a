"""The ModelVersion plan: verification, gates, degradation and servedBy, and a Ready
condition that is True only for a version `latest` may serve."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlops_operator.kube.names import DEGRADED_ANNOTATION
from mlops_operator.registry.plan import Verification, needs_verification, plan

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DIGEST = "sha256:" + "b" * 64


def version(status: dict[str, Any] | None = None, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "namespace": "ns",
            "name": "m-v1",
            "generation": 1,
            "annotations": annotations,
        },
        "spec": {
            "model": "m",
            "version": 1,
            "artifact": {"uri": "s3://bucket/models/ns/m/1/", "digest": DIGEST},
            "metrics": {"accuracy": 0.93},
            "gates": [{"metric": "accuracy", "min": 0.9}],
        },
        "status": status or {},
    }


def cond(status: Any, type: str) -> dict[str, Any]:
    return next((c for c in status.to_wire().get("conditions", []) if c["type"] == type), {})


def test_a_matching_digest_and_passed_gates_make_it_ready_once() -> None:
    result = plan(version(), Verification(digest=DIGEST), [], T0)
    assert result.status.phase == "Ready"
    assert cond(result.status, "Ready")["status"] == "True"
    assert [e[1] for e in result.events] == ["VersionReady"]
    settled = version(result.status.to_wire())
    assert not needs_verification(settled)
    assert plan(settled, None, [], T0).events == []


def test_a_digest_mismatch_fails_for_good() -> None:
    result = plan(version(), Verification(digest="sha256:" + "c" * 64), [], T0)
    assert result.status.phase == "Failed"
    assert cond(result.status, "Ready")["reason"] == "DigestMismatch"
    assert not needs_verification(version(result.status.to_wire()))


def test_unreadable_storage_stays_pending_and_is_retried() -> None:
    result = plan(version(), Verification(failure=("StorageUnreachable", "no answer.")), [], T0)
    assert result.status.phase == "Pending"
    assert result.requeue_after == 60.0
    assert needs_verification(version(result.status.to_wire()))


def test_failed_gates_are_failed_not_ready() -> None:
    obj = version()
    obj["spec"]["metrics"]["accuracy"] = 0.5
    result = plan(obj, Verification(digest=DIGEST), [], T0)
    assert result.status.phase == "Failed"
    assert cond(result.status, "GatesPassed")["reason"] == "GateFailed"
    assert cond(result.status, "Ready")["status"] == "False"


def test_a_degraded_version_is_not_ready_and_recovers_when_the_mark_is_removed() -> None:
    ready = plan(version(), Verification(digest=DIGEST), [], T0).status.to_wire()
    marked = plan(version(ready, **{DEGRADED_ANNOTATION: "accuracy 0.1 < 0.8"}), None, [], T0)
    assert marked.status.phase == "Degraded"
    assert cond(marked.status, "Ready")["status"] == "False"
    assert cond(marked.status, "Degraded")["message"] == "accuracy 0.1 < 0.8"
    cleared = plan(version(marked.status.to_wire()), None, [], T0)
    assert cleared.status.phase == "Ready"
    assert cond(cleared.status, "Degraded")["reason"] == "DegradationCleared"


def test_served_by_is_what_the_services_serve_now() -> None:
    first = plan(version(), Verification(digest=DIGEST), ["b", "a"], T0)
    assert first.status.served_by == ["a", "b"]
    later = plan(version(first.status.to_wire()), None, ["a"], T0)
    assert later.status.served_by == ["a"]
