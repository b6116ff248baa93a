"""The sandbox as a person drives it with the real kubectl (the one ``make tools`` fetches):
plain ``apply -f`` with client validation, ``explain``, ``get`` with printer columns,
``wait``, ``logs job/…``, ``describe`` and server-side apply with field managers."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import subprocess
from typing import Any

import kubernetes
import pytest
import yaml

from mlops_sandbox.cluster import Sandbox
from tests.support import eventually
from tests.support.tools import tool

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def kubectl_bin() -> pathlib.Path:
    """The kubectl binary, fetched into .tools/bin when missing."""
    return tool("kubectl")


class Kubectl:
    """kubectl pointed at the sandbox's kubeconfig and one namespace."""

    def __init__(self, binary: pathlib.Path, sandbox: Sandbox, namespace: str) -> None:
        self.binary = binary
        self.namespace = namespace
        # A private cache: kubectl caches discovery and OpenAPI per server under $HOME.
        self.env = {
            **os.environ,
            "KUBECONFIG": str(sandbox.kubeconfig),
            "KUBECACHEDIR": str(sandbox.state_dir / "kubectl-cache"),
        }

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "-n", self.namespace, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def kubectl(kubectl_bin: pathlib.Path, sandbox: Sandbox, namespace: str) -> Kubectl:
    return Kubectl(kubectl_bin, sandbox, namespace)


def _table(text: str) -> list[list[str]]:
    """``kubectl get`` output split into cells (columns are separated by 3+ spaces)."""
    return [re.split(r"\s{3,}", line.strip()) for line in text.strip().splitlines()]


def _manifest(path: pathlib.Path, **changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["spec"].update(changes)
    return dict(doc)


def test_apply_validates_against_the_served_openapi_and_explain_teaches_the_api(
    kubectl: Kubectl,
) -> None:
    out = kubectl.ok("apply", "-f", str(EXAMPLES / "trainingjob-classification.yaml"))
    assert out.strip() == "trainingjob.mlops.dev/breast-cancer-rf created"

    typo = _manifest(EXAMPLES / "trainingjob-classification.yaml", modle="oops")
    typo["metadata"]["name"] = "typo"
    result = kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump(typo))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": TrainingJob in version'
        ' "v1alpha1" cannot be handled as a TrainingJob: strict decoding error: unknown field'
        ' "spec.modle"'
    )
    assert "typo" not in kubectl.ok("get", "trainingjobs", "-o", "name")

    explained = kubectl.ok("explain", "trainingjob.spec")
    assert "KIND:       TrainingJob" in explained
    assert "dataset\t<Object> -required-" in explained
    assert "Training data." in explained
    deployment = kubectl.ok("explain", "deployment.spec.replicas")
    assert "FIELD: replicas <integer>" in deployment


