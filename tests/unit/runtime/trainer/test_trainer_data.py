"""The dataset: its format, its columns, its labelled rows and the held-out split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_operator.artifacts.store import ArtifactStore, parse_uri
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.data import (
    dataset_format,
    labelled_rows,
    load_dataset,
    select_columns,
    split_holdout,
)
from mlops_operator.runtime.trainer.failure import TrainingFailure

URI = "s3://data/d.csv"


def test_the_format_comes_from_the_declaration_else_the_extension() -> None:
    assert dataset_format(parse_uri("s3://data/d.CSV.gz"), None) == "csv"
    assert dataset_format(parse_uri("s3://data/d.pq"), None) == "parquet"
    assert dataset_format(parse_uri("s3://data/d.bin"), "parquet") == "parquet"
    with pytest.raises(TrainingFailure, match="set spec.dataset.format") as caught:
        dataset_format(parse_uri("s3://data/d.bin"), None)
    assert caught.value.reason == tm.INVALID_SPEC


def test_a_local_csv_is_read_with_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n")
    frame, digest, version = load_dataset(ArtifactStore(), path.as_uri(), None, tmp_path)
    assert list(frame.columns) == ["a", "b", "y"] and len(frame) == 2
    assert digest.startswith("sha256:")
    assert version.size == path.stat().st_size and version.version_id is None
    assert version.last_modified is not None


def test_a_missing_local_file_is_dataset_not_found(tmp_path: Path) -> None:
    with pytest.raises(TrainingFailure) as caught:
        load_dataset(ArtifactStore(), (tmp_path / "nope.csv").as_uri(), None, tmp_path)
    assert caught.value.reason == tm.DATASET_NOT_FOUND


def test_a_file_that_is_not_parquet_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(TrainingFailure) as caught:
        load_dataset(ArtifactStore(), path.as_uri(), None, tmp_path)
    assert caught.value.reason == tm.DATASET_UNREADABLE


def test_all_columns_but_the_target_are_features_by_default() -> None:
    frame = pd.DataFrame({"a": [1], "y": [0], "b": [2.0]})
    assert select_columns(frame, "y", None, URI, "classification") == ["a", "b"]
    assert select_columns(frame, "y", ["b"], URI, "classification") == ["b"]


def test_a_target_listed_among_the_features_is_refused() -> None:
    frame = pd.DataFrame({"a": [1], "y": [0]})
    with pytest.raises(TrainingFailure, match="also listed") as caught:
        select_columns(frame, "y", ["a", "y"], URI, "classification")
    assert caught.value.reason == tm.INVALID_SPEC


def test_a_long_column_list_is_cut_in_the_message() -> None:
    frame = pd.DataFrame({f"c{i}": [i] for i in range(50)})
    with pytest.raises(TrainingFailure, match=r"c39 \(and 10 more\)$") as caught:
        select_columns(frame, "y", None, URI, "classification")
    assert caught.value.reason == tm.MISSING_COLUMN


def test_a_regression_needs_a_numeric_target() -> None:
    frame = pd.DataFrame({"a": [1, 2], "y": ["low", "high"]})
    with pytest.raises(TrainingFailure, match="needs a numeric target") as caught:
        select_columns(frame, "y", None, URI, "regression")
    assert caught.value.reason == tm.NON_NUMERIC_FEATURE


def test_rows_without_a_target_are_dropped_and_none_at_all_is_refused() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "y": [0.0, None, 1.0]})
    assert list(labelled_rows(frame, "y", URI)["a"]) == [1, 3]
    with pytest.raises(TrainingFailure, match="has no value in target 'y'") as caught:
        labelled_rows(frame.assign(y=None), "y", URI)
    assert caught.value.reason == tm.DATASET_UNREADABLE


def test_a_class_with_a_single_row_falls_back_to_a_plain_split() -> None:
    frame = pd.DataFrame({"a": range(10), "y": [0] * 9 + [1]})
    x_train, x_test, y_train, y_test = split_holdout(
        frame[["a"]], frame["y"], "classification", 0.2, 0, stratify=True
    )
    assert (len(x_train), len(x_test)) == (8, 2)
    assert sorted([*y_train, *y_test]) == sorted(frame["y"])


def test_a_split_that_leaves_no_training_rows_is_a_training_error() -> None:
    frame = pd.DataFrame({"a": [1], "y": [1.0]})
    with pytest.raises(TrainingFailure, match="cannot split 1 rows") as caught:
        split_holdout(frame[["a"]], frame["y"], "regression", 0.2, 0, stratify=False)
    assert caught.value.reason == tm.TRAINING_ERROR
