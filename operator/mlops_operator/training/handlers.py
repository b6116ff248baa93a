"""TrainingJob reconcile: read (watch state) → validate (``training.plan``) → check storage →
create the Job for the spec's generation → mirror it → register the version. A spec changed
after a run (succeeded or failed) runs again for the new generation: a new Job and, on
success, a new version. Triggers live in ``mlops_operator.watches``."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from mlops_operator import failpoints, metrics
from mlops_operator.api import reasons
from mlops_operator.api.base import get_condition
from mlops_operator.api.trainingjob import TrainingJobSpec, TrainingJobStatus
from mlops_operator.artifacts import io as storage_io
from mlops_operator.artifacts import layout
from mlops_operator.artifacts.storage import ResolvedStorage, resolve_storage
from mlops_operator.artifacts.store import ArtifactStore, Unreachable
from mlops_operator.context import Context
from mlops_operator.kube import client as k8s
from mlops_operator.kube import names
from mlops_operator.kube.apply import InvalidChild, apply_child, own
from mlops_operator.kube.queue import Key
from mlops_operator.kube.status import now
from mlops_operator.registry.plan import main_metric
from mlops_operator.runtime.termination import parse_termination_message
from mlops_operator.training.build import (
    CONTAINER,
    OUTPUT_ANNOTATION,
    build_model_version,
    build_training_job,
)
from mlops_operator.training.plan import (
    Observed,
    Progress,
    Reference,
    Registered,
    invalid_spec,
    next_version,
    plan,
    registration_of,
    validated,
)

logger = logging.getLogger(__name__)

NUMBER_ATTEMPTS = 20
"""Version numbers tried in one registration before giving up (each taken by hand, or by
an older artifact in storage)."""


class _Run(Progress):
    """One reconcile's TrainingJob: its status as planned, changed in place while the plan is
    applied (registration), then written with its Events."""

    def __init__(
        self,
        ctx: Context,
        obj: dict[str, Any],
        status: TrainingJobStatus,
        events: list[tuple[str, str, str]],
    ) -> None:
        meta = obj["metadata"]
        super().__init__(status, int(meta.get("generation") or 1), now())
        self.ctx = ctx
        self.obj = obj
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.events = list(events)

    async def write(self) -> None:
        """Write what differs and post the Events (see :meth:`Context.report`)."""
        await self.ctx.report(k8s.TRAININGJOBS, self.obj, self.status.to_wire(), self.events)
        self.obj = self.ctx.cache.get(k8s.TRAININGJOBS, self.namespace, self.name) or self.obj
        self.events = []


async def reconcile(ctx: Context, key: Key) -> float | None:
    """One reconcile of one TrainingJob; the seconds until it wants another look."""
    namespace, name = key
    obj = ctx.cache.get(k8s.TRAININGJOBS, namespace, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return None
    metrics.RECONCILES.labels("trainingjobs").inc()
    generation = int(obj["metadata"].get("generation") or 1)
    model = (obj.get("spec") or {}).get("model")
    observed = Observed(
        obj=obj,
        job=ctx.cache.get(k8s.JOBS, namespace, names.training_job_name(name, generation)),
        versions=ctx.cache.of_model(k8s.MODELVERSIONS, namespace, model) if model else (),
    )
    prefixes = ctx.settings.allowed_estimator_prefixes
    decided = plan(observed, prefixes, now())
    if decided.needs == "storage" and decided.spec is not None:
        storage = resolve_storage(decided.spec.storage, ctx.settings)
        check = await storage_io.check(ctx, namespace, storage, decided.spec.dataset.uri)
        decided = plan(dataclasses.replace(observed, storage=check), prefixes, now())
    elif decided.needs == "failure" and observed.job is not None:
        said = await _last_failure(ctx, namespace, observed.job["metadata"]["name"])
        observed = dataclasses.replace(observed, failure=said, failure_read=True)
        decided = plan(observed, prefixes, now())

    run = _Run(ctx, obj, decided.status, decided.events)
    if decided.supersede:
        await ctx.kube.delete(k8s.JOBS, namespace, decided.supersede)
    if decided.create_job and decided.spec is not None:
        await _create_job(run, decided.spec, decided.reference)
    elif decided.register and decided.spec is not None and observed.job is not None:
        try:
            await _register(run, decided.spec, dict(observed.job))
        except Unreachable as exc:
            # Said once in the status; the queue retries with backoff, one log line each.
            await _storage_unreachable(run, exc.message)
            raise
        return None
    await run.write()
    return decided.requeue_after


async def _storage_unreachable(run: _Run, message: str) -> None:
    """``StorageReachable=False`` while registering; the run stays ``Running``."""
    reachable = get_condition(run.status.conditions, reasons.STORAGE_REACHABLE)
    text = f"Training finished but storage cannot be reached to register it: {message}"
    run.status.phase = "Running"
    run.cond(reasons.STORAGE_REACHABLE, False, reasons.STORAGE_UNREACHABLE, message)
    run.cond(reasons.READY, False, reasons.STORAGE_UNREACHABLE, text)
    if reachable is None or reachable.status != "False":
        run.event("Warning", reasons.STORAGE_UNREACHABLE, text)
    await run.write()


async def _create_job(run: _Run, spec: TrainingJobSpec, reference: Reference | None) -> None:
    """Create the planned Job; a Job the API server rejects makes the spec invalid."""
    ctx = run.ctx
    storage = resolve_storage(spec.storage, ctx.settings)
    meta = run.obj["metadata"]
    output = layout.run_dir_uri(
        storage.bucket,
        storage.prefix,
        run.namespace,
        spec.model,
        run.name,
        meta["uid"],
        run.generation,
    )
    job = build_training_job(
        name=run.name,
        namespace=run.namespace,
        uid=meta["uid"],
        spec=spec,
        image=spec.image or ctx.settings.runtime_image,
        storage=storage,
        output_uri=output,
        allowed_prefixes=ctx.settings.allowed_estimator_prefixes,
        ttl_seconds=ctx.settings.job_ttl_seconds,
        generation=run.generation,
        pod_defaults=ctx.settings.training_pod,
        reference=(reference.name, reference.schema_uri) if reference else None,
    )
    try:
        await apply_child(ctx.kube, ctx.cache, k8s.JOBS, own(job, run.obj), None, "trainingjobs")
    except InvalidChild as exc:
        rejected = invalid_spec(run.status, run.generation, str(exc), now())
        run.status = rejected.status
        run.events = [e for e in run.events if e[1] != reasons.JOB_CREATED] + rejected.events
        return
    # Created now, or found made by a reconcile whose status write never landed: either way
    # the status records it for the first time, and nobody has said so yet.
    run.event("Normal", reasons.JOB_CREATED, f"Created Job {job['metadata']['name']}.")


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


def _taken(ctx: Context, namespace: str, model: str, me: str) -> set[int]:
    """Every version number of the model registered, or reserved by another TrainingJob."""
    taken: set[int] = set()
    for mv in ctx.cache.of_model(k8s.MODELVERSIONS, namespace, model):
        version = (mv.get("spec") or {}).get("version")
        if isinstance(version, int):
            taken.add(version)
    for tj in ctx.cache.of_model(k8s.TRAININGJOBS, namespace, model):
        version = (tj.get("status") or {}).get("version")
        if isinstance(version, int) and tj["metadata"]["name"] != me:
            taken.add(version)
    return taken


async def _register(run: _Run, spec: TrainingJobSpec, job: dict[str, Any]) -> float | None:
    ctx, status = run.ctx, run.status
    storage = resolve_storage(spec.storage, ctx.settings)
    run_uri = ((job.get("metadata") or {}).get("annotations") or {}).get(OUTPUT_ANNOTATION)
    if not run_uri:
        run.fail(
            reasons.REGISTRATION_FAILED,
            f"The Job {job['metadata']['name']} does not say where the trainer wrote "
            f"(annotation {OUTPUT_ANNOTATION}).",
        )
        await run.write()
        return None
    store = await storage_io.open_store(ctx, run.namespace, storage)
    manifest_uri = layout.file_uri(run_uri, layout.MANIFEST_FILE)
    try:
        manifest = json.loads(await storage_io.read_bytes(store, manifest_uri))
    except storage_io.NotFound:
        run.fail(
            reasons.REGISTRATION_FAILED,
            f"The trainer reported success but {manifest_uri} does not exist.",
        )
        await run.write()
        return None

    # Registration is serialised per model so that two runs never take the same number.
    async with ctx.lock(("model", run.namespace, spec.model)):
        versions = ctx.cache.of_model(k8s.MODELVERSIONS, run.namespace, spec.model)
        mine = registration_of(versions, run.name, run_uri, manifest.get("digest"))
        if mine is None:
            mine = await _register_number(run, spec, store, storage, run_uri, manifest)
            if mine is None:
                return None
        elif status.version != mine.version:
            logger.info(
                "%s/%s: the run is registered as %s already: adopting it (status said %s)",
                run.namespace,
                run.name,
                mine.name,
                status.version,
            )
    status.version = mine.version
    mv_name, version_uri = mine.name, mine.artifact_uri

    values = {k: float(v) for k, v in (manifest.get("metrics") or {}).items()}
    status.phase = "Succeeded"
    status.model_version = mv_name
    status.artifact_uri = version_uri
    status.metrics = values
    status.main_metric = main_metric(values)
    status.card_uri = layout.file_uri(version_uri, layout.CARD_FILE)
    validation = manifest.get("validation") or {}
    validated(run, validation.get("against"), validation.get("findings") or [])
    status.completion_time = (job.get("status") or {}).get("completionTime") or now()
    message = f"Registered ModelVersion {mv_name}" + (
        f" ({status.main_metric})." if status.main_metric else "."
    )
    run.cond(
        reasons.STORAGE_REACHABLE,
        True,
        reasons.STORAGE_OK,
        f"artifact storage is reachable: the run's output was read from {run_uri}",
    )
    run.cond(reasons.REGISTERED, True, reasons.MODEL_REGISTERED, message)
    run.cond(reasons.READY, True, reasons.MODEL_REGISTERED, message)
    run.event("Normal", reasons.MODEL_REGISTERED, message)
    await run.write()
    return None


async def _register_number(
    run: _Run,
    spec: TrainingJobSpec,
    store: ArtifactStore,
    storage: ResolvedStorage,
    run_uri: str,
    manifest: dict[str, Any],
) -> Registered | None:
    """Reserve the next free version number in the status, copy the run to its directory and
    create its ModelVersion; None when no number could be had (the run has failed)."""
    ctx, status = run.ctx, run.status
    for _ in range(NUMBER_ATTEMPTS):
        if status.version is None:
            status.version = next_version(_taken(ctx, run.namespace, spec.model, run.name))
            status.phase = "Running"
            run.cond(
                reasons.READY,
                False,
                reasons.REGISTERING,
                f"Training finished; registering version {status.version}.",
            )
            # Reserve the number before anything else, so a restart reuses it.
            await run.write()
            failpoints.hit("register.after-reserve")
        version_uri = layout.version_dir_uri(
            storage.bucket, storage.prefix, run.namespace, spec.model, status.version
        )
        try:
            await storage_io.copy_prefix(store, run_uri, version_uri)
        except storage_io.AlreadyExists as exc:
            logger.info("%s/%s: version %s: %s", run.namespace, run.name, status.version, exc)
            status.version += 1  # an older artifact holds the number: never overwrite it
            await run.write()
            continue
        failpoints.hit("register.after-copy")
        mv = build_model_version(
            namespace=run.namespace,
            trainingjob=run.name,
            spec=spec,
            version=status.version,
            artifact_uri=version_uri,
            manifest=manifest,
            storage=storage,
            run_uri=run_uri,
        )
        mv_name = mv["metadata"]["name"]
        try:
            created = await ctx.kube.create(k8s.MODELVERSIONS, run.namespace, mv)
            ctx.cache.remember(k8s.MODELVERSIONS, created, "trainingjobs")
            failpoints.hit("register.after-create")
            return Registered(mv_name, status.version, version_uri)
        except k8s.Conflict:
            existing = await ctx.kube.get(k8s.MODELVERSIONS, run.namespace, mv_name)
            ctx.cache.remember(k8s.MODELVERSIONS, existing)
            mine = registration_of([existing], run.name, run_uri, manifest.get("digest"))
            if mine is not None:
                return mine  # created by an earlier attempt of this run
            logger.info("%s/%s: %s is another registration", run.namespace, run.name, mv_name)
            status.version = None  # someone took the number: take the next one
    run.fail(
        reasons.REGISTRATION_FAILED,
        f"No free version number found after {NUMBER_ATTEMPTS} attempts.",
    )
    await run.write()
    return None
