"""The sandbox Prometheus' scrape targets, from pods, and its configuration."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from mlops_sandbox import prometheus
from mlops_sandbox.prometheus import (
    PrometheusNotInstalled,
    find_binary,
    prometheus_config,
    sanitize_label_name,
    targets_from_pods,
)


def _pod(
    name: str,
    *,
    namespace: str = "ns",
    ip: str | None = "127.0.3.4",
    phase: str = "Running",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    if annotations is None:
        annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}
    status: dict[str, Any] = {"phase": phase}
    if ip:
        status["podIP"] = ip
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": annotations,
            "labels": labels or {},
            **meta,
        },
        "status": status,
    }


def test_an_annotated_running_pod_is_a_target_with_its_identity_and_labels() -> None:
    pod = _pod(
        "iris-predictor-abc",
        labels={"mlops.dev/model": "iris", "app.kubernetes.io/name": "predictor"},
        annotations={
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8080",
            "prometheus.io/path": "/metrics",
        },
    )

    assert targets_from_pods([pod]) == [
        {
            "targets": ["127.0.3.4:8080"],
            "labels": {
                "namespace": "ns",
                "pod": "iris-predictor-abc",
                "mlops_dev_model": "iris",
                "app_kubernetes_io_name": "predictor",
                "__metrics_path__": "/metrics",
            },
        }
    ]


@pytest.mark.parametrize(
    "pod",
    [
        _pod("not-annotated", annotations={}),
        _pod("opted-out", annotations={"prometheus.io/scrape": "false"}),
        _pod("no-port", annotations={"prometheus.io/scrape": "true"}),
        _pod("bad-port", annotations={"prometheus.io/scrape": "true", "prometheus.io/port": "x"}),
        _pod("pending", phase="Pending"),
        _pod("succeeded", phase="Succeeded"),
        _pod("no-ip", ip=None),
        _pod("terminating", deletionTimestamp="2024-01-01T00:00:00Z"),
    ],
    ids=lambda pod: pod["metadata"]["name"],
)
def test_pods_that_cannot_or_should_not_be_scraped_are_left_out(pod: dict[str, Any]) -> None:
    assert targets_from_pods([pod]) == []


def test_targets_are_ordered_by_namespace_and_name() -> None:
    pods = [_pod("b", namespace="y"), _pod("a", namespace="y"), _pod("z", namespace="x")]

    pairs = [(g["labels"]["namespace"], g["labels"]["pod"]) for g in targets_from_pods(pods)]

    assert pairs == [("x", "z"), ("y", "a"), ("y", "b")]


def test_a_pod_label_cannot_hide_the_pods_namespace_or_name() -> None:
    [group] = targets_from_pods([_pod("real", labels={"pod": "fake", "namespace": "other"})])

    assert group["labels"]["pod"] == "real"
    assert group["labels"]["namespace"] == "ns"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("app", "app"),
        ("mlops.dev/model", "mlops_dev_model"),
        ("pod-template-hash", "pod_template_hash"),
        ("9lives", "_9lives"),
    ],
)
def test_label_keys_become_valid_prometheus_label_names(key: str, expected: str) -> None:
    assert sanitize_label_name(key) == expected


def test_the_config_scrapes_the_targets_file_with_a_timeout_within_the_interval(
    tmp_path: pathlib.Path,
) -> None:
    config = prometheus_config(tmp_path / "targets.json", interval="1s")

    assert config["global"]["scrape_timeout"] == config["global"]["scrape_interval"] == "1s"
    [job] = config["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "targets.json")]


def test_a_missing_binary_says_which_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus.shutil, "which", lambda name: None)
    monkeypatch.setattr(prometheus.os, "access", lambda path, mode: False)

    with pytest.raises(PrometheusNotInstalled, match="Debian package.*apt-get install"):
        find_binary()
