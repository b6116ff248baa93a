"""What a run leaves behind: the default location, the files, the manifest last."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.artifacts.layout import CARD_FILE, CARD_JSON_FILE
from mlops_operator.artifacts.store import ArtifactStore, ArtifactUri, parse_uri
from mlops_operator.runtime.trainer.output import (
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    RunRecord,
    default_output_uri,
    json_safe,
    manifest_document,
    write_artifacts,
)
from mlops_operator.settings import Settings

SPEC = TrainingJobSpec.model_validate(
    {
        "model": "iris",
        "dataset": {"uri": "s3://data/iris.csv", "target": "species"},
        "estimator": {"className": "sklearn.linear_model.LogisticRegression"},
    }
)
RECORD = RunRecord(
    model="iris",
    training_job="iris-1",
    class_name="sklearn.linear_model.LogisticRegression",
    task="classification",
    features=["a", "b"],
    target="y",
    classes=[np.int64(0), np.int64(1)],
    metrics={"accuracy": 0.75},
    dataset_uri="file:///data/iris.csv",
    dataset_digest="sha256:" + "0" * 64,
    rows=10,
    train_rows=8,
    test_rows=2,
    fit_seconds=0.012,
)


class RecordingStore(ArtifactStore):
    """A local store that remembers the order of its writes and deletes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def write_bytes(self, uri: str | ArtifactUri, data: bytes) -> None:
        self.calls.append(("write", Path(str(uri)).name))
        super().write_bytes(uri, data)

    def upload_file(self, path: Any, uri: str | ArtifactUri) -> None:
        self.calls.append(("write", Path(str(uri)).name))
        super().upload_file(path, uri)

    def delete(self, uri: str | ArtifactUri) -> None:
        self.calls.append(("delete", Path(str(uri)).name))
        super().delete(uri)


def fitted() -> LogisticRegression:
    return LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0], [0.0, 0.9], [1.0, 0.1]], [0, 1, 0, 1])


def test_default_output_comes_from_settings_and_spec() -> None:
    settings = Settings(s3_bucket="artifacts", s3_prefix="/models/")
    assert (
        default_output_uri(SPEC, "run-1", settings)
        == "s3://artifacts/models/_local/iris/runs/run-1/"
    )
    spec = SPEC.model_copy(
        update={"storage": SPEC.storage.model_copy(update={"bucket": "b2", "prefix": ""})}
    )
    assert default_output_uri(spec, None, settings) == "s3://b2/_local/iris/runs/local/"


def test_json_safe_unwraps_numpy_and_spells_out_what_json_cannot_hold() -> None:
    value = {
        1: np.float32(0.5),
        "array": np.array([1, 2]),
        "nan": math.nan,
        "nested": (LogisticRegression, None, True),
    }
    assert json_safe(value) == {
        "1": 0.5,
        "array": [1, 2],
        "nan": "nan",
        "nested": [repr(LogisticRegression), None, True],
    }


def test_the_stale_manifest_goes_first_and_the_new_one_is_written_last(tmp_path: Path) -> None:
    out = parse_uri((tmp_path / "run").as_uri()).as_dir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / MANIFEST_FILE).write_text('{"digest": "stale"}')
    store = RecordingStore()
    work = tmp_path / "work"
    work.mkdir()
    write_artifacts(store, out, work, estimator=fitted(), reference={"features": {}}, record=RECORD)
    assert store.calls == [
        ("delete", MANIFEST_FILE),
        ("write", REFERENCE_FILE),
        ("write", METRICS_FILE),
        ("write", MODEL_FILE),
        ("write", CARD_JSON_FILE),
        ("write", CARD_FILE),
        ("write", MANIFEST_FILE),
    ]


def test_the_manifest_vouches_for_the_model_file_it_sits_next_to(tmp_path: Path) -> None:
    out = parse_uri((tmp_path / "run").as_uri()).as_dir()
    work = tmp_path / "work"
    work.mkdir()
    estimator = fitted()
    digest = write_artifacts(
        ArtifactStore(), out, work, estimator=estimator, reference={"features": {}}, record=RECORD
    )
    run = tmp_path / "run"
    model_bytes = (run / MODEL_FILE).read_bytes()
    assert digest == "sha256:" + hashlib.sha256(model_bytes).hexdigest()
    manifest = json.loads((run / MANIFEST_FILE).read_text())
    assert manifest["digest"] == digest
    assert manifest["classes"] == [0, 1]
    assert json.loads((run / METRICS_FILE).read_text()) == {"accuracy": 0.75}
    assert json.loads((run / REFERENCE_FILE).read_text()) == {"features": {}}
    assert joblib.load(run / MODEL_FILE).get_params() == estimator.get_params()


def test_the_manifest_lists_its_fields_in_a_stable_order() -> None:
    doc = manifest_document(RECORD, fitted(), "sha256:" + "1" * 64, "2025-01-01T00:00:00Z")
    assert list(doc) == [
        "digest",
        "model",
        "trainingJob",
        "framework",
        "frameworkVersion",
        "pythonVersion",
        "joblibVersion",
        "className",
        "params",
        "task",
        "features",
        "target",
        "classes",
        "metrics",
        "dataset",
        "preprocessing",
        "split",
        "validation",
        "lineage",
        "fitSeconds",
        "createdAt",
    ]
    assert doc["dataset"] == {
        "uri": "file:///data/iris.csv",
        "digest": "sha256:" + "0" * 64,
        "versionId": None,
        "etag": None,
        "lastModified": None,
        "rows": 10,
        "trainRows": 8,
        "testRows": 2,
    }
    assert doc["params"]["C"] == 1.0


def test_a_regressor_manifest_has_no_classes() -> None:
    record = RunRecord(**{**RECORD.__dict__, "task": "regression", "classes": []})
    doc = manifest_document(record, fitted(), "sha256:" + "1" * 64, "2025-01-01T00:00:00Z")
    assert doc["classes"] is None
