"""The sandbox answers like kube-apiserver about the pod fields a podSpec override sets."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_sandbox.builtin_validation import decode_error, validate


def deployment(**pod: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris-predictor", "namespace": "ml"},
        "spec": {
            "selector": {"matchLabels": {"app": "iris"}},
            "template": {
                "metadata": {"labels": {"app": "iris"}},
                "spec": {"containers": [{"name": "server", "image": "runtime:1"}], **pod},
            },
        },
    }


def messages(**pod: Any) -> list[str]:
    return [e.message for e in validate("apps", "deployments", deployment(**pod))]


def test_valid_overrides_pass() -> None:
    assert (
        messages(
            serviceAccountName="irsa-trainer",
            nodeSelector={"node.kubernetes.io/instance-type": "g5.xlarge"},
            tolerations=[
                {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "d", "value": "ml", "effect": "NoExecute", "tolerationSeconds": 30},
                {"operator": "Exists"},
            ],
            imagePullSecrets=[{"name": "regcred"}],
            priorityClassName="batch-low",
        )
        == []
    )


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "yes"}]},
            "spec.template.spec.tolerations[0].operator: Invalid value: core.Toleration{"
            'Key:"gpu", Operator:"Exists", Value:"yes", Effect:"", '
            "TolerationSeconds:(*int64)(nil)}: value must be empty when `operator` is 'Exists'",
        ),
        (
            {"tolerations": [{"key": "gpu", "operator": "Maybe"}]},
            'spec.template.spec.tolerations[0].operator: Unsupported value: "Maybe": '
            'supported values: "Equal", "Exists"',
        ),
        (
            {"tolerations": [{"key": "gpu", "effect": "NoSchedule", "tolerationSeconds": 5}]},
            'spec.template.spec.tolerations[0].effect: Invalid value: "NoSchedule": '
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ),
        (
            {"serviceAccountName": "IRSA_Role"},
            'spec.template.spec.serviceAccountName: Invalid value: "IRSA_Role": a lowercase',
        ),
        (
            {"nodeSelector": {"pool": "not a value"}},
            'spec.template.spec.nodeSelector: Invalid value: "not a value": a valid label',
        ),
        (
            {"imagePullSecrets": [{"name": ""}]},
            "spec.template.spec.imagePullSecrets[0].name: Required value",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "zone", "operator": "Near"}]}
                            ]
                        }
                    }
                }
            },
            "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuring"
            'Execution.nodeSelectorTerms[0].matchExpressions[0].operator: Invalid value: "Near": '
            "not a valid selector operator",
        ),
    ],
)
def test_invalid_overrides_are_rejected_like_the_api_server(
    pod: dict[str, Any], expected: str
) -> None:
    found = messages(**pod)
    assert any(m.startswith(expected) for m in found), found


def test_a_toleration_of_the_wrong_type_does_not_decode() -> None:
    error = decode_error("apps", "deployments", deployment(tolerations={"key": "gpu"}))
    assert error is not None and "of type []v1.Toleration" in error
