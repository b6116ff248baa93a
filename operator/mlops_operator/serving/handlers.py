"""InferenceService reconcile: read (watch state) → plan (pure, ``serving.plan``) → apply
(Deployment, Service, HorizontalPodAutoscaler, degradation marks, a retraining TrainingJob,
status) → report (Events, metrics). Triggers live in ``mlops_operator.watches``; they only
mark a service dirty."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from mlops_operator import metrics
from mlops_operator.context import Context
from mlops_operator.kube import client as k8s
from mlops_operator.kube import names
from mlops_operator.kube.apply import (
    InvalidChild,
    apply_child,
    own,
    write_annotations,
)
from mlops_operator.kube.names import DEGRADED_ANNOTATION
from mlops_operator.kube.queue import Key
from mlops_operator.kube.status import now
from mlops_operator.serving.build import HANDED_TO_AUTOSCALER
from mlops_operator.serving.plan import (
    Observed,
    invalid,
    needs_pod_reasons,
    plan,
)
from mlops_operator.serving.pods import unready_reasons

logger = logging.getLogger(__name__)

WRITER = "inferenceservices"
"""What this controller's writes are attributed to (see ``Cache.remember``)."""


def observe(ctx: Context, obj: dict[str, Any]) -> Observed:
    """Everything the plan needs, from watch state (no API reads)."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    model = str((obj.get("spec") or {}).get("model") or "")
    versions = ctx.cache.of_model(k8s.MODELVERSIONS, namespace, model)
    trainingjobs = {
        tj["metadata"]["name"]: tj for tj in ctx.cache.of_model(k8s.TRAININGJOBS, namespace, model)
    }
    active = ((obj.get("status") or {}).get("retraining") or {}).get("active")
    if active and active not in trainingjobs:  # a retraining may train another model name
        found = ctx.cache.get(k8s.TRAININGJOBS, namespace, active)
        if found is not None:
            trainingjobs[active] = found
    return Observed(
        obj=obj,
        versions=versions,
        trainingjobs=trainingjobs,
        deployment=ctx.cache.get(k8s.DEPLOYMENTS, namespace, names.predictor_name(name)),
        measured=ctx.measured.get((namespace, name)),
        autoscaler=ctx.cache.get(k8s.HPAS, namespace, names.predictor_name(name)),
    )


async def reconcile(ctx: Context, key: Key) -> float | None:
    """One reconcile of one InferenceService; the seconds until it wants another look."""
    namespace, name = key
    obj = ctx.cache.get(k8s.INFERENCESERVICES, namespace, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        ctx.measured.pop(key, None)
        ctx.snapshots.pop(key, None)
        if ctx.monitor is not None:
            ctx.monitor.untrack(key)
        return None
    metrics.RECONCILES.labels("inferenceservices").inc()
    observed = observe(ctx, obj)
    moment = now()
    decided = plan(observed, ctx.settings, moment)
    if decided.valid and decided.status.phase != "Ready" and needs_pod_reasons(observed.deployment):
        said = await unready_reasons(ctx.kube, namespace, name)
        if said:
            observed = dataclasses.replace(observed, pod_reasons=said)
            decided = plan(observed, ctx.settings, moment)

    # The retraining first: once the version is marked degraded below, `latest` no longer
    # serves it and no breach would start the retraining again after a restart. A created
    # TrainingJob is found (and recorded) by the next reconcile whatever happens next.
    if decided.trainingjob is not None:
        tj = own(decided.trainingjob, obj)
        try:
            created = await ctx.kube.create(k8s.TRAININGJOBS, namespace, tj)
            ctx.cache.remember(k8s.TRAININGJOBS, created, WRITER)
        except k8s.Conflict:
            pass  # created by an attempt that failed before recording it: names are fixed
        metrics.RETRAININGS.labels(namespace, name).inc()
    # Then the marks: a rollback is recorded on the degraded version before the rest, so a
    # failure after this point still finds it marked when the reconcile is retried.
    for mv_name, why in decided.degrade.items():
        mv = ctx.cache.get(k8s.MODELVERSIONS, namespace, mv_name)
        if mv is not None:
            await write_annotations(
                ctx.kube,
                ctx.cache,
                k8s.MODELVERSIONS,
                mv,
                {DEGRADED_ANNOTATION: why[:1000]},
                WRITER,
            )
    if decided.delete_autoscaler:
        # Before the Deployment gets its fixed replicas back, so no autoscaler overrides them.
        await ctx.kube.delete(k8s.HPAS, namespace, names.predictor_name(name))
    applies = []  # the Deployment, the Service and the autoscaler do not depend on each other
    if decided.deployment is not None:
        name_of = decided.deployment["metadata"]["name"]
        existing = ctx.cache.get(k8s.DEPLOYMENTS, namespace, name_of)
        applies.append(
            apply_child(
                ctx.kube,
                ctx.cache,
                k8s.DEPLOYMENTS,
                own(decided.deployment, obj),
                existing,
                WRITER,
                hand_over=HANDED_TO_AUTOSCALER,
            )
        )
    if decided.service is not None:
        existing = ctx.cache.get(k8s.SERVICES, namespace, decided.service["metadata"]["name"])
        applies.append(
            apply_child(
                ctx.kube, ctx.cache, k8s.SERVICES, own(decided.service, obj), existing, WRITER
            )
        )
    if decided.autoscaler is not None:
        existing = ctx.cache.get(k8s.HPAS, namespace, decided.autoscaler["metadata"]["name"])
        applies.append(
            apply_child(
                ctx.kube, ctx.cache, k8s.HPAS, own(decided.autoscaler, obj), existing, WRITER
            )
        )
    try:
        await asyncio.gather(*applies)
    except InvalidChild as exc:
        status, events = invalid(obj, str(exc), moment)
        await ctx.report(k8s.INFERENCESERVICES, obj, status.to_wire(), events)
        return None

    await ctx.report(k8s.INFERENCESERVICES, obj, decided.status.to_wire(), decided.events)
    if decided.rolled_back:
        metrics.ROLLBACKS.labels(namespace, name).inc()
    evaluation = decided.status.last_evaluation
    judged = ((obj.get("status") or {}).get("lastEvaluation") or {}).get("time")
    if evaluation is not None and evaluation.to_wire()["time"] != judged:
        for result in evaluation.metrics:
            metrics.EVALUATIONS.labels(namespace, name, result.name, result.verdict).inc()
    model = (obj.get("spec") or {}).get("model")
    if decided.status.current_version is not None and model:
        metrics.SERVED_VERSION.labels(namespace, name, model).set(decided.status.current_version)
    if ctx.monitor is not None:
        if decided.monitor_interval:
            ctx.monitor.track(key, decided.monitor_interval)
        else:
            ctx.monitor.untrack(key)
    return decided.requeue_after
