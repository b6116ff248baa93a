"""The soak's verdict on a trend: growth beyond the noise fails, a flat noisy series passes."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from bench.soak import report  # noqa: E402


def samples(rss: list[float]) -> list[dict[str, object]]:
    return [{"t": 60.0 * i, "operator": {"rss_mb": v, "fds": 20}} for i, v in enumerate(rss)]


def test_memory_that_grows_every_minute_is_a_trend() -> None:
    series = samples([100.0 + 2.0 * i for i in range(10)])
    result = report.trend(series, "operator.rss_mb", floor=5.0)
    assert result["growth_over_run"] == 18.0
    assert not result["passed"]


def test_memory_that_wobbles_around_a_level_is_not_a_trend() -> None:
    series = samples([100.0, 104.0, 99.0, 103.0, 100.0, 104.0, 98.0, 103.0, 101.0, 100.0])
    assert report.trend(series, "operator.rss_mb", floor=5.0)["passed"]


def test_one_late_spike_is_noise_not_a_trend() -> None:
    series = samples([100.0] * 9 + [112.0])
    result = report.trend(series, "operator.rss_mb", floor=5.0)
    assert result["growth_over_run"] > 5.0
    assert result["passed"]


def test_too_few_samples_cannot_pass() -> None:
    assert not report.trend(samples([100.0, 100.0]), "operator.rss_mb", floor=5.0)["passed"]


def run(degradations: list[dict[str, object]]) -> dict[str, object]:
    """A passing run's data, with these degradations."""
    flat = [
        {
            "t": 60.0 * i,
            "operator": {"rss_mb": 100.0, "fds": 20},
            "operator_tasks": 150.0,
            "operator_errors": 0.0,
            "sandbox": {"rss_mb": 120.0, "fds": 50},
            "servers": [{"rss_mb": 250.0, "fds": 30}],
            "objects": {"deployments": 1, "services": 1, "events": 3},
            "retention": {"objects": 30, "request_log": 100 * min(i, 5)},
        }
        for i in range(10)
    ]
    return {
        "samples": flat,
        "quiet_from": 300.0,
        "load": {"predictions": 10, "feedback": 10, "errors": [], "retried": []},
        "config": {
            "services": 1,
            "models": 1,
            "minutes": 10,
            "sample_seconds": 60,
            "fault_share": 0.5,
            "event_ttl": 120,
            "request_log_size": 500,
        },  # fmt: skip
        "operator_log": {"tracebacks": 0},
        "retrainings": 1,
        "degradations": degradations,
        "events": [],
    }


def test_a_degradation_that_never_retrains_fails_the_soak_and_the_report_says_so() -> None:
    retrained = {"service": "svc-00", "at": 80.0, "deadline": 150.0, "window": 300,
                 "took": 70.0, "accuracy": 0.62}  # fmt: skip
    data = run([retrained])
    data["verdict"] = report.verdict(data)
    assert data["verdict"]["passed"]
    assert data["verdict"]["retention"]["request_log"] == [0, 500]

    missed = {**retrained, "service": "svc-07", "took": None, "accuracy": 0.81}
    data = run([retrained, missed])
    data["verdict"] = report.verdict(data)
    assert not data["verdict"]["passed"]
    text = report.render(data)
    assert "| svc-07 | 80 | 300 | 150 | **no retraining** | 0.81 |" in text
    assert "| request_log | 0 | 500 |" in text


def test_the_step_of_the_first_connections_is_not_a_leak() -> None:
    data = run([])
    for i, sample in enumerate(data["samples"]):  # type: ignore[attr-defined]
        sample["servers"] = [{"rss_mb": 250.0, "fds": 29 if i == 0 else 33}]

    verdict = report.verdict(data)

    fds = verdict["trends"]["model server open fds, mean per pod"]
    assert (fds["first"], fds["growth_over_run"], fds["slope_per_hour"]) == (33.0, 0.0, 0.0)
    assert verdict["passed"]


def test_open_fds_that_keep_growing_under_load_are_a_leak() -> None:
    data = run([])
    for i, sample in enumerate(data["samples"]):  # type: ignore[attr-defined]
        sample["servers"] = [{"rss_mb": 250.0, "fds": 29 + i}]

    assert not report.verdict(data)["passed"]
