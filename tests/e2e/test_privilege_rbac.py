"""Least privilege, measured: the (verb, resource) pairs the operator's processes sent to the
API during the whole e2e suite (the emulator counts requests by User-Agent: kopf's and the
operator's own client, ``mlops-operator``) equal the rules of the chart's Role and
ClusterRole for a namespace-scoped install like the suite's operators — no permission
missing, and none granted that nothing used, except the few listed below with the reason.
tests/e2e/conftest.py runs this after every other e2e test."""

from __future__ import annotations

from mlops_sandbox.cluster import Sandbox
from tests.e2e.conftest import Audit
from tests.support.tools import helm_template

OPERATOR_CLIENTS = frozenset({"kopf", "mlops-operator"})
"""User-Agent product names of the operator process: kopf's client and ours."""

_LAGGING_WATCH = (
    "apply_child (kube/apply.py) reads a child once when its create answers 409 because the "
    "watch lags behind the API: a race the suite does not provoke"
)
GRANTED_BUT_NOT_EXERCISED: dict[tuple[str, str], str] = {
    ("get", "jobs"): _LAGGING_WATCH,
    ("get", "deployments"): _LAGGING_WATCH,
    ("get", "services"): _LAGGING_WATCH,
    ("get", "horizontalpodautoscalers"): _LAGGING_WATCH,
    ("get", "modelversions"): (
        "training/handlers.py reads the ModelVersion when its create answers 409 (an operator "
        "restarted between creating it and writing the TrainingJob's status)"
    ),
    ("patch", "jobs"): (
        "apply_child patches a training Job whose built spec changed (an operator upgrade that "
        "builds it differently); the suite's Jobs never change"
    ),
    ("patch", "services"): (
        "apply_child patches a predictor Service whose built spec changed; the suite's never do"
    ),
    ("patch", "horizontalpodautoscalers"): (
        "a changed spec.autoscaling patches the autoscaler; the suite sets it once"
    ),
    ("delete", "horizontalpodautoscalers"): (
        "removing spec.autoscaling deletes the autoscaler (serving/handlers.py); the suite "
        "never removes it"
    ),
    ("get", "kopfpeerings"): (
        "the chart's peering rule grants kopf's documented verbs; kopf reads the peering object "
        "through its list and watch, so get is never sent"
    ),
    ("delete", "jobs"): (
        "a TrainingJob whose spec changes while its Job runs has the superseded Job deleted "
        "(training/handlers.py); the suite never edits a running TrainingJob"
    ),
}
"""Granted pairs the e2e suite never sends, and why the chart keeps them: paths of the
operator's code that the suite does not reach (tests/unit/packaging/test_chart_rbac.py
holds the code's calls to operator/mlops_operator/rbac.py)."""


def chart_rules() -> set[tuple[str, str]]:
    """(verb, resource) of every rule of the chart's Roles and ClusterRoles, rendered by helm
    for an operator watching one namespace with peering on (as the e2e operators run)."""
    docs = helm_template(
        "--set",
        "watch.namespaces={ml-team}",
        # The suite runs two replicas with peering too (test_chaos_peering.py).
        "--set",
        "peering.enabled=true",
    )
    pairs = set()
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc.get("rules") or []:
                for resource in rule["resources"]:
                    pairs |= {(verb, resource) for verb in rule["verbs"]}
    return pairs


def operator_requests(sandbox: Sandbox) -> set[tuple[str, str]]:
    """(verb, resource) of every request the operator's processes sent (discovery aside: every
    authenticated client may read it)."""
    counts = dict(sandbox.api.request_counts)
    return {
        (verb, resource)
        for (client, verb, resource) in counts
        if client in OPERATOR_CLIENTS and resource != "discovery"
    }


def test_the_operator_uses_exactly_the_permissions_the_chart_grants(
    audit: Audit, sandbox: Sandbox
) -> None:
    used = operator_requests(sandbox)
    granted = chart_rules()
    assert used - granted == set(), "the operator sent requests the chart does not allow"
    not_exercised = granted - used - set(GRANTED_BUT_NOT_EXERCISED)
    print(f"\noperator requests: {sorted(used)}\ngranted, never used: {sorted(not_exercised)}")
    assert audit.whole_suite_passed(), (
        "the chart's grants are compared with the requests of the whole e2e suite: run all of "
        f"tests/e2e (not run or not passed: {sorted(audit.collected - audit.passed)}); "
        f"granted and unused so far: {sorted(not_exercised)}"
    )
    assert not_exercised == set(), (
        f"the chart grants permissions the operator never used: {sorted(not_exercised)}"
    )
    # A listed pair may be used in a run that hits its race (a kill between a create and the
    # status write); it must still be granted, or the list is stale.
    assert set(GRANTED_BUT_NOT_EXERCISED) <= granted
