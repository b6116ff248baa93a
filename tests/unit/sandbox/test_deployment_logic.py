"""The Deployment controller's and kubelet's decisions, without processes or an API."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from mlops_sandbox.deployments import (
    PodView,
    Probe,
    ProbeTracker,
    RolloutStep,
    container_port,
    deployment_status,
    merge_patch_for,
    parse_probe,
    plan_rollout,
    rollout_limits,
    set_deployment_condition,
    template_hash,
)
from mlops_sandbox.runner import AddressPool, pod_address, pod_status

NOW = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "server", "image": "runtime", "command": ["mlops-operator"]}]},
}


def test_template_hash_is_stable_short_and_changes_with_the_template() -> None:
    reordered = {"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}
    changed = {**TEMPLATE, "metadata": {"labels": {"app": "web", "v": "2"}}}

    assert template_hash(TEMPLATE) == template_hash(reordered)
    assert template_hash(TEMPLATE) != template_hash(changed)
    assert 1 <= len(template_hash(TEMPLATE)) <= 10
    assert set(template_hash(TEMPLATE)) <= set("bcdfghjklmnpqrstvwxz2456789")


@pytest.mark.parametrize(
    ("strategy", "replicas", "expected"),
    [
        (None, 1, (1, 0)),
        (None, 2, (1, 0)),
        (None, 4, (1, 1)),
        (None, 10, (3, 2)),
        ({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, 3, (0, 1)),
        ({"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "50%"}}, 3, (2, 1)),
        # Both rounding to 0 would never progress: one pod may be unavailable.
        ({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}}, 2, (0, 1)),
    ],
)
def test_rollout_limits_round_surge_up_and_unavailable_down(
    strategy: dict[str, Any] | None, replicas: int, expected: tuple[int, int]
) -> None:
    assert rollout_limits(strategy, replicas) == expected


def _pod(name: str, current: bool, ready: bool = True, order: int = 0) -> PodView:
    return PodView(name=name, current=current, ready=ready, available=ready, order=order)


def test_scaling_creates_missing_pods_and_removes_unready_then_newest_first() -> None:
    assert plan_rollout(replicas=3, pods=[], max_surge=1, max_unavailable=0) == RolloutStep(
        create=3
    )
    pods = [
        _pod("a", True, order=1),
        _pod("b", True, ready=False, order=2),
        _pod("c", True, order=3),
        _pod("d", True, order=4),
    ]
    step = plan_rollout(replicas=2, pods=pods, max_surge=1, max_unavailable=0)
    assert step == RolloutStep(delete=("b", "d"))


def _simulate(
    replicas: int, old: int, surge: int, unavailable: int
) -> tuple[list[RolloutStep], int]:
    """Run a rollout step by step, every new pod turning ready after each step; return the
    steps and the fewest available pods seen."""
    pods = [_pod(f"old-{i}", False, order=i) for i in range(old)]
    steps, fewest, counter = [], old, old
    for _ in range(50):
        step = plan_rollout(
            replicas=replicas, pods=pods, max_surge=surge, max_unavailable=unavailable
        )
        if step == RolloutStep():
            break
        steps.append(step)
        pods = [p for p in pods if p.name not in step.delete]
        for _ in range(step.create):
            counter += 1
            pods.append(_pod(f"new-{counter}", True, ready=False, order=counter))
        fewest = min(fewest, sum(p.available for p in pods))
        assert len(pods) <= replicas + surge
        pods = [dataclasses.replace(p, ready=True, available=True) for p in pods]
    assert sorted(p.current for p in pods) == [True] * replicas
    return steps, fewest


def test_a_rolling_update_surges_one_and_stops_an_old_pod_per_ready_new_one() -> None:
    steps, fewest = _simulate(replicas=2, old=2, surge=1, unavailable=0)

    assert [(s.create, len(s.delete)) for s in steps] == [(1, 0), (0, 1), (1, 0), (0, 1)]
    assert fewest == 2


def test_a_rolling_update_may_go_down_to_max_unavailable() -> None:
    steps, fewest = _simulate(replicas=4, old=4, surge=1, unavailable=1)

    assert fewest == 3
    assert len(steps) < 8


def test_a_rollout_waits_while_new_pods_are_not_ready() -> None:
    pods = [_pod("old-1", False), _pod("old-2", False), _pod("new-1", True, ready=False)]
    assert plan_rollout(replicas=2, pods=pods, max_surge=1, max_unavailable=0) == RolloutStep()


def test_unavailable_old_pods_are_stopped_first() -> None:
    pods = [
        _pod("old-ok", False, order=1),
        _pod("old-broken", False, ready=False, order=2),
        _pod("new-1", True, order=3),
    ]
    step = plan_rollout(replicas=2, pods=pods, max_surge=1, max_unavailable=0)
    assert step.delete[0] == "old-broken"


def test_recreate_stops_old_pods_and_starts_new_ones_when_they_are_gone() -> None:
    old = [_pod("old-1", False), _pod("old-2", False)]
    first = plan_rollout(replicas=2, pods=old, max_surge=1, max_unavailable=0, recreate=True)
    assert first == RolloutStep(delete=("old-1", "old-2"))
    waiting = plan_rollout(
        replicas=2, pods=[], max_surge=1, max_unavailable=0, recreate=True, terminating=2
    )
    assert waiting == RolloutStep()
    assert plan_rollout(
        replicas=2, pods=[], max_surge=1, max_unavailable=0, recreate=True
    ) == RolloutStep(create=2)


def _status(pods: list[PodView], previous: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "name": "web",
        "generation": 3,
        "replicas": 2,
        "max_unavailable": 0,
        "pods": pods,
        "pod_template_hash": "abc",
        "previous": previous,
        "progress_deadline_seconds": 600,
        "now": NOW,
    }
    return deployment_status(**{**arguments, **kwargs})


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_complete_deployment_has_counts_and_the_controllers_conditions() -> None:
    status = _status([_pod("a", True), _pod("b", True)], {})

    assert status["observedGeneration"] == 3
    assert (status["replicas"], status["updatedReplicas"]) == (2, 2)
    assert (status["readyReplicas"], status["availableReplicas"]) == (2, 2)
    assert "unavailableReplicas" not in status
    assert _conditions(status) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    progressing = status["conditions"][1]
    assert progressing["message"] == 'ReplicaSet "web-abc" has successfully progressed.'
    assert progressing["lastUpdateTime"] == progressing["lastTransitionTime"]


def test_a_rolling_deployment_is_progressing_and_counts_unavailable_pods() -> None:
    done = _status([_pod("a", True), _pod("b", True)], {})
    rolling_pods = [_pod("a", False), _pod("b", False), _pod("c", True, ready=False)]
    later = NOW + datetime.timedelta(seconds=5)

    status = _status(rolling_pods, done, pod_template_hash="def", now=later)

    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"]) == (3, 1, 2)
    assert status["unavailableReplicas"] == 1
    assert _conditions(status) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "ReplicaSetUpdated"),
    }
    progressing = status["conditions"][1]
    assert progressing["message"] == 'ReplicaSet "web-def" is progressing.'
    # Still True since the first write: the transition time stays, the update time moves.
    assert progressing["lastTransitionTime"] == done["conditions"][1]["lastTransitionTime"]
    assert progressing["lastUpdateTime"] != progressing["lastTransitionTime"]
    assert status["conditions"][0] == done["conditions"][0]


def test_a_rollout_without_progress_times_out_after_the_deadline() -> None:
    pods = [_pod("a", True, ready=False)]
    started = _status(pods, {}, replicas=1)
    assert _conditions(started)["Progressing"] == ("True", "ReplicaSetUpdated")
    assert _conditions(started)["Available"] == ("False", "MinimumReplicasUnavailable")

    soon = _status(pods, started, replicas=1, now=NOW + datetime.timedelta(seconds=30))
    assert soon == started
    late = _status(pods, started, replicas=1, now=NOW + datetime.timedelta(seconds=601))
    assert _conditions(late)["Progressing"] == ("False", "ProgressDeadlineExceeded")


def test_a_crash_after_a_complete_rollout_keeps_new_replicaset_available() -> None:
    done = _status([_pod("a", True), _pod("b", True)], {})
    status = _status([_pod("a", True), _pod("b", True, ready=False)], done)

    assert _conditions(status)["Progressing"] == ("True", "NewReplicaSetAvailable")
    assert _conditions(status)["Available"] == ("False", "MinimumReplicasUnavailable")


def test_set_deployment_condition_keeps_times_unless_the_status_changes() -> None:
    old = {"type": "Available", "status": "True", "reason": "A", "lastTransitionTime": "t0"}
    same = {**old, "lastTransitionTime": "t1", "message": "new"}
    assert set_deployment_condition([old], same) == [old]
    other_reason = {**same, "reason": "B"}
    assert set_deployment_condition([old], other_reason) == [
        {**other_reason, "lastTransitionTime": "t0"}
    ]
    flipped = {**same, "status": "False"}
    assert set_deployment_condition([old], flipped) == [flipped]


def test_merge_patch_for_sets_changes_and_removes_missing_keys() -> None:
    old = {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    new = {"replicas": 2, "observedGeneration": 2}
    assert merge_patch_for(old, new) == {"observedGeneration": 2, "readyReplicas": None}


CONTAINER = {"ports": [{"name": "http", "containerPort": 8080}]}


def test_probes_resolve_named_ports_and_cap_the_period() -> None:
    probe = parse_probe(
        {
            "httpGet": {
                "path": "/ready",
                "port": "http",
                "httpHeaders": [{"name": "X", "value": "1"}],
            },
            "initialDelaySeconds": 2,
            "periodSeconds": 10,
            "failureThreshold": 1,
        },
        CONTAINER,
        max_period=1.0,
    )
    assert probe == Probe(
        action="http",
        port=8080,
        path="/ready",
        headers=(("X", "1"),),
        initial_delay=2.0,
        period=1.0,
        failure_threshold=1,
    )
    assert parse_probe(None, CONTAINER, max_period=1.0) is None
    tcp = parse_probe({"tcpSocket": {"port": 9000}}, CONTAINER, max_period=1.0)
    assert tcp is not None and (tcp.action, tcp.port) == ("tcp", 9000)
    exec_probe = parse_probe({"exec": {"command": ["true"]}}, CONTAINER, max_period=1.0)
    assert exec_probe is not None and exec_probe.action == "exec"
    assert container_port(CONTAINER, "metrics") is None
    assert container_port(CONTAINER, "9090") == 9090


def test_probe_results_change_after_consecutive_thresholds() -> None:
    readiness = ProbeTracker(success_threshold=2, failure_threshold=3, result=False)
    assert [readiness.observe(ok) for ok in (True, False, True, True)] == [
        False,
        False,
        False,
        True,
    ]
    assert [readiness.observe(ok) for ok in (False, False, True, False, False, False)] == [
        True,
        True,
        True,
        True,
        True,
        False,
    ]
    startup = ProbeTracker(success_threshold=1, failure_threshold=2, result=None)
    assert [startup.observe(ok) for ok in (False, False)] == [None, False]


def test_the_address_pool_hands_out_unique_loopback_addresses_but_never_the_nodes() -> None:
    pool = AddressPool(start=0)
    first, second = pool.allocate(), pool.allocate()

    assert (first, second) == ("127.0.0.2", "127.0.0.3")
    pool.release(first)
    assert pool.allocate() == "127.0.0.4"  # a freed address is not reused at once
    assert pool.in_use() == {"127.0.0.3", "127.0.0.4"}
    assert pool.allocate(lambda address: address.endswith(".6")) == "127.0.0.6"
    assert pod_address(254) == "127.0.1.1"
    assert pod_address(256 * 254 - 1) == "127.0.255.254"
    wrapped = AddressPool(start=256 * 254 - 1)
    assert [wrapped.allocate(), wrapped.allocate()] == ["127.0.255.254", "127.0.0.2"]


def test_pod_status_reports_readiness_restarts_and_keeps_transition_times() -> None:
    running = {"running": {"startedAt": "t"}}
    first = pod_status(
        phase="Running",
        container={"name": "server"},
        state=running,
        start_time="s",
        now="t1",
        pod_ip="127.0.3.4",
        ready=False,
        started=True,
        restart_count=2,
        last_state={"terminated": {"exitCode": 3}},
    )
    assert (first["podIP"], first["hostIP"]) == ("127.0.3.4", "127.0.0.1")
    ready = {c["type"]: c["status"] for c in first["conditions"]}
    assert (ready["Ready"], ready["ContainersReady"]) == ("False", "False")
    status = first["containerStatuses"][0]
    assert (status["ready"], status["started"], status["restartCount"]) == (False, True, 2)
    assert status["lastState"] == {"terminated": {"exitCode": 3}}

    second = pod_status(
        phase="Running",
        container={"name": "server"},
        state=running,
        start_time="s",
        now="t2",
        ready=True,
        previous_conditions=first["conditions"],
    )
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert (times["PodScheduled"], times["Ready"]) == ("t1", "t2")
