"""A raw table, as a user brings it: the example datasets uploaded with the documented script,
``examples/trainingjob-raw-table.yaml`` applied as written, and its model served from raw rows
(text and numeric categories, a boolean, nulls, a category never seen) over HTTP. The answers
are the Pipeline's own, through the compiled table path, and text labels fed back are judged."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import joblib
import pandas as pd
import pytest
import yaml

from mlops_sandbox.cluster import BUCKET, Sandbox
from mlops_sandbox.process import wait_for

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


def test_the_raw_table_example_trains_and_serves_raw_rows(
    sandbox: Sandbox, start_operator: Any, resources: Any, s3: Any, namespace: str
) -> None:
    upload = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "upload-datasets.py")],
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upload.returncode == 0, upload.stderr
    assert f"uploaded s3://{BUCKET}/datasets/churn.parquet" in upload.stdout
    example = yaml.safe_load((ROOT / "examples" / "trainingjob-raw-table.yaml").read_text())
    name = example["metadata"]["name"]

    start_operator()
    resources.create("trainingjobs", "TrainingJob", name, example["spec"])
    trained = resources.wait_status(
        "trainingjobs", name, lambda s: s.get("phase") in ("Succeeded", "Failed"), "to finish"
    )
    assert trained["status"]["phase"] == "Succeeded", trained["status"]
    version = resources.wait_status(
        "modelversions", "churn-v1", lambda s: s.get("phase") == "Ready", "to be Ready"
    )
    resources.create("inferenceservices", "InferenceService", "churn", {"model": "churn"})
    resources.wait_status(
        "inferenceservices", "churn", lambda s: s.get("phase") == "Ready", "to be Ready"
    )
    base = wait_for(
        "the predictor's address", lambda: sandbox.service_address(namespace, "churn-predictor")
    )

    # The fitted Pipeline, read from the artifact as a data scientist would.
    bucket, _, prefix = version["spec"]["artifact"]["uri"].removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/model.joblib")["Body"]
    pipeline = joblib.load(io.BytesIO(body.read()))
    table = pd.read_parquet(
        io.BytesIO(s3.get_object(Bucket=BUCKET, Key="datasets/churn.parquet")["Body"].read())
    )
    rows = table.head(40).drop(columns="churned").astype(object)
    rows.loc[0, "region"] = None
    rows.loc[1, "tenure_months"] = None
    rows.loc[2, "region"] = "antarctica"  # never seen: encoded as no known region
    instances = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in rows.to_dict(orient="records")
    ]
    expected = pipeline.predict(rows.infer_objects()).tolist()

    with httpx.Client(base_url=base, timeout=10) as http:
        parameters = http.get("/v2/models/churn").json()["parameters"]
        assert parameters["predict_path"] == (
            "table(categories,impute,one-hot)+hist-gradient-boosting"
        ), parameters["predict_path_reason"]
        answer = http.post("/v1/models/churn:predict", json={"instances": instances})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert predictions == expected
        assert set(predictions) <= {"yes", "no"}

        truth = table["churned"].head(40).tolist()
        feedback = http.post(
            "/v1/models/churn/feedback",
            json={
                "feedback": [
                    {"id": i, "label": label}
                    for i, label in zip(answer.json()["prediction_ids"], truth, strict=True)
                ]
            },
        )
        assert feedback.status_code == 200, feedback.text
        right = sum(p == t for p, t in zip(predictions, truth, strict=True))
        assert feedback.json()["accuracy"] == pytest.approx(right / 40)
