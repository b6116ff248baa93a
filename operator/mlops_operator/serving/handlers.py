"""InferenceService controller: resolve the version → apply Deployment and Service → mirror
the rollout into status → record which services serve each ModelVersion.

Level-triggered like the TrainingJob controller: a change of the service, of any ModelVersion
of its model, or of its Deployment runs the same idempotent ``reconcile``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any, cast

import kopf
from pydantic import ValidationError

from mlops_operator import metrics
from mlops_operator.api import reasons
from mlops_operator.api.base import GROUP, VERSION
from mlops_operator.api.inferenceservice import (
    InferenceServiceSpec,
    InferenceServiceStatus,
    RejectedVersion,
)
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.api.trainingjob import StorageSpec
from mlops_operator.api.validation import describe_validation_error
from mlops_operator.artifacts.storage import resolve_storage
from mlops_operator.context import Context, get_context, reconcile_object
from mlops_operator.kube import client as k8s
from mlops_operator.kube import names
from mlops_operator.kube.status import event, now, with_condition, write
from mlops_operator.monitoring.remediate import promotion_verdict, validate_cron
from mlops_operator.serving.build import build_deployment, build_service
from mlops_operator.serving.plan import (
    Candidate,
    change_reason,
    record,
    resolve_version,
    rollout,
)
from mlops_operator.serving.pods import unready_reasons

logger = logging.getLogger(__name__)

SPEC_HASH = "mlops.dev/spec-hash"


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


async def _apply(
    ctx: Context, res: k8s.Resource, owner: dict[str, Any], desired: dict[str, Any]
) -> dict[str, Any]:
    """Create the object, or patch it when what we want changed (tracked by a hash
    annotation, so server-side defaults never cause a patch loop)."""
    kopf.adopt(desired, owner=kopf.Body(cast(Any, owner)))
    digest = _hash({"spec": desired["spec"], "labels": desired["metadata"].get("labels")})
    desired["metadata"].setdefault("annotations", {})[SPEC_HASH] = digest
    meta = desired["metadata"]
    existing = await ctx.kube.get_or_none(res, meta["namespace"], meta["name"])
    if existing is None:
        try:
            return await ctx.kube.create(res, meta["namespace"], desired)
        except k8s.Conflict:
            existing = await ctx.kube.get(res, meta["namespace"], meta["name"])
    if (existing["metadata"].get("annotations") or {}).get(SPEC_HASH) == digest:
        return existing
    return await ctx.kube.patch(
        res,
        meta["namespace"],
        meta["name"],
        {
            "metadata": {
                "labels": meta.get("labels"),
                "annotations": meta["annotations"],
                "ownerReferences": meta["ownerReferences"],
            },
            "spec": desired["spec"],
        },
    )


async def reconcile(ctx: Context, namespace: str, name: str) -> None:
    """Bring one InferenceService closer to serving its resolved version."""
    await reconcile_object(ctx, k8s.INFERENCESERVICES, namespace, name, _reconcile)


async def _reconcile(ctx: Context, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    before = body.get("status") or {}
    status = InferenceServiceStatus.model_validate(before)
    status.observed_generation = generation

    def cond(type: str, value: bool, reason: str, message: str) -> None:
        status.conditions = with_condition(
            status.conditions, type, "True" if value else "False", reason, message, generation
        )

    try:
        spec = InferenceServiceSpec.model_validate(body.get("spec") or {})
        schedule = spec.retrain.schedule if spec.retrain else None
        cron_error = validate_cron(schedule) if schedule else None
        if cron_error:
            raise ValueError(f"spec.retrain.schedule: {cron_error}")
    except (ValidationError, ValueError) as exc:
        message = (
            describe_validation_error(exc, root="spec")
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        status.phase = "Failed"
        cond(reasons.READY, False, reasons.INVALID_SPEC, message)
        await write_if_changed(ctx, body, status, before)
        if before.get("phase") != "Failed":
            event(body, "Warning", reasons.INVALID_SPEC, message)
        return

    versions = [
        mv
        for mv in await ctx.kube.list(k8s.MODELVERSIONS, namespace)
        if (mv.get("spec") or {}).get("model") == spec.model
    ]
    candidates = {c.version: c for c in (Candidate.from_object(mv) for mv in versions)}
    held_out = {int(mv["spec"]["version"]): mv["spec"].get("metrics") or {} for mv in versions}
    await _follow_retraining(ctx, body, status, versions, cond)
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
            RejectedVersion(version=target.version, reason=why, time=now()),
        ][-50:]
        message = f"Version {target.version} is not promoted: {why}"
        cond(reasons.RETRAINING, False, reasons.NOT_PROMOTED, message)
        status.retraining.last_result = message
        event(body, "Warning", reasons.NOT_PROMOTED, message)
    status.url = names.service_url(name, namespace)
    if resolution.candidate is None:
        if status.current_version is None:
            status.phase = "Pending"
        cond(
            reasons.READY if status.current_version is None else reasons.PROGRESSING,
            False,
            resolution.reason,
            resolution.message,
        )
        await write_if_changed(ctx, body, status, before)
        if (before.get("conditions") or []) != [
            c.model_dump(mode="json", by_alias=True) for c in status.conditions
        ]:
            event(body, "Warning", resolution.reason, resolution.message)
        return

    target = resolution.candidate
    mv_obj = next(mv for mv in versions if mv["metadata"]["name"] == target.name)
    mv_spec = ModelVersionSpec.model_validate(mv_obj["spec"])
    storage = resolve_storage(
        StorageSpec(
            endpoint=mv_spec.artifact.endpoint,
            credentials_secret=mv_spec.artifact.credentials_secret,
        ),
        ctx.settings,
    )
    deployment = await _apply(
        ctx,
        k8s.DEPLOYMENTS,
        body,
        build_deployment(
            name=name,
            namespace=namespace,
            spec=spec,
            model_version=mv_spec,
            image=spec.image or ctx.settings.runtime_image,
            storage=storage,
        ),
    )
    await _apply(
        ctx, k8s.SERVICES, body, build_service(name=name, namespace=namespace, model=spec.model)
    )

    if status.current_version != target.version:
        previous = candidates.get(status.current_version or 0)
        degraded = previous is not None and previous.degraded
        reason = change_reason(status.current_version, spec.version, target.version, degraded)
        message = f"Serving {target.name} ({resolution.message})"
        if reason == reasons.VERSION_ROLLED_BACK and previous is not None:
            why = _degraded_message(versions, previous.version)
            message = f"Rolled back from version {previous.version} to {target.version}: {why}"
            cond(reasons.ROLLED_BACK, True, reasons.VERSION_ROLLED_BACK, message)
            metrics.ROLLBACKS.labels(namespace, name).inc()
            event(body, "Warning", reasons.VERSION_ROLLED_BACK, message)
        elif reason == "NewLatest" and _retrained_here(versions, target.version, name, status):
            cond(reasons.RETRAINING, False, reasons.PROMOTED, f"Promoted version {target.version}.")
            status.retraining.last_result = f"promoted version {target.version}"
        status.history = record(status.history, target.version, reason, message, now())
        event(
            body,
            "Normal",
            "VersionChanged",
            f"Serving version {target.version} of {spec.model} ({reason}).",
        )
        status.current_version = target.version
    metrics.SERVED_VERSION.labels(namespace, name, spec.model).set(target.version)

    progress = rollout(deployment, spec.replicas)
    status.ready_replicas = progress.ready_replicas
    if progress.complete:
        cond(
            reasons.PROGRESSING,
            False,
            reasons.ROLLED_OUT,
            f"Version {target.version} is rolled out to {spec.replicas} replica(s).",
        )
    else:
        cond(
            reasons.PROGRESSING,
            True,
            reasons.ROLLING_OUT,
            f"Rolling out version {target.version}: {progress.ready_replicas}/{spec.replicas} "
            "ready.",
        )
    if spec.replicas == 0:
        status.phase = "Pending"
        cond(reasons.READY, False, reasons.SCALED_TO_ZERO, "replicas is 0.")
    elif progress.available:
        status.phase = "Ready"
        cond(
            reasons.READY,
            True,
            reasons.PREDICTOR_READY,
            f"{progress.ready_replicas} of {spec.replicas} replica(s) ready at {status.url}.",
        )
    else:
        status.phase = "Pending"
        said = await unready_reasons(ctx.kube, namespace, name)
        detail = (
            "; ".join(said)
            if said
            else f"see the pods' events and logs (label {names.LABEL_INFERENCESERVICE}={name})"
        )
        cond(
            reasons.READY,
            False,
            reasons.PREDICTOR_NOT_READY,
            f"No predictor pod is ready yet: {detail}.",
        )
    await write_if_changed(ctx, body, status, before)
    await _mark_served(ctx, namespace, name, versions, target.version)


def _retrained_here(
    versions: list[dict[str, Any]], version: int, name: str, status: InferenceServiceStatus
) -> bool:
    """Whether a version came from one of this service's own retraining TrainingJobs."""
    mine = {names.retrain_name(name, n) for n in range(1, status.retraining.count + 1)}
    return any(
        mv["spec"]["version"] == version
        and ((mv["spec"].get("source") or {}).get("trainingJob")) in mine
        for mv in versions
    )


