"""The termination message: format, parse, write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_operator.runtime import termination as tm


@pytest.mark.parametrize("reason", sorted(tm.FAILURE_REASONS))
def test_every_failure_reason_round_trips(reason: str) -> None:
    text = tm.format_failure(reason, "something went wrong: details")
    assert tm.parse_termination_message(text) == (reason, "something went wrong: details")


def test_a_failure_is_one_line() -> None:
    text = tm.format_failure(tm.TRAINING_ERROR, "line one\nline two\n\tindented")
    assert text == "TrainingError: line one line two indented"


def test_a_long_failure_is_cut_to_4096_bytes() -> None:
    text = tm.format_failure(tm.TRAINING_ERROR, "é" * 5000)
    assert len(text.encode()) <= tm.MAX_BYTES
    assert tm.parse_termination_message(text)[0] == tm.TRAINING_ERROR


def test_unknown_reasons_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="unknown failure reason"):
        tm.format_failure("Oops", "x")


def test_text_without_a_known_reason_is_a_training_error() -> None:
    assert tm.parse_termination_message("Traceback (most recent call last):\n  ...") == (
        tm.TRAINING_ERROR,
        "Traceback (most recent call last):\n  ...",
    )


def test_success_round_trips() -> None:
    summary = tm.TrainingSummary(
        digest="sha256:" + "0" * 64, artifact_uri="s3://b/m/runs/x/", metrics={"accuracy": 0.97}
    )
    text = tm.format_success(summary)
    assert "\n" not in text
    assert json.loads(text) == {
        "digest": summary.digest,
        "metrics": {"accuracy": 0.97},
        "artifactUri": "s3://b/m/runs/x/",
    }
    assert tm.parse_success_message(text) == summary
    assert tm.parse_success_message("TrainingError: x") is None


def test_oversized_success_drops_metrics_but_stays_valid() -> None:
    metrics = {f"metric{i}": 0.5 for i in range(500)}
    text = tm.format_success(tm.TrainingSummary("sha256:" + "0" * 64, "s3://b/x/", metrics))
    assert len(text.encode()) <= tm.MAX_BYTES
    assert json.loads(text)["metrics"] == {}


def test_the_message_goes_to_the_configured_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "termination-log"
    monkeypatch.setenv(tm.PATH_ENV, str(path))
    tm.write_termination_message("InvalidSpec: x")
    assert path.read_text() == "InvalidSpec: x"


def test_an_unwritable_path_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tm.PATH_ENV, str(tmp_path / "missing-dir" / "log"))
    tm.write_termination_message("InvalidSpec: x")


def test_exit_code_separates_bad_input_storage_and_training_failures() -> None:
    from mlops_operator.runtime import termination as tm

    assert tm.exit_code_for(tm.MISSING_COLUMN) == tm.EXIT_PERMANENT
    assert tm.exit_code_for(tm.UNKNOWN_ESTIMATOR) == tm.EXIT_PERMANENT
    assert tm.exit_code_for(tm.STORAGE_UNREACHABLE) == tm.EXIT_STORAGE
    assert tm.exit_code_for(tm.DATASET_UNREADABLE) == tm.EXIT_FAILURE
    assert tm.exit_code_for(tm.TRAINING_ERROR) == tm.EXIT_FAILURE
    assert len({tm.EXIT_PERMANENT, tm.EXIT_STORAGE, tm.EXIT_FAILURE}) == 3
