"""The operator benchmark's pure parts: request accounting, the verdict, the report."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from bench.operator import report  # noqa: E402

ISVC_REQUESTS = {
    "create deployments": 100,
    "create services": 100,
    "patch inferenceservices/status": 200,
    "create events": 100,
    "watch jobs": 1,
}
TJ_REQUESTS = {
    "create jobs": 100,
    "patch trainingjobs/status": 100,
    "create events": 100,
}


def phase(cpu: float, requests: dict[str, int] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "cpu_seconds": cpu,
        "wall_seconds": 10.0,
        "created": 100,
        "requests": requests if requests is not None else {},
        **extra,
    }


def run(
    *,
    burst_seconds: float = 4.0,
    rss_mb: int = 120,
    ours_idle: float = 0.01,
    floor_idle: float = 0.01,
    isvc: dict[str, int] | None = None,
    tj: dict[str, int] | None = None,
) -> dict[str, Any]:
    isvc = isvc if isvc is not None else ISVC_REQUESTS
    tj = tj if tj is not None else TJ_REQUESTS
    return {
        "finished": "2026-01-01T00:00:00+00:00",
        "wall_seconds": 300.0,
        "config": {
            "count": 1000,
            "models": 10,
            "trickle": 100,
            "trickle_rate": 10.0,
            "concurrency": 16,
            "idle_seconds": 20.0,
        },
        "machine": {
            "cpu": "test cpu",
            "cores": 2,
            "memory_gib": 4,
            "os": "Linux",
            "python": "3.11",
            "packages": {"kopf": "1.45"},
        },
        "operators": {
            "ours": {
                "phases": {
                    "isvc-burst": phase(
                        3.0,
                        isvc,
                        children_seconds=burst_seconds,
                        missing_children=[],
                        child_latency={"p50": 1.0, "p99": 2.0, "max": 2.5},
                        status_latency={"p50": 1.1, "p99": 2.1, "max": 2.6},
                        ready_latency={"p50": 1.2, "p99": 2.2, "max": 2.7},
                    ),
                    "isvc-trickle": phase(1.0, isvc),
                    "tj-burst": phase(2.0, tj, children_seconds=3.0),
                },
                "idle": {"cpu_seconds": ours_idle},
                "rss_bytes": rss_mb * 2**20,
                "pss_bytes": rss_mb * 2**20,
            },
            "floor": {
                "phases": {
                    "isvc-burst": phase(1.0, {"watch inferenceservices": 1}),
                    "isvc-trickle": phase(0.5),
                    "tj-burst": phase(1.0),
                },
                "idle": {"cpu_seconds": floor_idle},
                "rss_bytes": 60 * 2**20,
                "pss_bytes": 50 * 2**20,
            },
        },
        "emulator": {},
    }


def test_requests_are_split_between_the_benchmark_and_the_operator() -> None:
    before = [{"client": "kopf", "verb": "patch", "resource": "inferenceservices", "count": 2}]
    after = [
        {"client": "kopf", "verb": "patch", "resource": "inferenceservices", "count": 5},
        {"client": "OpenAPI-Generator", "verb": "list", "resource": "modelversions", "count": 4},
        {"client": "mlops-bench", "verb": "create", "resource": "inferenceservices", "count": 9},
    ]
    delta = report.request_delta(before, after)
    assert delta["operator"] == {"patch inferenceservices": 3, "list modelversions": 4}
    assert delta["bench"] == {"create inferenceservices": 9}


def test_latencies_pair_by_name_and_name_the_objects_never_reached() -> None:
    latencies, missing = report.pair_latencies({"a": 1.0, "b": 2.0}, {"a": 1.5})
    assert latencies == [0.5]
    assert missing == ["b"]


def test_requests_split_into_reads_writes_and_events() -> None:
    split = report.split_requests(
        {
            "get secrets": 2,
            "list pods": 1,
            "watch jobs": 3,
            "create jobs": 4,
            "patch trainingjobs/status": 5,
            "delete jobs": 1,
            "create events": 7,
            "patch events": 1,
        }
    )
    assert split == {"reads": 6, "writes": 10, "events": 8, "gets": 2, "lists": 1, "watches": 3}


def test_per_object_counts_reads_and_writes_but_not_events() -> None:
    one = phase(0.0, {"get secrets": 100, "create jobs": 100, "create events": 100})
    assert report.per_object(one, "requests") == 2.0
    assert report.per_object(one, "events") == 1.0
    assert report.per_object({"created": 0, "requests": {}}, "writes") is None


def test_a_watch_reopened_is_not_a_reconcile_read() -> None:
    reopened = phase(0.0, {"watch inferenceservices": 6})
    assert report.per_object(reopened, "reads") == 0.06
    assert report.per_object(reopened, "reconcile_reads") == 0.0


def test_verdict_meets_all_targets_on_a_good_run() -> None:
    assert [c.met for c in report.verdict(run())] == [True] * 6


def test_verdict_flags_each_missed_target() -> None:
    data = run(
        burst_seconds=20.7,
        rss_mb=267,
        ours_idle=2.24,
        floor_idle=0.01,
        isvc={"create deployments": 100, "patch inferenceservices": 400, "get services": 100},
        tj={"create jobs": 100, "get trainingjobs": 300},
    )
    verdict = report.verdict(data)
    assert [c.met for c in verdict] == [False] * 6
    assert [c.value for c in verdict] == ["5.00", "1.00", "4.00", "20.7 s", "224.00×", "267 MB"]


def test_an_idle_floor_below_one_clock_tick_counts_as_one() -> None:
    assert report.idle_ratio(run(ours_idle=0.02, floor_idle=0.0)) == 2.0


def test_a_burst_with_missing_children_is_not_absorbed() -> None:
    data = run()
    data["operators"]["ours"]["phases"]["isvc-burst"]["missing_children"] = ["svc-00001"]
    burst = next(c for c in report.verdict(data) if c.target.startswith("burst"))
    assert burst.met is None


def test_report_table_carries_ours_floor_and_the_ratio() -> None:
    text = report.render(run(isvc={**ISVC_REQUESTS, "patch modelversions/status": 5}))
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert rows["| Total operator CPU"] == "| Total operator CPU | 6.010 s | 2.510 s | 2.39× |"
    assert rows["| InferenceService burst: writes per object"] == (
        "| InferenceService burst: writes per object | 4.05 | 0.00 |  |"
    )
    assert rows["| InferenceService burst: Events per object"].startswith(
        "| InferenceService burst: Events per object | 1.00 |"
    )
    assert rows["| InferenceService burst: create→status written p99"].startswith(
        "| InferenceService burst: create→status written p99 | 2.100 s |"
    )
    assert "| writes per InferenceService, create to Ready ≤ 4 | 4.05 | **no** |" in text


def test_report_compares_with_the_previous_run() -> None:
    previous = run(isvc={"get services": 400, "create deployments": 100})
    text = report.render(run(), previous)
    assert "## Against the previous run" in text
    assert "| InferenceService burst: reads per object (get, list, watch) | 4.00 | 0.01 |" in text


def test_other_scales_write_their_own_results() -> None:
    assert report.results_name({"count": 1000}) == "operator"
    assert report.results_name({"count": 10000}) == "operator-10000"
    assert report.command({"count": 1000}) == "make bench-operator"
    assert "--kinds isvc" in report.command({"count": 10000, "trickle": 200, "kinds": ["isvc"]})
