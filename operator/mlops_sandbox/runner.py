"""The sandbox's workload runner: the Job and Deployment controllers, the kubelet and
kube-proxy, as local processes.

The runner lists and watches Pods, Jobs, Deployments and Services over HTTP (one
:class:`Informer` each), like controllers do. Deployments are run by
:mod:`mlops_sandbox.deployments` (each pod on its own ``127.0.X.Y`` address from
:class:`AddressPool`), Services forwarded by :mod:`mlops_sandbox.services`; this
module has the Jobs, the shared kubelet half (:class:`PodProcess`) and the :class:`Runner`.

The runner runs each Job's pod template the way the Job controller and a kubelet would: it
creates the Pod object, resolves the container's environment from Secrets, ConfigMaps and
the downward API, runs the container as a local process, and writes Pod and Job status
through the ``/status`` subresources. Only the runtime image's entrypoint exists here: a
container whose command is ``mlops-operator …`` runs as ``python -m mlops_operator …``; any
other command fails to start.

Deliberate simplifications, each one of a real behaviour the operator does not depend on:

- One pod at a time per Job: ``completions`` and ``parallelism`` above 1 are not supported.
- ``restartPolicy: OnFailure`` is treated like ``Never``: a failed container makes a new pod
  rather than a restart in place, so ``failed`` counts pods, not container restarts.
- Retry backoff is short (0.2 s doubling, capped at 2 s by default) where the real controller
  waits 10 s doubling, capped at 6 minutes, so failure paths are testable in seconds. Like the
  real one, it paces every failed pod in a row, also those podFailurePolicy ignores.
- A pod has exactly one container and no init containers (anything else fails with
  ``CreateContainerError``); resource limits are ignored, and so are a Job pod's probes.
  An emptyDir volume is a per-pod directory, and environment values naming a path under its
  mountPath are rewritten to it (a process cannot have its own ``/cache``); other volume
  types are ignored.
  ``workingDir`` and ``terminationMessagePath`` name paths inside an image, so the process
  runs in a per-pod directory and writes its termination message to the file named by
  ``MLOPS_TERMINATION_MESSAGE_PATH``.
- ``CreateContainerError`` fails the pod (a kubelet would keep retrying it), so a Job with a
  command the sandbox cannot run fails after its backoff limit instead of hanging.
- Suspended Jobs are not started; suspending a running Job does not stop it. No Events are
  posted; ``successPolicy`` and indexed Jobs are not implemented; podFailurePolicy rules
  match on exit codes only (there are no disruptions here).

The pure functions (environment resolution, status documents, backoff, termination
messages) carry the decisions; :class:`Runner` only moves data between them, the API and
the processes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import pathlib
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from mlops_sandbox.deployments import DeploymentController

logger = logging.getLogger(__name__)

Json = dict[str, Any]

RUNTIME_COMMAND = "mlops-operator"
"""The only command the sandbox can run: the runtime image's entrypoint."""

TERMINATION_MESSAGE_ENV = "MLOPS_TERMINATION_MESSAGE_PATH"
"""Where a pod's process writes its termination message (instead of /dev/termination-log)."""

NODE_NAME = "sandbox"
"""``spec.nodeName`` of every pod the runner runs."""

POD_IP = "127.0.0.1"
"""The node's address (``status.hostIP`` of every pod), and the pod IP of Job pods: their
processes share the host's loopback. Deployment pods get addresses of their own."""

MAX_TERMINATION_MESSAGE_BYTES = 4096
"""The kubelet reads at most this much of a termination message file."""

FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
"""``FallbackToLogsOnError`` uses the log tail, at most this many lines and bytes."""

DEFAULT_BACKOFF_LIMIT = 6
"""``spec.backoffLimit`` when a Job does not set it, as in Kubernetes."""

DEFAULT_GRACE_SECONDS = 30
"""``terminationGracePeriodSeconds`` when a pod does not set it, as in Kubernetes."""

# Condition types, reasons and messages exactly as the Job controller writes them, so code
# that matches on them behaves the same against the sandbox and a real cluster.
COND_SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
COND_COMPLETE = "Complete"
COND_FAILURE_TARGET = "FailureTarget"
COND_FAILED = "Failed"
REASON_COMPLETIONS_REACHED = "CompletionsReached"
REASON_BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
REASON_DEADLINE_EXCEEDED = "DeadlineExceeded"
JOB_MESSAGES = {
    REASON_COMPLETIONS_REACHED: "Reached expected number of succeeded pods",
    REASON_BACKOFF_LIMIT_EXCEEDED: "Job has reached the specified backoff limit",
    REASON_DEADLINE_EXCEEDED: "Job was active longer than specified deadline",
    REASON_POD_FAILURE_POLICY: "Container failed with an exit code matching a FailJob rule",
}

# Container waiting reasons, as the kubelet reports them.
WAITING_CONTAINER_CREATING = "ContainerCreating"
WAITING_CONFIG_ERROR = "CreateContainerConfigError"
WAITING_CREATE_ERROR = "CreateContainerError"

# The alphabet and length the API server uses for generateName suffixes.
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX_LENGTH = 5
_MAX_GENERATED_BASE = 63 - _NAME_SUFFIX_LENGTH

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_VAR_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


