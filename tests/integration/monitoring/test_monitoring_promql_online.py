"""The PromQL of docs/monitoring.md against a real Prometheus scraping two model servers'
window series: F1, per-class recall, RMSE and R² across replicas equal scikit-learn's over the
pooled feedback."""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from sklearn.metrics import mean_squared_error, precision_recall_fscore_support, r2_score

from mlops_operator.monitoring.measure import query_scalar
from mlops_operator.runtime.server.feedback import RollingScore
from mlops_operator.runtime.server.metrics import ServerMetrics
from mlops_sandbox.process import wait_for
from mlops_sandbox.prometheus import PrometheusServer

DOC = Path(__file__).resolve().parents[3] / "docs" / "monitoring.md"


def documented_queries() -> dict[str, str]:
    """The doc's ``promql`` blocks by their first line's comment."""
    blocks = re.findall(r"```promql\n# (.+?)\n(.*?)```", DOC.read_text(), re.S)
    return {title: query for title, query in blocks}


@pytest.fixture
def replicas() -> Iterator[tuple[list[dict[str, Any]], dict[str, float]]]:
    """Two "cancer" classifier pods and two "diabetes" regressor pods with unequal feedback,
    as pods for Prometheus' targets; and the metrics over the pooled feedback."""
    rng = random.Random(9)
    servers = []
    pods = []
    truth: list[int] = []
    guess: list[int] = []
    ys: list[float] = []
    ps: list[float] = []
    for i, (size, mean) in enumerate(((80, 20.0), (15, 60.0))):
        registry = CollectorRegistry()
        classifier = ServerMetrics("cancer", "2", registry)
        classifier.model_loaded(regression=False)
        window = RollingScore(regression=False)
        labels = rng.choices([0, 1, 2], k=size)
        predicted = [y if rng.random() < 0.7 else rng.choice([0, 1]) for y in labels]
        classifier.feedback(window.add(predicted, labels), window)
        truth += labels
        guess += predicted
        regressor = ServerMetrics("diabetes", "1", second := CollectorRegistry())
        regressor.model_loaded(regression=True)
        errors = RollingScore(regression=True)
        y = [rng.gauss(mean, 5.0) for _ in range(size)]
        p = [v + rng.gauss(0.0, 3.0) for v in y]
        regressor.feedback(errors.add(p, y), errors)
        ys += y
        ps += p
        for j, served in enumerate((registry, second)):
            server, thread = start_http_server(0, addr="127.0.0.1", registry=served)
            servers.append((server, thread))
            pods.append(
                {
                    "metadata": {
                        "namespace": "ns",
                        "name": f"pod-{i}-{j}",
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(server.server_address[1]),
                        },
                    },
                    "status": {"phase": "Running", "podIP": "127.0.0.1"},
                }
            )
    f1 = precision_recall_fscore_support(truth, guess, average="macro", zero_division=0)[2]
    recall_0 = precision_recall_fscore_support(truth, guess, labels=[0], zero_division=0)[1][0]
    expected = {
        "macro F1 over every replica": f1,
        'recall of class "0" over every replica': recall_0,
        "RMSE over every replica": math.sqrt(mean_squared_error(ys, ps)),
        "R² over every replica": r2_score(ys, ps),
    }
    yield pods, expected
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_documented_promql_gives_the_pooled_metrics(
    tmp_path: Path, replicas: tuple[list[dict[str, Any]], dict[str, float]]
) -> None:
    pods, expected = replicas
    queries = documented_queries()
    assert set(queries) == set(expected)
    with PrometheusServer(tmp_path / "prometheus") as prometheus:
        prometheus.update_targets(pods)

        def value(query: str) -> float | None:
            return asyncio.run(query_scalar(prometheus.url, query)).value

        both = "count(mlops_labelled_samples) == 4"
        wait_for("Prometheus to scrape both pods", lambda: value(both), timeout=30, interval=0.5)
        for title, query in queries.items():
            assert value(query) == pytest.approx(expected[title]), title
