"""Monitoring: every interval, measure an InferenceService's metric policies, judge them, and
remediate — roll back to the last healthy version and/or retrain — as ``onDegradation`` says.

Measuring is I/O (pods' ``/metrics``, PromQL); judging is pure (``policy.monitoring``);
remediation only writes status, Events, a ModelVersion's Degraded mark and a TrainingJob.
The served version itself is always chosen by the InferenceService reconcile, so a rollback
is "mark the version Degraded, and ``latest`` no longer selects it"; the user's spec is never
edited, so GitOps tools see no drift.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, cast

import kopf
from pydantic import ValidationError

from mlops_operator import metrics
from mlops_operator.api import reasons
from mlops_operator.api.base import GROUP, VERSION, get_condition
from mlops_operator.api.inferenceservice import (
    Evaluation,
    InferenceServiceSpec,
    InferenceServiceStatus,
)
from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.context import Context, get_context, reconcile_object
from mlops_operator.kube import client as k8s
from mlops_operator.kube import names
from mlops_operator.kube.status import event, now, with_condition
from mlops_operator.monitoring.aggregate import Measurement, Snapshot, aggregate
from mlops_operator.monitoring.judge import decide, evaluate_metric
from mlops_operator.monitoring.measure import PrometheusError, query_scalar, render_query, scrape
from mlops_operator.monitoring.remediate import (
    may_retrain,
    next_run,
    rollback_target,
    validate_cron,
)
from mlops_operator.serving import handlers as inferenceservice
from mlops_operator.serving.plan import Candidate

logger = logging.getLogger(__name__)

IDLE_INTERVAL = 30.0
"""How often a service with only a retraining schedule is looked at."""


@dataclass
class MonitorState:
    """What one service's monitor keeps between evaluations: counters for rates."""

    snapshot: Snapshot | None = None
    version: int | None = None


async def _ready_pod_metrics(
    ctx: Context, namespace: str, name: str, version: int
) -> tuple[dict[str, str], dict[str, str]]:
    """``/metrics`` of every ready pod serving ``version``: texts and failures, by pod name."""
    pods = await ctx.kube.list(
        k8s.PODS,
        namespace,
        labels={names.LABEL_INFERENCESERVICE: name, names.LABEL_VERSION: str(version)},
    )
    urls: dict[str, str] = {}
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if ready and status.get("podIP"):
            urls[pod["metadata"]["name"]] = (
                f"http://{status['podIP']}:{names.PREDICTOR_PORT}/metrics"
            )
    answers = await asyncio.gather(*(scrape(url) for url in urls.values()), return_exceptions=True)
    texts: dict[str, str] = {}
    failed: dict[str, str] = {}
    for pod_name, answer in zip(urls, answers, strict=True):
        if isinstance(answer, str):
            texts[pod_name] = answer
        else:
            failed[pod_name] = str(answer)
    return texts, failed


async def measure(
    ctx: Context,
    namespace: str,
    name: str,
    spec: InferenceServiceSpec,
    version: int,
    state: MonitorState,
) -> dict[str, Measurement | None]:
    """One measurement per policy; ``None`` where it could not be measured."""
    assert spec.monitoring is not None
    result: dict[str, Measurement | None] = {}
    builtins = [p for p in spec.monitoring.metrics if p.builtin is not None]
    if builtins:
        if state.version != version:  # rates never span two versions
            state.snapshot, state.version = None, version
        texts, failed = await _ready_pod_metrics(ctx, namespace, name, version)
        combined = aggregate(texts, spec.model, state.snapshot, failed=failed)
        state.snapshot = combined.snapshot
        for policy in builtins:
            assert policy.builtin is not None
            result[policy.name] = combined.measurements.get(policy.builtin)
    for policy in spec.monitoring.metrics:
        if policy.prometheus is None:
            continue
        address = policy.prometheus.address or ctx.settings.prometheus_url
        if not address:
            result[policy.name] = None
            continue
        query = render_query(
            policy.prometheus.query,
            model=spec.model,
            version=version,
            namespace=namespace,
            service=name,
        )
        try:
            answer = await query_scalar(address, query)
        except PrometheusError as exc:
            logger.warning("%s/%s: policy %s: %s", namespace, name, policy.name, exc)
            result[policy.name] = None
            continue
        result[policy.name] = Measurement(value=answer.value, samples=None, message=answer.message)
    return result


async def _mark_degraded(ctx: Context, namespace: str, mv: dict[str, Any], message: str) -> None:
    status = mv.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != reasons.DEGRADED]
    conditions.append(
        {
            "type": reasons.DEGRADED,
            "status": "True",
            "reason": reasons.METRICS_BREACHED,
            "message": message,
            "lastTransitionTime": now().isoformat().replace("+00:00", "Z"),
        }
    )
    await ctx.kube.patch_status(
        k8s.MODELVERSIONS,
        namespace,
        mv["metadata"]["name"],
        {"phase": "Degraded", "conditions": conditions},
    )


