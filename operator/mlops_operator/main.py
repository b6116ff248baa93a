"""Start-up: kopf settings, the shared context, and ``mlops-operator run``."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from typing import Any

import kopf

from mlops_operator import kopf_settings, metrics, watches
from mlops_operator.artifacts.store import StorageError
from mlops_operator.context import Context
from mlops_operator.kube import client as k8s
from mlops_operator.kube.queue import Backoff, WorkQueue
from mlops_operator.kube.status import Events
from mlops_operator.monitoring.daemon import Monitor
from mlops_operator.peering import Gate, follow_kopf
from mlops_operator.registry import handlers as registry
from mlops_operator.serving import handlers as serving
from mlops_operator.settings import Settings
from mlops_operator.training import handlers as training

CONTROLLERS = {
    "trainingjobs": training.reconcile,
    "modelversions": registry.reconcile,
    "inferenceservices": serving.reconcile,
}
"""One reconcile per kind; ``watches`` holds the triggers that mark their keys dirty."""

PEERING_NAME = "default"
"""The KopfPeering (ClusterKopfPeering when cluster-wide) the replicas share: the chart's."""


def build_context(settings: Settings, kube: k8s.Kube) -> Context:
    """The operator's context with a work queue per kind and the monitor (not started)."""
    ctx = Context(settings=settings, kube=kube)
    ctx.events = Events(kube)
    for plural, reconcile in CONTROLLERS.items():

        async def run(key: tuple[str, str], reconcile: Any = reconcile) -> float | None:
            if ctx.gate is not None:
                await ctx.gate.wait()
            result: float | None = await reconcile(ctx, key)
            return result

        ctx.queues[plural] = WorkQueue(
            plural,
            run,
            workers=settings.workers,
            backoff=Backoff(cap=settings.max_retry_seconds),
            on_error=lambda kind: metrics.ERRORS.labels(kind).inc(),
            expected=(k8s.KubeError, StorageError),
        )
    ctx.monitor = Monitor(ctx)
    return ctx


async def start(ctx: Context) -> None:
    """Start the work queues and the monitor on the running loop."""
    for queue in ctx.queues.values():
        queue.start()
    assert ctx.monitor is not None
    ctx.monitor.start()


async def stop(ctx: Context) -> None:
    """Stop the monitor and the queues, let the Events in flight go out, close the client."""
    if ctx.monitor is not None:
        await ctx.monitor.stop()
    for queue in ctx.queues.values():
        await queue.stop()
    if ctx.events is not None:
        await ctx.events.drain()
    ctx.kube.close()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """kopf settings that suit structural CRDs; the context, its cache on kopf's indexes
    (kopf passes them to start-up handlers by name), the queues and the monitor."""
    ours = Settings()
    kopf_settings.apply(settings, resync_seconds=ours.resync_seconds)
    ctx = build_context(ours, k8s.Kube.from_environment())
    gate = memo.get("gate")
    ctx.gate = gate if isinstance(gate, Gate) else None
    watches.attach(ctx, kwargs)
    memo["ctx"] = ctx
    metrics.count_tasks(asyncio.get_running_loop())
    await start(ctx)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Stop the workers and release the API client."""
    ctx = memo.get("ctx")
    if isinstance(ctx, Context):
        await stop(ctx)


def run(
    *,
    namespaces: list[str],
    standalone: bool,
    verbose: bool,
    liveness: str | None = None,
    metrics_port: int = 0,
) -> int:
    """Run the operator until interrupted, in ``namespaces`` (none: the whole cluster);
    ``metrics_port`` 0 serves no metrics."""
    kopf.configure(verbose=verbose, log_prefix=True)
    if not verbose:  # one "Handler succeeded" line per watch event is noise at any scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if metrics_port:
        metrics.serve(metrics_port)
    # kopf pauses a replica only for a peer of higher priority: give each replica its own,
    # so with several replicas exactly one (the highest) is active.
    priority = int(os.environ.get("MLOPS_PEERING_PRIORITY") or secrets.randbelow(2**31))
    gate = Gate(settle=0.0 if standalone else Settings().peering_settle_seconds)
    follow_kopf(gate)
    kopf.run(
        priority=priority,
        standalone=standalone,
        # Named, peering is required: a replica starts paused and acts only once it has read
        # the peering object (found by name) and seen no peer above it. Unnamed, kopf would
        # start every replica active until its first look at the peers.
        peering_name=None if standalone else PEERING_NAME,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        memo=kopf.Memo(gate=gate),
    )
    return 0
