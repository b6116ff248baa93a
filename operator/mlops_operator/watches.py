"""Watch state and triggers, in one place: what kopf indexes for the reconciles to read, and
which events mark which objects dirty. A trigger never decides anything and never fails: it
feeds the cache and enqueues keys. kopf re-lists every watch every ``resync_seconds``
(``settings.watching.server_timeout``), and every listed object is an event: that is the
periodic resync of every object, paused with the operator when a peer takes over."""

from __future__ import annotations

import json
from typing import Any

import kopf

from mlops_operator.api.base import GROUP, VERSION
from mlops_operator.context import Context, get_context
from mlops_operator.kube import client as k8s
from mlops_operator.kube import names
from mlops_operator.kube.apply import slim_record
from mlops_operator.kube.names import DEGRADED_ANNOTATION

SERVED_BY_DELAY = 2.0
"""Seconds a version waits after a service changed before recomputing ``servedBy``: a burst
of services of one model makes one write, not one per service."""


def _raw(body: kopf.Body) -> dict[str, Any]:
    """One of our objects as the reconciles read it: everything but ``managedFields``, which
    a real API server adds to every object and nothing here reads."""
    raw = dict(body)
    meta = raw.get("metadata") or {}
    if "managedFields" in meta:
        raw["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return raw


def _slim(body: kopf.Body) -> dict[str, Any]:
    """A child as the reconciles need it: identity, labels, annotations (what the operator
    last applied only as its shape: the keys are all a patch needs), status."""
    meta = body.get("metadata") or {}
    keep = ("name", "namespace", "uid", "generation", "resourceVersion", "labels")
    slim = {k: meta[k] for k in keep if k in meta}
    annotations = meta.get("annotations")
    if annotations:
        record = annotations.get(names.LAST_APPLIED)
        slim["annotations"] = (
            {**annotations, names.LAST_APPLIED: slim_record(record)}
            if isinstance(record, str)
            else dict(annotations)
        )
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": slim,
        "status": body.get("status") or {},
    }


# --- indexes: (namespace, name), and ("model", namespace, model) for our kinds -------------
# Coroutines, though they await nothing: kopf runs a plain function in a thread per event.


def _ours(namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body) -> Any:
    """One of our objects under its name and, when it names one, its model."""
    raw = _raw(body)
    keys: dict[Any, Any] = {(namespace or "", name): raw}
    model = spec.get("model")
    if model:
        keys[("model", namespace or "", model)] = raw
    return keys


@kopf.index(GROUP, VERSION, "trainingjobs")
async def trainingjobs_index(
    namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> Any:
    return _ours(namespace, name, spec, body)


@kopf.index(GROUP, VERSION, "modelversions")
async def modelversions_index(
    namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> Any:
    return _ours(namespace, name, spec, body)


@kopf.index(GROUP, VERSION, "inferenceservices")
async def inferenceservices_index(
    namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> Any:
    return _ours(namespace, name, spec, body)


@kopf.index("batch", "v1", "jobs", labels={names.LABEL_TRAININGJOB: kopf.PRESENT})
async def jobs_by_name(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace or "", name): _slim(body)}


@kopf.index("apps", "v1", "deployments", labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT})
async def deployments_by_name(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace or "", name): _slim(body)}


@kopf.index("", "v1", "services", labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT})
async def services_by_name(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace or "", name): _slim(body)}


@kopf.index(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT},
)
async def autoscalers_by_name(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace or "", name): _slim(body)}


INDEXES = {
    k8s.TRAININGJOBS: "trainingjobs_index",
    k8s.MODELVERSIONS: "modelversions_index",
    k8s.INFERENCESERVICES: "inferenceservices_index",
    k8s.JOBS: "jobs_by_name",
    k8s.DEPLOYMENTS: "deployments_by_name",
    k8s.SERVICES: "services_by_name",
    k8s.HPAS: "autoscalers_by_name",
}
"""The kopf index each kind is read from (kopf passes indexes to handlers by name)."""


def attach(ctx: Context, indices: dict[str, Any]) -> None:
    """Give the cache kopf's indexes."""
    for res, index in INDEXES.items():
        ctx.cache.attach(res, indices[index])


# --- triggers -------------------------------------------------------------------------------


def _changed(ctx: Context, kind: str, body: kopf.Body, what: Any, deleted: bool) -> bool:
    """Whether ``what`` (a projection of the object) changed since the last event."""
    key = (kind, body.metadata.namespace or "", body.metadata.name or "")
    if deleted:
        ctx.seen.pop(key, None)
        return True
    digest = hash(json.dumps(what, sort_keys=True, default=str))
    if ctx.seen.get(key) == digest:
        return False
    ctx.seen[key] = digest
    return True


