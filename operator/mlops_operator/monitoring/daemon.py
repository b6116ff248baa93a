"""The monitor: every ``intervalSeconds``, measure each monitored service's policies (its
pods' ``/metrics``, PromQL) and hand the measurement to the service's reconcile, which judges
it (``monitoring.judge``) and remediates (``serving.plan``). Measuring decides nothing; the
monitor is memory only, rebuilt by the reconciles that tell it which services to watch."""

from __future__ import annotations

import asyncio
import heapq
import logging
from typing import TYPE_CHECKING

from mlops_operator.api.inferenceservice import InferenceServiceSpec
from mlops_operator.kube import client as k8s
from mlops_operator.kube import names
from mlops_operator.kube.status import now
from mlops_operator.monitoring.aggregate import Measurement, aggregate
from mlops_operator.monitoring.judge import Measured
from mlops_operator.monitoring.measure import PrometheusError, query_scalar, render_query, scrape

if TYPE_CHECKING:
    from mlops_operator.context import Context

logger = logging.getLogger(__name__)

CONCURRENCY = 16
"""Services measured at once."""

Key = tuple[str, str]


async def _ready_pod_metrics(
    ctx: Context, namespace: str, name: str, version: int
) -> tuple[dict[str, str], dict[str, str]]:
    """``/metrics`` of every ready pod serving ``version``: texts and failures, by pod name."""
    pods = await ctx.kube.list(
        k8s.PODS,
        namespace,
        labels={names.LABEL_INFERENCESERVICE: name, names.LABEL_VERSION: str(version)},
    )
    urls: dict[str, str] = {}
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if ready and status.get("podIP"):
            urls[pod["metadata"]["name"]] = (
                f"http://{status['podIP']}:{names.PREDICTOR_PORT}/metrics"
            )
    answers = await asyncio.gather(*(scrape(url) for url in urls.values()), return_exceptions=True)
    texts: dict[str, str] = {}
    failed: dict[str, str] = {}
    for pod_name, answer in zip(urls, answers, strict=True):
        if isinstance(answer, str):
            texts[pod_name] = answer
        else:
            failed[pod_name] = str(answer)
    return texts, failed


async def measure(
    ctx: Context,
    namespace: str,
    name: str,
    spec: InferenceServiceSpec,
    version: int,
    snapshot_key: Key,
) -> dict[str, Measurement | None]:
    """One measurement per policy; ``None`` where it could not be measured."""
    assert spec.monitoring is not None
    result: dict[str, Measurement | None] = {}
    builtins = [p for p in spec.monitoring.metrics if p.builtin is not None]
    if builtins:
        kept = ctx.snapshots.get(snapshot_key)
        previous = kept[1] if kept is not None and kept[0] == version else None
        texts, failed = await _ready_pod_metrics(ctx, namespace, name, version)
        combined = aggregate(texts, spec.model, previous, failed=failed)
        ctx.snapshots[snapshot_key] = (version, combined.snapshot)  # rates never span versions
        for policy in builtins:
            assert policy.builtin is not None
            result[policy.name] = combined.measurement(policy.builtin, policy.class_)
    for policy in spec.monitoring.metrics:
        if policy.prometheus is None:
            continue
        address = policy.prometheus.address or ctx.settings.prometheus_url
        if not address:
            result[policy.name] = None
            continue
        query = render_query(
            policy.prometheus.query,
            model=spec.model,
            version=version,
            namespace=namespace,
            service=name,
        )
        try:
            answer = await query_scalar(address, query)
        except PrometheusError as exc:
            logger.warning("%s/%s: policy %s: %s", namespace, name, policy.name, exc)
            result[policy.name] = None
            continue
        result[policy.name] = Measurement(value=answer.value, samples=None, message=answer.message)
    return result


class Monitor:
    """Measures each tracked service every interval, then marks it dirty."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._intervals: dict[Key, float] = {}
        self._due: list[tuple[float, Key]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def track(self, key: Key, interval: float) -> None:
        """Measure ``key`` every ``interval`` seconds (the first in one interval)."""
        if self._intervals.get(key) == interval:
            return
        first = key not in self._intervals
        self._intervals[key] = interval
        if first:
            loop = asyncio.get_running_loop()
            heapq.heappush(self._due, (loop.time() + interval, key))
            self._wake.set()

    def untrack(self, key: Key) -> None:
        """Stop measuring ``key``."""
        self._intervals.pop(key, None)

    @property
    def tracked(self) -> int:
        """Services being measured."""
        return len(self._intervals)

    def start(self) -> None:
        """Start on the running loop."""
        self._task = asyncio.create_task(self._loop(), name="monitor")

    async def stop(self) -> None:
        """Stop measuring."""
        for task in [self._task, *self._running]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._task, *self._running] if t is not None), return_exceptions=True
        )

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            delay = self._due[0][0] - loop.time() if self._due else 3600.0
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                continue
            _, key = heapq.heappop(self._due)
            interval = self._intervals.get(key)
            if interval is None:
                continue
            heapq.heappush(self._due, (loop.time() + interval, key))
            task = asyncio.create_task(self._measure(key))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _measure(self, key: Key) -> None:
        ctx = self._ctx
        namespace, name = key
        async with self._limit:
            obj = ctx.cache.get(k8s.INFERENCESERVICES, namespace, name)
            if obj is None:
                self.untrack(key)
                return
            version = (obj.get("status") or {}).get("currentVersion")
            try:
                spec = InferenceServiceSpec.model_validate(obj.get("spec") or {})
            except ValueError:
                return  # the reconcile reports an invalid spec
            if version is None or spec.monitoring is None:
                return
            moment = now()
            try:
                values = await measure(ctx, namespace, name, spec, int(version), key)
            except k8s.KubeError as exc:
                logger.warning("%s/%s: measuring failed: %s", namespace, name, exc)
                return
            ctx.measured[key] = Measured(time=moment, version=int(version), values=values)
            ctx.enqueue("inferenceservices", namespace, name)
