"""Pure decisions of the serving path: which version to serve (resolve, promote, roll back),
its history, the rollout, and the whole InferenceService plan built from them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import ValidationError

from mlops_operator.api import reasons
from mlops_operator.api.base import API_VERSION, StatusDraft, get_condition
from mlops_operator.api.inferenceservice import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    AutoscalerStatus,
    AutoscalingSpec,
    HistoryEntry,
    InferenceServiceSpec,
    InferenceServiceStatus,
    RejectedVersion,
)
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.api.trainingjob import StorageSpec, TrainingJobSpec
from mlops_operator.api.validation import describe_validation_error
from mlops_operator.artifacts.storage import resolve_storage
from mlops_operator.kube import names
from mlops_operator.kube.names import DEGRADED_ANNOTATION, SPEC_HASH, spec_hash
from mlops_operator.monitoring.judge import Measured, decide, judge
from mlops_operator.monitoring.remediate import DAY, may_retrain, next_run, validate_cron
from mlops_operator.serving.build import (
    REQUESTS_METRIC,
    build_autoscaler,
    build_deployment,
    build_service,
)
from mlops_operator.settings import Settings

HISTORY_LIMIT = 50

LOWER_IS_BETTER: Final = frozenset({"mae", "rmse"})
"""Held-out metrics where a smaller value is better; every other metric (accuracy, f1,
precision, recall, rocAuc, r2) is better when larger."""


@dataclass(frozen=True)
class Candidate:
    """What the serving decision needs to know about one ModelVersion."""

    name: str
    version: int
    phase: str | None
    artifact_verified: bool
    gates_passed: bool
    degraded: bool

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Candidate:
        """Read a ModelVersion object as returned by the API."""
        status = obj.get("status") or {}
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        return cls(
            name=obj["metadata"]["name"],
            version=int(obj["spec"]["version"]),
            phase=status.get("phase"),
            artifact_verified=conds.get(reasons.ARTIFACT_VERIFIED) == "True",
            gates_passed=conds.get(reasons.GATES_PASSED) == "True",
            degraded=bool(
                ((obj.get("metadata") or {}).get("annotations") or {}).get(DEGRADED_ANNOTATION)
            )
            or status.get("phase") == "Degraded"
            or conds.get(reasons.DEGRADED) == "True",
        )

    @property
    def servable_as_latest(self) -> bool:
        """Ready, passed its gates and not Degraded: what ``latest`` may select."""
        return (
            self.phase == "Ready"
            and self.artifact_verified
            and self.gates_passed
            and not self.degraded
        )


@dataclass(frozen=True)
class Resolution:
    """The outcome of choosing a version: the candidate, or why there is none."""

    candidate: Candidate | None
    reason: str
    message: str


def resolve_version(
    model: str,
    requested: int | Literal["latest"],
    candidates: Iterable[Candidate],
    exclude: Collection[int] = (),
) -> Resolution:
    """``latest`` = the newest version servable as latest and not in ``exclude`` (versions
    this service declined to promote); a pinned number must exist and have a verified artifact
    (a person pinning it may serve a version that missed its gates)."""
    by_version = {c.version: c for c in candidates}
    if requested == "latest":
        servable = [
            c for c in by_version.values() if c.servable_as_latest and c.version not in exclude
        ]
        if not servable:
            return Resolution(
                None,
                reasons.NO_SERVABLE_VERSION,
                f"No version of model {model!r} is Ready, passed its gates and is not Degraded; "
                "waiting for one.",
            )
        best = max(servable, key=lambda c: c.version)
        return Resolution(best, reasons.RESOLVED, f"Serving the latest version, {best.version}.")
    pinned = by_version.get(requested)
    if pinned is None:
        return Resolution(
            None,
            reasons.NO_SERVABLE_VERSION,
            f"Version {requested} of model {model!r} does not exist; waiting for it.",
        )
    if not pinned.artifact_verified:
        return Resolution(
            None,
            reasons.NO_SERVABLE_VERSION,
            f"Version {requested} ({pinned.name}) has no verified artifact "
            f"(phase {pinned.phase or 'Pending'}); it cannot be served.",
        )
    return Resolution(pinned, reasons.RESOLVED, f"Serving pinned version {requested}.")


def change_reason(
    previous: int | None,
    requested: int | Literal["latest"],
    new: int,
    previous_degraded: bool = False,
) -> str:
    """Why the served version changes: ``Initial``, ``Pinned``, ``RolledBack`` (the served
    version was marked Degraded and an older one replaces it) or ``NewLatest`` (a newer one,
    e.g. a retraining that replaces a degraded version nothing could roll back to)."""
    if previous is None:
        return "Initial"
    if requested != "latest":
        return "Pinned"
    if previous_degraded and new < previous:
        return "RolledBack"
    return "NewLatest" if new > previous else "LatestChanged"


def record(
    history: Sequence[HistoryEntry],
    version: int,
    reason: str,
    message: str,
    now: dt.datetime,
    limit: int = HISTORY_LIMIT,
) -> list[HistoryEntry]:
    """``history`` with a new entry appended, keeping the ``limit`` most recent."""
    entry = HistoryEntry(version=version, time=now, reason=reason, message=message)
    return [*history, entry][-limit:]


@dataclass(frozen=True)
class Rollout:
    """How far a predictor Deployment has got."""

    ready_replicas: int
    available: bool
    complete: bool


def rollout(deployment: Mapping[str, Any], replicas: int) -> Rollout:
    """Read a Deployment's status: available = at least one ready pod (or none wanted);
    complete = every wanted pod runs the current template and is ready."""
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation") or 0
    observed = int(status.get("observedGeneration") or 0) >= int(generation)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    complete = observed and updated >= replicas and ready >= replicas and total <= replicas
    return Rollout(ready_replicas=ready, available=ready >= min(1, replicas), complete=complete)


def _num(value: float) -> str:
    return f"{value:.4g}"


def _beats(metric: str, candidate: float, replaced: float) -> bool:
    return candidate < replaced if metric in LOWER_IS_BETTER else candidate > replaced


def promotion_verdict(
    candidate_metrics: Mapping[str, float],
    candidate: Candidate,
    replaced_metrics: Mapping[str, float] | None,
    must_beat: str | None,
) -> tuple[bool, str]:
    """Whether a retrained version may replace the served one, and a sentence saying why.

    It must be Ready with a verified artifact, have passed its gates, not be Degraded, and,
    when ``must_beat`` names a held-out metric, be strictly better on it than the replaced
    version (lower for ``mae`` and ``rmse``, higher for the rest). ``replaced_metrics`` None
    means no version is being replaced, so there is nothing to beat. A metric missing on
    either side refuses the promotion: the comparison cannot be made.
    """
    label = f"version {candidate.version}"
    if candidate.phase != "Ready" or not candidate.artifact_verified:
        return False, f"{label} is not Ready (phase {candidate.phase or 'Pending'})."
    if not candidate.gates_passed:
        return False, f"{label} did not pass its promotion gates."
    if candidate.degraded:
        return False, f"{label} is Degraded."
    if must_beat is None:
        return True, f"{label} is Ready and passed its gates."
    if replaced_metrics is None:
        return True, f"{label} is Ready and passed its gates; no served version to beat."
    mine = candidate_metrics.get(must_beat)
    if mine is None:
        return False, f"{label} has no {must_beat} metric to compare (promotion.mustBeat)."
    theirs = replaced_metrics.get(must_beat)
    if theirs is None:
        return False, f"the replaced version has no {must_beat} metric to compare against."
    direction = "lower" if must_beat in LOWER_IS_BETTER else "higher"
    if not _beats(must_beat, mine, theirs):
        return False, (
            f"{label} {must_beat} {_num(mine)} does not beat {_num(theirs)} of the replaced "
            f"version ({direction} is better)."
        )
    return True, (
        f"{label} {must_beat} {_num(mine)} beats {_num(theirs)} of the replaced version "
        f"({direction} is better)."
    )


# --- the InferenceService plan ---------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """What the InferenceService reconcile read (from watch state) before deciding."""

    obj: Mapping[str, Any]
    """The InferenceService."""

    versions: Sequence[Mapping[str, Any]]
    """Every ModelVersion of its model in its namespace."""

    trainingjobs: Mapping[str, Mapping[str, Any]]
    """TrainingJobs of its model in its namespace, by name (retraining sources and runs)."""

    deployment: Mapping[str, Any] | None
    """Its predictor Deployment as last seen, if any."""

    measured: Measured | None = None
    """The latest measurement of its policies, not yet judged if newer than lastEvaluation."""

    pod_reasons: Sequence[str] = ()
    """What unready predictor pods say about themselves (asked only when they run)."""

    autoscaler: Mapping[str, Any] | None = None
    """Its predictor's HorizontalPodAutoscaler as last seen, if any."""


