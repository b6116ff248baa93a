"""ModelVersion controller: verify the artifact's digest (streamed, never loaded) and the
promotion gates, for versions the operator registered and for those applied by hand."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from mlops_operator.api import reasons
from mlops_operator.api.base import GROUP, VERSION, get_condition
from mlops_operator.api.modelversion import ModelVersionSpec, ModelVersionStatus
from mlops_operator.api.trainingjob import StorageSpec
from mlops_operator.api.validation import describe_validation_error
from mlops_operator.artifacts import io as storage_io
from mlops_operator.artifacts.layout import MODEL_FILE
from mlops_operator.artifacts.storage import resolve_storage
from mlops_operator.context import Context, Requeue, get_context, reconcile_object
from mlops_operator.kube import client as k8s
from mlops_operator.kube.status import event, with_condition, write
from mlops_operator.registry.plan import describe_failures, evaluate_gates, main_metric

logger = logging.getLogger(__name__)

RETRY_SECONDS = 60
SETTLED = ("Ready", "Failed", "Degraded", "Retired")


async def reconcile(ctx: Context, namespace: str, name: str) -> None:
    """Verify one ModelVersion; skips versions already settled for their generation."""
    await reconcile_object(ctx, k8s.MODELVERSIONS, namespace, name, _reconcile)


async def _reconcile(ctx: Context, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    status = ModelVersionStatus.model_validate(body.get("status") or {})
    if status.phase in SETTLED and status.observed_generation == generation:
        return

    def cond(type: str, value: bool, reason: str, message: str) -> None:
        status.conditions = with_condition(
            status.conditions, type, "True" if value else "False", reason, message, generation
        )

    status.observed_generation = generation
    try:
        spec = ModelVersionSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        message = describe_validation_error(exc, root="spec")
        status.phase = "Failed"
        cond(reasons.READY, False, reasons.INVALID_SPEC, message)
        await write(ctx.kube, k8s.MODELVERSIONS, namespace, name, status)
        event(body, "Warning", reasons.INVALID_SPEC, message)
        return

    status.main_metric = main_metric(spec.metrics)
    storage = resolve_storage(
        StorageSpec(
            endpoint=spec.artifact.endpoint, credentials_secret=spec.artifact.credentials_secret
        ),
        ctx.settings,
    )
    uri = spec.artifact.uri.rstrip("/") + "/" + MODEL_FILE
    failure: tuple[str, str] | None = None
    try:
        store = await storage_io.open_store(ctx, namespace, storage)
        actual = await storage_io.sha256(store, uri)
    except storage_io.CredentialsMissing as exc:
        failure = (reasons.CREDENTIALS_MISSING, str(exc))
    except storage_io.NotFound:
        failure = (reasons.ARTIFACT_NOT_FOUND, f"{uri} does not exist.")
    except storage_io.StorageError as exc:
        failure = (reasons.STORAGE_UNREACHABLE, str(exc))
    if failure is not None:
        reason, message = failure
        previous = get_condition(status.conditions, reasons.ARTIFACT_VERIFIED)
        status.phase = "Pending"
        message = f"{message} Retrying every {RETRY_SECONDS}s."
        cond(reasons.ARTIFACT_VERIFIED, False, reason, message)
        cond(reasons.READY, False, reason, message)
        status.observed_generation = None  # not settled: a resume must verify again
        await write(ctx.kube, k8s.MODELVERSIONS, namespace, name, status)
        if previous is None or previous.reason != reason:
            event(body, "Warning", reason, message)
        raise Requeue(RETRY_SECONDS, message)

    if actual != spec.artifact.digest:
        message = (
            f"{uri} has digest {actual}, not the recorded {spec.artifact.digest}: the artifact "
            "was changed or corrupted after registration. It will never be loaded or served."
        )
        status.phase = "Failed"
        cond(reasons.ARTIFACT_VERIFIED, False, reasons.DIGEST_MISMATCH, message)
        cond(reasons.READY, False, reasons.DIGEST_MISMATCH, message)
        await write(ctx.kube, k8s.MODELVERSIONS, namespace, name, status)
        event(body, "Warning", reasons.DIGEST_MISMATCH, message)
        return
    cond(reasons.ARTIFACT_VERIFIED, True, reasons.DIGEST_MATCH, f"{uri} matches {actual}.")

    results = evaluate_gates(spec.gates, spec.metrics)
    status.gate_results = results
    if not spec.gates:
        cond(reasons.GATES_PASSED, True, reasons.NO_GATES, "No gates are defined.")
    elif all(r.passed for r in results):
        cond(
            reasons.GATES_PASSED,
            True,
            reasons.ALL_GATES_PASSED,
            f"All {len(results)} gates passed.",
        )
    else:
        message = f"Gates failed: {describe_failures(results)}. The version is never promoted."
        status.phase = "Failed"
        cond(reasons.GATES_PASSED, False, reasons.GATE_FAILED, message)
        cond(reasons.READY, False, reasons.GATE_FAILED, message)
        await write(ctx.kube, k8s.MODELVERSIONS, namespace, name, status)
        event(body, "Warning", reasons.GATE_FAILED, message)
        return

    status.phase = "Ready"
    message = f"Version {spec.version} of {spec.model} is verified and servable."
    cond(reasons.READY, True, reasons.VERSION_READY, message)
    await write(ctx.kube, k8s.MODELVERSIONS, namespace, name, status)
    event(body, "Normal", reasons.VERSION_READY, message)


@kopf.on.create(GROUP, VERSION, "modelversions")
@kopf.on.resume(GROUP, VERSION, "modelversions")
@kopf.on.update(GROUP, VERSION, "modelversions", field="spec")
async def modelversion_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """A ModelVersion appeared, or the operator restarted: verify it."""
    assert namespace is not None  # ModelVersions are namespaced
    try:
        await reconcile(get_context(memo), namespace, name)
    except Requeue as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
