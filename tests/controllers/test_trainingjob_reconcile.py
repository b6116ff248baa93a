"""The TrainingJob reconcile, branch by branch: validate → storage → Job → mirror → register."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_operator.artifacts import layout
from mlops_operator.kube import client as k8s
from tests.controllers.conftest import Cluster, condition, state
from tests.support.factories import trainingjob

TJ = "TrainingJob"


async def jobs(cluster: Cluster) -> list[str]:
    return sorted(
        j["metadata"]["name"] for j in await cluster.user.list(k8s.JOBS, cluster.namespace)
    )


async def started(cluster: Cluster, name: str, model: str = "iris", **spec: Any) -> str:
    """Create a TrainingJob and reconcile it once: its Job exists; the Job's name."""
    await cluster.create(trainingjob(name, model, cluster.dataset(), **spec))
    await cluster.reconcile(TJ, name)
    tj = await cluster.obj(TJ, name)
    job_name: str = tj["status"]["jobName"]
    return job_name


async def trained(
    cluster: Cluster, name: str, model: str = "iris", metrics: dict[str, float] | None = None
) -> dict[str, Any]:
    """Create a TrainingJob and run it to success; the TrainingJob after it."""
    await cluster.create(trainingjob(name, model, cluster.dataset()))
    return await cluster.train(name, metrics or {"accuracy": 0.93})


# --- invalid specs: nothing is created ----------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        # The CRD's CEL rule says the same; an API server without CEL admits it.
        ({"gates": [{"metric": "accuracy"}]}, "gate on 'accuracy' needs min or max"),
        ({"validation": {"testSize": 0.2, "metrics": ["r2"]}}, "spec.validation.metrics: r2"),
        ({"estimator": {"className": "os.system"}}, "'os.system' is not allowed"),
        ({"gates": [{"metric": "r2", "min": 0.5}]}, "spec.gates[0].metric: 'r2' is never"),
    ],
    ids=["schema", "metric-the-task-never-reports", "estimator-not-allowed", "gate-never-reported"],
)
async def test_an_untrainable_spec_is_invalid_before_any_job(
    cluster: Cluster, spec: dict[str, Any], says: str
) -> None:
    await cluster.create(trainingjob("tj", "iris", cluster.dataset(), **spec))

    assert await cluster.reconcile(TJ, "tj") is None

    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Failed"
    assert state(tj, "Ready") == ("False", "InvalidSpec")
    assert says in condition(tj, "Ready")["message"]
    assert await jobs(cluster) == []
    assert await cluster.reasons("tj") == ["InvalidSpec"]


async def test_an_invalid_spec_is_not_reconsidered_until_it_changes(cluster: Cluster) -> None:
    await cluster.create(
        trainingjob("tj", "iris", cluster.dataset(), gates=[{"metric": "r2", "min": 0.5}])
    )
    await cluster.reconcile(TJ, "tj")
    before = cluster.ctx.kube.requests

    await cluster.reconcile(TJ, "tj")

    assert cluster.ctx.kube.requests == before
    assert await cluster.reasons("tj") == ["InvalidSpec"]


# --- storage --------------------------------------------------------------------------------


async def test_unreachable_storage_waits_without_a_job(
    cluster: Cluster, dead_endpoint: str
) -> None:
    await cluster.create(
        trainingjob("tj", "iris", cluster.dataset(), storage={"endpoint": dead_endpoint})
    )

    assert await cluster.reconcile(TJ, "tj") == 30.0

    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Pending"
    assert state(tj, "StorageReachable") == ("False", "StorageUnreachable")
    assert state(tj, "Ready") == ("False", "StorageUnreachable")
    assert await jobs(cluster) == []


async def test_missing_credentials_wait_without_a_job_and_say_which_secret(
    cluster: Cluster,
) -> None:
    await cluster.create(
        trainingjob(
            "tj", "iris", cluster.dataset(), storage={"credentialsSecret": {"name": "nope"}}
        )
    )

    await cluster.reconcile(TJ, "tj")
    await cluster.reconcile(TJ, "tj")

    tj = await cluster.obj(TJ, "tj")
    assert state(tj, "StorageReachable") == ("False", "CredentialsMissing")
    assert f"{cluster.namespace}/nope" in condition(tj, "Ready")["message"]
    assert await jobs(cluster) == []
    assert await cluster.reasons("tj") == ["CredentialsMissing"]  # once, not per reconcile


