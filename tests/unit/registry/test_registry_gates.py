from __future__ import annotations

from mlops_operator.api.trainingjob import Gate
from mlops_operator.registry.plan import describe_failures, evaluate_gates, main_metric
from mlops_operator.training.plan import job_outcome, next_version


def test_gates_pass_and_fail_on_bounds() -> None:
    gates = [Gate(metric="accuracy", min=0.9), Gate(metric="rmse", max=10)]
    ok = evaluate_gates(gates, {"accuracy": 0.95, "rmse": 3.0})
    assert all(r.passed for r in ok)
    bad = evaluate_gates(gates, {"accuracy": 0.81})
    assert [r.passed for r in bad] == [False, False]
    assert describe_failures(bad) == "accuracy 0.81 < 0.9; rmse was not reported"


def test_main_metric_prefers_accuracy_then_r2() -> None:
    assert main_metric({"f1": 0.5, "accuracy": 0.97}) == "accuracy=0.9700"
    assert main_metric({"mae": 3.0, "r2": 0.5}) == "r2=0.5000"
    assert main_metric({}) is None


def test_job_outcome_follows_job_conditions() -> None:
    assert job_outcome({}).phase == "Pending"
    assert job_outcome({"active": 1}).phase == "Running"
    done = job_outcome({"conditions": [{"type": "Complete", "status": "True"}]})
    assert done.phase == "Succeeded"
    failed = {
        "failed": 3,
        "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
    }
    assert job_outcome(failed).reason == "BackoffLimitExceeded"
    with_message = job_outcome(failed, ("MissingColumn", "dataset has no column 'y'"))
    assert with_message.reason == "MissingColumn"
    assert with_message.message == "Training failed after 3 attempts: dataset has no column 'y'"
    deadline = {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}
    assert "activeDeadlineSeconds" in job_outcome(deadline).message


def test_next_version_fills_after_the_highest_taken() -> None:
    assert next_version([]) == 1
    assert next_version([1, 2, 5]) == 6
