"""The artifact layout: where runs and versions live, and that no two of them share a path."""

from __future__ import annotations

import itertools

import pytest

from mlops_operator.artifacts import layout
from mlops_operator.artifacts.layout import (
    MANIFEST_FILE,
    MODEL_FILE,
    file_uri,
    in_write_order,
    local_run_dir_uri,
    run_dir_uri,
    version_dir_uri,
)

UID = "0123abcd-4567-89ef-0123-456789abcdef"


def test_a_version_lives_under_its_namespace_and_model() -> None:
    assert version_dir_uri("artifacts", "models", "team-a", "fraud", 3) == (
        "s3://artifacts/models/team-a/fraud/3/"
    )


def test_a_run_is_named_by_trainingjob_uid_and_generation() -> None:
    assert run_dir_uri("artifacts", "models", "team-a", "fraud", "fraud-rf", UID, 2) == (
        "s3://artifacts/models/team-a/fraud/runs/fraud-rf-0123abcd-g2/"
    )


def test_the_same_model_in_two_namespaces_never_shares_a_path() -> None:
    """Versions are numbered per namespace: version 1 of ``fraud`` exists in both."""
    a = version_dir_uri("artifacts", "models", "team-a", "fraud", 1)
    b = version_dir_uri("artifacts", "models", "team-b", "fraud", 1)
    assert a != b
    assert not a.startswith(b) and not b.startswith(a)
    run_a = run_dir_uri("artifacts", "models", "team-a", "fraud", "tj", UID, 1)
    run_b = run_dir_uri("artifacts", "models", "team-b", "fraud", "tj", UID, 1)
    assert run_a != run_b


def test_runs_differ_per_generation_and_per_object() -> None:
    first = run_dir_uri("b", "p", "ns", "m", "tj", UID, 1)
    edited = run_dir_uri("b", "p", "ns", "m", "tj", UID, 2)
    recreated = run_dir_uri("b", "p", "ns", "m", "tj", "fedcba98-0000", 1)
    assert len({first, edited, recreated}) == 3


def test_no_run_version_or_run_by_hand_is_inside_another() -> None:
    """Directories are disjoint: none is a prefix of another, whatever the names."""
    dirs = [
        *(
            version_dir_uri("b", "models", ns, model, v)
            for ns, model, v in itertools.product(["a", "runs", "1"], ["m", "runs", "1"], [1, 2])
        ),
        *(
            run_dir_uri("b", "models", ns, model, tj, UID, 1)
            for ns, model, tj in itertools.product(["a", "runs", "1"], ["m", "runs"], ["1", "x"])
        ),
        *(
            local_run_dir_uri("b", "models", model, name)
            for model, name in itertools.product(["a", "m", "runs"], ["1", None])
        ),
    ]
    assert len(set(dirs)) == len(dirs)
    for one, other in itertools.permutations(dirs, 2):
        assert not other.startswith(one), f"{other} is inside {one}"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", "s3://b/ns/m/4/"),
        ("/", "s3://b/ns/m/4/"),
        ("models", "s3://b/models/ns/m/4/"),
        ("/models/", "s3://b/models/ns/m/4/"),
        ("team/ml/models", "s3://b/team/ml/models/ns/m/4/"),
        ("/team//ml/", "s3://b/team/ml/ns/m/4/"),
    ],
)
def test_the_prefix_may_be_empty_or_nested(prefix: str, expected: str) -> None:
    assert version_dir_uri("b", prefix, "ns", "m", 4) == expected


def test_runs_by_hand_never_land_in_a_namespace() -> None:
    """``_local`` cannot be a namespace (a DNS label), so a run by hand never meets the
    operator's directories."""
    assert (
        local_run_dir_uri("b", "models", "iris", "run-1") == "s3://b/models/_local/iris/runs/run-1/"
    )
    assert local_run_dir_uri("b", "", "iris", None) == "s3://b/_local/iris/runs/local/"


def test_dots_in_a_trainingjob_name_are_kept() -> None:
    """TrainingJob names are DNS subdomains: dots are allowed and stay in the run's name."""
    assert run_dir_uri("b", "", "ns", "m", "fraud.v2", UID, 1) == (
        "s3://b/ns/m/runs/fraud.v2-0123abcd-g1/"
    )


@pytest.mark.parametrize(
    ("namespace", "model"),
    [("", "m"), ("ns", ""), ("a/b", "m"), ("ns", "a/b"), ("..", "m"), ("ns", "."), ("ns", "a\nb")],
)
def test_a_name_that_would_move_the_directory_is_refused(namespace: str, model: str) -> None:
    with pytest.raises(ValueError, match="segment of an artifact path"):
        version_dir_uri("b", "models", namespace, model, 1)
    with pytest.raises(ValueError, match="segment of an artifact path"):
        run_dir_uri("b", "models", namespace, model, "tj", UID, 1)


def test_a_trainingjob_name_with_a_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="segment of an artifact path"):
        run_dir_uri("b", "models", "ns", "m", "../x", UID, 1)
    with pytest.raises(ValueError, match="segment of an artifact path"):
        local_run_dir_uri("b", "models", "m", "a/b")


@pytest.mark.parametrize("version", [0, -1, True])
def test_versions_are_positive_integers(version: int) -> None:
    with pytest.raises(ValueError, match="not a positive integer"):
        version_dir_uri("b", "", "ns", "m", version)


def test_runs_need_a_uid_and_a_positive_generation() -> None:
    with pytest.raises(ValueError, match="uid"):
        run_dir_uri("b", "", "ns", "m", "tj", "", 1)
    with pytest.raises(ValueError, match="not a positive integer"):
        run_dir_uri("b", "", "ns", "m", "tj", UID, 0)


@pytest.mark.parametrize("bucket", ["", "a/b"])
def test_a_bucket_must_be_a_bucket_name(bucket: str) -> None:
    with pytest.raises(ValueError, match="not a bucket name"):
        version_dir_uri(bucket, "", "ns", "m", 1)


@pytest.mark.parametrize("directory", ["s3://b/ns/m/1/", "s3://b/ns/m/1", "file:///tmp/out/"])
def test_a_file_uri_joins_with_exactly_one_slash(directory: str) -> None:
    assert file_uri(directory, MODEL_FILE) == directory.rstrip("/") + "/model.joblib"


@pytest.mark.parametrize("name", ["", "/model.joblib"])
def test_a_file_name_must_be_relative(name: str) -> None:
    with pytest.raises(ValueError, match="not a relative file name"):
        file_uri("s3://b/x/", name)


def test_the_manifest_is_written_and_copied_last() -> None:
    names = ["model.joblib", "manifest.json", "sub/manifest.json", "reference.json"]
    assert in_write_order(names) == [
        "model.joblib",
        "reference.json",
        "manifest.json",
        "sub/manifest.json",
    ]
    assert in_write_order(layout.ARTIFACT_FILES)[-1] == MANIFEST_FILE
    assert layout.ARTIFACT_FILES[-1] == MANIFEST_FILE