def test_get_prints_the_printer_columns_and_wait_sees_the_ready_condition(
    kubectl: Kubectl, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    kubectl.ok("apply", "-f", str(EXAMPLES / "inferenceservice.yaml"))
    custom = kubernetes.client.CustomObjectsApi(kube)
    status = {
        "phase": "Ready",
        "currentVersion": 3,
        "desiredReplicas": 2,
        "url": "http://breast-cancer.example",
        "conditions": [
            {
                "type": "Degraded",
                "status": "False",
                "reason": "Healthy",
                "message": "fine",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
            {
                "type": "Ready",
                "status": "True",
                "reason": "Serving",
                "message": "v3 serves",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
        ],
    }
    custom.patch_namespaced_custom_object_status(
        "mlops.dev",
        "v1alpha1",
        namespace,
        "inferenceservices",
        "breast-cancer",
        {"status": status},
    )

    header, row = _table(kubectl.ok("get", "mlsvc"))
    assert header == ["NAME", "MODEL", "VERSION", "READY", "PHASE", "REPLICAS", "URL", "AGE"]
    assert row[:7] == [
        "breast-cancer",
        "breast-cancer",
        "3",
        "True",
        "Ready",
        "2",
        "http://breast-cancer.example",
    ]
    assert row[7].endswith("s")  # an age such as 2s, not a timestamp

    waited = kubectl.ok("wait", "--for=condition=Ready", "mlsvc/breast-cancer", "--timeout=10s")
    assert waited.strip() == "inferenceservice.mlops.dev/breast-cancer condition met"
    described = kubectl.ok("describe", "mlsvc", "breast-cancer")
    assert "Name:         breast-cancer" in described
    assert re.search(r"Current Version:\s+3\n", described)
    assert _table(kubectl.ok("get", "namespace", namespace))[0] == ["NAME", "STATUS", "AGE"]


async def test_logs_of_a_job_come_from_its_own_pod(
    kubectl: Kubectl, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    def job(name: str, command: list[str]) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {"name": "main", "image": "runtime", "command": command}
                            ],
                        }
                    },
                },
            }
        )

    kubectl.ok("apply", "-f", "-", stdin=job("first", ["mlops-operator", "no-such-command"]))
    kubectl.ok("apply", "-f", "-", stdin=job("second", ["mlops-operator", "--help"]))
    batch: Any = kubernetes.client.BatchV1Api(kube)

    def done(name: str) -> bool:
        status = batch.read_namespaced_job_status(name, namespace).status
        conditions = (status and status.conditions) or []  # no status before the runner's first
        return bool({c.type for c in conditions} & {"Complete", "Failed"})

    async def finished() -> bool:
        return all([await asyncio.to_thread(done, name) for name in ("first", "second")])

    await eventually(finished, timeout=60)

    assert "usage: mlops-operator" in kubectl.ok("logs", "job/second")
    assert "invalid choice: 'no-such-command'" in kubectl.ok("logs", "job/first")
    selector = batch.read_namespaced_job("second", namespace).spec.selector.match_labels
    assert list(selector) == ["batch.kubernetes.io/controller-uid"]
    header, row = _table(kubectl.ok("get", "job", "second"))
    assert header == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row[:3] == ["second", "Complete", "1/1"]
    pods = _table(kubectl.ok("get", "pods", "-l", "job-name=second"))
    assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1][1:4] == ["0/1", "Completed", "0"]
    everything = kubectl.ok("get", "all")
    assert "job.batch/second" in everything
    assert "pod/second-" in everything
    described = kubectl.ok("describe", "job", "second")
    assert re.search(r"Pods Statuses:\s+0 Active .*/ 1 Succeeded / 0 Failed\n", described)
    assert "Selector:       batch.kubernetes.io/controller-uid=" in described


CONFIG = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings", "labels": {"team": "ml"}},
    "data": {"threshold": "0.9", "window": "5m"},
}


def _configmap(kube: kubernetes.client.ApiClient, namespace: str) -> Any:
    return kubernetes.client.CoreV1Api(kube).read_namespaced_config_map("settings", namespace)


