"""Pure decisions of the training path: is the spec trainable, Job status → TrainingJob
phase, version numbers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from mlops_operator.api import reasons
from mlops_operator.api.trainingjob import Phase, Task, TrainingJobSpec, TrainingJobStatus
from mlops_operator.api.validation import describe_validation_error


@dataclass(frozen=True)
class JobOutcome:
    """What a batch Job's status means for its TrainingJob."""

    phase: Phase
    reason: str
    message: str


def _true_condition(status: Mapping[str, Any], type: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type and cond.get("status") == "True":
            return dict(cond)
    return None


def job_outcome(
    job_status: Mapping[str, Any], failure: tuple[str, str] | None = None
) -> JobOutcome:
    """Map a Job's status to a phase; ``failure`` is the trainer's parsed termination message
    (reason, message) from the last failed pod, when there is one."""
    if _true_condition(job_status, "Complete"):
        return JobOutcome("Succeeded", reasons.REGISTERING, "Training finished; registering.")
    failed = _true_condition(job_status, "Failed")
    if failed:
        job_reason = str(failed.get("reason") or reasons.TRAINING_FAILED)
        if failure is not None:
            trainer_reason, trainer_message = failure
            attempts = int(job_status.get("failed") or 0)
            tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
            return JobOutcome(
                "Failed", trainer_reason, f"Training failed{tries}: {trainer_message}"
            )
        if job_reason == reasons.DEADLINE_EXCEEDED:
            message = "The training Job ran longer than activeDeadlineSeconds and was stopped."
        elif job_reason == reasons.BACKOFF_LIMIT_EXCEEDED:
            message = "The training pod failed more times than backoffLimit allows."
        else:
            message = str(failed.get("message") or "The training Job failed.")
        return JobOutcome("Failed", job_reason, message)
    if int(job_status.get("active") or 0) > 0:
        return JobOutcome("Running", reasons.JOB_RUNNING, "The trainer is running.")
    return JobOutcome("Pending", reasons.JOB_PENDING, "Waiting for the training pod to start.")


def next_version(taken: Iterable[int]) -> int:
    """The next version number of a model given every number already registered or reserved."""
    return max(taken, default=0) + 1


# --- validation before any Job --------------------------------------------------------------

CLASSIFICATION_METRICS: Final = frozenset({"accuracy", "precision", "recall", "f1", "rocAuc"})
REGRESSION_METRICS: Final = frozenset({"r2", "mae", "rmse"})

_CLASSIFIERS: Final = (
    "Classifier",
    "LogisticRegression",
    "LogisticRegressionCV",
    "SVC",
    "LinearSVC",
    "NuSVC",
    "GaussianNB",
    "MultinomialNB",
    "BernoulliNB",
    "ComplementNB",
    "CategoricalNB",
    "LinearDiscriminantAnalysis",
    "QuadraticDiscriminantAnalysis",
)
_REGRESSORS: Final = (
    "Regressor",
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
    "SVR",
    "LinearSVR",
    "NuSVR",
    "BayesianRidge",
    "ARDRegression",
    "HuberRegressor",
    "Lars",
    "LassoLars",
    "TheilSenRegressor",
    "PoissonRegressor",
    "GammaRegressor",
    "TweedieRegressor",
    "KernelRidge",
)


def task_of(class_name: str) -> Task | None:
    """The task an estimator class learns, from its name alone (nothing is imported):
    ``classification``, ``regression``, or None when the name does not tell."""
    short = class_name.rsplit(".", 1)[-1]
    if short.endswith("Classifier") or short in _CLASSIFIERS:
        return "classification"
    if short.endswith("Regressor") or short in _REGRESSORS:
        return "regression"
    return None


def allowed_estimator(class_name: str, prefixes: Sequence[str]) -> bool:
    """Whether a class name is under one of the allowed module prefixes (no import done)."""
    return any(class_name.startswith(prefix) for prefix in prefixes)


def validate(raw: Mapping[str, Any], allowed_prefixes: Sequence[str]) -> TrainingJobSpec | str:
    """The spec, or why it cannot train: a schema error, an estimator outside the allowed
    prefixes, or a gate (or requested metric) the estimator's task never reports."""
    try:
        spec = TrainingJobSpec.model_validate(raw)
    except ValidationError as exc:
        return describe_validation_error(exc, root="spec")
    class_name = spec.estimator.class_name
    if not allowed_estimator(class_name, allowed_prefixes):
        return (
            f"spec.estimator.className: {class_name!r} is not allowed; the operator only builds "
            f"estimators under {', '.join(allowed_prefixes)}"
        )
    task = task_of(class_name)
    if task is None:
        return spec
    reported = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if spec.validation.metrics:
        unknown = [m for m in spec.validation.metrics if m not in reported]
        if unknown:
            return (
                f"spec.validation.metrics: {', '.join(unknown)} cannot be reported for "
                f"{task} ({class_name.rsplit('.', 1)[-1]}); choose from "
                f"{', '.join(sorted(reported))}"
            )
        reported = frozenset(spec.validation.metrics)
    for i, gate in enumerate(spec.gates):
        if gate.metric not in reported:
            return (
                f"spec.gates[{i}].metric: {gate.metric!r} is never reported for {task} "
                f"({class_name.rsplit('.', 1)[-1]}), so the gate could never pass; choose "
                f"from {', '.join(sorted(reported))}"
            )
    return spec


def fresh_status(status: TrainingJobStatus) -> TrainingJobStatus:
    """The status for a new run of a changed spec: conditions kept (their times move with
    their values), everything about the previous run cleared."""
    return TrainingJobStatus(conditions=status.conditions)
