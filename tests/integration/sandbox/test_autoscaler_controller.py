"""The sandbox HPA controller against the sandbox API and the workload runner: what it does
before any metric (the bounds), and what it reports when it cannot scale. Scaling on the
model server's request rate runs end to end in tests/e2e/test_autoscaling_loop.py."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mlops_sandbox.apiserver import serve_api
from mlops_sandbox.autoscaler import Autoscaler
from mlops_sandbox.runner import KubeClient, Runner
from tests.support import eventually

FAKE_WORKLOAD = pathlib.Path(__file__).with_name("fake_workload.py")
NS = "default"
Json = dict[str, Any]
HPAS = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"


@pytest.fixture
async def client(tmp_path: pathlib.Path) -> AsyncIterator[KubeClient]:
    """The API, a runner of sleeping pods and the HPA controller syncing every 0.1 s."""
    async with serve_api() as (_, url), aiohttp.ClientSession() as session:
        runner = Runner(url, tmp_path / "runner", entrypoint=[sys.executable, str(FAKE_WORKLOAD)])
        async with runner, Autoscaler(runner, sync_seconds=0.1):
            yield KubeClient(session, url)


async def deployment(client: KubeClient, name: str, replicas: int) -> None:
    container = {"name": "server", "image": "runtime", "command": ["mlops-operator", "sleep", "60"]}
    await client.request(
        "POST",
        DEPLOYMENTS,
        body={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [container]},
                },
            },
        },
    )


async def hpa(client: KubeClient, target: str, metric: Json, low: int = 1, high: int = 2) -> None:
    await client.request(
        "POST",
        HPAS,
        body={
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "scaler", "namespace": NS},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": low,
                "maxReplicas": high,
                "metrics": [metric],
            },
        },
    )


def condition(status: Json, kind: str) -> Json:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


async def status_when(client: KubeClient, kind: str, reason: str) -> Json:
    """The HPA's status once its ``kind`` condition has ``reason``."""

    async def probe() -> Json | None:
        status: Json = (await client.request("GET", f"{HPAS}/scaler")).get("status") or {}
        return status if condition(status, kind).get("reason") == reason else None

    found: Json = await eventually(probe)
    return found


RPS = {
    "type": "Pods",
    "pods": {
        "metric": {"name": "mlops_requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "2"},
    },
}


async def test_replicas_above_the_maximum_are_brought_down_without_a_metric(
    client: KubeClient,
) -> None:
    await deployment(client, "web", replicas=4)
    await hpa(client, "web", RPS, high=2)

    status = await status_when(client, "AbleToScale", "SucceededRescale")
    assert status["desiredReplicas"] == 2
    assert "lastScaleTime" in status
    scaled = await client.request("GET", f"{DEPLOYMENTS}/web")
    assert scaled["spec"]["replicas"] == 2


async def test_a_missing_target_is_reported_as_failed_get_scale(client: KubeClient) -> None:
    await hpa(client, "nowhere", RPS)
    status = await status_when(client, "AbleToScale", "FailedGetScale")
    assert 'deployments.apps "nowhere" not found' in condition(status, "AbleToScale")["message"]


async def test_pods_without_metrics_leave_the_scale_and_say_why(client: KubeClient) -> None:
    await deployment(client, "quiet", replicas=1)
    await hpa(client, "quiet", RPS)
    status = await status_when(client, "ScalingActive", "FailedGetPodsMetric")
    assert (
        "unable to get metric mlops_requests_per_second"
        in (condition(status, "ScalingActive")["message"])
    )
    assert (await client.request("GET", f"{DEPLOYMENTS}/quiet"))["spec"]["replicas"] == 1


async def test_a_metric_the_sandbox_cannot_serve_is_named(client: KubeClient) -> None:
    await deployment(client, "odd", replicas=1)
    gauge = {**RPS, "pods": {**RPS["pods"], "metric": {"name": "queue_depth"}}}
    await hpa(client, "odd", gauge)
    status = await status_when(client, "ScalingActive", "FailedGetPodsMetric")
    assert "unable to get metric queue_depth" in condition(status, "ScalingActive")["message"]
