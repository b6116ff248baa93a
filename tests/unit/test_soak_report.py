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
