"""The sandbox's Deployments: the Deployment and ReplicaSet controllers and a kubelet that
restarts containers and runs their probes, as local processes.

For each apps/v1 Deployment the runner keeps ``spec.replicas`` pods of the current template
running, like the two controllers together: pods are named ``<deployment>-<hash>-<5 chars>``
and labelled ``pod-template-hash: <hash>``, where the hash is a short stable hash of the pod
template. There are no ReplicaSet objects: pods are owned by the Deployment directly
(``ownerReferences`` with ``controller: true``), so deleting the Deployment deletes them by
garbage collection. Status is written through ``/status`` with the counters and the
``Available`` and ``Progressing`` conditions the real controller writes.

Each pod gets a loopback address of its own (``127.0.X.Y``, see
:class:`~mlops_sandbox.runner.AddressPool`): ``status.podIP``, and ``MLOPS_SERVE_HOST``
in its process's environment (set last, over the pod's own ``env``: a manifest made for a
cluster binds ``0.0.0.0``, which replicas on one host cannot share). The environment is
otherwise resolved as for Jobs.

The kubelet part (:class:`ServingPod`) runs ``startupProbe``, ``readinessProbe`` and
``livenessProbe`` (``httpGet`` and ``tcpSocket``, against the pod's address) with their
delays, thresholds and timeouts; readiness drives the ``Ready`` condition, a failed liveness
or startup probe restarts the container, and a container that exits is restarted after a
backoff (``CrashLoopBackOff``), as with ``restartPolicy: Always``.

Deliberate simplifications:

- ``periodSeconds`` is capped at the runner's ``max_probe_period`` (1 s by default) so state
  changes show within a second; ``exec`` probes cannot run here and count as successes,
  ``grpc`` probes are TCP connection checks.
- The restart backoff is the runner's (0.2 s doubling, capped at 2 s by default) where the
  kubelet's is 10 s doubling to 5 minutes; it resets after a container ran for twice the cap.
- ``CreateContainerError`` (a command other than ``mlops-operator``, more than one container)
  leaves the pod Pending for good, not retried.
- A removed pod's object is deleted at once (no ``Terminating`` phase); the runner waits until
  its own Service forwarders have dropped the pod before the SIGTERM, so a rollout does not
  send new connections to a pod that is shutting down. The grace period is
  ``terminationGracePeriodSeconds`` capped at the runner's ``max_grace_seconds`` (3 s).
- ``spec.paused``, ``revisionHistoryLimit``, rollbacks and the ``deployment.kubernetes.io/
  revision`` annotation are not implemented; the ``Progressing`` condition does not report
  ``NewReplicaSetCreated`` (it says ``ReplicaSetUpdated`` from the start of a rollout).
- A runner that restarts finds pods without processes: they are deleted and replaced, as
  after a node loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import itertools
import json
import logging
import math
import shutil
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from mlops_sandbox.runner import (
    NODE_NAME,
    ApiError,
    ContainerCreateError,
    Json,
    PodProcess,
    Runner,
    backoff_delay,
    container_argv,
    create_owned_pod,
    format_time,
    parse_time,
    running_state,
    unsupported_pod_features,
    waiting_state,
)

logger = logging.getLogger(__name__)

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
SERVE_HOST_ENV = "MLOPS_SERVE_HOST"
"""The environment variable that tells a pod's server which address to bind."""

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600

# Conditions as the Deployment controller writes them.
COND_AVAILABLE = "Available"
COND_PROGRESSING = "Progressing"
REASON_MINIMUM_AVAILABLE = "MinimumReplicasAvailable"
REASON_MINIMUM_UNAVAILABLE = "MinimumReplicasUnavailable"
REASON_NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
REASON_RS_UPDATED = "ReplicaSetUpdated"
REASON_PROGRESS_DEADLINE = "ProgressDeadlineExceeded"

