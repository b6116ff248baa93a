"""Reading metrics: PromQL queries against Prometheus, and pods' ``/metrics`` pages."""

from mlops_operator.monitoring.prometheus import (
    PrometheusError,
    PromResult,
    interpret_query_response,
    query_scalar,
    scrape,
)

__all__ = [
    "PromResult",
    "PrometheusError",
    "interpret_query_response",
    "query_scalar",
    "scrape",
]
