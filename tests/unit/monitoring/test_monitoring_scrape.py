from __future__ import annotations

import json
import math

import pytest
from prometheus_client import CollectorRegistry

from mlops_operator.monitoring.aggregate import (
    FIRST_SCRAPE,
    Snapshot,
    aggregate,
    histogram_quantile,
)
from mlops_operator.runtime.server.feedback import RollingScore
from mlops_operator.runtime.server.metrics import ServerMetrics, render

INF = math.inf
BOUNDS = (0.1, 0.25, 0.5, INF)


def exposition(
    *,
    ok: float = 0.0,
    failed: float = 0.0,
    client_errors: float = 0.0,
    buckets: tuple[float, ...] = (0, 0, 0, 0),
    correct: float | None = None,
    labelled: float = 0.0,
    psi: float | None = None,
    rows: float = 0.0,
    model: str = "iris",
) -> str:
    """A model server's ``/metrics``, requests split over two protocols, plus another model's
    series that must be ignored."""
    lines = [
        "# TYPE mlops_requests counter",
        f'mlops_requests_total{{model="{model}",version="2",protocol="v1",code="200"}} {ok / 2}',
        f'mlops_requests_total{{model="{model}",version="2",protocol="v2",code="200"}} {ok / 2}',
        f'mlops_requests_total{{model="{model}",version="2",protocol="v2",code="500"}} {failed}',
        f'mlops_requests_total{{model="{model}",version="2",protocol="v1",code="422"}} '
        f"{client_errors}",
        'mlops_requests_total{model="other",version="1",protocol="v1",code="500"} 1000',
        "# TYPE mlops_request_duration_seconds histogram",
    ]
    for le, count in zip(BOUNDS, buckets, strict=True):
        text = "+Inf" if le == INF else str(le)
        lines.append(
            f'mlops_request_duration_seconds_bucket{{model="{model}",version="2",'
            f'protocol="v1",le="{text}"}} {count}'
        )
    lines.append(
        'mlops_request_duration_seconds_bucket{model="other",version="1",protocol="v1",'
        'le="+Inf"} 1000'
    )
    lines += [
        "# TYPE mlops_labelled_samples gauge",
        f'mlops_labelled_samples{{model="{model}",version="2"}} {labelled}',
        "# TYPE mlops_drift_window_rows gauge",
        f'mlops_drift_window_rows{{model="{model}",version="2"}} {rows}',
        'mlops_labelled_samples{model="other",version="1"} 1000',
    ]
    if correct is not None:
        lines.append(f'mlops_online_window_correct{{model="{model}",version="2"}} {correct}')
    if psi is not None:
        lines.append(f'mlops_drift_psi_max{{model="{model}",version="2"}} {psi}')
    lines.append('mlops_drift_psi_max{model="other",version="1"} 9')
    return "\n".join(lines) + "\n"


def test_accuracy_weights_replicas_by_their_labelled_samples() -> None:
    result = aggregate(
        {
            "a": exposition(correct=90, labelled=100),
            "b": exposition(correct=10, labelled=20),
            "c": exposition(labelled=0),
        },
        "iris",
        None,
    )
    accuracy = result.measurements["accuracy"]
    assert accuracy is not None
    # not the mean of 0.9 and 0.5
    assert accuracy.value == pytest.approx(100 / 120)
    assert accuracy.samples == 120
    assert "from 3 pods" in accuracy.message


@pytest.mark.parametrize(
    ("pods", "samples", "message"),
    [
        ({"a": exposition(), "b": exposition()}, 0, "no labelled feedback yet"),
        ({"a": exposition(labelled=30)}, 30, "not a classifier"),
    ],
)
def test_accuracy_without_feedback_has_no_value(
    pods: dict[str, str], samples: int, message: str
) -> None:
    accuracy = aggregate(pods, "iris", None).measurements["accuracy"]
    assert accuracy is not None
    assert accuracy.value is None
    assert accuracy.samples == samples
    assert message in accuracy.message