# --- the Job ----------------------------------------------------------------------------


async def test_exactly_one_job_with_a_deterministic_name_is_created(cluster: Cluster) -> None:
    job_name = await started(cluster, "tj")
    assert state(await cluster.obj(TJ, "tj"), "Ready") == ("False", "JobCreated")

    before = cluster.ctx.kube.requests
    await cluster.reconcile(TJ, "tj")

    assert cluster.ctx.kube.requests == before  # the Job's pod has not started: nothing new
    assert job_name == "tj-train"
    assert await jobs(cluster) == ["tj-train"]
    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Pending"
    assert state(tj, "Ready") == ("False", "JobCreated")
    assert state(tj, "StorageReachable") == ("True", "StorageOK")
    job = await cluster.get(k8s.JOBS, "tj-train")
    assert job is not None
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (TJ, "tj", tj["metadata"]["uid"])
    assert await cluster.reasons("tj") == ["JobCreated"]


async def test_a_restart_after_the_job_was_created_creates_no_second_one(
    cluster: Cluster,
) -> None:
    await started(cluster, "tj")
    await cluster.restart()

    await cluster.reconcile(TJ, "tj")

    assert await jobs(cluster) == ["tj-train"]
    assert await cluster.reasons("tj") == ["JobCreated"]


async def test_a_running_job_makes_the_trainingjob_running(cluster: Cluster) -> None:
    job_name = await started(cluster, "tj")
    await cluster.job_status(job_name, {"active": 1, "startTime": "2026-01-01T00:00:00Z"})

    await cluster.reconcile(TJ, "tj")

    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Running"
    assert tj["status"]["startTime"] == "2026-01-01T00:00:00Z"
    assert state(tj, "Ready") == ("False", "JobRunning")


async def test_a_failed_job_reports_the_trainers_termination_message(cluster: Cluster) -> None:
    job_name = await started(cluster, "tj")
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job_name}-abcde", "labels": {"job-name": job_name}},
        "spec": {"containers": [{"name": "trainer", "image": "runtime"}]},
    }
    await cluster.user.create(k8s.PODS, cluster.namespace, pod)
    terminated = {
        "exitCode": 1,
        "reason": "Error",
        "message": "MissingColumn: column 'target' is not in the dataset",
    }
    await cluster.user.patch_status(
        k8s.PODS,
        cluster.namespace,
        pod["metadata"]["name"],
        {
            "phase": "Failed",
            "containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}],
        },
    )
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    await cluster.job_status(job_name, {"failed": 2, "conditions": [failed]})

    await cluster.reconcile(TJ, "tj")

    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Failed"
    assert state(tj, "Ready") == ("False", "MissingColumn")
    message = condition(tj, "Ready")["message"]
    assert message == "Training failed after 2 attempts: column 'target' is not in the dataset"
    assert tj["status"]["failureReason"] == message
    assert (await cluster.events("tj"))[-1] == ("Warning", "MissingColumn", message)


async def test_a_job_deleted_before_it_finished_fails_the_trainingjob(cluster: Cluster) -> None:
    job_name = await started(cluster, "tj")
    await cluster.delete(k8s.JOBS, job_name)

    await cluster.reconcile(TJ, "tj")
    await cluster.reconcile(TJ, "tj")

    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Failed"
    assert state(tj, "Ready") == ("False", "JobDeleted")
    assert await jobs(cluster) == []  # not recreated
    assert await cluster.reasons("tj") == ["JobCreated", "JobDeleted"]


# --- registration -------------------------------------------------------------------------


async def test_success_registers_version_1_then_2_for_a_second_trainingjob(
    cluster: Cluster,
) -> None:
    first = await trained(cluster, "first")
    second = await trained(cluster, "second", metrics={"accuracy": 0.97})

    assert first["status"]["phase"] == "Succeeded"
    assert (first["status"]["version"], first["status"]["modelVersion"]) == (1, "iris-v1")
    assert (second["status"]["version"], second["status"]["modelVersion"]) == (2, "iris-v2")
    assert state(second, "Ready") == ("True", "ModelRegistered")
    assert second["status"]["metrics"] == {"accuracy": 0.97}
    mv = await cluster.obj("ModelVersion", "iris-v2")
    assert mv["spec"]["source"]["trainingJob"] == "second"
    assert mv["spec"]["artifact"]["uri"].endswith(f"/{cluster.namespace}/iris/2/")
    assert "ModelRegistered" in await cluster.reasons("second")


