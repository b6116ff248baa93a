"""examples/upload-datasets.py against a real S3 endpoint (moto over HTTP): it writes exactly
the datasets the example TrainingJobs read, in the shape they expect."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlops_sandbox.s3 import S3Server, client_from_env

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "examples" / "upload-datasets.py"
KUSTOMIZATION = yaml.safe_load((ROOT / "examples" / "kustomization.yaml").read_text())


def _upload(server: S3Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **server.env()}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120
    )


def _trainingjobs() -> list[dict[str, Any]]:
    docs = [
        doc
        for name in KUSTOMIZATION["resources"]
        for doc in yaml.safe_load_all((ROOT / "examples" / name).read_text())
    ]
    return [doc for doc in docs if doc and doc["kind"] == "TrainingJob"]


def test_uploads_every_dataset_the_applied_trainingjobs_read() -> None:
    with S3Server(buckets=("mlops-artifacts",)) as server:
        result = _upload(server)
        assert result.returncode == 0, result.stderr
        s3 = client_from_env(server.env())
        jobs = _trainingjobs()
        assert len(jobs) == 3
        for job in jobs:
            dataset = job["spec"]["dataset"]
            bucket, _, key = dataset["uri"].removeprefix("s3://").partition("/")
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            frame = (
                pd.read_parquet(io.BytesIO(body))
                if key.endswith(".parquet")
                else pd.read_csv(io.BytesIO(body))
            )
            assert dataset["target"] in frame.columns
            assert len(frame) > 100
        s3.close()
    assert "sed -i" not in result.stdout  # the default location is the examples' own


def test_another_bucket_says_how_to_point_the_examples_there() -> None:
    with S3Server(buckets=("team-bucket",)) as server:
        result = _upload(server, "--bucket", "team-bucket", "--prefix", "ml/data")
    assert result.returncode == 0, result.stderr
    assert "uploaded s3://team-bucket/ml/data/breast-cancer.csv" in result.stdout
    assert "s#s3://mlops-artifacts/datasets/#s3://team-bucket/ml/data/#" in result.stdout


def test_a_missing_bucket_is_one_clear_line_not_a_traceback() -> None:
    with S3Server(buckets=()) as server:
        result = _upload(server, "--bucket", "nope")
    assert result.returncode == 1
    assert result.stderr.startswith("upload-datasets: cannot write to s3://nope/")
    assert "Traceback" not in result.stderr