def test_server_side_apply_tracks_owners_conflicts_and_removals(
    kubectl: Kubectl, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    applied = yaml.safe_dump(CONFIG)
    assert kubectl.ok("apply", "--server-side", "-f", "-", stdin=applied).strip() == (
        "configmap/settings serverside-applied"
    )
    version = _configmap(kube, namespace).metadata.resource_version
    assert kubectl.ok("apply", "--server-side", "-f", "-", stdin=applied).strip() == (
        "configmap/settings serverside-applied"
    )
    current = _configmap(kube, namespace)
    assert current.metadata.resource_version == version  # the same config again: no write
    [entry] = current.metadata.managed_fields
    assert (entry.manager, entry.operation) == ("kubectl", "Apply")
    assert entry.fields_v1 == {
        "f:data": {"f:threshold": {}, "f:window": {}},
        "f:metadata": {"f:labels": {"f:team": {}}},
    }

    other = yaml.safe_dump(
        {**CONFIG, "data": {"threshold": "0.8"}, "metadata": {"name": "settings"}}
    )
    result = kubectl.run("apply", "--server-side", "--field-manager=tuner", "-f", "-", stdin=other)
    assert result.returncode == 1
    assert result.stderr.startswith(
        'error: Apply failed with 1 conflict: conflict with "kubectl": .data.threshold\n'
        "Please review the fields above--they currently have other managers."
    )
    assert _configmap(kube, namespace).data["threshold"] == "0.9"

    kubectl.ok(
        "apply",
        "--server-side",
        "--field-manager=tuner",
        "--force-conflicts",
        "-f",
        "-",
        stdin=other,
    )
    current = _configmap(kube, namespace)
    assert current.data == {"threshold": "0.8", "window": "5m"}
    owners = {e.manager: e.fields_v1 for e in current.metadata.managed_fields}
    assert owners["tuner"] == {"f:data": {"f:threshold": {}}}
    assert owners["kubectl"] == {
        "f:data": {"f:window": {}},
        "f:metadata": {"f:labels": {"f:team": {}}},
    }

    # kubectl stops applying `window` and the label: nobody else owns them, so they go.
    shrunk = yaml.safe_dump({**CONFIG, "data": {}, "metadata": {"name": "settings"}})
    kubectl.ok("apply", "--server-side", "-f", "-", stdin=shrunk)
    current = _configmap(kube, namespace)
    assert current.data == {"threshold": "0.8"}
    assert not current.metadata.labels


def test_server_side_apply_creates_and_updates_custom_resources_and_deployments(
    kubectl: Kubectl, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    path = str(EXAMPLES / "trainingjob-classification.yaml")
    assert kubectl.ok("apply", "--server-side", "-f", path).strip() == (
        "trainingjob.mlops.dev/breast-cancer-rf serverside-applied"
    )
    changed = _manifest(EXAMPLES / "trainingjob-classification.yaml", backoffLimit=5)
    kubectl.ok("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(changed))
    custom = kubernetes.client.CustomObjectsApi(kube)
    tj = custom.get_namespaced_custom_object(
        "mlops.dev", "v1alpha1", namespace, "trainingjobs", "breast-cancer-rf"
    )
    assert tj["spec"]["backoffLimit"] == 5
    assert tj["metadata"]["generation"] == 2

    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": "runtime:1"},
                        {"name": "sidecar", "image": "proxy:1"},
                    ]
                },
            },
        },
    }
    kubectl.ok(
        "apply",
        "--server-side",
        "--field-manager=flux",
        "-f",
        "-",
        stdin=yaml.safe_dump(deployment),
    )
    image_only = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "runtime:2"}]}}},
    }
    # The image is flux's: another manager takes it over only by force.
    kubectl.ok(
        "apply",
        "--server-side",
        "--field-manager=bumper",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump(image_only),
    )
    apps: Any = kubernetes.client.AppsV1Api(kube)
    live = apps.read_namespaced_deployment("web", namespace)
    assert [(c.name, c.image) for c in live.spec.template.spec.containers] == [
        ("main", "runtime:2"),
        ("sidecar", "proxy:1"),
    ]
    result = kubectl.run(
        "apply",
        "--server-side",
        "--field-manager=flux",
        "-f",
        "-",
        stdin=yaml.safe_dump(deployment),
    )
    assert result.returncode == 1
    assert (
        'conflict with "bumper": .spec.template.spec.containers[name="main"].image' in result.stderr
    )

    # A plain patch takes the field it changes: the next apply conflicts with that manager,
    # and `kubectl diff --server-side` shows what forcing would change.
    kubectl.ok("patch", "deployment", "web", "-p", '{"spec": {"replicas": 5}}')
    with_replicas = {**image_only, "spec": {**image_only["spec"], "replicas": 2}}
    result = kubectl.run(
        "apply",
        "--server-side",
        "--field-manager=bumper",
        "-f",
        "-",
        stdin=yaml.safe_dump(with_replicas),
    )
    assert result.stderr.startswith(
        'error: Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1:'
        " .spec.replicas\n"
    )
    diff = kubectl.run(
        "diff",
        "--server-side",
        "--field-manager=flux",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump(deployment),
    )
    assert diff.returncode == 1  # differences found
    assert "-  replicas: 5\n+  replicas: 2\n" in diff.stdout
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 5
