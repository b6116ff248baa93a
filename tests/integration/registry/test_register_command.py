"""``mlops-operator register`` as a user runs it: a process with the sandbox's kubeconfig and
S3 variables, talking to the API emulator and the sandbox S3 over sockets."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlops_sandbox.apiserver import Fault
from mlops_sandbox.cluster import BUCKET, Sandbox

pytestmark = pytest.mark.timeout(120)

CLI = str(Path(sys.executable).parent / "mlops-operator")


@pytest.fixture
def iris_file(tmp_path: Path) -> Path:
    x, y = load_iris(return_X_y=True)
    path = tmp_path / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), path)
    return path


def register(sandbox: Sandbox, *args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CLI, "register", *map(str, args)],
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def keys(s3: Any, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_register_uploads_the_model_with_a_manifest_and_creates_its_modelversion(
    sandbox: Sandbox, namespace: str, resources: Any, s3: Any, iris_file: Path
) -> None:
    digest = "sha256:" + hashlib.sha256(iris_file.read_bytes()).hexdigest()
    result = register(
        sandbox, iris_file, "--model", "iris", "-n", namespace,
        "--metric", "accuracy=0.97", "--gate", "accuracy>=0.9",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"modelversion.mlops.dev/iris-v1 created in {namespace}" in result.stdout

    mv = resources.get("modelversions", "iris-v1")
    assert mv is not None
    spec = mv["spec"]
    prefix = f"models/{namespace}/iris/1/"
    assert spec["artifact"]["uri"] == f"s3://{BUCKET}/{prefix}"
    assert spec["artifact"]["digest"] == digest
    assert spec["task"] == "classification"
    assert spec["metrics"] == {"accuracy": 0.97}
    assert spec["gates"] == [{"metric": "accuracy", "min": 0.9}]
    assert "endpoint" not in spec["artifact"], "the operator's default endpoint applies"
    assert mv["metadata"]["labels"]["mlops.dev/model"] == "iris"

    assert keys(s3, prefix) == [prefix + "manifest.json", prefix + "model.joblib"]
    uploaded = s3.get_object(Bucket=BUCKET, Key=prefix + "model.joblib")["Body"].read()
    assert "sha256:" + hashlib.sha256(uploaded).hexdigest() == digest
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "manifest.json")["Body"].read())
    assert manifest["digest"] == digest
    assert manifest["features"] == ["x0", "x1", "x2", "x3"]
    assert manifest["classes"] == [0, 1, 2]
    assert manifest["task"] == "classification"
    assert manifest["className"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert manifest["registeredBy"] == "mlops-operator register"

    # The next registration of the model takes the next number, and its own directory.
    again = register(sandbox, iris_file, "--model", "iris", "-n", namespace,
                     "--features", "sl,sw,pl,pw")  # fmt: skip
    assert again.returncode == 0, again.stderr
    second = resources.get("modelversions", "iris-v2")
    assert second is not None
    assert second["spec"]["artifact"]["uri"] == f"s3://{BUCKET}/models/{namespace}/iris/2/"
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"models/{namespace}/iris/2/manifest.json")["Body"].read()
    )
    assert manifest["features"] == ["sl", "sw", "pl", "pw"]


def test_reference_data_becomes_reference_json_under_the_models_feature_names(
    sandbox: Sandbox, namespace: str, s3: Any, iris_file: Path, tmp_path: Path
) -> None:
    frame = load_iris(as_frame=True).data
    frame.columns = ["sl", "sw", "pl", "pw"]
    frame.to_csv(tmp_path / "train.csv", index=False)
    args = ("--model", "iris", "-n", namespace, "--reference-data", tmp_path / "train.csv")

    unnamed = register(sandbox, iris_file, *args)
    assert unnamed.returncode == 1
    assert "has no column for features ['x0', 'x1', 'x2', 'x3']" in unnamed.stderr
    assert "name the model's features with --features" in unnamed.stderr
    assert keys(s3, f"models/{namespace}/") == []

    named = register(sandbox, iris_file, *args, "--features", "sl,sw,pl,pw")
    assert named.returncode == 0, named.stderr
    prefix = f"models/{namespace}/iris/1/"
    assert keys(s3, prefix) == [
        prefix + f for f in ("manifest.json", "model.joblib", "reference.json")
    ]
    reference = json.loads(
        s3.get_object(Bucket=BUCKET, Key=prefix + "reference.json")["Body"].read()
    )
    assert sorted(reference["features"]) == ["pl", "pw", "sl", "sw"]
    assert reference["features"]["sl"]["edges"][0] >= frame["sl"].min()


def test_dry_run_prints_the_modelversion_and_touches_nothing(
    sandbox: Sandbox, namespace: str, resources: Any, s3: Any, iris_file: Path
) -> None:
    result = register(sandbox, iris_file, "--model", "iris", "-n", namespace, "--dry-run")
    assert result.returncode == 0, result.stderr
    mv = yaml.safe_load(result.stdout)
    assert mv["kind"] == "ModelVersion"
    assert mv["metadata"] == {
        "name": "iris-v1",
        "namespace": namespace,
        "labels": {"mlops.dev/model": "iris", "mlops.dev/version": "1"},
    }
    assert mv["spec"]["artifact"]["uri"] == f"s3://{BUCKET}/models/{namespace}/iris/1/"
    assert "dry run: would upload" in result.stderr
    assert resources.list("modelversions") == []
    assert keys(s3, f"models/{namespace}/") == []


def test_a_taken_version_or_a_used_directory_is_refused_and_nothing_is_overwritten(
    sandbox: Sandbox, namespace: str, resources: Any, s3: Any, iris_file: Path
) -> None:
    assert register(sandbox, iris_file, "--model", "iris", "-n", namespace).returncode == 0
    before = s3.head_object(Bucket=BUCKET, Key=f"models/{namespace}/iris/1/model.joblib")

    taken = register(sandbox, iris_file, "--model", "iris", "-n", namespace, "--version", "1")
    assert taken.returncode == 1
    assert f"ModelVersion {namespace}/iris-v1 already exists" in taken.stderr

    s3.put_object(Bucket=BUCKET, Key=f"models/{namespace}/iris/7/notes.txt", Body=b"left over")
    used = register(sandbox, iris_file, "--model", "iris", "-n", namespace, "--version", "7")
    assert used.returncode == 1
    assert f"s3://{BUCKET}/models/{namespace}/iris/7/ already holds files" in used.stderr
    assert keys(s3, f"models/{namespace}/iris/7/") == [f"models/{namespace}/iris/7/notes.txt"]
    assert resources.get("modelversions", "iris-v7") is None
    after = s3.head_object(Bucket=BUCKET, Key=f"models/{namespace}/iris/1/model.joblib")
    assert after["ETag"] == before["ETag"]


def test_a_conflict_on_create_removes_the_upload_and_says_so(
    sandbox: Sandbox, namespace: str, resources: Any, s3: Any, iris_file: Path
) -> None:
    fault = sandbox.inject(
        Fault(status=409, verb="create", resource="modelversions", namespace=namespace)
    )
    try:
        result = register(sandbox, iris_file, "--model", "iris", "-n", namespace)
    finally:
        sandbox.clear_faults()
    assert fault.hits == 1
    assert result.returncode == 1
    assert "was created meanwhile by someone else; the upload was removed" in result.stderr
    assert keys(s3, f"models/{namespace}/") == []


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda path: path.write_bytes(b"not a pickle"), "cannot be loaded with joblib"),
        (lambda path: joblib.dump([1, 2, 3], path), "holds a builtins.list, not a model"),
        (lambda path: joblib.dump(LogisticRegression(), path), "never fitted"),
        (lambda path: None, "does not exist or is not a file"),
    ],
)
def test_what_is_not_a_model_is_one_line_and_exit_code_1(
    sandbox: Sandbox, namespace: str, s3: Any, tmp_path: Path, make: Any, expected: str
) -> None:
    path = tmp_path / "model.joblib"
    make(path)
    result = register(sandbox, path, "--model", "iris", "-n", namespace)
    assert result.returncode == 1
    assert result.stderr.startswith("mlops-operator register: ")
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert keys(s3, f"models/{namespace}/") == []
