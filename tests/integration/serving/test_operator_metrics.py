"""The operator exports its own metrics: reconciles by kind and the version each service serves."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from mlops_sandbox.process import wait_for

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_operator_metrics_count_reconciles_and_show_the_served_version(
    start_operator: Any, resources: Any, cancer_csv: str
) -> None:
    port = free_port()
    start_operator(MLOPS_METRICS_PORT=str(port))
    resources.create(
        "trainingjobs",
        "TrainingJob",
        "cancer-a",
        {
            "model": "cancer",
            "dataset": {"uri": cancer_csv, "target": "target"},
            "estimator": {"className": "sklearn.tree.DecisionTreeClassifier"},
        },
    )
    resources.create("inferenceservices", "InferenceService", "cancer", {"model": "cancer"})
    resources.wait_status(
        "inferenceservices", "cancer", lambda s: s.get("currentVersion") == 1, "to serve v1"
    )

    def scraped() -> str | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        return text if "mlops_operator_served_version{" in text else None

    text = wait_for("the operator's metrics", scraped, timeout=30)
    assert 'mlops_operator_reconciles_total{kind="trainingjobs"}' in text
    line = next(x for x in text.splitlines() if x.startswith("mlops_operator_served_version{"))
    assert 'service="cancer"' in line and line.endswith(" 1.0")
