"""A Kubernetes API emulator on loopback: kmock's ``KubernetesEmulator`` made strict enough.

:class:`SandboxAPI` keeps kmock for the HTTP handling, request routing (user reactions such
as ``api["patch", kmock.resource(...)] << 500`` still take precedence), API discovery and the
object store (``api.objects[...]`` with its history; a removed object is forgotten), and
replaces kmock's object-serving fallbacks with API-server semantics. :func:`serve_api` runs
it on a loopback port.

What it covers, over real HTTP, for kopf, the ``kubernetes`` client and the workload runner:

- **Resources**: custom resources of the CRDs given to :meth:`SandboxAPI.load_crds` or created
  over the API (``apiextensions.k8s.io/v1``, several versions served from one storage
  version), and the built-ins core/v1 ``namespaces``, ``pods`` (+status, +log), ``secrets``,
  ``configmaps``, ``services`` (+status), ``serviceaccounts``, ``events``; batch/v1 ``jobs``
  (+status); apps/v1 ``deployments`` and ``replicasets`` (+status, +scale); autoscaling/v2
  ``horizontalpodautoscalers`` (+status; acted on by :mod:`mlops_sandbox.autoscaler`);
  events.k8s.io/v1 ``events``; coordination.k8s.io/v1 ``leases``; apiextensions.k8s.io/v1
  ``customresourcedefinitions`` (the loaded CRDs are stored as objects). Discovery lists kind,
  singular, short names, categories, verbs, scope and subresources. Namespaces ``default``
  and ``kube-system`` exist from the start.
- **Verbs**: get, list, watch, create (201), replace (PUT), patch, delete.
- **Metadata**: ``uid``, ``creationTimestamp``, ``generateName``, a global ``resourceVersion``
  bumped on every write, ``generation`` bumped on changes outside ``metadata``/``status``.
  A write that changes nothing is a no-op: no new resourceVersion, no watch event.
- **Errors** as ``Status`` objects with the API server's reasons and messages: NotFound (also
  for a namespaced create into a missing namespace), AlreadyExists, Conflict (a stale
  ``metadata.resourceVersion`` in PUT or PATCH, or failed delete preconditions), Invalid (422
  with ``details.causes``), Expired (410 in watch streams), BadRequest, UnsupportedMediaType.
- **Patches** by Content-Type: merge patch (RFC 7386), JSON patch (RFC 6902), and strategic
  merge patch *approximated*: a merge patch that merges lists of objects by their usual key
  (``containers``/``env``/``volumes``/… by ``name``, ``volumeMounts`` by ``mountPath``,
  ``ports`` by ``containerPort`` or ``port``, ``conditions`` by ``type``, ``ownerReferences``
  by ``uid``) and honours ``$patch: replace|delete`` and ``$deleteFromPrimitiveList``; other
  directives (``$setElementOrder``, ``$retainKeys``) are dropped, and every other list
  (``finalizers`` included) is replaced.
- **Server-side apply** (``apply-patch+yaml`` with ``fieldManager``, ``force``): create or
  merge, field owners in ``metadata.managedFields``, 409 conflicts naming fields and
  managers, dropped fields removed (see :mod:`mlops_sandbox.server_side_apply`).
- **kubectl's needs**: ``/openapi/v3`` (and ``/openapi/v2`` in JSON) from the CRDs' schemas
  and Kubernetes 1.33's built-in schemas, ``fieldValidation=Strict|Warn`` (see
  :mod:`mlops_sandbox.openapi`); Table output with CRD printer columns and the built-ins'
  usual columns for get, list and watch (see :mod:`mlops_sandbox.tables`); Jobs get the Job
  controller's ``spec.selector`` and ``controller-uid`` template labels, so
  ``kubectl logs job/<name>`` reads the Job's own pod.
- **Status subresource** (CRDs that declare it; pods, services, jobs, deployments,
  replicasets, namespaces, CRDs): writes to the object ignore ``status``, writes to
  ``/status`` change only ``status``; ``status`` given on create is dropped. New pods get
  ``status.phase: Pending``, new namespaces ``Active``. **Scale** of deployments and
  replicasets: get/put/patch of an ``autoscaling/v1`` Scale mapped onto ``spec.replicas``.
- **Built-in defaults**, only these: Deployment/ReplicaSet ``spec.replicas`` 1, Job
  ``spec.backoffLimit`` 6, ``spec.completions``/``spec.parallelism`` 1; and pod specs (of
  pods and templates) mirror ``serviceAccountName`` into the deprecated ``serviceAccount``
  and back, as the API server's v1 conversion does.
- **Deletion**: objects with finalizers get ``deletionTimestamp`` and stay until a write
  removes the last finalizer; then, and for objects without finalizers at once, they are
  removed and **garbage collection** deletes (the same way, recursively) every object whose
  ``ownerReferences`` all point at removed objects, including an object created with owners
  that are already gone. Deleting a Namespace deletes what is in
  it; deleting a CRD deletes its objects. Delete preconditions (uid, resourceVersion) are
  checked.
- **Built-in validation** of the fields the operator writes (see
  :mod:`mlops_sandbox.builtin_validation`): object names, labels, annotation keys, selectors,
  containers' names, ports, env names and resource quantities, Service ports. A body that Go
  could not decode (``cpu: lots``, a port given as a string) is a 400 BadRequest
  (``Job in version "v1" cannot be handled as a Job: quantities must match…``), or a 422 on
  ``patch`` for a patch; a decoded but invalid object is a 422 Invalid with
  ``details.causes``, checked before AlreadyExists as the API server does.
- **Custom-resource validation** against the storage version's ``openAPIV3Schema`` on create,
  replace, patch and status writes: pruning, defaults, JSON-schema validation (with
  ``nullable`` and ``x-kubernetes-int-or-string``) and the transition rule
  ``self == oldSelf`` (see :mod:`mlops_sandbox._schema`).
- **List/watch**: lists carry the current resourceVersion and are sorted by namespace and
  name. ``labelSelector`` (``=``, ``==``, ``!=``, exists, ``!``, ``in``, ``notin``) and
  ``fieldSelector`` (``=``, ``==``, ``!=`` on any dotted path, e.g. ``metadata.name`` or
  ``status.phase``) on both. Watches from a ``resourceVersion`` stream only later events from
  a bounded per-resource log (older than the log: an ERROR event with 410 Expired); from
  ``""``/``"0"`` they replay the current objects as ADDED first (with ``sendInitialEvents``
  and bookmarks allowed, followed by the ``k8s.io/initial-events-end`` BOOKMARK). Objects
  leaving or entering a label/field selector are sent as DELETED/ADDED. ``timeoutSeconds``
  ends the stream (default 30 minutes); ``dryRun=All`` writes nothing.
- **Pod logs** from :attr:`SandboxAPI.log_provider` (``tailLines`` honoured).

What it does not do:

- authentication, authorization, admission (webhooks, quotas, limit ranges);
- ``managedFields`` of writes other than server-side apply (``Update`` managers), the
  client-side-apply migration, apply to ``status``; ``fieldValidation`` when the client
  does not send it (the API server would warn); ``deletecollection``; pagination (``limit`` and
  ``continue`` are ignored: everything comes in one page);
- ``propagationPolicy`` (always background; ``Orphan`` is ignored), foreground deletion,
  ``blockOwnerDeletion``;
- Terminating namespaces: a deleted Namespace goes at once, and objects with finalizers in
  it linger until their finalizers are removed;
- watch bookmarks other than the initial-events one; ``follow`` of pod logs (the text so far
  is returned); strategic-merge directives other than those above;
- validation of built-in fields other than those above (required fields such as a
  container's ``image``, immutable fields on update), defaulting of built-in resources (beyond
  the few defaults above), service cluster IPs, pod IPs, and controllers: nothing acts on
  Jobs, Deployments or Pods unless the workload runner does;
- ``/openapi/v2`` in protobuf (406: kubectl then uses v3); CRD conversion (versions only
  rewrite ``apiVersion``);
- CEL rules other than ``self == oldSelf`` (skipped, with a warning logged once per rule);
- PUT without ``metadata.resourceVersion`` is accepted as an unconditional update even for
  custom resources (the API server requires it there).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import datetime
import functools
import json
import logging
import pathlib
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
import yaml
from kmock._internal.rendering import Response, StreamingError

from mlops_sandbox import admin, builtin_validation, openapi, server_side_apply, tables
from mlops_sandbox._schema import FieldError, StructuralSchema
from mlops_sandbox.faults import REASONS, Call, Faults, RequestLog
from mlops_sandbox.faults import Fault as Fault  # where tests have always imported it

logger = logging.getLogger(__name__)

ObjectKey = tuple[kmock.resource, str | None, str]
"""The key of an object in ``SandboxAPI.objects``: (storage resource, namespace, name)."""

RequestKey = tuple[str, str, str]
"""(client, verb, resource) of a served request: the User-Agent's first product name
(``kopf``, ``OpenAPI-Generator``…), the API verb, and ``plural`` or ``plural/subresource``."""

_VERBS = frozenset({"create", "delete", "get", "list", "patch", "update", "watch"})
_WRITE_VERBS = frozenset({"create", "delete", "patch", "update"})


@dataclasses.dataclass(frozen=True)
class Write:
    """A write the emulator served (2xx), as write hooks see it."""

    agent: str
    """The whole User-Agent header (the operator's names its process)."""
    verb: str
    resource: str
    """``plural`` or ``plural/subresource``."""
    namespace: str | None
    name: str | None
    started: float
    finished: float
    """``time.monotonic()`` when the request arrived and when it was served."""


_MERGE_PATCH = "application/merge-patch+json"
_JSON_PATCH = "application/json-patch+json"
_STRATEGIC_PATCH = "application/strategic-merge-patch+json"
_APPLY_PATCH = "application/apply-patch+yaml"
_DEFAULT_WATCH_TIMEOUT = 1800.0
_WATCH_TICK = 1.0  # how often an idle watch checks for a closed connection or shutdown
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what the API server uses for generateName
_MAX_GENERATED_BASE = 63 - 5  # the API server cuts a longer generateName to fit a label


@dataclasses.dataclass
class _Kind:
    """Everything the emulator knows about one served resource."""

    group: str
    storage_version: str
    versions: tuple[str, ...]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    subresources: frozenset[str] = frozenset()
    shortnames: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    schema: StructuralSchema | None = None
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    crd_versions: Mapping[str, Mapping[str, Any]] | None = None
    """A custom resource's CRD ``spec.versions`` entries by name (schema, printer columns);
    None for a built-in."""

    def served(self, version: str) -> openapi.Served:
        """The resource in ``version`` as the OpenAPI documents describe it."""
        schema = None
        if self.crd_versions is not None:
            entry = self.crd_versions.get(version) or {}
            schema = (entry.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
        return openapi.Served(
            self.group, version, self.plural, self.kind, self.namespaced, self.subresources, schema
        )

    def printer_columns(self, version: str) -> list[Mapping[str, Any]] | None:
        """A custom resource version's ``additionalPrinterColumns``; None for a built-in."""
        if self.crd_versions is None:
            return None
        return list((self.crd_versions.get(version) or {}).get("additionalPrinterColumns") or [])

    @functools.cached_property
    def storage(self) -> kmock.resource:
        """The kmock resource under which objects of all versions are stored."""
        # Cached: building a kmock.resource is slow (attrs + Protocol checks), and lists
        # compare it with every stored object (57% of the emulator's CPU at 5,000 objects).
        return _resource(self.group, self.storage_version, self.plural)

    @property
    def qualified(self) -> str:
        """``plural.group`` as in the API server's messages (``pods`` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Kind.group`` as in the API server's validation messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def api_version(self, version: str) -> str:
        """The ``apiVersion`` of objects served as ``version``."""
        return f"{self.group}/{version}" if self.group else version


# group, version, plural, kind, namespaced, subresources, short names
_BUILTINS: tuple[tuple[str, str, str, str, bool, frozenset[str], frozenset[str]], ...] = (
    ("", "v1", "namespaces", "Namespace", False, frozenset({"status"}), frozenset({"ns"})),
    ("", "v1", "pods", "Pod", True, frozenset({"status", "log"}), frozenset({"po"})),
    ("", "v1", "secrets", "Secret", True, frozenset(), frozenset()),
    ("", "v1", "configmaps", "ConfigMap", True, frozenset(), frozenset({"cm"})),
    ("", "v1", "services", "Service", True, frozenset({"status"}), frozenset({"svc"})),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, frozenset(), frozenset({"sa"})),
    ("", "v1", "events", "Event", True, frozenset(), frozenset({"ev"})),
    ("batch", "v1", "jobs", "Job", True, frozenset({"status"}), frozenset()),
    (
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        frozenset({"status", "scale"}),
        frozenset({"deploy"}),
    ),
    (
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        frozenset({"status", "scale"}),
        frozenset({"rs"}),
    ),
    (
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        frozenset({"status"}),
        frozenset({"hpa"}),
    ),
    ("events.k8s.io", "v1", "events", "Event", True, frozenset(), frozenset({"ev"})),
    ("coordination.k8s.io", "v1", "leases", "Lease", True, frozenset(), frozenset()),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        frozenset({"status"}),
        frozenset({"crd", "crds"}),
    ),
)
_BUILTIN_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("apps", "deployments"): {"spec.replicas": 1},
    ("apps", "replicasets"): {"spec.replicas": 1},
    ("batch", "jobs"): {"spec.backoffLimit": 6, "spec.completions": 1, "spec.parallelism": 1},
}
# `kubectl get all` lists the kinds in the "all" category, as on a cluster.
_ALL = frozenset({"all"})
_BUILTIN_CATEGORIES: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): _ALL,
    ("", "services"): _ALL,
    ("batch", "jobs"): _ALL,
    ("apps", "deployments"): _ALL,
    ("apps", "replicasets"): _ALL,
}
# Strategic merge: list fields whose items are merged by a key instead of replaced.
_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "imagePullSecrets": ("name",),
    "volumeMounts": ("mountPath",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
}


@dataclasses.dataclass
class _WatchEvent:
    rv: int
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None  # the previous state, to re-evaluate selectors on MODIFIED
    at: float = 0.0  # SandboxAPI.clock() when it happened


@dataclasses.dataclass
class _EventLog:
    """Recent events of one resource; watchers read it by resourceVersion.

    Like the API server's watch cache: at most ``maxlen`` events, and events older than
    ``fresh_seconds`` go once more than ``keep`` are held (a watch resuming from before them
    gets 410 and relists)."""

    events: collections.deque[_WatchEvent]
    fresh_seconds: float | None = None
    keep: int = 100
    floor: int = 0  # the newest evicted resourceVersion: watches from before it get 410
    signal: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def append(self, event: _WatchEvent) -> None:
        if self.events.maxlen is not None and len(self.events) == self.events.maxlen:
            self.floor = self.events[0].rv
        if self.fresh_seconds is not None:
            stale = event.at - self.fresh_seconds
            while len(self.events) >= self.keep and self.events[0].at < stale:
                self.floor = self.events.popleft().rv
        self.events.append(event)
        signal, self.signal = self.signal, asyncio.Event()
        signal.set()


def _resource(group: str, version: str | None, plural: str | None) -> kmock.resource:
    # Keywords only: kmock.resource("", "v1", None) would read "v1" as the plural.
    return kmock.resource(group=group, version=version, plural=plural)


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: Any = None) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details)


def _bad_request(message: str) -> kmock.KubernetesError:
    return _status(400, "BadRequest", message)


def _not_found(kind: _Kind, name: str) -> kmock.KubernetesError:
    details = {"name": name, "group": kind.group, "kind": kind.plural}
    return _status(404, "NotFound", f'{kind.qualified} "{name}" not found', details)


def _namespace_not_found(namespace: str) -> kmock.KubernetesError:
    details = {"name": namespace, "kind": "namespaces"}
    return _status(404, "NotFound", f'namespaces "{namespace}" not found', details)


def _conflict(kind: _Kind, name: str, why: str) -> kmock.KubernetesError:
    message = f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}'
    details = {"name": name, "group": kind.group, "kind": kind.plural}
    return _status(409, "Conflict", message, details)


def _stale(kind: _Kind, name: str) -> kmock.KubernetesError:
    why = (
        "the object has been modified; please apply your changes to the latest version"
        " and try again"
    )
    return _conflict(kind, name, why)


def _invalid(kind: _Kind, name: str, errors: list[FieldError]) -> kmock.KubernetesError:
    texts = [error.message for error in errors]
    # Like the API server's aggregated errors: a single error bare, several in brackets.
    joined = texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"
    details = {
        "name": name,
        "group": kind.group,
        "kind": kind.kind,
        "causes": [error.as_cause() for error in errors],
    }
    return _status(422, "Invalid", f'{kind.qualified_kind} "{name}" is invalid: {joined}', details)


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _lookup(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What ``generation`` tracks: everything except metadata and status."""
    return {key: val for key, val in obj.items() if key not in ("metadata", "status")}


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch; returns a new value, the inputs stay intact."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_DELETE = object()  # a strategic-merge `$patch: delete` result: drop the key


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch, approximately (see the module docstring)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    plain = {key: val for key, val in patch.items() if not key.startswith("$")}
    if directive == "replace":
        return strategic_merge_patch({}, plain)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in plain.items():
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(current, list):
            result[key] = _merge_list(key, current, value)
        else:
            merged = strategic_merge_patch(current, value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [item for item in result[field] if item not in value]
    return result


def _merge_list(field: str, current: list[Any], patch: list[Any]) -> list[Any]:
    candidates = _MERGE_KEYS.get(field, ())
    items = current + patch
    merge_key = next(
        (
            key
            for key in candidates
            if items and all(isinstance(item, dict) and key in item for item in items)
        ),
        None,
    )
    if merge_key is None:
        # Items with a `$patch` directive (e.g. the `{"$patch": "replace"}` marker) only
        # steer merging; in a list that is replaced as a whole they have nothing to say.
        return [
            strategic_merge_patch(None, item)
            for item in patch
            if not (isinstance(item, dict) and "$patch" in item)
        ]
    result = copy.deepcopy(current)
    for item in patch:
        index = next((i for i, old in enumerate(result) if old[merge_key] == item[merge_key]), None)
        merged = strategic_merge_patch(None if index is None else result[index], item)
        if merged is _DELETE:
            if index is not None:
                del result[index]
        elif index is None:
            result.append(merged)
        else:
            result[index] = merged
    return result


LabelTerm = Callable[[Mapping[str, str]], bool]


def _label_term(op: str, key: str, values: frozenset[str]) -> LabelTerm:
    def check(labels: Mapping[str, str]) -> bool:
        match op:
            case "in" | "=" | "==":
                return labels.get(key) in values
            case "notin" | "!=":
                return labels.get(key) not in values
            case "exists":
                return key in labels
            case _:
                return key not in labels

    return check


def _parse_label_selector(text: str) -> list[LabelTerm]:
    terms: list[LabelTerm] = []
    for raw in re.split(r",(?![^()]*\))", text):
        term = raw.strip()
        if not term:
            continue
        if match := re.fullmatch(r"([^\s!=()]+)\s+(in|notin)\s*\(([^)]*)\)", term):
            key, op, values_text = match.groups()
            values = frozenset(value.strip() for value in values_text.split(",") if value.strip())
            terms.append(_label_term(op, key, values))
        elif match := re.fullmatch(r"([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)", term):
            key, op, value = match.groups()
            terms.append(_label_term(op, key, frozenset({value})))
        elif match := re.fullmatch(r"!\s*([^\s!=()]+)", term):
            terms.append(_label_term("absent", match.group(1), frozenset()))
        elif re.fullmatch(r"[^\s!=()]+", term):
            terms.append(_label_term("exists", term, frozenset()))
        else:
            raise _bad_request(f"unable to parse requirement: invalid label selector: {term!r}")
    return terms


def _parse_field_selector(text: str) -> list[Callable[[Mapping[str, Any]], bool]]:
    terms: list[Callable[[Mapping[str, Any]], bool]] = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue
        match = re.fullmatch(r"([^\s!=]+)\s*(==|=|!=)\s*(.*)", term)
        if match is None:
            raise _bad_request(f"invalid selector: {term!r}; can't understand it")
        path, op, value = match.groups()

        def check(
            obj: Mapping[str, Any], p: str = path, v: str = value, neg: bool = op == "!="
        ) -> bool:
            found = _lookup(obj, p)
            text = "" if found is None else found if isinstance(found, str) else json.dumps(found)
            return (text != v) if neg else (text == v)

        terms.append(check)
    return terms


@dataclasses.dataclass
class _Selector:
    """The objects a list or watch request asks for."""

    namespace: str | None
    name: str | None
    labels: list[LabelTerm]
    fields: list[Callable[[Mapping[str, Any]], bool]]

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = _meta(obj)
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        labels = meta.get("labels") or {}
        return all(term(labels) for term in self.labels) and all(t(obj) for t in self.fields)


@attrs.define(kw_only=True)
class SandboxAPI(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator with the API-server behaviour the operator relies on."""

    log_provider: Callable[[str, str], str | None] | None = None
    """Serves ``GET …/pods/{name}/log``: called with (namespace, name); None means no logs."""
    event_log_size: int = 1000
    """How many recent events per resource a watch can resume from, at most."""
    watch_history_seconds: float | None = 75.0
    """Events older than this are dropped from a resource's watch history once it holds more
    than 100, as the API server's watch cache keeps about 75 s (None: only the count bounds
    it). A watch resuming from before them gets 410 Expired, and relists."""
    event_ttl: float | None = 3600.0
    """Seconds an Event lives after its last write, as with the API server's ``--event-ttl``
    (1 h by default); then it is deleted (watchers see DELETED). None: Events stay."""
    request_log_size: int = 100_000
    """How many requests :attr:`request_log` keeps (the oldest go first)."""
    clock: Callable[[], float] = time.monotonic
    """Seconds, for the Event TTL and the watch history's age (tests move it forward)."""
    history_limit: int = 10
    """How many past versions of each object ``api.objects[…].history`` keeps."""
    requests_limit: int = 4
    """How many past requests kmock keeps for assertions, per view and per reaction. Kept
    short: kmock routes every request by replaying each reaction's criteria over this history
    until it meets the request, so a request costs O(history) — 75 ms at 1,000 on a 2-core
    machine, 0.7 ms at 4 (``make bench-operator`` found it). Raise it in a test that asserts
    on past requests."""
    request_counts: collections.Counter[RequestKey] = attrs.field(
        factory=collections.Counter, init=False
    )
    """Requests served since start, by (client, verb, resource): for benchmarks, which ask
    how many calls an operator makes, and for spotting a chatty client."""
    request_seconds: collections.defaultdict[RequestKey, float] = attrs.field(
        factory=lambda: collections.defaultdict(float), init=False
    )
    """Time spent serving those requests, by the same key (watches excluded: they stream)."""
    write_hooks: list[Callable[[Write], None]] = attrs.field(factory=list, init=False)
    """Called on the emulator's loop after each write is served, before the answer is sent:
    chaos tests log the writes, or kill the writer right after its Nth one."""
    faults: Faults = attrs.field(factory=Faults, init=False)
    """Faults to answer instead of serving (see :class:`~mlops_sandbox.faults.Fault`); add
    them through ``Sandbox.inject`` or the admin endpoint (``mlops-sandbox fault add``)."""
    request_log: RequestLog = attrs.field(factory=RequestLog, init=False)
    """Every request received (client, verb, resource, status, time), faults included."""
    s3_faults: Faults | None = None
    """The S3 server's faults, when the admin endpoint should manage them too."""

    _kinds: dict[tuple[str, str], _Kind] = attrs.field(factory=dict, init=False)
    _event_logs: dict[kmock.resource, _EventLog] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _event_expiry: dict[ObjectKey, float] = attrs.field(factory=dict, init=False)
    """Live Events by the :attr:`clock` time they expire at, the soonest first (each write
    moves its Event to the end: every Event gets the same TTL)."""
    _closing: bool = attrs.field(default=False, init=False)
    _openapi_cache: dict[str, dict[str, Any]] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.request_log = RequestLog(self.request_log_size)
        # kmock routes PUT on a named object to no action; the API server treats it as replace.
        self.fallback[kmock.method.PUT] << self._serve_replace
        for group, version, plural, kind, namespaced, subresources, shortnames in _BUILTINS:
            self._register(
                _Kind(
                    group=group,
                    storage_version=version,
                    versions=(version,),
                    plural=plural,
                    singular=kind.lower(),
                    kind=kind,
                    namespaced=namespaced,
                    subresources=subresources,
                    shortnames=shortnames,
                    categories=_BUILTIN_CATEGORIES.get((group, plural), frozenset()),
                    defaults=_BUILTIN_DEFAULTS.get((group, plural), {}),
                )
            )
        for namespace in ("default", "kube-system"):
            self._create(self._kinds["", "namespaces"], None, {"metadata": {"name": namespace}})

    # --- public interface -------------------------------------------------------------------

    def load_crds(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Register CustomResourceDefinitions: discovery, schemas, and stored CRD objects.

        Documents of other kinds are ignored, so a whole multi-document file can be given.
        """
        crd_kind = self._kinds["apiextensions.k8s.io", "customresourcedefinitions"]
        for doc in docs:
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            body = copy.deepcopy(dict(doc))
            name = _meta(body).get("name", "")
            key = (crd_kind.storage, None, name)
            if self._live(key) is None:
                self._create(crd_kind, None, body)
            else:
                self._replace(crd_kind, key, body, subresource=None, check_rv=False)

    def load_crd_dir(self, path: pathlib.Path) -> None:
        """Register the CRDs of every ``*.yaml`` file in ``path`` (sorted by file name)."""
        for file in sorted(path.glob("*.yaml")):
            with file.open(encoding="utf-8") as stream:
                self.load_crds(doc for doc in yaml.safe_load_all(stream) if doc)

    def live_objects(self) -> list[tuple[ObjectKey, dict[str, Any]]]:
        """Every object that exists now (not removed), as stored: for tests and benchmarks
        that count or inspect the whole cluster (read it on the API's loop or under the GIL
        from a quiet moment; the returned dicts are the stored ones, do not change them)."""
        return [(key, obj.last.raw) for key, obj in list(self._objects.items()) if not obj.deleted]

    def retention(self) -> dict[str, int]:
        """What the emulator holds now, by store: the figures a soak watches for growth
        (objects and their kept versions, Events, watch history, the request log and its
        counters). Read it on the API's loop or from a quiet moment, as :meth:`live_objects`."""
        objects = list(self._objects.values())
        return {
            "objects": sum(1 for obj in objects if not obj.deleted),
            "objects_removed_kept": sum(1 for obj in objects if obj.deleted),
            "object_versions": sum(len(obj.history) for obj in objects),
            "events_expiring": len(self._event_expiry),
            "watch_history": sum(len(log.events) for log in self._event_logs.values()),
            "request_log": len(self.request_log),
            "request_counters": len(self.request_counts),
            "write_hooks": len(self.write_hooks),
            "faults": len(self.faults),
        }

    def close_watches(self) -> None:
        """End every open watch stream (so that the HTTP server can stop without waiting)."""
        self._closing = True
        for log in self._event_logs.values():
            signal, log.signal = log.signal, asyncio.Event()
            signal.set()

    # --- kmock integration ------------------------------------------------------------------

    async def serve(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """The HTTP entry point: the admin endpoint under ``/sandbox/``, else one API request,
        logged, and answered by the first fault that matches it or served."""
        if raw_request.path.startswith(admin.PREFIX):
            return await admin.handle(raw_request, self.faults, self.request_log, self.s3_faults)
        self.expire_events()
        call = _call_of(raw_request)
        fault = self.faults.pick(lambda rule, now: rule.answers(call, now))
        record = self.request_log.append(call, fault.id if fault is not None else None)
        response: aiohttp.web.StreamResponse | None = None
        try:
            if fault is None:
                response = await self(raw_request)
            else:
                response = await self._fault(raw_request, call, fault)
            return response
        finally:
            record.status = response.status if response is not None else None

    async def _fault(
        self, raw: aiohttp.web.BaseRequest, call: Call, fault: Fault
    ) -> aiohttp.web.StreamResponse:
        """Answer ``call`` the way ``fault`` says."""
        loop = asyncio.get_running_loop()
        what = f"{call.verb} {call.resource}"
        if fault.action == "error":
            reason = REASONS.get(fault.status, "InternalError")
            error = _status(fault.status, reason, f"injected fault: {reason} ({what})")
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return aiohttp.web.json_response(
                _status_body(error), status=fault.status, headers=headers
            )
        if fault.action == "expire":
            message = f"too old resource version: {call.resource_version} (injected fault)"
            body = _status_body(_status(410, "Expired", message))
            if call.verb == "list":
                return aiohttp.web.json_response(body, status=410)
            # A watch learns it in its stream, as from the API server.
            response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(raw)
            await response.write(json.dumps({"type": "ERROR", "object": body}).encode() + b"\n")
            await response.write_eof()
            return response
        if fault.action == "lost":
            await self(raw)  # served, its answer never sent: the connection is cut below
        if fault.action == "drop":
            transport = raw.transport
            if transport is not None:
                loop.call_later(fault.hold, transport.close)
            return await self(raw)
        if fault.action == "stall":
            response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(raw)
            await asyncio.sleep(fault.hold)
        elif fault.action == "timeout":
            await asyncio.sleep(fault.hold)
        if raw.transport is not None:
            raw.transport.close()
        # The closed connection cancels this handler; the answer below is never read.
        await asyncio.sleep(_WATCH_TICK)
        return aiohttp.web.Response(status=504)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Serve one HTTP request: kmock's entry point with the API server's URL parsing."""
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            if self.limit is not None and len(self._requests) >= self.limit:
                raise _status(429, "TooManyRequests", "the sandbox API's request limit is reached")
            request = await _parse_request(raw_request, len(self._requests))
            self._requests.append(request)
            if len(self._requests) > self.requests_limit:
                del self._requests[: -self.requests_limit]
            # Each reaction keeps the requests it served, too: bound those the same way.
            for payload in self._payloads:
                if len(payload._requests) > self.requests_limit:
                    del payload._requests[: -self.requests_limit]
            key = _request_key(request)
            self.request_counts[key] += 1
            started = time.perf_counter()
            try:
                response = await self._handle(request)
                if self.write_hooks and key[1] in _WRITE_VERBS and response.status < 400:
                    self._wrote(request, key, started)
                return response
            except StreamingError as exc:
                raw_response = exc.args[0]
                if exc.__cause__ is None:
                    raise
                raise exc.__cause__ from None
            finally:
                if key[1] != "watch":
                    self.request_seconds[key] += time.perf_counter() - started
        except kmock.KubernetesError as exc:
            # An API answer (404, 409, 422…), not a fault: kmock's error list stays for faults.
            return await self._render_or_stream(exc, raw_response)
        except Exception as exc:
            if not self._errors:
                raise
            self._errors[-1].append(exc)
            logger.exception(
                "The sandbox API failed to serve %s %s", raw_request.method, raw_request.path
            )
            return await self._render_or_stream(exc, raw_response)

    def _wrote(self, request: kmock.Request, key: RequestKey, started: float) -> None:
        now = time.perf_counter()
        write = Write(
            agent=request.headers.get("User-Agent", ""),
            verb=key[1],
            resource=key[2],
            namespace=request.namespace,
            name=request.name,
            started=time.monotonic() - (now - started),
            finished=time.monotonic(),
        )
        for hook in list(self.write_hooks):
            hook(write)

    async def _render_or_stream(
        self, exc: Exception, raw_response: aiohttp.web.StreamResponse | None
    ) -> aiohttp.web.StreamResponse:
        if raw_response is None or not raw_response.prepared:
            return await self._render_error(exc)
        await self._stream_error(exc, raw_response)
        with contextlib.suppress(ConnectionError):
            await raw_response.write_eof()
        return raw_response

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path.rstrip("/")
        if path == "/openapi/v2" or path == "/openapi/v3" or path.startswith("/openapi/v3/"):
            return self._serve_openapi(path, request.headers.get("Accept", ""))
        # Skip KubernetesEmulator._handle: it mutates the store with plain dict merges before
        # routing; here the fallbacks below do every write, with API-server semantics.
        return await super(kmock.KubernetesEmulator, self)._handle(request)

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        return aiohttp.web.json_response(_status_body(exc), status=_status_code(exc))

    async def _stream_error(self, exc: Exception, raw_response: aiohttp.web.StreamResponse) -> None:
        event = {"type": "ERROR", "object": _status_body(exc)}
        with contextlib.suppress(ConnectionError):
            await raw_response.write(json.dumps(event).encode() + b"\n")

    def _openapi_documents(self) -> dict[str, dict[str, Any]]:
        """Each group-version's OpenAPI v3 document (rebuilt when the served kinds change)."""
        if self._openapi_cache is None:
            by_gv: dict[str, list[openapi.Served]] = {}
            for kind in self._kinds.values():
                for version in kind.versions:
                    served = kind.served(version)
                    by_gv.setdefault(served.group_version, []).append(served)
            self._openapi_cache = {
                gv: openapi.v3_document(sorted(items, key=lambda s: s.plural))
                for gv, items in by_gv.items()
            }
        return self._openapi_cache

    def _serve_openapi(self, path: str, accept: str) -> aiohttp.web.StreamResponse:
        documents = self._openapi_documents()
        if path == "/openapi/v2":
            if not any(m in accept for m in ("json", "*/*")) and accept:
                raise _status(
                    406, "NotAcceptable", "only application/json is served at /openapi/v2"
                )
            return aiohttp.web.json_response(openapi.v2_document(documents.values()))
        if path == "/openapi/v3":
            return aiohttp.web.json_response(openapi.v3_index(documents))
        document = documents.get(path.removeprefix("/openapi/v3/"))
        if document is None:
            raise _status(404, "NotFound", "the server could not find the requested resource")
        return aiohttp.web.json_response(document)

    async def _serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        return {
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0-sandbox",
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2025-04-23T00:00:00Z",
            "goVersion": "go1.24",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    async def _serve_apis(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_apis(request)
        if isinstance(payload, dict):
            for group in payload.get("groups", []):
                self._prefer_storage_version(group)
        return payload

    async def _serve_group(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_group(request)
        if isinstance(payload, dict):
            self._prefer_storage_version(payload)
        return payload

    def _prefer_storage_version(self, group: dict[str, Any]) -> None:
        # kmock picks an arbitrary version of a multi-version group; clients follow the
        # preferred one, which the API server makes the storage version of the group's CRDs.
        storage = {k.storage_version for k in self._kinds.values() if k.group == group["name"]}
        versions = sorted(group.get("versions", []), key=lambda v: v["version"] not in storage)
        if versions:
            group["versions"] = versions
            group["preferredVersion"] = versions[0]

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_version(request)
        if not isinstance(payload, dict):
            return payload
        # kmock renders the core group as "/v1"; the API server says "v1".
        payload["groupVersion"] = str(payload.get("groupVersion", "")).lstrip("/")
        for entry in payload.get("resources", []):
            _, _, subresource = str(entry.get("name", "")).partition("/")
            if subresource == "log":
                entry["verbs"] = ["get"]
            elif subresource:
                entry["verbs"] = ["get", "patch", "update"]
            if subresource:
                # Like the API server: short names and categories name the resource itself,
                # else `kubectl get <category>` would try to list the subresources too.
                entry["shortNames"] = []
                entry["categories"] = []
            if subresource == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale")
        payload.get("resources", []).sort(key=lambda entry: str(entry.get("name")))
        return payload

    # --- request handlers (kmock fallbacks) ---------------------------------------------------

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        kind, version = self._resolve(request)
        selector = self._selector(kind, request)
        items = [self._present(kind, version, obj) for _, obj in self._select(kind, selector)]
        if tables.wants_table(request.headers.get("Accept", "")):
            return _reply(self._table(kind, version, items, request))
        listing = {
            "apiVersion": kind.api_version(version),
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }
        return _reply(listing)

    async def _serve_fetch(self, request: kmock.Request) -> kmock.Payload:
        kind, version = self._resolve(request)
        key = self._key(kind, request)
        obj = self._live(key)
        if obj is None:
            raise _not_found(kind, key[2])
        if request.subresource is None or request.subresource == "status":
            if tables.wants_table(request.headers.get("Accept", "")):
                return _reply(self._table(kind, version, [obj], request))
            return _reply(self._present(kind, version, obj))
        if request.subresource == "scale" and "scale" in kind.subresources:
            return _reply(_scale_of(obj))
        if request.subresource == "log" and "log" in kind.subresources:
            return self._pod_log(kind, key, request)
        raise _status(404, "NotFound", "the server could not find the requested resource")

    async def _serve_create(self, request: kmock.Request) -> kmock.Payload:
        kind, version = self._resolve(request)
        body = _body_object(request)
        _check_decodable(kind, version, body)
        warnings = _check_fields(kind, version, body, request)
        created = self._create(kind, request.namespace, body, dry_run=_dry_run(request))
        if not _dry_run(request):
            self._collect_if_orphaned(kind, created)
        return _reply(self._present(kind, version, created), status=201, warnings=warnings)

    async def _serve_replace(self, request: kmock.Request) -> kmock.Payload:
        if request.resource is None or request.name is None:
            raise _status(405, "MethodNotAllowed", "the server does not allow this method")
        kind, version = self._resolve(request)
        key = self._key(kind, request)
        body = _body_object(request)
        if request.subresource == "scale" and "scale" in kind.subresources:
            return self._write_scale(kind, key, lambda scale: body, request)
        subresource = self._check_subresource(kind, request)
        _check_decodable(kind, version, body)
        if _meta(body).get("name", key[2]) != key[2]:
            raise _bad_request("the name of the object does not match the name on the URL")
        warnings = _check_fields(kind, version, body, request) if subresource is None else []
        result = self._replace(
            kind,
            key,
            body,
            subresource=subresource,
            dry_run=_dry_run(request),
            manager=_update_manager(request),
        )
        return _reply(self._present(kind, version, result), warnings=warnings)

    async def _serve_update(self, request: kmock.Request) -> kmock.Payload:
        kind, version = self._resolve(request)
        key = self._key(kind, request)
        if _content_type(request) == _APPLY_PATCH and request.subresource is None:
            return self._server_side_apply(kind, version, key, request)
        apply = _patcher(request)
        if request.subresource == "scale" and "scale" in kind.subresources:
            return self._write_scale(kind, key, apply, request)
        subresource = self._check_subresource(kind, request)
        current = self._live(key)
        if current is None:
            raise _not_found(kind, key[2])
        patched = apply(copy.deepcopy(current))
        if not isinstance(patched, dict):
            raise _bad_request("the patch does not result in an object")
        _check_patched_decodable(kind, request, patched)
        warnings = _check_fields(kind, version, patched, request)
        result = self._replace(
            kind,
            key,
            patched,
            subresource=subresource,
            dry_run=_dry_run(request),
            manager=_update_manager(request),
        )
        return _reply(self._present(kind, version, result), warnings=warnings)

    def _server_side_apply(
        self, kind: _Kind, version: str, key: ObjectKey, request: kmock.Request
    ) -> kmock.Payload:
        """``PATCH`` with an apply configuration: create or merge, tracking field owners."""
        config = request.data
        if config is None:
            with contextlib.suppress(yaml.YAMLError):
                config = yaml.safe_load(request.text)
        if not isinstance(config, dict):
            raise _bad_request("the apply configuration is not an object")
        manager = request.params.get("fieldManager", "")
        if not manager:
            raise _bad_request(
                "PATCH, application/apply-patch+yaml requests must have a fieldManager"
            )
        config_meta = _meta(config)
        if config_meta.get("name", key[2]) != key[2]:
            raise _bad_request("the name of the object does not match the name on the URL")
        if config.get("kind") not in (None, kind.kind):
            raise _bad_request(f"the apply configuration's kind is not {kind.kind}")
        _check_decodable(kind, version, config)
        warnings = _check_fields(kind, version, config, request)
        live = self._live(key)
        try:
            merged = server_side_apply.apply(
                kind.served(version),
                live,
                config,
                manager=manager,
                force=request.params.get("force") in ("true", "1"),
                now=_now(),
            )
        except server_side_apply.ApplyConflict as exc:
            details = {
                "name": key[2],
                "group": kind.group,
                "kind": kind.plural,
                "causes": [
                    {
                        "reason": "FieldManagerConflict",
                        "message": f"conflict with {conflict.owner}",
                        "field": conflict.field,
                    }
                    for conflict in exc.conflicts
                ],
            }
            raise _status(409, "Conflict", str(exc), details) from None
        dry_run = _dry_run(request)
        if live is None:
            managed = _meta(merged).get("managedFields")
            created = self._create(kind, key[1], merged, dry_run=dry_run, managed_fields=managed)
            if not dry_run:
                self._collect_if_orphaned(kind, created)
            return _reply(self._present(kind, version, created), status=201, warnings=warnings)
        result = self._replace(kind, key, merged, subresource=None, dry_run=dry_run)
        return _reply(self._present(kind, version, result), warnings=warnings)

    async def _serve_delete(self, request: kmock.Request) -> kmock.Payload:
        kind, version = self._resolve(request)
        if request.subresource is not None:
            raise _status(405, "MethodNotAllowed", "the server does not allow this method")
        key = self._key(kind, request)
        current = self._live(key)
        if current is None:
            raise _not_found(kind, key[2])
        options = request.data if isinstance(request.data, dict) else {}
        preconditions = options.get("preconditions") or {}
        meta = _meta(current)
        for field in ("uid", "resourceVersion"):
            expected = preconditions.get(field)
            if expected and expected != meta.get(field):
                why = (
                    f"the {field} in the precondition ({expected}) does not match the {field}"
                    f" in record ({meta.get(field)}). The object might have been deleted and"
                    " then recreated"
                )
                raise _conflict(kind, key[2], why)
        result = current if _dry_run(request) else self._delete(kind, key)
        return _reply(self._present(kind, version, result))

    # kmock's own is an async generator; kmock's DSL renders a coroutine returning a stream
    # the same way, and this one can still answer 404/400 as a plain error before streaming.
    async def _serve_watch(self, request: kmock.Request) -> kmock.Payload:  # type: ignore[override]
        kind, version = self._resolve(request)
        selector = self._selector(kind, request)
        params = request.params
        since_text = params.get("resourceVersion", "")
        if since_text not in ("", "0") and not since_text.isdigit():
            raise _bad_request(f"invalid resource version: {since_text!r}")
        timeout_text = params.get("timeoutSeconds", "")
        if timeout_text and not timeout_text.replace(".", "", 1).isdigit():
            raise _bad_request(f"invalid timeoutSeconds: {timeout_text!r}")
        timeout = float(timeout_text) if timeout_text else _DEFAULT_WATCH_TIMEOUT
        bookmark = (
            params.get("sendInitialEvents") == "true"
            and params.get("allowWatchBookmarks") == "true"
        )
        stream = self._watch(request, kind, version, selector, since_text, timeout, bookmark)
        if tables.wants_table(request.headers.get("Accept", "")):
            stream = self._tabled(stream, kind, version, request)
        return _reply(stream)

    async def _tabled(
        self,
        stream: AsyncIterator[kmock.Payload],
        kind: _Kind,
        version: str,
        request: kmock.Request,
    ) -> AsyncIterator[kmock.Payload]:
        """Watch events whose objects are one-row Tables, as ``kubectl get -w`` asks."""
        async for event in stream:
            if isinstance(event, dict) and event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                event = {**event, "object": self._table(kind, version, [event["object"]], request)}
            yield event

    def _table(
        self, kind: _Kind, version: str, objects: list[dict[str, Any]], request: kmock.Request
    ) -> dict[str, Any]:
        columns, row = tables.columns_and_row(
            kind.group, kind.plural, kind.printer_columns(version)
        )
        now = datetime.datetime.now(tz=datetime.UTC)
        return tables.table(
            columns,
            [(self._present(kind, version, obj), row(obj, now)) for obj in objects],
            resource_version=str(self._rv),
            include_object=request.params.get("includeObject", "Metadata"),
        )

    # --- reading -----------------------------------------------------------------------------

    def _resolve(self, request: kmock.Request) -> tuple[_Kind, str]:
        resource = request.resource
        if resource is None or resource.group is None or resource.plural is None:
            raise _status(404, "NotFound", "the server could not find the requested resource")
        kind = self._kinds.get((resource.group, resource.plural))
        if kind is None or resource.version not in kind.versions:
            raise _status(404, "NotFound", "the server could not find the requested resource")
        if not kind.namespaced and request.namespace is not None:
            raise _status(404, "NotFound", "the server could not find the requested resource")
        return kind, resource.version

    def _key(self, kind: _Kind, request: kmock.Request) -> ObjectKey:
        if request.name is None:
            raise _status(405, "MethodNotAllowed", "the server does not allow this method")
        if kind.namespaced and request.namespace is None:
            raise _status(404, "NotFound", "the server could not find the requested resource")
        return (kind.storage, request.namespace if kind.namespaced else None, request.name)

    def _check_subresource(self, kind: _Kind, request: kmock.Request) -> str | None:
        if request.subresource is None:
            return None
        if request.subresource == "status" and "status" in kind.subresources:
            return "status"
        raise _status(404, "NotFound", "the server could not find the requested resource")

    def _selector(self, kind: _Kind, request: kmock.Request) -> _Selector:
        params = request.params
        return _Selector(
            namespace=request.namespace if kind.namespaced else None,
            name=request.name,
            labels=_parse_label_selector(params.get("labelSelector", "")),
            fields=_parse_field_selector(params.get("fieldSelector", "")),
        )

    def _live(self, key: ObjectKey) -> dict[str, Any] | None:
        """The current state of an object, or None if absent or removed."""
        if key not in self._objects:
            return None
        obj = self._objects[key]
        return None if obj.deleted else obj.last.raw

    def _select(self, kind: _Kind, selector: _Selector) -> list[tuple[ObjectKey, dict[str, Any]]]:
        found = [
            (key, obj.last.raw)
            for key, obj in self._objects.items()
            if key[0] == kind.storage and not obj.deleted
        ]
        found = [(key, obj) for key, obj in found if selector.matches(obj)]
        return sorted(found, key=lambda item: (item[0][1] or "", item[0][2]))

    def _present(self, kind: _Kind, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as served in ``version`` (only ``apiVersion`` differs between versions)."""
        if version == kind.storage_version:
            return obj
        return {**obj, "apiVersion": kind.api_version(version)}

    # --- writing -----------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _store(self, kind: _Kind, key: ObjectKey, event: str, obj: dict[str, Any]) -> None:
        old = self._live(key)
        if event == "DELETED":
            # Forgotten at once, as by the API server: only the watch history keeps it.
            del self._objects[key]
            self._event_expiry.pop(key, None)
        else:
            if key not in self._objects:
                self._objects[key] = obj
            elif self._objects[key].deleted:  # soft-deleted through kmock's own API
                self._objects[key].create(obj)
            else:
                self._objects[key].history.append(obj)
                history = self._objects[key].history
                if len(history) > self.history_limit:
                    del history[: -self.history_limit]
            if kind.plural == "events" and self.event_ttl is not None:
                self._event_expiry.pop(key, None)
                self._event_expiry[key] = self.clock() + self.event_ttl
        log = self._event_logs.get(kind.storage)
        if log is None:
            log = self._event_logs[kind.storage] = self._new_event_log()
        rv = int(_meta(obj)["resourceVersion"])
        log.append(_WatchEvent(rv, event, obj, old, self.clock()))

    def _new_event_log(self) -> _EventLog:
        return _EventLog(
            collections.deque(maxlen=self.event_log_size), fresh_seconds=self.watch_history_seconds
        )

    def expire_events(self) -> int:
        """Delete the Events whose TTL has passed (watchers see DELETED); how many went. Runs
        before each request is served, so an idle emulator keeps them until it is asked."""
        now = self.clock()
        expired = 0
        while self._event_expiry:
            key, at = next(iter(self._event_expiry.items()))
            if at > now:
                break
            kind = self._kind_of(key)
            current = self._live(key)
            if kind is None or current is None:
                self._event_expiry.pop(key)
                continue
            gone = copy.deepcopy(current)
            gone["metadata"]["resourceVersion"] = self._next_rv()
            self._store(kind, key, "DELETED", gone)  # an Event owns nothing: no collection
            expired += 1
        return expired

    def _create(
        self,
        kind: _Kind,
        namespace: str | None,
        body: dict[str, Any],
        *,
        dry_run: bool = False,
        managed_fields: Any = None,
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj["metadata"] = dict(_meta(obj))
        body_namespace = meta.get("namespace")
        if kind.namespaced:
            if namespace and body_namespace and body_namespace != namespace:
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent"
                    " on the request"
                )
            namespace = namespace or body_namespace
            if not namespace:
                raise _bad_request("the namespace of the object is required")
            if self._live((self._kinds["", "namespaces"].storage, None, namespace)) is None:
                raise _namespace_not_found(namespace)
            meta["namespace"] = namespace
        else:
            namespace = None
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(_NAME_ALPHABET, k=5))
            meta["name"] = f"{meta['generateName'][:_MAX_GENERATED_BASE]}{suffix}"
        name = meta.get("name")
        if not name:
            error = FieldError(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
            raise _invalid(kind, "", [error])
        rest = {field: val for field, val in obj.items() if field not in ("apiVersion", "kind")}
        obj = {"apiVersion": kind.api_version(kind.storage_version), "kind": kind.kind, **rest}
        if "status" in kind.subresources:
            # A custom resource is stored without one; a built-in kind's status is reset to
            # its empty struct, which the API server writes out as ``{}``.
            obj.pop("status", None)
            if kind.crd_versions is None:
                obj["status"] = {}
        self._apply_builtin_behaviour(kind, obj)
        # Validation comes before the store is asked, as in the API server: an invalid object
        # of a taken name is Invalid, not AlreadyExists.
        self._validate(kind, obj, None)
        key: ObjectKey = (kind.storage, namespace, name)
        if self._live(key) is not None:
            details = {"name": name, "group": kind.group, "kind": kind.plural}
            message = f'{kind.qualified} "{name}" already exists'
            raise _status(409, "AlreadyExists", message, details)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(field, None)
        if managed_fields:
            meta["managedFields"] = managed_fields
        meta["uid"] = str(uuid.uuid4())
        if kind.group == "batch" and kind.plural == "jobs":
            _select_own_pods(obj, meta["uid"])
        meta["generation"] = 1
        meta["creationTimestamp"] = _now()
        served = _kind_from_crd(obj) if _is_crd_kind(kind) else None
        if served is not None:
            obj["status"] = _crd_status(obj, served)
        if dry_run:
            meta["resourceVersion"] = str(self._rv)
            return obj
        meta["resourceVersion"] = self._next_rv()
        self._store(kind, key, "ADDED", obj)
        if served is not None:
            self._register(served)
        return obj

    def _replace(
        self,
        kind: _Kind,
        key: ObjectKey,
        body: dict[str, Any],
        *,
        subresource: str | None,
        check_rv: bool = True,
        dry_run: bool = False,
        manager: str | None = None,
    ) -> dict[str, Any]:
        """Write a new full state of an existing object (PUT, or the result of a PATCH)."""
        old = self._live(key)
        if old is None:
            raise _not_found(kind, key[2])
        old_meta = _meta(old)
        given_rv = _meta(body).get("resourceVersion")
        if check_rv and given_rv and str(given_rv) != old_meta["resourceVersion"]:
            raise _stale(kind, key[2])

        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new["metadata"] = meta = dict(_meta(new))
            for field in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if "status" in kind.subresources:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        new["apiVersion"] = old["apiVersion"]
        new["kind"] = old["kind"]
        if kind.group == "batch" and kind.plural == "jobs" and not _lookup(new, "spec.selector"):
            # The selector the server generated stays (the API server rejects dropping it).
            uid = _lookup(old, "spec.selector.matchLabels")
            if isinstance(uid, dict) and _CONTROLLER_UID in uid:
                _select_own_pods(new, uid[_CONTROLLER_UID])
        meta = new["metadata"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        meta["generation"] = old_meta.get("generation", 1)
        self._apply_builtin_behaviour(kind, new)
        self._validate(kind, new, old)
        if old_meta.get("managedFields") and subresource is None:
            if "managedFields" not in meta:
                meta["managedFields"] = old_meta["managedFields"]
            if manager:
                meta["managedFields"] = server_side_apply.record_update(
                    kind.served(kind.storage_version), old, new, manager=manager, now=_now()
                )
        served = _kind_from_crd(new) if _is_crd_kind(kind) else None
        if served is not None:
            new["status"] = _crd_status(new, served)
        if _spec_part(new) != _spec_part(old):
            meta["generation"] = int(meta["generation"]) + 1

        if new == old:
            return old  # a no-op: no new resourceVersion and no event, as kopf expects
        if dry_run:
            return new
        meta["resourceVersion"] = self._next_rv()
        self._store(kind, key, "MODIFIED", new)
        if served is not None:
            self._register(served)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(kind, key)
        return new

    def _delete(self, kind: _Kind, key: ObjectKey) -> dict[str, Any]:
        """Delete an object: mark it if it has finalizers, remove it otherwise."""
        current = self._live(key)
        assert current is not None  # checked by the callers
        meta = _meta(current)
        if meta.get("deletionTimestamp"):
            return current
        if meta.get("finalizers"):
            marked = copy.deepcopy(current)
            marked_meta = marked["metadata"]
            marked_meta["deletionTimestamp"] = _now()
            marked_meta["deletionGracePeriodSeconds"] = 0
            marked_meta["resourceVersion"] = self._next_rv()
            self._store(kind, key, "MODIFIED", marked)
            return marked
        return self._remove(kind, key)

    def _remove(self, kind: _Kind, key: ObjectKey) -> dict[str, Any]:
        """Remove an object for good, then collect what depended on it."""
        current = self._live(key)
        assert current is not None  # checked by the callers
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._store(kind, key, "DELETED", gone)
        self._collect_garbage(kind, key, gone)
        return gone

    def _collect_garbage(self, kind: _Kind, key: ObjectKey, gone: Mapping[str, Any]) -> None:
        doomed: list[tuple[_Kind, ObjectKey]] = []
        if kind.group == "" and kind.plural == "namespaces":
            doomed += [
                (dep_kind, dep_key)
                for dep_key, obj in self._objects.items()
                if dep_key[1] == key[2] and not obj.deleted
                if (dep_kind := self._kind_of(dep_key)) is not None
            ]
        elif _is_crd_kind(kind):
            served = self._kinds.get(_crd_key(gone))
            if served is not None:
                doomed += [
                    (served, dep_key)
                    for dep_key, obj in self._objects.items()
                    if dep_key[0] == served.storage and not obj.deleted
                ]
                self._unregister(served)
        live_uids = {
            _meta(obj.last.raw).get("uid") for obj in self._objects.values() if not obj.deleted
        }
        for dep_key, obj in list(self._objects.items()):
            if obj.deleted or (kind.namespaced and dep_key[1] != key[1]):
                continue
            refs = _meta(obj.last.raw).get("ownerReferences") or []
            uids = {ref.get("uid") for ref in refs if isinstance(ref, Mapping)}
            dep_kind = self._kind_of(dep_key)
            if dep_kind is not None and _meta(gone).get("uid") in uids and not uids & live_uids:
                doomed.append((dep_kind, dep_key))
        for dep_kind, dep_key in doomed:
            if self._live(dep_key) is not None:
                self._delete(dep_kind, dep_key)

    def _collect_if_orphaned(self, kind: _Kind, obj: Mapping[str, Any]) -> None:
        """An object created with owners that are all gone is collected at once, as the
        garbage collector would do soon after (a controller racing its owner's deletion)."""
        refs = [ref for ref in _meta(obj).get("ownerReferences") or [] if isinstance(ref, Mapping)]
        if not refs:
            return
        # Each owner by its kind, namespace and name (not by scanning every object's uid:
        # that made a burst of owned creates quadratic).
        namespace = _meta(obj).get("namespace")
        if any(self._owner_lives(ref, namespace) for ref in refs):
            return
        key: ObjectKey = (kind.storage, namespace, _meta(obj)["name"])
        if self._live(key) is not None:
            self._delete(kind, key)

    def _owner_lives(self, ref: Mapping[str, Any], namespace: str | None) -> bool:
        """Whether the object an owner reference names exists with that uid."""
        group = str(ref.get("apiVersion") or "").rpartition("/")[0]
        for owner_kind in self._kinds.values():
            if owner_kind.group != group or owner_kind.kind != ref.get("kind"):
                continue
            where = namespace if owner_kind.namespaced else None
            live = self._live((owner_kind.storage, where, str(ref.get("name"))))
            if live is not None and _meta(live).get("uid") == ref.get("uid"):
                return True
        return False

    def _kind_of(self, key: ObjectKey) -> _Kind | None:
        """The served kind of a stored object; None for objects put into kmock directly."""
        kind = self._kinds.get((str(key[0].group), str(key[0].plural)))
        return kind if kind is not None and kind.storage == key[0] else None

    def _apply_builtin_behaviour(self, kind: _Kind, obj: dict[str, Any]) -> None:
        for path, value in kind.defaults.items():
            *parents, leaf = path.split(".")
            node = obj
            for part in parents:
                node = node.setdefault(part, {})
            node.setdefault(leaf, value)
        pod = _pod_spec(kind, obj)
        if pod is not None:
            _mirror_service_account(pod)
        if kind.group == "" and kind.plural == "pods":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        elif kind.group == "" and kind.plural == "namespaces":
            obj.setdefault("status", {}).setdefault("phase", "Active")

    def _validate(self, kind: _Kind, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if kind.schema is None:
            errors = builtin_validation.validate(kind.group, kind.plural, obj)
        else:
            kind.schema.normalize(obj)
            errors = kind.schema.validate(obj, old)
        if errors:
            raise _invalid(kind, _meta(obj).get("name", ""), errors)

    def _write_scale(
        self,
        kind: _Kind,
        key: ObjectKey,
        apply: Callable[[Any], Any],
        request: kmock.Request,
    ) -> kmock.Payload:
        current = self._live(key)
        if current is None:
            raise _not_found(kind, key[2])
        scale = apply(_scale_of(current))
        replicas = _lookup(scale, "spec.replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            error = FieldError("FieldValueInvalid", "spec.replicas", "Invalid value: must be >= 0")
            raise _invalid(kind, key[2], [error])
        body = copy.deepcopy(current)
        body.setdefault("spec", {})["replicas"] = replicas
        body["metadata"]["resourceVersion"] = _meta(scale).get("resourceVersion")
        result = self._replace(
            kind,
            key,
            body,
            subresource=None,
            dry_run=_dry_run(request),
            manager=_update_manager(request),
        )
        return _reply(_scale_of(result))

    def _pod_log(self, kind: _Kind, key: ObjectKey, request: kmock.Request) -> kmock.Payload:
        namespace, name = key[1] or "", key[2]
        text = self.log_provider(namespace, name) if self.log_provider is not None else None
        if text is None:
            message = f'the logs of pod "{name}" in namespace "{namespace}" are not available'
            raise _status(404, "NotFound", message, {"name": name, "kind": "pods"})
        tail = request.params.get("tailLines")
        if tail and tail.isdigit():
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :] if int(tail) else [])
        return _reply(text.encode(), content_type="text/plain")

    # --- CRDs --------------------------------------------------------------------------------

    def _register(self, kind: _Kind) -> None:
        self._openapi_cache = None
        previous = self._kinds.get((kind.group, kind.plural))
        if previous is not None:
            self._unregister(previous)
        self._kinds[kind.group, kind.plural] = kind
        for version in kind.versions:
            self.resources[_resource(kind.group, version, kind.plural)] = kmock.ResourceInfo(
                kind=kind.kind,
                singular=kind.singular,
                namespaced=kind.namespaced,
                verbs=_VERBS,
                shortnames=kind.shortnames,
                categories=kind.categories,
                subresources=kind.subresources,
            )

    def _unregister(self, kind: _Kind) -> None:
        self._openapi_cache = None
        self._kinds.pop((kind.group, kind.plural), None)
        for version in kind.versions:
            resource = _resource(kind.group, version, kind.plural)
            if resource in self.resources:
                del self.resources[resource]

    # --- watching ----------------------------------------------------------------------------

    async def _watch(
        self,
        request: kmock.Request,
        kind: _Kind,
        version: str,
        selector: _Selector,
        since_text: str,
        timeout: float,
        bookmark: bool,
    ) -> AsyncIterator[kmock.Payload]:
        # Send the headers at once: clients wait for them before reading events.
        yield b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        log = self._event_logs.get(kind.storage)
        if log is None:
            log = self._event_logs[kind.storage] = self._new_event_log()
        if since_text in ("", "0"):
            last = self._rv
            for _, obj in self._select(kind, selector):
                yield {"type": "ADDED", "object": self._present(kind, version, obj)}
            if bookmark:
                yield {"type": "BOOKMARK", "object": self._bookmark(kind, version, last, True)}
        else:
            last = int(since_text)
        while not self._closing:
            if last < log.floor:
                message = f"too old resource version: {last} ({log.floor})"
                yield {"type": "ERROR", "object": _status_body(_status(410, "Expired", message))}
                return
            signal = log.signal
            pending = [event for event in log.events if event.rv > last]
            for event in pending:
                last = event.rv
                event_type = _event_type(event, selector)
                if event_type is not None:
                    obj = self._present(kind, version, event.obj)
                    yield {"type": event_type, "object": obj}
            remaining = deadline - loop.time()
            if remaining <= 0 or _disconnected(request):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), timeout=min(remaining, _WATCH_TICK))

    def _bookmark(self, kind: _Kind, version: str, rv: int, initial: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"apiVersion": kind.api_version(version), "kind": kind.kind, "metadata": meta}


def _is_crd_kind(kind: _Kind) -> bool:
    return kind.group == "apiextensions.k8s.io" and kind.plural == "customresourcedefinitions"


def _crd_key(crd: Mapping[str, Any]) -> tuple[str, str]:
    spec = crd.get("spec") or {}
    return str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", ""))


def _kind_from_crd(crd: Mapping[str, Any]) -> _Kind:
    """The resource a CustomResourceDefinition serves (its storage version's schema)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    storage = next((v for v in versions if v.get("storage")), versions[0] if versions else None)
    if storage is None or not spec.get("group") or not names.get("plural") or not names.get("kind"):
        name = _meta(crd).get("name")
        raise _bad_request(f"CustomResourceDefinition {name!r} lacks a group, names or versions")
    schema = (storage.get("schema") or {}).get("openAPIV3Schema")
    return _Kind(
        group=spec["group"],
        storage_version=storage["name"],
        versions=tuple(v["name"] for v in versions),
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        subresources=frozenset(
            sub for sub in ("status", "scale") if sub in (storage.get("subresources") or {})
        ),
        shortnames=frozenset(names.get("shortNames") or ()),
        categories=frozenset(names.get("categories") or ()),
        schema=StructuralSchema(schema) if schema else None,
        crd_versions={v["name"]: v for v in versions},
    )


def _crd_status(crd: Mapping[str, Any], served: _Kind) -> dict[str, Any]:
    """The status the API server gives an accepted CRD (stable, so re-writes are no-ops)."""
    since = _meta(crd).get("creationTimestamp") or _now()
    accepted: dict[str, Any] = {
        "plural": served.plural,
        "singular": served.singular,
        "kind": served.kind,
    }
    if served.shortnames:
        accepted["shortNames"] = sorted(served.shortnames)
    if served.categories:
        accepted["categories"] = sorted(served.categories)
    return {
        "acceptedNames": accepted,
        "storedVersions": [served.storage_version],
        "conditions": [
            {
                "type": condition,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": since,
            }
            for condition, reason, message in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ],
    }


def _event_type(event: _WatchEvent, selector: _Selector) -> str | None:
    """The event a watcher with ``selector`` sees: objects can enter or leave its selection."""
    now = selector.matches(event.obj)
    if event.type != "MODIFIED":
        return event.type if now else None
    before = selector.matches(event.old)
    if now:
        return "MODIFIED" if before else "ADDED"
    return "DELETED" if before else None


_VERB_OF_METHOD = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}


def _request_key(request: kmock.Request) -> RequestKey:
    agent = request.headers.get("User-Agent", "").split("/", 1)[0].split(" ", 1)[0] or "-"
    if request.resource is None or request.resource.plural is None:
        return agent, request.method.lower(), "discovery"
    if request.action == kmock.action.WATCH:
        verb = "watch"
    elif request.action == kmock.action.LIST:
        verb = "list"
    elif request.method.upper() == "DELETE":
        verb = "delete"
    else:
        verb = _VERB_OF_METHOD.get(request.method.upper(), request.method.lower())
    resource = request.resource.plural
    if request.subresource:
        resource += "/" + request.subresource
    return agent, verb, resource


def _call_of(raw: aiohttp.web.BaseRequest) -> Call:
    """The request as fault rules and the request log see it (cheap: no body read)."""
    agent = raw.headers.get("User-Agent", "").split("/", 1)[0].split(" ", 1)[0] or "-"
    resource, namespace, name, subresource = _parse_path(raw.path)
    method = raw.method.upper()
    if resource is None or resource.plural is None:
        return Call(agent, method.lower(), "discovery", None, None, "")
    if method == "GET" and raw.query.get("watch") in ("true", "1"):
        verb = "watch"
    elif method == "GET" and name is None:
        verb = "list"
    elif method == "DELETE":
        verb = "delete"
    else:
        verb = _VERB_OF_METHOD.get(method, method.lower())
    plural = resource.plural + ("/" + subresource if subresource else "")
    return Call(agent, verb, plural, namespace, name, raw.query.get("resourceVersion", ""))


def _disconnected(request: kmock.Request) -> bool:
    raw = request._raw_request
    transport = raw.transport if raw is not None else None
    return transport is None or transport.is_closing()


def _status_code(exc: Exception) -> int:
    return exc.status if isinstance(exc, kmock.KubernetesError) else 500


def _status_body(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, kmock.KubernetesError):
        reason, message, details = exc.reason, exc.message, exc.details
    else:
        reason, message, details = "InternalError", f"sandbox API failure: {exc!r}", None
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message or "",
        "reason": reason or "",
        "code": _status_code(exc),
    }
    if details:
        body["details"] = details
    return body


def _scale_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = _meta(obj)
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": _lookup(obj, "spec.replicas") or 0},
        "status": {"replicas": _lookup(obj, "status.replicas") or 0},
    }


def _reply(
    payload: kmock.Payload,
    *,
    status: int = 200,
    content_type: str = "application/json",
    warnings: Iterable[str] = (),
) -> Response:
    # kmock copies a returned Response's status and headers onto the (shared) fallback
    # reaction, so every answer sets both explicitly rather than inheriting a previous one's.
    headers = {"Content-Type": content_type}
    texts = [f"299 - {json.dumps(text)}" for text in warnings]
    if texts:
        headers["Warning"] = ", ".join(texts)
    return Response(status=status, headers=headers, payload=payload)


_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"


_POD_TEMPLATES = frozenset({("apps", "deployments"), ("apps", "replicasets"), ("batch", "jobs")})


def _pod_spec(kind: _Kind, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a pod, or of the template of a kind that has one."""
    if kind.group == "" and kind.plural == "pods":
        found = obj.get("spec")
    elif (kind.group, kind.plural) in _POD_TEMPLATES:
        found = _lookup(obj, "spec.template.spec")
    else:
        return None
    return found if isinstance(found, dict) else None


def _mirror_service_account(pod: dict[str, Any]) -> None:
    """The v1 pod spec's deprecated ``serviceAccount`` mirrors ``serviceAccountName``, as
    the API server's conversion makes it: the name wins, the alias alone sets the name; so a
    write that removes only one of them keeps the service account."""
    account = pod.get("serviceAccountName") or pod.get("serviceAccount")
    if account:
        pod["serviceAccountName"] = account
        pod["serviceAccount"] = account


def _select_own_pods(job: dict[str, Any], uid: str) -> None:
    """Like the Job controller's defaulting: unless ``spec.manualSelector``, a Job selects
    its own pods by ``controller-uid`` labels, which its pod template carries."""
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") or spec.get("selector"):
        return
    spec["selector"] = {"matchLabels": {_CONTROLLER_UID: uid}}
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    name = _meta(job).get("name", "")
    labels.update(
        {
            _CONTROLLER_UID: uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
    )


def _update_manager(request: kmock.Request) -> str:
    """The manager of a write: ``fieldManager``, else the User-Agent's product name."""
    given = request.params.get("fieldManager")
    if given:
        return given
    return request.headers.get("User-Agent", "").split("/", 1)[0].split(" ", 1)[0] or "unknown"


def _content_type(request: kmock.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _check_fields(
    kind: _Kind, version: str, obj: Mapping[str, Any], request: kmock.Request
) -> list[str]:
    """``fieldValidation=Strict``: unknown fields are a BadRequest; ``Warn``: warnings.
    Without the parameter nothing is checked (the API server would warn)."""
    mode = request.params.get("fieldValidation", "")
    if mode not in ("Strict", "Warn"):
        return []
    unknown = [
        f'unknown field "{field}"' for field in openapi.unknown_fields(kind.served(version), obj)
    ]
    if unknown and mode == "Strict":
        name = kind.kind
        raise _bad_request(
            f'{name} in version "{version}" cannot be handled as a {name}: strict decoding'
            f" error: {', '.join(unknown)}"
        )
    return unknown


def _dry_run(request: kmock.Request) -> bool:
    return "dryRun" in request.params


def _check_decodable(kind: _Kind, version: str, body: Mapping[str, Any]) -> None:
    """A body the API server could not decode into the kind's Go type is a BadRequest."""
    why = builtin_validation.decode_error(kind.group, kind.plural, body)
    if why is not None:
        name = kind.kind
        raise _bad_request(f'{name} in version "{version}" cannot be handled as a {name}: {why}')


def _check_patched_decodable(
    kind: _Kind, request: kmock.Request, patched: Mapping[str, Any]
) -> None:
    """A patch whose result cannot be decoded is Invalid on ``patch``, with an empty kind
    and name, exactly as the API server words it."""
    why = builtin_validation.decode_error(kind.group, kind.plural, patched)
    if why is None:
        return
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == _STRATEGIC_PATCH:
        shown = builtin_validation.go_value(request.data)
    else:
        shown = json.dumps(patched, sort_keys=True, separators=(",", ":"))
    error = builtin_validation.undecodable_patch(shown, why)
    details = {"causes": [error.as_cause()]}
    raise _status(422, "Invalid", f' "" is invalid: {error.message}', details)


def _body_object(request: kmock.Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise _bad_request("the body of the request is not a JSON object")
    return request.data


def _patcher(request: kmock.Request) -> Callable[[Any], Any]:
    """A function applying the request's patch, chosen by the Content-Type header."""
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    patch = request.data
    if content_type == _APPLY_PATCH:
        raise _status(
            415,
            "UnsupportedMediaType",
            f"the sandbox API does not support server-side apply ({_APPLY_PATCH}); use"
            f" {_MERGE_PATCH}, {_STRATEGIC_PATCH} or {_JSON_PATCH}",
        )
    if content_type == _JSON_PATCH:
        if not isinstance(patch, list):
            raise _bad_request("json patch is not a list of operations")

        def apply_json_patch(obj: Any) -> Any:
            try:
                return jsonpatch.apply_patch(obj, patch)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise _status(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: {exc}",
                ) from exc

        return apply_json_patch
    if content_type in (_MERGE_PATCH, _STRATEGIC_PATCH):
        if not isinstance(patch, dict):
            raise _bad_request("the patch is not a JSON object")
        if content_type == _MERGE_PATCH:
            return lambda obj: merge_patch(obj, patch)
        return lambda obj: strategic_merge_patch(obj, patch)
    raise _status(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include:"
        f" {_JSON_PATCH}, {_MERGE_PATCH}, {_STRATEGIC_PATCH}, {_APPLY_PATCH}",
    )


def _parse_path(path: str) -> tuple[kmock.resource | None, str | None, str | None, str | None]:
    """(resource, namespace, name, subresource) of an API path, like the API server reads it.

    kmock 0.8 fails on ``/api/v1/namespaces`` and reads ``/api/v1/namespaces/NAME`` as a
    namespace, not as the Namespace object, so the emulator parses paths itself.
    """
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[1:]
    elif len(parts) >= 2 and parts[0] == "apis":
        group, rest = parts[1], parts[2:]
    else:
        return None, None, None, None
    version, rest = (rest[0], rest[1:]) if rest else (None, [])
    namespace: str | None = None
    if rest[:1] == ["namespaces"]:
        is_namespace_object = len(rest) <= 2 or (
            len(rest) == 3 and rest[2] in ("status", "finalize")
        )
        if not is_namespace_object:
            namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return _resource(group, version, plural), namespace, name, subresource


async def _parse_request(raw: aiohttp.web.BaseRequest, request_id: int) -> kmock.Request:
    body = await raw.read()
    text = body.decode("utf-8", errors="replace")
    data: Any = None
    if body:
        with contextlib.suppress(ValueError):
            data = json.loads(body)
    resource, namespace, name, subresource = _parse_path(raw.path)
    query = dict(raw.query)
    action: kmock.action | None = None
    if resource is not None:
        method = raw.method.upper()
        if method == "GET" and query.get("watch") in ("true", "1"):
            action = kmock.action.WATCH
        elif name is None:
            action = {"GET": kmock.action.LIST, "POST": kmock.action.CREATE}.get(method)
        else:
            action = {
                "GET": kmock.action.FETCH,
                "PATCH": kmock.action.UPDATE,
                "DELETE": kmock.action.DELETE,
            }.get(method)
    return kmock.Request(
        id=request_id,
        raw_request=raw,
        url=raw.url,
        method=raw.method,
        params=query,
        headers=dict(raw.headers),
        cookies=dict(raw.cookies),
        body=body,
        text=text,
        data=data,
        action=action,
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=subresource,
    )


@contextlib.asynccontextmanager
async def serve_api(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    crd_dir: pathlib.Path | None = None,
    event_ttl: float | None = 3600.0,
    request_log_size: int = 100_000,
) -> AsyncIterator[tuple[SandboxAPI, str]]:
    """Start the emulator over HTTP; yields (api, base_url like 'http://127.0.0.1:PORT').
    ``event_ttl`` and ``request_log_size`` bound what it keeps (see :class:`SandboxAPI`).

    The listener is aiohttp's low-level server rather than ``kmock.Server``: the latter also
    patches aiohttp's DNS resolution process-wide (and must be exited in LIFO order), which a
    long-running sandbox shared with kopf's own aiohttp client does not need.
    """
    api = SandboxAPI(event_ttl=event_ttl, request_log_size=request_log_size)
    if crd_dir is not None:
        api.load_crd_dir(crd_dir)
    async with api:
        server = aiohttp.web.Server(api.serve, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = aiohttp.web.TCPSite(runner, host, port)
            await site.start()
            actual_port = runner.addresses[0][1]
            yield api, f"http://{host}:{actual_port}"
        finally:
            api.close_watches()
            await runner.cleanup()
