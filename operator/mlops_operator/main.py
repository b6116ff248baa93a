"""Start-up: kopf settings, the shared context, and ``mlops-operator run``."""

from __future__ import annotations

import os
import secrets
from typing import Any

import kopf

from mlops_operator import kopf_settings, metrics
from mlops_operator.context import Context
from mlops_operator.kube import client as k8s
from mlops_operator.monitoring import daemon as monitor
from mlops_operator.registry import handlers as modelversion
from mlops_operator.serving import handlers as inferenceservice
from mlops_operator.settings import Settings
from mlops_operator.training import handlers as trainingjob

HANDLER_MODULES = (trainingjob, modelversion, inferenceservice, monitor)
"""Imported for their kopf decorators; listed so the import is not an accident."""


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Operator settings that suit structural CRDs, and the shared context."""
    kopf_settings.apply(settings)
    memo["ctx"] = Context(settings=Settings(), kube=k8s.Kube.from_environment())


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Release the API client."""
    ctx = memo.get("ctx")
    if isinstance(ctx, Context):
        ctx.kube.close()


def run(
    *,
    namespace: str | None,
    standalone: bool,
    verbose: bool,
    liveness: str | None = None,
    metrics_port: int = 0,
) -> int:
    """Run the operator until interrupted; ``metrics_port`` 0 serves no metrics."""
    kopf.configure(verbose=verbose, log_prefix=True)
    if metrics_port:
        metrics.serve(metrics_port)
    # kopf pauses a replica only for a peer of higher priority: give each replica its own,
    # so with several replicas exactly one (the highest) is active.
    priority = int(os.environ.get("MLOPS_PEERING_PRIORITY") or secrets.randbelow(2**31))
    kopf.run(
        priority=priority,
        standalone=standalone,
        clusterwide=namespace is None,
        namespaces=[namespace] if namespace else [],
        liveness_endpoint=liveness,
        memo=kopf.Memo(),
    )
    return 0
