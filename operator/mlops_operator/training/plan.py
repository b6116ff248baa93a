"""Pure decisions of the training path: is the spec trainable, Job status → TrainingJob
phase, version numbers, and whether a run is registered already."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from pydantic import ValidationError

from mlops_operator.api import reasons
from mlops_operator.api.base import StatusDraft, get_condition
from mlops_operator.api.trainingjob import (
    MAX_FINDINGS,
    Finding,
    Phase,
    Task,
    TrainingJobSpec,
    TrainingJobStatus,
)
from mlops_operator.api.validation import describe_validation_error
from mlops_operator.artifacts.layout import SCHEMA_FILE, file_uri
from mlops_operator.kube.names import RUN_ANNOTATION, training_job_name
from mlops_operator.runtime.termination import DATA_VALIDATION_FAILED, split_findings


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


STORAGE_REASONS: Final = frozenset({reasons.STORAGE_UNREACHABLE})
"""Trainer failures of the storage, not of the training (the trainer's ``STORAGE_REASONS``)."""


def between_pods(job_status: Mapping[str, Any]) -> bool:
    """Whether an unfinished Job has started, has no pod running and none succeeded: a pod
    failed and the next one waits for its backoff delay."""
    return (
        bool(job_status.get("startTime"))
        and not int(job_status.get("active") or 0)
        and not int(job_status.get("succeeded") or 0)
        and not any(
            _true_condition(job_status, kind)
            for kind in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")
        )
    )


def _storage_down(out: StatusDraft, message: str, already: bool) -> None:
    """``StorageReachable=False``; a Warning Event when it was not already False."""
    out.cond(reasons.STORAGE_REACHABLE, False, reasons.STORAGE_UNREACHABLE, message)
    if not already:
        out.event("Warning", reasons.STORAGE_UNREACHABLE, message)


@dataclass(frozen=True)
class Reference:
    """The ModelVersion a dataset is checked against before fitting."""

    name: str
    schema_uri: str


def resolve_reference(
    against: str | None, versions: Iterable[Mapping[str, Any]]
) -> Reference | str | None:
    """The version named by ``validation.against`` among the model's ``versions``: by name,
    or ``latest`` (the highest version number not ``Failed``). ``None`` when nothing is to be
    checked (unset, or ``latest`` of a model with no version yet: a first training); a
    sentence when the named version does not exist."""
    if against is None:
        return None
    candidates = []
    for mv in versions:
        name = (mv.get("metadata") or {}).get("name")
        spec = mv.get("spec") or {}
        uri = (spec.get("artifact") or {}).get("uri")
        number = spec.get("version")
        if not name or not isinstance(uri, str) or not isinstance(number, int):
            continue
        if against == name:
            return Reference(name, file_uri(uri, SCHEMA_FILE))
        if (mv.get("status") or {}).get("phase") != "Failed":
            candidates.append((number, name, uri))
    if against != "latest":
        return (
            f"spec.validation.against names ModelVersion {against!r}, which does not exist; "
            "name an existing version of the model, or `latest`"
        )
    if not candidates:
        return None
    _, name, uri = max(candidates)
    return Reference(name, file_uri(uri, SCHEMA_FILE))


def findings_of(found: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """At most ``MAX_FINDINGS`` findings (errors first), those that parse."""
    out = []
    for f in found:
        try:
            out.append(Finding.model_validate(f))
        except ValidationError:
            continue
    out.sort(key=lambda f: f.severity != "error")
    return out[:MAX_FINDINGS]


def validated(out: Progress, against: str | None, found: Iterable[Mapping[str, Any]]) -> None:
    """``DataValidated=True`` and the findings, for a run whose data passed its checks."""
    if not against:
        return
    findings = findings_of(found)
    out.status.findings = findings
    if findings:
        message = (
            f"The dataset passed its checks against {against} with {len(findings)} warning"
            f"{'s' if len(findings) != 1 else ''}: "
            + "; ".join(f"{f.column or 'dataset'}: {f.message}" for f in findings[:3])
        )
        out.cond(reasons.DATA_VALIDATED, True, reasons.DATA_VALIDATION_WARNINGS, message)
        out.event("Warning", reasons.DATA_VALIDATION_WARNINGS, message)
    else:
        message = f"The dataset passed every check against {against}."
        out.cond(reasons.DATA_VALIDATED, True, reasons.DATA_VALIDATION_PASSED, message)


def retrain_spec(mv: Mapping[str, Any]) -> TrainingJobSpec | str:
    """The TrainingJob spec that trains a ModelVersion again from its lineage
    (``spec.source.trainingSpec``: the dataset pinned to the version read), or why it cannot
    be (a version registered by hand, or before lineage was recorded)."""
    name = (mv.get("metadata") or {}).get("name")
    recorded = ((mv.get("spec") or {}).get("source") or {}).get("trainingSpec")
    if not isinstance(recorded, Mapping):
        return (
            f"ModelVersion {name} has no spec.source.trainingSpec: it was registered by hand "
            "or trained before lineage was recorded, so there is nothing to train again"
        )
    try:
        return TrainingJobSpec.model_validate(recorded)
    except ValidationError as exc:
        return f"ModelVersion {name}: {describe_validation_error(exc, root='trainingSpec')}"


def next_version(taken: Iterable[int]) -> int:
    """The next version number of a model given every number already registered or reserved."""
    return max(taken, default=0) + 1


@dataclass(frozen=True)
class Registered:
    """A ModelVersion that already records a run's registration."""

    name: str
    version: int
    artifact_uri: str


def registration_of(
    versions: Iterable[Mapping[str, Any]], trainingjob: str, run_uri: str, digest: str | None
) -> Registered | None:
    """The ModelVersion among a model's ``versions`` that IS this run's registration, so the
    run is adopted, never registered twice (a status that lost its reservation — written back
    by a stale client, or read from a lagging watch — would otherwise take the next number).

    It is one made from this TrainingJob (``spec.source.trainingJob``), of this run's model
    (``spec.artifact.digest`` is the manifest's ``digest``) and, when it says which run it was
    copied from (the run annotation), of this run: a later generation, or a TrainingJob
    deleted and created again under the same name, that trains the very same bytes is a new
    run and registers a new version. A version being deleted is no registration to adopt.
    The lowest number when several qualify (the first registration)."""
    if not digest:
        return None
    found: list[Registered] = []
    for mv in versions:
        meta = mv.get("metadata") or {}
        spec = mv.get("spec") or {}
        artifact = spec.get("artifact") or {}
        number, uri, name = spec.get("version"), artifact.get("uri"), meta.get("name")
        recorded_run = (meta.get("annotations") or {}).get(RUN_ANNOTATION)
        if (
            isinstance(number, int)
            and isinstance(uri, str)
            and isinstance(name, str)
            and not meta.get("deletionTimestamp")
            and (spec.get("source") or {}).get("trainingJob") == trainingjob
            and artifact.get("digest") == digest
            and recorded_run in (None, run_uri)
        ):
            found.append(Registered(name, number, uri))
    return min(found, key=lambda r: r.version, default=None)


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


# --- the TrainingJob plan -------------------------------------------------------------------


class Check(Protocol):
    """The storage check's outcome, as the plan reads it."""

    @property
    def ok(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...


@dataclass(frozen=True)
class Observed:
    """What the TrainingJob reconcile read before deciding; ``storage`` and ``failure`` are
    read only when a plan asks for them (``Plan.needs``)."""

    obj: Mapping[str, Any]
    """The TrainingJob."""

    job: Mapping[str, Any] | None
    """The batch Job of the TrainingJob's current generation, as the watch last saw it."""

    storage: Check | None = None
    """Whether the credentials, the dataset and the artifact bucket are usable."""

    failure: tuple[str, str] | None = None
    """The trainer's termination message (reason, message) when its Job failed."""

    failure_read: bool = False
    """Whether the pods were asked for ``failure`` (they may have had nothing to say)."""

    versions: Sequence[Mapping[str, Any]] = ()
    """The model's ModelVersions, for ``validation.against``."""


@dataclass
class Plan:
    """What one reconcile of a TrainingJob does."""

    status: TrainingJobStatus
    events: list[tuple[str, str, str]] = field(default_factory=list)
    needs: Literal["storage", "failure"] | None = None
    """Read this and plan again before acting."""
    supersede: str | None = None
    """A Job still training an older generation of the spec: delete it."""
    create_job: str | None = None
    """Create the Job of this name for the current generation."""
    register: bool = False
    """The Job completed: register its output as the next version."""
    requeue_after: float | None = None
    spec: TrainingJobSpec | None = None
    """The validated spec, when valid."""
    reference: Reference | None = None
    """The version the new Job checks its dataset against."""


STORAGE_RETRY_SECONDS: Final = 30.0


class Progress(StatusDraft):
    """A TrainingJob status being decided: conditions set at ``now``, Events to post."""

    def __init__(self, status: TrainingJobStatus, generation: int, now: dt.datetime) -> None:
        super().__init__(status, generation, now)
        self.status: TrainingJobStatus = status
        self.generation: int = generation

    def fail(self, reason: str, message: str, completion: Any = None) -> None:
        """``Failed`` for ``reason``, with a Warning Event."""
        self.status.phase = "Failed"
        self.status.failure_reason = message
        self.status.completion_time = completion or self.now
        self.cond(reasons.READY, False, reason, message)
        self.event("Warning", reason, message)


def invalid_spec(
    status: TrainingJobStatus, generation: int, message: str, now: dt.datetime
) -> Plan:
    """``Failed`` with ``Ready=False InvalidSpec``; an Event the first time it is said."""
    out = Progress(status, generation, now)
    status.phase = "Failed"
    status.observed_generation = generation
    out.cond_with_event(reasons.READY, False, reasons.INVALID_SPEC, message, "Warning")
    return Plan(status=status, events=out.events)


def plan(observed: Observed, allowed_prefixes: Sequence[str], now: dt.datetime) -> Plan:
    """Everything one reconcile of a TrainingJob decides.

    Invalid (or rejected by the API server for this generation): ``Failed`` and nothing else
    until the spec changes. A generation newer than the status's: start over (the old Job is
    deleted if it still runs). Then, for the current generation: no Job yet → check storage,
    then create it; the Job deleted before it finished → ``JobDeleted``; the Job running or
    failed → mirror it; complete → register. ``Succeeded`` and ``Failed`` are final for a
    generation.
    """
    obj = observed.obj
    meta = obj.get("metadata") or {}
    generation = int(meta.get("generation") or 1)
    status = TrainingJobStatus.model_validate(obj.get("status") or {})
    ready = get_condition(status.conditions, reasons.READY)
    if (
        ready is not None
        and ready.reason == reasons.INVALID_SPEC
        and ready.observed_generation == generation
    ):
        return Plan(status=status)
    spec = validate(obj.get("spec") or {}, allowed_prefixes)
    if isinstance(spec, str):
        return invalid_spec(status, generation, spec, now)

    out = Progress(status, generation, now)
    result = Plan(status=status, spec=spec)
    if status.observed_generation is not None and status.observed_generation != generation:
        if status.job_name and status.phase not in ("Succeeded", "Failed"):
            result.supersede = status.job_name
        out.events.append(
            (
                "Normal",
                reasons.SPEC_CHANGED,
                f"The spec changed (generation {status.observed_generation} → {generation}): "
                "training again.",
            )
        )
        status = out.status = result.status = fresh_status(status)
    status.observed_generation = generation
    result.events = out.events
    if status.phase == "Succeeded" and status.model_version or status.phase == "Failed":
        return result

    job_name = training_job_name(meta.get("name") or "", generation)
    job = observed.job
    if job is None:
        if status.job_name == job_name:
            out.fail(
                reasons.JOB_DELETED, f"The training Job {job_name} was deleted before it finished."
            )
            return result
        check = observed.storage
        if check is None:
            result.needs = "storage"
            return result
        previous = get_condition(status.conditions, reasons.STORAGE_REACHABLE)
        skipped = check.reason == reasons.STORAGE_CHECK_SKIPPED
        out.cond(
            reasons.STORAGE_REACHABLE, None if skipped else check.ok, check.reason, check.message
        )
        if not check.ok:
            status.phase = "Pending"
            out.cond(reasons.READY, False, check.reason, check.message)
            if previous is None or previous.reason != check.reason:
                out.events.append(("Warning", check.reason, check.message))
            result.requeue_after = STORAGE_RETRY_SECONDS
            return result
        reference = resolve_reference(spec.validation.against, observed.versions)
        if isinstance(reference, str):
            out.cond(reasons.DATA_VALIDATED, False, reasons.REFERENCE_NOT_FOUND, reference)
            out.fail(reasons.REFERENCE_NOT_FOUND, reference)
            return result
        result.reference = reference
        result.create_job = job_name
        status.job_name = job_name
        status.phase = "Pending"
        out.cond(
            reasons.READY,
            False,
            reasons.JOB_CREATED,
            f"Job {job_name} created; waiting for the trainer to start.",
        )
        return result

    job_status = job.get("status") or {}
    failed = _true_condition(job_status, "Failed") is not None
    if (failed or between_pods(job_status)) and not observed.failure_read:
        result.needs = "failure"
        return result
    reachable = get_condition(status.conditions, reasons.STORAGE_REACHABLE)
    storage_was_down = reachable is not None and reachable.status == "False"
    if storage_was_down and int(job_status.get("active") or 0) > 0 and observed.storage is None:
        result.needs = "storage"  # a new pod runs: is storage back?
        return result
    failure = observed.failure
    if failure is not None and failure[0] == DATA_VALIDATION_FAILED:
        message, found = split_findings(failure[1])
        failure = (DATA_VALIDATION_FAILED, message)
        status.findings = findings_of(found)
        out.cond(reasons.DATA_VALIDATED, False, reasons.DATA_VALIDATION_FAILED, message)
    outcome = job_outcome(job_status, failure)
    if job_status.get("startTime") and status.start_time is None:
        status.start_time = job_status["startTime"]
    recorded = status.job_name
    status.job_name = (job.get("metadata") or {}).get("name") or job_name
    if recorded != status.job_name:
        # Created by a reconcile whose status write never landed: its Event was not posted.
        out.events.append(("Normal", reasons.JOB_CREATED, f"Created Job {status.job_name}."))
    storage_failure = observed.failure is not None and observed.failure[0] in STORAGE_REASONS
    if storage_failure and outcome.phase != "Succeeded":
        assert observed.failure is not None
        _storage_down(out, observed.failure[1], storage_was_down)
        if outcome.phase != "Failed":
            status.phase = "Running"
            out.cond(
                reasons.READY,
                False,
                reasons.STORAGE_UNREACHABLE,
                f"The trainer cannot reach storage ({observed.failure[1]}); its pod is retried "
                "without counting against backoffLimit.",
            )
            return result
    elif observed.storage is not None and outcome.phase in ("Pending", "Running"):
        check = observed.storage
        if check.ok:
            out.cond(reasons.STORAGE_REACHABLE, True, check.reason, check.message)
        else:
            _storage_down(out, check.message, storage_was_down)
            status.phase = "Running"
            out.cond(reasons.READY, False, check.reason, check.message)
            result.requeue_after = STORAGE_RETRY_SECONDS
            return result
    if outcome.phase == "Failed":
        out.fail(outcome.reason, outcome.message, job_status.get("completionTime"))
    elif outcome.phase == "Pending" and ready is not None and ready.reason == reasons.JOB_CREATED:
        status.phase = "Pending"  # "created, waiting for the trainer" says it already
    elif outcome.phase in ("Pending", "Running"):
        status.phase = outcome.phase
        out.cond(reasons.READY, False, outcome.reason, outcome.message)
    else:
        result.register = True
    return result
