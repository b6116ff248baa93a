from __future__ import annotations

from mlops_operator.api.inferenceservice import InferenceServiceSpec
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.serving.build import build_deployment, build_service

MV = ModelVersionSpec.model_validate(
    {
        "model": "iris",
        "version": 3,
        "artifact": {"uri": "s3://bucket/models/iris/3/", "digest": "sha256:" + "a" * 64},
    }
)
STORAGE = ResolvedStorage("bucket", "models", "http://minio:9000", None, "s3-creds")


def deployment(**spec: object) -> dict:  # type: ignore[type-arg]
    return build_deployment(
        name="iris",
        namespace="ml",
        spec=InferenceServiceSpec.model_validate({"model": "iris", **spec}),
        model_version=MV,
        image="runtime:1",
        storage=STORAGE,
    )


def test_deployment_serves_the_version_with_its_digest() -> None:
    dep = deployment(replicas=2, server={"workers": 2})
    assert dep["metadata"]["name"] == "iris-predictor"
    assert dep["spec"]["replicas"] == 2
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert container["command"] == ["mlops-operator", "serve"]
    assert args[args.index("--model-uri") + 1] == "s3://bucket/models/iris/3/"
    assert args[args.index("--digest") + 1] == "sha256:" + "a" * 64
    assert args[args.index("--workers") + 1] == "2"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["mlops.dev/version"] == "3" and labels["mlops.dev/model"] == "iris"


def test_probes_use_the_v2_health_endpoints() -> None:
    container = deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_pod_is_restricted_with_writable_cache() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/cache", "/tmp"}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"


def test_selector_does_not_include_the_version_so_rollouts_replace_pods() -> None:
    selector = deployment()["spec"]["selector"]["matchLabels"]
    assert selector == {"mlops.dev/inferenceservice": "iris"}
    service = build_service(name="iris", namespace="ml", model="iris")
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_grpc_port_is_exposed_by_the_pod_and_the_service() -> None:
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--grpc-port") + 1] == "8081"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8080,
        "grpc": 8081,
    }
    service = build_service(name="iris", namespace="ml", model="iris")
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert (grpc["port"], grpc["targetPort"]) == (8081, "grpc")
    assert grpc["appProtocol"] == "kubernetes.io/h2c"


def test_a_terminating_pod_drains_before_it_stops_within_its_grace_period() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    drain = float(env["MLOPS_SERVE_DRAIN_SECONDS"])
    assert sleep >= 1 and drain >= 1
    # preStop, then the server's drain, then its graceful shutdown, all before SIGKILL.
    assert pod["terminationGracePeriodSeconds"] > sleep + drain + 10
