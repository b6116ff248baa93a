"""Pure decisions of the registry: promotion gates, and a ModelVersion's status from its
verification, its gates, monitoring's degradation mark and the services that serve it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mlops_operator.api import reasons
from mlops_operator.api.base import StatusDraft, get_condition
from mlops_operator.api.modelversion import GateResult, ModelVersionSpec, ModelVersionStatus
from mlops_operator.api.trainingjob import Gate
from mlops_operator.api.validation import describe_validation_error
from mlops_operator.artifacts.layout import MODEL_FILE, file_uri
from mlops_operator.kube.names import CARD_ANNOTATION, DEGRADED_ANNOTATION

MAIN_METRICS = ("accuracy", "r2", "f1", "rocAuc", "rmse", "mae")
"""Preference order of the headline metric shown by ``kubectl get``."""


def evaluate_gates(gates: Sequence[Gate], metrics: Mapping[str, float]) -> list[GateResult]:
    """Check every gate; a gate on a metric that was not reported fails."""
    results = []
    for gate in gates:
        value = metrics.get(gate.metric)
        passed = (
            value is not None
            and (gate.min is None or value >= gate.min)
            and (gate.max is None or value <= gate.max)
        )
        results.append(
            GateResult(metric=gate.metric, value=value, min=gate.min, max=gate.max, passed=passed)
        )
    return results


def describe_failures(results: Sequence[GateResult]) -> str:
    """A sentence naming every failed gate, e.g. ``accuracy 0.81 < 0.9``."""
    parts = []
    for r in results:
        if r.passed:
            continue
        if r.value is None:
            parts.append(f"{r.metric} was not reported")
        elif r.min is not None and r.value < r.min:
            parts.append(f"{r.metric} {r.value:.4g} < {r.min:g}")
        elif r.max is not None:
            parts.append(f"{r.metric} {r.value:.4g} > {r.max:g}")
    return "; ".join(parts)


def main_metric(metrics: Mapping[str, float]) -> str | None:
    """The headline metric as ``name=value`` for printer columns."""
    for name in MAIN_METRICS:
        if name in metrics:
            return f"{name}={metrics[name]:.4f}"
    if metrics:
        name = sorted(metrics)[0]
        return f"{name}={metrics[name]:.4f}"
    return None


# --- the ModelVersion plan ------------------------------------------------------------------

SETTLED_REASONS = (reasons.DIGEST_MATCH, reasons.DIGEST_MISMATCH)
"""``ArtifactVerified`` reasons that are final for a generation (the spec is immutable)."""

RETRY_SECONDS = 60.0
"""Seconds between verification attempts while the artifact cannot be read."""


@dataclass(frozen=True)
class Verification:
    """The outcome of hashing the artifact: its digest, or why it could not be read."""

    digest: str | None = None
    failure: tuple[str, str] | None = None
    """(reason, message) when the artifact could not be read."""


@dataclass
class Plan:
    """The ModelVersion's new status, Events, and when to look again."""

    status: ModelVersionStatus
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


def needs_verification(obj: Mapping[str, Any]) -> bool:
    """Whether the artifact must be hashed: not yet settled for this generation."""
    generation = (obj.get("metadata") or {}).get("generation")
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == reasons.ARTIFACT_VERIFIED:
            return not (
                cond.get("reason") in SETTLED_REASONS
                and cond.get("observedGeneration") == generation
            )
    return True