async def _training_spec(
    ctx: Context, namespace: str, spec: InferenceServiceSpec, serving: dict[str, Any] | None
) -> TrainingJobSpec | None:
    """The template, else the spec of the TrainingJob that produced the serving version."""
    assert spec.retrain is not None
    template = spec.retrain.template
    if template is None and serving is not None:
        source = ((serving.get("spec") or {}).get("source") or {}).get("trainingJob")
        if source:
            tj = await ctx.kube.get_or_none(k8s.TRAININGJOBS, namespace, source)
            if tj is not None:
                try:
                    template = TrainingJobSpec.model_validate(tj["spec"])
                except ValidationError:
                    template = None
    if template is None:
        return None
    if spec.retrain.dataset is not None:
        template = template.model_copy(update={"dataset": spec.retrain.dataset})
    return template


async def start_retraining(
    ctx: Context,
    body: dict[str, Any],
    spec: InferenceServiceSpec,
    status: InferenceServiceStatus,
    serving: dict[str, Any] | None,
    why: str,
    moment: dt.datetime,
) -> None:
    """Create ``<service>-retrain-<n>`` unless one runs, the cooldown or the budget forbids."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    retrain = spec.retrain
    cooldown = retrain.cooldown_seconds if retrain else 3600
    budget = retrain.max_per_day if retrain else 3
    allowed, reason = may_retrain(
        moment, status.retraining.started, status.retraining.active is not None, cooldown, budget
    )
    if not allowed:
        if status.retraining.active is None:
            previous = get_condition(status.conditions, reasons.RETRAINING)
            status.conditions = with_condition(
                status.conditions,
                reasons.RETRAINING,
                "False",
                reasons.RETRAINING_REFUSED,
                reason,
                generation,
            )
            if previous is None or previous.message != reason:
                event(body, "Normal", reasons.RETRAINING_REFUSED, reason)
        return
    template = await _training_spec(ctx, namespace, spec, serving) if retrain else None
    if template is None:
        message = (
            "No TrainingJob spec to retrain from: set spec.retrain.template, or serve a "
            "version produced by a TrainingJob that still exists."
        )
        status.conditions = with_condition(
            status.conditions,
            reasons.RETRAINING,
            "False",
            reasons.NO_TRAINING_SPEC,
            message,
            generation,
        )
        return
    tj_name = names.retrain_name(name, status.retraining.count + 1)
    tj = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {
            "name": tj_name,
            "namespace": namespace,
            "labels": {
                names.LABEL_INFERENCESERVICE: name,
                names.LABEL_MODEL: template.model,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
        },
        "spec": template.to_wire(),
    }
    kopf.adopt(tj, owner=kopf.Body(cast(Any, body)))
    try:
        await ctx.kube.create(k8s.TRAININGJOBS, namespace, tj)
    except k8s.Conflict:
        pass  # created by an attempt that crashed before recording it
    day_ago = moment - dt.timedelta(days=1)
    status.retraining.started = [t for t in status.retraining.started if t > day_ago] + [moment]
    status.retraining.count += 1
    metrics.RETRAININGS.labels(namespace, name).inc()
    status.retraining.active = tj_name
    message = f"Started TrainingJob {tj_name}: {why}"
    status.retraining.last_result = message
    status.conditions = with_condition(
        status.conditions,
        reasons.RETRAINING,
        "True",
        reasons.RETRAINING_STARTED,
        message,
        generation,
    )
    event(body, "Normal", reasons.RETRAINING_STARTED, message)


async def _evaluate(ctx: Context, body: dict[str, Any], state: MonitorState) -> dt.datetime | None:
    """Evaluate and remediate once; the time of the next scheduled retraining, if any."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    before = body.get("status") or {}
    status = InferenceServiceStatus.model_validate(before)
    try:
        spec = InferenceServiceSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return None  # the reconcile reports it
    moment = now()
    versions = [
        mv
        for mv in await ctx.kube.list(k8s.MODELVERSIONS, namespace)
        if (mv.get("spec") or {}).get("model") == spec.model
    ]
    current = status.current_version
    serving = next((mv for mv in versions if mv["spec"]["version"] == current), None)

    if (
        spec.retrain is not None
        and spec.retrain.schedule
        and not validate_cron(spec.retrain.schedule)
    ):
        due = status.retraining.next_scheduled
        if due is not None and moment >= due:
            await start_retraining(ctx, body, spec, status, serving, "scheduled", moment)
        if due is None or moment >= due:
            status.retraining.next_scheduled = next_run(spec.retrain.schedule, moment)

    if spec.monitoring and spec.monitoring.metrics and current is not None and serving:
        measurements = await measure(ctx, namespace, name, spec, current, state)
        last = status.last_evaluation
        previous = (
            {r.name: r for r in last.metrics}
            if last is not None and last.version == current
            else {}
        )
        results = [
            evaluate_metric(p, measurements.get(p.name), previous.get(p.name))
            for p in spec.monitoring.metrics
        ]
        status.last_evaluation = Evaluation(time=moment, version=current, metrics=results)
        for result in results:
            metrics.EVALUATIONS.labels(namespace, name, result.name, result.verdict).inc()
        decision = decide(spec.monitoring.metrics, results)
        was_degraded = get_condition(status.conditions, reasons.DEGRADED)
        if decision.degraded:
            status.conditions = with_condition(
                status.conditions,
                reasons.DEGRADED,
                "True",
                reasons.METRICS_BREACHED,
                f"Version {current}: {decision.summary}",
                generation,
            )
            if was_degraded is None or was_degraded.status != "True":
                event(
                    body,
                    "Warning",
                    reasons.METRICS_BREACHED,
                    f"Version {current}: {decision.summary}",
                )
            await _remediate(ctx, body, spec, status, versions, serving, decision.summary, moment)
        else:
            status.conditions = with_condition(
                status.conditions,
                reasons.DEGRADED,
                "False",
                reasons.METRICS_HEALTHY,
                f"Version {current}: every policy is within its thresholds or inconclusive.",
                generation,
            )
    await inferenceservice.write_if_changed(ctx, body, status, before)
    return status.retraining.next_scheduled


