"""The trainer on raw tables: strings, booleans, missing values and string labels in, one
Pipeline out; data checks before fitting; dataset versions in versioned and unversioned
buckets (moto over HTTP)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_operator.api.trainingjob import VALIDATE_AGAINST_ENV
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer import train_command


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv(tm.PATH_ENV, str(path))
    return path


def churn_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Customers: a string city with gaps, a string plan, a numeric age with gaps, a boolean,
    and a string label that depends on them."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lyon", "nice"], rows).astype(object)
    plan = rng.choice(["free", "pro"], rows)
    age = rng.normal(40, 10, rows)
    active = rng.random(rows) > 0.5
    label = np.where((age > 42) | (plan == "pro"), "churn", "stay")
    frame = pd.DataFrame({"city": city, "plan": plan, "age": age, "active": active})
    frame["label"] = label
    frame.loc[rng.random(rows) < 0.1, "age"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "city"] = None
    return frame


def job(tmp_path: Path, uri: str, bucket: str | None = None, **spec: Any) -> str:
    doc = {
        "kind": "TrainingJob",
        "metadata": {"name": "churn-1"},
        "spec": {
            "model": "churn",
            "dataset": {"uri": uri, "target": "label"},
            "estimator": {
                "className": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 20},
            },
            **({"storage": {"bucket": bucket, "prefix": "models"}} if bucket else {}),
            **spec,
        },
    }
    path = tmp_path / "tj.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_raw_table_trains_into_a_pipeline_that_predicts_raw_rows(
    tmp_path: Path, termination_log: Path
) -> None:
    churn_frame().to_csv(tmp_path / "churn.csv", index=False)
    out = tmp_path / "out"
    assert train_command(job(tmp_path, (tmp_path / "churn.csv").as_uri()), out.as_uri() + "/") == 0
    summary = tm.parse_success_message(termination_log.read_text())
    assert summary is not None and summary.metrics["accuracy"] > 0.85

    model = joblib.load(out / "model.joblib")
    raw = pd.DataFrame(
        {
            "city": ["paris", None, "tokyo"],  # a gap, and a city never seen in training
            "plan": ["pro", "free", "free"],
            "age": [30.0, np.nan, 70.0],
            "active": [True, False, True],
        }
    )
    assert list(model.predict(raw)) == ["churn", "stay", "churn"]

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["className"] == "sklearn.ensemble.RandomForestClassifier"
    assert manifest["params"]["n_estimators"] == 20
    assert {s["column"]: (s["kind"], s["impute"]) for s in manifest["preprocessing"]} == {
        "city": ("categorical", "most_frequent"),
        "plan": ("categorical", "most_frequent"),
        "age": ("numeric", "median"),
        "active": ("categorical", "most_frequent"),
    }
    schema = json.loads((out / "schema.json").read_text())
    assert schema["columns"]["plan"]["categories"] == ["free", "pro"]
    assert schema["columns"]["age"]["nullable"] is True
    assert set(schema["label"]["shares"]) == {"churn", "stay"}
    card = (out / "card.md").read_text()
    assert "| city | categorical | most_frequent | onehot |" in card
    assert "accuracy" in json.loads((out / "card.json").read_text())["metrics"]


def test_declared_preprocessing_scales_drops_and_encodes_as_asked(
    tmp_path: Path, termination_log: Path
) -> None:
    churn_frame().to_csv(tmp_path / "churn.csv", index=False)
    out = tmp_path / "out"
    preprocessing = {
        "numeric": {"scale": "standard"},
        "columns": [{"name": "active", "drop": True}, {"name": "city", "encode": "ordinal"}],
    }
    path = job(tmp_path, (tmp_path / "churn.csv").as_uri(), preprocessing=preprocessing)
    assert train_command(path, out.as_uri() + "/") == 0
    steps = {
        s["column"]: s for s in json.loads((out / "manifest.json").read_text())["preprocessing"]
    }
    assert steps["age"]["scale"] == "standard"
    assert steps["active"] == {"column": "active", "kind": "categorical", "dropped": True}
    assert steps["city"]["encode"] == "ordinal"
    model = joblib.load(out / "model.joblib")
    assert model.named_steps["preprocess"].get_feature_names_out().tolist() == [
        "city",
        "plan_free",
        "plan_pro",
        "age",
    ]


def test_a_numeric_complete_dataset_trains_the_bare_estimator(
    tmp_path: Path, termination_log: Path
) -> None:
    frame = churn_frame()[["age"]].fillna(40.0)
    frame["label"] = (frame["age"] > 40).astype(int)
    frame.to_csv(tmp_path / "n.csv", index=False)
    out = tmp_path / "out"
    assert train_command(job(tmp_path, (tmp_path / "n.csv").as_uri()), out.as_uri() + "/") == 0
    model = joblib.load(out / "model.joblib")
    assert type(model).__name__ == "RandomForestClassifier"
    assert json.loads((out / "manifest.json").read_text())["preprocessing"] is None


def _reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Train once on the clean table; point the next run's checks at its schema.json."""
    churn_frame().to_csv(tmp_path / "v1.csv", index=False)
    first = tmp_path / "v1"
    assert train_command(job(tmp_path, (tmp_path / "v1.csv").as_uri()), first.as_uri() + "/") == 0
    schema_uri = (first / "schema.json").as_uri()
    monkeypatch.setenv(
        VALIDATE_AGAINST_ENV, json.dumps({"name": "churn-v1", "schemaUri": schema_uri})
    )
    return first