async def test_a_version_number_taken_by_hand_is_skipped(cluster: Cluster) -> None:
    await cluster.version("iris", 1, ready=False)

    tj = await trained(cluster, "tj")

    assert (tj["status"]["version"], tj["status"]["modelVersion"]) == (2, "iris-v2")
    by_hand = await cluster.obj("ModelVersion", "iris-v1")
    assert by_hand["spec"].get("source", {}).get("trainingJob") is None


async def test_a_version_taken_by_hand_that_the_watch_has_not_delivered_is_skipped(
    cluster: Cluster,
) -> None:
    job_name = await started(cluster, "tj")
    await cluster.trainer_succeeds(job_name, {"accuracy": 0.93}, b"model")
    await cluster.watches.sync()
    await cluster.version("iris", 1, ready=False)

    await cluster.reconcile(TJ, "tj", lagging=True)

    tj = await cluster.obj(TJ, "tj")
    assert (tj["status"]["version"], tj["status"]["modelVersion"]) == (2, "iris-v2")
    assert (await cluster.obj("ModelVersion", "iris-v2"))["spec"]["source"]["trainingJob"] == "tj"


async def test_registration_fails_when_the_manifest_is_missing(cluster: Cluster) -> None:
    job_name = await started(cluster, "tj")
    await cluster.job_complete(job_name)

    await cluster.reconcile(TJ, "tj")

    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Failed"
    assert state(tj, "Ready") == ("False", "RegistrationFailed")
    assert "manifest.json does not exist" in condition(tj, "Ready")["message"]
    assert await cluster.user.list(k8s.MODELVERSIONS, cluster.namespace) == []


async def test_a_spec_change_after_failure_trains_again_in_a_new_job(cluster: Cluster) -> None:
    job_name = await started(cluster, "tj")
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
    await cluster.job_status(job_name, {"conditions": [failed]})
    await cluster.reconcile(TJ, "tj")
    assert (await cluster.obj(TJ, "tj"))["status"]["phase"] == "Failed"

    await cluster.patch(k8s.TRAININGJOBS, "tj", {"spec": {"activeDeadlineSeconds": 3600}})
    await cluster.reconcile(TJ, "tj")

    tj = await cluster.obj(TJ, "tj")
    assert tj["metadata"]["generation"] == 2
    assert tj["status"]["observedGeneration"] == 2
    assert tj["status"]["phase"] == "Pending"
    assert tj["status"]["jobName"] == "tj-train-g2"
    assert "failureReason" not in tj["status"]
    assert await jobs(cluster) == ["tj-train", "tj-train-g2"]
    events = await cluster.events("tj")
    assert [reason for _, reason, _ in events[:2]] == ["JobCreated", "DeadlineExceeded"]
    assert sorted(reason for _, reason, _ in events[2:]) == ["JobCreated", "SpecChanged"]
    [spec_changed] = [message for _, reason, message in events if reason == "SpecChanged"]
    assert "generation 1 → 2" in spec_changed


async def test_a_spec_change_while_training_stops_the_old_job(cluster: Cluster) -> None:
    job_name = await started(cluster, "tj")
    await cluster.job_status(job_name, {"active": 1})
    await cluster.reconcile(TJ, "tj")

    await cluster.patch(k8s.TRAININGJOBS, "tj", {"spec": {"activeDeadlineSeconds": 3600}})
    await cluster.reconcile(TJ, "tj")

    assert await jobs(cluster) == ["tj-train-g2"]
    tj = await cluster.obj(TJ, "tj")
    assert (tj["status"]["jobName"], tj["status"]["phase"]) == ("tj-train-g2", "Pending")


@pytest.mark.parametrize("cpu", ["-1", "lots"])
async def test_a_quantity_that_is_no_quantity_is_refused_by_the_crd(
    cluster: Cluster, cpu: str
) -> None:
    with pytest.raises(k8s.Invalid, match="spec.resources.limits.cpu"):
        await cluster.create(
            trainingjob("tj", "iris", cluster.dataset(), resources={"limits": {"cpu": cpu}})
        )


