"""ModelVersion reconcile: read (watch state) → verify the artifact's digest when this
generation has not been settled yet (streamed from storage, never loaded) → plan
(``registry.plan``: gates, degradation, who serves it) → write status → report."""

from __future__ import annotations

import logging

from mlops_operator import metrics
from mlops_operator.api import reasons
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.api.trainingjob import StorageSpec
from mlops_operator.artifacts import io as storage_io
from mlops_operator.artifacts.layout import MODEL_FILE, file_uri
from mlops_operator.artifacts.storage import resolve_storage
from mlops_operator.context import Context
from mlops_operator.kube import client as k8s
from mlops_operator.kube.queue import Key
from mlops_operator.kube.status import now
from mlops_operator.registry.plan import Verification, needs_verification, plan

logger = logging.getLogger(__name__)


async def verify(ctx: Context, namespace: str, spec: ModelVersionSpec) -> Verification:
    """Hash the artifact in storage; a storage problem is a failure to retry, not an error."""
    storage = resolve_storage(
        StorageSpec(
            endpoint=spec.artifact.endpoint, credentials_secret=spec.artifact.credentials_secret
        ),
        ctx.settings,
    )
    uri = file_uri(spec.artifact.uri, MODEL_FILE)
    try:
        store = await storage_io.open_store(ctx, namespace, storage)
        return Verification(digest=await storage_io.sha256(store, uri))
    except storage_io.CredentialsMissing as exc:
        return Verification(failure=(reasons.CREDENTIALS_MISSING, str(exc)))
    except storage_io.NotFound:
        return Verification(failure=(reasons.ARTIFACT_NOT_FOUND, f"{uri} does not exist."))
    except storage_io.StorageError as exc:
        return Verification(failure=(reasons.STORAGE_UNREACHABLE, str(exc)))


def served_by(ctx: Context, namespace: str, model: str, version: int) -> list[str]:
    """The InferenceServices of the namespace that serve this version now."""
    return sorted(
        isvc["metadata"]["name"]
        for isvc in ctx.cache.of_model(k8s.INFERENCESERVICES, namespace, model)
        if (isvc.get("status") or {}).get("currentVersion") == version
        and not isvc["metadata"].get("deletionTimestamp")
    )


async def reconcile(ctx: Context, key: Key) -> float | None:
    """One reconcile of one ModelVersion; the seconds until it wants another look."""
    namespace, name = key
    obj = ctx.cache.get(k8s.MODELVERSIONS, namespace, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return None
    metrics.RECONCILES.labels("modelversions").inc()
    raw = obj.get("spec") or {}
    verification = None
    users: list[str] = []
    try:
        spec = ModelVersionSpec.model_validate(raw)
    except ValueError:
        spec = None
    if spec is not None:
        if needs_verification(obj):
            verification = await verify(ctx, namespace, spec)
        users = served_by(ctx, namespace, spec.model, spec.version)
    decided = plan(obj, verification, users, now())
    await ctx.report(k8s.MODELVERSIONS, obj, decided.status.to_wire(), decided.events)
    return decided.requeue_after
