"""Every way training goes wrong ends in a status that says why, never a crash loop."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

pytestmark = pytest.mark.timeout(180)


def spec(uri: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "model": "cancer",
        "dataset": {"uri": uri, "target": "target"},
        "estimator": {"className": "sklearn.linear_model.LogisticRegression"},
        "backoffLimit": 0,
    }
    result.update(extra)
    return result


def failed(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Failed"


def test_disallowed_estimator_is_refused_before_any_job_exists(
    start_operator: Any, resources: Any, cancer_csv: str, kube: Any, namespace: str
) -> None:
    start_operator()
    resources.create(
        "trainingjobs",
        "TrainingJob",
        "evil",
        spec(cancer_csv, estimator={"className": "os.system"}),
    )
    tj = resources.wait_status("trainingjobs", "evil", failed, "to fail")
    ready = resources.condition(tj["status"], "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "'os.system' is not allowed" in ready["message"]
    jobs = kubernetes.client.BatchV1Api(kube).list_namespaced_job(namespace).items
    assert jobs == []
    events = kubernetes.client.CoreV1Api(kube).list_namespaced_event(namespace).items
    assert [e.reason for e in events if e.involved_object.name == "evil"] == ["InvalidSpec"]


def test_unknown_estimator_fails_with_the_trainers_reason(
    start_operator: Any, resources: Any, cancer_csv: str
) -> None:
    start_operator()
    resources.create(
        "trainingjobs",
        "TrainingJob",
        "typo",
        spec(cancer_csv, estimator={"className": "sklearn.ensemble.RandomForrestClassifier"}),
    )
    tj = resources.wait_status("trainingjobs", "typo", failed, "to fail")
    ready = resources.condition(tj["status"], "Ready")
    assert ready["reason"] == "UnknownEstimator"
    assert "RandomForrestClassifier" in tj["status"]["failureReason"]


def test_missing_target_column_names_the_column(
    start_operator: Any, resources: Any, cancer_csv: str
) -> None:
    start_operator()
    resources.create(
        "trainingjobs",
        "TrainingJob",
        "no-label",
        spec(cancer_csv, dataset={"uri": cancer_csv, "target": "diagnosis"}),
    )
    tj = resources.wait_status("trainingjobs", "no-label", failed, "to fail")
    ready = resources.condition(tj["status"], "Ready")
    assert ready["reason"] == "MissingColumn"
    assert "'diagnosis'" in ready["message"]


def test_missing_dataset_is_reported_before_a_job_is_created(
    start_operator: Any, resources: Any, cancer_csv: str, kube: Any, namespace: str
) -> None:
    start_operator()
    missing = cancer_csv.replace("breast-cancer.csv", "nope.csv")
    resources.create("trainingjobs", "TrainingJob", "nodata", spec(missing))
    tj = resources.wait_status(
        "trainingjobs",
        "nodata",
        lambda s: resources.condition(s, "StorageReachable").get("status") == "False",
        "to report the dataset missing",
    )
    reachable = resources.condition(tj["status"], "StorageReachable")
    assert reachable["reason"] == "DatasetNotFound"
    assert "nope.csv" in reachable["message"]
    assert tj["status"]["phase"] == "Pending"
    assert kubernetes.client.BatchV1Api(kube).list_namespaced_job(namespace).items == []


def test_job_exceeding_backoff_limit_fails_after_every_retry(
    start_operator: Any, resources: Any, s3: Any, cancer_csv: str, kube: Any, namespace: str
) -> None:
    # An unreadable dataset may be mid-upload, so it is retried until backoffLimit.
    bucket, _, key = cancer_csv.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key.replace("breast-cancer", "empty"), Body=b"")
    start_operator()
    resources.create(
        "trainingjobs",
        "TrainingJob",
        "flaky",
        spec(cancer_csv.replace("breast-cancer", "empty"), backoffLimit=1),
    )
    tj = resources.wait_status("trainingjobs", "flaky", failed, "to fail")
    ready = resources.condition(tj["status"], "Ready")
    assert ready["reason"] == "DatasetUnreadable"
    assert "after 2 attempts" in ready["message"]
    job = kubernetes.client.BatchV1Api(kube).read_namespaced_job(tj["status"]["jobName"], namespace)
    assert job.status.failed == 2
    assert [c.reason for c in job.status.conditions if c.type == "Failed"] == [
        "BackoffLimitExceeded"
    ]


def test_a_failure_no_retry_can_fix_is_not_retried(
    start_operator: Any, resources: Any, cancer_csv: str, kube: Any, namespace: str
) -> None:
    start_operator()
    resources.create(
        "trainingjobs",
        "TrainingJob",
        "permanent",
        spec(cancer_csv, dataset={"uri": cancer_csv, "target": "missing"}, backoffLimit=3),
    )
    tj = resources.wait_status("trainingjobs", "permanent", failed, "to fail")
    assert resources.condition(tj["status"], "Ready")["reason"] == "MissingColumn"
    job = kubernetes.client.BatchV1Api(kube).read_namespaced_job(tj["status"]["jobName"], namespace)
    assert job.status.failed == 1
    assert [c.reason for c in job.status.conditions if c.type == "Failed"] == ["PodFailurePolicy"]


def test_schema_rejects_a_bad_spec_with_the_field_path(resources: Any) -> None:
    with pytest.raises(kubernetes.client.ApiException) as exc:
        resources.create(
            "trainingjobs",
            "TrainingJob",
            "bad",
            {
                "model": "cancer",
                "dataset": {"target": "y"},
                "estimator": {"className": "sklearn.svm.SVC"},
                "backoffLimit": -1,
            },
        )
    assert exc.value.status == 422
    assert "spec.dataset.uri" in exc.value.body
    assert "spec.backoffLimit" in exc.value.body
