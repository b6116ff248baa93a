from __future__ import annotations

from rich.console import Console

from mlops_sandbox.board import build_table


def test_the_status_table_shows_each_resource_with_its_state() -> None:
    tj = {
        "metadata": {"name": "iris-rf"},
        "status": {
            "phase": "Succeeded",
            "version": 1,
            "mainMetric": "accuracy=0.9700",
            "conditions": [{"type": "Ready", "status": "True", "reason": "ModelRegistered"}],
        },
    }
    mv = {
        "metadata": {"name": "iris-v1"},
        "spec": {"version": 1},
        "status": {"phase": "Degraded", "servedBy": ["iris"]},
    }
    isvc = {
        "metadata": {"name": "iris"},
        "status": {
            "phase": "Ready",
            "currentVersion": 1,
            "conditions": [
                {"type": "RolledBack", "status": "True", "reason": "RolledBack"},
                {"type": "Ready", "status": "True", "reason": "PredictorReady"},
            ],
        },
    }
    console = Console(width=200, record=True)
    console.print(build_table([tj], [mv], [isvc]))
    text = console.export_text()
    assert "iris-rf" in text and "Succeeded" in text and "accuracy=0.9700" in text
    assert "Degraded" in text and "ModelRegistered" in text
    row = next(line for line in text.splitlines() if "InferenceService" in line)
    assert "PredictorReady" in row and "RolledBack" in row
