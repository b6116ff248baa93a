"""``mlops-operator retrain --from`` as a user runs it: a process with the sandbox's kubeconfig,
talking to the API emulator over a socket; every failure is one line and exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops_sandbox.cluster import Sandbox
from tests.support.factories import digest_of, modelversion, trainingjob

pytestmark = pytest.mark.timeout(120)

CLI = str(Path(sys.executable).parent / "mlops-operator")
DATASET = "s3://data/churn.csv"
LINEAGE = {
    "trainingJob": "churn",
    # The spec it was trained with, its dataset pinned to the object version it read.
    "trainingSpec": trainingjob(
        "churn",
        "churn",
        DATASET,
        dataset={"uri": DATASET, "target": "target", "versionId": "v-123"},
        validation={"testSize": 0.3, "randomState": 7},
    )["spec"],
}


def retrain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CLI, "retrain", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_retrain_creates_the_trainingjob_of_the_versions_lineage_once(
    sandbox: Sandbox, namespace: str, resources: Any
) -> None:
    uri, digest = "s3://mlops-artifacts/models/churn/3/", digest_of(b"model")
    mv = modelversion("churn", 3, uri, digest, source=LINEAGE)
    resources.create("modelversions", "ModelVersion", "churn-v3", mv["spec"])

    result = retrain(sandbox.env(), "--from", "churn-v3", "-n", namespace)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "trainingjob.mlops.dev/churn-v3-rerun created from churn-v3\n"
    tj = resources.get("trainingjobs", "churn-v3-rerun")
    assert tj["metadata"]["annotations"]["mlops.dev/retrained-from"] == "churn-v3"
    assert tj["spec"]["dataset"]["versionId"] == "v-123"
    # Audit logs tell the command's requests from the operator's and from register's.
    created = sandbox.requests(verb="create", resource="trainingjobs", namespace=namespace)
    assert [r.client for r in created] == ["mlops-operator-retrain"]

    again = retrain(sandbox.env(), "--from", "churn-v3", "-n", namespace)
    assert again.returncode == 1
    assert again.stderr == (
        f"mlops-operator retrain: TrainingJob {namespace}/churn-v3-rerun already exists; "
        "choose another with --name\n"
    )


def test_retrain_of_a_missing_version_is_one_line_and_exit_code_1(
    sandbox: Sandbox, namespace: str
) -> None:
    result = retrain(sandbox.env(), "--from", "nothing-v1", "-n", namespace)
    assert result.returncode == 1
    assert result.stderr == (
        f"mlops-operator retrain: ModelVersion {namespace}/nothing-v1 does not exist\n"
    )


def test_retrain_without_a_kubeconfig_says_so_in_one_line(tmp_path: Path) -> None:
    result = retrain(
        {"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)},
        "--from", "churn-v3", "-n", "team-a",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("mlops-operator retrain: no Kubernetes configuration: ")
    assert result.stderr.rstrip().endswith("(set KUBECONFIG or run inside a cluster)")
    assert len(result.stderr.strip().splitlines()) == 1
