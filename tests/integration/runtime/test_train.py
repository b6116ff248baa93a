"""The trainer end to end: real datasets, a real S3 endpoint (moto over HTTP), real files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import joblib
import pytest
import yaml

from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer import TRAININGJOB_ENV, train_command

CLI = str(Path(sys.executable).parent / "mlops-operator")


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the trainer writes its termination message in these tests."""
    path = tmp_path / "termination-log"
    monkeypatch.setenv(tm.PATH_ENV, str(path))
    return path


@pytest.fixture
def breast_cancer_csv(bucket: str) -> tuple[str, bytes]:
    """scikit-learn's breast-cancer dataset as a CSV object in S3: (uri, file bytes)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame.to_csv(index=False).encode()
    boto3.client("s3").put_object(Bucket=bucket, Key="data/breast_cancer.csv", Body=data)
    return f"s3://{bucket}/data/breast_cancer.csv", data


def trainingjob(name: str, **spec: Any) -> dict[str, Any]:
    """A TrainingJob object as ``kubectl apply`` would take it."""
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def write_manifest(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "trainingjob.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def classifier_job(uri: str, bucket: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "breast-cancer",
        "dataset": {"uri": uri, "target": "target"},
        "estimator": {
            "className": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 30, "max_depth": 6},
        },
        "storage": {"bucket": bucket, "prefix": "models"},
        **overrides,
    }
    return trainingjob("bc-1", **spec)


def test_trains_a_classifier_from_csv_in_s3(
    bucket: str,
    breast_cancer_csv: tuple[str, bytes],
    termination_log: Path,
    tmp_path: Path,
) -> None:
    dataset, csv_bytes = breast_cancer_csv
    manifest = write_manifest(tmp_path, classifier_job(dataset, bucket))

    assert train_command(manifest, None) == 0

    summary = tm.parse_success_message(termination_log.read_text())
    assert summary is not None
    assert summary.artifact_uri == f"s3://{bucket}/models/_local/breast-cancer/runs/bc-1/"
    assert summary.metrics["accuracy"] > 0.9
    assert set(summary.metrics) == {"accuracy", "precision", "recall", "f1", "rocAuc"}

    s3 = boto3.client("s3")
    prefix = "models/_local/breast-cancer/runs/bc-1/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    assert sorted(o["Key"].removeprefix(prefix) for o in listed) == [
        "card.json",
        "card.md",
        "manifest.json",
        "metrics.json",
        "model.joblib",
        "reference.json",
        "schema.json",
    ]

    def get(name: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()

    model_bytes = get("model.joblib")
    manifest_doc = json.loads(get("manifest.json"))
    digest = f"sha256:{hashlib.sha256(model_bytes).hexdigest()}"
    assert manifest_doc["digest"] == digest == summary.digest
    assert manifest_doc["className"] == "sklearn.ensemble.RandomForestClassifier"
    assert manifest_doc["params"]["n_estimators"] == 30
    assert manifest_doc["params"]["random_state"] == 42
    assert manifest_doc["task"] == "classification"
    assert manifest_doc["classes"] == [0, 1]
    assert manifest_doc["target"] == "target"
    assert len(manifest_doc["features"]) == 30
    assert manifest_doc["metrics"] == summary.metrics == json.loads(get("metrics.json"))
    head = s3.head_object(Bucket=bucket, Key="data/breast_cancer.csv")
    assert manifest_doc["dataset"] == {
        "uri": dataset,
        "digest": f"sha256:{hashlib.sha256(csv_bytes).hexdigest()}",
        "versionId": None,
        "etag": head["ETag"],
        "lastModified": head["LastModified"].isoformat(),
        "rows": 569,
        "trainRows": 455,
        "testRows": 114,
    }
    assert manifest_doc["framework"] == "scikit-learn"
    assert manifest_doc["frameworkVersion"] and manifest_doc["joblibVersion"]

    reference = json.loads(get("reference.json"))
    assert list(reference["features"]) == manifest_doc["features"]
    assert reference["features"]["mean radius"]["count"] == 455

    import pandas as pd

    model = joblib.load(io.BytesIO(model_bytes))
    rows = pd.read_csv(io.BytesIO(csv_bytes)).head(5)
    assert list(model.predict(rows[manifest_doc["features"]])) == list(rows["target"])


def test_trains_a_regressor_from_local_parquet(termination_log: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.to_parquet(tmp_path / "diabetes.parquet")
    doc = trainingjob(
        "diabetes",
        model="diabetes",
        dataset={"uri": f"file://{tmp_path}/diabetes.parquet", "target": "target"},
        estimator={"className": "sklearn.linear_model.Ridge", "params": {"alpha": 0.1}},
        validation={"metrics": ["rmse", "r2"]},
    )
    out = tmp_path / "out"

    assert train_command(write_manifest(tmp_path, doc), f"file://{out}") == 0

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "regression"
    assert manifest["classes"] is None
    assert set(manifest["metrics"]) == {"r2", "rmse"}
    assert manifest["metrics"]["r2"] > 0.3
    assert (
        manifest["digest"]
        == f"sha256:{hashlib.sha256((out / 'model.joblib').read_bytes()).hexdigest()}"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "card.json",
        "card.md",
        "manifest.json",
        "metrics.json",
        "model.joblib",
        "reference.json",
        "schema.json",
    ]
    model = joblib.load(out / "model.joblib")
    assert model.predict(frame[manifest["features"]].head(3)).shape == (3,)
    assert json.loads(termination_log.read_text())["artifactUri"] == f"file://{out}/"


def _failure(termination_log: Path) -> tuple[str, str]:
    return tm.parse_termination_message(termination_log.read_text())


@pytest.mark.parametrize(
    ("overrides", "reason", "fragment"),
    [
        ({"estimator": {"className": "os.system"}}, tm.ESTIMATOR_NOT_ALLOWED, "allowed prefixes"),
        (
            {"estimator": {"className": "sklearn.ensemble.NoSuchForest"}},
            tm.UNKNOWN_ESTIMATOR,
            "has no 'NoSuchForest'",
        ),
        (
            {
                "estimator": {
                    "className": "sklearn.tree.DecisionTreeClassifier",
                    "params": {"max_depth": "deep"},
                }
            },
            tm.INVALID_PARAMS,
            "'max_depth'",
        ),
        (
            {"validation": {"metrics": ["accuracy", "auc"]}},
            tm.INVALID_SPEC,
            "unknown classification metric 'auc'",
        ),
    ],
)
def test_spec_failures_are_reported_before_touching_storage(
    overrides: dict[str, Any],
    reason: str,
    fragment: str,
    termination_log: Path,
    tmp_path: Path,
    dead_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint)
    doc = classifier_job("s3://nowhere/data.csv", "nowhere", **overrides)
    assert train_command(write_manifest(tmp_path, doc), None) == tm.exit_code_for(reason)
    got_reason, message = _failure(termination_log)
    assert got_reason == reason
    assert fragment in message


def test_a_missing_target_column_lists_the_columns(
    bucket: str,
    breast_cancer_csv: tuple[str, bytes],
    termination_log: Path,
    tmp_path: Path,
) -> None:
    dataset, _ = breast_cancer_csv
    doc = classifier_job(dataset, bucket, dataset={"uri": dataset, "target": "label"})
    assert train_command(write_manifest(tmp_path, doc), None) == tm.EXIT_PERMANENT
    reason, message = _failure(termination_log)
    assert reason == tm.MISSING_COLUMN
    assert message.startswith(
        f"dataset {dataset} has no column 'label'; columns are: mean radius, mean texture"
    )


def test_a_missing_dataset_is_reported_with_its_uri(
    bucket: str, termination_log: Path, tmp_path: Path
) -> None:
    dataset = f"s3://{bucket}/data/missing.csv"
    assert train_command(write_manifest(tmp_path, classifier_job(dataset, bucket)), None) == 1
    assert _failure(termination_log) == (
        tm.DATASET_NOT_FOUND,
        f"dataset {dataset} does not exist; check spec.dataset.uri",
    )


def test_a_missing_artifact_bucket_fails_before_training(
    breast_cancer_csv: tuple[str, bytes], termination_log: Path, tmp_path: Path
) -> None:
    dataset, _ = breast_cancer_csv
    doc = classifier_job(dataset, "no-such-artifact-bucket")
    assert train_command(write_manifest(tmp_path, doc), None) == 1
    reason, message = _failure(termination_log)
    assert reason == tm.BUCKET_NOT_FOUND
    assert "s3://no-such-artifact-bucket/" in message


def test_an_s3_endpoint_that_is_down_fails_within_seconds_with_the_storage_exit_code(
    s3_env: str,
    dead_endpoint: str,
    termination_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint)
    doc = classifier_job("s3://some-bucket/data.csv", "some-bucket")
    started = time.monotonic()
    # Not a training failure: the Job's podFailurePolicy ignores this exit code.
    assert train_command(write_manifest(tmp_path, doc), None) == tm.EXIT_STORAGE
    assert time.monotonic() - started < 10
    reason, message = _failure(termination_log)
    assert reason == tm.STORAGE_UNREACHABLE
    assert dead_endpoint in message


def test_the_cli_refuses_a_disallowed_class_as_a_permanent_failure(
    tmp_path: Path, termination_log: Path
) -> None:
    doc = trainingjob(
        "evil",
        model="m",
        dataset={"uri": "s3://data/x.csv", "target": "y"},
        estimator={"className": "os.system", "params": {}},
    )
    result = subprocess.run(
        [CLI, "train", "-f", write_manifest(tmp_path, doc)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert result.returncode == tm.EXIT_PERMANENT
    assert "Traceback" not in result.stderr
    assert "estimator class 'os.system' is not allowed" in result.stderr
    assert termination_log.read_text() == (
        "EstimatorNotAllowed: estimator class 'os.system' is not allowed; "
        "allowed prefixes: sklearn."
    )


def test_the_cli_trains_from_the_environment_like_in_a_pod(
    bucket: str,
    breast_cancer_csv: tuple[str, bytes],
    termination_log: Path,
) -> None:
    dataset, _ = breast_cancer_csv
    doc = classifier_job(dataset, bucket)
    env = {**os.environ, TRAININGJOB_ENV: json.dumps(doc)}
    result = subprocess.run([CLI, "train"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "loaded 569 rows × 31 columns from " + dataset in result.stderr
    assert "fitting sklearn.ensemble.RandomForestClassifier" in result.stderr
    summary = json.loads(termination_log.read_text())
    assert summary["artifactUri"] == f"s3://{bucket}/models/_local/breast-cancer/runs/bc-1/"
    assert summary["metrics"]["accuracy"] > 0.9
