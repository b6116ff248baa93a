"""A rollback with an API error at its Nth write, for every N: the retried reconcile still
ends rolled back (the writes: the ModelVersion's degradation mark, the Deployment's patch,
the service's status, the Events)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from mlops_operator.kube import client as k8s
from mlops_operator.monitoring.aggregate import Measurement
from mlops_operator.monitoring.judge import Measured
from mlops_sandbox.faults import Fault
from tests.controllers.conftest import Cluster, state
from tests.controllers.test_inferenceservice_reconcile import IS, SVC, history, monitored, serve

T0 = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
_ticks = itertools.count(1)
WRITES = "create,patch,update,delete"
ROLLBACK_WRITES = 5
"""What a rollback writes: the ModelVersion's degradation mark, the Deployment, the status,
and its Events; a 6th fault finds no write to fail, which proves the list whole."""


@pytest.mark.parametrize("nth", [1, 2, 3, 4, 5, 6])
async def test_a_rollback_with_an_error_at_its_nth_write_still_rolls_back(
    cluster: Cluster, nth: int
) -> None:
    await cluster.version("iris", 1)
    await cluster.version("iris", 2)
    await serve(cluster, **monitored())
    fault = cluster.sandbox.inject(
        Fault(status=503, verb=WRITES, namespace=cluster.namespace, after=nth - 1)
    )
    try:
        cluster.ctx.measured[(cluster.namespace, SVC)] = Measured(
            time=T0 + dt.timedelta(minutes=next(_ticks)),
            version=2,
            values={"online-accuracy": Measurement(value=0.5, samples=100, message="")},
        )
        for _ in range(3):  # the work queue retries a failed reconcile
            try:
                await cluster.reconcile(IS, SVC)
                break
            except k8s.Transient:
                continue
    finally:
        cluster.sandbox.clear_faults()
    await cluster.reconcile(IS, SVC)

    assert fault.hits == (1 if nth <= ROLLBACK_WRITES else 0)
    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["currentVersion"] == 1
    assert history(isvc) == [(2, "Initial"), (1, "RolledBack")]
    assert state(isvc, "RolledBack") == ("True", "RolledBack")
    deployment = await cluster.get(k8s.DEPLOYMENTS, f"{SVC}-predictor")
    assert deployment is not None
    assert deployment["spec"]["template"]["metadata"]["labels"]["mlops.dev/version"] == "1"
