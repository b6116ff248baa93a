"""The soak's quick mode, run as ``make soak`` runs it (a minute, three services): keeps the
soak's code working; the figures of a real run are in bench/results/soak.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(420)


def test_quick_soak_retrains_through_faults_and_reports_every_trend(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak" / "run.py"), "--quick"]
        + ["--output", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'operator'}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "soak.json").read_text())
    verdict = data["verdict"]
    # Every process was sampled, every series fitted.
    assert len(data["samples"]) >= 5
    assert all(len(s["servers"]) >= 3 for s in data["samples"])  # 4 while one rolls out
    # ...from the second sample on: the first is taken before any request.
    assert all(t["samples"] == len(data["samples"]) - 1 for t in verdict["trends"].values())
    # The scenario happened: the degradation retrained in time, the faults answered requests.
    assert data["retrainings"] >= 1
    assert [d["took"] is not None for d in data["degradations"]] == [True]
    assert verdict["degradations_retrained"]
    assert max(s["fault_hits"] for s in data["samples"]) > 0
    # The emulator forgets removed objects, expires Events (20 s TTL here) and keeps its
    # request log at its size: what it holds does not grow with the run.
    retention = verdict["retention"]
    assert retention["objects_removed_kept"] == [0, 0]
    assert retention["request_log"][1] <= 500
    first_events = data["samples"][0]["objects"].get("events", 0)
    assert retention["events_expiring"][1] <= max(first_events, 10)
    # After the faults stopped: no error, one Deployment per service.
    assert verdict["quiet_samples"] >= 1
    assert verdict["load_errors_after_faults"] == []
    assert verdict["operator_errors_after_faults"] == 0
    assert verdict["objects"]["deployments"][1] == 3
    report = (tmp_path / "soak.md").read_text()
    assert "operator asyncio tasks" in report and "model server RSS" in report
    assert "## What the API emulator held" in report and "## Degradations" in report
