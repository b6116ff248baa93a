"""The sandbox's HorizontalPodAutoscaler controller: autoscaling/v2 HPAs acted on, with the
pods' own metrics, so Deployments scale out under load and back in after it.

Every ``sync_seconds`` (1 s here, 15 s in Kubernetes) each HPA whose ``scaleTargetRef`` is an
apps/v1 Deployment is reconciled the way kube-controller-manager's HPA controller does it:

- **Metrics**, per pod of the Deployment's selector (from the runner's Pod watch):
  a ``Pods`` metric named ``<name>_per_second`` is the rate of the pod's ``<name>_total``
  counter (all its series summed), scraped from the pod's ``/metrics`` (the
  ``prometheus.io/port``/``path`` annotations, else the first container port), over the last
  ``rate_window_seconds`` — what the prometheus-adapter rule in docs/autoscaling.md serves on a
  cluster. A ``Resource`` ``cpu`` metric is the CPU time of the pod's processes (read with
  psutil) per second, in percent of the container's CPU request (``Utilization``) or in
  cores (``AverageValue``).
- **Replica count** (:func:`metric_replicas`): ``ceil(ratio × pods with a metric)``, where
  ratio = the average over the pods / the target; within the tolerance (0.1) of 1 nothing
  changes. Pods without a metric count as using the target on a scale-down and nothing on a
  scale-up; for CPU, unready pods count as using nothing on a scale-up and are otherwise
  left out; a result that the missing pods would reverse keeps the current count.
- **Normalisation** (:func:`normalize`): below ``minReplicas`` or above ``maxReplicas`` the
  count is clamped without looking at metrics; otherwise the recommendation is stabilised:
  a scale-down goes only as low as the highest recommendation within
  ``behavior.scaleDown.stabilizationWindowSeconds`` (default ``scale_down_window`` = 300 s, as
  in Kubernetes), a scale-up only as high as the lowest within
  ``behavior.scaleUp.stabilizationWindowSeconds`` (default 0); a scale-up adds at most
  ``max(current, 4)`` pods at a time (the default policies); a target at 0 replicas is left
  alone (scaling disabled).
- **Writes**: the Deployment's ``/scale`` subresource, and the HPA's ``/status``
  (``currentReplicas``, ``desiredReplicas``, ``lastScaleTime``, ``currentMetrics`` and the
  ``AbleToScale``, ``ScalingActive`` and ``ScalingLimited`` conditions with the reasons the
  real controller writes), only when something changed.

Deliberate simplifications: only Deployments are scaled; only ``Pods`` metrics named
``*_per_second`` and the ``cpu`` ``Resource`` metric are served (``Object``, ``External``,
``ContainerResource`` and memory report ``ScalingActive=False``); with several metrics the
largest count wins, as in Kubernetes; ``behavior`` policies other than the stabilisation
windows are not read (scale-up uses the default limit per sync, not per 15 s period, and
scale-down is limited by the window only); no Events are posted; the CPU readiness delays
(``--horizontal-pod-autoscaler-cpu-initialization-period``) are not emulated: an unready pod
is unready.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import logging
import math
import pathlib
from collections.abc import Mapping, Sequence

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from mlops_sandbox.builtin_validation import QuantityError, parse_quantity
from mlops_sandbox.runner import ApiError, Informer, Json, Runner, object_name

logger = logging.getLogger(__name__)

TOLERANCE = 0.1
"""``--horizontal-pod-autoscaler-tolerance``: ratios within 10% of 1 change nothing."""

DEFAULT_SCALE_DOWN_WINDOW = 300.0
"""``--horizontal-pod-autoscaler-downscale-stabilization``, when an HPA sets no window."""

RATE_SUFFIX = "_per_second"
COUNTER_SUFFIX = "_total"


# --------------------------------------------------------------------------------------------
# Pure logic: replica counts from metrics, and their normalisation.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PodMetric:
    """One pod's measurement of one metric."""

    name: str
    ready: bool
    value: float | None
    """The pod's value (a rate, or CPU cores); None when it could not be measured."""
    request: float = 1.0
    """What a utilisation is relative to (the CPU request in cores); 1 for plain values."""