async def _remediate(
    ctx: Context,
    body: dict[str, Any],
    spec: InferenceServiceSpec,
    status: InferenceServiceStatus,
    versions: list[dict[str, Any]],
    serving: dict[str, Any],
    summary: str,
    moment: dt.datetime,
) -> None:
    meta = body["metadata"]
    namespace, generation = meta["namespace"], meta.get("generation")
    action = spec.on_degradation
    current = int(serving["spec"]["version"])
    already = Candidate.from_object(serving).degraded
    if action in ("Rollback", "RollbackAndRetrain") and not already:
        if spec.version != "latest":
            message = (
                f"Pinned to version {spec.version}: the operator never edits your spec, so "
                "change or unpin spec.version to roll back."
            )
            status.conditions = with_condition(
                status.conditions,
                reasons.ROLLED_BACK,
                "False",
                reasons.PINNED_VERSION,
                message,
                generation,
            )
            event(body, "Warning", reasons.PINNED_VERSION, message)
        else:
            await _mark_degraded(ctx, namespace, serving, f"Breached on {meta['name']}: {summary}")
            candidates = [Candidate.from_object(mv) for mv in versions if mv is not serving]
            target = rollback_target(status.history, candidates, current)
            if target is None:
                message = f"Version {current} is degraded and no healthy earlier version exists."
                status.conditions = with_condition(
                    status.conditions,
                    reasons.ROLLED_BACK,
                    "False",
                    reasons.NO_HEALTHY_VERSION,
                    message,
                    generation,
                )
                event(body, "Warning", reasons.NO_HEALTHY_VERSION, message)
    if action == "Alert" and not already:
        status.conditions = with_condition(
            status.conditions,
            reasons.ROLLED_BACK,
            "False",
            reasons.ALERT_ONLY,
            "onDegradation is Alert: nothing is changed automatically.",
            generation,
        )
    if action in ("Retrain", "RollbackAndRetrain"):
        await start_retraining(
            ctx, body, spec, status, serving, f"version {current} degraded: {summary}", moment
        )


async def evaluate(ctx: Context, namespace: str, name: str, state: MonitorState) -> float:
    """One evaluation of one service; the seconds until the next."""
    interval = IDLE_INTERVAL

    async def step(ctx: Context, body: dict[str, Any]) -> None:
        nonlocal interval
        monitoring = (body.get("spec") or {}).get("monitoring") or {}
        interval = float(monitoring.get("intervalSeconds") or IDLE_INTERVAL)
        scheduled = await _evaluate(ctx, body, state)
        if scheduled is not None:  # wake up in time for the schedule
            interval = min(interval, max(1.0, (scheduled - now()).total_seconds() + 0.5))

    # A rollback needs no reconcile here: marking the version Degraded is a ModelVersion
    # event, and that already reconciles every service of the model.
    await reconcile_object(ctx, k8s.INFERENCESERVICES, namespace, name, step)
    return interval


def _monitored(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("monitoring") or (spec.get("retrain") or {}).get("schedule"))


@kopf.daemon(GROUP, VERSION, "inferenceservices", when=_monitored, cancellation_timeout=5)
async def monitor(
    stopped: kopf.DaemonStopped, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """Evaluate the service's policies every ``intervalSeconds`` until it goes away."""
    assert namespace is not None
    ctx = get_context(memo)
    state = MonitorState()
    while not stopped:
        try:
            interval = await evaluate(ctx, namespace, name, state)
        except k8s.KubeError as exc:
            logger.warning("%s/%s: evaluation failed, retrying: %s", namespace, name, exc)
            interval = 5.0
        await stopped.wait(interval)
