"""Reference statistics of the training split and the population stability index."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlops_operator.runtime.refstats import (
    bin_proportions,
    category_psi,
    feature_stats,
    psi,
    reference_stats,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_continuous_features_get_ten_equal_quantile_bins(rng: np.random.Generator) -> None:
    stats = feature_stats(rng.normal(size=10_000))
    assert len(stats["edges"]) == 9
    assert len(stats["proportions"]) == 10
    assert stats["proportions"] == pytest.approx([0.1] * 10, abs=1e-3)
    assert stats["count"] == 10_000
    assert stats["mean"] == pytest.approx(0, abs=0.05)
    assert stats["std"] == pytest.approx(1, abs=0.05)


def test_identical_distribution_has_psi_near_zero(rng: np.random.Generator) -> None:
    stats = feature_stats(rng.normal(size=5_000))
    assert psi(stats, rng.normal(size=5_000)) < 0.02


def test_shifted_distribution_has_psi_above_a_quarter(rng: np.random.Generator) -> None:
    stats = feature_stats(rng.normal(size=5_000))
    assert psi(stats, rng.normal(loc=1.0, size=5_000)) > 0.25


def test_values_outside_the_training_range_land_in_the_outer_bins() -> None:
    stats = feature_stats(np.arange(100, dtype=float))
    proportions = bin_proportions(stats["edges"], [-1e9, 1e9])
    assert proportions[0] == 0.5 and proportions[-1] == 0.5


def test_a_constant_column_still_detects_a_move_away_from_the_constant() -> None:
    stats = feature_stats([3.0] * 50)
    assert stats["std"] == 0.0 and stats["min"] == stats["max"] == 3.0
    assert psi(stats, [3.0] * 50) == pytest.approx(0.0)
    assert psi(stats, [4.0] * 50) > 0.25


def test_a_binary_column_detects_a_change_in_balance(rng: np.random.Generator) -> None:
    stats = feature_stats(rng.integers(0, 2, size=2_000))
    assert psi(stats, rng.integers(0, 2, size=2_000)) < 0.02
    assert psi(stats, (rng.random(2_000) < 0.9).astype(int)) > 0.25


def test_missing_values_are_counted_and_ignored_by_the_bins() -> None:
    stats = feature_stats([1.0, 2.0, np.nan, 4.0])
    assert stats["missing"] == 0.25
    assert stats["count"] == 3
    assert sum(stats["proportions"]) == pytest.approx(1.0)


def test_an_empty_column_or_no_values_gives_zero_psi() -> None:
    empty = feature_stats([np.nan, np.nan])
    assert empty["edges"] == [] and empty["mean"] is None
    assert psi(empty, [1.0, 2.0]) == 0.0
    assert psi(feature_stats([1.0, 2.0, 3.0]), []) == 0.0


def test_reference_document_is_strict_json() -> None:
    doc = reference_stats({"a": [1.0, 2.0, np.nan], "b": [0.0] * 3})
    assert set(doc["features"]) == {"a", "b"}
    json.dumps(doc, allow_nan=False)


def test_inconsistent_reference_stats_are_refused() -> None:
    with pytest.raises(ValueError, match="2 edges but 2 proportions"):
        psi({"edges": [0.0, 1.0], "proportions": [0.5, 0.5]}, [0.3])


def test_category_psi_is_low_for_the_training_mix_and_high_for_another() -> None:
    reference = {"basic": 0.5, "plus": 0.3, "pro": 0.2}
    same = ["basic"] * 50 + ["plus"] * 30 + ["pro"] * 20 + [None] * 40
    assert category_psi(reference, same) == pytest.approx(0.0, abs=1e-9)
    assert category_psi(reference, ["pro"] * 80 + ["basic"] * 20) > 1
    assert category_psi(reference, []) == 0.0


def test_unseen_categories_share_one_bucket() -> None:
    reference = {"basic": 0.5, "pro": 0.5}
    one_new = ["basic"] * 45 + ["pro"] * 45 + ["gold"] * 10
    ids = ["basic"] * 45 + ["pro"] * 45 + [f"id{i}" for i in range(10)]
    assert category_psi(reference, ids) == pytest.approx(category_psi(reference, one_new))
    assert 0.05 < category_psi(reference, one_new) < 1
