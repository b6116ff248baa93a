"""The operator's own Prometheus metrics: what it reconciled, what failed, what it decided."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, start_http_server

RECONCILES = Counter(
    "mlops_operator_reconciles_total", "Reconciles run, by resource kind.", ["kind"]
)
ERRORS = Counter(
    "mlops_operator_errors_total", "Reconciles that failed and will be retried.", ["kind"]
)
EVALUATIONS = Counter(
    "mlops_operator_evaluations_total",
    "Metric policy evaluations, by verdict.",
    ["namespace", "service", "policy", "verdict"],
)
ROLLBACKS = Counter(
    "mlops_operator_rollbacks_total", "Versions rolled back.", ["namespace", "service"]
)
RETRAININGS = Counter(
    "mlops_operator_retrainings_total", "Retrainings started.", ["namespace", "service"]
)
SERVED_VERSION = Gauge(
    "mlops_operator_served_version",
    "The model version each InferenceService serves.",
    ["namespace", "service", "model"],
)

ASYNCIO_TASKS = Gauge(
    "mlops_operator_asyncio_tasks",
    "asyncio tasks alive in the operator's event loop (a steady count means no task leak).",
)


def count_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``ASYNCIO_TASKS`` report the tasks of ``loop``, read at each scrape."""
    ASYNCIO_TASKS.set_function(lambda: len(asyncio.all_tasks(loop)))


def serve(port: int) -> None:
    """Expose the metrics on ``0.0.0.0:port`` in a background thread."""
    start_http_server(port)
