"""The Helm chart checked with the real tools: ``helm lint --strict``, ``helm template`` for
the default and the all-features values, every manifest validated against the Kubernetes
OpenAPI schemas, the values schema rejecting bad values, and the RBAC it grants equal to
``mlops_operator.rbac``. helm comes from hack/fetch_tools.py (fetched on first use)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from mlops_operator import rbac
from tests.support.tools import CHART, helm, helm_template

ALL_FEATURES = CHART / "ci" / "all-features-values.yaml"
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
"""The chart's minimum Kubernetes version and the newest the validator knows."""

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def render() -> Render:
    """``helm template`` with extra arguments, as a list of manifests (CRDs included)."""
    return functools.partial(helm_template, "--namespace", "mlops-system", "--include-crds")


def _one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def _kinds(manifests: list[dict[str, Any]]) -> set[str]:
    return {m["kind"] for m in manifests}


def _granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("values", [[], ["-f", str(ALL_FEATURES)]], ids=["default", "all"])
def test_helm_lint_strict_passes(values: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(
    "values",
    [[], ["-f", str(ALL_FEATURES), "--api-versions", "monitoring.coreos.com/v1"]],
    ids=["default", "all"],
)
def test_every_rendered_manifest_is_valid_kubernetes(
    render: Render, values: list[str], kube_version: str
) -> None:
    manifests = render("--kube-version", kube_version, *values)
    crds = {
        (c["spec"]["group"], c["spec"]["names"]["kind"]): c
        for c in manifests
        if c["kind"] == "CustomResourceDefinition"
    }
    for manifest in manifests:
        group = manifest["apiVersion"].rpartition("/")[0]
        if group == "monitoring.coreos.com":
            continue  # the Prometheus Operator's CRDs are not ours to ship or validate
        crd = crds.get((group, manifest["kind"]))
        if crd is not None:  # a custom resource: validate it against its CRD's schema
            schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            jsonschema.validate(manifest, schema)
            continue
        kubernetes_validate.validate(manifest, kube_version, strict=True)


def _crd_names(manifests: list[dict[str, Any]]) -> set[str]:
    return {m["metadata"]["name"] for m in manifests if m["kind"] == "CustomResourceDefinition"}


def _container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _one(manifests, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _container(manifests)["env"]}


def test_default_install_is_clusterwide_standalone_with_exact_rbac(render: Render) -> None:
    manifests = render()
    assert {"Role", "RoleBinding", "ServiceMonitor", "ConfigMap"}.isdisjoint(_kinds(manifests))
    assert {"ClusterKopfPeering", "KopfPeering"}.isdisjoint(_kinds(manifests))
    # Peering is off: none of kopf's peering CRDs either.
    assert _crd_names(manifests) == {
        "trainingjobs.mlops.dev",
        "modelversions.mlops.dev",
        "inferenceservices.mlops.dev",
    }
    role = _one(manifests, "ClusterRole")
    assert _granted(role) == rbac.grants(rbac.rules(clusterwide=True, peering=False))
    args = _one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--standalone" in args and "--namespace" not in args


def test_several_replicas_run_with_peering(render: Render) -> None:
    manifests = render("--set", "replicas=3")
    deployment = _one(manifests, "Deployment")
    assert "--standalone" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert _one(manifests, "ClusterKopfPeering")["metadata"]["name"] == "default"
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= _crd_names(manifests)
    # Created after the CRDs, which helm needs to know its kind.
    peering = _one(manifests, "ClusterKopfPeering")
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    role = _one(manifests, "ClusterRole")
    assert _granted(role) == rbac.grants(rbac.rules(clusterwide=True, peering=True))


def test_peering_crds_can_be_left_to_another_kopf_operator(render: Render) -> None:
    manifests = render("--set", "replicas=2", "--set", "peering.crds=false")
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}.isdisjoint(
        _crd_names(manifests)
    )
    assert _one(manifests, "ClusterKopfPeering")["metadata"]["name"] == "default"