WAITING_CRASH_LOOP = "CrashLoopBackOff"

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the API machinery's "safe" alphabet
_RESYNC_SECONDS = 0.5
_ENDPOINT_DROP_TIMEOUT = 2.0


# --------------------------------------------------------------------------------------------
# Pure logic: template hash, rollout limits and steps, status, probes.
# --------------------------------------------------------------------------------------------


def template_hash(template: Mapping[str, Any]) -> str:
    """A short stable hash of a pod template, spelled like the controller's
    ``pod-template-hash`` (a 32-bit number's digits in the safe alphabet)."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    number = int.from_bytes(hashlib.sha256(canonical).digest()[:4], "big")
    return "".join(_HASH_ALPHABET[ord(digit) % len(_HASH_ALPHABET)] for digit in str(number))


def scaled_value(value: int | str | None, total: int, *, round_up: bool, default: str) -> int:
    """An IntOrString like ``maxSurge``: a number, or a percentage of ``total``."""
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        exact = total * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def rollout_limits(strategy: Mapping[str, Any] | None, replicas: int) -> tuple[int, int]:
    """``(maxSurge, maxUnavailable)`` as pod counts: surge rounds up, unavailable down
    (defaults 25% each); if both come to 0, one pod may be unavailable, as in Kubernetes."""
    rolling = (strategy or {}).get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = scaled_value(
        rolling.get("maxUnavailable"), replicas, round_up=False, default="25%"
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclasses.dataclass(frozen=True)
class PodView:
    """What the controller weighs of one (not terminating) pod."""

    name: str
    current: bool
    """Whether it runs the current template."""
    ready: bool
    available: bool
    """Ready for at least ``minReadySeconds``."""
    order: int
    """Creation order: higher is newer."""


@dataclasses.dataclass(frozen=True)
class RolloutStep:
    """One step towards the desired pods: how many new pods to start, which pods to stop."""

    create: int = 0
    delete: tuple[str, ...] = ()


def _deletion_order(pods: Iterable[PodView]) -> list[PodView]:
    # Like the ReplicaSet controller: unavailable pods first, then not ready, then the newest.
    return sorted(pods, key=lambda p: (p.available, p.ready, -p.order))


def _scale(pods: Sequence[PodView], replicas: int) -> RolloutStep:
    if len(pods) < replicas:
        return RolloutStep(create=replicas - len(pods))
    excess = _deletion_order(pods)[: len(pods) - replicas]
    return RolloutStep(delete=tuple(p.name for p in excess))


def plan_rollout(
    *,
    replicas: int,
    pods: Sequence[PodView],
    max_surge: int,
    max_unavailable: int,
    recreate: bool = False,
    terminating: int = 0,
) -> RolloutStep:
    """The next step of the Deployment controller's sync, from the pods that exist.

    RollingUpdate: scale up the new template within ``replicas + max_surge`` pods; otherwise
    stop old pods, unavailable ones first, keeping ``replicas - max_unavailable`` available.
    Recreate: stop every old pod, and start new ones once none is ``terminating``.
    """
    new = [p for p in pods if p.current]
    old = [p for p in pods if not p.current]
    if recreate:
        if old:
            return RolloutStep(delete=tuple(p.name for p in old))
        return RolloutStep() if terminating else _scale(new, replicas)
    if not old or len(new) > replicas:
        return _scale(new, replicas)

    max_total = replicas + max_surge
    if len(new) < replicas and len(pods) < max_total:
        return RolloutStep(create=min(max_total - len(pods), replicas - len(new)))

    min_available = replicas - max_unavailable
    new_unavailable = sum(not p.available for p in new)
    max_scaled_down = len(pods) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return RolloutStep()
    unhealthy = [p for p in _deletion_order(old) if not p.available][:max_scaled_down]
    healthy = [p for p in _deletion_order(old) if p.available]
    available = sum(p.available for p in pods)
    scale_down = max(0, min(available - min_available, max_scaled_down - len(unhealthy)))
    return RolloutStep(delete=tuple(p.name for p in unhealthy + healthy[:scale_down]))


def _deployment_condition(kind: str, ok: bool, reason: str, message: str, now: str) -> Json:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def set_deployment_condition(conditions: Sequence[Json], new: Json) -> list[Json]:
    """``SetDeploymentCondition``: a condition with the same status and reason is kept as it
    is; one with the same status keeps its ``lastTransitionTime``."""
    result = [dict(c) for c in conditions]
    for index, current in enumerate(result):
        if current.get("type") != new["type"]:
            continue
        if current.get("status") == new["status"] and current.get("reason") == new["reason"]:
            return result
        if current.get("status") == new["status"]:
            new = {**new, "lastTransitionTime": current.get("lastTransitionTime")}
        result[index] = new
        return result
    return [*result, new]


def deployment_status(
    *,
    name: str,
    generation: int,
    replicas: int,
    max_unavailable: int,
    pods: Sequence[PodView],
    pod_template_hash: str,
    previous: Mapping[str, Any],
    progress_deadline_seconds: int | None,
    now: datetime.datetime,
) -> Json:
    """The Deployment's ``status`` after a sync, as ``calculateStatus`` and
    ``syncRolloutStatus`` compute it (counters that are 0 are left out, as the API omits
    them). ``previous`` is the status before this sync."""
    stamp = format_time(now)
    total = len(pods)
    updated = sum(p.current for p in pods)
    ready = sum(p.ready for p in pods)
    available = sum(p.available for p in pods)
    counts = {
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    status: Json = {"observedGeneration": generation}
    status.update({key: value for key, value in counts.items() if value})
    conditions: list[Json] = list(previous.get("conditions") or [])

    if available >= replicas - max_unavailable:
        availability = _deployment_condition(
            COND_AVAILABLE,
            True,
            REASON_MINIMUM_AVAILABLE,
            "Deployment has minimum availability.",
            stamp,
        )
    else:
        availability = _deployment_condition(
            COND_AVAILABLE,
            False,
            REASON_MINIMUM_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            stamp,
        )
    conditions = set_deployment_condition(conditions, availability)

    rs_name = f"{name}-{pod_template_hash}"
    progressing = next((c for c in conditions if c.get("type") == COND_PROGRESSING), None)

    def before(key: str) -> int:
        return int(previous.get(key) or 0)

    complete = updated == replicas and total == replicas and available == replicas
    made_progress = (
        updated != before("updatedReplicas")
        or total - updated < before("replicas") - before("updatedReplicas")
        or ready > before("readyReplicas")
        or available > before("availableReplicas")
        # A new template: the sandbox's stand-in for "created a new ReplicaSet".
        or (updated < total and (progressing or {}).get("reason") == REASON_NEW_RS_AVAILABLE)
        or progressing is None
    )
    if complete:
        conditions = set_deployment_condition(
            conditions,
            _deployment_condition(
                COND_PROGRESSING,
                True,
                REASON_NEW_RS_AVAILABLE,
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                stamp,
            ),
        )
    elif made_progress:
        # Progress refreshes lastUpdateTime even with an unchanged reason (the deadline
        # counts from it), so the condition is replaced rather than set.
        new = _deployment_condition(
            COND_PROGRESSING,
            True,
            REASON_RS_UPDATED,
            f'ReplicaSet "{rs_name}" is progressing.',
            stamp,
        )
        if progressing is not None and progressing.get("status") == "True":
            new["lastTransitionTime"] = progressing.get("lastTransitionTime")
        conditions = [c for c in conditions if c.get("type") != COND_PROGRESSING] + [new]
    elif (
        progressing is not None
        and progress_deadline_seconds is not None
        and progressing.get("reason") not in (REASON_NEW_RS_AVAILABLE, REASON_PROGRESS_DEADLINE)
        and progressing.get("lastUpdateTime")
        and (now - parse_time(progressing["lastUpdateTime"])).total_seconds()
        > progress_deadline_seconds
    ):
        conditions = set_deployment_condition(
            conditions,
            _deployment_condition(
                COND_PROGRESSING,
                False,
                REASON_PROGRESS_DEADLINE,
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                stamp,
            ),
        )
    status["conditions"] = conditions
    return status


def merge_patch_for(old: Mapping[str, Any], new: Mapping[str, Any]) -> Json:
    """The top-level JSON merge patch that turns ``old`` into ``new``."""
    patch: Json = {key: value for key, value in new.items() if old.get(key) != value}
    patch.update({key: None for key in old if key not in new})
    return patch


@dataclasses.dataclass(frozen=True)
class Probe:
    """A container probe, resolved against the container (named ports looked up)."""

    action: str
    """``http``, ``tcp``, or ``exec`` (not runnable here: always succeeds)."""
    port: int | None = None
    """``None`` when a named port does not exist: the probe fails, as in the kubelet."""
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def container_port(container: Mapping[str, Any], port: int | str | None) -> int | None:
    """A probe's or Service's port: a number, or a name among the container's ``ports``."""
    if isinstance(port, int):
        return port
    if port is None:
        return None
    if port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


