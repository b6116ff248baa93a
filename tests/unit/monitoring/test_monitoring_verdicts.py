from __future__ import annotations

from collections.abc import Sequence

import pytest

from mlops_operator.api.inferenceservice import MetricPolicy, MetricResult, PrometheusSource
from mlops_operator.monitoring.aggregate import Measurement
from mlops_operator.monitoring.judge import decide, evaluate_metric

ACCURACY = MetricPolicy(
    name="accuracy", builtin="accuracy", min=0.85, min_samples=100, failure_limit=3
)
LATENCY = MetricPolicy(name="p99", builtin="latencyP99", max=0.5, min_samples=10, failure_limit=2)
PROMQL = MetricPolicy(
    name="errors", prometheus=PrometheusSource(query="vector(1)"), max=0.05, failure_limit=1
)
BAND = MetricPolicy(name="ratio", builtin="drift", min=0.2, max=0.8, min_samples=0)


def prior(streak: int, name: str = "accuracy") -> MetricResult:
    return MetricResult(name=name, verdict="Breached", consecutive_breaches=streak)


@pytest.mark.parametrize(
    ("policy", "measurement", "streak", "verdict", "after"),
    [
        (ACCURACY, Measurement(0.90, 240, ""), 0, "Healthy", 0),
        (ACCURACY, Measurement(0.85, 240, ""), 0, "Healthy", 0),
        (ACCURACY, Measurement(0.62, 240, ""), 0, "Breached", 1),
        (ACCURACY, Measurement(0.62, 240, ""), 2, "Breached", 3),
        (ACCURACY, Measurement(0.90, 240, ""), 2, "Healthy", 0),
        (ACCURACY, Measurement(0.10, 99, ""), 2, "Inconclusive", 2),
        (ACCURACY, Measurement(0.10, 100, ""), 2, "Breached", 3),
        (ACCURACY, Measurement(None, 0, "no labelled feedback yet"), 1, "Inconclusive", 1),
        (ACCURACY, Measurement(float("nan"), 500, ""), 1, "Inconclusive", 1),
        (ACCURACY, None, 2, "Error", 2),
        (LATENCY, Measurement(0.51, 10, ""), 0, "Breached", 1),
        (LATENCY, Measurement(0.50, 10, ""), 1, "Healthy", 0),
        (BAND, Measurement(0.1, 0, ""), 0, "Breached", 1),
        (BAND, Measurement(0.9, 0, ""), 0, "Breached", 1),
        (BAND, Measurement(0.5, 0, ""), 0, "Healthy", 0),
        # PromQL: samples carry no meaning, minSamples (default 100) is not applied
        (PROMQL, Measurement(0.2, None, ""), 0, "Breached", 1),
        (PROMQL, Measurement(0.01, None, ""), 0, "Healthy", 0),
    ],
)
def test_verdicts_and_streaks(
    policy: MetricPolicy,
    measurement: Measurement | None,
    streak: int,
    verdict: str,
    after: int,
) -> None:
    result = evaluate_metric(policy, measurement, prior(streak, policy.name) if streak else None)
    assert result.name == policy.name
    assert result.verdict == verdict
    assert result.consecutive_breaches == after


def test_messages_say_value_threshold_and_streak() -> None:
    breach = evaluate_metric(ACCURACY, Measurement(0.62, 240, ""), prior(2))
    assert breach.message == "accuracy 0.62 < min 0.85 (3/3 consecutive breaches over 240 samples)."
    assert (breach.value, breach.samples) == (0.62, 240)
    latency = evaluate_metric(LATENCY, Measurement(0.734, 50, ""), None)
    assert latency.message == "p99 0.734 > max 0.5 (1/2 consecutive breaches over 50 samples)."
    promql = evaluate_metric(PROMQL, Measurement(0.2, None, ""), None)
    assert promql.message == "errors 0.2 > max 0.05 (1/1 consecutive breaches)."
    recovered = evaluate_metric(ACCURACY, Measurement(0.9, 240, ""), prior(2))
    assert recovered.message == (
        "accuracy 0.9 within min 0.85 over 240 samples; a streak of 2 breaches reset."
    )
    few = evaluate_metric(ACCURACY, Measurement(0.5, 40, ""), prior(2))
    assert few.message == (
        "accuracy 0.5 over 40 samples, fewer than minSamples 100: not judged; streak stays at 2/3."
    )
    failed = evaluate_metric(ACCURACY, None, None, error="Prometheus unreachable")
    assert failed.message == (
        "accuracy could not be measured: Prometheus unreachable; streak stays at 0/3."
    )
    empty = evaluate_metric(ACCURACY, Measurement(None, 0, "no labelled feedback yet"), None)
    assert "no labelled feedback yet" in empty.message


