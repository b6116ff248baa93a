"""The operator benchmark's pure parts: request accounting, the verdict, the report."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from bench.operator import report  # noqa: E402


def phase(cpu: float, **extra: Any) -> dict[str, Any]:
    return {"cpu_seconds": cpu, "wall_seconds": 10.0, "requests_per_object": 5.0, **extra}


def run(*, trickle_p99: float, rss_mb: int, ours_cpu: float, floor_cpu: float) -> dict[str, Any]:
    ours_trickle = phase(
        ours_cpu / 2, child_latency={"p50": 0.1, "p99": trickle_p99, "max": trickle_p99}
    )
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
                "phases": {"isvc-burst": phase(ours_cpu / 2), "isvc-trickle": ours_trickle},
                "idle": {"cpu_seconds": 0.0},
                "rss_bytes": rss_mb * 2**20,
                "pss_bytes": rss_mb * 2**20,
            },
            "floor": {
                "phases": {"isvc-burst": phase(floor_cpu), "isvc-trickle": phase(0.0)},
                "idle": {"cpu_seconds": 0.0},
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


def test_verdict_meets_all_targets_on_a_good_run() -> None:
    checks = report.verdict(run(trickle_p99=0.4, rss_mb=120, ours_cpu=3.0, floor_cpu=2.5))
    assert [c.met for c in checks] == [True, True, True]


def test_verdict_flags_each_missed_target() -> None:
    checks = report.verdict(run(trickle_p99=1.2, rss_mb=300, ours_cpu=10.0, floor_cpu=2.0))
    assert [c.met for c in checks] == [False, False, False]
    assert checks[2].value == "5.00×"


def test_report_table_carries_ours_floor_and_the_ratio() -> None:
    text = report.render(run(trickle_p99=0.4, rss_mb=120, ours_cpu=6.0, floor_cpu=2.0))
    total = next(line for line in text.splitlines() if line.startswith("| Total operator CPU"))
    assert total == "| Total operator CPU | 6.000 s | 2.000 s | 3.00× |"
    assert "| CPU ≤ 1.5× the empty kopf operator | 3.00× | **no** |" in text


def test_report_compares_with_the_previous_run() -> None:
    previous = run(trickle_p99=0.4, rss_mb=100, ours_cpu=4.0, floor_cpu=2.0)
    text = report.render(run(trickle_p99=0.4, rss_mb=120, ours_cpu=6.0, floor_cpu=2.0), previous)
    assert "## Against the previous run" in text
    assert "| Total operator CPU | 4.000 s | 6.000 s | 1.50× |" in text