def _own(ctx: Context, res: k8s.Resource, type: str | None, body: kopf.Body) -> None:
    """One of our objects' own event: its key is dirty, unless the event is the echo of the
    object's own controller's write (which that reconcile already knew). A listing — kopf's
    start and every re-list — marks every object: the periodic resync. A new generation
    starts the backoff over."""
    deleted = type == "DELETED"
    writer = ctx.cache.observed(res, body, deleted)
    queue = ctx.queues.get(res.plural)
    if queue is None or (writer == res.plural and type is not None):
        return
    key = (body.metadata.namespace or "", body.metadata.name or "")
    if _changed(ctx, f"{res.plural}/generation", body, body.metadata.get("generation"), deleted):
        queue.forget(key)
    queue.add(key)


def _child(
    ctx: Context, res: k8s.Resource, type: str | None, body: kopf.Body, label: str, owner: str
) -> None:
    """A child's event marks its owner (named by ``label``) dirty, unless it is the echo of the
    owner's own write: the child as the owner just created or patched it."""
    if ctx.cache.observed(res, body, type == "DELETED") == owner and type is not None:
        return
    name = body.metadata.labels.get(label)
    if name:
        ctx.enqueue(owner, body.metadata.namespace or "", name)


@kopf.on.event(GROUP, VERSION, "trainingjobs")
async def trainingjob_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """A TrainingJob changed: reconcile it, and the service whose retraining it is."""
    ctx = get_context(memo)
    _own(ctx, k8s.TRAININGJOBS, type, body)
    owner = body.metadata.labels.get(names.LABEL_INFERENCESERVICE)
    if owner:
        ctx.enqueue("inferenceservices", body.metadata.namespace or "", owner)


@kopf.on.event("batch", "v1", "jobs", labels={names.LABEL_TRAININGJOB: kopf.PRESENT})
async def job_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """A training Job moved: reconcile its TrainingJob."""
    _child(get_context(memo), k8s.JOBS, type, body, names.LABEL_TRAININGJOB, "trainingjobs")


@kopf.on.event(GROUP, VERSION, "modelversions")
async def modelversion_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """A version changed: verify it; services of its model may resolve differently (not
    when only its ``servedBy`` changed, which no resolution reads)."""
    ctx = get_context(memo)
    _own(ctx, k8s.MODELVERSIONS, type, body)
    namespace = body.metadata.namespace or ""
    model = (body.get("spec") or {}).get("model")
    status = {k: v for k, v in (body.get("status") or {}).items() if k != "servedBy"}
    what = {
        "spec": body.get("spec"),
        "status": status,
        "degraded": body.metadata.annotations.get(DEGRADED_ANNOTATION),
        "deleting": body.metadata.get("deletionTimestamp"),
    }
    if model and _changed(ctx, "modelversions/serving", body, what, type == "DELETED"):
        for isvc in ctx.cache.of_model(k8s.INFERENCESERVICES, namespace, model):
            ctx.enqueue("inferenceservices", namespace, isvc["metadata"]["name"])


@kopf.on.event(GROUP, VERSION, "inferenceservices")
async def inferenceservice_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """A service changed: reconcile it; when what it serves changed, the versions of its model
    recompute ``servedBy``."""
    ctx = get_context(memo)
    _own(ctx, k8s.INFERENCESERVICES, type, body)
    namespace = body.metadata.namespace or ""
    model = (body.get("spec") or {}).get("model")
    serving = (body.get("status") or {}).get("currentVersion")
    if model and _changed(
        ctx, "inferenceservices/serving", body, [model, serving], type == "DELETED"
    ):
        for mv in ctx.cache.of_model(k8s.MODELVERSIONS, namespace, model):
            ctx.enqueue("modelversions", namespace, mv["metadata"]["name"], SERVED_BY_DELAY)


@kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT})
async def deployment_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """The predictor's rollout moved (or it was deleted): reconcile its service."""
    ctx = get_context(memo)
    _child(ctx, k8s.DEPLOYMENTS, type, body, names.LABEL_INFERENCESERVICE, "inferenceservices")


@kopf.on.event("", "v1", "services", labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT})
async def service_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """A predictor Service was deleted or changed by someone else: put it back."""
    ctx = get_context(memo)
    _child(ctx, k8s.SERVICES, type, body, names.LABEL_INFERENCESERVICE, "inferenceservices")


@kopf.on.event(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT},
)
async def autoscaler_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """The predictor's autoscaler decided or saw something (or was deleted): reconcile its
    service, which reports it and puts it back."""
    ctx = get_context(memo)
    _child(ctx, k8s.HPAS, type, body, names.LABEL_INFERENCESERVICE, "inferenceservices")