def run(policy: MetricPolicy, values: Sequence[float | None]) -> list[MetricResult]:
    """Evaluate a sequence of measurements (None = too few samples) one after another."""
    results: list[MetricResult] = []
    previous = None
    for value in values:
        measurement = Measurement(value, 240 if value is not None else 5, "")
        previous = evaluate_metric(policy, measurement, previous)
        results.append(previous)
    return results


def test_a_flapping_metric_never_reaches_its_failure_limit() -> None:
    results = run(ACCURACY, [0.6, 0.9, 0.6, 0.9, 0.6, 0.9, 0.6, 0.9, 0.6, 0.9])
    assert [r.verdict for r in results[:2]] == ["Breached", "Healthy"]
    assert max(r.consecutive_breaches for r in results) == 1
    assert not any(decide([ACCURACY], [r]).degraded for r in results)


def test_breaches_separated_by_inconclusive_gaps_still_reach_the_limit() -> None:
    results = run(ACCURACY, [0.6, None, 0.6, None, None, 0.6])
    assert [r.consecutive_breaches for r in results] == [1, 1, 2, 2, 2, 3]
    assert [r.verdict for r in results] == [
        "Breached",
        "Inconclusive",
        "Breached",
        "Inconclusive",
        "Inconclusive",
        "Breached",
    ]
    assert decide([ACCURACY], [results[-1]]).degraded
    assert not decide([ACCURACY], [results[-2]]).degraded


def test_measurement_errors_between_breaches_do_not_reset_the_streak() -> None:
    first = evaluate_metric(ACCURACY, Measurement(0.6, 240, ""), None)
    gap = evaluate_metric(ACCURACY, None, first)
    second = evaluate_metric(ACCURACY, Measurement(0.6, 240, ""), gap)
    assert (gap.verdict, second.consecutive_breaches) == ("Error", 2)


def test_recovery_resets_the_streak() -> None:
    results = run(ACCURACY, [0.6, 0.6, 0.9, 0.6, 0.6])
    assert [r.consecutive_breaches for r in results] == [1, 2, 0, 1, 2]


def test_degraded_when_any_policy_reaches_its_failure_limit() -> None:
    accuracy = evaluate_metric(ACCURACY, Measurement(0.62, 240, ""), prior(2))
    latency = evaluate_metric(LATENCY, Measurement(0.7, 50, ""), None)
    decision = decide([ACCURACY, LATENCY], [accuracy, latency])
    assert decision.degraded
    assert decision.breaching == [accuracy]
    assert decision.summary == (
        "accuracy 0.62 < min 0.85 (3/3 consecutive breaches over 240 samples)."
    )


def test_not_degraded_below_the_limit_with_a_tally() -> None:
    accuracy = evaluate_metric(ACCURACY, Measurement(0.62, 240, ""), prior(1))
    latency = evaluate_metric(LATENCY, Measurement(0.1, 2, ""), None)
    errors = evaluate_metric(PROMQL, None, None)
    decision = decide([ACCURACY, LATENCY, PROMQL], [accuracy, latency, errors])
    assert not decision.degraded and decision.breaching == []
    assert decision.summary == (
        "No policy reached its failure limit (1 breached, 1 error, 1 inconclusive)."
    )


def test_results_of_removed_policies_are_ignored() -> None:
    stale = prior(10, "removed")
    assert not decide([ACCURACY], [stale]).degraded
