"""The arithmetic behind the serving benchmark's claims: what counts as an error, which
figure is a median, and when a target is reported as met."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.serving import report
from bench.serving.load import Run, parse_wrk, summarize_open_loop

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:1/v2/models/rf/infer
  1 threads and 32 connections
BENCH_RESULT {"requests": 4000, "duration_us": 2000000, "connect_errors": 0, \
"read_errors": 1, "write_errors": 0, "status_errors": 3, "timeouts": 2, "p50_us": 7000, \
"p90_us": 9000, "p99_us": 12500, "max_us": 30000, "mean_us": 7500.0}
"""


def test_wrk_errors_include_non_2xx_answers_and_timeouts() -> None:
    run = parse_wrk(WRK_OUTPUT)
    assert run.rps == 2000
    assert run.errors == 6
    assert (run.p50_ms, run.p99_ms, run.max_ms) == (7.0, 12.5, 30.0)


def test_wrk_without_a_result_line_is_an_error_quoting_its_output() -> None:
    with pytest.raises(ValueError, match="connection refused"):
        parse_wrk("unable to connect: connection refused\n")


def test_open_loop_counts_unanswered_requests_as_errors() -> None:
    run = summarize_open_loop([0.001] * 98 + [0.5], scheduled=100, seconds=1.0)
    assert run.errors == 1
    assert run.requests == 99
    assert run.p50_ms == pytest.approx(1.0)
    assert run.max_ms == pytest.approx(500.0)


def test_repeated_runs_report_medians_and_summed_errors() -> None:
    runs = [
        Run(1000, 1.0, 0, 5.0, 20.0, 30.0),
        Run(3000, 1.0, 2, 9.0, 90.0, 200.0),
        Run(2000, 1.0, 1, 7.0, 40.0, 50.0),
    ]
    combined = report.combine(runs)
    assert combined["rps"] == 2000
    assert combined["p99_ms"] == 40.0
    assert combined["max_ms"] == 200.0
    assert combined["errors"] == 3


def test_max_throughput_only_counts_levels_within_the_slo() -> None:
    closed = {"8": {"rps": 900, "p99_ms": 20}, "32": {"rps": 1500, "p99_ms": 150}}
    assert report.max_under_slo(closed, 100) == 900
    assert report.max_under_slo(closed, 10) is None


def level(rps: float, p99: float, errors: int = 0) -> dict[str, Any]:
    return {"rps": rps, "p50_ms": p99 / 2, "p99_ms": p99, "max_ms": p99, "errors": errors}


def contender(rps: float, p99: float, errors: int = 0) -> dict[str, Any]:
    payload = {
        "closed": {"32": level(rps, p99, errors)},
        "open": {},
        "cpu_seconds_per_1k": 1.0,
        "rss_mb": 100.0,
        "pss_mb": 90.0,
    }
    return {"ready_seconds": 1.0, "payloads": {"1": payload}}


def results(**per_contender: dict[str, Any]) -> dict[str, Any]:
    return {
        "finished": "2026-11-22T00:00:00+00:00",
        "wall_seconds": 1,
        "machine": {
            "cpu": "test",
            "cores": 2,
            "memory_gib": 1,
            "os": "Linux",
            "python": "3.11",
            "packages": {},
        },
        "versions": {},
        "plan": {
            "target_level": 32,
            "levels": [32],
            "open_rates": {"1": [200]},
            "slo_p99_ms": 100,
            "run_seconds": 2,
            "warmup_seconds": 2,
            "runs_at_target": 3,
            "open_seconds": 3,
        },
        "contenders": {name.replace("_", "-"): "" for name in per_contender},
        "results": {"rf": {k.replace("_", "-"): v for k, v in per_contender.items()}},
    }


def test_ours_is_compared_with_the_best_of_each_family_and_the_floor_of_its_workers() -> None:
    data = results(
        ours_w1=contender(1000, 30),
        ours_w2=contender(2400, 20),
        mlserver_pw0=contender(500, 40),
        mlserver_pw2=contender(1000, 50),
        kserve_w2=contender(800, 60),
        floor_w1=contender(2000, 10),
        floor_w2=contender(2500, 10),
    )
    [row] = report.comparisons(data)
    assert row["ours"] == "ours-w2"
    assert row["mlserver"] == "mlserver-pw2"
    assert row["vs_mlserver"] == 2.4
    assert row["vs_kserve"] == 3.0
    assert row["vs_floor"] == {"ours-w1": 0.5, "ours-w2": 0.96}
    assert row["w1_vs_mlserver"] == 1.0
    assert row["targets"] == {
        "2x MLServer": True,
        "p99 ≤ MLServer's": True,
        "0.8x floor": False,
        "2.5x MLServer, 1 worker": False,
        "p99 ≤ MLServer's, 1 worker": True,
        "zero errors": True,
    }


def test_faster_but_with_a_worse_tail_misses_the_mlserver_target() -> None:
    data = results(ours_w1=contender(3000, 80, errors=1), mlserver_pw0=contender(1000, 50))
    [row] = report.comparisons(data)
    assert row["targets"]["2x MLServer"] is True
    assert row["targets"]["p99 ≤ MLServer's"] is False
    assert row["targets"]["zero errors"] is False
    markdown = report.render(data, previous=None)
    assert row["targets"]["2.5x MLServer, 1 worker"] is True
    assert "missed: p99 ≤ MLServer's, p99 ≤ MLServer's, 1 worker, zero errors" in markdown
    assert "3.00×" in markdown


def test_the_report_compares_with_the_previous_run() -> None:
    before = results(ours_w1=contender(1000, 30))
    now = copy.deepcopy(before)
    now["results"]["rf"]["ours-w1"]["payloads"]["1"]["closed"]["32"]["rps"] = 1500
    markdown = report.render(now, previous=before)
    assert "Against the previous run" in markdown
    assert "| rf | 1 | ours-w1 | 1,000 | 1,500 | 1.50× |" in markdown


def test_a_single_worker_logistic_regression_is_held_to_0_9_of_the_floor() -> None:
    data = results(ours_w1=contender(900, 30), floor_w1=contender(1000, 20))
    data["results"] = {"lr": data["results"]["rf"]}
    [row] = report.comparisons(data)
    assert row["targets"]["0.9x floor, 1 worker"] is True
    data["results"]["lr"]["ours-w1"] = contender(890, 30)
    [row] = report.comparisons(data)
    assert row["targets"]["0.9x floor, 1 worker"] is False