def test_several_namespaces_get_a_role_each_and_are_all_watched(render: Render) -> None:
    manifests = render("--set", "watch.namespaces={team-a,team-b}", "--set", "replicas=2")
    roles = {m["metadata"]["namespace"]: m for m in manifests if m["kind"] == "Role"}
    bindings = {m["metadata"]["namespace"] for m in manifests if m["kind"] == "RoleBinding"}
    assert set(roles) == bindings == {"team-a", "team-b"}
    wanted = rbac.rules(clusterwide=False, peering=True)
    for role in roles.values():
        assert _granted(role) == rbac.grants(r for r in wanted if r.scope is rbac.Scope.NAMESPACED)
    args = _container(manifests)["args"]
    watched = [args[i + 1] for i, arg in enumerate(args) if arg == "--namespace"]
    assert watched == ["team-a", "team-b"]
    peerings = {m["metadata"]["namespace"] for m in manifests if m["kind"] == "KopfPeering"}
    assert peerings == {"team-a", "team-b"}
    assert "ClusterKopfPeering" not in _kinds(manifests)


def test_secret_access_can_be_narrowed_to_listed_namespaces(render: Render) -> None:
    manifests = render("--set", "rbac.secretNamespaces={team-a,team-b}")
    cluster_role = _one(manifests, "ClusterRole")
    assert _granted(cluster_role) == rbac.grants(
        rbac.rules(clusterwide=True, peering=False, secrets=False)
    )
    roles = {m["metadata"]["namespace"]: m for m in manifests if m["kind"] == "Role"}
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert role["metadata"]["name"].endswith("-secrets")
        assert _granted(role) == rbac.grants([rbac.SECRETS_RULE])
    bindings = [m for m in manifests if m["kind"] == "RoleBinding"]
    assert {b["roleRef"]["name"] for b in bindings} == {roles["team-a"]["metadata"]["name"]}


@pytest.mark.parametrize("namespaced", [False, True], ids=["clusterwide", "namespaced"])
def test_an_operator_that_checks_no_credentials_may_read_no_secret(
    render: Render, namespaced: bool
) -> None:
    scope = ["--set", "watch.namespaces={team-a}"] if namespaced else []
    manifests = render(
        "--set", "settings.s3.checkCredentials=false",
        "--set", "rbac.secretNamespaces={team-a}",
        *scope,
    )  # fmt: skip
    for role in (m for m in manifests if m["kind"] in ("Role", "ClusterRole")):
        assert not {g for g in _granted(role) if g[1] == "secrets"}, role["metadata"]["name"]
    assert _env(manifests)["MLOPS_S3_CHECK_CREDENTIALS"] == "false"


@pytest.mark.parametrize("peering", [False, True], ids=["standalone", "peering"])
def test_namespace_scoped_install_uses_a_role_with_exact_rbac(
    render: Render, peering: bool
) -> None:
    manifests = render("--set", "watch.namespaces={ml-team}", "--set", f"peering.enabled={peering}")
    role = _one(manifests, "Role")
    assert role["metadata"]["namespace"] == "ml-team"
    binding = _one(manifests, "RoleBinding")
    assert binding["subjects"][0]["namespace"] == "mlops-system"
    namespaced, cluster = rbac.Scope.NAMESPACED, rbac.Scope.CLUSTER
    wanted = rbac.rules(clusterwide=False, peering=peering)
    assert _granted(role) == rbac.grants(r for r in wanted if r.scope is namespaced)
    cluster_role = _one(manifests, "ClusterRole")
    assert _granted(cluster_role) == rbac.grants(r for r in wanted if r.scope is cluster)
    container = _one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--namespace") + 1] == "ml-team"
    assert ("--standalone" in container["args"]) is not peering
    if peering:
        assert _one(manifests, "KopfPeering")["metadata"]["namespace"] == "ml-team"


def test_operator_pod_is_restricted_and_probed(render: Render) -> None:
    pod = _one(render(), "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == "mlops-operator/operator:0.1.0"  # appVersion
    liveness = container["args"][container["args"].index("--liveness") + 1]
    assert liveness == "http://0.0.0.0:8080/healthz"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8080,
        "metrics": 9090,
    }
    assert container["resources"]["requests"]


def test_one_registry_names_both_images(render: Render) -> None:
    manifests = render("--set", "image.registry=registry.example.com/ml/", "--set", "image.tag=1.2")
    assert _container(manifests)["image"] == "registry.example.com/ml/mlops-operator/operator:1.2"
    runtime = _env(manifests)["MLOPS_RUNTIME_IMAGE"]
    assert runtime == "registry.example.com/ml/mlops-operator/runtime:1.2"
    assert _env(render())["MLOPS_RUNTIME_IMAGE"] == "mlops-operator/runtime:0.1.0"


