"""The one-call benchmark's claims: the target is judged on the forest's one-row figure
against scikit-learn's predict_proba, and a path that is not exact is flagged."""

from __future__ import annotations

from typing import Any

from bench.serving.predict_call import render


def results(forest_one_row_us: float, exact: bool = True) -> dict[str, Any]:
    def row(model: str, rows: int, fast: float) -> dict[str, Any]:
        return {
            "model": model,
            "estimator": {"rf": "RandomForestClassifier", "lr": "LogisticRegression"}[model],
            "rows": rows,
            "path": {"rf": "forest", "lr": "linear"}[model],
            "sklearn_predict_proba_us": 4000.0 if model == "rf" else 70.0,
            "server_before_us": 8000.0 if model == "rf" else 150.0,
            "fast_path_us": fast,
            "speedup_vs_predict_proba": round((4000.0 if model == "rf" else 70.0) / fast, 1),
            "speedup_vs_server_before": 1.0,
            "exact": exact,
        }

    return {
        "finished": "2026-11-30T18:00:00+00:00",
        "machine": {"cpu": "test cpu", "cores": 2},
        "calls": 100,
        "results": [row("lr", 1, 8.0), row("rf", 1, forest_one_row_us), row("rf", 32, 900.0)],
    }


def test_the_target_is_the_forest_on_one_row_ten_times_faster_than_predict_proba() -> None:
    assert "40.0× — met" in render(results(100.0))
    # The 32-row figure (4.4×) does not decide it.
    assert "8.0× — NOT met" in render(results(500.0))


def test_a_fast_path_that_is_not_exact_is_flagged_in_the_table() -> None:
    assert "| NO |" in render(results(100.0, exact=False))
    assert "| NO |" not in render(results(100.0))
