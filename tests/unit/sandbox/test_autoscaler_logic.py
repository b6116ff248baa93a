"""The sandbox HPA controller's decisions, pure: the replica calculator (ratio, tolerance,
missing and unready pods) and the normalisation (bounds, stabilisation, scale-up limit)."""

from __future__ import annotations

import pytest

from mlops_sandbox.autoscaler import (
    PodMetric,
    Recommendation,
    bounded,
    counter_rate,
    counter_total,
    metric_replicas,
    normalize,
    quantity_text,
)


def pods(*values: float | None, ready: bool = True) -> list[PodMetric]:
    return [PodMetric(f"p{i}", ready, v) for i, v in enumerate(values)]


def test_load_above_the_target_asks_for_ceil_of_current_times_ratio() -> None:
    # 2 pods at 5 rps each, target 2 → ratio 2.5 → ceil(2 × 2.5) = 5.
    assert metric_replicas(2, pods(5, 5), 2.0) == 5
    # 3 pods averaging 2.1 rps against 2: 1.05 is within the tolerance: no change.
    assert metric_replicas(3, pods(2.0, 2.1, 2.2), 2.0) == 3
    # Just outside it: 1.15 → ceil(3 × 1.15) = 4.
    assert metric_replicas(3, pods(2.3, 2.3, 2.3), 2.0) == 4


def test_no_load_asks_for_nothing_and_the_bounds_keep_the_minimum() -> None:
    assert metric_replicas(3, pods(0, 0, 0), 2.0) == 0
    decided = normalize(
        current=3,
        recommended=0,
        min_replicas=1,
        max_replicas=3,
        history=[],
        now=100.0,
        scale_up_window=0,
        scale_down_window=0,
    )
    assert (decided.replicas, decided.limited) == (1, "TooFewReplicas")


def test_no_pod_with_a_value_means_the_metric_is_unavailable() -> None:
    assert metric_replicas(2, pods(None, None), 2.0) is None


def test_pods_without_a_value_never_drive_a_scale_down() -> None:
    # One pod idle, one not measured yet (counted as at the target): (0 + 2) / 2 / 2 = 0.5,
    # still a scale-down: ceil(0.5 × 2) = 1.
    assert metric_replicas(2, pods(0.0, None), 2.0) == 1
    # One pod slightly low, one missing: filling it with the target brings the ratio
    # within the tolerance, so nothing changes.
    assert metric_replicas(2, pods(1.7, None), 2.0) == 2


def test_pods_without_a_value_count_as_idle_on_a_scale_up() -> None:
    # 8 rps on one pod, one not measured: (8 + 0) / 2 / 2 = 2 → 4 replicas, not 4 × 1.
    assert metric_replicas(2, pods(8.0, None), 2.0) == 4
    # A scale-up that the missing pod would turn into a scale-down keeps the count.
    assert metric_replicas(2, pods(2.5, None), 2.0) == 2


def test_cpu_utilisation_is_use_over_request_and_unready_pods_do_not_count_up() -> None:
    half_core = [PodMetric("a", True, 0.2, request=0.25), PodMetric("b", True, 0.2, request=0.25)]
    # 80% of the request against a 40% target → ratio 2 → 4 replicas.
    assert metric_replicas(2, half_core, 40, utilization=True) == 4
    starting = [*half_core, PodMetric("c", False, 0.25, request=0.25)]
    # The unready pod counts as using nothing on a scale-up: (0.4 / 0.75 × 100) / 40 ≈ 1.33.
    assert metric_replicas(3, starting, 40, utilization=True) == 4


def test_scale_down_waits_for_the_highest_recommendation_in_the_window() -> None:
    history = [Recommendation(95.0, 3), Recommendation(98.0, 2)]
    args = {"min_replicas": 1, "max_replicas": 5, "scale_up_window": 0}
    held = normalize(
        current=3, recommended=1, history=history, now=100.0, **args, scale_down_window=10
    )
    assert held.replicas == 3
    later = normalize(
        current=3, recommended=1, history=history, now=106.0, **args, scale_down_window=10
    )
    assert later.replicas == 2
    gone = normalize(
        current=3, recommended=1, history=history, now=120.0, **args, scale_down_window=10
    )
    assert gone.replicas == 1


def test_scale_up_is_immediate_but_limited_and_bounded() -> None:
    args = {"history": [], "now": 0.0, "scale_up_window": 0, "scale_down_window": 300}
    assert normalize(current=1, recommended=3, min_replicas=1, max_replicas=3, **args).replicas == 3
    capped = normalize(current=1, recommended=9, min_replicas=1, max_replicas=3, **args)
    assert (capped.replicas, capped.limited) == (3, "TooManyReplicas")
    # From 2 pods at most 2 + max(2, 4) = 6 at once.
    assert (
        normalize(current=2, recommended=20, min_replicas=1, max_replicas=50, **args).replicas == 6
    )


def test_counts_outside_the_bounds_are_clamped_before_any_metric() -> None:
    above, below, disabled = bounded(5, 1, 3), bounded(1, 2, 3), bounded(0, 1, 3)
    assert above is not None and above.replicas == 3
    assert below is not None and below.replicas == 2
    assert disabled is not None and disabled.replicas == 0  # a target at 0 is left alone
    assert bounded(2, 1, 3) is None


def test_a_counter_rate_over_the_window_and_none_after_a_reset() -> None:
    assert counter_rate([(0.0, 10.0)]) is None
    assert counter_rate([(0.0, 10.0), (1.0, 12.0), (2.0, 16.0)]) == pytest.approx(3.0)
    assert counter_rate([(0.0, 10.0), (1.0, 2.0)]) is None


def test_the_requests_counter_is_summed_over_its_series() -> None:
    page = (
        "# HELP mlops_requests_total Inference requests.\n"
        "# TYPE mlops_requests_total counter\n"
        'mlops_requests_total{model="m",version="1",protocol="v2",code="200"} 7.0\n'
        'mlops_requests_total{model="m",version="1",protocol="v1",code="400"} 2.0\n'
        'mlops_requests_created{model="m",version="1",protocol="v2",code="200"} 1.7e9\n'
    )
    assert counter_total(page, "mlops_requests_total") == 9.0
    assert counter_total(page, "other_total") is None


def test_quantities_are_written_in_thousandths() -> None:
    assert quantity_text(3.16666) == "3166m"
    assert quantity_text(2.0) == "2"
    assert quantity_text(0.0) == "0"
