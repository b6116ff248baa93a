"""Table output of the sandbox API: what ``kubectl get`` prints.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
server's ``meta.k8s.io/v1`` Table as it comes. Like the API server, custom resources get
a Name column and their CRD's ``additionalPrinterColumns`` (JSONPath evaluated on the
object, dates shown as ages), and the built-ins get Kubernetes' usual columns (Pods:
NAME READY STATUS RESTARTS AGE, Jobs: NAME STATUS COMPLETIONS DURATION AGE, …). Pure: the
caller passes ``now``.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Row = Callable[[Mapping[str, Any], datetime.datetime], list[Any]]

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although"
    " some resources may allow a client to request the generation of an appropriate name"
    " automatically. Name is primarily intended for creation idempotence and configuration"
    " definition. Cannot be updated. More info:"
    " https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
)


class JSONPathError(ValueError):
    """A printer column's JSONPath the sandbox cannot parse."""


def wants_table(accept: str) -> bool:
    """Whether an ``Accept`` header asks for a ``meta.k8s.io`` Table first."""
    first = accept.split(",")[0]
    params = dict(
        part.strip().split("=", 1) for part in first.split(";")[1:] if "=" in part.strip()
    )
    return params.get("as") == "Table" and params.get("g") == "meta.k8s.io"


# --- JSONPath, the subset printer columns use --------------------------------------------------

_TOKEN = re.compile(
    r"""\.\.(?P<deep>[A-Za-z0-9_\-]+)
      | \.(?P<field>[A-Za-z0-9_\-$]+)
      | \[\s*'(?P<quoted>[^']*)'\s*\]
      | \[\s*"(?P<dquoted>[^"]*)"\s*\]
      | \[\s*(?P<index>-?\d+)\s*\]
      | \[\s*\*\s*\]
      | \[\s*\?\(\s*@(?P<fpath>(?:\.[A-Za-z0-9_\-]+)+)\s*(?P<op>==|!=)\s*
            (?:"(?P<fdq>[^"]*)"|'(?P<fsq>[^']*)'|(?P<fraw>[^)\s]+))\s*\)\s*\]
    """,
    re.VERBOSE,
)


