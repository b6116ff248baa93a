"""The sandbox validates a Job's podFailurePolicy as kube-apiserver does."""

from __future__ import annotations

from typing import Any

from mlops_sandbox.builtin_validation import validate


def job(rules: list[dict[str, Any]], restart: str = "Never") -> dict[str, Any]:
    return {
        "metadata": {"name": "j"},
        "spec": {
            "podFailurePolicy": {"rules": rules},
            "template": {"spec": {"restartPolicy": restart, "containers": [{"name": "trainer"}]}},
        },
    }


def messages(obj: dict[str, Any]) -> list[str]:
    return [e.message for e in validate("batch", "jobs", obj)]


def codes(**fields: Any) -> dict[str, Any]:
    return {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3], **fields}}


def test_a_valid_policy_is_accepted() -> None:
    conditions = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert messages(job([codes(containerName="trainer"), conditions])) == []


def test_a_policy_needs_restart_policy_never() -> None:
    assert messages(job([codes()], restart="OnFailure")) == [
        'spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is '
        "supported when podFailurePolicy is specified"
    ]


def test_rules_are_checked_like_the_api_server_checks_them() -> None:
    found = messages(
        job(
            [
                {"action": "Retry", "onExitCodes": {"operator": "In", "values": [0, 2, 1, 2]}},
                codes(containerName="sidecar", operator="Among"),
                {"action": "Count"},
            ]
        )
    )
    assert found == [
        'spec.podFailurePolicy.rules[0].action: Unsupported value: "Retry": supported values: '
        '"Count", "FailIndex", "FailJob", "Ignore"',
        "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 "
        "for the In operator",
        "spec.podFailurePolicy.rules[0].onExitCodes.values[3]: Duplicate value: 2",
        "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: "
        "[]int32{0, 2, 1, 2}: must be ordered",
        'spec.podFailurePolicy.rules[1].onExitCodes.operator: Unsupported value: "Among": '
        'supported values: "In", "NotIn"',
        'spec.podFailurePolicy.rules[1].onExitCodes.containerName: Invalid value: "sidecar": '
        "must be one of the container or initContainer names in the pod template",
        "spec.podFailurePolicy.rules[2]: Invalid value: specifying one of OnExitCodes and "
        "OnPodConditions is required",
    ]
