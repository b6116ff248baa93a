"""Promotion gates: pure evaluation of held-out metrics against thresholds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlops_operator.api.modelversion import GateResult
from mlops_operator.api.trainingjob import Gate

MAIN_METRICS = ("accuracy", "r2", "f1", "rocAuc", "rmse", "mae")
"""Preference order of the headline metric shown by ``kubectl get``."""


def evaluate_gates(gates: Sequence[Gate], metrics: Mapping[str, float]) -> list[GateResult]:
    """Check every gate; a gate on a metric that was not reported fails."""
    results = []
    for gate in gates:
        value = metrics.get(gate.metric)
        passed = (
            value is not None
            and (gate.min is None or value >= gate.min)
            and (gate.max is None or value <= gate.max)
        )
        results.append(
            GateResult(metric=gate.metric, value=value, min=gate.min, max=gate.max, passed=passed)
        )
    return results


def describe_failures(results: Sequence[GateResult]) -> str:
    """A sentence naming every failed gate, e.g. ``accuracy 0.81 < 0.9``."""
    parts = []
    for r in results:
        if r.passed:
            continue
        if r.value is None:
            parts.append(f"{r.metric} was not reported")
        elif r.min is not None and r.value < r.min:
            parts.append(f"{r.metric} {r.value:.4g} < {r.min:g}")
        elif r.max is not None:
            parts.append(f"{r.metric} {r.value:.4g} > {r.max:g}")
    return "; ".join(parts)


def main_metric(metrics: Mapping[str, float]) -> str | None:
    """The headline metric as ``name=value`` for printer columns."""
    for name in MAIN_METRICS:
        if name in metrics:
            return f"{name}={metrics[name]:.4f}"
    if metrics:
        name = sorted(metrics)[0]
        return f"{name}={metrics[name]:.4f}"
    return None
