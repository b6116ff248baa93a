"""Writes, each only when something differs: owned children by spec hash, patched against
what the operator last applied to them (so a field it no longer sets is removed and one
another controller set is kept), status by a merge patch of exactly the fields that changed
(a field that became None is sent as null, so the server removes it), and annotations."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlops_operator.kube import client as k8s
from mlops_operator.kube.cache import Cache
from mlops_operator.kube.names import LAST_APPLIED, SPEC_HASH, spec_hash


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
    *,
    hand_over: Iterable[Sequence[str]] = (),
) -> bool:
    """Create ``desired`` or patch it when its hash differs from ``existing`` (as known from
    the watch); whether it wrote. A 409 on create means the watch lags: read it once, then
    decide. ``writer`` is the owner's kind (a plural), so its trigger knows the echo.

    The patch is ``desired`` with null for every field the child's record (its
    ``LAST_APPLIED`` annotation) has and ``desired`` no longer has, so what the operator
    dropped goes and what others set stays; ``hand_over`` names fields (paths) that, once
    dropped, belong to another controller and are left as they are (an autoscaler's
    ``spec.replicas``)."""
    meta = desired["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    want = meta["annotations"][SPEC_HASH]
    try:
        if existing is None:
            try:
                meta["annotations"][LAST_APPLIED] = record_text(desired)
                created = await kube.create(res, namespace, desired)
                cache.remember(res, created, writer)
                return True
            except k8s.Conflict:
                existing = await kube.get(res, namespace, name)
        if ((existing.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH) == want:
            return False
        meta["annotations"][LAST_APPLIED] = record_text(desired)
        recorded = read_record(existing)
        if recorded is None:
            recorded = _legacy_record(desired)
        for path in hand_over:
            recorded = _without(recorded, path)
        patch = merge_patch(recorded, applied(desired))
        patch["metadata"] = {
            **(patch.get("metadata") or {}),
            "ownerReferences": meta["ownerReferences"],
        }
        patch["metadata"]["annotations"] = {
            **(patch["metadata"].get("annotations") or {}),
            LAST_APPLIED: meta["annotations"][LAST_APPLIED],
        }
        try:
            patched = await kube.patch(res, namespace, name, patch)
        except k8s.NotFound:  # deleted since the watch saw it
            patched = await kube.create(res, namespace, desired)
        cache.remember(res, patched, writer)
        return True
    except k8s.Invalid as exc:
        raise InvalidChild(desired.get("kind") or res.plural, name, exc.message) from None


RECORD_LIMIT = 128 * 1024
"""Bytes of a child's record above which only its shape is kept (see :func:`shape`): the
API server allows 256 KiB for all of an object's annotations together."""

_IDENTITY = frozenset({"apiVersion", "kind", "metadata", "status"})


def applied(desired: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator owns of a child it builds: its labels, its annotations (but the
    record), and every top-level field but identity and status (``spec``)."""
    meta = desired.get("metadata") or {}
    config = {k: v for k, v in desired.items() if k not in _IDENTITY}
    owned: dict[str, Any] = {}
    if meta.get("labels"):
        owned["labels"] = meta["labels"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        owned["annotations"] = annotations
    if owned:
        config["metadata"] = owned
    return config


def shape(value: Any) -> Any:
    """The keys of a record without its values (every object kept, every other value
    ``true``): all that removals need, for a record too large to keep whole."""
    if isinstance(value, Mapping):
        return {k: shape(v) for k, v in value.items()}
    return True


def record_text(desired: Mapping[str, Any]) -> str:
    """The ``LAST_APPLIED`` annotation of ``desired``: compact JSON of what the operator
    owns of it, or of its shape when that would not fit in ``RECORD_LIMIT`` bytes."""
    config = applied(desired)
    text = json.dumps(config, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > RECORD_LIMIT:
        text = json.dumps(shape(config), separators=(",", ":"), sort_keys=True)
    return text


def read_record(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the operator last applied to a child (its ``LAST_APPLIED`` annotation); None
    when it has none, or one that is not a JSON object (edited by hand)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not isinstance(text, str):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def slim_record(text: str) -> str:
    """A record as the watch state keeps it: its shape only, which is all a patch needs,
    in a fraction of the memory (a Deployment's containers are one key)."""
    try:
        record = json.loads(text)
    except ValueError:
        return text
    return json.dumps(shape(record), separators=(",", ":"), sort_keys=True)


_ALIASES = {"serviceAccountName": "serviceAccount"}
"""Fields the API server mirrors into another (the v1 pod spec's deprecated
``serviceAccount``): a removal of one removes both, or the server restores it from the
mirror."""


def merge_patch(recorded: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that makes a live object what ``desired`` says, given
    that ``recorded`` is what was last applied to it: all of ``desired`` (a value the live
    object already has is a no-op, one it lost is restored) and null for every key
    ``recorded`` has and ``desired`` does not, in nested objects too (lists are replaced
    whole). Keys in neither, set by other controllers or defaulted by the server, are not
    in the patch, so they stay."""
    patch = dict(desired)
    for key, before in (recorded or {}).items():
        if key not in desired:
            patch[key] = None
            alias = _ALIASES.get(key)
            if alias is not None and alias not in desired:
                patch[alias] = None
        elif isinstance(before, Mapping) and isinstance(desired[key], Mapping):
            patch[key] = merge_patch(before, desired[key])
    return patch


_LEGACY_POD_FIELDS = (
    "serviceAccountName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "imagePullSecrets",
    "priorityClassName",
)
"""The pod fields operator versions before the record cleared when they went away (they sent
null for each one not set); the only fields of theirs the desired object cannot tell."""


def _legacy_record(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a child written by an operator version that kept none: what those
    versions removed when dropped, so the first patch converges as they would have and
    writes the record that the following ones use."""
    pod = ((desired.get("spec") or {}).get("template") or {}).get("spec")
    if not isinstance(pod, Mapping):
        return {}
    return {"spec": {"template": {"spec": dict.fromkeys(_LEGACY_POD_FIELDS, True)}}}


def _without(record: Mapping[str, Any], path: Sequence[str]) -> dict[str, Any]:
    """``record`` without the field at ``path`` (copied along the path, never changed)."""
    copy = dict(record)
    if not path or path[0] not in copy:
        return copy
    if len(path) == 1:
        del copy[path[0]]
    elif isinstance(copy[path[0]], Mapping):
        copy[path[0]] = _without(copy[path[0]], path[1:])
    return copy


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