def _ratio(pods: Sequence[PodMetric], values: Mapping[str, float], target: float) -> float:
    """Average value over target: for a utilisation (requests given), total use over total
    request in percent, over the target percent."""
    used = sum(values.values())
    weight = sum(p.request for p in pods if p.name in values)
    return used / weight / target if weight > 0 else 0.0


def metric_replicas(
    current: int,
    pods: Sequence[PodMetric],
    target: float,
    *,
    utilization: bool = False,
    tolerance: float = TOLERANCE,
) -> int | None:
    """The replica count one metric asks for, as the HPA's replica calculator computes it;
    None when no pod has a value (the metric is unavailable).

    ``target`` is the per-pod average wanted, or with ``utilization`` a percentage of each
    pod's ``request``. Unready pods are set aside for utilisation (CPU) metrics only."""
    scale = 100.0 if utilization else 1.0
    unready = [p for p in pods if utilization and not p.ready]
    counted = [p for p in pods if p not in unready]
    values = {p.name: p.value * scale for p in counted if p.value is not None}
    missing = [p for p in counted if p.value is None]
    if not values:
        return None
    ratio = _ratio(pods, values, target)
    with_unready = bool(unready) and ratio > 1.0
    if not with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * len(values))
    filled = dict(values)
    if ratio < 1.0:
        for pod in missing:  # as if at the target: never scale down on a guess
            filled[pod.name] = target * pod.request
    elif ratio > 1.0:
        for pod in missing:  # as if idle: never scale up on a guess
            filled[pod.name] = 0.0
    if with_unready:
        for pod in unready:
            filled[pod.name] = 0.0
    new_ratio = _ratio(pods, filled, target)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    replicas = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """A replica count the metrics asked for at a moment (seconds, any monotonic clock)."""

    time: float
    replicas: int


@dataclasses.dataclass(frozen=True)
class Normalized:
    """The replica count to set, why, and whether the bounds limited it."""

    replicas: int
    reason: str
    limited: str | None = None
    """``TooManyReplicas`` or ``TooFewReplicas`` when the bounds cut the recommendation."""


def scale_up_limit(current: int) -> int:
    """The most replicas one scale-up may reach: the default policies, 100% or 4 pods."""
    return current + max(current, 4)


def normalize(
    *,
    current: int,
    recommended: int,
    min_replicas: int,
    max_replicas: int,
    history: Sequence[Recommendation],
    now: float,
    scale_up_window: float,
    scale_down_window: float,
) -> Normalized:
    """Stabilise ``recommended`` over the windows of past recommendations (``history``, not
    including this one), limit the scale-up rate and clamp to the bounds."""
    up = down = recommended
    for rec in history:
        if rec.time > now - scale_up_window:
            up = min(up, rec.replicas)
        if rec.time > now - scale_down_window:
            down = max(down, rec.replicas)
    stabilized = min(max(current, up), down)
    reason = "recommended size matches current size"
    if stabilized != current:
        reason = f"{'above' if stabilized > current else 'below'} target"
    limited: str | None = None
    replicas = min(stabilized, scale_up_limit(current)) if stabilized > current else stabilized
    if replicas > max_replicas:
        replicas, limited = max_replicas, "TooManyReplicas"
    elif replicas < min_replicas:
        replicas, limited = min_replicas, "TooFewReplicas"
    return Normalized(replicas, reason, limited)


def bounded(current: int, min_replicas: int, max_replicas: int) -> Normalized | None:
    """What is decided before any metric is read: nothing for a target at 0 replicas
    (scaling disabled), and the bounds for a count outside them."""
    if current == 0 and min_replicas > 0:
        return Normalized(0, "scaling is disabled since the replica count of the target is zero")
    if current > max_replicas:
        return Normalized(max_replicas, "Current number of replicas above Spec.MaxReplicas")
    if current < min_replicas:
        return Normalized(min_replicas, "Current number of replicas below Spec.MinReplicas")
    return None


def counter_rate(samples: Sequence[tuple[float, float]]) -> float | None:
    """The per-second rate of a counter over ``(time, value)`` samples, oldest first; None
    with fewer than two samples or after a reset (the value went down)."""
    if len(samples) < 2:
        return None
    (t0, v0), (t1, v1) = samples[0], samples[-1]
    if t1 <= t0 or any(b[1] < a[1] for a, b in zip(samples, samples[1:], strict=False)):
        return None
    return (v1 - v0) / (t1 - t0)


