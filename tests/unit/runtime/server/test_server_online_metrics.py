"""The rolling feedback window's per-class counts and error sums against scikit-learn's
metrics over the same samples."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

from mlops_operator.api.online import macro
from mlops_operator.runtime.server.feedback import (
    MAX_EXTRA_CLASSES,
    OTHER_CLASS,
    RollingScore,
    class_key,
)


def reference(predicted: list[Any], labels: list[Any]) -> dict[str, Any]:
    """scikit-learn's per-class and macro metrics (undefined terms as 0, as documented)."""
    keys_true = [class_key(y) for y in labels]
    keys_pred = [class_key(p) for p in predicted]
    classes = sorted(set(keys_true) | set(keys_pred))
    per_class = precision_recall_fscore_support(
        keys_true, keys_pred, labels=classes, zero_division=0
    )
    averaged = precision_recall_fscore_support(
        keys_true, keys_pred, average="macro", zero_division=0
    )
    return {
        "classes": classes,
        "per_class": {
            cls: (per_class[0][i], per_class[1][i], per_class[2][i], per_class[3][i])
            for i, cls in enumerate(classes)
        },
        "macro": averaged[:3],
        "accuracy": accuracy_score(keys_true, keys_pred),
    }


def assert_matches(window: RollingScore, predicted: list[Any], labels: list[Any]) -> None:
    expected = reference(predicted, labels)
    counts = {k: c for k, c in window.class_counts().items() if c.present}
    assert sorted(counts) == expected["classes"]
    for cls, (precision, recall, f1, support) in expected["per_class"].items():
        c = counts[cls]
        assert c.support == support
        assert (c.value("precision") or 0.0) == pytest.approx(precision)
        assert (c.value("recall") or 0.0) == pytest.approx(recall)
        assert (c.value("f1") or 0.0) == pytest.approx(f1)
    summary = window.summary()
    assert summary["accuracy"] == pytest.approx(expected["accuracy"])
    for metric, value in zip(("precision", "recall", "f1"), expected["macro"], strict=True):
        assert macro(counts, metric) == pytest.approx(value)  # type: ignore[arg-type]
        assert summary[metric] == pytest.approx(value)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_classification_window_matches_sklearn_as_it_rolls_over(seed: int) -> None:
    rng = random.Random(seed)
    classes = ["setosa", "versicolor", "virginica", "rare"]
    window = RollingScore(regression=False, window=60, classes=classes[:3])
    predicted: list[str] = []
    labels: list[str] = []
    for _ in range(12):  # 12 feedback calls of 1..20 samples: the window turns over
        n = rng.randint(1, 20)
        # The model mostly right, never predicting "rare", which does occur.
        ys = rng.choices(classes, weights=[5, 5, 5, 1], k=n)
        ps = [y if y != "rare" and rng.random() < 0.7 else rng.choice(classes[:3]) for y in ys]
        window.add(ps, ys)
        predicted, labels = (predicted + ps)[-60:], (labels + ys)[-60:]
        assert window.samples == len(labels)
        assert_matches(window, predicted, labels)
    rare = window.class_counts()["rare"]
    assert rare.present
    assert rare.value("precision") is None, "never predicted: precision is undefined"
    assert rare.value("recall") == 0.0


def test_numeric_classes_match_sklearn_whatever_form_the_label_takes() -> None:
    rng = random.Random(7)
    window = RollingScore(regression=False, window=100, classes=[0, 1, 2])
    predicted = [rng.randrange(3) for _ in range(150)]
    labels: list[Any] = [rng.choice([p, rng.randrange(3)]) for p in predicted]
    # Clients send 1, 1.0 or "1" for class 1: all the same class.
    sent = [rng.choice([y, float(y), str(y)]) for y in labels]
    window.add(predicted, sent)
    assert_matches(window, predicted[-100:], labels[-100:])
    assert sorted(window.class_counts()) == ["0", "1", "2"]


def test_a_class_out_of_the_window_is_zero_and_leaves_the_macro_average() -> None:
    window = RollingScore(regression=False, window=3)
    window.add(["a", "b", "b"], ["a", "a", "b"])
    window.add(["c", "c", "c"], ["c", "c", "b"])
    counts = window.class_counts()
    assert counts["a"].present is False, "both 'a' samples left the window"
    assert window.changed_classes()["a"].tp == 0.0
    assert window.changed_classes() == {}, "changes are reported once"
    assert_matches(window, ["c", "c", "c"], ["c", "c", "b"])


def test_labels_beyond_the_bound_share_one_class_series() -> None:
    window = RollingScore(regression=False, window=1000, classes=["a"])
    labels = [f"new-{i}" for i in range(MAX_EXTRA_CLASSES + 10)]
    window.add(["a"] * len(labels), labels)
    counts = window.class_counts()
    assert len(counts) == 1 + MAX_EXTRA_CLASSES + 1
    assert counts[OTHER_CLASS].fn == 10
    assert counts["a"].fp == len(labels)
    assert window.summary()["accuracy"] == 0.0


def test_regression_window_matches_sklearn_as_it_rolls_over() -> None:
    rng = random.Random(11)
    window = RollingScore(regression=True, window=50)
    predicted: list[float] = []
    labels: list[float] = []
    for _ in range(10):
        n = rng.randint(1, 15)
        ys = [rng.gauss(100.0, 15.0) for _ in range(n)]
        ps = [y + rng.gauss(0.0, 5.0) for y in ys]
        window.add(ps, ys)
        predicted, labels = (predicted + ps)[-50:], (labels + ys)[-50:]
        summary = window.summary()
        assert summary["mae"] == pytest.approx(mean_absolute_error(labels, predicted))
        assert summary["rmse"] == pytest.approx(math.sqrt(mean_squared_error(labels, predicted)))
        if len(labels) >= 2:
            assert summary["r2"] == pytest.approx(r2_score(labels, predicted), rel=1e-9)
    assert window.errors.n == 50


def test_r2_of_labels_that_do_not_vary_is_undefined_not_a_breach() -> None:
    window = RollingScore(regression=True, window=10)
    window.add([1.0], [0.1])
    assert window.summary()["r2"] is None, "one sample: no spread"
    window.add([0.2, 0.3, 0.1], [0.1, 0.1, 0.1])
    summary = window.summary()
    assert summary["r2"] is None, "constant labels (0.1 is inexact in binary)"
    assert summary["rmse"] == pytest.approx(math.sqrt((0.81 + 0.01 + 0.04 + 0) / 4))


def test_huge_labels_keep_the_sums_finite() -> None:
    window = RollingScore(regression=True, window=3)
    window.add([0.0, -1.7e308], [1.7e308, 1.7e308])
    errors = window.errors
    assert all(
        math.isfinite(v) for v in (errors.squared_error, errors.label_sum, errors.label_squares)
    )
    assert window.summary()["rmse"] is not None
