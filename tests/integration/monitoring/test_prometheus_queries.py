"""The operator's PromQL client against a real Prometheus scraping two metrics endpoints."""

from __future__ import annotations

import asyncio
import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from mlops_operator.api.online import CORRECT, LABELLED
from mlops_operator.monitoring.aggregate import aggregate
from mlops_operator.monitoring.measure import PrometheusError, query_scalar, scrape
from mlops_sandbox.prometheus import PrometheusServer

REQUESTS = {"pod-a": 3, "pod-b": 4}
FEEDBACK = {"pod-a": (90, 100), "pod-b": (0, 10)}
"""Correct and labelled samples in each pod's window: a busy replica that is right and a
quiet one that is wrong, so averaging the pods' accuracies (0.45) is not the accuracy (0.82)."""
DASHBOARD = (
    pathlib.Path(__file__).parents[3] / "charts/mlops-operator/dashboards/mlops-operator.json"
)


def _pod(name: str, port: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"mlops.dev/model": "iris"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)},
        },
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }


@pytest.fixture(scope="module")
def pods() -> Iterator[dict[str, int]]:
    """Two "pods": metrics endpoints on loopback, each with its own request count."""
    ports: dict[str, int] = {}
    servers = []
    for name, count in REQUESTS.items():
        registry = CollectorRegistry()
        Counter("demo_requests", "Requests served.", registry=registry).inc(count)
        for metric, value in zip((CORRECT, LABELLED), FEEDBACK[name], strict=True):
            gauge = Gauge(metric, metric, ["model", "version"], registry=registry)
            gauge.labels(model="iris", version="1").set(value)
        correct, labelled = FEEDBACK[name]
        accuracy = Gauge(
            "mlops_online_accuracy", "Accuracy.", ["model", "version"], registry=registry
        )
        accuracy.labels(model="iris", version="1").set(
            correct / labelled
        )  # as the server derives it
        server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        servers.append((server, thread))
        ports[name] = server.server_address[1]
    yield ports
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, pods: dict[str, int]
) -> Iterator[PrometheusServer]:
    """A Prometheus scraping both pods, returned once it has scraped each of them."""
    with PrometheusServer(tmp_path_factory.mktemp("prometheus")) as server:
        server.update_targets([_pod(name, port) for name, port in pods.items()])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            result = asyncio.run(query_scalar(server.url, 'sum(up{job="sandbox-pods"})'))
            if result.value == len(pods):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"Prometheus did not scrape both pods: {server.log_file.read_text()}")
        yield server


async def test_an_aggregated_query_returns_the_sum_over_pods(prometheus: PrometheusServer) -> None:
    result = await query_scalar(prometheus.url, 'sum(demo_requests_total{namespace="shop"})')

    assert result.value == sum(REQUESTS.values())
    assert result.message == ""


def _dashboard_query(title: str) -> str:
    """A panel's query from the chart's Grafana dashboard, every variable set to All."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    (expr,) = [t["expr"] for p in panels if p.get("title") == title for t in p["targets"]]
    return str(expr).replace("$namespace", ".*").replace("$model", ".*")


async def test_the_dashboards_accuracy_is_the_accuracy_the_operator_judges(
    prometheus: PrometheusServer, pods: dict[str, int]
) -> None:
    texts = {name: await scrape(f"http://127.0.0.1:{port}/metrics") for name, port in pods.items()}
    judged = aggregate(texts, "iris", None).measurements["accuracy"]

    shown = await query_scalar(prometheus.url, _dashboard_query("Online accuracy"))

    assert judged is not None and judged.value == pytest.approx(90 / 110)
    assert shown.value == pytest.approx(judged.value)


async def test_series_carry_the_pods_sanitized_labels(prometheus: PrometheusServer) -> None:
    query = 'demo_requests_total{pod="pod-b", mlops_dev_model="iris", job="sandbox-pods"}'

    assert (await query_scalar(prometheus.url, query)).value == REQUESTS["pod-b"]


async def test_a_query_over_several_series_asks_to_aggregate(prometheus: PrometheusServer) -> None:
    result = await query_scalar(prometheus.url, "demo_requests_total")

    assert result.value is None
    assert "2 series" in result.message and "sum(" in result.message


async def test_a_query_matching_nothing_says_no_samples(prometheus: PrometheusServer) -> None:
    result = await query_scalar(prometheus.url, 'demo_requests_total{pod="nobody"}')

    assert result.value is None
    assert result.message == "query returned no samples"


async def test_a_scalar_query_returns_its_value(prometheus: PrometheusServer) -> None:
    assert (await query_scalar(prometheus.url, "scalar(sum(demo_requests_total)) / 2")).value == (
        sum(REQUESTS.values()) / 2
    )


async def test_nan_is_no_value(prometheus: PrometheusServer) -> None:
    result = await query_scalar(prometheus.url, "sum(demo_requests_total) * 0 / 0")

    assert result.value is None
    assert result.message == "query returned NaN"


async def test_an_invalid_query_raises_with_prometheus_own_error(
    prometheus: PrometheusServer,
) -> None:
    with pytest.raises(PrometheusError) as caught:
        await query_scalar(prometheus.url, "sum(")

    message = str(caught.value)
    assert prometheus.url in message and "HTTP 400" in message and "parse error" in message


async def test_a_dead_address_raises_naming_it(dead_endpoint: str) -> None:
    with pytest.raises(PrometheusError, match=f"Cannot reach Prometheus at {dead_endpoint}"):
        await query_scalar(dead_endpoint, "up", timeout=2)


async def test_an_address_that_is_not_prometheus_raises(pods: dict[str, int]) -> None:
    not_prometheus = f"http://127.0.0.1:{pods['pod-a']}/metrics"

    with pytest.raises(PrometheusError, match="not its API"):
        await query_scalar(not_prometheus, "up")


async def test_scrape_returns_a_pods_metrics_text(pods: dict[str, int]) -> None:
    text = await scrape(f"http://127.0.0.1:{pods['pod-a']}/metrics")

    assert "demo_requests_total 3.0" in text


async def test_scrape_of_a_dead_pod_raises(dead_endpoint: str) -> None:
    with pytest.raises(PrometheusError, match="Cannot reach the metrics endpoint"):
        await scrape(f"{dead_endpoint}/metrics", timeout=2)


def test_the_targets_file_lists_the_pods(prometheus: PrometheusServer) -> None:
    text = pathlib.Path(prometheus.targets_file).read_text()

    assert '"127.0.0.1:' in text and '"mlops_dev_model": "iris"' in text
