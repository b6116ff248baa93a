"""The emulator rejects bad built-in objects as kube-apiserver does: the ``kubernetes`` client
and kubectl over real HTTP see the same status codes, reasons, messages and causes."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import kubernetes.client
import pytest
import yaml

from mlops_sandbox.apiserver import serve_api
from tests.support.tools import tool

QUANTITY_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
LABEL_VALUE_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or"
    " 'my_value',  or '12345', regex used for validation is"
    " '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.fixture
async def api_url() -> AsyncIterator[str]:
    async with serve_api() as (_, url):
        yield url


def container(**fields: Any) -> dict[str, Any]:
    """The kind of container the operator builds: ports, env, resources."""
    return {
        "name": "main",
        "image": "runtime",
        "env": [{"name": "MLOPS_CACHE_DIR", "value": "/cache"}],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        **fields,
    }


def job(name: str = "train", labels: dict[str, str] | None = None, **fields: Any) -> Any:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {"app.kubernetes.io/name": "iris"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"mlops.dev/component": "trainer"}},
                "spec": {"restartPolicy": "Never", "containers": [container(**fields)]},
            },
        },
    }


def deployment(name: str = "predictor", **fields: Any) -> Any:
    labels = {"mlops.dev/inferenceservice": name, "mlops.dev/version": "2"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"mlops.dev/inferenceservice": name}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [container(**fields)]},
            },
        },
    }


def service(name: str = "predictor", **port: Any) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"mlops.dev/inferenceservice": "predictor"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", **port}],
        },
    }


def with_resources(requests: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    return {"resources": {"requests": requests, "limits": limits}}


async def rejected(api_url: str, call: Callable[[kubernetes.client.ApiClient], Any]) -> Any:
    """Run ``call`` with a client of the emulator; return the Status of the error it raises."""

    def run() -> Any:
        with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=api_url)) as client:
            with pytest.raises(kubernetes.client.ApiException) as info:
                call(client)
        status = json.loads(info.value.body)
        assert status["code"] == info.value.status
        assert (status["kind"], status["status"]) == ("Status", "Failure")
        return status

    return await asyncio.to_thread(run)


async def accepted(api_url: str, call: Callable[[kubernetes.client.ApiClient], Any]) -> Any:
    def run() -> Any:
        with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=api_url)) as client:
            return call(client)

    return await asyncio.to_thread(run)


def batch(client: kubernetes.client.ApiClient) -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(client)


def apps(client: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(client)


def core(client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(client)


async def test_a_quantity_that_does_not_parse_is_a_bad_request(api_url: str) -> None:
    bad_job = job(**with_resources({"cpu": "lots"}, {}))
    status = await rejected(api_url, lambda c: batch(c).create_namespaced_job("default", bad_job))
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert status["message"] == f'Job in version "v1" cannot be handled as a Job: {QUANTITY_ERROR}'

    bad = deployment(**with_resources({}, {"memory": "1.2.3"}))
    status = await rejected(api_url, lambda c: apps(c).create_namespaced_deployment("default", bad))
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert status["message"] == (
        f'Deployment in version "v1" cannot be handled as a Deployment: {QUANTITY_ERROR}'
    )
    await rejected(api_url, lambda c: batch(c).read_namespaced_job("train", "default"))


async def test_a_negative_quantity_is_invalid_on_its_field(api_url: str) -> None:
    bad_job = job(**with_resources({}, {"cpu": "-1"}))
    status = await rejected(api_url, lambda c: batch(c).create_namespaced_job("default", bad_job))
    field = "spec.template.spec.containers[0].resources.limits[cpu]"
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"] == (
        f'Job.batch "train" is invalid: {field}: Invalid value: "-1": must be greater than or'
        " equal to 0"
    )
    assert status["details"] == {
        "name": "train",
        "group": "batch",
        "kind": "Job",
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "message": 'Invalid value: "-1": must be greater than or equal to 0',
                "field": field,
            }
        ],
    }


async def test_requests_above_limits_are_invalid(api_url: str) -> None:
    bad = deployment(**with_resources({"cpu": "2", "memory": "0.5Gi"}, {"cpu": "1500m"}))
    status = await rejected(api_url, lambda c: apps(c).create_namespaced_deployment("default", bad))
    assert status["message"] == (
        'Deployment.apps "predictor" is invalid: spec.template.spec.containers[0].resources'
        '.requests: Invalid value: "2": must be less than or equal to cpu limit of 1500m'
    )


async def test_bad_labels_are_invalid_wherever_they_are(api_url: str) -> None:
    bad_job = job(labels={"mlops.dev/model": "iris classifier"})
    status = await rejected(api_url, lambda c: batch(c).create_namespaced_job("default", bad_job))
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "iris classifier": {LABEL_VALUE_ERROR}',
            "field": "metadata.labels",
        }
    ]

    long_name = "x" * 64
    bad = deployment()
    bad["spec"]["template"]["metadata"]["labels"]["mlops.dev/model"] = long_name
    bad["spec"]["selector"]["matchLabels"]["bad key!"] = "v"
    status = await rejected(api_url, lambda c: apps(c).create_namespaced_deployment("default", bad))
    causes = [(cause["field"], cause["message"]) for cause in status["details"]["causes"]]
    assert ("spec.selector.matchLabels", 'Invalid value: "bad key!": name part must consist') in [
        (field, message[: len('Invalid value: "bad key!": name part must consist')])
        for field, message in causes
    ]
    assert (
        "spec.template.labels",
        f'Invalid value: "{long_name}": must be no more than 63 characters',
    ) not in causes  # the API server does not look at a template when the selector is bad

    bad["spec"]["selector"]["matchLabels"].pop("bad key!")
    status = await rejected(api_url, lambda c: apps(c).create_namespaced_deployment("default", bad))
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "{long_name}": must be no more than 63 characters',
            "field": "spec.template.labels",
        }
    ]


async def test_a_deployment_selector_must_match_its_template(api_url: str) -> None:
    bad = deployment()
    bad["spec"]["selector"] = {"matchLabels": {"mlops.dev/inferenceservice": "other"}}
    status = await rejected(api_url, lambda c: apps(c).create_namespaced_deployment("default", bad))
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: map[string]string{"mlops.dev/inferenceservice":"predictor",'
            ' "mlops.dev/version":"2"}: `selector` does not match template `labels`',
            "field": "spec.template.metadata.labels",
        }
    ]


async def test_names_follow_the_rule_of_their_kind(api_url: str) -> None:
    status = await rejected(
        api_url, lambda c: core(c).create_namespaced_service("default", service("2-predictor"))
    )
    assert status["message"] == (
        'Service "2-predictor" is invalid: metadata.name: Invalid value: "2-predictor": a'
        " DNS-1035 label must consist of lower case alphanumeric characters or '-', start with"
        " an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or"
        " 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )
    long_name = "predictor-" + "x" * 60
    status = await rejected(
        api_url, lambda c: core(c).create_namespaced_service("default", service(long_name))
    )
    assert status["details"]["causes"][0]["message"] == (
        f'Invalid value: "{long_name}": must be no more than 63 characters'
    )
    # The same name is a good Job name: subdomains go to 253 characters.
    await accepted(api_url, lambda c: batch(c).create_namespaced_job("default", job(long_name)))

    status = await rejected(
        api_url, lambda c: batch(c).create_namespaced_job("default", job("Train_1"))
    )
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert "a lowercase RFC 1123 subdomain must consist of" in status["message"]


async def test_ports_env_names_and_container_names_are_checked(api_url: str) -> None:
    bad_job = job(
        ports=[{"name": "metrics_port", "containerPort": 70000}],
        env=[{"name": "1_THREADS", "value": "4"}],
    )
    bad_job["spec"]["template"]["spec"]["containers"][0]["name"] = "Main"
    status = await rejected(api_url, lambda c: batch(c).create_namespaced_job("default", bad_job))
    causes = {cause["field"]: cause["message"] for cause in status["details"]["causes"]}
    spec = "spec.template.spec.containers[0]"
    assert causes == {
        f"{spec}.name": 'Invalid value: "Main": a lowercase RFC 1123 label must consist of lower'
        " case alphanumeric characters or '-', and must start and end with an alphanumeric"
        " character (e.g. 'my-name',  or '123-abc', regex used for validation is"
        " '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        f"{spec}.ports[0].name": 'Invalid value: "metrics_port": must contain only'
        " alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        f"{spec}.ports[0].containerPort": "Invalid value: 70000: must be between 1 and 65535,"
        " inclusive",
        f"{spec}.env[0].name": 'Invalid value: "1_THREADS": a valid environment variable name'
        " must consist of alphabetic characters, digits, '_', '-', or '.', and must not start"
        " with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for"
        " validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
    }


async def test_service_ports_are_checked(api_url: str) -> None:
    bad = service(port=0, targetPort=65536)
    status = await rejected(api_url, lambda c: core(c).create_namespaced_service("default", bad))
    assert status["message"] == (
        'Service "predictor" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1'
        " and 65535, inclusive, spec.ports[0].targetPort: Invalid value: 65536: must be between"
        " 1 and 65535, inclusive]"
    )
    bad = service(targetPort="predictor-http-port")
    status = await rejected(api_url, lambda c: core(c).create_namespaced_service("default", bad))
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "predictor-http-port": must be no more than 15 characters',
            "field": "spec.ports[0].targetPort",
        }
    ]


async def test_objects_like_the_operators_are_created(api_url: str) -> None:
    created = await accepted(api_url, lambda c: batch(c).create_namespaced_job("default", job()))
    assert created.spec.template.spec.containers[0].resources.limits == {
        "cpu": "1",
        "memory": "1Gi",
    }
    await accepted(api_url, lambda c: apps(c).create_namespaced_deployment("default", deployment()))
    await accepted(api_url, lambda c: core(c).create_namespaced_service("default", service()))
    gpu = job("gpu", **with_resources({"example.com/gpu": "1"}, {"example.com/gpu": "1"}))
    await accepted(api_url, lambda c: batch(c).create_namespaced_job("default", gpu))


async def test_writes_are_checked_like_creates(api_url: str) -> None:
    await accepted(api_url, lambda c: apps(c).create_namespaced_deployment("default", deployment()))

    # The client sends a dict patch of a built-in as a strategic merge patch.
    spec = {"containers": [{"name": "main", "resources": {"limits": {"cpu": "lots"}}}]}
    patch = {"spec": {"template": {"spec": spec}}}
    status = await rejected(
        api_url, lambda c: apps(c).patch_namespaced_deployment("predictor", "default", patch)
    )
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"] == (
        ' "" is invalid: patch: Invalid value: "map[spec:map[template:map[spec:map[containers:'
        f'[map[name:main resources:map[limits:map[cpu:lots]]]]]]]]": {QUANTITY_ERROR}'
    )
    assert [cause["field"] for cause in status["details"]["causes"]] == ["patch"]

    spec["containers"][0]["resources"]["limits"]["cpu"] = "-2"
    status = await rejected(
        api_url, lambda c: apps(c).patch_namespaced_deployment("predictor", "default", patch)
    )
    assert status["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: "-2": must be greater than or equal to 0',
        "field": "spec.template.spec.containers[0].resources.limits[cpu]",
    }

    def replace_with_a_bad_quantity(client: kubernetes.client.ApiClient) -> Any:
        body = deployment()
        body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2ki"
        return apps(client).replace_namespaced_deployment("predictor", "default", body)

    status = await rejected(api_url, replace_with_a_bad_quantity)
    assert status["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: unable to parse'
        " quantity's suffix"
    )
    current = await accepted(
        api_url, lambda c: apps(c).read_namespaced_deployment("predictor", "default")
    )
    assert current.spec.template.spec.containers[0].resources.limits["cpu"] == "1"


async def test_an_invalid_object_of_a_taken_name_is_invalid(api_url: str) -> None:
    await accepted(api_url, lambda c: batch(c).create_namespaced_job("default", job()))
    bad_job = job(**with_resources({}, {"cpu": "-1"}))
    status = await rejected(api_url, lambda c: batch(c).create_namespaced_job("default", bad_job))
    assert status["reason"] == "Invalid"


@pytest.fixture(scope="session")
def kubectl() -> pathlib.Path:
    """The kubectl binary, fetched into .tools/bin when missing."""
    return tool("kubectl")


async def test_kubectl_reports_the_errors_as_from_a_cluster(
    api_url: str, kubectl: pathlib.Path
) -> None:
    def apply(manifest: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kubectl), "--server", api_url, "create", "--validate=false", "-f", "-"],
            input=yaml.safe_dump(manifest),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = await asyncio.to_thread(apply, job(**with_resources({"cpu": "lots"}, {})))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": Job in version "v1"'
        f" cannot be handled as a Job: {QUANTITY_ERROR}"
    )
    result = await asyncio.to_thread(apply, job(**with_resources({}, {"memory": "-1Gi"})))
    assert result.stderr.strip() == (
        'The Job "train" is invalid: spec.template.spec.containers[0].resources.limits[memory]:'
        ' Invalid value: "-1Gi": must be greater than or equal to 0'
    )
    result = await asyncio.to_thread(apply, job())
    assert (result.returncode, result.stdout.strip()) == (0, "job.batch/train created")
