"""InferenceService + ModelVersion → the predictor Deployment, its Service and its
HorizontalPodAutoscaler. Pure."""

from __future__ import annotations

from typing import Any

from mlops_operator.api.inferenceservice import AutoscalingSpec, InferenceServiceSpec
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.api.pod import PodOverrides, merge_overrides
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.kube import names
from mlops_operator.kube.pod import (
    apply_overrides,
    resources,
    restricted_container_security,
    restricted_pod_security,
    storage_env,
)

CONTAINER = "server"
CACHE_DIR = "/cache"
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}


DRAIN_SECONDS = 5
"""A terminating predictor pod keeps serving this long twice over: in its ``preStop`` sleep
(before SIGTERM; endpoints and load balancers drop it meanwhile) and in the server's own
drain after SIGTERM (readiness 503, still serving), which also covers clusters without the
sleep action (Kubernetes < 1.30) and runtimes that send SIGTERM directly."""
SHUTDOWN_SECONDS = 10
"""What the server gives requests in progress after its drain (uvicorn's graceful timeout)."""


def _probe(path: str, *, period: int, failures: int, delay: int = 0) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def predictor_labels(name: str, model: str, version: int) -> dict[str, str]:
    """Labels of the predictor's pods: selectable per service, model and version."""
    return {
        names.LABEL_INFERENCESERVICE: name,
        names.LABEL_MODEL: model,
        names.LABEL_VERSION: str(version),
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_COMPONENT: "predictor",
    }


HANDED_TO_AUTOSCALER = (("spec", "replicas"),)
"""Fields of the predictor Deployment an autoscaler owns once ``spec.autoscaling`` is set: the
built Deployment leaves them out, and its patch leaves them as they are (not reset to the API
server's default)."""


def build_deployment(
    *,
    name: str,
    namespace: str,
    spec: InferenceServiceSpec,
    model_version: ModelVersionSpec,
    image: str,
    storage: ResolvedStorage,
    pod_defaults: PodOverrides | None = None,
) -> dict[str, Any]:
    """The Deployment running ``mlops-operator serve`` for one version; the owner reference
    is added by the caller. The pods get ``pod_defaults`` (the operator's) overridden by the
    spec's ``podSpec``."""
    version = model_version.version
    labels = predictor_labels(name, spec.model, version)
    selector = {names.LABEL_INFERENCESERVICE: name}
    server = spec.server
    args = [
        "--name", spec.model,
        "--model-version", str(version),
        "--model-uri", model_version.artifact.uri,
        "--digest", model_version.artifact.digest,
        "--port", str(names.PREDICTOR_PORT),
        "--grpc-port", str(names.PREDICTOR_GRPC_PORT),
        "--workers", str(server.workers),
        "--max-batch-size", str(server.max_batch_size),
        "--max-batch-delay-ms", f"{server.max_batch_delay_ms:g}",
    ]  # fmt: skip
    container = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["mlops-operator", "serve"],
        "args": args,
        "env": [
            {"name": "MLOPS_CACHE_DIR", "value": CACHE_DIR},
            {"name": "MLOPS_SERVE_DRAIN_SECONDS", "value": str(DRAIN_SECONDS)},
            {"name": "HOME", "value": "/tmp"},
            *storage_env(storage),
        ],
        "ports": [
            {"name": "http", "containerPort": names.PREDICTOR_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": names.PREDICTOR_GRPC_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _probe("/v2/health/live", period=2, failures=60),
        "livenessProbe": _probe("/v2/health/live", period=10, failures=3),
        "readinessProbe": _probe("/v2/health/ready", period=5, failures=2),
        # A sleep action needs no shell or binary in the image (Kubernetes 1.30+).
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "resources": resources(spec.resources, DEFAULT_RESOURCES),
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.predictor_name(name),
            "namespace": namespace,
            "labels": labels,
        },
        "spec": {
            # Autoscaled: no replicas here, so no write of ours resets what the autoscaler set.
            **({} if spec.autoscaling is not None else {"replicas": spec.replicas}),
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(names.PREDICTOR_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod_security(),
                    "terminationGracePeriodSeconds": 2 * DRAIN_SECONDS + SHUTDOWN_SECONDS + 10,
                    "containers": [container],
                    "volumes": [
                        {"name": "cache", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    template = deployment["spec"]["template"]
    own_annotations = template["metadata"]["annotations"]
    apply_overrides(template, merge_overrides(pod_defaults, spec.pod_spec), labels, own_annotations)
    return deployment


def build_service(*, name: str, namespace: str, model: str) -> dict[str, Any]:
    """The ClusterIP Service in front of the predictor pods: port 80 → the server's HTTP
    port 8080, port 8081 → its gRPC port 8081."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.predictor_name(name),
            "namespace": namespace,
            "labels": {
                names.LABEL_INFERENCESERVICE: name,
                names.LABEL_MODEL: model,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {names.LABEL_INFERENCESERVICE: name},
            "ports": [
                {
                    "name": "http",
                    "port": names.SERVICE_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                },
                {
                    "name": "grpc",
                    "port": names.PREDICTOR_GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
            ],
        },
    }


REQUESTS_METRIC = "mlops_requests_per_second"
"""The Pods metric an autoscaler scales on for ``targetRequestsPerSecond``: the per-pod rate
of the server's ``mlops_requests_total`` counter, as a metrics adapter names it (the
prometheus-adapter rule in docs/autoscaling.md turns ``<name>_total`` into
``<name>_per_second``)."""


def _milli(value: float) -> str:
    """A quantity of thousandths (``2.5`` → ``2500m``), as the API server writes one back."""
    milli = max(1, round(value * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def autoscaler_metric(autoscaling: AutoscalingSpec) -> dict[str, Any]:
    """The one metric of the autoscaler: requests per second per pod, or CPU utilisation."""
    if autoscaling.target_requests_per_second is not None:
        return {
            "type": "Pods",
            "pods": {
                "metric": {"name": REQUESTS_METRIC},
                "target": {
                    "type": "AverageValue",
                    "averageValue": _milli(autoscaling.target_requests_per_second),
                },
            },
        }
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {
                "type": "Utilization",
                "averageUtilization": autoscaling.target_cpu_utilization_percent,
            },
        },
    }


def build_autoscaler(
    *, name: str, namespace: str, model: str, autoscaling: AutoscalingSpec
) -> dict[str, Any]:
    """The autoscaling/v2 HorizontalPodAutoscaler of the predictor Deployment (same name);
    the owner reference is added by the caller."""
    predictor = names.predictor_name(name)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": predictor,
            "namespace": namespace,
            "labels": {
                names.LABEL_INFERENCESERVICE: name,
                names.LABEL_MODEL: model,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
                names.LABEL_COMPONENT: "predictor",
            },
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": predictor},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [autoscaler_metric(autoscaling)],
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": autoscaling.scale_down_stabilization_seconds
                }
            },
        },
    }