def test_drift_of_a_model_without_reference_statistics_says_it_cannot_be_measured() -> None:
    registry = CollectorRegistry()
    ServerMetrics("iris", "2", registry).model_loaded(regression=False, drift=False)
    text = render(registry).decode()
    drift = aggregate({"a": text, "b": text}, "iris", None).measurements["drift"]
    assert drift is not None
    assert drift.value is None
    assert "drift cannot be measured: the model was registered without reference.json" in (
        drift.message
    )
    waiting = aggregate({"a": exposition(rows=0)}, "iris", None).measurements["drift"]
    assert waiting is not None and "no drift window yet" in waiting.message


def test_drift_is_the_worst_pod_over_all_rows() -> None:
    result = aggregate(
        {
            "a": exposition(psi=0.12, rows=400),
            "b": exposition(psi=0.31, rows=100),
            "c": exposition(rows=0),
        },
        "iris",
        None,
    )
    drift = result.measurements["drift"]
    assert drift is not None
    assert drift.value == pytest.approx(0.31)
    assert drift.samples == 500


def test_rates_need_two_scrapes() -> None:
    result = aggregate(
        {"a": exposition(ok=100, failed=5, buckets=(90, 100, 105, 105))}, "iris", None
    )
    for metric in ("errorRate", "latencyP99"):
        measurement = result.measurements[metric]
        assert measurement is not None
        assert (measurement.value, measurement.samples) == (None, 0)
        assert measurement.message == FIRST_SCRAPE


def test_error_rate_is_the_5xx_share_of_the_increase_summed_over_pods() -> None:
    first = aggregate(
        {
            "a": exposition(ok=100, failed=0, client_errors=10),
            "b": exposition(ok=50, failed=5),
        },
        "iris",
        None,
    )
    second = aggregate(
        {
            "a": exposition(ok=180, failed=10, client_errors=20),
            "b": exposition(ok=80, failed=5),
        },
        "iris",
        first.snapshot,
    )
    error_rate = second.measurements["errorRate"]
    assert error_rate is not None
    # a: +80 ok, +10 5xx, +10 4xx; b: +30 ok. A 4xx is the client's fault, not an error here.
    assert error_rate.samples == 130
    assert error_rate.value == pytest.approx(10 / 130)


def test_a_restarted_pod_counts_its_current_value_like_promql_increase() -> None:
    first = aggregate({"a": exposition(ok=100), "b": exposition(ok=1000, failed=50)}, "iris", None)
    second = aggregate(
        {"a": exposition(ok=140), "b": exposition(ok=20, failed=4)}, "iris", first.snapshot
    )
    error_rate = second.measurements["errorRate"]
    assert error_rate is not None
    # a: +40 ok; b restarted: its 24 requests since the restart, not -1026.
    assert error_rate.samples == 64
    assert error_rate.value == pytest.approx(4 / 64)


def test_a_new_pod_counts_all_its_requests_and_a_gone_pod_is_forgotten() -> None:
    first = aggregate({"a": exposition(ok=100), "old": exposition(ok=500)}, "iris", None)
    second = aggregate(
        {"a": exposition(ok=110), "new": exposition(ok=5, failed=5)}, "iris", first.snapshot
    )
    error_rate = second.measurements["errorRate"]
    assert error_rate is not None
    assert error_rate.samples == 20 and error_rate.value == pytest.approx(5 / 20)
    assert set(second.snapshot.pods) == {"a", "new"}


def test_no_requests_between_scrapes_has_no_rate() -> None:
    first = aggregate({"a": exposition(ok=10, buckets=(10, 10, 10, 10))}, "iris", None)
    second = aggregate({"a": exposition(ok=10, buckets=(10, 10, 10, 10))}, "iris", first.snapshot)
    for metric in ("errorRate", "latencyP99"):
        measurement = second.measurements[metric]
        assert measurement is not None
        assert (measurement.value, measurement.samples) == (None, 0)


