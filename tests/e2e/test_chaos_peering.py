"""Two operator replicas with kopf's peering, as the chart deploys them: only the replica of
higher priority writes; killed (-9), the other one takes over within 90 s, and the writes of
the two never overlap in time (the API emulator logs each write with the process that made
it: the operator's User-Agent names its process id)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from mlops_sandbox.apiserver import Write
from mlops_sandbox.process import OperatorProcess, wait_for
from tests.e2e.chaos_support import writer_pid
from tests.e2e.test_monitoring_loop import train, trainingjob
from tests.support.tools import helm_template

pytestmark = pytest.mark.timeout(420)

TAKEOVER_SECONDS = 90


def peering_crds() -> list[dict[str, Any]]:
    """kopf's peering CRDs as the chart renders them with peering on (helm template)."""
    return helm_template(
        "--set", "peering.enabled=true", "--show-only", "templates/peering-crds.yaml"
    )


def install_peering(kube: Any, namespace: str) -> None:
    """The peering CRDs and the namespace's ``default`` KopfPeering, as the chart makes them."""
    extensions = kubernetes.client.ApiextensionsV1Api(kube)
    for crd in peering_crds():
        try:
            extensions.create_custom_resource_definition(crd)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
    kubernetes.client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "default"}},
    )


def replica(sandbox: Any, tmp_path: Path, namespace: str, priority: int) -> OperatorProcess:
    """One operator replica with peering (no ``--standalone``), as the chart runs it."""
    return OperatorProcess(
        sandbox.env(),
        tmp_path / f"replica-{priority}.log",
        namespace=namespace,
        command=[sys.executable, "-m", "mlops_operator", "run"],
        env={
            "MLOPS_RUNTIME_IMAGE": "mlops-operator-runtime:sandbox",
            "MLOPS_PEERING_PRIORITY": str(priority),
        },
    )


def operator_writes(writes: list[Write]) -> list[Write]:
    """The writes of the operator's own client (kopf's keep-alives are not among them)."""
    return sorted((w for w in list(writes) if writer_pid(w) is not None), key=lambda w: w.started)


def no_tracebacks(replicas: list[OperatorProcess]) -> None:
    for replica in replicas:
        output = replica.output()
        assert "Traceback" not in output, f"{replica.log_path}:\n{output}"


def test_a_killed_replica_hands_over_to_its_peer_and_their_writes_never_overlap(
    sandbox: Any, kube: Any, namespace: str, resources: Any, cancer_csv: str, tmp_path: Path
) -> None:
    install_peering(kube, namespace)
    writes: list[Write] = []
    sandbox.add_write_hook(writes.append)
    replicas: list[OperatorProcess] = []
    try:
        replicas.append(replica(sandbox, tmp_path, namespace, 200))
        # A rolling deploy: the standby starts once the active replica is live.
        wait_for(
            "the first replica's keep-alive",
            lambda: (
                kubernetes.client.CustomObjectsApi(kube)
                .get_namespaced_custom_object(
                    "kopf.dev", "v1", namespace, "kopfpeerings", "default"
                )
                .get("status")
            ),
            timeout=60,
            interval=0.2,
        )
        replicas.append(replica(sandbox, tmp_path, namespace, 100))
        active, standby = (r.process.pid for r in replicas)
        train(resources, "cancer-a", trainingjob(cancer_csv))
        ours = operator_writes(writes)
        assert ours and {writer_pid(w) for w in ours} == {active}

        replicas[0].process.kill()
        replicas[0].process.wait()
        killed = time.monotonic()
        resources.create("trainingjobs", "TrainingJob", "cancer-b", trainingjob(cancer_csv))
        first = wait_for(
            "the standby replica's first write",
            lambda: next((w for w in list(writes) if writer_pid(w) == standby), None),
            timeout=TAKEOVER_SECONDS + 30,
            interval=0.5,
        )
        takeover = first.started - killed
        print(f"\ntakeover: the standby's first write {takeover:.1f} s after the kill")
        assert takeover <= TAKEOVER_SECONDS
        tj = resources.wait_status(
            "trainingjobs", "cancer-b", lambda s: s.get("phase") == "Succeeded", "the standby"
        )
        assert tj["status"]["modelVersion"] == "cancer-v2"
    finally:
        sandbox.remove_write_hook(writes.append)
        for started in replicas:
            started.stop()

    ours = operator_writes(writes)
    by_active = [w for w in ours if writer_pid(w) == active]
    by_standby = [w for w in ours if writer_pid(w) == standby]
    assert by_active and by_standby
    # Never at once: every write of the active replica ended before the standby's first.
    assert max(w.finished for w in by_active) <= min(w.started for w in by_standby)
    assert [mv["spec"]["version"] for mv in resources.list("modelversions")] == [1, 2]
    no_tracebacks(replicas)


def test_replicas_started_at_once_leave_the_work_to_the_highest_and_the_other_never_writes(
    sandbox: Any, kube: Any, namespace: str, resources: Any, cancer_csv: str, tmp_path: Path
) -> None:
    # The whole Deployment restarted with work waiting: both replicas start in the same
    # instant, and each must know its peers before it touches anything.
    install_peering(kube, namespace)
    for name in ("cancer-a", "cancer-b"):
        resources.create("trainingjobs", "TrainingJob", name, trainingjob(cancer_csv))
    writes: list[Write] = []
    sandbox.add_write_hook(writes.append)
    replicas: list[OperatorProcess] = []
    try:
        replicas = [replica(sandbox, tmp_path, namespace, p) for p in (200, 100)]
        active, standby = (r.process.pid for r in replicas)
        done = [
            resources.wait_status(
                "trainingjobs", name, lambda s: s.get("phase") == "Succeeded", "trained"
            )
            for name in ("cancer-a", "cancer-b")
        ]
        assert sorted(tj["status"]["modelVersion"] for tj in done) == ["cancer-v1", "cancer-v2"]
    finally:
        sandbox.remove_write_hook(writes.append)
        for started in replicas:
            started.stop()

    ours = operator_writes(writes)
    assert ours and {writer_pid(w) for w in ours} == {active}, [
        (writer_pid(w), w.verb, w.resource, w.name) for w in ours if writer_pid(w) == standby
    ]
    assert [mv["spec"]["version"] for mv in resources.list("modelversions")] == [1, 2]
    no_tracebacks(replicas)
