"""Every Kubernetes permission the operator needs, and why: the single list the Helm chart's
RBAC templates must grant exactly. ``tests/unit/packaging/test_chart_rbac.py`` checks the
operator's code paths against this list, ``tests/integration/packaging/test_chart_render.py``
this list against the rendered chart.

Two sources of API calls: our own, all through ``k8s.Kube`` (get/list/create/patch, the
status subresource), and kopf's: watching the resources that have handlers (list, watch,
and patch for its progress annotations and finalizers), posting Events, observing CRDs (and
namespaces when namespace-scoped) and, with several replicas, the peering objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from mlops_operator.api.base import GROUP


class Scope(Enum):
    """Where a rule is granted."""

    NAMESPACED = "namespaced"
    """On namespaced resources: a ClusterRole when cluster-wide, a Role per watched namespace."""

    CLUSTER = "cluster"
    """On cluster-scoped resources: always a ClusterRole."""


class Mode(Enum):
    """Which operator deployments need a rule."""

    ALWAYS = "always"
    READS_SECRETS = "reads-secrets"
    CLUSTERWIDE = "clusterwide"
    NAMESPACED = "namespaced"
    CLUSTERWIDE_PEERING = "clusterwide-peering"
    NAMESPACED_PEERING = "namespaced-peering"


@dataclass(frozen=True)
class Rule:
    """One resource (``plural`` or ``plural/subresource``) of one API group and its verbs."""

    group: str
    resource: str
    verbs: frozenset[str]
    why: str
    scope: Scope = Scope.NAMESPACED
    mode: Mode = Mode.ALWAYS


def _verbs(*names: str) -> frozenset[str]:
    return frozenset(names)


KOPF_EVENT_WATCH = _verbs("list", "watch")
"""kopf only watches (indexes and ``on.event`` handlers): it stores no state on objects."""

PEERING = _verbs("get", "list", "watch", "patch")
"""kopf's peering: read the peers' keep-alives and patch its own into the object's status."""

RULES: tuple[Rule, ...] = (
    Rule(
        GROUP,
        "trainingjobs",
        KOPF_EVENT_WATCH | _verbs("create"),
        "watch state and triggers; a retraining creates a TrainingJob",
    ),
    Rule(GROUP, "trainingjobs/status", _verbs("patch"), "phase, conditions, results"),
    Rule(
        GROUP,
        "modelversions",
        KOPF_EVENT_WATCH | _verbs("get", "create", "patch"),
        "watch state; registration creates a ModelVersion; monitoring marks one degraded",
    ),
    Rule(GROUP, "modelversions/status", _verbs("patch"), "verification, gates, servedBy"),
    Rule(GROUP, "inferenceservices", KOPF_EVENT_WATCH, "watch state and triggers"),
    Rule(GROUP, "inferenceservices/status", _verbs("patch"), "rollout, evaluations, history"),
    Rule(
        "batch",
        "jobs",
        KOPF_EVENT_WATCH | _verbs("get", "create", "patch", "delete"),
        "training Jobs; a Job of a superseded spec is deleted",
    ),
    Rule(
        "apps",
        "deployments",
        KOPF_EVENT_WATCH | _verbs("get", "create", "patch"),
        "predictor Deployments",
    ),
    Rule("", "services", KOPF_EVENT_WATCH | _verbs("get", "create", "patch"), "predictor Services"),
    Rule(
        "autoscaling",
        "horizontalpodautoscalers",
        KOPF_EVENT_WATCH | _verbs("get", "create", "patch", "delete"),
        "predictor autoscalers; deleted when spec.autoscaling is removed",
    ),
    Rule("", "pods", _verbs("list"), "why a pod failed; scraping the predictors' metrics"),
    Rule(
        "",
        "secrets",
        _verbs("get"),
        "S3 credentials named by the operator's settings (not with s3_check_credentials=false)",
        mode=Mode.READS_SECRETS,
    ),
    Rule("", "events", _verbs("create"), "Events about the objects and what was done to them"),
    Rule(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        _verbs("list", "watch"),
        "kopf notices CRDs installed or removed while it runs",
        Scope.CLUSTER,
    ),
    Rule(
        "",
        "namespaces",
        _verbs("list", "watch"),
        "a namespace-scoped kopf checks which of its namespaces exist",
        Scope.CLUSTER,
        Mode.NAMESPACED,
    ),
    Rule(
        "kopf.dev",
        "clusterkopfpeerings",
        PEERING,
        "peering between replicas of a cluster-wide operator",
        Scope.CLUSTER,
        Mode.CLUSTERWIDE_PEERING,
    ),
    Rule(
        "kopf.dev",
        "kopfpeerings",
        PEERING,
        "peering between replicas of a namespace-scoped operator",
        Scope.NAMESPACED,
        Mode.NAMESPACED_PEERING,
    ),
)


def rules(*, clusterwide: bool, peering: bool, secrets: bool = True) -> list[Rule]:
    """The rules one deployment of the operator needs; ``secrets`` False for an operator that
    never reads Secrets (``s3_check_credentials=false``), or whose Secret access is granted
    apart, in the namespaces listed by the chart's ``rbac.secretNamespaces``."""
    modes = {Mode.ALWAYS, Mode.CLUSTERWIDE if clusterwide else Mode.NAMESPACED}
    if secrets:
        modes.add(Mode.READS_SECRETS)
    if peering:
        modes.add(Mode.CLUSTERWIDE_PEERING if clusterwide else Mode.NAMESPACED_PEERING)
    return [r for r in RULES if r.mode in modes]


SECRETS_RULE = next(r for r in RULES if r.resource == "secrets")
"""The one rule the chart may grant apart, in a Role per ``rbac.secretNamespaces`` entry."""


def grants(rules: Iterable[Rule]) -> set[tuple[str, str, str]]:
    """Flatten rules to ``(apiGroup, resource, verb)`` triples, for comparing with RBAC objects."""
    return {(r.group, r.resource, verb) for r in rules for verb in r.verbs}