# --------------------------------------------------------------------------------------------
# Pure logic: time, names, environment, commands, termination messages, status documents.
# --------------------------------------------------------------------------------------------


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes timestamps."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime.datetime:
    """The inverse of :func:`format_time`; also accepts fractional seconds and offsets."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def pod_name_for(job_name: str, suffix: str | None = None) -> str:
    """``<job>-<5 chars>``, truncated like the API server truncates ``generateName``."""
    if suffix is None:
        suffix = "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(_NAME_SUFFIX_LENGTH))
    return f"{job_name}-"[:_MAX_GENERATED_BASE] + suffix


class ContainerConfigError(Exception):
    """The container's configuration cannot be resolved yet (a Secret is missing).

    The kubelet keeps the pod Pending with ``CreateContainerConfigError`` and retries.
    """


class ContainerCreateError(Exception):
    """The container cannot be created at all; in the sandbox the pod fails."""


@dataclasses.dataclass(frozen=True)
class PodFacts:
    """What the downward API can expose of a pod."""

    name: str
    namespace: str
    uid: str = ""
    pod_ip: str = POD_IP
    host_ip: str = POD_IP
    node_name: str = NODE_NAME
    service_account: str = "default"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


Sources = Mapping[tuple[str, str], Mapping[str, str] | None]
"""Looked-up Secrets and ConfigMaps: ``(kind, name)`` → decoded data, ``None`` if absent.
``kind`` is ``"secret"`` or ``"configmap"`` (the words the kubelet's messages use)."""


def referenced_sources(container: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every Secret and ConfigMap the container's ``env`` and ``envFrom`` refer to."""
    refs: set[tuple[str, str]] = set()
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            refs.add(("secret", source["secretRef"].get("name", "")))
        if "configMapRef" in source:
            refs.add(("configmap", source["configMapRef"].get("name", "")))
    for var in container.get("env") or []:
        value_from = var.get("valueFrom") or {}
        if "secretKeyRef" in value_from:
            refs.add(("secret", value_from["secretKeyRef"].get("name", "")))
        if "configMapKeyRef" in value_from:
            refs.add(("configmap", value_from["configMapKeyRef"].get("name", "")))
    return refs


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's values, decoded: base64 ``data``, overlaid by plain ``stringData``.

    A real API server folds ``stringData`` into ``data`` on write; an emulator may not.
    """
    result: dict[str, str] = {}
    for key, encoded in (secret.get("data") or {}).items():
        try:
            result[key] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, TypeError):
            logger.warning("Secret key %r is not valid base64 UTF-8; skipped.", key)
    result.update(secret.get("stringData") or {})
    return result


def configmap_data(configmap: Mapping[str, Any]) -> dict[str, str]:
    """A ConfigMap's ``data`` (``binaryData`` cannot become environment variables)."""
    return dict(configmap.get("data") or {})


def expand_references(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined variables are substituted, ``$$`` is ``$``,
    and references to undefined variables are left as they are."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _VAR_REFERENCE.sub(substitute, value)


def _field_ref(path: str, pod: PodFacts) -> str:
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account,
        "status.podIP": pod.pod_ip,
        "status.podIPs": pod.pod_ip,
        "status.hostIP": pod.host_ip,
        "status.hostIPs": pod.host_ip,
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        mapping = pod.labels if match.group(1) == "labels" else pod.annotations
        return mapping.get(match.group(2), "")
    raise ContainerCreateError(f"fieldRef {path!r} is not supported in the sandbox")


def resolve_env(
    container: Mapping[str, Any],
    pod: PodFacts,
    sources: Sources,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ``base``, then ``envFrom``,
    then ``env`` in order (later entries win, ``$(VAR)`` refers to earlier ones).

    Raises :class:`ContainerConfigError` with the kubelet's message for a missing
    non-optional Secret, ConfigMap or key, and :class:`ContainerCreateError` for what the
    sandbox cannot provide (``resourceFieldRef``, unsupported ``fieldRef`` paths).
    """
    env: dict[str, str] = dict(base or {})
    namespace = pod.namespace

    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            kind, ref = "secret", source["secretRef"]
        elif "configMapRef" in source:
            kind, ref = "configmap", source["configMapRef"]
        else:
            continue
        data = sources.get((kind, ref.get("name", "")))
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'{kind} "{ref.get("name", "")}" not found')
        for key, value in data.items():
            # The kubelet skips keys that are not valid variable names (and records an event).
            if _ENV_NAME.match(prefix + key):
                env[prefix + key] = value

    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = expand_references(var.get("value", ""), env)
            continue
        value_from = var["valueFrom"]
        if "fieldRef" in value_from:
            env[name] = _field_ref(value_from["fieldRef"].get("fieldPath", ""), pod)
        elif "secretKeyRef" in value_from or "configMapKeyRef" in value_from:
            if "secretKeyRef" in value_from:
                kind, ref, title = "secret", value_from["secretKeyRef"], "Secret"
            else:
                kind, ref, title = "configmap", value_from["configMapKeyRef"], "ConfigMap"
            source_name, key = ref.get("name", ""), ref.get("key", "")
            data = sources.get((kind, source_name))
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind} "{source_name}" not found')
            if key not in data:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(
                    f"couldn't find key {key} in {title} {namespace}/{source_name}"
                )
            env[name] = data[key]
        else:
            raise ContainerCreateError(
                f"env {name}: valueFrom {sorted(value_from)} is not supported in the sandbox"
            )
    return env


def base_env(
    home: pathlib.Path,
    hostname: str,
    inherited: Mapping[str, str],
    *,
    virtual_env: str | None = None,
) -> dict[str, str]:
    """The environment every pod process starts from: just enough for Python to import the
    package (``PATH``, ``PYTHONPATH``, ``VIRTUAL_ENV`` of the runner), nothing else of the
    runner's (in particular no ``AWS_*``): a pod gets only what its spec gives it."""
    env = {
        "PATH": inherited.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "HOSTNAME": hostname,
        "LANG": inherited.get("LANG", "C.UTF-8"),
        # The log file is read while the process runs (kubectl logs -f); don't sit on output.
        "PYTHONUNBUFFERED": "1",
    }
    if inherited.get("PYTHONPATH"):
        env["PYTHONPATH"] = inherited["PYTHONPATH"]
    if virtual_env:
        env["VIRTUAL_ENV"] = virtual_env
    return env


def map_volume_paths(env: Mapping[str, str], mounts: Mapping[str, str]) -> dict[str, str]:
    """Point environment values that name a path inside an emptyDir mount at the pod's own
    directory for it: a local process cannot have its own ``/cache``, but a program that is
    told ``MLOPS_CACHE_DIR=/cache`` then writes where a pod's emptyDir would be."""
    result = dict(env)
    for key, value in env.items():
        for mount_path, local in mounts.items():
            root = mount_path.rstrip("/") or "/"
            if value == root or value.startswith(root.rstrip("/") + "/"):
                result[key] = local + value[len(root) :]
                break
    return result


def container_argv(
    container: Mapping[str, Any], env: Mapping[str, str], entrypoint: Sequence[str]
) -> list[str]:
    """The process to run for ``container``: ``command`` + ``args`` (``$(VAR)``-expanded) with
    the ``mlops-operator`` executable replaced by ``entrypoint``.

    Raises :class:`ContainerCreateError` for anything that is not ``mlops-operator``.
    """
    command = [str(part) for part in container.get("command") or []]
    args = [str(part) for part in container.get("args") or []]
    argv = [expand_references(part, env) for part in command + args]
    if not argv or pathlib.PurePosixPath(argv[0]).name != RUNTIME_COMMAND:
        # Unexpanded: the message goes into pod status, and $(VAR) may hold a Secret's value.
        shown = " ".join(command + args) if argv else "(the image's default command)"
        raise ContainerCreateError(
            f"the sandbox only runs {RUNTIME_COMMAND!r} commands (the runtime image's "
            f"entrypoint); cannot run: {shown}"
        )
    return [*entrypoint, *argv[1:]]


def unsupported_pod_features(spec: Mapping[str, Any]) -> str | None:
    """Why the sandbox cannot run a pod ``spec``, or ``None`` if it can."""
    containers = spec.get("containers") or []
    if len(containers) != 1:
        return f"the sandbox runs pods with exactly one container, not {len(containers)}"
    if spec.get("initContainers"):
        return "the sandbox does not run init containers"
    return None


ADDRESS_POOL_SIZE = 256 * 254
"""How many pod addresses there are: ``127.0.X.Y`` for X in 0..255 and Y in 1..254."""


def pod_address(index: int) -> str:
    """The ``index``-th pod address of the pool (``127.0.0.1`` is index 0; never handed out)."""
    x, y = divmod(index % ADDRESS_POOL_SIZE, 254)
    return f"127.0.{x}.{y + 1}"


class AddressPool:
    """Loopback addresses for pods, one per running pod, like a CNI plugin's IPAM.

    Linux routes all of 127.0.0.0/8 to the loopback interface, so each pod's process can
    bind its own address and replicas can share a port. Addresses are handed out round-robin
    from ``start`` (a random start makes two runners on one host unlikely to collide, and a
    freed address is not reused at once, so a late connection does not reach a new pod).
    """

    def __init__(self, start: int = 0) -> None:
        self._next = start % ADDRESS_POOL_SIZE
        self._used: set[str] = set()

    def allocate(self, usable: Callable[[str], bool] | None = None) -> str:
        """A free address for which ``usable`` (e.g. "its ports can be bound") holds."""
        for offset in range(ADDRESS_POOL_SIZE):
            index = (self._next + offset) % ADDRESS_POOL_SIZE
            address = pod_address(index)
            if address == POD_IP or address in self._used:
                continue
            if usable is not None and not usable(address):
                continue
            self._used.add(address)
            self._next = index + 1
            return address
        raise RuntimeError("no free loopback address for a pod")

    def release(self, address: str) -> None:
        """Return ``address`` to the pool."""
        self._used.discard(address)

    def in_use(self) -> frozenset[str]:
        """The addresses handed out and not released."""
        return frozenset(self._used)


def exit_code_of(returncode: int) -> int:
    """A process's exit code as a container runtime reports it: 128 + N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def log_tail(
    data: bytes, *, max_lines: int = FALLBACK_LOG_LINES, max_bytes: int = FALLBACK_LOG_BYTES
) -> str:
    """The end of a log, at most ``max_lines`` lines and ``max_bytes`` bytes."""
    lines = data.splitlines(keepends=True)[-max_lines:]
    tail = b"".join(lines)[-max_bytes:]
    return tail.decode("utf-8", errors="replace")


def termination_message(
    file_content: bytes, log: bytes, *, policy: str | None, exit_code: int
) -> str:
    """What the kubelet puts in ``state.terminated.message``: the termination message file
    (at most 4096 bytes); with ``FallbackToLogsOnError``, the log tail when that file is
    empty and the container failed."""
    message = file_content[:MAX_TERMINATION_MESSAGE_BYTES].decode("utf-8", errors="replace")
    if not message and policy == "FallbackToLogsOnError" and exit_code != 0:
        return log_tail(log)
    return message


def backoff_delay(failures: int, *, base: float, cap: float) -> float:
    """Delay before the next pod after ``failures`` failed pods: ``base`` doubling, capped."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** (failures - 1)))


def waiting_state(reason: str, message: str | None = None) -> Json:
    """A container ``state`` of a container that has not started."""
    waiting: Json = {"reason": reason}
    if message:
        waiting["message"] = message
    return {"waiting": waiting}


def running_state(started_at: str) -> Json:
    """A container ``state`` of a running container."""
    return {"running": {"startedAt": started_at}}


def terminated_state(exit_code: int, started_at: str, finished_at: str, message: str) -> Json:
    """A container ``state`` of an exited container."""
    terminated: Json = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if message:
        terminated["message"] = message
    return {"terminated": terminated}


def pod_status(
    *,
    phase: str,
    container: Mapping[str, Any],
    state: Json,
    start_time: str,
    now: str,
    pod_ip: str = POD_IP,
    ready: bool | None = None,
    started: bool | None = None,
    restart_count: int = 0,
    last_state: Json | None = None,
    previous_conditions: Sequence[Json] = (),
) -> Json:
    """A pod's whole ``status`` as a kubelet reports it for a one-container pod.

    ``ready`` and ``started`` default to whether the container runs (a pod without probes);
    a condition whose status is the same as in ``previous_conditions`` keeps its
    ``lastTransitionTime``. ``last_state`` is the previous container's ``state`` after a
    restart (written only when given).
    """
    running = "running" in state
    finished = phase in ("Succeeded", "Failed")
    is_ready = running if ready is None else ready
    previous = {c.get("type"): c for c in previous_conditions}

    def condition(kind: str, ok: bool, reason: str | None = None) -> Json:
        status = "True" if ok else "False"
        before = previous.get(kind) or {}
        cond: Json = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": before.get("lastTransitionTime", now)
            if before.get("status") == status
            else now,
        }
        if reason:
            cond["reason"] = reason
        return cond

    not_ready_reason = "PodCompleted" if finished else "ContainersNotReady"
    status: Json = {
        "phase": phase,
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "qosClass": "BestEffort",
        "conditions": [
            condition("PodScheduled", True),
            condition("Initialized", True, "PodCompleted" if finished else None),
            condition("ContainersReady", is_ready, None if is_ready else not_ready_reason),
            condition("Ready", is_ready, None if is_ready else not_ready_reason),
        ],
        "containerStatuses": [
            {
                "name": container.get("name", ""),
                "image": container.get("image", ""),
                "imageID": "",
                "containerID": "",
                "ready": is_ready,
                "started": running if started is None else started,
                "restartCount": restart_count,
                "state": state,
            }
        ],
    }
    if last_state is not None:
        status["containerStatuses"][0]["lastState"] = last_state
    return status


def pod_failure_action(
    policy: Mapping[str, Any] | None, container: str | None, exit_code: int | None
) -> str:
    """The podFailurePolicy action for a failed pod: the first rule whose ``onExitCodes``
    matches decides (``FailJob``, ``Ignore`` or ``Count``); no match counts the failure.
    ``onPodConditions`` rules never match: the sandbox has no disruptions."""
    for rule in (policy or {}).get("rules") or []:
        codes = rule.get("onExitCodes")
        if not codes or exit_code is None:
            continue
        if codes.get("containerName") not in (None, container):
            continue
        listed = exit_code in (codes.get("values") or [])
        if listed == (codes.get("operator") == "In"):
            return str(rule.get("action", "Count"))
    return "Count"


def job_condition(kind: str, reason: str, now: str) -> Json:
    """A True Job condition with the Job controller's message for ``reason``."""
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": JOB_MESSAGES[reason],
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def with_condition(conditions: Sequence[Json], new: Json) -> list[Json]:
    """``conditions`` with ``new`` replacing any condition of the same type."""
    return [c for c in conditions if c.get("type") != new["type"]] + [new]


def job_counts(*, active: int, ready: int, succeeded: int, failed: int) -> Json:
    """The counters of a Job's status as a merge patch: zero counters are removed, as the
    API server omits them (``ready`` is always present)."""
    return {
        "active": active or None,
        "ready": ready,
        "succeeded": succeeded or None,
        "failed": failed or None,
    }


def job_finish_patches(status: Mapping[str, Any], reason: str, now: str) -> list[Json]:
    """The two status patches that end a Job, in the order the controller writes them:
    ``SuccessCriteriaMet`` then ``Complete`` (with ``completionTime``), or ``FailureTarget``
    then ``Failed``."""
    conditions: list[Json] = list(status.get("conditions") or [])
    if reason == REASON_COMPLETIONS_REACHED:
        first, final = COND_SUCCESS_CRITERIA_MET, COND_COMPLETE
    else:
        first, final = COND_FAILURE_TARGET, COND_FAILED
    conditions = with_condition(conditions, job_condition(first, reason, now))
    patches: list[Json] = [{"conditions": conditions}]
    conditions = with_condition(conditions, job_condition(final, reason, now))
    final_patch: Json = {"conditions": conditions}
    if final == COND_COMPLETE:
        final_patch["completionTime"] = now
    patches.append(final_patch)
    return patches


def job_finished(status: Mapping[str, Any]) -> bool:
    """Whether the Job has finished or is terminating towards a finish (no new pods)."""
    terminal = {COND_COMPLETE, COND_FAILED, COND_SUCCESS_CRITERIA_MET, COND_FAILURE_TARGET}
    return any(
        c.get("type") in terminal and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def job_finish_time(status: Mapping[str, Any]) -> datetime.datetime | None:
    """When the Job finished: ``completionTime``, or when it got its terminal condition."""
    if status.get("completionTime"):
        return parse_time(status["completionTime"])
    for cond in status.get("conditions") or []:
        if cond.get("type") in (COND_COMPLETE, COND_FAILED) and cond.get("status") == "True":
            return parse_time(cond["lastTransitionTime"])
    return None


# --------------------------------------------------------------------------------------------
# I/O: a minimal Kubernetes HTTP client.
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class _Relist(Exception):
    """The watch cannot continue from its resourceVersion: list again."""


class KubeClient:
    """Just the verbs the runner needs, over aiohttp; JSON in, JSON out."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Json | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Json:
        """Send one request and return the decoded JSON answer; raise :class:`ApiError`."""
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        async with self._session.request(
            method, self._base + path, data=data, params=params, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise ApiError(response.status, text)
            result: Json = json.loads(text) if text else {}
            return result

    async def get_or_none(self, path: str) -> Json | None:
        """GET, with ``None`` for 404."""
        try:
            return await self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def merge_patch(self, path: str, body: Json) -> Json:
        """A JSON merge patch (RFC 7386)."""
        return await self.request(
            "PATCH", path, body=body, content_type="application/merge-patch+json"
        )

    async def watch(self, path: str, resource_version: str | None) -> AsyncIterator[Json]:
        """Stream watch events until the server ends the stream."""
        params = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
        if resource_version:
            params["resourceVersion"] = resource_version
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._session.get(self._base + path, params=params, timeout=timeout) as response:
            if response.status >= 400:
                raise ApiError(response.status, await response.text())
            # Split lines by hand: StreamReader.readline() refuses lines over 64 KiB.
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)


ObjectName = tuple[str, str]
"""An object's namespace and name."""


def object_name(obj: Mapping[str, Any]) -> ObjectName:
    """``(namespace, name)`` of an object."""
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


class Informer:
    """A list + watch of one resource, kept in :attr:`cache`, as client-go's informers do.

    ``on_event(type, obj)`` is called after the cache changes, with ``ADDED``, ``MODIFIED``
    or ``DELETED``. After a watch error it lists again and reports what changed meanwhile in
    the same terms, an object deleted and created again under its name as DELETED + ADDED.
    """

    def __init__(
        self, client: KubeClient, path: str, on_event: Callable[[str, Json], None]
    ) -> None:
        self._client = client
        self._path = path
        self._on_event = on_event
        self.cache: dict[ObjectName, Json] = {}
        self.synced = asyncio.Event()
        self.version = 0
        """Bumped on every change of the cache, so readers can cache what they derive."""

    async def run(self) -> None:
        """List and watch until cancelled; an unreachable API is retried with backoff."""
        delay = 0.2
        while True:
            try:
                listing = await self._client.request("GET", self._path)
                version = (listing.get("metadata") or {}).get("resourceVersion")
                self._relisted(listing.get("items") or [])
                self.synced.set()
                delay = 0.2
                while True:  # a clean end of a watch stream is a server timeout: resume
                    async for event in self._client.watch(self._path, version):
                        kind, obj = event.get("type"), event.get("object") or {}
                        if kind == "ERROR":
                            raise _Relist(obj.get("message", "watch error"))
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            self._apply(kind, obj)
            except asyncio.CancelledError:
                raise
            except _Relist as e:
                logger.debug("Watch of %s: %s; listing again.", self._path, e)
            except Exception as e:  # the API restarting or unreachable: keep trying
                logger.warning("Watch of %s failed (%s); retrying in %.1fs.", self._path, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _relisted(self, items: Sequence[Json]) -> None:
        fresh = {object_name(obj): obj for obj in items}
        for key, cached in list(self.cache.items()):
            if key not in fresh:
                self._apply("DELETED", cached)
        for obj in items:
            self._apply("MODIFIED" if object_name(obj) in self.cache else "ADDED", obj)

    def _apply(self, kind: str, obj: Json) -> None:
        key = object_name(obj)
        cached = self.cache.get(key)
        if kind == "DELETED":
            if cached is not None and _uid(cached) != _uid(obj):
                return  # a stale deletion of an object replaced since
            self.cache.pop(key, None)
        else:
            if cached is not None and _uid(cached) != _uid(obj):
                self.cache.pop(key)
                self.version += 1
                self._on_event("DELETED", cached)
                kind = "ADDED"
            self.cache[key] = obj
        self.version += 1
        self._on_event(kind, obj)


# --------------------------------------------------------------------------------------------
# The kubelet half: one pod, one process.
# --------------------------------------------------------------------------------------------


async def create_owned_pod(
    client: KubeClient,
    namespace: str,
    *,
    prefix: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    owner: Mapping[str, str],
    spec: Json,
) -> Json | None:
    """Create a Pod ``<prefix>-<5 chars>`` controlled by ``owner``, drawing another suffix on
    a name clash as ``generateName`` does; ``None`` when the namespace is gone."""
    for _ in range(10):
        body: Json = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name_for(prefix),
                "namespace": namespace,
                "labels": dict(labels),
                "annotations": dict(annotations),
                "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": spec,
        }
        try:
            created: Json = await client.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", body=body
            )
        except ApiError as e:
            if e.status == 409:
                continue
            if e.status == 404:
                return None
            raise
        # An emulator may answer a create without the object: fall back to what was sent.
        return created if created.get("metadata", {}).get("name") else body
    raise RuntimeError(f"no free pod name for {owner['kind']} {namespace}/{owner['name']}")


@dataclasses.dataclass(frozen=True)
class PodResult:
    """How a pod ended."""

    succeeded: bool
    deadline_exceeded: bool = False
    container: str | None = None
    exit_code: int | None = None


def _pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


class PodProcess:
    """Runs one pod object as a local process, as a kubelet would, writing its status.

    Owns the pod's directory under the state dir: ``home/`` (``HOME`` and the working
    directory), ``container.log`` (stdout and stderr) and ``termination-log``.
    """

    def __init__(
        self,
        runner: Runner,
        pod: Json,
        on_running: Callable[[], Awaitable[None]] | None = None,
        *,
        pod_ip: str = POD_IP,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self._runner = runner
        self._pod = pod
        self._on_running = on_running
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.pod_ip = pod_ip
        self._extra_env = dict(extra_env or {})
        self._container: Json = (pod["spec"].get("containers") or [{}])[0]
        self.directory = runner.pod_directory(self.namespace, self.name)
        self._start_time = format_time(_now())
        self._last_status: Json | None = None
        self._conditions: list[Json] = []
        # What a restarting kubelet tracks; a Job's pod never restarts and has no probes, so
        # None means "as the container's state says".
        self._ready: bool | None = None
        self._started: bool | None = None
        self.restart_count = 0
        self._last_state: Json | None = None

    @property
    def log_path(self) -> pathlib.Path:
        """Where the container's stdout and stderr go."""
        return self.directory / "container.log"

    async def run(self, deadline: float | None) -> PodResult:
        """Run the pod to completion, or until ``deadline`` (event-loop time) passes."""
        unsupported = unsupported_pod_features(self._pod["spec"])
        if unsupported is not None:
            await self._write_status("Failed", waiting_state(WAITING_CREATE_ERROR, unsupported))
            return PodResult(succeeded=False)
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                env = await self._resolve_env()
                argv = container_argv(self._container, env, self._runner.entrypoint)
        except ContainerCreateError as e:
            await self._write_status("Failed", waiting_state(WAITING_CREATE_ERROR, str(e)))
            return PodResult(succeeded=False)
        except TimeoutError:
            if not timeout.expired():
                raise
            return PodResult(succeeded=False, deadline_exceeded=True)
        return await self._run_process(argv, env, deadline)

    async def _resolve_env(self) -> dict[str, str]:
        meta = self._pod["metadata"]
        facts = PodFacts(
            name=self.name,
            namespace=self.namespace,
            uid=meta.get("uid", ""),
            pod_ip=self.pod_ip,
            service_account=self._pod["spec"].get("serviceAccountName", "default"),
            labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {},
        )
        home = self.directory / "home"
        home.mkdir(parents=True, exist_ok=True)
        virtual_env = sys.prefix if sys.prefix != sys.base_prefix else None
        base = base_env(home, self.name, os.environ, virtual_env=virtual_env)
        await self._write_status("Pending", waiting_state(WAITING_CONTAINER_CREATING))
        while True:
            sources = await self._runner.fetch_sources(
                self.namespace, referenced_sources(self._container)
            )
            try:
                env = resolve_env(self._container, facts, sources, base)
            except ContainerConfigError as e:
                # Like the kubelet: stay Pending, and try again until the Secret appears.
                await self._write_status("Pending", waiting_state(WAITING_CONFIG_ERROR, str(e)))
                await asyncio.sleep(self._runner.config_retry_seconds)
                continue
            env = map_volume_paths(env, self._local_mounts())
            env[TERMINATION_MESSAGE_ENV] = str(self.directory / "termination-log")
            env.update(self._extra_env)
            return env

    def _local_mounts(self) -> dict[str, str]:
        """emptyDir mounts of the container as per-pod directories: ``{mountPath: dir}``."""
        empty_dirs = {v["name"] for v in self._pod["spec"].get("volumes") or [] if "emptyDir" in v}
        mounts: dict[str, str] = {}
        for mount in self._container.get("volumeMounts") or []:
            if mount.get("name") in empty_dirs and mount.get("mountPath"):
                local = self.directory / "volumes" / str(mount["name"])
                local.mkdir(parents=True, exist_ok=True)
                mounts[str(mount["mountPath"])] = str(local)
        return mounts

    async def _start_container(
        self, argv: list[str], env: dict[str, str]
    ) -> asyncio.subprocess.Process:
        """Start the container's process with a fresh log and termination message file."""
        (self.directory / "termination-log").write_bytes(b"")
        with self.log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=self.directory / "home",
                # Its own process group, so everything it spawns can be signalled together.
                start_new_session=True,
            )
        # The spec's command, not argv: $(VAR) expansion may have put a Secret's value in it.
        command = [*self._container.get("command", []), *self._container.get("args", [])]
        logger.info(
            "Pod %s/%s: started %s (pid %d).", self.namespace, self.name, command, process.pid
        )
        return process

    def _terminated(self, returncode: int, started_at: str) -> tuple[int, Json]:
        """The exit code and ``terminated`` state of an exited container."""
        exit_code = exit_code_of(returncode)
        message = termination_message(
            (self.directory / "termination-log").read_bytes(),
            self.log_path.read_bytes(),
            policy=self._container.get("terminationMessagePolicy"),
            exit_code=exit_code,
        )
        logger.info("Pod %s/%s: exited with code %d.", self.namespace, self.name, exit_code)
        return exit_code, terminated_state(exit_code, started_at, format_time(_now()), message)

    async def _run_process(
        self, argv: list[str], env: dict[str, str], deadline: float | None
    ) -> PodResult:
        process = await self._start_container(argv, env)
        started_at = format_time(_now())
        deadline_exceeded = False
        try:
            await self._write_status("Running", running_state(started_at))
            if self._on_running is not None:
                await self._on_running()
            try:
                async with asyncio.timeout_at(deadline):
                    returncode = await process.wait()
            except TimeoutError:
                deadline_exceeded = True
                returncode = await self._terminate(process)
        finally:
            # Cancelled (Job deleted, runner stopping) or failed: leave no process behind.
            await self._terminate(process)

        exit_code, state = self._terminated(returncode, started_at)
        await self._write_status("Succeeded" if exit_code == 0 else "Failed", state)
        return PodResult(
            succeeded=exit_code == 0,
            deadline_exceeded=deadline_exceeded,
            container=self._container.get("name"),
            exit_code=exit_code,
        )

    async def _terminate(self, process: asyncio.subprocess.Process) -> int:
        """SIGTERM the process group, SIGKILL it after the grace period; return the exit status."""
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            grace = self._pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
            try:
                async with asyncio.timeout(min(float(grace), self._runner.max_grace_seconds)):
                    await process.wait()
            except TimeoutError:
                pass
        # Whatever the main process left behind in its group goes too, as in a container.
        _signal_group(process.pid, signal.SIGKILL)
        returncode = await process.wait()
        # SIGKILL is delivered asynchronously: wait (briefly: reaping orphans is init's job, and
        # an init that does not reap would keep them as zombies) for the group to be empty.
        for _ in range(100):
            try:
                os.killpg(process.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            await asyncio.sleep(0.01)
        return returncode

    async def _write_status(self, phase: str, state: Json) -> None:
        status = pod_status(
            phase=phase,
            container=self._container,
            state=state,
            start_time=self._start_time,
            now=format_time(_now()),
            pod_ip=self.pod_ip,
            ready=self._ready,
            started=self._started,
            restart_count=self.restart_count,
            last_state=self._last_state,
            previous_conditions=self._conditions,
        )
        comparable = {**status, "conditions": None}
        if comparable == self._last_status:
            return
        self._last_status = comparable
        self._conditions = status["conditions"]
        try:
            await self._runner.client.merge_patch(
                _pod_path(self.namespace, self.name) + "/status", {"status": status}
            )
        except ApiError as e:
            if e.status != 404:
                raise
            # The pod object is gone (deleted with its namespace); the Job's fate decides.
            logger.debug("Pod %s/%s is gone; status not written.", self.namespace, self.name)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


# --------------------------------------------------------------------------------------------
# The Job controller half, and the runner that watches.
# --------------------------------------------------------------------------------------------

JobKey = tuple[str, str, str]  # namespace, name, uid


def _job_key(job: Mapping[str, Any]) -> JobKey:
    meta = job.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""))


def _job_path(namespace: str, name: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"


class _JobGone(Exception):
    """The Job was deleted under us."""


class JobRun:
    """Drives one Job to completion: pods one after another, status after each step."""

    def __init__(self, runner: Runner, job: Json) -> None:
        self._runner = runner
        self.namespace, self.name, self.uid = _job_key(job)
        self._spec: Json = job.get("spec") or {}
        self._status: Json = dict(job.get("status") or {})
        self._succeeded = int(self._status.get("succeeded") or 0)
        self._failed = int(self._status.get("failed") or 0)
        self._retries = self._failed
        """Failed pods in a row, counted or ignored by podFailurePolicy: they pace the next
        pod (an ignored failure is not counted, but it is not retried at once either)."""

    async def run(self) -> None:
        """Run the Job if unfinished, then honour ``ttlSecondsAfterFinished``."""
        if not job_finished(self._status):
            await self._run_to_finish()
        ttl = self._spec.get("ttlSecondsAfterFinished")
        finished_at = job_finish_time(self._status)
        if ttl is not None and finished_at is not None:
            remaining = (finished_at - _now()).total_seconds() + float(ttl)
            await asyncio.sleep(max(0.0, remaining))
            logger.info("Job %s/%s: TTL after finish expired; deleting.", self.namespace, self.name)
            with contextlib.suppress(ApiError):
                await self._runner.client.request(
                    "DELETE",
                    _job_path(self.namespace, self.name),
                    params={"propagationPolicy": "Background"},
                )

    async def _run_to_finish(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._status.get("startTime"):
            await self._patch({"startTime": format_time(_now())})
        deadline: float | None = None
        if self._spec.get("activeDeadlineSeconds") is not None:
            elapsed = (_now() - parse_time(self._status["startTime"])).total_seconds()
            deadline = loop.time() + float(self._spec["activeDeadlineSeconds"]) - elapsed
        backoff_limit = int(self._spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))

        await self._adopt_existing_pods()
        while True:
            if self._succeeded:
                return await self._finish(REASON_COMPLETIONS_REACHED)
            if self._failed > backoff_limit:
                return await self._finish(REASON_BACKOFF_LIMIT_EXCEEDED)
            if deadline is not None and loop.time() >= deadline:
                return await self._finish(REASON_DEADLINE_EXCEEDED)
            if self._retries:
                delay = backoff_delay(
                    self._retries, base=self._runner.backoff_base, cap=self._runner.backoff_cap
                )
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - loop.time()))
                await asyncio.sleep(delay)
                if deadline is not None and loop.time() >= deadline:
                    continue
            result = await self._run_pod(deadline)
            action = "Count"
            if result.succeeded:
                self._succeeded += 1
            else:
                action = pod_failure_action(
                    self._spec.get("podFailurePolicy"), result.container, result.exit_code
                )
                self._retries += 1
                if action != "Ignore":
                    self._failed += 1
            await self._patch_counts(active=0, ready=0)
            if result.deadline_exceeded:
                return await self._finish(REASON_DEADLINE_EXCEEDED)
            if action == "FailJob":
                return await self._finish(REASON_POD_FAILURE_POLICY)

    async def _run_pod(self, deadline: float | None) -> PodResult:
        pod = await self._create_pod()
        await self._patch_counts(active=1, ready=0)
        process = PodProcess(self._runner, pod, on_running=self._pod_running)
        result = await process.run(deadline)
        if result.deadline_exceeded:
            # The Job controller deletes the active pods of a Job that ran out of time.
            with contextlib.suppress(ApiError):
                await self._runner.client.request("DELETE", _pod_path(self.namespace, process.name))
        return result

    async def _create_pod(self) -> Json:
        template: Json = self._spec.get("template") or {}
        template_meta: Json = template.get("metadata") or {}
        spec: Json = dict(template.get("spec") or {})
        spec["nodeName"] = NODE_NAME
        labels = {
            **(template_meta.get("labels") or {}),
            "batch.kubernetes.io/controller-uid": self.uid,
            "batch.kubernetes.io/job-name": self.name,
            "controller-uid": self.uid,
            "job-name": self.name,
        }
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": self.name, "uid": self.uid}
        created = await create_owned_pod(
            self._runner.client,
            self.namespace,
            prefix=self.name,
            labels=labels,
            annotations=dict(template_meta.get("annotations") or {}),
            owner=owner,
            spec=spec,
        )
        if created is None:
            raise _JobGone()
        return created

    async def _adopt_existing_pods(self) -> None:
        """Restart safety: count pods a previous runner left; an active one has lost its
        process (its node is gone), so it is marked failed, as the pod GC would."""
        listing = await self._runner.client.request(
            "GET",
            f"/api/v1/namespaces/{self.namespace}/pods",
            params={"labelSelector": f"batch.kubernetes.io/job-name={self.name}"},
        )
        succeeded = failed = lost = 0
        for pod in listing.get("items") or []:
            meta = pod.get("metadata") or {}
            refs = meta.get("ownerReferences") or []
            owned = any(
                r.get("kind") == "Job" and r.get("name") == self.name and r.get("uid") == self.uid
                for r in refs
            )
            if not owned:
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Succeeded":
                succeeded += 1
            elif phase == "Failed":
                failed += 1
            else:
                lost += 1
                await self._mark_lost(pod)
        self._succeeded = max(self._succeeded, succeeded)
        self._failed = max(self._failed, failed) + lost
        self._retries = max(self._retries, self._failed)
        if succeeded or failed or lost:
            await self._patch_counts(active=0, ready=0)

    async def _mark_lost(self, pod: Json) -> None:
        meta = pod["metadata"]
        logger.info(
            "Pod %s/%s: no process (runner restarted); failed.", meta["namespace"], meta["name"]
        )
        with contextlib.suppress(ApiError):
            await self._runner.client.merge_patch(
                _pod_path(meta["namespace"], meta["name"]) + "/status",
                {
                    "status": {
                        "phase": "Failed",
                        "reason": "NodeLost",
                        "message": "The sandbox runner restarted while this pod was running.",
                    }
                },
            )

    async def _finish(self, reason: str) -> None:
        logger.info("Job %s/%s: %s.", self.namespace, self.name, JOB_MESSAGES[reason])
        for patch in job_finish_patches(self._status, reason, format_time(_now())):
            await self._patch(patch)

    async def _patch_counts(self, *, active: int, ready: int) -> None:
        await self._patch(
            job_counts(active=active, ready=ready, succeeded=self._succeeded, failed=self._failed)
        )

    async def _patch(self, status_patch: Json) -> None:
        try:
            await self._runner.client.merge_patch(
                _job_path(self.namespace, self.name) + "/status", {"status": status_patch}
            )
        except ApiError as e:
            if e.status == 404:
                raise _JobGone from e
            raise
        for key, value in status_patch.items():
            if value is None:
                self._status.pop(key, None)
            else:
                self._status[key] = value

    async def _pod_running(self) -> None:
        await self._patch_counts(active=1, ready=1)


class Runner:
    """Runs batch/v1 Jobs and apps/v1 Deployments from the API at ``api_url`` as local
    processes, and forwards v1 Services to their ready pods.

    ``entrypoint`` is what ``mlops-operator`` means in a container: by default this
    interpreter running ``-m mlops_operator``. ``backoff_base`` and ``backoff_cap`` pace both
    Job retries and container restarts; ``max_probe_period`` caps probes' ``periodSeconds``.
    Service addresses are listed in ``services_file`` (default ``state_dir/services.txt``).
    Use as ``async with Runner(...)``, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        api_url: str,
        state_dir: pathlib.Path,
        *,
        entrypoint: Sequence[str] = (sys.executable, "-m", "mlops_operator"),
        backoff_base: float = 0.2,
        backoff_cap: float = 2.0,
        max_grace_seconds: float = 3.0,
        config_retry_seconds: float = 1.0,
        start_timeout: float = 30.0,
        max_probe_period: float = 1.0,
        services_file: pathlib.Path | None = None,
    ) -> None:
        self.api_url = api_url
        self.state_dir = state_dir
        self.entrypoint = tuple(entrypoint)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_grace_seconds = max_grace_seconds
        self.config_retry_seconds = config_retry_seconds
        self.start_timeout = start_timeout
        self.max_probe_period = max_probe_period
        self.services_file = services_file or state_dir / "services.txt"
        self.addresses = AddressPool(start=secrets.randbelow(ADDRESS_POOL_SIZE))
        self._session: aiohttp.ClientSession | None = None
        self._probe_session: aiohttp.ClientSession | None = None
        self._client: KubeClient | None = None
        self._pods: Informer | None = None
        self._jobs: dict[JobKey, asyncio.Task[None]] = {}
        self._done: set[JobKey] = set()
        self._deployments: dict[JobKey, DeploymentController] = {}
        # Every task, including cancelled Job tasks still killing their processes.
        self._tasks: set[asyncio.Task[None]] = set()
        # Tasks that stop() waits for but leaves to their owners to cancel: pod processes
        # shutting down gracefully must not be interrupted by a second cancellation.
        self._owned: set[asyncio.Task[None]] = set()

    @property
    def client(self) -> KubeClient:
        """The runner's API client; only while started."""
        if self._client is None:
            raise RuntimeError("The runner is not started.")
        return self._client

    @property
    def probe_session(self) -> aiohttp.ClientSession:
        """The HTTP session of probes: no keep-alive, like the kubelet's prober."""
        if self._probe_session is None:
            raise RuntimeError("The runner is not started.")
        return self._probe_session

    @property
    def pods(self) -> Informer:
        """Every Pod in the cluster, as last seen by the runner's watch."""
        if self._pods is None:
            raise RuntimeError("The runner is not started.")
        return self._pods

    async def start(self) -> None:
        """Start watching; returns once the existing Pods, Jobs, Deployments and Services
        have been listed."""
        from mlops_sandbox.services import ServiceProxy

        if self._session is not None:
            raise RuntimeError("The runner is already started.")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._session = aiohttp.ClientSession()
        self._probe_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)
        )
        self._client = client = KubeClient(self._session, self.api_url)
        self._pods = Informer(client, "/api/v1/pods", self._on_pod_event)
        jobs = Informer(client, "/apis/batch/v1/jobs", self._on_job_event)
        deployments = Informer(client, "/apis/apps/v1/deployments", self._on_deployment_event)
        proxy = ServiceProxy(client, self._pods, self.services_file)
        try:
            async with asyncio.timeout(self.start_timeout):
                # Pods first: Deployment controllers look for the pods a previous runner left.
                self.spawn(self._pods.run(), name="sandbox-runner-watch-pods")
                await self._pods.synced.wait()
                self.spawn(jobs.run(), name="sandbox-runner-watch-jobs")
                self.spawn(deployments.run(), name="sandbox-runner-watch-deployments")
                self.spawn(proxy.run(), name="sandbox-runner-services")
                for informer in (jobs, deployments, proxy.services):
                    await informer.synced.wait()
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"The runner could not list workloads at {self.api_url}.") from None

    async def stop(self) -> None:
        """Stop watching and forwarding, and terminate every pod process (SIGTERM, then
        SIGKILL)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        owned = list(self._owned)
        for task in owned:
            if not task.cancelling():
                task.cancel()
        if owned:
            await asyncio.wait(owned)
        self._jobs.clear()
        self._deployments.clear()
        self._pods = None
        for session in (self._session, self._probe_session):
            if session is not None:
                await session.close()
        self._session = None
        self._probe_session = None
        self._client = None

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def pod_directory(self, namespace: str, name: str) -> pathlib.Path:
        """The state directory of one pod (its log, home and termination message)."""
        return self.state_dir / "pods" / namespace / name

    def read_log(self, namespace: str, name: str) -> str | None:
        """A pod's log, or ``None`` if the runner never started its container.

        Fits ``SandboxAPI.log_provider``, which serves ``GET …/pods/{name}/log``.
        """
        path = self.pod_directory(namespace, name) / "container.log"
        try:
            return path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None

    async def fetch_sources(
        self, namespace: str, refs: set[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, str] | None]:
        """The Secrets and ConfigMaps a container refers to, decoded for :func:`resolve_env`."""
        result: dict[tuple[str, str], Mapping[str, str] | None] = {}
        for kind, name in refs:
            plural = "secrets" if kind == "secret" else "configmaps"
            obj = await self.client.get_or_none(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
            if obj is None:
                result[(kind, name)] = None
            else:
                result[(kind, name)] = secret_data(obj) if kind == "secret" else configmap_data(obj)
        return result

    def spawn(
        self, coro: Coroutine[Any, Any, None], name: str, *, owned: bool = False
    ) -> asyncio.Task[None]:
        """Run ``coro`` as a task that :meth:`stop` ends: by cancelling it, or for an
        ``owned`` task (one its owner cancels) by waiting for it."""
        task = asyncio.create_task(coro, name=name)
        tasks = self._owned if owned else self._tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def wait_pod_gone(self, namespace: str, name: str, timeout: float) -> None:
        """Wait (at most ``timeout``) until the runner's Pod watch has seen a pod's deletion,
        so Service forwarders no longer pick it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while (namespace, name) in self.pods.cache:
                    await asyncio.sleep(0.01)

    def _on_pod_event(self, kind: str, pod: Json) -> None:
        if kind != "DELETED":
            return
        for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("kind") != "Deployment" or not ref.get("controller"):
                continue
            for key, controller in self._deployments.items():
                if key[2] == ref.get("uid"):
                    controller.on_pod_deleted(object_name(pod)[1])

    def _on_deployment_event(self, kind: str, deployment: Json) -> None:
        from mlops_sandbox.deployments import DeploymentController

        key = _job_key(deployment)
        if kind == "DELETED" or (deployment.get("metadata") or {}).get("deletionTimestamp"):
            controller = self._deployments.pop(key, None)
            if controller is not None:
                logger.info("Deployment %s/%s deleted: stopping its pods.", key[0], key[1])
                controller.cancel()
            return
        controller = self._deployments.get(key)
        if controller is not None:
            controller.update(deployment)
            return
        controller = DeploymentController(self, deployment)
        self._deployments[key] = controller
        controller.start()

    def _on_job_event(self, kind: str, job: Json) -> None:
        if kind == "DELETED":
            self._forget(_job_key(job))
        else:
            self._on_job(job)

    def _on_job(self, job: Json) -> None:
        key = _job_key(job)
        meta = job.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self._forget(key)
            return
        # Events lag behind the runner's own writes: once a Job is ours or done, only its
        # deletion matters, or a stale event could start it again.
        if key in self._jobs or key in self._done:
            return
        spec, status = job.get("spec") or {}, job.get("status") or {}
        if spec.get("suspend"):
            return
        if job_finished(status) and spec.get("ttlSecondsAfterFinished") is None:
            self._done.add(key)
            return
        self._jobs[key] = self.spawn(self._supervise(key, job), name=f"job {key[0]}/{key[1]}")

    async def _supervise(self, key: JobKey, job: Json) -> None:
        """Run a Job; after an unexpected error, re-read it and carry on from its status."""
        namespace, name, _ = key
        delay = 1.0
        try:
            while True:
                try:
                    await JobRun(self, job).run()
                    self._done.add(key)
                    return
                except _JobGone:
                    logger.debug("Job %s/%s is gone.", namespace, name)
                    return
                except Exception:
                    logger.exception("Job %s/%s: the runner failed; retrying.", namespace, name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                try:
                    fresh = await self.client.get_or_none(_job_path(namespace, name))
                except Exception as e:  # the API is down: try again later with what we had
                    logger.warning("Job %s/%s: cannot re-read it (%s).", namespace, name, e)
                    continue
                if fresh is None or _job_key(fresh) != key:
                    return
                job = fresh
        finally:
            if self._jobs.get(key) is asyncio.current_task():
                del self._jobs[key]

    def _forget(self, key: JobKey) -> None:
        self._done.discard(key)
        task = self._jobs.pop(key, None)
        if task is not None:
            logger.info("Job %s/%s deleted: stopping its pod.", key[0], key[1])
            task.cancel()
