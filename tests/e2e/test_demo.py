"""`mlops-sandbox demo --once` is what a newcomer runs first: it must complete for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(300)
def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlops_sandbox", "demo", "--once", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "TrainingJob breast-cancer-rf: Succeeded (ModelRegistered)" in out
    assert "ModelVersion breast-cancer-v1: Ready" in out
    assert "(DigestMatch)" in out
    assert "gate      accuracy >= 0.9:" in out and "passed" in out
    assert "InferenceService breast-cancer: Ready, serving version 1" in out
    assert "POST /v2/models/breast-cancer/infer with 50 rows → predict" in out
    assert "online accuracy" in out
    assert 'mlops_online_accuracy{model="breast-cancer",version="1"}' in out
    assert "rolled forward to version 2 (NewLatest)" in out
    assert "RolledBack: Rolled back from version 2 to 1" in out
    assert "Retraining: TrainingJob breast-cancer-retrain-1" in out
    assert "v1 Initial → v2 NewLatest → v1 RolledBack → v3 Promoted" in out
    assert "card      s3://" in out and "/breast-cancer/1/card.md" in out
    assert (
        "checked s3://mlops-artifacts/datasets/breast-cancer-2026.csv before fitting: "
        "DataValidated=True (DataValidationWarnings)"
    ) in out
    assert "warning drift" in out
    assert "done: every step happened" in out
    # The final table is true: version 3 alone is served, and says so.
    served = {
        cells[1]: "served by breast-cancer" in cells[6]
        for line in out.splitlines()
        if len(cells := [c.strip() for c in line.strip("│").split("│")]) == 7
        and cells[0] == "ModelVersion"
    }
    assert served == {
        "breast-cancer-v1": False,
        "breast-cancer-v2": False,
        "breast-cancer-v3": True,
    }
    assert (tmp_path / "kubeconfig").exists()
