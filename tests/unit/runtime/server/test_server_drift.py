"""The drift window: a ring buffer of recent rows, PSI against reference.json, on a clock."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_operator.runtime.refstats import reference_stats
from mlops_operator.runtime.server.drift import DriftWindow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reference() -> dict[str, object]:
    rng = np.random.default_rng(0)
    features: dict[str, object] = reference_stats(
        {"x": rng.normal(0, 1, 5000), "y": rng.uniform(0, 10, 5000)}
    )["features"]
    return features


def test_inputs_like_training_have_low_psi_and_shifted_ones_high(
    reference: dict[str, object],
) -> None:
    rng = np.random.default_rng(1)
    clock = Clock()
    window = DriftWindow(reference, ["x", "untracked", "y"], window=1000, clock=clock)
    assert window.features == ["x", "y"]
    same = np.column_stack([rng.normal(0, 1, 1000), np.zeros(1000), rng.uniform(0, 10, 1000)])
    psi = window.add(same)
    assert psi is not None and psi["x"] < 0.05 and psi["y"] < 0.05

    clock.now = 100.0
    shifted = same.copy()
    shifted[:, 0] += 2
    psi = window.add(shifted)
    assert psi is not None
    assert psi["x"] > 1 and psi["y"] < 0.05
    assert window.rows == 1000


def test_psi_is_recomputed_at_most_every_interval(reference: dict[str, object]) -> None:
    clock = Clock()
    window = DriftWindow(reference, ["x", "y"], window=10, every_seconds=5, clock=clock)
    assert window.add(np.zeros((1, 2))) is not None
    clock.now = 4.9
    assert window.add(np.zeros((100, 2))) is None
    clock.now = 5.0
    assert window.add(np.zeros((1, 2))) is not None


def test_the_window_keeps_only_the_latest_rows(reference: dict[str, object]) -> None:
    window = DriftWindow(reference, ["x", "y"], window=4, every_seconds=1e9, clock=Clock())
    window.add(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    assert window.rows == 3
    window.add(np.array([[4.0, 4.0], [5.0, 5.0]]))
    assert window.rows == 4
    assert sorted(window._buffer[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    window.add(np.arange(20.0).reshape(10, 2))
    assert sorted(window._buffer[:, 0].tolist()) == [12.0, 14.0, 16.0, 18.0]


def test_no_reference_statistics_means_no_drift() -> None:
    window = DriftWindow({}, ["x"], clock=Clock())
    assert window.add(np.zeros((3, 1))) is None


def test_categorical_features_drift_when_the_category_mix_shifts(
    reference: dict[str, object],
) -> None:
    clock = Clock()
    shares = {"plan": {"basic": 0.5, "plus": 0.3, "pro": 0.2}}
    window = DriftWindow(
        reference, ["plan", "x"], categories=shares, window=1000, every_seconds=1, clock=clock
    )
    assert window.features == ["plan", "x"]
    rng = np.random.default_rng(2)
    mix = rng.choice(["basic", "plus", "pro"], 1000, p=[0.5, 0.3, 0.2]).astype(object)
    table = np.column_stack([mix, rng.normal(0, 1, 1000)]).astype(object)
    psi = window.add(table)
    assert psi is not None and psi["plan"] < 0.02 and psi["x"] < 0.05

    clock.now = 10.0
    table[:, 0] = rng.choice(["basic", "pro", None], 1000, p=[0.1, 0.6, 0.3])
    psi = window.add(table)
    assert psi is not None and psi["plan"] > 0.5 and psi["x"] < 0.05


def test_a_category_code_column_is_measured_against_its_numeric_bins() -> None:
    codes = np.random.default_rng(3).choice([10.0, 20.0], 2000)
    reference = reference_stats({"code": codes})["features"]
    window = DriftWindow(reference, ["code"], window=500, clock=Clock())
    psi = window.add(np.array([["20"]] * 500, dtype=object))
    assert psi is not None and psi["code"] > 1