def test_latency_p99_merges_histogram_increases_across_pods() -> None:
    first = aggregate(
        {
            "a": exposition(buckets=(10, 10, 10, 10)),
            "b": exposition(buckets=(500, 600, 700, 700)),
        },
        "iris",
        None,
    )
    second = aggregate(
        {
            "a": exposition(buckets=(40, 70, 72, 72)),
            # restarted: counts since the restart
            "b": exposition(buckets=(30, 35, 38, 38)),
        },
        "iris",
        first.snapshot,
    )
    latency = second.measurements["latencyP99"]
    assert latency is not None
    # merged increase: le 0.1: 60, 0.25: 95, 0.5: 100, +Inf: 100. Rank 99 falls in
    # (0.25, 0.5], which holds 5 observations, 4 of them below the rank:
    # 0.25 + 0.25 * 4 / 5 = 0.45.
    assert latency.value == pytest.approx(0.45)
    assert latency.samples == 100


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.99, {0.1: 60, 0.25: 95, 0.5: 100, INF: 100}, 0.45),
        (0.5, {0.1: 60, 0.25: 95, 0.5: 100, INF: 100}, 0.1 * 50 / 60),
        (0.99, {0.1: 10, 0.25: 10, 0.5: 10, INF: 20}, 0.5),
        (0.5, {-1.0: 10, 0.0: 20, INF: 20}, -1.0),
        # buckets summed from inconsistent sources are made monotonic, as PromQL does
        (0.75, {0.1: 10, 0.25: 8, 0.5: 20, INF: 20}, 0.25 + 0.25 * 5 / 10),
        (0.99, {0.1: 5, 0.5: 5}, None),
        (0.99, {INF: 5}, None),
        (0.99, {0.1: 0, INF: 0}, None),
    ],
)
def test_histogram_quantile_matches_promql(
    q: float, buckets: dict[float, float], expected: float | None
) -> None:
    result = histogram_quantile(q, buckets)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_unreadable_pods_keep_their_counters_for_the_next_increase() -> None:
    first = aggregate({"a": exposition(ok=100), "b": exposition(ok=100)}, "iris", None)
    second = aggregate(
        {"a": exposition(ok=150), "b": "garbage here\n"},
        "iris",
        first.snapshot,
        failed={},
    )
    assert set(second.unreadable) == {"b"}
    assert second.snapshot.pods["b"] == first.snapshot.pods["b"]
    third = aggregate({"a": exposition(ok=150), "b": exposition(ok=130)}, "iris", second.snapshot)
    error_rate = third.measurements["errorRate"]
    assert error_rate is not None and error_rate.samples == 30


def test_failed_fetches_and_no_pods() -> None:
    nothing = aggregate({}, "iris", None, failed={"a": "connection refused"})
    assert all(m is None for m in nothing.measurements.values())
    assert nothing.unreadable == {"a": "connection refused"}
    idle = aggregate({}, "iris", None)
    for measurement in idle.measurements.values():
        assert measurement is not None
        assert (measurement.value, measurement.samples) == (None, 0)
        assert "no ready pods" in measurement.message


def test_snapshot_round_trips_through_json() -> None:
    snapshot = aggregate(
        {"a": exposition(ok=10, failed=2, buckets=(1, 2, 3, 12))}, "iris", None
    ).snapshot
    assert Snapshot.from_json(json.loads(json.dumps(snapshot.to_json()))) == snapshot


def test_reads_the_model_servers_own_exposition() -> None:
    texts = {}
    for pod, (correct, latency) in {"a": ((1, 1, 1, 0), 0.003), "b": ((1, 0), 0.2)}.items():
        registry = CollectorRegistry()
        metrics = ServerMetrics("iris", "2", registry)
        metrics.model_loaded(regression=False)
        window = RollingScore(regression=False)
        metrics.feedback(window.add(correct, [1] * len(correct)), window)
        metrics.drift({"x": 0.05, "y": 0.4 if pod == "b" else 0.1}, 50)
        metrics.request("v1", 200, latency)
        texts[pod] = render(registry).decode()
    first = aggregate(texts, "iris", None)
    accuracy, drift = first.measurements["accuracy"], first.measurements["drift"]
    assert accuracy is not None and drift is not None
    assert accuracy.value == pytest.approx(4 / 6) and accuracy.samples == 6
    assert drift.value == pytest.approx(0.4) and drift.samples == 100
    assert first.snapshot.pods["a"].requests == 1
    assert first.snapshot.pods["b"].buckets[INF] == 1
