"""URI parsing, error translation and the store over file:// directories (no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from mlops_operator.api import reasons
from mlops_operator.artifacts.store import (
    AccessDenied,
    AlreadyExists,
    ArtifactStore,
    ArtifactUri,
    BucketNotFound,
    CredentialsMissing,
    NotFound,
    StorageError,
    Unreachable,
    check_storage,
    parse_uri,
    translate_error,
)


def _client_error(code: str, status: int, message: str = "") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "HeadObject")


def test_parse_s3_uri_splits_bucket_and_key() -> None:
    loc = parse_uri("s3://my-bucket/models/iris/model.joblib")
    assert loc == ArtifactUri("s3", "my-bucket", "models/iris/model.joblib")
    assert str(loc) == "s3://my-bucket/models/iris/model.joblib"
    assert not loc.is_dir


def test_parse_bucket_root_is_a_directory() -> None:
    assert parse_uri("s3://my-bucket").is_dir
    assert str(parse_uri("s3://my-bucket/")) == "s3://my-bucket/"


def test_parse_file_uri_keeps_the_absolute_path() -> None:
    loc = parse_uri("file:///data/train.csv")
    assert loc.path == Path("/data/train.csv")
    assert str(loc) == "file:///data/train.csv"
    assert parse_uri("file://localhost/data/x").key == "/data/x"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("http://example.com/x", "expected s3://bucket/key"),
        ("s3://A_Bucket/x", "not a valid bucket name"),
        ("s3:///key", "not a valid bucket name"),
        ("file://relative/path", "expected file:///absolute/path"),
        ("/plain/path", "expected s3://bucket/key"),
    ],
)
def test_bad_uris_are_value_errors_that_say_what_is_expected(uri: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_uri(uri)


def test_child_and_relative_to_are_inverse() -> None:
    base = parse_uri("s3://bucket/runs/1")
    child = base.child("sub/model.joblib")
    assert str(child) == "s3://bucket/runs/1/sub/model.joblib"
    assert child.relative_to(base) == "sub/model.joblib"
    with pytest.raises(ValueError, match="not inside"):
        parse_uri("s3://bucket/other/x").relative_to(base)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_client_error("404", 404), NotFound),
        (_client_error("NoSuchKey", 404), NotFound),
        (_client_error("NoSuchBucket", 404), BucketNotFound),
        (_client_error("403", 403), AccessDenied),
        (_client_error("InvalidAccessKeyId", 403), AccessDenied),
        (_client_error("SignatureDoesNotMatch", 403), AccessDenied),
        (EndpointConnectionError(endpoint_url="http://s3.invalid"), Unreachable),
        (NoCredentialsError(), CredentialsMissing),
    ],
)
def test_botocore_errors_become_storage_errors(exc: Exception, kind: type[StorageError]) -> None:
    translated = translate_error(exc, parse_uri("s3://bucket/key"), "http://s3.invalid")
    assert type(translated) is kind


def test_a_404_on_a_bucket_request_means_the_bucket_is_missing() -> None:
    translated = translate_error(
        _client_error("404", 404), parse_uri("s3://bucket/x"), None, bucket_op=True
    )
    assert isinstance(translated, BucketNotFound)
    assert "s3://bucket/" in translated.message


def test_access_denied_message_points_at_the_secret_and_never_echoes_keys() -> None:
    exc = _client_error(
        "InvalidAccessKeyId", 403, "The AWS Access Key Id AKIASECRETVALUE does not exist"
    )
    translated = translate_error(exc, parse_uri("s3://bucket/key"), "http://minio:9000")
    assert translated is not None
    assert "credentials Secret" in translated.message
    assert "AKIASECRETVALUE" not in translated.message


def test_unreachable_message_names_the_endpoint() -> None:
    exc = EndpointConnectionError(endpoint_url="http://minio:9000/bucket/key")
    translated = translate_error(exc, parse_uri("s3://bucket/key"), "http://minio:9000")
    assert translated is not None
    assert "http://minio:9000" in translated.message


def test_other_exceptions_are_not_translated() -> None:
    assert translate_error(KeyError("x"), parse_uri("s3://bucket/key"), None) is None


def test_file_store_round_trips_bytes_and_files(tmp_path: Path) -> None:
    store = ArtifactStore()
    uri = f"file://{tmp_path}/a/b/data.bin"
    store.write_bytes(uri, b"hello")
    assert store.read_bytes(uri) == b"hello"
    assert store.exists(uri)
    assert store.head(uri) == 5
    store.download_file(uri, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == b"hello"
    store.upload_file(tmp_path / "copy.bin", f"file://{tmp_path}/c/up.bin")
    assert (tmp_path / "c" / "up.bin").read_bytes() == b"hello"


def test_file_store_sha256_matches_hashlib_for_multi_chunk_files(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000  # 2.5 MB: several chunks
    (tmp_path / "big").write_bytes(data)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert ArtifactStore().sha256(f"file://{tmp_path}/big") == expected


def test_file_store_reports_missing_files_as_not_found(tmp_path: Path) -> None:
    store = ArtifactStore()
    with pytest.raises(NotFound, match="does not exist"):
        store.read_bytes(f"file://{tmp_path}/missing")
    assert not store.exists(f"file://{tmp_path}/missing")


def test_file_copy_prefix_copies_everything_and_again_copies_nothing(tmp_path: Path) -> None:
    store = ArtifactStore()
    src, dst = f"file://{tmp_path}/src/", f"file://{tmp_path}/dst/"
    for name in ("manifest.json", "model.joblib", "sub/reference.json"):
        store.write_bytes(src + name, name.encode())
    assert store.copy_prefix(src, dst) == 3
    assert store.copy_prefix(src, dst) == 0
    assert [u.removeprefix(dst) for u in store.list(dst)] == [
        "manifest.json",
        "model.joblib",
        "sub/reference.json",
    ]
    assert store.read_bytes(dst + "sub/reference.json") == b"sub/reference.json"


def test_file_copy_prefix_retried_after_a_partial_copy_completes_it(tmp_path: Path) -> None:
    store = ArtifactStore()
    src, dst = f"file://{tmp_path}/src/", f"file://{tmp_path}/dst/"
    for name in ("manifest.json", "model.joblib", "reference.json"):
        store.write_bytes(src + name, name.encode())
    store.write_bytes(dst + "model.joblib", b"model.joblib")  # copied before a crash
    assert store.copy_prefix(src, dst) == 2
    assert [u.removeprefix(dst) for u in store.list(dst)] == [
        "manifest.json",
        "model.joblib",
        "reference.json",
    ]


@pytest.mark.parametrize("other", [b"another model", b"model.joblix"], ids=["size", "content"])
def test_file_copy_prefix_refuses_to_overwrite_a_different_object(
    tmp_path: Path, other: bytes
) -> None:
    store = ArtifactStore()
    src, dst = f"file://{tmp_path}/src/", f"file://{tmp_path}/dst/"
    for name in ("manifest.json", "model.joblib", "reference.json"):
        store.write_bytes(src + name, name.encode())
    store.write_bytes(dst + "model.joblib", other)
    with pytest.raises(AlreadyExists, match="model.joblib already exists") as caught:
        store.copy_prefix(src, dst)
    assert isinstance(caught.value, StorageError)
    assert caught.value.uri == dst + "model.joblib"
    assert store.read_bytes(dst + "model.joblib") == other
    assert store.list(dst) == [dst + "model.joblib"]  # nothing else was copied either


def test_copy_prefix_of_an_empty_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nothing to copy"):
        ArtifactStore().copy_prefix(f"file://{tmp_path}/none/", f"file://{tmp_path}/dst/")


def test_objects_and_directories_are_not_confused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="names a directory"):
        ArtifactStore().read_bytes(f"file://{tmp_path}/")


def test_check_storage_on_local_files(tmp_path: Path) -> None:
    store = ArtifactStore()
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    ok = check_storage(store, f"file://{tmp_path}/data.csv", f"file://{tmp_path}/artifacts/")
    assert (ok.ok, ok.reason) == (True, reasons.STORAGE_OK)
    missing = check_storage(store, f"file://{tmp_path}/nope.csv", f"file://{tmp_path}/")
    assert (missing.ok, missing.reason) == (False, reasons.DATASET_NOT_FOUND)
    assert f"file://{tmp_path}/nope.csv" in missing.message
    bad = check_storage(store, "ftp://x/y", f"file://{tmp_path}/")
    assert (bad.ok, bad.reason) == (False, reasons.INVALID_SPEC)


def test_delete_is_idempotent(tmp_path: Path) -> None:
    store = ArtifactStore()
    uri = f"file://{tmp_path}/x.json"
    store.write_bytes(uri, b"{}")
    store.delete(uri)
    store.delete(uri)
    assert not store.exists(uri)