def parse_probe(
    probe: Mapping[str, Any] | None, container: Mapping[str, Any], *, max_period: float
) -> Probe | None:
    """The :class:`Probe` a container's probe spec describes, ``None`` for no probe;
    ``periodSeconds`` is capped at ``max_period``."""
    if not probe:
        return None
    base = Probe(
        action="exec",
        initial_delay=float(probe.get("initialDelaySeconds", 0)),
        period=min(float(probe.get("periodSeconds", 10)), max_period),
        timeout=float(probe.get("timeoutSeconds", 1)),
        success_threshold=int(probe.get("successThreshold", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
    )
    if "httpGet" in probe:
        http = probe["httpGet"]
        return dataclasses.replace(
            base,
            action="http",
            port=container_port(container, http.get("port")),
            path=http.get("path") or "/",
            scheme=str(http.get("scheme", "HTTP")).upper(),
            headers=tuple((h["name"], h["value"]) for h in http.get("httpHeaders") or []),
        )
    for action in ("tcpSocket", "grpc"):
        if action in probe:
            port = container_port(container, probe[action].get("port"))
            return dataclasses.replace(base, action="tcp", port=port)
    return base


@dataclasses.dataclass
class ProbeTracker:
    """The kubelet's probe result: it changes after ``success_threshold`` consecutive
    successes or ``failure_threshold`` consecutive failures. ``result`` starts as the probe
    kind's initial result: ``False`` for readiness, ``True`` for liveness, ``None``
    (unknown) for startup."""

    success_threshold: int
    failure_threshold: int
    result: bool | None
    _last: bool | None = None
    _run: int = 0

    def observe(self, ok: bool) -> bool | None:
        """Record one probe outcome; the (possibly changed) result."""
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        if self._run >= (self.success_threshold if ok else self.failure_threshold):
            self.result = ok
        return self.result


def declared_ports(container: Mapping[str, Any]) -> list[int]:
    """The container's declared TCP ports."""
    return [
        int(p["containerPort"])
        for p in container.get("ports") or []
        if "containerPort" in p and p.get("protocol", "TCP") == "TCP"
    ]


# --------------------------------------------------------------------------------------------
# The kubelet: one pod whose container is kept running and probed.
# --------------------------------------------------------------------------------------------


class _Restart(Exception):
    """A probe failed: the container is killed and restarted."""


class ServingPod(PodProcess):
    """A pod with ``restartPolicy: Always``: its container runs until the pod is stopped
    (cancel the task running :meth:`serve`), restarted whenever it exits or a liveness or
    startup probe fails. ``on_change`` is called when readiness changes."""

    def __init__(
        self, runner: Runner, pod: Json, *, pod_ip: str, on_change: Callable[[], None]
    ) -> None:
        super().__init__(runner, pod, pod_ip=pod_ip, extra_env={SERVE_HOST_ENV: pod_ip})
        self._on_change = on_change
        self._ready = False
        self._started = False
        self.ready_since: float | None = None
        """Event-loop time since when the pod has been Ready."""
        self._failures = 0
        self._started_at = ""

    @property
    def ready(self) -> bool:
        """Whether the pod is Ready."""
        return bool(self._ready)

    async def serve(self) -> None:
        """Run the pod until cancelled; the container is terminated when it is."""
        unsupported = unsupported_pod_features(self._pod["spec"])
        try:
            if unsupported is not None:
                raise ContainerCreateError(unsupported)
            env = await self._resolve_env()
            argv = container_argv(self._container, env, self._runner.entrypoint)
        except ContainerCreateError as e:
            await self._write_status("Pending", waiting_state("CreateContainerError", str(e)))
            logger.warning("Pod %s/%s cannot start: %s", self.namespace, self.name, e)
            # The pod stays as it is until it is deleted: no restarts in a hot loop.
            await asyncio.Event().wait()
            return
        await self._keep_running(argv, env)

    async def _keep_running(self, argv: list[str], env: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.restart_count:
                # The log of the previous container, as `kubectl logs --previous` shows it.
                with contextlib.suppress(FileNotFoundError):
                    shutil.move(self.log_path, self.directory / "container.previous.log")
            process = await self._start_container(argv, env)
            self._started_at = format_time(_now())
            started = loop.time()
            try:
                await self._write_status("Running", running_state(self._started_at))
                await self._supervise(process)
            finally:
                if self._note_ready(False):  # the container is gone: no status write first
                    self._on_change()
                self._started = False
                returncode = await self._terminate(process)
            _, self._last_state = self._terminated(returncode, self._started_at)
            self.restart_count += 1
            if loop.time() - started > 2 * self._runner.backoff_cap:
                self._failures = 0
            self._failures += 1
            delay = backoff_delay(
                self._failures, base=self._runner.backoff_base, cap=self._runner.backoff_cap
            )
            name = self._container.get("name", "")
            uid = self._pod["metadata"].get("uid", "")
            message = (
                f"back-off {delay:g}s restarting failed container={name} "
                f"pod={self.name}_{self.namespace}({uid})"
            )
            await self._write_status("Running", waiting_state(WAITING_CRASH_LOOP, message))
            await asyncio.sleep(delay)

    def _note_ready(self, ready: bool) -> bool:
        """Whether readiness changed; recorded, nobody told."""
        if ready == self._ready:
            return False
        self._ready = ready
        self.ready_since = asyncio.get_running_loop().time() if ready else None
        return True

    async def _set_ready(self, ready: bool) -> None:
        """Record readiness in the pod's status, then tell the Deployment: as from a kubelet,
        the API has the pod Ready before its controller acts on it, so Service routing (which
        reads the API) has the new pod when an old one is stopped."""
        changed = self._note_ready(ready)
        try:
            await self._write_status("Running", running_state(self._started_at))
        finally:
            if changed:
                self._on_change()

    async def _supervise(self, process: asyncio.subprocess.Process) -> None:
        """Return when the process exits, or kill it after a probe says so."""
        exited = asyncio.ensure_future(process.wait())
        probes = asyncio.ensure_future(self._probe(asyncio.get_running_loop().time()))
        try:
            await asyncio.wait({exited, probes}, return_when=asyncio.FIRST_COMPLETED)
            if probes.done() and not probes.cancelled():
                error = probes.exception()
                if isinstance(error, _Restart):
                    logger.info("Pod %s/%s: %s", self.namespace, self.name, error)
                elif error is not None:
                    logger.error("Pod %s/%s: probing failed: %r", self.namespace, self.name, error)
        finally:
            for task in (exited, probes):
                task.cancel()
            await asyncio.gather(exited, probes, return_exceptions=True)

    async def _probe(self, container_start: float) -> None:
        """Run the probes of the running container; raise :class:`_Restart` to kill it."""
        max_period = self._runner.max_probe_period
        container = self._container
        startup = parse_probe(container.get("startupProbe"), container, max_period=max_period)
        readiness = parse_probe(container.get("readinessProbe"), container, max_period=max_period)
        liveness = parse_probe(container.get("livenessProbe"), container, max_period=max_period)
        name = container.get("name", "")
        if startup is not None:
            tracker = ProbeTracker(1, startup.failure_threshold, None)
            # Startup probing ends with its first success; readiness and liveness wait for it.
            await self._run_probe(startup, tracker, container_start, until=True)
            if tracker.result is False:
                raise _Restart(f"container {name} failed startup probe, will be restarted")
        self._started = True
        if readiness is None:
            await self._set_ready(True)
        else:
            await self._write_status("Running", running_state(self._started_at))

        async def track_readiness(probe: Probe) -> None:
            tracker = ProbeTracker(probe.success_threshold, probe.failure_threshold, False)

            async def changed(result: bool | None) -> None:
                await self._set_ready(bool(result))

            await self._run_probe(probe, tracker, container_start, on_change=changed)

        async def track_liveness(probe: Probe) -> None:
            tracker = ProbeTracker(1, probe.failure_threshold, True)
            await self._run_probe(probe, tracker, container_start, until=False)
            raise _Restart(f"container {name} failed liveness probe, will be restarted")

        try:
            async with asyncio.TaskGroup() as group:
                if readiness is not None:
                    group.create_task(track_readiness(readiness))
                if liveness is not None:
                    group.create_task(track_liveness(liveness))
        except* _Restart as restarts:
            raise restarts.exceptions[0] from None

    async def _run_probe(
        self,
        probe: Probe,
        tracker: ProbeTracker,
        container_start: float,
        *,
        until: bool | None = None,
        on_change: Callable[[bool | None], Awaitable[None]] | None = None,
    ) -> None:
        """Probe every period from ``initialDelaySeconds`` after the container started;
        return once the result is ``until`` (or, for startup, a failure), and call
        ``on_change`` whenever the result changes."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, container_start + probe.initial_delay - loop.time()))
        while True:
            began = loop.time()
            before = tracker.result
            result = tracker.observe(await self._check(probe))
            if result != before and on_change is not None:
                await on_change(result)
            if until is not None and (result is until or (until is True and result is False)):
                return
            await asyncio.sleep(max(0.0, began + probe.period - loop.time()))

    async def _check(self, probe: Probe) -> bool:
        if probe.action == "exec":
            return True
        if probe.port is None:
            return False
        try:
            async with asyncio.timeout(probe.timeout):
                if probe.action == "tcp":
                    _, writer = await asyncio.open_connection(self.pod_ip, probe.port)
                    writer.close()
                    await writer.wait_closed()
                    return True
                url = f"{probe.scheme.lower()}://{self.pod_ip}:{probe.port}{probe.path}"
                headers = {"User-Agent": "kube-probe/1.33", **dict(probe.headers)}
                async with self._runner.probe_session.get(
                    url, headers=headers, ssl=False, allow_redirects=False
                ) as response:
                    return 200 <= response.status < 400
        except (TimeoutError, OSError, aiohttp.ClientError):
            return False


# --------------------------------------------------------------------------------------------
# The Deployment controller.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Replica:
    name: str
    hash: str
    address: str
    order: int
    pod: ServingPod
    task: asyncio.Task[None]


def _ports_free(address: str, ports: Iterable[int]) -> bool:
    """Whether each port can be bound on ``address`` (someone else's pod may hold it)."""
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True


class DeploymentController:
    """Keeps one Deployment's pods running and its status written."""

    def __init__(self, runner: Runner, deployment: Json) -> None:
        self._runner = runner
        meta = deployment.get("metadata") or {}
        self.namespace: str = meta.get("namespace", "")
        self.name: str = meta.get("name", "")
        self.uid: str = meta.get("uid", "")
        self._deployment = deployment
        self._status: Json = dict(deployment.get("status") or {})
        self._replicas: dict[str, _Replica] = {}
        self._stopping: dict[str, _Replica] = {}
        self._deleted: set[str] = set()
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reconciling in a runner task."""
        self._task = self._runner.spawn(
            self._run(), name=f"deployment {self.namespace}/{self.name}"
        )

    def cancel(self) -> None:
        """Stop reconciling and stop every pod (the Deployment is gone)."""
        if self._task is not None:
            _cancel_once(self._task)

    def update(self, deployment: Json) -> None:
        """A newer version of the Deployment."""
        self._deployment = deployment
        self._wake.set()

    def wake(self) -> None:
        """Reconcile soon (a pod's readiness changed)."""
        self._wake.set()

    def on_pod_deleted(self, name: str) -> None:
        """Someone deleted one of the pods: stop its process; a new pod replaces it."""
        if name in self._replicas and name not in self._deleted:
            logger.info("Pod %s/%s was deleted: stopping it.", self.namespace, name)
            self._stop(name, delete=False)
            self._wake.set()

    async def _run(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    await self._reconcile()
                except _DeploymentGone:
                    return
                except (ApiError, aiohttp.ClientError) as e:
                    logger.warning("Deployment %s/%s: %s", self.namespace, self.name, e)
                except Exception:
                    logger.exception("Deployment %s/%s: sync failed.", self.namespace, self.name)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_RESYNC_SECONDS):
                        await self._wake.wait()
        finally:
            await self._stop_all()

    async def _reconcile(self) -> None:
        spec: Json = self._deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template: Json = spec.get("template") or {}
        current = template_hash(template)
        strategy = spec.get("strategy") or {}
        surge, unavailable = rollout_limits(strategy, replicas)
        await self._delete_orphans()
        # Each step creates or stops at least one pod, so this ends; the bound is a safeguard.
        for _ in range(4 * (replicas + surge) + len(self._replicas) + 1):
            step = plan_rollout(
                replicas=replicas,
                pods=self._views(current, spec),
                max_surge=surge,
                max_unavailable=unavailable,
                recreate=strategy.get("type") == "Recreate",
                terminating=len(self._stopping),
            )
            if not step.create and not step.delete:
                break
            for name in step.delete:
                self._stop(name, delete=True)
            for _ in range(step.create):
                await self._create_replica(template, current)
        await self._write_status(replicas, unavailable, current, spec)

    def _views(self, current: str, spec: Mapping[str, Any]) -> list[PodView]:
        now = asyncio.get_running_loop().time()
        min_ready = float(spec.get("minReadySeconds", 0))
        return [
            PodView(
                name=r.name,
                current=r.hash == current,
                ready=r.pod.ready,
                available=r.pod.ready_since is not None and now - r.pod.ready_since >= min_ready,
                order=r.order,
            )
            for r in self._replicas.values()
        ]

    async def _delete_orphans(self) -> None:
        """Pods of this Deployment that no process runs: a previous runner's (a lost node)."""
        # Names of pods deleted here matter only until their deletion is seen: kept for good,
        # every rollout would add one.
        self._deleted.intersection_update(
            name for namespace, name in self._runner.pods.cache if namespace == self.namespace
        )
        for (namespace, name), pod in list(self._runner.pods.cache.items()):
            if namespace != self.namespace or name in self._replicas or name in self._deleted:
                continue
            if name in self._stopping:
                continue
            refs = (pod.get("metadata") or {}).get("ownerReferences") or []
            if not any(r.get("uid") == self.uid and r.get("controller") for r in refs):
                continue
            logger.info(
                "Pod %s/%s has no process (runner restarted); replacing it.", namespace, name
            )
            self._deleted.add(name)
            with contextlib.suppress(ApiError):
                await self._runner.client.request("DELETE", _pod_path(namespace, name))

    async def _create_replica(self, template: Json, pod_hash: str) -> None:
        meta: Json = template.get("metadata") or {}
        spec: Json = {**(template.get("spec") or {}), "nodeName": NODE_NAME}
        containers = spec.get("containers") or [{}]
        ports = declared_ports(containers[0])
        address = self._runner.addresses.allocate(lambda a: _ports_free(a, ports))
        try:
            created = await self._post_pod(meta, spec, pod_hash)
        except BaseException:
            self._runner.addresses.release(address)
            raise
        name = created["metadata"]["name"]
        pod = ServingPod(self._runner, created, pod_ip=address, on_change=self.wake)
        task = self._runner.spawn(pod.serve(), name=f"pod {self.namespace}/{name}", owned=True)
        self._replicas[name] = _Replica(name, pod_hash, address, next(self._order), pod, task)
        logger.info("Deployment %s/%s: pod %s on %s.", self.namespace, self.name, name, address)

    async def _post_pod(self, meta: Json, spec: Json, pod_hash: str) -> Json:
        labels = {**(meta.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.name, "uid": self.uid}
        created = await create_owned_pod(
            self._runner.client,
            self.namespace,
            prefix=f"{self.name}-{pod_hash}",
            labels=labels,
            annotations=dict(meta.get("annotations") or {}),
            owner=owner,
            spec=spec,
        )
        if created is None:
            raise _DeploymentGone()
        return created

    def _stop(self, name: str, *, delete: bool) -> None:
        replica = self._replicas.pop(name)
        self._stopping[name] = replica
        self._runner.spawn(
            self._shut_down(replica, delete=delete), name=f"stop pod {name}", owned=True
        )

    async def _shut_down(self, replica: _Replica, *, delete: bool) -> None:
        """Delete the pod object, let the Service forwarders drop it, then stop the process."""
        try:
            if delete:
                self._deleted.add(replica.name)
                with contextlib.suppress(ApiError):
                    await self._runner.client.request(
                        "DELETE", _pod_path(self.namespace, replica.name)
                    )
                await self._runner.wait_pod_gone(
                    self.namespace, replica.name, _ENDPOINT_DROP_TIMEOUT
                )
        finally:
            _cancel_once(replica.task)
            await asyncio.wait({replica.task})
            self._release(replica)
            self._wake.set()

    def _release(self, replica: _Replica) -> None:
        if self._stopping.pop(replica.name, None) is not None:
            self._runner.addresses.release(replica.address)

    async def _stop_all(self) -> None:
        replicas = [*self._replicas.values(), *self._stopping.values()]
        self._stopping.update(self._replicas)
        self._replicas.clear()
        for replica in replicas:
            _cancel_once(replica.task)
        if replicas:
            await asyncio.wait({r.task for r in replicas})
        for replica in replicas:
            self._release(replica)

    async def _write_status(
        self, replicas: int, unavailable: int, current: str, spec: Mapping[str, Any]
    ) -> None:
        deadline = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)
        status = deployment_status(
            name=self.name,
            generation=int((self._deployment.get("metadata") or {}).get("generation") or 0),
            replicas=replicas,
            max_unavailable=unavailable,
            pods=self._views(current, spec),
            pod_template_hash=current,
            previous=self._status,
            progress_deadline_seconds=None if deadline is None else int(deadline),
            now=_now(),
        )
        if status == self._status:
            return
        try:
            await self._runner.client.merge_patch(
                f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}/status",
                {"status": merge_patch_for(self._status, status)},
            )
        except ApiError as e:
            if e.status == 404:
                raise _DeploymentGone from e
            raise
        self._status = status


def _cancel_once(task: asyncio.Task[None]) -> None:
    # A second cancellation would interrupt the graceful termination the first one started.
    if not task.cancelling():
        task.cancel()


class _DeploymentGone(Exception):
    """The Deployment (or its namespace) was deleted under us."""


def _pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)
