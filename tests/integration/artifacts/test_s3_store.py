"""The artifact store against a real S3 endpoint (moto) over HTTP."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from mlops_operator.api import reasons
from mlops_operator.artifacts.store import (
    ArtifactStore,
    BucketNotFound,
    NotFound,
    Unreachable,
    check_storage,
    make_s3_client,
)


def test_bytes_and_files_round_trip(bucket: str, tmp_path: Path) -> None:
    store = ArtifactStore()
    store.write_bytes(f"s3://{bucket}/dir/a.txt", b"alpha")
    assert store.read_bytes(f"s3://{bucket}/dir/a.txt") == b"alpha"
    (tmp_path / "b.bin").write_bytes(b"beta" * 1000)
    store.upload_file(tmp_path / "b.bin", f"s3://{bucket}/dir/b.bin")
    store.download_file(f"s3://{bucket}/dir/b.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == b"beta" * 1000
    assert store.list(f"s3://{bucket}/dir") == [
        f"s3://{bucket}/dir/a.txt",
        f"s3://{bucket}/dir/b.bin",
    ]


def test_exists_distinguishes_objects_directories_and_missing_buckets(bucket: str) -> None:
    store = ArtifactStore()
    store.write_bytes(f"s3://{bucket}/runs/1/model.joblib", b"m")
    assert store.exists(f"s3://{bucket}/runs/1/model.joblib")
    assert store.exists(f"s3://{bucket}/runs/1/")
    assert not store.exists(f"s3://{bucket}/runs/2/")
    assert not store.exists(f"s3://{bucket}/runs/1/manifest.json")
    assert not store.exists("s3://no-such-bucket-here/x")


def test_sha256_streams_large_objects_and_matches_hashlib(bucket: str) -> None:
    data = bytes(range(256)) * 12_000  # about 3 MB: several chunks
    store = ArtifactStore()
    store.write_bytes(f"s3://{bucket}/big.bin", data)
    assert store.sha256(f"s3://{bucket}/big.bin") == f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_missing_objects_and_buckets_raise_not_found(bucket: str) -> None:
    store = ArtifactStore()
    with pytest.raises(NotFound, match=f"s3://{bucket}/missing does not exist"):
        store.read_bytes(f"s3://{bucket}/missing")
    with pytest.raises(BucketNotFound):
        store.read_bytes("s3://no-such-bucket-here/x")
    with pytest.raises(BucketNotFound):
        store.check_bucket("s3://no-such-bucket-here/")


def test_copy_prefix_is_server_side_and_idempotent(bucket: str) -> None:
    store = ArtifactStore()
    src, dst = f"s3://{bucket}/runs/abc/", f"s3://{bucket}/models/iris/v3/"
    for name in ("model.joblib", "manifest.json", "metrics.json"):
        store.write_bytes(src + name, name.encode())
    assert store.copy_prefix(src, dst) == 3
    assert store.copy_prefix(src, dst) == 3
    assert store.list(dst) == [dst + "manifest.json", dst + "metrics.json", dst + "model.joblib"]
    assert store.sha256(dst + "model.joblib") == store.sha256(src + "model.joblib")


def test_copy_prefix_between_s3_and_files(bucket: str, tmp_path: Path) -> None:
    store = ArtifactStore()
    store.write_bytes(f"file://{tmp_path}/src/model.joblib", b"model")
    store.copy_prefix(f"file://{tmp_path}/src/", f"s3://{bucket}/up/")
    store.copy_prefix(f"s3://{bucket}/up/", f"file://{tmp_path}/down/")
    assert (tmp_path / "down" / "model.joblib").read_bytes() == b"model"


def test_check_storage_reports_each_failure_with_its_reason(bucket: str) -> None:
    store = ArtifactStore()
    store.write_bytes(f"s3://{bucket}/data/train.csv", b"a,b\n1,2\n")
    dataset = f"s3://{bucket}/data/train.csv"

    ok = check_storage(store, dataset, f"s3://{bucket}/models/")
    assert (ok.ok, ok.reason) == (True, reasons.STORAGE_OK)

    missing = check_storage(store, f"s3://{bucket}/data/nope.csv", f"s3://{bucket}/")
    assert (missing.ok, missing.reason) == (False, reasons.DATASET_NOT_FOUND)
    assert f"s3://{bucket}/data/nope.csv" in missing.message

    no_dataset_bucket = check_storage(store, "s3://no-such-bucket-here/x.csv", f"s3://{bucket}/")
    assert no_dataset_bucket.reason == reasons.DATASET_NOT_FOUND
    assert "bucket s3://no-such-bucket-here/ does not exist" in no_dataset_bucket.message

    no_bucket = check_storage(store, dataset, "s3://no-such-artifacts-bucket/models/")
    assert (no_bucket.ok, no_bucket.reason) == (False, reasons.BUCKET_NOT_FOUND)
    assert "s3://no-such-artifacts-bucket/" in no_bucket.message


def test_an_endpoint_that_refuses_connections_is_unreachable_within_seconds(
    s3_env: str, dead_endpoint: str
) -> None:
    store = ArtifactStore(endpoint=dead_endpoint, timeout=2.0)
    started = time.monotonic()
    result = check_storage(store, "s3://some-bucket/data.csv", "s3://some-bucket/")
    assert time.monotonic() - started < 10
    assert (result.ok, result.reason) == (False, reasons.STORAGE_UNREACHABLE)
    assert dead_endpoint in result.message
    with pytest.raises(Unreachable, match=dead_endpoint):
        store.read_bytes("s3://some-bucket/data.csv")


def test_a_malformed_endpoint_is_unreachable_not_a_crash(s3_env: str) -> None:
    with pytest.raises(Unreachable, match="not a valid URL"):
        make_s3_client(endpoint="not a url")


def test_delete_is_idempotent(bucket: str) -> None:
    store = ArtifactStore()
    store.write_bytes(f"s3://{bucket}/x.json", b"{}")
    store.delete(f"s3://{bucket}/x.json")
    store.delete(f"s3://{bucket}/x.json")
    assert not store.exists(f"s3://{bucket}/x.json")