def _steps(expression: str) -> list[Callable[[list[Any]], list[Any]]]:
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[Callable[[list[Any]], list[Any]]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise JSONPathError(f"unrecognized JSONPath {expression!r} at {text[position:]!r}")
        position = match.end()
        groups = match.groupdict()
        key = groups["field"] or groups["quoted"] or groups["dquoted"]
        if key is not None:
            steps.append(functools.partial(_child, key))
        elif groups["deep"] is not None:
            steps.append(functools.partial(_descendants, groups["deep"]))
        elif groups["index"] is not None:
            steps.append(functools.partial(_index, int(groups["index"])))
        elif groups["fpath"] is not None:
            wanted = next((groups[g] for g in ("fdq", "fsq", "fraw") if groups[g] is not None), "")
            path = tuple(groups["fpath"].split(".")[1:])
            steps.append(functools.partial(_filter, path, wanted, groups["op"] == "!="))
        else:
            steps.append(_every)
    return steps


def _child(key: str, values: list[Any]) -> list[Any]:
    return [v[key] for v in values if isinstance(v, dict) and key in v]


def _descendants(key: str, values: list[Any]) -> list[Any]:
    return [x for v in values for x in _deep(v, key)]


def _filter(path: tuple[str, ...], wanted: str, negate: bool, values: list[Any]) -> list[Any]:
    return [
        item
        for v in values
        if isinstance(v, list)
        for item in v
        if _get(item, path) is not None and (_text(_get(item, path)) == wanted) != negate
    ]


def _every(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list):
            out.extend(v)
        elif isinstance(v, dict):
            out.extend(v.values())
    return out


def _deep(value: Any, key: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict):
        if key in value:
            found.append(value[key])
        for sub in value.values():
            found.extend(_deep(sub, key))
    elif isinstance(value, list):
        for sub in value:
            found.extend(_deep(sub, key))
    return found


def _index(index: int, values: list[Any]) -> list[Any]:
    out = []
    for value in values:
        if isinstance(value, list) and -len(value) <= index < len(value):
            out.append(value[index])
    return out


def _get(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def jsonpath(expression: str, obj: Any) -> list[Any]:
    """Every value ``expression`` (``.status.conditions[?(@.type=="Ready")].status``) selects
    in ``obj``; missing keys select nothing, as with the API server's ``AllowMissingKeys``."""
    values = [obj]
    for step in _steps(expression):
        values = step(values)
    return values


# --- cells ---------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """A duration as Kubernetes prints ages: ``45s``, ``5m3s``, ``3h``, ``2d4h``, ``3y``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def age(value: Any, now: datetime.datetime) -> str:
    """The age of a timestamp, ``<unknown>`` when there is none (as ``kubectl get`` shows)."""
    when = _parse_time(value)
    return "<unknown>" if when is None else human_duration((now - when).total_seconds())


def _cell(column_type: str, value: Any, now: datetime.datetime) -> Any:
    """A CRD printer column's cell from the first value its JSONPath selected."""
    if column_type == "string":
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"))
        return _text(value)
    if column_type == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return int(value)
    if column_type == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        return age(value, now) if isinstance(value, str) else None
    return None


# --- columns -------------------------------------------------------------------------------


def _column(
    name: str, kind: str = "string", description: str = "", priority: int = 0, fmt: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_NAME = _column("Name", fmt="name", description=_NAME_DOC)
_AGE = _column("Age", description=_AGE_DOC)


def custom_columns(printer_columns: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Table columns of a CRD version: Name, then its ``additionalPrinterColumns``."""
    return [
        _NAME,
        *(
            _column(
                str(column["name"]),
                str(column.get("type", "string")),
                str(column.get("description", "")),
                int(column.get("priority", 0)),
                str(column.get("format", "")),
            )
            for column in printer_columns
        ),
    ]


def custom_row(
    printer_columns: Sequence[Mapping[str, Any]], obj: Mapping[str, Any], now: datetime.datetime
) -> list[Any]:
    """One custom resource's cells for :func:`custom_columns`."""
    cells: list[Any] = [_get(obj, ("metadata", "name"))]
    for column in printer_columns:
        try:
            found = jsonpath(str(column.get("jsonPath", "")), obj)
        except JSONPathError:
            found = []
        cells.append(_cell(str(column.get("type", "string")), found[0], now) if found else None)
    return cells


def _meta(obj: Mapping[str, Any], field: str) -> Any:
    return _get(obj, ("metadata", field))


def _created(obj: Mapping[str, Any], now: datetime.datetime) -> str:
    return age(_meta(obj, "creationTimestamp"), now)


def _pod_row(pod: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    status = pod.get("status") or {}
    containers = _get(pod, ("spec", "containers")) or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount") or 0) for cs in statuses)
    reason = status.get("reason") or status.get("phase") or ""
    running = False
    for cs in reversed(statuses):
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            terminated = state["terminated"] or {}
            if terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Signal:{terminated['signal']}"
            else:
                reason = f"ExitCode:{terminated.get('exitCode', 0)}"
        elif cs.get("ready") and "running" in state:
            running = True
    if reason == "Completed" and running:
        reason = "Running"
    if _meta(pod, "deletionTimestamp"):
        reason = "Terminating"
    return [
        _meta(pod, "name"),
        f"{ready}/{len(containers)}",
        reason,
        str(restarts),
        _created(pod, now),
        status.get("podIP") or "<none>",
        _get(pod, ("spec", "nodeName")) or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _has_condition(obj: Mapping[str, Any], kind: str) -> bool:
    conditions = _get(obj, ("status", "conditions")) or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _containers(template_spec: Mapping[str, Any] | None) -> tuple[str, str]:
    containers = (template_spec or {}).get("containers") or []
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names or "<none>", images or "<none>"


def _selector_text(selector: Mapping[str, Any] | None) -> str:
    if not selector:
        return "<none>"
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        values = ",".join(expression.get("values") or [])
        operator = str(expression.get("operator", "")).lower()
        key = expression.get("key")
        if operator in ("in", "notin"):
            terms.append(f"{key} {operator} ({values})")
        elif operator == "exists":
            terms.append(str(key))
        else:
            terms.append(f"!{key}")
    return ",".join(terms) or "<none>"


def _job_row(job: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    if _has_condition(job, "Complete"):
        state = "Complete"
    elif _has_condition(job, "Failed"):
        state = "Failed"
    elif _meta(job, "deletionTimestamp"):
        state = "Terminating"
    elif _has_condition(job, "SuccessCriteriaMet"):
        state = "SuccessCriteriaMet"
    elif _has_condition(job, "FailureTarget"):
        state = "FailureTarget"
    elif spec.get("suspend"):
        state = "Suspended"
    else:
        state = "Running"
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    else:
        parallelism = int(spec.get("parallelism") or 0)
        completions = f"{succeeded}/1" + (f" of {parallelism}" if parallelism > 1 else "")
    started = _parse_time(status.get("startTime"))
    finished = _parse_time(status.get("completionTime"))
    duration = ""
    if started is not None:
        duration = human_duration(((finished or now) - started).total_seconds())
    names, images = _containers(_get(spec, ("template", "spec")))
    return [
        _meta(job, "name"),
        state,
        completions,
        duration,
        _created(job, now),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _deployment_row(deployment: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    names, images = _containers(_get(spec, ("template", "spec")))
    return [
        _meta(deployment, "name"),
        f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas') or 0)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        _created(deployment, now),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _replicaset_row(rs: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    spec = rs.get("spec") or {}
    status = rs.get("status") or {}
    names, images = _containers(_get(spec, ("template", "spec")))
    return [
        _meta(rs, "name"),
        int(spec.get("replicas") or 0),
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        _created(rs, now),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _service_row(service: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    spec = service.get("spec") or {}
    service_type = spec.get("type") or "ClusterIP"
    ports = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        if port.get("nodePort"):
            ports.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            ports.append(f"{port.get('port')}/{protocol}")
    ingress = _get(service, ("status", "loadBalancer", "ingress")) or []
    external = [str(i.get("ip") or i.get("hostname")) for i in ingress] + list(
        spec.get("externalIPs") or []
    )
    if external:
        external_text = ",".join(external)
    else:
        external_text = "<pending>" if service_type == "LoadBalancer" else "<none>"
    selector = spec.get("selector") or {}
    return [
        _meta(service, "name"),
        service_type,
        spec.get("clusterIP") or "<none>",
        external_text,
        ",".join(ports) or "<none>",
        _created(service, now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _event_row(event: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    regarding = event.get("involvedObject") or event.get("regarding") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("deprecatedLastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or _meta(event, "creationTimestamp")
    )
    first = event.get("firstTimestamp") or event.get("deprecatedFirstTimestamp") or last
    count = int(event.get("count") or event.get("deprecatedCount") or 1)
    last_seen = age(last, now)
    if count > 1:
        last_seen = f"{last_seen} (x{count} over {age(first, now)})"
    source = event.get("source") or {}
    source_text = event.get("reportingController") or source.get("component") or ""
    return [
        last_seen,
        event.get("type") or "",
        event.get("reason") or "",
        f"{str(regarding.get('kind', '')).lower()}/{regarding.get('name', '')}",
        str(event.get("message") or event.get("note") or "").strip(),
        regarding.get("fieldPath") or "",
        source_text,
        age(first, now),
        count,
        _meta(event, "name"),
    ]


def _secret_row(secret: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    data = len(secret.get("data") or {}) + len(secret.get("stringData") or {})
    return [_meta(secret, "name"), secret.get("type") or "Opaque", data, _created(secret, now)]


def _configmap_row(cm: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    data = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [_meta(cm, "name"), data, _created(cm, now)]


def _namespace_row(ns: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [_meta(ns, "name"), _get(ns, ("status", "phase")) or "", _created(ns, now)]


def _service_account_row(sa: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [_meta(sa, "name"), len(sa.get("secrets") or []), _created(sa, now)]


def _lease_row(lease: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    holder = _get(lease, ("spec", "holderIdentity")) or ""
    return [_meta(lease, "name"), holder, _created(lease, now)]


def _default_row(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [_meta(obj, "name"), _meta(obj, "creationTimestamp")]


_WIDE_CONTAINERS = (
    _column("Containers", description="Names of each container in the template.", priority=1),
    _column(
        "Images", description="Images referenced by each container in the template.", priority=1
    ),
    _column("Selector", description="Label selector of the controlled pods.", priority=1),
)
_EVENT_COLUMNS = [
    _column("Last Seen", description="Time of the last occurrence of the event."),
    _column("Type", description="Type of this event (Normal, Warning)."),
    _column("Reason", description="Why the action was taken, in short."),
    _column("Object", description="The object this event is about."),
    _column("Message", description="A human-readable description of the status."),
    _column("Subobject", description="The field of the object involved.", priority=1),
    _column("Source", description="The component reporting this event.", priority=1),
    _column("First Seen", description="Time of the first occurrence.", priority=1),
    _column("Count", "integer", "The number of times this event has occurred.", priority=1),
    _column("Name", fmt="name", description=_NAME_DOC, priority=1),
]
BUILTIN: dict[tuple[str, str], tuple[list[dict[str, Any]], Row]] = {
    ("", "pods"): (
        [
            _NAME,
            _column("Ready", description="The aggregate readiness state of this pod."),
            _column("Status", description="The aggregate status of the containers."),
            _column("Restarts", description="The number of times the containers restarted."),
            _AGE,
            _column("IP", description="IP address allocated to the pod.", priority=1),
            _column("Node", description="Name of the node the pod is assigned to.", priority=1),
            _column("Nominated Node", description="Node nominated by the scheduler.", priority=1),
            _column("Readiness Gates", description="Pod readiness gates.", priority=1),
        ],
        _pod_row,
    ),
    ("batch", "jobs"): (
        [
            _NAME,
            _column("Status", description="Status of the job."),
            _column("Completions", description="The desired number of successful pods."),
            _column("Duration", description="Time required to complete the job."),
            _AGE,
            *_WIDE_CONTAINERS,
        ],
        _job_row,
    ),
    ("apps", "deployments"): (
        [
            _NAME,
            _column("Ready", description="Number of the pod with ready state."),
            _column("Up-to-date", "integer", "Total number of updated replicas."),
            _column("Available", "integer", "Total number of available replicas."),
            _AGE,
            *_WIDE_CONTAINERS,
        ],
        _deployment_row,
    ),
    ("apps", "replicasets"): (
        [
            _NAME,
            _column("Desired", "integer", "Number of desired pods."),
            _column("Current", "integer", "Number of actually running pods."),
            _column("Ready", "integer", "Number of pods with a Ready condition."),
            _AGE,
            *_WIDE_CONTAINERS,
        ],
        _replicaset_row,
    ),
    ("", "services"): (
        [
            _NAME,
            _column("Type", description="The type of the service."),
            _column("Cluster-IP", description="The cluster IP of the service."),
            _column("External-IP", description="External IPs of the service."),
            _column("Port(s)", description="The ports the service exposes."),
            _AGE,
            _column("Selector", description="The pods this service routes to.", priority=1),
        ],
        _service_row,
    ),
    ("", "events"): (_EVENT_COLUMNS, _event_row),
    ("events.k8s.io", "events"): (_EVENT_COLUMNS, _event_row),
    ("", "secrets"): (
        [
            _NAME,
            _column("Type", description="The type of the secret."),
            _column("Data", "integer", "The number of keys in the secret."),
            _AGE,
        ],
        _secret_row,
    ),
    ("", "configmaps"): (
        [_NAME, _column("Data", "integer", "The number of keys in the config map."), _AGE],
        _configmap_row,
    ),
    ("", "namespaces"): (
        [_NAME, _column("Status", description="The phase of the namespace."), _AGE],
        _namespace_row,
    ),
    ("", "serviceaccounts"): (
        [_NAME, _column("Secrets", "integer", "The number of secrets listed."), _AGE],
        _service_account_row,
    ),
    ("coordination.k8s.io", "leases"): (
        [_NAME, _column("Holder", description="The holder of the lease."), _AGE],
        _lease_row,
    ),
}
_DEFAULT_COLUMNS = [_NAME, _column("Created At", "date", _AGE_DOC)]


def table(
    columns: list[dict[str, Any]],
    objects: Iterable[tuple[Mapping[str, Any], list[Any]]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of (object, cells) rows; each row's ``object`` is the
    object's metadata (``includeObject=Metadata``, the default), the whole object, or none."""
    rows = []
    for obj, cells in objects:
        row: dict[str, Any] = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }


def columns_and_row(
    group: str, plural: str, printer_columns: Sequence[Mapping[str, Any]] | None
) -> tuple[list[dict[str, Any]], Row]:
    """The columns of a resource and the function computing one object's cells: the CRD's
    printer columns if it is a custom resource, else the built-in's usual ones."""
    if printer_columns is not None:
        if not printer_columns:
            printer_columns = [
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
            ]
        return (
            custom_columns(printer_columns),
            lambda obj, now: custom_row(printer_columns, obj, now),
        )
    return BUILTIN.get((group, plural), (_DEFAULT_COLUMNS, _default_row))