@dataclass
class Plan:
    """What the reconcile writes: children, status, marks, a retraining, and Events."""

    status: InferenceServiceStatus
    deployment: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    autoscaler: dict[str, Any] | None = None
    """The predictor's HorizontalPodAutoscaler, while ``spec.autoscaling`` is set."""
    delete_autoscaler: bool = False
    """``spec.autoscaling`` was removed: delete the HorizontalPodAutoscaler."""
    degrade: dict[str, str] = field(default_factory=dict)
    """ModelVersion name → why it is degraded (its ``mlops.dev/degraded`` annotation)."""
    trainingjob: dict[str, Any] | None = None
    """A retraining TrainingJob to create (owned by the service)."""
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, reason, message) to post about the service."""
    requeue_after: float | None = None
    valid: bool = True
    """False when the spec is invalid: nothing is built, the status says why."""
    monitor_interval: float | None = None
    """Seconds between evaluations, when the service is monitored."""
    rolled_back: bool = False


def sticky_invalid(obj: Mapping[str, Any]) -> bool:
    """Whether the API server rejected what this generation's spec built (InvalidSpec on
    ``Ready`` for the current generation): nothing is retried until the spec changes."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    for cond in status.get("conditions") or []:
        if cond.get("type") == reasons.READY and cond.get("reason") == reasons.INVALID_SPEC:
            return bool(cond.get("observedGeneration") == generation)
    return False