async def test_a_job_the_api_server_rejects_is_invalid_spec_with_its_message(
    cluster: Cluster,
) -> None:
    # Valid quantities each, which the CRD cannot compare: the API server refuses the Job.
    code = "must be less than or equal to cpu limit"
    resources = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    await cluster.create(trainingjob("tj", "iris", cluster.dataset(), resources=resources))

    await cluster.reconcile(TJ, "tj")
    before = cluster.ctx.kube.requests
    await cluster.reconcile(TJ, "tj")

    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Failed"
    assert state(tj, "Ready") == ("False", "InvalidSpec")
    message = condition(tj, "Ready")["message"]
    assert message.startswith("the API server rejected Job tj-train: ")
    assert code in message
    assert cluster.ctx.kube.requests == before  # the second reconcile asked nothing
    assert await jobs(cluster) == []
    assert await cluster.reasons("tj") == ["InvalidSpec"]


async def test_an_older_artifact_at_the_version_path_is_never_overwritten(
    cluster: Cluster,
) -> None:
    # Version 1 of this model was registered once and its ModelVersion deleted since; its
    # artifact is still in storage. The next registration must not replace it.
    settings = cluster.ctx.settings
    old = layout.version_dir_uri(
        settings.s3_bucket, settings.s3_prefix, cluster.namespace, "iris", 1
    )
    cluster.put(layout.file_uri(old, layout.MODEL_FILE), b"the model users relied on")

    tj = await trained(cluster, "tj")

    assert (tj["status"]["version"], tj["status"]["modelVersion"]) == (2, "iris-v2")
    bucket, _, key = layout.file_uri(old, layout.MODEL_FILE).removeprefix("s3://").partition("/")
    kept = cluster.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert kept == b"the model users relied on"


async def test_a_status_that_lost_its_reservation_adopts_the_runs_version(
    cluster: Cluster,
) -> None:
    job_name = await started(cluster, "tj")
    await cluster.trainer_succeeds(job_name, {"accuracy": 0.93}, b"model")
    before = (await cluster.obj(TJ, "tj"))["status"]
    await cluster.reconcile(TJ, "tj")
    registered = (await cluster.obj(TJ, "tj"))["status"]
    assert (registered["version"], registered["modelVersion"]) == (1, "iris-v1")

    # A client that read the TrainingJob before its registration writes that status back:
    # no reserved number, no version, not Succeeded.
    back = {**{key: None for key in registered if key not in before}, **before}
    await cluster.user.patch_status(k8s.TRAININGJOBS, cluster.namespace, "tj", back)
    assert "version" not in (await cluster.obj(TJ, "tj"))["status"]
    await cluster.reconcile(TJ, "tj")

    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Succeeded"
    assert (tj["status"]["version"], tj["status"]["modelVersion"]) == (1, "iris-v1")
    assert tj["status"]["artifactUri"].endswith(f"/{cluster.namespace}/iris/1/")
    mvs = await cluster.user.list(k8s.MODELVERSIONS, cluster.namespace)
    assert [mv["metadata"]["name"] for mv in mvs] == ["iris-v1"]


async def test_a_spec_change_after_success_registers_a_new_version_of_the_same_bytes(
    cluster: Cluster,
) -> None:
    first = await trained(cluster, "tj")
    await cluster.patch(k8s.TRAININGJOBS, "tj", {"spec": {"activeDeadlineSeconds": 3600}})

    # The test's trainer writes the same model file for every run of "tj".
    second = await cluster.train("tj", {"accuracy": 0.93})

    assert (first["status"]["version"], first["status"]["modelVersion"]) == (1, "iris-v1")
    assert (second["status"]["version"], second["status"]["modelVersion"]) == (2, "iris-v2")
    mvs = await cluster.user.list(k8s.MODELVERSIONS, cluster.namespace)
    digests = {mv["spec"]["artifact"]["digest"] for mv in mvs}
    assert sorted(mv["metadata"]["name"] for mv in mvs) == ["iris-v1", "iris-v2"]
    assert len(digests) == 1