def counter_total(text: str, counter: str) -> float | None:
    """The sum of every series of ``counter`` (e.g. ``mlops_requests_total``) in a metrics
    page; None when the page has none."""
    total: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == counter:
                total = (total or 0.0) + sample.value
    return total


def quantity_text(value: float) -> str:
    """A non-negative amount as the API server writes a quantity (``3.1666`` → ``3166m``)."""
    milli = math.floor(value * 1000 + 1e-9)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _quantity(text: object) -> float | None:
    if isinstance(text, int | float):
        return float(text)
    try:
        return float(parse_quantity(str(text)).value)
    except (QuantityError, ValueError):
        return None


def _condition(kind: str, ok: bool, reason: str, message: str, previous: Sequence[Json]) -> Json:
    before = next((c for c in previous if c.get("type") == kind), None)
    status = "True" if ok else "False"
    since = (
        before["lastTransitionTime"]
        if before is not None and before.get("status") == status
        else _now()
    )
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }


# --------------------------------------------------------------------------------------------
# The controller.
# --------------------------------------------------------------------------------------------


class MetricError(Exception):
    """A metric the sandbox cannot measure; ``reason`` is the HPA condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass
class _Target:
    """One metric of an HPA, ready to compute with."""

    pods: list[PodMetric]
    target: float
    utilization: bool
    status: Json
    """Its entry of ``status.currentMetrics`` (without the current value yet)."""


class Autoscaler:
    """Runs every HorizontalPodAutoscaler of the cluster against the runner's Deployments.

    Use as ``async with Autoscaler(runner)`` (after the runner is started), or call
    :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        runner: Runner,
        *,
        sync_seconds: float = 1.0,
        tolerance: float = TOLERANCE,
        rate_window_seconds: float = 5.0,
        scale_down_window: float = DEFAULT_SCALE_DOWN_WINDOW,
        scrape_timeout: float = 2.0,
    ) -> None:
        self._runner = runner
        self.sync_seconds = sync_seconds
        self.tolerance = tolerance
        self.rate_window_seconds = rate_window_seconds
        self.scale_down_window = scale_down_window
        self._scrape_timeout = aiohttp.ClientTimeout(total=scrape_timeout)
        self._hpas: Informer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._recommendations: dict[str, list[Recommendation]] = {}
        self._samples: dict[tuple[str, str, str], collections.deque[tuple[float, float]]] = {}
        self._written: dict[str, Json] = {}

    async def start(self) -> None:
        """Watch HPAs and start the sync loop; returns once they are listed."""
        self._hpas = Informer(
            self._runner.client, "/apis/autoscaling/v2/horizontalpodautoscalers", self._on_event
        )
        self._tasks = [
            asyncio.create_task(self._hpas.run(), name="sandbox-autoscaler-watch"),
            asyncio.create_task(self._loop(), name="sandbox-autoscaler"),
        ]
        await self._hpas.synced.wait()

    async def stop(self) -> None:
        """Stop syncing."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def __aenter__(self) -> Autoscaler:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _on_event(self, kind: str, hpa: Json) -> None:
        if kind == "DELETED":
            uid = str((hpa.get("metadata") or {}).get("uid", ""))
            self._recommendations.pop(uid, None)
            self._written.pop(uid, None)

    async def _loop(self) -> None:
        assert self._hpas is not None
        while True:
            for hpa in list(self._hpas.cache.values()):
                try:
                    await self.sync(hpa)
                except (ApiError, aiohttp.ClientError) as e:
                    logger.warning("HPA %s/%s: %s", *object_name(hpa), e)
                except Exception:
                    logger.exception("HPA %s/%s: sync failed.", *object_name(hpa))
            self._forget_gone_pods()
            await asyncio.sleep(self.sync_seconds)

    def _forget_gone_pods(self) -> None:
        pods = self._runner.pods.cache
        for key in [k for k in self._samples if (k[0], k[1]) not in pods]:
            del self._samples[key]

    async def sync(self, hpa: Json) -> None:
        """One reconcile of one HPA: measure, decide, scale, report."""
        meta, spec = hpa.get("metadata") or {}, hpa.get("spec") or {}
        namespace, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta["uid"]
        # What this controller wrote last is newer than its watch may be.
        before: Json = self._written.get(uid) or hpa.get("status") or {}
        previous: list[Json] = list(before.get("conditions") or [])
        ref = spec.get("scaleTargetRef") or {}
        min_replicas = int(spec.get("minReplicas", 1))
        max_replicas = int(spec.get("maxReplicas", 1))
        status: Json = {"lastScaleTime": before.get("lastScaleTime")}
        if ref.get("kind") != "Deployment" or ref.get("apiVersion") != "apps/v1":
            status["conditions"] = [
                _condition(
                    "AbleToScale",
                    False,
                    "FailedGetScale",
                    "the HPA controller was unable to get the target's current scale: the "
                    f"sandbox scales apps/v1 Deployments only, not {ref.get('kind')}",
                    previous,
                )
            ]
            await self._write_status(namespace, name, uid, status)
            return
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{ref.get('name')}"
        deployment = await self._runner.client.get_or_none(path)
        if deployment is None:
            status["conditions"] = [
                _condition(
                    "AbleToScale",
                    False,
                    "FailedGetScale",
                    "the HPA controller was unable to get the target's current scale: "
                    f'deployments.apps "{ref.get("name")}" not found',
                    previous,
                )
            ]
            await self._write_status(namespace, name, uid, status)
            return
        current = int((deployment.get("spec") or {}).get("replicas", 1))
        conditions = [
            _condition(
                "AbleToScale",
                True,
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale",
                previous,
            )
        ]
        decided = bounded(current, min_replicas, max_replicas)
        current_metrics: list[Json] = []
        if decided is not None and current == 0:
            conditions.append(
                _condition("ScalingActive", False, "ScalingDisabled", decided.reason, previous)
            )
        elif decided is None:
            pods = self._pods_of(namespace, deployment)
            recommended: int | None = None
            problem: MetricError | None = None
            for metric in spec.get("metrics") or []:
                try:
                    target = await self._measure(namespace, metric, pods)
                except MetricError as e:
                    problem = problem or e
                    continue
                count = metric_replicas(
                    current,
                    target.pods,
                    target.target,
                    utilization=target.utilization,
                    tolerance=self.tolerance,
                )
                current_metrics.append(_with_current(target))
                if count is None:
                    problem = problem or _unavailable(metric)
                    continue
                recommended = count if recommended is None else max(recommended, count)
            if recommended is None:
                problem = problem or MetricError("FailedGetPodsMetric", "no metrics to scale on")
                conditions.append(
                    _condition(
                        "ScalingActive",
                        False,
                        problem.reason,
                        f"the HPA was unable to compute the replica count: {problem}",
                        previous,
                    )
                )
            else:
                conditions.append(
                    _condition(
                        "ScalingActive",
                        True,
                        "ValidMetricFound",
                        "the HPA was able to successfully calculate a replica count",
                        previous,
                    )
                )
                decided = self._normalize(uid, spec, current, recommended)
        if decided is not None:
            conditions.append(_limited(decided.limited, previous))
        desired = decided.replicas if decided is not None else current
        if desired != current:
            await self._runner.client.merge_patch(path + "/scale", {"spec": {"replicas": desired}})
            logger.info(
                "HPA %s/%s: scaled %s from %d to %d (%s).",
                namespace,
                name,
                ref.get("name"),
                current,
                desired,
                decided.reason if decided else "",
            )
            conditions[0] = _condition(
                "AbleToScale",
                True,
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
                previous,
            )
            status["lastScaleTime"] = _now()
        status.update(
            currentReplicas=current,
            desiredReplicas=desired,
            currentMetrics=current_metrics or None,
            conditions=conditions,
            observedGeneration=meta.get("generation"),
        )
        await self._write_status(namespace, name, uid, status)

    def _normalize(self, uid: str, spec: Json, current: int, recommended: int) -> Normalized:
        behavior = spec.get("behavior") or {}
        down = (behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds")
        up = (behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds")
        down_window = self.scale_down_window if down is None else float(down)
        up_window = 0.0 if up is None else float(up)
        now = asyncio.get_running_loop().time()
        history = self._recommendations.setdefault(uid, [])
        decided = normalize(
            current=current,
            recommended=recommended,
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec.get("maxReplicas", 1)),
            history=history,
            now=now,
            scale_up_window=up_window,
            scale_down_window=down_window,
        )
        keep = max(up_window, down_window)
        history[:] = [r for r in history if r.time > now - keep]
        history.append(Recommendation(now, recommended))
        return decided

    def _pods_of(self, namespace: str, deployment: Json) -> list[Json]:
        """The live pods of the Deployment's selector (``matchLabels``)."""
        selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        found = []
        for (ns, _), pod in self._runner.pods.cache.items():
            meta = pod.get("metadata") or {}
            labels = meta.get("labels") or {}
            if ns != namespace or any(labels.get(k) != v for k, v in selector.items()):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if meta.get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
                continue
            found.append(pod)
        return found

    async def _measure(self, namespace: str, metric: Json, pods: Sequence[Json]) -> _Target:
        kind = metric.get("type")
        if kind == "Pods":
            pods_metric = metric.get("pods") or {}
            name = str((pods_metric.get("metric") or {}).get("name", ""))
            target = _quantity((pods_metric.get("target") or {}).get("averageValue"))
            if not name.endswith(RATE_SUFFIX) or target is None or target <= 0:
                raise MetricError(
                    "FailedGetPodsMetric",
                    f"unable to get metric {name}: the sandbox serves only <counter>{RATE_SUFFIX}"
                    f" rates of a pod's <counter>{COUNTER_SUFFIX} with an averageValue target",
                )
            counter = name.removesuffix(RATE_SUFFIX) + COUNTER_SUFFIX
            values = await asyncio.gather(*(self._rate(pod, counter) for pod in pods))
            return _Target(
                [PodMetric(_pod_name(p), _ready(p), v) for p, v in zip(pods, values, strict=True)],
                target,
                False,
                {"type": "Pods", "pods": {"metric": {"name": name}, "current": {}}},
            )
        if kind == "Resource" and (metric.get("resource") or {}).get("name") == "cpu":
            target_spec = (metric.get("resource") or {}).get("target") or {}
            measured = [(p, self._cpu(p), _cpu_request(p)) for p in pods]
            if target_spec.get("type") == "Utilization":
                lacking = [_pod_name(p) for p, _, request in measured if request is None]
                if lacking:
                    raise MetricError(
                        "FailedGetResourceMetric",
                        "failed to get cpu utilization: missing request for cpu in pod "
                        + lacking[0],
                    )
                utilization = float(target_spec.get("averageUtilization") or 0)
                return _Target(
                    [PodMetric(_pod_name(p), _ready(p), v, r or 1.0) for p, v, r in measured],
                    utilization,
                    True,
                    {"type": "Resource", "resource": {"name": "cpu", "current": {}}},
                )
            average = _quantity(target_spec.get("averageValue"))
            if average is None or average <= 0:
                raise MetricError("FailedGetResourceMetric", "invalid cpu target")
            return _Target(
                [PodMetric(_pod_name(p), _ready(p), v) for p, v, _ in measured],
                average,
                False,
                {"type": "Resource", "resource": {"name": "cpu", "current": {}}},
            )
        raise MetricError(
            "FailedGetObjectMetric" if kind == "Object" else "InvalidMetricSourceType",
            f"the sandbox cannot measure {kind} metrics (only Pods *{RATE_SUFFIX} and cpu)",
        )

    def _remember(self, key: tuple[str, str, str], value: float) -> list[tuple[float, float]]:
        now = asyncio.get_running_loop().time()
        samples = self._samples.setdefault(key, collections.deque())
        if samples and value < samples[-1][1]:
            samples.clear()  # a restart: the counter starts over
        samples.append((now, value))
        while len(samples) > 2 and samples[1][0] <= now - self.rate_window_seconds:
            samples.popleft()
        return list(samples)

    async def _rate(self, pod: Json, counter: str) -> float | None:
        """The pod's ``counter`` rate; None when it cannot be scraped or has no rate yet."""
        address = (pod.get("status") or {}).get("podIP")
        port, path = _metrics_endpoint(pod)
        if not address or port is None:
            return None
        try:
            async with self._runner.probe_session.get(
                f"http://{address}:{port}{path}", timeout=self._scrape_timeout
            ) as response:
                if response.status != 200:
                    return None
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        total = counter_total(text, counter)
        if total is None:
            return None
        namespace, name = object_name(pod)
        return counter_rate(self._remember((namespace, name, counter), total))

    def _cpu(self, pod: Json) -> float | None:
        """CPU cores the pod's processes use (their CPU time per second, over the window)."""
        namespace, name = object_name(pod)
        home = self._runner.pod_directory(namespace, name) / "home"
        used = cpu_seconds(home)
        if used is None:
            return None
        return counter_rate(self._remember((namespace, name, "cpu"), used))

    async def _write_status(self, namespace: str, name: str, uid: str, status: Json) -> None:
        if self._written.get(uid) == status:
            return
        path = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}"
        try:
            await self._runner.client.merge_patch(path + "/status", {"status": status})
        except ApiError as e:
            if e.status != 404:
                raise
            return
        self._written[uid] = status


