"""Artifact storage over S3-compatible endpoints and local directories."""

from mlops_operator.storage.artifacts import (
    AccessDenied,
    ArtifactStore,
    ArtifactUri,
    BucketNotFound,
    CredentialsMissing,
    NotFound,
    StorageCheck,
    StorageError,
    Unreachable,
    check_storage,
    make_s3_client,
    parse_uri,
    sha256_file,
    storage_reason,
)

__all__ = [
    "AccessDenied",
    "ArtifactStore",
    "ArtifactUri",
    "BucketNotFound",
    "CredentialsMissing",
    "NotFound",
    "StorageCheck",
    "StorageError",
    "Unreachable",
    "check_storage",
    "make_s3_client",
    "parse_uri",
    "sha256_file",
    "storage_reason",
]
