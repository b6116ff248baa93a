"""``Sandbox(prometheus=True)``: a real Prometheus that scrapes the sandbox's annotated pods."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from mlops_operator.monitoring.measure import query_scalar
from mlops_sandbox.cluster import Sandbox
from mlops_sandbox.process import wait_for


@pytest.fixture(scope="module")
def sandbox_with_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of its own (the session's runs no Prometheus); no workloads are needed."""
    with Sandbox(
        tmp_path_factory.mktemp("sandbox-prometheus"), prometheus=True, run_workloads=False
    ) as started:
        yield started


@pytest.fixture
def metrics_port() -> Iterator[int]:
    """A metrics endpoint on 127.0.0.1 standing in for a model server pod's ``/metrics``."""
    registry = CollectorRegistry()
    Gauge("demo_online_accuracy", "Online accuracy.", registry=registry).set(0.75)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def core(sandbox_with_prometheus: Sandbox) -> Iterator[Any]:
    """The kubernetes client's core API on this module's sandbox."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox_with_prometheus.kubeconfig), client_configuration=configuration
    )
    with kubernetes.client.ApiClient(configuration) as client:
        yield kubernetes.client.CoreV1Api(client)


def _targets(sandbox: Sandbox) -> list[dict[str, Any]]:
    path = pathlib.Path(sandbox.state_dir) / "prometheus" / "targets.json"
    targets: list[dict[str, Any]] = json.loads(path.read_text())
    return targets


def test_env_points_the_operator_at_the_sandbox_prometheus(
    sandbox_with_prometheus: Sandbox,
) -> None:
    env = sandbox_with_prometheus.env()

    assert env["MLOPS_PROMETHEUS_URL"] == sandbox_with_prometheus.prometheus_url
    assert "MLOPS_PROMETHEUS_URL" in sandbox_with_prometheus.env_file.read_text()


def test_a_running_annotated_pod_is_scraped_and_dropped_when_deleted(
    sandbox_with_prometheus: Sandbox, core: Any, metrics_port: int
) -> None:
    sandbox = sandbox_with_prometheus
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "iris-predictor-x1",
            "labels": {"mlops.dev/model": "iris"},
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(metrics_port),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {"containers": [{"name": "server", "image": "runtime"}]},
    }
    core.create_namespaced_pod("default", pod)
    assert _targets(sandbox) == []  # not Running yet

    core.patch_namespaced_pod_status(
        "iris-predictor-x1", "default", {"status": {"phase": "Running", "podIP": "127.0.0.1"}}
    )
    wait_for("the pod in the targets file", lambda: _targets(sandbox), timeout=10)

    query = 'max(demo_online_accuracy{namespace="default", mlops_dev_model="iris"})'

    def scraped() -> float | None:
        return asyncio.run(query_scalar(sandbox.prometheus_url, query)).value

    assert wait_for("Prometheus to scrape the pod", scraped, timeout=20, interval=0.2) == 0.75

    core.delete_namespaced_pod("iris-predictor-x1", "default")
    wait_for("the pod gone from the targets file", lambda: _targets(sandbox) == [], timeout=10)