def _degraded_message(versions: list[dict[str, Any]], version: int) -> str:
    """The reason a version was marked Degraded, from its condition."""
    for mv in versions:
        if mv["spec"]["version"] == version:
            for c in (mv.get("status") or {}).get("conditions") or []:
                if c.get("type") == reasons.DEGRADED:
                    return str(c.get("message") or "")
    return "it was marked Degraded"


Cond = Callable[[str, bool, str, str], None]


async def _follow_retraining(
    ctx: Context,
    body: dict[str, Any],
    status: InferenceServiceStatus,
    versions: list[dict[str, Any]],
    cond: Cond,
) -> None:
    """Track the retraining this service started: finished, failed, or gated out."""
    active = status.retraining.active
    if not active:
        return
    namespace = body["metadata"]["namespace"]
    tj = await ctx.kube.get_or_none(k8s.TRAININGJOBS, namespace, active)
    tj_status = (tj or {}).get("status") or {}
    if tj is None or tj_status.get("phase") == "Failed":
        why = tj_status.get("failureReason") or "the TrainingJob was deleted"
        message = f"Retraining {active} failed: {why}"
        status.retraining.active = None
        status.retraining.last_result = message
        cond(reasons.RETRAINING, False, reasons.RETRAINING_FAILED, message)
        event(body, "Warning", reasons.RETRAINING_FAILED, message)
        return
    mv_name = tj_status.get("modelVersion")
    if tj_status.get("phase") != "Succeeded" or not mv_name:
        return
    mv = next((v for v in versions if v["metadata"]["name"] == mv_name), None)
    phase = ((mv or {}).get("status") or {}).get("phase")
    if phase not in ("Ready", "Failed"):
        return  # registered, still being verified
    status.retraining.active = None
    if phase == "Failed":
        gates = next(
            (
                c.get("message", "")
                for c in (mv or {}).get("status", {}).get("conditions") or []
                if c.get("type") == reasons.READY
            ),
            "",
        )
        message = f"Retrained {mv_name} is not promoted: {gates}"
        status.retraining.last_result = message
        cond(reasons.RETRAINING, False, reasons.NOT_PROMOTED, message)
        event(body, "Warning", reasons.NOT_PROMOTED, message)
    else:
        status.retraining.last_result = f"registered {mv_name}"