def invalid(
    obj: Mapping[str, Any], message: str, now: dt.datetime
) -> tuple[InferenceServiceStatus, list[tuple[str, str, str]]]:
    """Status ``Failed`` with ``Ready=False InvalidSpec``; an Event on the first time."""
    status = InferenceServiceStatus.model_validate(obj.get("status") or {})
    draft = StatusDraft(status, (obj.get("metadata") or {}).get("generation"), now)
    status.observed_generation = draft.generation
    status.phase = "Failed"
    draft.cond_with_event(reasons.READY, False, reasons.INVALID_SPEC, message, "Warning")
    return status, draft.events


def _validate(obj: Mapping[str, Any]) -> InferenceServiceSpec | str:
    try:
        spec = InferenceServiceSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        return describe_validation_error(exc, root="spec")
    schedule = spec.retrain.schedule if spec.retrain else None
    problem = validate_cron(schedule) if schedule else None
    if problem:
        return f"spec.retrain.schedule: {problem}"
    return spec


def model_task(
    versions: Sequence[Mapping[str, Any]], current: int | None
) -> tuple[str, int] | None:
    """The task of the model a service serves and the version that says so: the served
    version's, else the newest version's that records one; None when none does (a model
    registered by hand without ``task``)."""
    known = [
        (str(v["spec"]["task"]), int(v["spec"]["version"]))
        for v in versions
        if (v.get("spec") or {}).get("task")
    ]
    served = [k for k in known if k[1] == current]
    if served:
        return served[0]
    return max(known, key=lambda k: k[1]) if known else None


def metric_task_problem(
    spec: InferenceServiceSpec, versions: Sequence[Mapping[str, Any]], current: int | None
) -> str | None:
    """Why a builtin policy cannot be measured on this model, naming the policy and the
    metric: a classifier's metric on a regressor or the reverse; None when all fit."""
    found = model_task(versions, current)
    if found is None or spec.monitoring is None:
        return None
    task, version = found
    classifier = task == "classification"
    wrong = REGRESSION_METRICS if classifier else CLASSIFICATION_METRICS
    right = CLASSIFICATION_METRICS if classifier else REGRESSION_METRICS
    needs = "regression" if classifier else "classification"
    for i, policy in enumerate(spec.monitoring.metrics):
        if policy.builtin in wrong:
            return (
                f"spec.monitoring.metrics[{i}] ({policy.name}): the builtin metric "
                f"{policy.builtin} needs a {needs} model, but model {spec.model!r} is a {task} "
                f"model (version {version}); use {', '.join(sorted(right))} instead."
            )
    return None


def _degraded_message(version: Mapping[str, Any] | None) -> str:
    """Why a version is degraded: its annotation, else its Degraded condition."""
    if version is None:
        return ""
    note = ((version.get("metadata") or {}).get("annotations") or {}).get(DEGRADED_ANNOTATION)
    if note:
        return str(note)
    for cond in (version.get("status") or {}).get("conditions") or []:
        if cond.get("type") == reasons.DEGRADED and cond.get("status") == "True":
            return str(cond.get("message") or "")
    return "it was marked Degraded"


def retraining_source(name: str, count: int, version: Mapping[str, Any] | None) -> bool:
    """Whether ``version`` came from one of this service's own retraining TrainingJobs."""
    if version is None:
        return False
    source = ((version.get("spec") or {}).get("source") or {}).get("trainingJob")
    return source in {names.retrain_name(name, n) for n in range(1, count + 1)}


def training_template(
    spec: InferenceServiceSpec,
    serving: Mapping[str, Any] | None,
    trainingjobs: Mapping[str, Mapping[str, Any]],
) -> TrainingJobSpec | None:
    """What a retraining runs: ``retrain.template``, else the spec of the TrainingJob that
    produced the serving version; with ``retrain.dataset`` as the dataset when set."""
    retrain = spec.retrain
    template = retrain.template if retrain else None
    if template is None and serving is not None:
        source = ((serving.get("spec") or {}).get("source") or {}).get("trainingJob")
        tj = trainingjobs.get(source or "")
        if tj is not None:
            try:
                template = TrainingJobSpec.model_validate(tj.get("spec") or {})
            except ValidationError:
                template = None
    if template is None:
        return None
    if retrain is not None and retrain.dataset is not None:
        template = template.model_copy(update={"dataset": retrain.dataset})
    return template