def plan(
    obj: Mapping[str, Any],
    verification: Verification | None,
    served_by: Sequence[str],
    now: dt.datetime,
) -> Plan:
    """The status of a ModelVersion: verification, gates, degradation, who serves it.

    Phase ``Ready`` (and ``Ready=True``) only for a verified artifact that passed its gates
    and is not degraded; ``Degraded`` while monitoring's mark (the ``mlops.dev/degraded``
    annotation) is on it; ``Failed`` for an invalid spec, a digest mismatch or failed gates;
    ``Pending`` while the artifact cannot be read yet.
    """
    meta = obj.get("metadata") or {}
    generation = meta.get("generation")
    status = ModelVersionStatus.model_validate(obj.get("status") or {})
    before = {c.type: (c.status, c.reason) for c in status.conditions}
    status.observed_generation = generation
    status.served_by = sorted(served_by)
    result = Plan(status=status)

    cond = StatusDraft(status, generation, now).cond

    def changed(type: str) -> bool:
        c = get_condition(status.conditions, type)
        return c is not None and before.get(type) != (c.status, c.reason)

    try:
        spec = ModelVersionSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        message = describe_validation_error(exc, root="spec")
        status.phase = "Failed"
        cond(reasons.READY, False, reasons.INVALID_SPEC, message)
        if changed(reasons.READY):
            result.events.append(("Warning", reasons.INVALID_SPEC, message))
        return result
    status.main_metric = main_metric(spec.metrics)
    status.card_uri = (meta.get("annotations") or {}).get(CARD_ANNOTATION)
    uri = file_uri(spec.artifact.uri, MODEL_FILE)

    if verification is not None and verification.failure is not None:
        reason, message = verification.failure
        message = f"{message} Retrying every {RETRY_SECONDS:.0f}s."
        cond(reasons.ARTIFACT_VERIFIED, False, reason, message)
        result.requeue_after = RETRY_SECONDS
    elif verification is not None and verification.digest != spec.artifact.digest:
        message = (
            f"{uri} has digest {verification.digest}, not the recorded {spec.artifact.digest}: "
            "the artifact was changed or corrupted after registration. It will never be "
            "loaded or served."
        )
        cond(reasons.ARTIFACT_VERIFIED, False, reasons.DIGEST_MISMATCH, message)
    elif verification is not None:
        cond(
            reasons.ARTIFACT_VERIFIED,
            True,
            reasons.DIGEST_MATCH,
            f"{uri} matches {verification.digest}.",
        )
    verified = get_condition(status.conditions, reasons.ARTIFACT_VERIFIED)

    if verified is not None and verified.status == "True":
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
            cond(
                reasons.GATES_PASSED,
                False,
                reasons.GATE_FAILED,
                f"Gates failed: {describe_failures(results)}. The version is never promoted "
                "to `latest` (a service may still pin it).",
            )
    gates = get_condition(status.conditions, reasons.GATES_PASSED)
    mark = (meta.get("annotations") or {}).get(DEGRADED_ANNOTATION)
    degraded = get_condition(status.conditions, reasons.DEGRADED)
    if mark:
        cond(reasons.DEGRADED, True, reasons.METRICS_BREACHED, mark)
    elif degraded is not None and degraded.status == "True":
        cond(
            reasons.DEGRADED,
            False,
            reasons.DEGRADATION_CLEARED,
            f"The {DEGRADED_ANNOTATION} annotation was removed: `latest` may select it again.",
        )

    if verified is None or verified.status != "True":
        failed = verified is not None and verified.reason == reasons.DIGEST_MISMATCH
        status.phase = "Failed" if failed else "Pending"
        reason = verified.reason if verified is not None else reasons.VERIFYING
        cond(reasons.READY, False, reason, verified.message if verified else "Verifying.")
    elif gates is not None and gates.status != "True":
        status.phase = "Failed"
        cond(reasons.READY, False, gates.reason, gates.message)
    elif mark:
        status.phase = "Degraded"
        cond(reasons.READY, False, reasons.METRICS_BREACHED, f"Degraded: {mark}")
    else:
        status.phase = "Ready"
        cond(
            reasons.READY,
            True,
            reasons.VERSION_READY,
            f"Version {spec.version} of {spec.model} is verified and servable.",
        )
    if changed(reasons.READY):
        ready = get_condition(status.conditions, reasons.READY)
        assert ready is not None
        pending = ready.status != "True" and status.phase == "Pending"
        kind = "Normal" if ready.status == "True" or pending else "Warning"
        result.events.append((kind, ready.reason, ready.message))
    return result