async def write_if_changed(
    ctx: Context, body: dict[str, Any], status: InferenceServiceStatus, before: dict[str, Any]
) -> None:
    """Write the status only when it differs from what was read."""
    meta = body["metadata"]
    wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    if wire != before:
        await write(ctx.kube, k8s.INFERENCESERVICES, meta["namespace"], meta["name"], status)


async def _mark_served(
    ctx: Context, namespace: str, name: str, versions: list[dict[str, Any]], serving: int
) -> None:
    """Keep ``status.servedBy`` of every version of the model true to what is served."""

    def wanted(mv: dict[str, Any]) -> tuple[list[str], list[str]]:
        served = sorted((mv.get("status") or {}).get("servedBy") or [])
        mine = mv["spec"]["version"] == serving
        return served, sorted({*served, name} if mine else set(served) - {name})

    for mv in versions:
        served, new = wanted(mv)
        if new == served:
            continue
        # The list was read before this reconcile's writes, and services of the same model
        # reconcile concurrently: re-read under a lock, or each would drop the others' names
        # (a merge patch replaces the list), and they would keep re-adding themselves.
        mv_name = mv["metadata"]["name"]
        async with ctx.lock(("servedBy", namespace, mv_name)):
            fresh = await ctx.kube.get_or_none(k8s.MODELVERSIONS, namespace, mv_name)
            if fresh is None:
                continue
            served, new = wanted(fresh)
            if new != served:
                await ctx.kube.patch_status(
                    k8s.MODELVERSIONS, namespace, mv_name, {"servedBy": new}
                )