def needs_pod_reasons(deployment: Mapping[str, Any] | None) -> bool:
    """Ask the pods why they are not ready only when pods exist and none is ready."""
    status = (deployment or {}).get("status") or {}
    return int(status.get("replicas") or 0) > 0 and int(status.get("readyReplicas") or 0) == 0


class _Builder(StatusDraft):
    """Accumulates one reconcile's decisions on a copy of the status."""

    def __init__(self, obj: Mapping[str, Any], now: dt.datetime) -> None:
        self.obj = obj
        meta = obj["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        status = InferenceServiceStatus.model_validate(obj.get("status") or {})
        super().__init__(status, meta.get("generation"), now)
        self.status: InferenceServiceStatus = status
        self.status.observed_generation = self.generation
        self.plan = Plan(status=self.status)
        self.events = self.plan.events


def plan(observed: Observed, settings: Settings, now: dt.datetime) -> Plan:
    """Everything one reconcile of an InferenceService decides, from what it observed."""
    obj = observed.obj
    spec_or_error = _validate(obj)
    if isinstance(spec_or_error, str):
        status, events = invalid(obj, spec_or_error, now)
        return Plan(status=status, events=events, valid=False)
    spec = spec_or_error
    b = _Builder(obj, now)
    status = b.status
    if sticky_invalid(obj):
        return Plan(status=status, valid=False)
    problem = metric_task_problem(spec, observed.versions, status.current_version)
    if problem is not None:
        status, events = invalid(obj, problem, now)
        return Plan(status=status, events=events, valid=False)
    candidates = {c.version: c for c in (Candidate.from_object(v) for v in observed.versions)}
    by_version = {int(v["spec"]["version"]): v for v in observed.versions}
    if spec.monitoring and spec.monitoring.metrics:
        b.plan.monitor_interval = float(spec.monitoring.interval_seconds)

    _follow_retraining(b, observed, by_version)
    degraded_now = _judge(b, spec, observed, candidates, by_version)
    _schedule(b, spec, observed, by_version)

    # Resolve what to serve; a retrained version that must beat the served one and does not
    # is rejected (recorded) and resolution runs again without it.
    while True:
        rejected = {r.version for r in status.rejected_versions}
        resolution = resolve_version(spec.model, spec.version, candidates.values(), rejected)
        target = resolution.candidate
        current = candidates.get(status.current_version or 0)
        if (
            target is None
            or spec.version != "latest"
            or current is None
            or current.degraded
            or target.version <= current.version
        ):
            break
        held_out = {v: (o["spec"].get("metrics") or {}) for v, o in by_version.items()}
        promote, why = promotion_verdict(
            held_out.get(target.version, {}),
            target,
            held_out.get(current.version),
            spec.promotion.must_beat,
        )
        if promote:
            break
        status.rejected_versions = [
            *status.rejected_versions,
            RejectedVersion(version=target.version, reason=why, time=now),
        ][-HISTORY_LIMIT:]
        message = f"Version {target.version} is not promoted: {why}"
        b.cond(reasons.RETRAINING, False, reasons.NOT_PROMOTED, message)
        status.retraining.last_result = message
        b.event("Warning", reasons.NOT_PROMOTED, message)

    status.url = names.service_url(b.name, b.namespace)
    if spec.autoscaling is None:
        status.autoscaler = None
        if observed.autoscaler is not None:
            b.plan.delete_autoscaler = True
            b.event(
                "Normal",
                reasons.AUTOSCALING_DISABLED,
                f"Autoscaling removed: the predictor runs spec.replicas ({spec.replicas}).",
            )
    target = resolution.candidate
    if target is None:
        _no_target(b, resolution)
    else:
        _serve(b, spec, observed, settings, target, candidates, by_version)
    _truth(b, spec, candidates, by_version, degraded_now)
    if status.phase == "Pending" and b.plan.requeue_after is None and status.current_version:
        b.plan.requeue_after = RECHECK_NOT_READY
    nxt = status.retraining.next_scheduled
    if nxt is not None:
        wait = max(1.0, (nxt - now).total_seconds())
        b.plan.requeue_after = min(b.plan.requeue_after or wait, wait)
    return b.plan


RECHECK_NOT_READY = 10.0
"""Seconds between looks at a service that is not Ready: pods explain themselves only once
they listen, which no watch event announces."""


def _follow_retraining(
    b: _Builder, observed: Observed, by_version: Mapping[int, Mapping[str, Any]]
) -> None:
    """The retraining this service started: still running, failed, registered, gated out."""
    retraining = b.status.retraining
    if not retraining.active:
        _adopt_retraining(b, observed)
    active = retraining.active
    if not active:
        return
    tj = observed.trainingjobs.get(active)
    tj_status = (tj or {}).get("status") or {}
    if tj is None or tj_status.get("phase") == "Failed":
        why = tj_status.get("failureReason") or "the TrainingJob was deleted"
        message = f"Retraining {active} failed: {why}"
        retraining.active = None
        retraining.last_result = message
        b.cond(reasons.RETRAINING, False, reasons.RETRAINING_FAILED, message)
        b.event("Warning", reasons.RETRAINING_FAILED, message)
        return
    mv_name = tj_status.get("modelVersion")
    if tj_status.get("phase") != "Succeeded" or not mv_name:
        return
    mv = next((v for v in by_version.values() if v["metadata"]["name"] == mv_name), None)
    phase = ((mv or {}).get("status") or {}).get("phase")
    if phase not in ("Ready", "Failed"):
        return  # registered, still being verified
    retraining.active = None
    if phase == "Failed":
        why = next(
            (
                c.get("message", "")
                for c in ((mv or {}).get("status") or {}).get("conditions") or []
                if c.get("type") == reasons.READY
            ),
            "",
        )
        message = f"Retrained {mv_name} is not promoted: {why}"
        retraining.last_result = message
        b.cond(reasons.RETRAINING, False, reasons.NOT_PROMOTED, message)
        b.event("Warning", reasons.NOT_PROMOTED, message)
    else:
        retraining.last_result = f"registered {mv_name}"


def _adopt_retraining(b: _Builder, observed: Observed) -> None:
    """The next retraining's TrainingJob exists but the status does not say it started: the
    process that created it stopped before recording it (or its status write failed). Record
    it now, so it is followed and promoted, and never started a second time."""
    retraining = b.status.retraining
    tj_name = names.retrain_name(b.name, retraining.count + 1)
    tj = observed.trainingjobs.get(tj_name)
    labels = ((tj or {}).get("metadata") or {}).get("labels") or {}
    if tj is None or labels.get(names.LABEL_INFERENCESERVICE) != b.name:
        return
    created = (tj.get("metadata") or {}).get("creationTimestamp")
    started = dt.datetime.fromisoformat(created.replace("Z", "+00:00")) if created else b.now
    retraining.started = [t for t in retraining.started if t > b.now - DAY] + [started]
    retraining.count += 1
    retraining.active = tj_name
    message = f"Started TrainingJob {tj_name}."
    retraining.last_result = message
    b.cond(reasons.RETRAINING, True, reasons.RETRAINING_STARTED, message)
    b.event("Normal", reasons.RETRAINING_STARTED, message)  # nobody has said it yet


def _judge(
    b: _Builder,
    spec: InferenceServiceSpec,
    observed: Observed,
    candidates: dict[int, Candidate],
    by_version: Mapping[int, Mapping[str, Any]],
) -> bool:
    """Judge a new measurement of the served version and remediate; whether the served
    version is degraded by the latest evaluation."""
    status = b.status
    current = status.current_version
    policies = spec.monitoring.metrics if spec.monitoring else []
    last = status.last_evaluation
    measured = observed.measured
    fresh = (
        measured is not None
        and policies
        and current is not None
        and measured.version == current
        and (last is None or measured.time > last.time)
    )
    if fresh:
        assert measured is not None and current is not None
        evaluation, decision = judge(policies, measured, last)
        status.last_evaluation = evaluation
        if decision.degraded:
            _remediate(b, spec, observed, candidates, by_version, current, decision.summary)
        return decision.degraded
    if last is None or last.version != current or not policies:
        return False
    return decide(policies, last.metrics).degraded


def _remediate(
    b: _Builder,
    spec: InferenceServiceSpec,
    observed: Observed,
    candidates: dict[int, Candidate],
    by_version: Mapping[int, Mapping[str, Any]],
    current: int,
    summary: str,
) -> None:
    action = spec.on_degradation
    serving = by_version.get(current)
    served = candidates.get(current)
    if served is None or serving is None:
        return
    if action in ("Rollback", "RollbackAndRetrain") and spec.version == "latest":
        if not served.degraded:
            why = f"Breached on {b.name}: {summary}"
            b.plan.degrade[served.name] = why
            candidates[current] = dataclasses.replace(served, degraded=True)
    if action in ("Retrain", "RollbackAndRetrain"):
        _start_retraining(b, spec, observed, serving, f"version {current} degraded: {summary}")


def _start_retraining(
    b: _Builder,
    spec: InferenceServiceSpec,
    observed: Observed,
    serving: Mapping[str, Any] | None,
    why: str,
) -> None:
    """Create ``<service>-retrain-<n>`` unless one runs, or the cooldown or budget forbids."""
    retraining = b.status.retraining
    retrain = spec.retrain
    cooldown = retrain.cooldown_seconds if retrain else 3600
    budget = retrain.max_per_day if retrain else 3
    allowed, reason = may_retrain(
        b.now, retraining.started, retraining.active is not None, cooldown, budget
    )
    if not allowed:
        if retraining.active is None:
            b.cond_with_event(
                reasons.RETRAINING, False, reasons.RETRAINING_REFUSED, reason, "Normal"
            )
        return
    template = training_template(spec, serving, observed.trainingjobs) if retrain else None
    if template is None:
        message = (
            "No TrainingJob spec to retrain from: set spec.retrain.template, or serve a "
            "version produced by a TrainingJob that still exists."
        )
        b.cond_with_event(reasons.RETRAINING, False, reasons.NO_TRAINING_SPEC, message, "Warning")
        return
    tj_name = names.retrain_name(b.name, retraining.count + 1)
    parent = ((serving or {}).get("metadata") or {}).get("name")
    if parent and template.validation.against is None:
        # A retraining checks its data against the version it replaces before fitting.
        checked = template.validation.model_copy(update={"against": parent})
        template = template.model_copy(update={"validation": checked})
    b.plan.trainingjob = {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {
            "name": tj_name,
            "namespace": b.namespace,
            "labels": {
                names.LABEL_INFERENCESERVICE: b.name,
                names.LABEL_MODEL: template.model,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
        },
        "spec": template.to_wire(),
    }
    day_ago = b.now - DAY
    retraining.started = [t for t in retraining.started if t > day_ago] + [b.now]
    retraining.count += 1
    retraining.active = tj_name
    message = f"Started TrainingJob {tj_name}: {why}"
    retraining.last_result = message
    b.cond(reasons.RETRAINING, True, reasons.RETRAINING_STARTED, message)
    b.event("Normal", reasons.RETRAINING_STARTED, message)


def _schedule(
    b: _Builder,
    spec: InferenceServiceSpec,
    observed: Observed,
    by_version: Mapping[int, Mapping[str, Any]],
) -> None:
    """Start the scheduled retraining when due; keep the next due time in status."""
    retraining = b.status.retraining
    schedule = spec.retrain.schedule if spec.retrain else None
    if not schedule:
        retraining.next_scheduled = None
        return
    due = retraining.next_scheduled
    if due is not None and b.now >= due:
        serving = by_version.get(b.status.current_version or 0)
        _start_retraining(b, spec, observed, serving, f"scheduled ({schedule})")
    if due is None or b.now >= due:
        retraining.next_scheduled = next_run(schedule, b.now)


def _no_target(b: _Builder, resolution: Resolution) -> None:
    """Nothing servable: keep serving what is served (its Deployment is left as it is)."""
    status = b.status
    if status.current_version is None:
        status.phase = "Pending"
        b.cond_with_event(reasons.READY, False, resolution.reason, resolution.message, "Warning")
        return
    b.cond_with_event(reasons.PROGRESSING, False, resolution.reason, resolution.message, "Warning")


def _serve(
    b: _Builder,
    spec: InferenceServiceSpec,
    observed: Observed,
    settings: Settings,
    target: Candidate,
    candidates: Mapping[int, Candidate],
    by_version: Mapping[int, Mapping[str, Any]],
) -> None:
    status = b.status
    mv = by_version[target.version]
    mv_spec = ModelVersionSpec.model_validate(mv["spec"])
    storage = resolve_storage(
        StorageSpec(
            endpoint=mv_spec.artifact.endpoint,
            credentials_secret=mv_spec.artifact.credentials_secret,
        ),
        settings,
    )
    b.plan.deployment = build_deployment(
        name=b.name,
        namespace=b.namespace,
        spec=spec,
        model_version=mv_spec,
        image=spec.image or settings.runtime_image,
        storage=storage,
        pod_defaults=settings.serving_pod,
    )
    b.plan.service = build_service(name=b.name, namespace=b.namespace, model=spec.model)
    if spec.autoscaling is not None:
        b.plan.autoscaler = build_autoscaler(
            name=b.name, namespace=b.namespace, model=spec.model, autoscaling=spec.autoscaling
        )
        status.autoscaler = autoscaler_status(observed.autoscaler)
        if observed.autoscaler is None:
            b.event(
                "Normal",
                reasons.AUTOSCALING_ENABLED,
                f"Autoscaling between {spec.autoscaling.min_replicas} and "
                f"{spec.autoscaling.max_replicas} replicas on {target_text(spec.autoscaling)}.",
            )

    if status.current_version != target.version:
        previous = candidates.get(status.current_version or 0)
        reason = change_reason(
            status.current_version,
            spec.version,
            target.version,
            previous is not None and previous.degraded,
        )
        message = f"Serving {target.name} ({_resolved(spec, target)})"
        if reason == reasons.VERSION_ROLLED_BACK and previous is not None:
            why = b.plan.degrade.get(previous.name) or _degraded_message(
                by_version.get(previous.version)
            )
            message = f"Rolled back from version {previous.version} to {target.version}: {why}"
            b.event("Warning", reasons.VERSION_ROLLED_BACK, message)
            b.plan.rolled_back = True
        elif reason == "NewLatest" and retraining_source(b.name, status.retraining.count, mv):
            reason = reasons.PROMOTED
            message = f"Promoted retrained version {target.version}: it passed its gates."
            b.cond(reasons.RETRAINING, False, reasons.PROMOTED, message)
            status.retraining.last_result = f"promoted version {target.version}"
            b.event("Normal", reasons.PROMOTED, message)
        status.history = record(status.history, target.version, reason, message, b.now)
        b.event("Normal", "VersionChanged", f"Serving version {target.version} ({reason}).")
        status.current_version = target.version

    want = spec_hash(b.plan.deployment)
    b.plan.deployment["metadata"].setdefault("annotations", {})[SPEC_HASH] = want
    deployment = observed.deployment or {}
    serving_now = ((deployment.get("metadata") or {}).get("annotations") or {}).get(
        SPEC_HASH
    ) == want
    replicas = desired_replicas(spec, deployment, observed.autoscaler)
    status.desired_replicas = replicas
    progress = rollout(deployment, replicas)
    if not serving_now:  # old pods may still answer; the new template is not rolled out
        progress = dataclasses.replace(progress, complete=False)
    status.ready_replicas = progress.ready_replicas
    if progress.complete:
        b.cond(
            reasons.PROGRESSING,
            False,
            reasons.ROLLED_OUT,
            f"Version {target.version} is rolled out to {replicas} replica(s).",
        )
    else:
        b.cond(
            reasons.PROGRESSING,
            True,
            reasons.ROLLING_OUT,
            f"Rolling out version {target.version}: {progress.ready_replicas}/{replicas} ready.",
        )
    if replicas == 0 and spec.autoscaling is None:
        status.phase = "Pending"
        b.cond(reasons.READY, False, reasons.SCALED_TO_ZERO, "replicas is 0.")
    elif progress.available:
        status.phase = "Ready"
        b.cond(
            reasons.READY,
            True,
            reasons.PREDICTOR_READY,
            f"{progress.ready_replicas} of {replicas} replica(s) ready at {status.url}"
            f"{_autoscaled(spec.autoscaling)}.",
        )
    else:
        status.phase = "Pending"
        detail = (
            "; ".join(observed.pod_reasons)
            if observed.pod_reasons
            else "waiting for the predictor pods to start "
            f"(label {names.LABEL_INFERENCESERVICE}={b.name})"
        )
        b.cond(
            reasons.READY,
            False,
            reasons.PREDICTOR_NOT_READY,
            f"No predictor pod is ready: {detail}.",
        )


def _autoscaled(autoscaling: AutoscalingSpec | None) -> str:
    if autoscaling is None:
        return ""
    return f" (autoscaled between {autoscaling.min_replicas} and {autoscaling.max_replicas})"


def target_text(autoscaling: AutoscalingSpec) -> str:
    """The autoscaling target in words, e.g. ``2 requests/s per replica``."""
    if autoscaling.target_requests_per_second is not None:
        return f"{autoscaling.target_requests_per_second:g} requests/s per replica"
    return f"{autoscaling.target_cpu_utilization_percent}% CPU"


def desired_replicas(
    spec: InferenceServiceSpec,
    deployment: Mapping[str, Any],
    autoscaler: Mapping[str, Any] | None,
) -> int:
    """The replicas the predictor should run now: ``spec.replicas``; while autoscaling, the
    autoscaler's latest decision, or (before its first) the running pods brought within
    ``minReplicas``..``maxReplicas``, which is what the autoscaler does first."""
    autoscaling = spec.autoscaling
    if autoscaling is None:
        return spec.replicas
    decided = ((autoscaler or {}).get("status") or {}).get("desiredReplicas")
    if isinstance(decided, int) and decided > 0:
        return decided
    running = int(((deployment.get("status") or {}).get("replicas")) or 0)
    return min(max(running, autoscaling.min_replicas), autoscaling.max_replicas)


_SUFFIXES: Final = {"m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def quantity(text: object) -> float | None:
    """A decimal quantity as an autoscaler writes one (``3166m``, ``2``, ``1500k``)."""
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str) or not text:
        return None
    number, suffix = (text[:-1], text[-1]) if text[-1] in "mkMG" else (text, "")
    try:
        return float(number) * _SUFFIXES[suffix]
    except ValueError:
        return None


def _current_metric(metrics: Sequence[Mapping[str, Any]]) -> str | None:
    for metric in metrics:
        if metric.get("type") == "Pods":
            pods = metric.get("pods") or {}
            if (pods.get("metric") or {}).get("name") != REQUESTS_METRIC:
                continue
            value = quantity((pods.get("current") or {}).get("averageValue"))
            if value is not None:
                return f"{value:.3g} requests/s"
        elif metric.get("type") == "Resource":
            current = (metric.get("resource") or {}).get("current") or {}
            if isinstance(current.get("averageUtilization"), int):
                return f"{current['averageUtilization']}% CPU"
    return None


def autoscaler_status(autoscaler: Mapping[str, Any] | None) -> AutoscalerStatus:
    """The service's account of its autoscaler, from the HorizontalPodAutoscaler's status;
    its message says why it cannot scale when one of its conditions says so."""
    status = (autoscaler or {}).get("status") or {}
    problems = [
        f"{c.get('reason')}: {c.get('message')}"
        for c in status.get("conditions") or []
        if c.get("type") in ("AbleToScale", "ScalingActive") and c.get("status") == "False"
    ]
    return AutoscalerStatus(
        current_replicas=status.get("currentReplicas"),
        desired_replicas=status.get("desiredReplicas"),
        current_metric=_current_metric(status.get("currentMetrics") or []),
        last_scale_time=status.get("lastScaleTime"),
        message="; ".join(problems) or None,
    )


def _resolved(spec: InferenceServiceSpec, target: Candidate) -> str:
    if spec.version == "latest":
        return f"the latest version, {target.version}"
    return f"pinned version {target.version}"


def _truth(
    b: _Builder,
    spec: InferenceServiceSpec,
    candidates: Mapping[int, Candidate],
    by_version: Mapping[int, Mapping[str, Any]],
    degraded_now: bool,
) -> None:
    """``Degraded``, ``RolledBack``, ``GatesPassed`` and the phase say what is true of the
    version served now."""
    status = b.status
    current = status.current_version
    if current is None:
        return
    served = candidates.get(current)
    marked = served is not None and served.degraded
    evaluated = status.last_evaluation is not None and status.last_evaluation.version == current
    degraded = marked or (degraded_now and evaluated)
    last = status.history[-1] if status.history else None
    if degraded:
        if marked:  # the version's mark says why (just made by this plan, or before)
            assert served is not None
            why = b.plan.degrade.get(served.name) or _degraded_message(by_version.get(current))
        else:  # this service's own evaluation of it
            assert status.last_evaluation is not None and spec.monitoring is not None
            why = decide(spec.monitoring.metrics, status.last_evaluation.metrics).summary
        b.cond_with_event(
            reasons.DEGRADED,
            True,
            reasons.METRICS_BREACHED,
            f"Version {current}: {why}",
            "Warning",
        )
        if spec.version != "latest":
            message = (
                f"Pinned to version {spec.version}: the operator never edits your spec, so "
                "change or unpin spec.version to roll back."
            )
            b.cond_with_event(
                reasons.ROLLED_BACK, False, reasons.PINNED_VERSION, message, "Warning"
            )
        elif spec.on_degradation in ("Alert", "Retrain"):
            message = f"onDegradation is {spec.on_degradation}: version {current} keeps serving."
            b.cond_with_event(reasons.ROLLED_BACK, False, reasons.ALERT_ONLY, message, "Warning")
        else:
            message = (
                f"Version {current} is degraded and no healthy version exists to roll back to."
            )
            b.cond_with_event(
                reasons.ROLLED_BACK, False, reasons.NO_HEALTHY_VERSION, message, "Warning"
            )
        if status.phase == "Ready":
            status.phase = "Degraded"
    else:
        healthy = "no policy breached its failure limit" if spec.monitoring else "not monitored"
        if get_condition(status.conditions, reasons.DEGRADED) is not None or spec.monitoring:
            b.cond(
                reasons.DEGRADED,
                False,
                reasons.METRICS_HEALTHY if spec.monitoring else reasons.NOT_EVALUATED,
                f"Version {current}: {healthy}.",
            )
        if (
            last is not None
            and last.reason == reasons.VERSION_ROLLED_BACK
            and last.version == current
        ):
            b.cond(reasons.ROLLED_BACK, True, reasons.VERSION_ROLLED_BACK, last.message)
        elif get_condition(status.conditions, reasons.ROLLED_BACK) is not None:
            b.cond(
                reasons.ROLLED_BACK,
                False,
                last.reason if last is not None else reasons.RESOLVED,
                f"Version {current} serves ({last.reason if last else 'resolved'}); "
                "no rollback is in effect.",
            )
    if served is not None and not served.gates_passed and served.artifact_verified:
        b.cond_with_event(
            reasons.GATES_PASSED,
            False,
            reasons.GATES_NOT_PASSED,
            f"Version {current} serves but did not pass its promotion gates (pinned).",
            "Warning",
        )
    elif get_condition(status.conditions, reasons.GATES_PASSED) is not None:
        b.cond(
            reasons.GATES_PASSED,
            True,
            reasons.ALL_GATES_PASSED,
            f"Version {current} passed its gates.",
        )
