"""Autoscaling for real: an InferenceService with ``spec.autoscaling`` gets a
HorizontalPodAutoscaler; under HTTP load the sandbox's HPA controller (scraping the model
servers' own request counters) scales the predictor out, more pods answer, and once the load
stops it scales back in, while the operator reports each step and never resets the scale."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops_sandbox.process import wait_for

pytestmark = pytest.mark.timeout(300)

ADDRESS = "sandbox.mlops.dev/address"
PREDICTOR = "cancer-predictor"


class Load:
    """Inference requests at about ``rate`` per second from a thread, until stopped or
    ``limit`` seconds have passed; counts the answers."""

    def __init__(self, base: str, row: list[float], rate: float, limit: float) -> None:
        self._base, self._row, self._pause, self._limit = base, row, 1.0 / rate, limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self.answered = 0

    def _run(self) -> None:
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, len(self._row)],
                    "datatype": "FP64",
                    "data": self._row,
                }
            ]
        }
        deadline = time.monotonic() + self._limit
        # A connection per request, like many clients: the Service balances connections.
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self._base, timeout=10, limits=fresh) as http:
            while time.monotonic() < deadline:
                try:
                    if http.post("/v2/models/cancer/infer", json=body).status_code == 200:
                        self.answered += 1
                except httpx.HTTPError:
                    pass  # a pod going away mid-request; the next one goes elsewhere
                if self._stop.wait(self._pause):  # pacing the load, not synchronisation
                    return

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def requests_served(pod: Any) -> float:
    """The inference requests one pod has answered, from its own /metrics."""
    text = httpx.get(f"http://{pod.status.pod_ip}:8080/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlops_requests_total"
    )


@pytest.fixture
def apis(kube: Any) -> Iterator[tuple[Any, Any, Any]]:
    yield (
        kubernetes.client.AppsV1Api(kube),
        kubernetes.client.CoreV1Api(kube),
        kubernetes.client.AutoscalingV2Api(kube),
    )


def test_the_predictor_scales_out_under_load_and_back_in_after(
    start_operator: Any,
    resources: Any,
    cancer_csv: str,
    namespace: str,
    apis: tuple[Any, Any, Any],
) -> None:
    from sklearn.datasets import load_breast_cancer

    apps, core, autoscaling = apis
    start_operator()
    resources.create(
        "trainingjobs",
        "TrainingJob",
        "cancer-a",
        {
            "model": "cancer",
            "dataset": {"uri": cancer_csv, "target": "target"},
            "estimator": {
                "className": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 10, "max_depth": 3},
            },
            "backoffLimit": 0,
        },
    )
    resources.wait_status("trainingjobs", "cancer-a", lambda s: s.get("phase") == "Succeeded", "ok")
    resources.create(
        "inferenceservices",
        "InferenceService",
        "cancer",
        {
            "model": "cancer",
            "replicas": 1,
            "autoscaling": {
                "minReplicas": 1,
                "maxReplicas": 3,
                "targetRequestsPerSecond": 2,
                "scaleDownStabilizationSeconds": 5,
            },
        },
    )
    resources.wait_status(
        "inferenceservices", "cancer", lambda s: s.get("phase") == "Ready", "to be Ready"
    )
    hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(PREDICTOR, namespace)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 3)
    base = wait_for(
        "the predictor's address",
        lambda: (core.read_namespaced_service(PREDICTOR, namespace).metadata.annotations or {}).get(
            ADDRESS
        ),
        timeout=30,
    )
    row = load_breast_cancer().data[0].tolist()

    def ready_pods() -> list[Any]:
        listed = core.list_namespaced_pod(
            namespace, label_selector="mlops.dev/inferenceservice=cancer"
        )
        return [
            p
            for p in listed.items
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]

    started = time.monotonic()
    with Load(base, row, rate=15, limit=150) as load:
        # ~15 requests/s against a target of 2 per replica: the autoscaler wants the maximum.
        isvc = resources.wait_status(
            "inferenceservices",
            "cancer",
            lambda s: s.get("desiredReplicas", 0) >= 2 and s.get("readyReplicas", 0) >= 2,
            "to scale out to at least 2 ready replicas",
            timeout=120,
        )
        scaled_out = time.monotonic() - started
        assert isvc["status"]["autoscaler"]["currentMetric"].endswith("requests/s")
        assert apps.read_namespaced_deployment(PREDICTOR, namespace).spec.replicas >= 2
        # More than one pod answers: the Service spreads the load over the new replicas.
        wait_for(
            "two pods to have answered requests",
            lambda: sum(1 for pod in ready_pods() if requests_served(pod) > 0) >= 2,
            timeout=60,
        )
    assert load.answered > 0

    stopped = time.monotonic()
    isvc = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: s.get("desiredReplicas") == 1 and s.get("readyReplicas") == 1,
        "to scale back in to 1 replica",
        timeout=120,
    )
    scaled_in = time.monotonic() - stopped
    assert apps.read_namespaced_deployment(PREDICTOR, namespace).spec.replicas == 1
    assert resources.condition(isvc["status"], "Ready")["status"] == "True"
    print(f"scaled out after {scaled_out:.1f}s of load, back in {scaled_in:.1f}s after it stopped")