async def release(ctx: Context, namespace: str, name: str) -> None:
    """A deleted service no longer serves anything."""
    for mv in await ctx.kube.list(k8s.MODELVERSIONS, namespace):
        served = list((mv.get("status") or {}).get("servedBy") or [])
        if name in served:
            await ctx.kube.patch_status(
                k8s.MODELVERSIONS,
                namespace,
                mv["metadata"]["name"],
                {"servedBy": sorted(set(served) - {name})},
            )


@kopf.on.create(GROUP, VERSION, "inferenceservices")
@kopf.on.resume(GROUP, VERSION, "inferenceservices")
@kopf.on.update(GROUP, VERSION, "inferenceservices", field="spec")
async def inferenceservice_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """An InferenceService appeared or changed, or the operator restarted."""
    assert namespace is not None
    try:
        await reconcile(get_context(memo), namespace, name)
    except k8s.Conflict as exc:
        raise kopf.TemporaryError(f"conflict, retrying: {exc.message}", delay=1) from None


@kopf.on.event(GROUP, VERSION, "inferenceservices")
async def inferenceservice_event(
    type: str, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """A deleted service releases the versions it served (its children go by GC)."""
    if type == "DELETED" and namespace:
        await release(get_context(memo), namespace, name)


@kopf.on.event(GROUP, VERSION, "modelversions")
async def modelversion_event(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    """A version of some model changed: services of that model may now resolve differently."""
    model = (body.get("spec") or {}).get("model")
    if not namespace or not model:
        return
    ctx = get_context(memo)
    # Services write the versions' status.servedBy: that alone changes no resolution, and
    # reacting to it made every new service list and reconcile all services of its model.
    key = (namespace, body.metadata.name)
    if type == "DELETED":
        ctx.version_digests.pop(key, None)
    else:
        status = {k: v for k, v in (body.get("status") or {}).items() if k != "servedBy"}
        digest = _hash(
            {
                "spec": body.get("spec"),
                "status": status,
                "meta": body.metadata.get("deletionTimestamp"),
            }
        )
        if ctx.version_digests.get(key) == digest:
            return
        ctx.version_digests[key] = digest
    for isvc in await ctx.kube.list(k8s.INFERENCESERVICES, namespace):
        if (isvc.get("spec") or {}).get("model") == model:
            await reconcile(ctx, namespace, isvc["metadata"]["name"])


@kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT})
async def deployment_event(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    """The predictor's rollout moved: mirror it into its InferenceService."""
    owner = body.metadata.labels.get(names.LABEL_INFERENCESERVICE)
    if owner and namespace and type != "DELETED":
        await reconcile(get_context(memo), namespace, owner)


def _not_ready(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") != "Ready"


@kopf.timer(GROUP, VERSION, "inferenceservices", interval=10, initial_delay=10, when=_not_ready)
async def inferenceservice_recheck(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """While not Ready, look again: pods explain themselves only once they listen."""
    if namespace:
        await reconcile(get_context(memo), namespace, name)