def _with_current(target: _Target) -> Json:
    """The metric's ``currentMetrics`` entry: the average over the pods measured."""
    values = [p.value for p in target.pods if p.value is not None]
    entry: Json = {**target.status}
    source = entry["pods"] if entry["type"] == "Pods" else entry["resource"]
    source = {**source, "current": {}}
    if values:
        average = sum(values) / len(values)
        source["current"]["averageValue"] = quantity_text(average)
        if target.utilization:
            request = sum(p.request for p in target.pods if p.value is not None)
            source["current"]["averageUtilization"] = round(sum(values) * 100 / request)
    entry["pods" if entry["type"] == "Pods" else "resource"] = source
    return entry


def _limited(limited: str | None, previous: Sequence[Json]) -> Json:
    """The ``ScalingLimited`` condition."""
    if limited is None:
        message = "the desired count is within the acceptable range"
        return _condition("ScalingLimited", False, "DesiredWithinRange", message, previous)
    bound = ("more", "maximum") if limited == "TooManyReplicas" else ("less", "minimum")
    message = f"the desired replica count is {bound[0]} than the {bound[1]} replica count"
    return _condition("ScalingLimited", True, limited, message, previous)


def _unavailable(metric: Json) -> MetricError:
    if metric.get("type") == "Pods":
        name = ((metric.get("pods") or {}).get("metric") or {}).get("name")
        return MetricError(
            "FailedGetPodsMetric",
            f"unable to get metric {name}: no pod of the target has a value yet",
        )
    return MetricError(
        "FailedGetResourceMetric",
        "failed to get cpu utilization: no pod of the target has a value yet",
    )


