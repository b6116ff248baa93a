"""Whether a run is registered already: the ModelVersion that records this run's
registration is adopted, never registered a second time."""

from __future__ import annotations

from typing import Any

from mlops_operator.kube.names import RUN_ANNOTATION
from mlops_operator.training.plan import Registered, registration_of

RUN = "s3://models/ns/iris/runs/tj/uid-1/g1/"
DIGEST = "sha256:" + "a" * 64


def mv(
    version: int,
    *,
    trainingjob: str | None = "tj",
    digest: str = DIGEST,
    run: str | None = RUN,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"iris-v{version}", "namespace": "ns", "annotations": {}}
    if run is not None:
        meta["annotations"][RUN_ANNOTATION] = run
    if deleting:
        meta["deletionTimestamp"] = "2026-03-01T00:00:00Z"
    source = {"trainingJob": trainingjob} if trainingjob else {}
    return {
        "metadata": meta,
        "spec": {
            "model": "iris",
            "version": version,
            "artifact": {"uri": f"s3://models/ns/iris/{version}/", "digest": digest},
            "source": source,
        },
    }


def test_the_version_of_this_run_is_its_registration() -> None:
    found = registration_of([mv(1, trainingjob="other", run=None), mv(2)], "tj", RUN, DIGEST)

    assert found == Registered("iris-v2", 2, "s3://models/ns/iris/2/")


def test_a_run_with_no_version_yet_is_not_registered() -> None:
    assert registration_of([], "tj", RUN, DIGEST) is None
    assert registration_of([mv(1, trainingjob="other", run=None)], "tj", RUN, DIGEST) is None


def test_a_version_registered_by_hand_is_never_adopted() -> None:
    # Even with the very same model file: a person registered it, not this run.
    assert registration_of([mv(1, trainingjob=None, run=None)], "tj", RUN, DIGEST) is None


def test_a_version_of_this_trainingjob_with_another_model_is_another_run() -> None:
    other = mv(1, digest="sha256:" + "b" * 64, run=None)

    assert registration_of([other], "tj", RUN, DIGEST) is None


def test_an_earlier_generation_that_trained_the_same_bytes_is_another_run() -> None:
    # A spec changed after success trains again; a deterministic estimator may write the very
    # same model, which is still a new run and a new version.
    earlier = mv(1, run="s3://models/ns/iris/runs/tj/uid-1/g0/")

    assert registration_of([earlier], "tj", RUN, DIGEST) is None


def test_a_version_that_does_not_say_its_run_is_matched_by_trainingjob_and_digest() -> None:
    # Registered before versions recorded their run.
    found = registration_of([mv(3, run=None)], "tj", RUN, DIGEST)

    assert found is not None and found.version == 3


def test_the_first_registration_is_adopted_when_there_are_two() -> None:
    found = registration_of([mv(4), mv(2), mv(3, trainingjob="other")], "tj", RUN, DIGEST)

    assert found is not None and found.name == "iris-v2"


def test_a_version_being_deleted_is_not_adopted() -> None:
    assert registration_of([mv(1, deleting=True)], "tj", RUN, DIGEST) is None


def test_a_manifest_without_a_digest_adopts_nothing() -> None:
    assert registration_of([mv(1)], "tj", RUN, None) is None
