"""The workload runner against the sandbox API, running a stand-in entrypoint.

The stand-in (``fake_workload.py``) plays ``mlops-operator`` so each test can ask for the
behaviour it needs: print the environment, fail with a message, sleep, spawn a child.
"""

from __future__ import annotations

import base64
import pathlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mlops_sandbox.apiserver import serve_api
from mlops_sandbox.runner import ApiError, KubeClient, Runner
from tests.support import eventually

FAKE_WORKLOAD = pathlib.Path(__file__).with_name("fake_workload.py")
NS = "default"
Json = dict[str, Any]


class Cluster:
    """The API, a client of it, and a runner: what each test drives."""

    def __init__(self, url: str, session: aiohttp.ClientSession, state_dir: pathlib.Path) -> None:
        self.url = url
        self.session = session
        self.client = KubeClient(session, url)
        self.state_dir = state_dir
        self.runner = self.new_runner()

    def new_runner(self) -> Runner:
        return Runner(
            self.url,
            self.state_dir,
            entrypoint=[sys.executable, str(FAKE_WORKLOAD)],
            backoff_base=0.05,
            config_retry_seconds=0.1,
            max_grace_seconds=1.0,
        )

    async def create_job(
        self, name: str, command: list[str], *, container: Json | None = None, **spec: Any
    ) -> Json:
        body = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                **spec,
                "template": {
                    "metadata": {"labels": {"app": "test"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "main", "image": "runtime", "command": command}
                            | (container or {})
                        ],
                    },
                },
            },
        }
        return await self.client.request("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", body=body)

    async def job(self, name: str) -> Json:
        return await self.client.request("GET", f"/apis/batch/v1/namespaces/{NS}/jobs/{name}")

    async def pods(self, job_name: str) -> list[Json]:
        listing = await self.client.request(
            "GET", f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": f"job-name={job_name}"}
        )
        items: list[Json] = listing["items"]
        return items

    async def wait_for_condition(self, name: str, kind: str, timeout: float = 15.0) -> Json:
        async def finished() -> Json | None:
            job = await self.job(name)
            conditions = (job.get("status") or {}).get("conditions") or []
            return job if any(c["type"] == kind for c in conditions) else None

        job: Json = await eventually(finished, timeout)
        return job

    async def log(self, pod: str) -> str:
        async with self.session.get(
            f"{self.url}/api/v1/namespaces/{NS}/pods/{pod}/log"
        ) as response:
            assert response.status == 200, await response.text()
            return await response.text()


def _conditions(job: Json) -> list[tuple[str, str]]:
    return [(c["type"], c["reason"]) for c in job["status"]["conditions"]]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
async def cluster(tmp_path: pathlib.Path) -> AsyncIterator[Cluster]:
    async with serve_api() as (api, url), aiohttp.ClientSession() as session:
        cluster = Cluster(url, session, tmp_path / "runner")
        api.log_provider = cluster.runner.read_log
        await cluster.runner.start()
        try:
            yield cluster
        finally:
            await cluster.runner.stop()


