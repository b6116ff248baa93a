"""The whole loop with the operator killed (-9) again and again: right after its Nth API write
or at a random moment, a new process started at once. Train, register, serve a new version,
degrade it, roll back and retrain, promote: after every flow, exactly one Job per TrainingJob
generation, one Deployment and one Service, one ModelVersion per registration, a version
directory in storage for each ModelVersion and no other, and every object converged.

The default run does one flow with two kills; ``pytest -m chaos`` (``make test-chaos``) runs
twelve flows with five kills planned each (a kill planned after more writes than its process
makes before the flow ends does not happen: 50 to 60 kills in all)."""

from __future__ import annotations

import collections
import re
from typing import Any

import kubernetes
import pytest

from tests.e2e.chaos_support import Chaos, plan_kills
from tests.e2e.test_loop_holds import degrade, serving
from tests.e2e.test_monitoring_loop import train, trainingjob, watch_accuracy

pytestmark = pytest.mark.timeout(600)

TRAININGJOBS = ("cancer-a", "cancer-b", "cancer-retrain-1")


def run_flow(
    seed: int,
    kills: int,
    start_operator: Any,
    resources: Any,
    cancer_csv: str,
    kube: Any,
    namespace: str,
    sandbox: Any,
    s3: Any,
) -> None:
    planned = plan_kills(seed, kills)
    chaos = Chaos(start=start_operator, kills=list(planned))
    sandbox.add_write_hook(chaos.on_write)
    try:
        with chaos:
            train(resources, "cancer-a", trainingjob(cancer_csv, 4))
            watch_accuracy(
                resources,
                onDegradation="RollbackAndRetrain",
                retrain={"cooldownSeconds": 0, "maxPerDay": 10},
            )
            serving(resources, 1, "to serve version 1")
            train(resources, "cancer-b", trainingjob(cancer_csv, 6))
            serving(resources, 2, "to serve version 2")
            degrade(kube, namespace, 2)
            final = serving(resources, 3, "to promote the retraining")
    finally:
        sandbox.remove_write_hook(chaos.on_write)
    print(
        f"\nseed {seed}: {len(chaos.done)} kills at "
        + ", ".join(k.done_at for k in chaos.done)
        + f"; {len(chaos.writes)} writes"
    )
    assert chaos.done, "no kill happened"

    status = final["status"]
    assert [(h["version"], h["reason"]) for h in status["history"]] == [
        (1, "Initial"),
        (2, "NewLatest"),
        (1, "RolledBack"),
        (3, "Promoted"),
    ]
    # One registration each, no retraining twice.
    tjs = {tj["metadata"]["name"]: tj for tj in resources.list("trainingjobs")}
    assert sorted(tjs) == sorted(TRAININGJOBS)
    mvs = {mv["spec"]["version"]: mv for mv in resources.list("modelversions")}
    assert sorted(mvs) == [1, 2, 3]
    assert {v: mv["spec"]["source"]["trainingJob"] for v, mv in mvs.items()} == dict(
        zip((1, 2, 3), TRAININGJOBS, strict=True)
    )
    for name, tj in tjs.items():
        assert tj["status"]["phase"] == "Succeeded", (name, tj["status"])
    for mv in mvs.values():
        assert mv["status"]["phase"] in ("Ready", "Degraded"), mv["status"]

    # One child of each kind per owner and generation.
    batch = kubernetes.client.BatchV1Api(kube)
    jobs = [j.metadata.name for j in batch.list_namespaced_job(namespace).items]
    assert sorted(jobs) == sorted(f"{tj}-train" for tj in TRAININGJOBS)
    apps = kubernetes.client.AppsV1Api(kube)
    deployments = [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
    assert deployments == ["cancer-predictor"]
    core = kubernetes.client.CoreV1Api(kube)
    services = [s.metadata.name for s in core.list_namespaced_service(namespace).items]
    assert services == ["cancer-predictor"]

    # Storage: a version directory for each ModelVersion, none left over by a kill, and one
    # run directory (the trainer's output, kept as the run's record) per TrainingJob.
    bucket, _, prefix = mvs[1]["spec"]["artifact"]["uri"].removeprefix("s3://").partition("/")
    model_prefix = prefix.rsplit("/", 2)[0] + "/"

    def directories(under: str) -> list[str]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=under, Delimiter="/")
        return sorted(p["Prefix"] for p in listed.get("CommonPrefixes", []))

    versions = sorted(
        mv["spec"]["artifact"]["uri"].removeprefix(f"s3://{bucket}/") for mv in mvs.values()
    )
    assert directories(model_prefix) == sorted([*versions, model_prefix + "runs/"])
    runs = [d.removeprefix(model_prefix + "runs/") for d in directories(model_prefix + "runs/")]
    owners = [tj for tj in TRAININGJOBS for r in runs if re.fullmatch(rf"{tj}-\w+-g1/", r)]
    assert sorted(owners) == sorted(TRAININGJOBS), runs

    # Events: said once per occurrence, not once per restart.
    events = core.list_namespaced_event(namespace).items
    registered = collections.Counter(
        e.involved_object.name for e in events if e.reason == "ModelRegistered"
    )
    assert all(count == 1 for count in registered.values()), registered


def test_the_loop_converges_across_kills_at_writes_and_random_moments(
    start_operator: Any,
    resources: Any,
    cancer_csv: str,
    kube: Any,
    namespace: str,
    sandbox: Any,
    s3: Any,
) -> None:
    run_flow(7, 2, start_operator, resources, cancer_csv, kube, namespace, sandbox, s3)


@pytest.mark.chaos
@pytest.mark.parametrize("seed", range(100, 112))
def test_chaos_the_loop_converges_across_five_kills(
    seed: int,
    start_operator: Any,
    resources: Any,
    cancer_csv: str,
    kube: Any,
    namespace: str,
    sandbox: Any,
    s3: Any,
) -> None:
    run_flow(seed, 5, start_operator, resources, cancer_csv, kube, namespace, sandbox, s3)