def test_a_broken_dataset_is_stopped_before_fitting_with_its_columns_named(
    tmp_path: Path, termination_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reference(tmp_path, monkeypatch)
    broken = churn_frame(seed=1).rename(columns={"plan": "tier"})
    broken["age"] = broken["age"].astype(str).str.replace(".", ",")
    broken.to_csv(tmp_path / "v2.csv", index=False)
    out = tmp_path / "v2"
    path = job(
        tmp_path,
        (tmp_path / "v2.csv").as_uri(),
        dataset={
            "uri": (tmp_path / "v2.csv").as_uri(),
            "target": "label",
            "features": ["city", "age", "active"],
        },
    )
    assert train_command(path, out.as_uri() + "/") == tm.EXIT_DATA_VALIDATION
    reason, message = tm.parse_termination_message(termination_log.read_text())
    assert reason == tm.DATA_VALIDATION_FAILED
    text, findings = tm.split_findings(message)
    assert "against churn-v1" in text and "(columns: age)" in text
    assert {(f["check"], f.get("column"), f["severity"]) for f in findings} >= {
        ("typeChanged", "age", "error"),
    }
    assert not out.exists()  # nothing fitted, nothing written


def test_missing_columns_few_rows_and_gaps_are_errors_and_drift_a_warning(
    tmp_path: Path, termination_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reference(tmp_path, monkeypatch)
    frame = churn_frame(rows=200, seed=2)
    frame.loc[frame.index[:120], "city"] = None
    frame["age"] = frame["age"] + 25  # shifted: drift and values out of range
    frame.drop(columns=["plan"]).to_csv(tmp_path / "v2.csv", index=False)
    path = job(
        tmp_path,
        (tmp_path / "v2.csv").as_uri(),
        validation={"data": {"minRows": 250}},
    )
    # The spec's features default to every column of the new table: plan is missing from it.
    assert train_command(path, (tmp_path / "v2").as_uri() + "/") == tm.EXIT_DATA_VALIDATION
    _, message = tm.parse_termination_message(termination_log.read_text())
    _, findings = tm.split_findings(message)
    found = {(f["check"], f.get("column")): f["severity"] for f in findings}
    assert found[("tooFewRows", None)] == "error"
    assert found[("missingShare", "city")] == "error"
    assert found[("drift", "age")] == "warning"
    assert found[("outOfRange", "age")] == "warning"


def test_warnings_alone_let_the_training_run_and_reach_the_card(
    tmp_path: Path, termination_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reference(tmp_path, monkeypatch)
    frame = churn_frame(seed=3)
    frame.loc[frame.index[:30], "city"] = "tokyo"
    frame.to_csv(tmp_path / "v2.csv", index=False)
    out = tmp_path / "v2"
    assert train_command(job(tmp_path, (tmp_path / "v2.csv").as_uri()), out.as_uri() + "/") == 0
    card = json.loads((out / "card.json").read_text())
    assert card["validation"]["against"] == "churn-v1"
    assert card["lineage"]["parentVersion"] == "churn-v1"
    assert [(f["check"], f["column"]) for f in card["validation"]["findings"]][:1] == [
        ("newCategories", "city")
    ]
    assert "'tokyo'" in (out / "card.md").read_text()


def _upload(bucket: str, key: str, frame: pd.DataFrame) -> dict[str, Any]:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def test_a_pinned_version_trains_on_the_old_object_after_an_overwrite(
    bucket: str, tmp_path: Path, termination_log: Path
) -> None:
    boto3.client("s3").put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    first = _upload(bucket, "data/churn.parquet", churn_frame(seed=4))
    uri = f"s3://{bucket}/data/churn.parquet"
    assert train_command(job(tmp_path, uri, bucket), f"s3://{bucket}/runs/a/") == 0
    _upload(bucket, "data/churn.parquet", churn_frame(rows=120, seed=5))

    manifest_a = json.loads(
        boto3.client("s3").get_object(Bucket=bucket, Key="runs/a/manifest.json")["Body"].read()
    )
    assert manifest_a["dataset"]["versionId"] == first["VersionId"]
    assert manifest_a["dataset"]["rows"] == 300
    # Training again from the lineage's spec reads the pinned, overwritten version.
    pinned = manifest_a["lineage"]["trainingSpec"]
    assert pinned["dataset"]["versionId"] == first["VersionId"]
    (tmp_path / "again.yaml").write_text(
        yaml.safe_dump({"kind": "TrainingJob", "metadata": {"name": "churn-1"}, "spec": pinned})
    )
    assert train_command(str(tmp_path / "again.yaml"), f"s3://{bucket}/runs/b/") == 0
    manifest_b = json.loads(
        boto3.client("s3").get_object(Bucket=bucket, Key="runs/b/manifest.json")["Body"].read()
    )
    assert manifest_b["dataset"]["rows"] == 300
    assert manifest_b["dataset"]["digest"] == manifest_a["dataset"]["digest"]
    assert manifest_b["metrics"] == manifest_a["metrics"]

    # Unpinned, the current object (120 rows) is read.
    assert train_command(job(tmp_path, uri, bucket), f"s3://{bucket}/runs/c/") == 0
    manifest_c = json.loads(
        boto3.client("s3").get_object(Bucket=bucket, Key="runs/c/manifest.json")["Body"].read()
    )
    assert manifest_c["dataset"]["rows"] == 120
    assert manifest_c["dataset"]["versionId"] != first["VersionId"]


def test_an_unversioned_bucket_records_etag_and_last_modified(
    bucket: str, tmp_path: Path, termination_log: Path
) -> None:
    put = _upload(bucket, "data/churn.parquet", churn_frame(seed=6))
    uri = f"s3://{bucket}/data/churn.parquet"
    assert train_command(job(tmp_path, uri, bucket), f"s3://{bucket}/runs/a/") == 0
    manifest = json.loads(
        boto3.client("s3").get_object(Bucket=bucket, Key="runs/a/manifest.json")["Body"].read()
    )
    dataset = manifest["dataset"]
    assert dataset["versionId"] is None
    assert dataset["etag"] == put["ETag"]
    assert dataset["lastModified"] and dataset["digest"].startswith("sha256:")
    assert "versionId" not in manifest["lineage"]["trainingSpec"]["dataset"]


def test_a_version_id_that_does_not_exist_is_dataset_not_found(
    bucket: str, tmp_path: Path, termination_log: Path
) -> None:
    boto3.client("s3").put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    _upload(bucket, "data/churn.parquet", churn_frame(seed=7))
    uri = f"s3://{bucket}/data/churn.parquet"
    path = job(tmp_path, uri, bucket, dataset={"uri": uri, "target": "label", "versionId": "nope"})
    assert train_command(path, f"s3://{bucket}/runs/a/") == tm.EXIT_FAILURE
    reason, message = tm.parse_termination_message(termination_log.read_text())
    assert reason == tm.DATASET_NOT_FOUND and "no version 'nope'" in message
