"""TrainingJob controller: validate → check storage → create the Job → mirror it → register.

Level-triggered: every trigger (the TrainingJob changed, its Job changed, a periodic
re-check) runs the same idempotent ``reconcile`` on fresh state read from the API.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import kopf
from pydantic import ValidationError

from mlops_operator import failpoints
from mlops_operator.api import reasons
from mlops_operator.api.base import GROUP, VERSION, get_condition
from mlops_operator.api.trainingjob import TrainingJobSpec, TrainingJobStatus
from mlops_operator.api.validation import describe_validation_error
from mlops_operator.artifacts import io as storage_io
from mlops_operator.artifacts import layout
from mlops_operator.artifacts.storage import resolve_storage
from mlops_operator.context import Context, Requeue, get_context, reconcile_object
from mlops_operator.kube import client as k8s
from mlops_operator.kube import names
from mlops_operator.kube.status import event, now, with_condition, write
from mlops_operator.registry.plan import main_metric
from mlops_operator.runtime.termination import parse_termination_message
from mlops_operator.training.build import CONTAINER, build_model_version, build_training_job
from mlops_operator.training.plan import job_outcome, next_version

logger = logging.getLogger(__name__)

STORAGE_RETRY_SECONDS = 30
TERMINAL = ("Succeeded", "Failed")


def allowed_estimator(class_name: str, prefixes: list[str]) -> bool:
    """Whether a class name is under one of the allowed module prefixes (no import done)."""
    return any(class_name.startswith(prefix) for prefix in prefixes)


async def reconcile(ctx: Context, namespace: str, name: str) -> None:
    """Bring one TrainingJob a step closer to Succeeded or Failed; safe to run any time."""
    await reconcile_object(ctx, k8s.TRAININGJOBS, namespace, name, _reconcile)


async def _reconcile(ctx: Context, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = TrainingJobStatus.model_validate(body.get("status") or {})
    if status.phase == "Succeeded" and status.model_version:
        return

    job_name = status.job_name or names.training_job_name(name)
    job = await ctx.kube.get_or_none(k8s.JOBS, namespace, job_name)
    if job is None and status.job_name:
        if status.phase not in TERMINAL:
            await _fail(
                ctx,
                body,
                status,
                reasons.JOB_DELETED,
                f"The training Job {job_name} was deleted before it finished.",
            )
        return
    if job is None:
        spec = await _validate(ctx, body, status)
        if spec is None:
            return
        await _start(ctx, body, status, spec)
        return

    spec = TrainingJobSpec.model_validate(body["spec"])
    await _mirror(ctx, body, status, spec, job)


async def _validate(
    ctx: Context, body: dict[str, Any], status: TrainingJobStatus
) -> TrainingJobSpec | None:
    try:
        spec = TrainingJobSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        await _invalid(ctx, body, status, describe_validation_error(exc, root="spec"))
        return None
    prefixes = ctx.settings.allowed_estimator_prefixes
    if not allowed_estimator(spec.estimator.class_name, prefixes):
        await _invalid(
            ctx,
            body,
            status,
            f"spec.estimator.className: {spec.estimator.class_name!r} is not allowed; "
            f"the operator only builds estimators under {', '.join(prefixes)}",
        )
        return None
    return spec


async def _invalid(
    ctx: Context, body: dict[str, Any], status: TrainingJobStatus, message: str
) -> None:
    meta = body["metadata"]
    generation = meta.get("generation")
    previous = get_condition(status.conditions, reasons.READY)
    status.phase = "Failed"
    status.observed_generation = generation
    status.conditions = with_condition(
        status.conditions, reasons.READY, "False", reasons.INVALID_SPEC, message, generation
    )
    await write(ctx.kube, k8s.TRAININGJOBS, meta["namespace"], meta["name"], status)
    if previous is None or previous.message != message:
        event(body, "Warning", reasons.INVALID_SPEC, message)


async def _start(
    ctx: Context, body: dict[str, Any], status: TrainingJobStatus, spec: TrainingJobSpec
) -> None:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    storage = resolve_storage(spec.storage, ctx.settings)
    check = await storage_io.check(ctx, namespace, storage, spec.dataset.uri)
    previous = get_condition(status.conditions, reasons.STORAGE_REACHABLE)
    status.observed_generation = generation
    status.conditions = with_condition(
        status.conditions,
        reasons.STORAGE_REACHABLE,
        "True" if check.ok else "False",
        check.reason,
        check.message,
        generation,
    )
    if not check.ok:
        status.phase = "Pending"
        status.conditions = with_condition(
            status.conditions, reasons.READY, "False", check.reason, check.message, generation
        )
        await write(ctx.kube, k8s.TRAININGJOBS, namespace, name, status)
        if previous is None or previous.reason != check.reason:
            event(body, "Warning", check.reason, check.message)
        raise Requeue(STORAGE_RETRY_SECONDS, check.message)

    output = layout.run_dir_uri(
        storage.bucket,
        storage.prefix,
        meta["namespace"],
        spec.model,
        name,
        meta["uid"],
        meta.get("generation") or 1,
    )
    job = build_training_job(
        name=name,
        namespace=namespace,
        uid=meta["uid"],
        spec=spec,
        image=spec.image or ctx.settings.runtime_image,
        storage=storage,
        output_uri=output,
        allowed_prefixes=ctx.settings.allowed_estimator_prefixes,
        ttl_seconds=ctx.settings.job_ttl_seconds,
    )
    kopf.adopt(job, owner=kopf.Body(cast(Any, body)))
    try:
        await ctx.kube.create(k8s.JOBS, namespace, job)
        event(body, "Normal", reasons.JOB_CREATED, f"Created Job {job['metadata']['name']}.")
    except k8s.Conflict:
        pass  # created by an earlier run of this reconcile: names are deterministic
    status.job_name = job["metadata"]["name"]
    status.phase = "Pending"
    status.conditions = with_condition(
        status.conditions,
        reasons.READY,
        "False",
        reasons.JOB_CREATED,
        f"Job {status.job_name} created; waiting for the trainer to start.",
        generation,
    )
    await write(ctx.kube, k8s.TRAININGJOBS, namespace, name, status)


async def _last_failure(ctx: Context, namespace: str, job_name: str) -> tuple[str, str] | None:
    """The termination message of the most recent failed trainer container."""
    pods = await ctx.kube.list(k8s.PODS, namespace, labels={"job-name": job_name})
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
    for pod in reversed(pods):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if cs.get("name") == CONTAINER and term.get("exitCode", 0) != 0:
                message = (term.get("message") or "").strip()
                if message:
                    return parse_termination_message(message)
    return None


def _output_uri(job: dict[str, Any]) -> str:
    """Where the trainer was told to write: the ``--output`` argument of its container."""
    for container in job["spec"]["template"]["spec"]["containers"]:
        if container["name"] == CONTAINER:
            args = list(container.get("args") or [])
            return str(args[args.index("--output") + 1])
    raise ValueError(f"Job {job['metadata']['name']} has no {CONTAINER} container")


async def _mirror(
    ctx: Context,
    body: dict[str, Any],
    status: TrainingJobStatus,
    spec: TrainingJobSpec,
    job: dict[str, Any],
) -> None:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    job_status = job.get("status") or {}
    failure = None
    if any(
        c.get("type") == "Failed" and c.get("status") == "True"
        for c in job_status.get("conditions") or []
    ):
        failure = await _last_failure(ctx, namespace, job["metadata"]["name"])
    outcome = job_outcome(job_status, failure)
    if job_status.get("startTime") and status.start_time is None:
        status.start_time = job_status["startTime"]
    status.job_name = job["metadata"]["name"]

    if outcome.phase == "Failed":
        if status.phase != "Failed":
            await _fail(
                ctx,
                body,
                status,
                outcome.reason,
                outcome.message,
                completion=job_status.get("completionTime"),
            )
        return
    if outcome.phase in ("Pending", "Running"):
        if status.phase == outcome.phase:
            return
        status.phase = outcome.phase
        status.conditions = with_condition(
            status.conditions, reasons.READY, "False", outcome.reason, outcome.message, generation
        )
        await write(ctx.kube, k8s.TRAININGJOBS, namespace, name, status)
        return
    await _register(ctx, body, status, spec, job)


async def _fail(
    ctx: Context,
    body: dict[str, Any],
    status: TrainingJobStatus,
    reason: str,
    message: str,
    *,
    completion: Any = None,
) -> None:
    meta = body["metadata"]
    status.phase = "Failed"
    status.failure_reason = message
    status.completion_time = completion or now()
    status.conditions = with_condition(
        status.conditions, reasons.READY, "False", reason, message, meta.get("generation")
    )
    await write(ctx.kube, k8s.TRAININGJOBS, meta["namespace"], meta["name"], status)
    event(body, "Warning", reason, message)


async def _taken_versions(ctx: Context, namespace: str, model: str, me: str) -> set[int]:
    """Every version number of the model already registered or reserved by another run."""
    taken: set[int] = set()
    for mv in await ctx.kube.list(k8s.MODELVERSIONS, namespace):
        spec = mv.get("spec") or {}
        if spec.get("model") == model and isinstance(spec.get("version"), int):
            taken.add(spec["version"])
    for tj in await ctx.kube.list(k8s.TRAININGJOBS, namespace):
        version = (tj.get("status") or {}).get("version")
        same_model = (tj.get("spec") or {}).get("model") == model
        if same_model and isinstance(version, int) and tj["metadata"]["name"] != me:
            taken.add(version)
    return taken


async def _register(
    ctx: Context,
    body: dict[str, Any],
    status: TrainingJobStatus,
    spec: TrainingJobSpec,
    job: dict[str, Any],
) -> None:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    storage = resolve_storage(spec.storage, ctx.settings)
    run_uri = _output_uri(job)
    store = await storage_io.open_store(ctx, namespace, storage)
    try:
        manifest = json.loads(await storage_io.read_bytes(store, run_uri + "manifest.json"))
    except storage_io.NotFound:
        await _fail(
            ctx,
            body,
            status,
            reasons.REGISTRATION_FAILED,
            f"The trainer reported success but {run_uri}manifest.json does not exist.",
        )
        return

    # Registration is serialised per model so that two runs never take the same number.
    async with ctx.lock(("model", namespace, spec.model)):
        if status.version is None:
            taken = await _taken_versions(ctx, namespace, spec.model, name)
            status.version = next_version(taken)
            status.phase = "Running"
            status.conditions = with_condition(
                status.conditions,
                reasons.READY,
                "False",
                reasons.REGISTERING,
                f"Training finished; registering version {status.version}.",
                generation,
            )
            # Reserve the number before anything else, so a restart reuses it.
            await write(ctx.kube, k8s.TRAININGJOBS, namespace, name, status)
            failpoints.hit("register.after-reserve")

        version_uri = layout.version_dir_uri(
            storage.bucket, storage.prefix, meta["namespace"], spec.model, status.version
        )
        await storage_io.copy_prefix(store, run_uri, version_uri)
        failpoints.hit("register.after-copy")

        mv = build_model_version(
            namespace=namespace,
            trainingjob=name,
            spec=spec,
            version=status.version,
            artifact_uri=version_uri,
            manifest=manifest,
            storage=storage,
        )
        mv_name = mv["metadata"]["name"]
        try:
            await ctx.kube.create(k8s.MODELVERSIONS, namespace, mv)
            failpoints.hit("register.after-create")
        except k8s.Conflict:
            existing = await ctx.kube.get(k8s.MODELVERSIONS, namespace, mv_name)
            source = (existing.get("spec") or {}).get("source") or {}
            if source.get("trainingJob") != name:
                # Someone registered this number by hand meanwhile: take the next one.
                status.version = None
                await write(ctx.kube, k8s.TRAININGJOBS, namespace, name, status, clear=("version",))
                raise Requeue(1, f"version number taken by {mv_name}; retrying") from None

    metrics = {k: float(v) for k, v in (manifest.get("metrics") or {}).items()}
    status.phase = "Succeeded"
    status.model_version = mv_name
    status.artifact_uri = version_uri
    status.metrics = metrics
    status.main_metric = main_metric(metrics)
    status.completion_time = (job.get("status") or {}).get("completionTime") or now()
    message = f"Registered ModelVersion {mv_name}" + (
        f" ({status.main_metric})." if status.main_metric else "."
    )
    status.conditions = with_condition(
        status.conditions,
        reasons.REGISTERED,
        "True",
        reasons.MODEL_REGISTERED,
        message,
        generation,
    )
    status.conditions = with_condition(
        status.conditions, reasons.READY, "True", reasons.MODEL_REGISTERED, message, generation
    )
    await write(ctx.kube, k8s.TRAININGJOBS, namespace, name, status)
    event(body, "Normal", reasons.MODEL_REGISTERED, message)


async def _run(memo: Any, namespace: str | None, name: str) -> None:
    assert namespace is not None  # TrainingJobs are namespaced
    try:
        await reconcile(get_context(memo), namespace, name)
    except Requeue as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
    except k8s.Conflict as exc:
        raise kopf.TemporaryError(f"conflict, retrying: {exc.message}", delay=1) from None


@kopf.on.create(GROUP, VERSION, "trainingjobs")
@kopf.on.resume(GROUP, VERSION, "trainingjobs")
@kopf.on.update(GROUP, VERSION, "trainingjobs", field="spec")
async def trainingjob_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """A TrainingJob appeared, changed, or the operator restarted."""
    await _run(memo, namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels={names.LABEL_TRAININGJOB: kopf.PRESENT})
async def job_changed(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    """A training Job's status moved: mirror it into its TrainingJob."""
    owner = body.metadata.labels.get(names.LABEL_TRAININGJOB)
    if not owner or not namespace or type == "DELETED":
        return
    try:
        await reconcile(get_context(memo), namespace, owner)
    except Requeue as exc:
        logger.info("TrainingJob %s/%s will be retried: %s", namespace, owner, exc)


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in TERMINAL or (
        status.get("phase") == "Succeeded" and not status.get("modelVersion")
    )


@kopf.timer(GROUP, VERSION, "trainingjobs", interval=30, initial_delay=30, when=_unfinished)
async def trainingjob_recheck(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Safety net for missed Job events and failed registrations: re-run the reconcile."""
    await _run(memo, namespace, name)
