"""Writes, each only when something differs: owned children by spec hash, status by a merge
patch of exactly the fields that changed (a field that became None is sent as null, so the
server removes it), and annotations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_operator.kube import client as k8s
from mlops_operator.kube.cache import Cache
from mlops_operator.kube.names import SPEC_HASH, spec_hash
from mlops_operator.kube.pod import OVERRIDABLE_FIELDS


def own(child: dict[str, Any], owner: Mapping[str, Any]) -> dict[str, Any]:
    """``child`` with ``owner`` as its controller (garbage collected with it) and its hash
    (kept when the planner already computed it)."""
    meta = owner["metadata"]
    child["metadata"]["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    annotations = child["metadata"].setdefault("annotations", {})
    annotations.setdefault(SPEC_HASH, spec_hash(child))
    return child


class InvalidChild(Exception):
    """The API server rejected a child built from the user's spec (400/422): nothing will
    change that until the spec does."""

    def __init__(self, kind: str, name: str, message: str) -> None:
        super().__init__(f"the API server rejected {kind} {name}: {message}")
        self.kind = kind
        self.name = name
        self.message = message


async def apply_child(
    kube: k8s.Kube,
    cache: Cache,
    res: k8s.Resource,
    desired: dict[str, Any],
    existing: Mapping[str, Any] | None,
    writer: str,
) -> bool:
    """Create ``desired`` or patch it when its hash differs from ``existing`` (as known from
    the watch); whether it wrote. A 409 on create means the watch lags: read it once, then
    decide. ``writer`` is the owner's kind (a plural), so its trigger knows the echo."""
    meta = desired["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    want = meta["annotations"][SPEC_HASH]
    try:
        if existing is None:
            try:
                created = await kube.create(res, namespace, desired)
                cache.remember(res, created, writer)
                return True
            except k8s.Conflict:
                existing = await kube.get(res, namespace, name)
        if ((existing.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH) == want:
            return False
        patch = {
            "metadata": {
                "labels": meta.get("labels"),
                "annotations": meta["annotations"],
                "ownerReferences": meta["ownerReferences"],
            },
            "spec": _clear_dropped_overrides(desired["spec"]),
        }
        try:
            patched = await kube.patch(res, namespace, name, patch)
        except k8s.NotFound:  # deleted since the watch saw it
            patched = await kube.create(res, namespace, desired)
        cache.remember(res, patched, writer)
        return True
    except k8s.Invalid as exc:
        raise InvalidChild(desired.get("kind") or res.plural, name, exc.message) from None


def _clear_dropped_overrides(desired: dict[str, Any]) -> dict[str, Any]:
    """The spec to merge-patch with: every pod override (node selector, tolerations, ...)
    the desired pod template does not set is sent as null, so one dropped from the user's
    spec goes away (a merge patch keeps whatever it omits; the watch keeps no child specs to
    tell which ones the server has)."""
    pod = (desired.get("template") or {}).get("spec")
    if pod is None:
        return desired
    dropped: dict[str, Any] = {f: None for f in OVERRIDABLE_FIELDS if f not in pod}
    if "serviceAccountName" in dropped:
        dropped["serviceAccount"] = None  # the deprecated alias would bring it back
    return {**desired, "template": {**desired["template"], "spec": {**pod, **dropped}}}


def merge_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``before`` into ``after``: changed keys,
    nested objects recursively, lists whole, and null for every key that went away."""
    patch: dict[str, Any] = {}
    for key in before.keys() - after.keys():
        patch[key] = None
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_diff(old, value)
            if sub:
                patch[key] = sub
        elif key not in before or old != value:
            patch[key] = value
    return patch


async def write_status(
    kube: k8s.Kube,
    cache: Cache,
    res: k8s.Resource,
    obj: Mapping[str, Any],
    status: Mapping[str, Any],
) -> bool:
    """Merge-patch the status subresource with what differs from ``obj``'s; whether it wrote."""
    patch = merge_diff(obj.get("status") or {}, status)
    if not patch:
        return False
    meta = obj["metadata"]
    written = await kube.patch_status(res, meta["namespace"], meta["name"], patch)
    cache.remember(res, written, res.plural)
    return True


async def write_annotations(
    kube: k8s.Kube,
    cache: Cache,
    res: k8s.Resource,
    obj: Mapping[str, Any],
    annotations: Mapping[str, str | None],
    writer: str,
) -> bool:
    """Set (or, with None, remove) annotations that differ; whether it wrote."""
    current = (obj.get("metadata") or {}).get("annotations") or {}
    changed = {k: v for k, v in annotations.items() if current.get(k) != v}
    if not changed:
        return False
    meta = obj["metadata"]
    written = await kube.patch(
        res, meta["namespace"], meta["name"], {"metadata": {"annotations": changed}}
    )
    cache.remember(res, written, writer)
    return True