async def test_a_successful_job_completes_with_pod_and_job_status(cluster: Cluster) -> None:
    created = await cluster.create_job("ok", ["mlops-operator", "print-env", "HOSTNAME"])
    job = await cluster.wait_for_condition("ok", "Complete")

    status = job["status"]
    assert _conditions(job) == [
        ("SuccessCriteriaMet", "CompletionsReached"),
        ("Complete", "CompletionsReached"),
    ]
    assert status["succeeded"] == 1
    assert "failed" not in status and "active" not in status
    assert status["startTime"] and status["completionTime"]

    [pod] = await cluster.pods("ok")
    meta, pod_status = pod["metadata"], pod["status"]
    uid = created["metadata"]["uid"]
    assert meta["name"].startswith("ok-") and len(meta["name"]) == len("ok-") + 5
    assert meta["labels"] == {
        "app": "test",
        "job-name": "ok",
        "batch.kubernetes.io/job-name": "ok",
        "controller-uid": uid,
        "batch.kubernetes.io/controller-uid": uid,
    }
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Job",
        "ok",
        uid,
        True,
    )
    assert pod["spec"]["nodeName"] == "sandbox"
    assert pod_status["phase"] == "Succeeded"
    assert pod_status["podIP"] == "127.0.0.1"
    terminated = pod_status["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert await cluster.log(meta["name"]) == f"HOSTNAME={meta['name']}\n"


async def test_pods_get_env_from_secrets_configmaps_and_fields_but_not_the_runners(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-runner-own-key")
    await cluster.client.request(
        "POST",
        f"/api/v1/namespaces/{NS}/secrets",
        body={
            "metadata": {"name": "creds"},
            "data": {"AWS_ACCESS_KEY_ID": base64.b64encode(b"from-secret").decode()},
        },
    )
    await cluster.client.request(
        "POST",
        f"/api/v1/namespaces/{NS}/configmaps",
        body={"metadata": {"name": "cfg"}, "data": {"mode": "fast"}},
    )
    names = ["AWS_ACCESS_KEY_ID", "CFG_mode", "POD_NAME", "AWS_SECRET_ACCESS_KEY"]
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    env_from = [
        {"secretRef": {"name": "creds"}},
        {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
    ]
    await cluster.create_job(
        "env",
        ["mlops-operator", "print-env", *names],
        container={"env": env, "envFrom": env_from},
    )
    await cluster.wait_for_condition("env", "Complete")

    [pod] = await cluster.pods("env")
    name = pod["metadata"]["name"]
    assert (await cluster.log(name)).splitlines() == [
        "AWS_ACCESS_KEY_ID=from-secret",
        "CFG_mode=fast",
        f"POD_NAME={name}",
        "AWS_SECRET_ACCESS_KEY=<unset>",
    ]


async def test_backoff_limit_one_means_two_failed_pods_then_failed(cluster: Cluster) -> None:
    await cluster.create_job(
        "bad", ["mlops-operator", "fail", "dataset", "missing"], backoffLimit=1
    )
    job = await cluster.wait_for_condition("bad", "Failed")

    assert _conditions(job) == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert (
        job["status"]["conditions"][1]["message"] == "Job has reached the specified backoff limit"
    )
    assert job["status"]["failed"] == 2
    assert "completionTime" not in job["status"]
    pods = await cluster.pods("bad")
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert terminated["message"] == "dataset missing"


async def test_fallback_to_logs_on_error_uses_the_log_tail(cluster: Cluster) -> None:
    await cluster.create_job(
        "loud",
        ["mlops-operator", "shout-and-fail", "it broke"],
        container={"terminationMessagePolicy": "FallbackToLogsOnError"},
        backoffLimit=0,
    )
    await cluster.wait_for_condition("loud", "Failed")

    [pod] = await cluster.pods("loud")
    message = pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert message.endswith("line 199\nit broke\n")
    assert message.count("\n") == 80


async def test_a_missing_secret_keeps_the_pod_pending_until_it_appears(cluster: Cluster) -> None:
    ref = {"secretKeyRef": {"name": "late", "key": "token"}}
    await cluster.create_job(
        "waits",
        ["mlops-operator", "print-env", "TOKEN"],
        container={"env": [{"name": "TOKEN", "valueFrom": ref}]},
    )

    async def config_error() -> Json | None:
        pods = await cluster.pods("waits")
        statuses = pods[0].get("status", {}).get("containerStatuses") if pods else None
        waiting = statuses[0]["state"].get("waiting", {}) if statuses else {}
        return pods[0] if waiting.get("reason") == "CreateContainerConfigError" else None

    pod = await eventually(config_error)
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"] == 'secret "late" not found'

    await cluster.client.request(
        "POST",
        f"/api/v1/namespaces/{NS}/secrets",
        body={"metadata": {"name": "late"}, "stringData": {"token": "t0k"}},
    )
    await cluster.wait_for_condition("waits", "Complete")
    assert await cluster.log(pod["metadata"]["name"]) == "TOKEN=t0k\n"


async def test_a_command_other_than_mlops_operator_cannot_start(cluster: Cluster) -> None:
    await cluster.create_job("shell", ["sh", "-c", "echo hi"], backoffLimit=0)
    job = await cluster.wait_for_condition("shell", "Failed")

    assert _conditions(job)[-1] == ("Failed", "BackoffLimitExceeded")
    [pod] = await cluster.pods("shell")
    assert pod["status"]["phase"] == "Failed"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerError"
    assert "only runs 'mlops-operator' commands" in waiting["message"]


async def test_active_deadline_kills_the_pod_and_fails_the_job(cluster: Cluster) -> None:
    started = time.monotonic()
    await cluster.create_job(
        "slow", ["mlops-operator", "sleep", "60"], activeDeadlineSeconds=1, backoffLimit=3
    )
    job = await cluster.wait_for_condition("slow", "Failed")

    assert time.monotonic() - started < 10
    assert _conditions(job) == [
        ("FailureTarget", "DeadlineExceeded"),
        ("Failed", "DeadlineExceeded"),
    ]
    assert (
        job["status"]["conditions"][1]["message"] == "Job was active longer than specified deadline"
    )
    assert job["status"]["failed"] == 1
    # The Job controller deletes the pods of a Job that ran out of time.
    assert await eventually(lambda: _no_pods(cluster, "slow"))


async def _no_pods(cluster: Cluster, job_name: str) -> bool:
    return not await cluster.pods(job_name)


async def _spawned_pids(
    cluster: Cluster, job_name: str, pidfile: pathlib.Path, **spec: Any
) -> list[int]:
    await cluster.create_job(job_name, ["mlops-operator", "spawn-and-sleep", str(pidfile)], **spec)

    async def written() -> list[int]:
        text = pidfile.read_text() if pidfile.exists() else ""
        return [int(pid) for pid in text.split()] if len(text.split()) == 2 else []

    pids: list[int] = await eventually(written)
    assert all(_alive(pid) for pid in pids)
    return pids


async def test_deleting_a_running_job_kills_its_processes(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    pids = await _spawned_pids(cluster, "doomed", tmp_path / "pids")

    await cluster.client.request("DELETE", f"/apis/batch/v1/namespaces/{NS}/jobs/doomed")

    async def all_dead() -> bool:
        return not any(_alive(pid) for pid in pids)

    assert await eventually(all_dead, timeout=5)


async def test_ttl_after_finished_deletes_the_job(cluster: Cluster) -> None:
    await cluster.create_job("brief", ["mlops-operator", "sleep", "0"], ttlSecondsAfterFinished=0)

    async def gone() -> bool:
        try:
            await cluster.job("brief")
        except ApiError as e:
            return e.status == 404
        return False

    assert await eventually(gone)


async def test_a_restarted_runner_fails_orphaned_pods_and_leaves_finished_jobs_alone(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    await cluster.create_job("done", ["mlops-operator", "sleep", "0"])
    await cluster.wait_for_condition("done", "Complete")
    pids = await _spawned_pids(cluster, "orphan", tmp_path / "pids", backoffLimit=0)
    await eventually(lambda: _job_ready(cluster, "orphan"))

    await cluster.runner.stop()
    assert not any(_alive(pid) for pid in pids), "stopping the runner leaves no processes"
    cluster.runner = cluster.new_runner()
    await cluster.runner.start()

    job = await cluster.wait_for_condition("orphan", "Failed")
    assert _conditions(job)[-1] == ("Failed", "BackoffLimitExceeded")
    assert job["status"]["failed"] == 1
    [lost] = await cluster.pods("orphan")
    assert (lost["status"]["phase"], lost["status"]["reason"]) == ("Failed", "NodeLost")
    assert len(await cluster.pods("done")) == 1
    assert _conditions(await cluster.job("done"))[-1] == ("Complete", "CompletionsReached")


async def _job_ready(cluster: Cluster, name: str) -> bool:
    return bool((await cluster.job(name)).get("status", {}).get("ready"))
