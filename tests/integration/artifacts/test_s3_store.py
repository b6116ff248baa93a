"""The artifact store against a real S3 endpoint (moto) over HTTP."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import boto3
import pytest

from mlops_operator.api import reasons
from mlops_operator.artifacts import io as storage_io
from mlops_operator.artifacts.store import (
    AlreadyExists,
    ArtifactStore,
    BucketNotFound,
    NotFound,
    StorageError,
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


def _versions(bucket: str, key: str) -> list[str]:
    """Every stored version of an object (the bucket has versioning on): a rewrite adds one."""
    client = boto3.client("s3")
    try:
        listed = client.list_object_versions(Bucket=bucket, Prefix=key)
    finally:
        client.close()
    return [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key]


def _enable_versioning(bucket: str) -> None:
    client = boto3.client("s3")
    try:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    finally:
        client.close()


def _run(store: ArtifactStore, src: str) -> None:
    for name in ("model.joblib", "manifest.json", "metrics.json"):
        store.write_bytes(src + name, name.encode())


def test_copy_prefix_twice_copies_server_side_once_and_then_nothing(bucket: str) -> None:
    _enable_versioning(bucket)
    store = ArtifactStore()
    src, dst = f"s3://{bucket}/runs/abc/", f"s3://{bucket}/models/ns/iris/3/"
    _run(store, src)
    assert store.copy_prefix(src, dst) == 3
    assert store.copy_prefix(src, dst) == 0
    assert store.list(dst) == [dst + "manifest.json", dst + "metrics.json", dst + "model.joblib"]
    assert store.sha256(dst + "model.joblib") == store.sha256(src + "model.joblib")
    for name in ("manifest.json", "metrics.json", "model.joblib"):
        assert len(_versions(bucket, f"models/ns/iris/3/{name}")) == 1, name


def test_copy_prefix_retried_after_a_partial_copy_completes_it(bucket: str) -> None:
    store = ArtifactStore()
    src, dst = f"s3://{bucket}/runs/abc/", f"s3://{bucket}/models/ns/iris/3/"
    _run(store, src)
    store.write_bytes(dst + "model.joblib", b"model.joblib")  # copied before a crash
    assert store.copy_prefix(src, dst) == 2
    assert store.list(dst) == [dst + "manifest.json", dst + "metrics.json", dst + "model.joblib"]


@pytest.mark.parametrize("other", [b"another model", b"model.joblix"], ids=["size", "content"])
def test_copy_prefix_onto_a_different_object_refuses_and_leaves_it_untouched(
    bucket: str, other: bytes
) -> None:
    _enable_versioning(bucket)
    store = ArtifactStore()
    src, dst = f"s3://{bucket}/runs/abc/", f"s3://{bucket}/models/ns/iris/3/"
    _run(store, src)
    store.write_bytes(dst + "model.joblib", other)
    for _ in range(2):
        with pytest.raises(AlreadyExists) as caught:
            store.copy_prefix(src, dst)
        assert isinstance(caught.value, StorageError)
        assert caught.value.uri == dst + "model.joblib"
        assert f"{dst}model.joblib already exists with different content" in str(caught.value)
    assert store.read_bytes(dst + "model.joblib") == other
    assert len(_versions(bucket, "models/ns/iris/3/model.joblib")) == 1
    assert store.list(dst) == [dst + "model.joblib"]  # nothing else was copied either


def test_copy_prefix_compares_s3_sha256_checksums_where_both_have_one(bucket: str) -> None:
    client = boto3.client("s3")
    try:
        for key, body in (("runs/abc/model.joblib", b"model-a"), ("v/1/model.joblib", b"model-b")):
            client.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    finally:
        client.close()
    store = ArtifactStore()
    with pytest.raises(AlreadyExists, match="a different SHA-256 checksum"):
        store.copy_prefix(f"s3://{bucket}/runs/abc/", f"s3://{bucket}/v/1/")


def test_copy_prefix_accepts_equal_content_under_a_multipart_etag(bucket: str) -> None:
    """A multipart upload's ETag is not the content's MD5: equal content is then found by
    hashing, and the copy is still a no-op."""
    part = 5 * 1024 * 1024
    data = bytes(range(256)) * (part // 256) + b"tail"
    client = boto3.client("s3")
    try:
        upload = client.create_multipart_upload(Bucket=bucket, Key="runs/abc/model.joblib")
        etags = [
            client.upload_part(
                Bucket=bucket,
                Key="runs/abc/model.joblib",
                UploadId=upload["UploadId"],
                PartNumber=n,
                Body=chunk,
            )["ETag"]
            for n, chunk in enumerate((data[:part], data[part:]), start=1)
        ]
        client.complete_multipart_upload(
            Bucket=bucket,
            Key="runs/abc/model.joblib",
            UploadId=upload["UploadId"],
            MultipartUpload={
                "Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]
            },
        )
        client.put_object(Bucket=bucket, Key="v/1/model.joblib", Body=data)
        src_etag = client.head_object(Bucket=bucket, Key="runs/abc/model.joblib")["ETag"]
        dst_etag = client.head_object(Bucket=bucket, Key="v/1/model.joblib")["ETag"]
    finally:
        client.close()
    assert src_etag != dst_etag
    assert ArtifactStore().copy_prefix(f"s3://{bucket}/runs/abc/", f"s3://{bucket}/v/1/") == 0


async def test_registration_copy_refuses_to_overwrite_off_the_event_loop(bucket: str) -> None:
    store = ArtifactStore()
    src, dst = f"s3://{bucket}/runs/abc/", f"s3://{bucket}/models/ns/iris/3/"
    _run(store, src)
    assert await storage_io.copy_prefix(store, src, dst) == 3
    assert await storage_io.copy_prefix(store, src, dst) == 0
    store.write_bytes(dst + "metrics.json", b"{}")
    with pytest.raises(storage_io.AlreadyExists, match="metrics.json already exists"):
        await storage_io.copy_prefix(store, src, dst)


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