def _pod_name(pod: Json) -> str:
    return object_name(pod)[1]


def _ready(pod: Json) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _metrics_endpoint(pod: Json) -> tuple[int | None, str]:
    """Where a pod serves its metrics: the ``prometheus.io`` annotations, else its first
    container port at ``/metrics``."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    path = str(annotations.get("prometheus.io/path") or "/metrics")
    port = annotations.get("prometheus.io/port")
    if port is not None and str(port).isdigit():
        return int(port), path
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if isinstance(declared.get("containerPort"), int):
                return int(declared["containerPort"]), path
    return None, path


def _cpu_request(pod: Json) -> float | None:
    """The CPU request of the pod's containers, in cores; None when one has none."""
    total = 0.0
    for container in (pod.get("spec") or {}).get("containers") or []:
        request = _quantity(((container.get("resources") or {}).get("requests") or {}).get("cpu"))
        if request is None:
            return None
        total += request
    return total


def cpu_seconds(home: pathlib.Path) -> float | None:
    """CPU seconds used so far by the processes working in ``home`` (a pod's container and
    everything it started); None when there are none."""
    total: float | None = None
    wanted = str(home)
    for process in psutil.process_iter(["cwd"]):
        with contextlib.suppress(psutil.Error):
            if process.info.get("cwd") != wanted:
                continue
            times = process.cpu_times()
            total = (total or 0.0) + times.user + times.system
    return total


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