def test_settings_reach_the_operator_as_mlops_env(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_operator.settings import Settings

    pod = _one(render("-f", str(ALL_FEATURES)), "Deployment")["spec"]["template"]["spec"]
    for item in pod["containers"][0]["env"]:
        if item["name"].startswith("MLOPS_"):
            monkeypatch.setenv(item["name"], item["value"])
    settings = Settings()
    assert settings.s3_endpoint == "http://minio.minio.svc:9000"
    assert settings.s3_bucket == "ml-artifacts"
    assert settings.s3_prefix == "prod/models"
    assert settings.s3_region == "eu-west-1"
    assert settings.s3_credentials_secret == "minio-credentials"
    assert settings.runtime_image == "registry.example.com/mlops/runtime:0.1.0-rc1"
    assert settings.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert settings.allowed_estimator_prefixes == ["sklearn.", "xgboost."]
    assert settings.job_ttl_seconds == 3600
    assert settings.s3_check_credentials is True
    assert settings.training_pod.service_account_name == "ml-trainer"
    assert settings.training_pod.node_selector == {"nvidia.com/gpu.present": "true"}
    assert settings.training_pod.tolerations is not None
    assert settings.training_pod.tolerations[0].operator == "Exists"
    assert settings.serving_pod.service_account_name == "ml-server"
    assert settings.serving_pod.affinity is not None
    assert settings.serving_pod.annotations == {"example.com/team": "ml-platform"}


def test_service_monitor_only_where_the_api_exists(render: Render) -> None:
    values = ["-f", str(ALL_FEATURES)]
    assert "ServiceMonitor" not in _kinds(render(*values))
    monitor = _one(render(*values, "--api-versions", "monitoring.coreos.com/v1"), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = next(m for m in render(*values) if m["kind"] == "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()


def test_grafana_dashboard_shows_the_loop(render: Render) -> None:
    config_map = _one(render("--set", "monitoring.dashboard.enabled=true"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["mlops-operator.json"])
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "mlops_online_window_correct",
        "mlops_drift_psi_max",
        "mlops_request_duration_seconds_bucket",
        "mlops_requests_total",
        "mlops_operator_served_version",
        "mlops_operator_rollbacks_total",
        "mlops_operator_retrainings_total",
    ):
        assert metric in queries


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        (["--set", "replicas=-1"], "replicas"),
        (["--set", "replicas=two"], "replicas"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "tolerateEverything=true"], "tolerateEverything"),
        (["--set", "settings.s3.bucket=x"], "bucket"),
        (["--set", "settings.s3.endpoint=minio:9000"], "endpoint"),
        (["--set", "watch.namespaces={Not_A_Namespace}"], "namespaces"),
        (["--set", "metrics.port=80"], "port"),
        (["--set", "settings.trainingPod.tolerations[0].operator=Maybe"], "operator"),
        (["--set", "settings.servingPod.nodeName=n1"], "nodeName"),
    ],
    ids=[
        "negative-replicas",
        "string-replicas",
        "pull-policy",
        "unknown-key",
        "short-bucket",
        "endpoint-no-scheme",
        "bad-namespace",
        "privileged-port",
        "toleration-operator",
        "unknown-pod-field",
    ],
)
def test_values_schema_rejects_bad_values(override: list[str], complaint: str) -> None:
    result = helm("template", "mlops", str(CHART), *override)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_bad_values_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text("replicas: -1\nunknownKey: true\n")
    result = helm("template", "mlops", str(CHART), "-f", str(bad))
    assert result.returncode != 0
    assert "replicas" in result.stderr and "unknownKey" in result.stderr


def test_notes_say_what_to_apply_next() -> None:
    result = helm("install", "mlops", str(CHART), "--dry-run=client", "--namespace", "mlops-system")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl create secret generic mlops-s3-credentials" in notes
    assert "examples/trainingjob-classification.yaml" in notes
    assert "examples/inferenceservice.yaml" in notes
    assert "python examples/upload-datasets.py --bucket mlops-artifacts" in notes
    assert "Runtime image (training and model-server pods): mlops-operator/runtime:0.1.0" in notes
    assert "make crds-apply" in notes
