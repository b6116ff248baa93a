"""Prediction ids, the bounded prediction buffer and the rolling online score."""

from __future__ import annotations

import math

import pytest

from mlops_operator.runtime.server.feedback import (
    MAX_ERROR,
    PredictionBuffer,
    PredictionIds,
    RollingScore,
    labels_equal,
    worker_of,
)


def test_ids_are_unique_and_name_their_worker() -> None:
    first, second = PredictionIds(0x1A2B), PredictionIds(0x1A2B)
    ids = first.next(1000) + second.next(1000)
    assert len(set(ids)) == 2000, "a restarted worker with the same pid makes new ids"
    assert {worker_of(i) for i in ids} == {"1a2b"}


@pytest.mark.parametrize(
    "foreign", ["", "abc", "../../etc/passwd-1-2", "zz-1-2", "123456789-1-2", "-1-2", "1a/b-1"]
)
def test_ids_not_made_here_name_no_worker(foreign: str) -> None:
    assert worker_of(foreign) is None


def test_the_buffer_forgets_the_oldest_and_gives_each_prediction_once() -> None:
    buffer = PredictionBuffer(size=3)
    buffer.add(["a", "b"], [1, 2])
    buffer.add(["c", "d"], [3, 4])
    assert len(buffer) == 3
    assert buffer.claim(["a", "b", "d", "x"]) == {"b": 2, "d": 4}
    assert buffer.claim(["b"]) == {}
    assert len(buffer) == 1


@pytest.mark.parametrize(
    ("predicted", "label", "equal"),
    [
        (1, 1, True),
        (1, 1.0, True),
        (1, "1", True),
        ("setosa", "setosa", True),
        (1, 2, False),
        ("a", "b", False),
        (True, "True", True),
        (0, None, False),
    ],  # fmt: skip
)
def test_labels_compare_by_value(predicted: object, label: object, equal: bool) -> None:
    assert labels_equal(predicted, label) is equal


def test_rolling_accuracy_covers_the_last_window_samples() -> None:
    score = RollingScore(regression=False, window=4)
    assert score.value is None and score.samples == 0
    assert score.add([1, 1, 0], [1, 0, 0]) == [1.0, 0.0, 1.0]
    assert score.value == pytest.approx(2 / 3)
    score.add([2, 2, 2], [2, 2, 2])
    assert score.samples == 4
    assert score.total == 4
    assert score.value == 1.0


def test_rolling_mae_for_regression() -> None:
    score = RollingScore(regression=True, window=2)
    assert score.add([1.0, 2.0], [1.5, 4.0]) == [0.5, 2.0]
    assert score.value == pytest.approx(1.25)
    score.add([0.1], [0.2])
    assert score.value == pytest.approx((2.0 + 0.1) / 2)


def test_a_huge_regression_error_counts_as_the_largest_and_keeps_the_window_moving() -> None:
    score = RollingScore(regression=True, window=3)
    score.add([0.0], [1.7e308])
    score.add([-1.7e308], [1.7e308])
    assert score.value == pytest.approx(MAX_ERROR)
    assert math.isfinite(score.total)
    for _ in range(3):
        score.add([1.0], [2.0])
    assert score.value == pytest.approx(1.0), "the huge errors left the window"
