"""The artifact store: the one module that talks to S3 (and to ``file://`` directories).

Used by the operator (storage checks, digest verification), the trainer (dataset in, model
out) and the model server (model in). Every failure surfaces as a :class:`StorageError`
subclass, so callers never handle botocore exceptions themselves.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from mlops_operator.api import reasons
from mlops_operator.artifacts.layout import in_write_order

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

CHUNK_SIZE: Final = 1024 * 1024
"""Bytes read at a time when hashing or copying: models can be gigabytes."""

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

_ACCESS_DENIED_CODES: Final = frozenset(
    {
        "403",
        "AccessDenied",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AllAccessDisabled",
    }
)
_NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_CHECK_CREDENTIALS: Final = (
    "check the credentials Secret (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) "
    "and the bucket's access policy"
)


# --------------------------------------------------------------------------- errors


class StorageError(Exception):
    """A storage operation failed; ``message`` is a sentence a person can act on."""

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.uri = uri


class NotFound(StorageError):
    """The object (or directory) does not exist."""


class BucketNotFound(NotFound):
    """The bucket does not exist."""


class Unreachable(StorageError):
    """The endpoint could not be reached: connection refused, timeout, DNS, TLS, bad URL."""


class AccessDenied(StorageError):
    """The endpoint refused the credentials or the request (403 and friends)."""


class CredentialsMissing(AccessDenied):
    """No credentials were found: neither given, nor in the environment, nor ambient."""


class AlreadyExists(StorageError):
    """The destination already holds a different object, and it is never overwritten."""


# --------------------------------------------------------------------------- URIs


@dataclass(frozen=True)
class ArtifactUri:
    """A parsed ``s3://bucket/key`` or ``file:///abs/path`` location.

    A URI ending in ``/`` (or an S3 URI with an empty key) names a directory. ``file://``
    paths are taken literally, without percent-decoding.
    """

    scheme: Literal["s3", "file"]
    bucket: str
    """The bucket (``s3``); empty for ``file``."""
    key: str
    """The object key without a leading ``/`` (``s3``), or the absolute path (``file``)."""

    def __str__(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.key}"
        return f"file://{self.key}"

    @property
    def is_dir(self) -> bool:
        """Whether the URI names a directory (ends with ``/``)."""
        return self.key == "" or self.key.endswith("/")

    @property
    def path(self) -> Path:
        """The local path of a ``file://`` URI."""
        if self.scheme != "file":
            raise ValueError(f"{self} is not a file:// URI")
        return Path(self.key)

    def as_dir(self) -> ArtifactUri:
        """The same location as a directory URI (with a trailing ``/``)."""
        if self.is_dir:
            return self
        return ArtifactUri(self.scheme, self.bucket, self.key + "/")

    def child(self, name: str) -> ArtifactUri:
        """The location ``name`` (a relative path) inside this directory."""
        if not name or name.startswith("/"):
            raise ValueError(f"{name!r} is not a relative name")
        return ArtifactUri(self.scheme, self.bucket, self.as_dir().key + name)

    def relative_to(self, parent: ArtifactUri) -> str:
        """This location's path relative to the directory ``parent``."""
        prefix = parent.as_dir().key
        if (self.scheme, self.bucket) != (parent.scheme, parent.bucket) or not (
            self.key.startswith(prefix)
        ):
            raise ValueError(f"{self} is not inside {parent}")
        return self.key[len(prefix) :]


def parse_uri(uri: str) -> ArtifactUri:
    """Parse ``s3://bucket/key`` or ``file:///abs/path``; anything else is a ``ValueError``."""
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not _BUCKET_NAME.match(bucket):
            raise ValueError(
                f"invalid S3 URI {uri!r}: {bucket!r} is not a valid bucket name "
                "(3-63 characters: lower-case letters, digits, '.' and '-')"
            )
        return ArtifactUri("s3", bucket, key)
    if uri.startswith("file://"):
        path = uri[len("file://") :]
        if path.startswith("localhost/"):
            path = path[len("localhost") :]
        if not path.startswith("/"):
            raise ValueError(f"invalid file URI {uri!r}: expected file:///absolute/path")
        return ArtifactUri("file", "", path)
    raise ValueError(f"invalid URI {uri!r}: expected s3://bucket/key or file:///absolute/path")


def _as_uri(uri: str | ArtifactUri) -> ArtifactUri:
    return uri if isinstance(uri, ArtifactUri) else parse_uri(uri)


def _object(uri: str | ArtifactUri) -> ArtifactUri:
    loc = _as_uri(uri)
    if loc.is_dir:
        raise ValueError(f"{loc} names a directory, not an object")
    return loc


# --------------------------------------------------------------------------- S3 client


def _endpoint_configured(endpoint: str | None) -> bool:
    return bool(
        endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )


def make_s3_client(
    endpoint: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    timeout: float = 10.0,
) -> S3Client:
    """A boto3 S3 client that fails fast.

    Unset arguments fall back to boto3's standard resolution: ``AWS_ENDPOINT_URL``,
    ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, then ambient
    credentials (IRSA, instance profile). ``timeout`` bounds connecting and each socket
    read, with two retries, so a wrong endpoint fails within seconds. A malformed endpoint
    raises :class:`Unreachable`.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 3, "mode": "standard"},
        # MinIO, Ceph and in-cluster endpoints have no wildcard DNS for virtual-hosted
        # bucket names; path style works everywhere a custom endpoint is used.
        s3={"addressing_style": "path" if _endpoint_configured(endpoint) else "auto"},
    )
    try:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
    except ValueError as exc:
        raise Unreachable(f"S3 endpoint {endpoint!r} is not a valid URL: {exc}") from exc


def _error_code(exc: BaseException) -> tuple[str, str]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    code = str(error.get("Code", ""))
    status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code, status


def translate_error(
    exc: BaseException, loc: ArtifactUri, endpoint: str | None, *, bucket_op: bool = False
) -> StorageError | None:
    """The :class:`StorageError` for a botocore/boto3 exception, or ``None`` if it is not one.

    ``bucket_op`` says the request addressed the bucket itself (a 404 then means the bucket
    is missing, since HEAD responses carry no error code). Messages never contain keys.
    """
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ReadTimeoutError as BotoReadTimeout
    from s3transfer.exceptions import RetriesExceededError

    where = endpoint or "the default AWS endpoint"
    uri = str(loc)
    if isinstance(exc, S3UploadFailedError) and exc.__context__ is not None:
        # boto3's managed upload re-raises the ClientError as a plain message string.
        return translate_error(exc.__context__, loc, endpoint, bucket_op=bucket_op)
    if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
        return translate_error(exc.last_exception, loc, endpoint, bucket_op=bucket_op)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CredentialsMissing(
            f"no S3 credentials found for {uri}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (the credentials Secret) or provide ambient credentials",
            uri=uri,
        )
    if isinstance(exc, BotoReadTimeout):
        return Unreachable(
            f"the S3 endpoint {where} did not answer in time for {uri}; "
            "check that the storage service is healthy",
            uri=uri,
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return Unreachable(
            f"cannot reach the S3 endpoint {where} ({type(exc).__name__}); check the endpoint "
            "URL and that the storage service is running and reachable from here",
            uri=uri,
        )
    if not isinstance(exc, ClientError):
        return None
    code, status = _error_code(exc)
    bucket_uri = f"s3://{loc.bucket}/"
    if code == "NoSuchBucket" or (bucket_op and (code in _NOT_FOUND_CODES or status == "404")):
        return BucketNotFound(
            f"bucket {bucket_uri} does not exist at {where}; create it or fix the bucket name",
            uri=bucket_uri,
        )
    if code in _NOT_FOUND_CODES or status == "404":
        return NotFound(f"{uri} does not exist", uri=uri)
    if code in _ACCESS_DENIED_CODES or status == "403":
        return AccessDenied(
            f"access to {uri} was denied ({code or status}); {_CHECK_CREDENTIALS}", uri=uri
        )
    if status.startswith("5") or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
        # The service is there but failing (boto3 already retried): an outage, not a fault
        # of the request, so it is retried like an endpoint that does not answer.
        return Unreachable(
            f"the S3 endpoint {where} is failing ({code or status}) for {uri}; "
            "check that the storage service is healthy",
            uri=uri,
        )
    return StorageError(
        f"S3 request for {uri} at {where} failed ({code or status}): "
        f"{exc.response.get('Error', {}).get('Message', '')}".rstrip(": "),
        uri=uri,
    )


# --------------------------------------------------------------------------- files


def sha256_file(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a local file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class _Stat:
    """What the store can learn about an object without reading it."""

    size: int
    etag: str | None = None
    """The S3 ETag, quotes included; ``None`` for a local file."""
    sha256: str | None = None
    """S3's full-object SHA-256 checksum (base64), where the object was stored with one."""


@dataclass(frozen=True)
class ObjectVersion:
    """Which version of an object was read: S3's ``VersionId`` in a versioned bucket, and
    its ETag and last-modified time (``None`` for a local file's ETag and version)."""

    size: int
    version_id: str | None = None
    etag: str | None = None
    last_modified: str | None = None


# --------------------------------------------------------------------------- the store


class ArtifactStore:
    """Reads and writes artifacts at ``s3://`` and ``file://`` URIs.

    The S3 client is created on first use, so a store used only with ``file://`` URIs needs
    neither boto3 credentials nor an endpoint.
    """

    def __init__(
        self,
        client: S3Client | None = None,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._timeout = timeout

    @property
    def client(self) -> S3Client:
        """The S3 client, created on first use."""
        if self._client is None:
            self._client = make_s3_client(
                self._endpoint,
                self._region,
                self._access_key_id,
                self._secret_access_key,
                self._timeout,
            )
        return self._client

    @property
    def endpoint(self) -> str | None:
        """The S3 endpoint URL as resolved by the client, for messages; ``None`` before the
        client exists and no endpoint was given."""
        if self._client is not None:
            return self._client.meta.endpoint_url
        return self._endpoint

    @contextmanager
    def _s3(self, loc: ArtifactUri, *, bucket_op: bool = False) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            translated = translate_error(exc, loc, self.endpoint, bucket_op=bucket_op)
            if translated is None:
                raise
            raise translated from exc

    @staticmethod
    @contextmanager
    def _local(loc: ArtifactUri) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError as exc:
            raise NotFound(f"{loc} does not exist", uri=str(loc)) from exc
        except PermissionError as exc:
            raise AccessDenied(
                f"permission denied on {loc}; check the file's ownership and mode", uri=str(loc)
            ) from exc
        except IsADirectoryError as exc:
            raise NotFound(f"{loc} is a directory, not a file", uri=str(loc)) from exc

    def read_bytes(self, uri: str | ArtifactUri) -> bytes:
        """The whole content of a (small) object."""
        loc = _object(uri)
        if loc.scheme == "file":
            with self._local(loc):
                return loc.path.read_bytes()
        with self._s3(loc):
            return self.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()

    def write_bytes(self, uri: str | ArtifactUri, data: bytes) -> None:
        """Create or replace an object; local files are replaced atomically."""
        loc = _object(uri)
        if loc.scheme == "file":
            with self._local(loc):
                loc.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=loc.path.parent, prefix=f".{loc.path.name}.")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                    os.replace(tmp, loc.path)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            return
        with self._s3(loc):
            self.client.put_object(Bucket=loc.bucket, Key=loc.key, Body=data)

    def upload_file(self, path: str | os.PathLike[str], uri: str | ArtifactUri) -> None:
        """Store a local file at ``uri`` (multipart for large files on S3)."""
        loc = _object(uri)
        if loc.scheme == "file":
            with self._local(loc):
                _atomic_copy(Path(path), loc.path)
            return
        with self._s3(loc):
            self.client.upload_file(os.fspath(path), loc.bucket, loc.key)

    def download_file(
        self,
        uri: str | ArtifactUri,
        path: str | os.PathLike[str],
        *,
        version_id: str | None = None,
    ) -> None:
        """Fetch the object at ``uri`` (its version ``version_id`` when given) into ``path``."""
        loc = _object(uri)
        if loc.scheme == "file":
            if version_id is not None:
                raise NotFound(f"{loc} is a local file: it has no version {version_id!r}")
            with self._local(loc):
                _atomic_copy(loc.path, Path(path))
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        extra = {"VersionId": version_id} if version_id is not None else None
        with self._s3(loc):
            self.client.download_file(loc.bucket, loc.key, os.fspath(path), ExtraArgs=extra)

    def describe(self, uri: str | ArtifactUri, version_id: str | None = None) -> ObjectVersion:
        """Which version of the object at ``uri`` a read gets (``version_id`` when given)."""
        loc = _object(uri)
        if loc.scheme == "file":
            size = self.head(loc)
            if version_id is not None:
                raise NotFound(f"{loc} is a local file: it has no version {version_id!r}")
            mtime = dt.datetime.fromtimestamp(loc.path.stat().st_mtime, dt.UTC)
            return ObjectVersion(size=size, last_modified=mtime.isoformat())
        kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        with self._s3(loc):
            head = self.client.head_object(**kwargs)
        modified = head.get("LastModified")
        found = head.get("VersionId")
        return ObjectVersion(
            size=int(head["ContentLength"]),
            version_id=found if found and found != "null" else None,
            etag=head.get("ETag"),
            last_modified=modified.isoformat() if modified is not None else None,
        )

    def delete(self, uri: str | ArtifactUri) -> None:
        """Remove an object; removing one that does not exist is not an error."""
        loc = _object(uri)
        if loc.scheme == "file":
            with self._local(loc):
                loc.path.unlink(missing_ok=True)
            return
        with self._s3(loc):
            self.client.delete_object(Bucket=loc.bucket, Key=loc.key)

    def exists(self, uri: str | ArtifactUri) -> bool:
        """Whether the object exists; for a directory URI, whether anything is under it."""
        loc = _as_uri(uri)
        if loc.is_dir:
            try:
                return bool(self.list(loc))
            except BucketNotFound:
                return False
        if loc.scheme == "file":
            return loc.path.is_file()
        try:
            self.head(loc)
        except BucketNotFound:
            return False
        except NotFound:
            return False
        return True

    def head(self, uri: str | ArtifactUri) -> int:
        """The size in bytes of an existing, accessible object; raises otherwise."""
        loc = _object(uri)
        if loc.scheme == "file":
            with self._local(loc):
                if not loc.path.is_file():
                    raise FileNotFoundError(loc.key)
                with loc.path.open("rb"):
                    pass
                return loc.path.stat().st_size
        with self._s3(loc):
            return self.client.head_object(Bucket=loc.bucket, Key=loc.key)["ContentLength"]

    def check_bucket(self, uri: str | ArtifactUri) -> None:
        """Raise unless the bucket of an ``s3://`` URI exists and is accessible.

        For ``file://`` URIs: raise unless the nearest existing ancestor is a writable
        directory.
        """
        loc = _as_uri(uri)
        if loc.scheme == "file":
            existing = loc.path
            while not existing.exists():
                existing = existing.parent
            if not existing.is_dir():
                raise NotFound(f"{existing} is not a directory", uri=str(loc))
            if not os.access(existing, os.W_OK):
                raise AccessDenied(f"directory {existing} is not writable", uri=str(loc))
            return
        with self._s3(loc, bucket_op=True):
            self.client.head_bucket(Bucket=loc.bucket)

    def sha256(self, uri: str | ArtifactUri) -> str:
        """``sha256:<hex>`` of an object, streamed in chunks (never held in memory whole)."""
        loc = _object(uri)
        if loc.scheme == "file":
            with self._local(loc):
                return sha256_file(loc.path)
        digest = hashlib.sha256()
        with self._s3(loc):
            body = self.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK_SIZE):
                    digest.update(chunk)
            finally:
                body.close()
        return f"sha256:{digest.hexdigest()}"

    def list(self, dir_uri: str | ArtifactUri) -> builtins.list[str]:
        """URIs of every object under a directory, recursively, sorted."""
        loc = _as_uri(dir_uri).as_dir()
        if loc.scheme == "file":
            if not loc.path.is_dir():
                return []
            return sorted(
                str(ArtifactUri("file", "", str(p)))
                for p in loc.path.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            )
        keys: builtins.list[str] = []
        with self._s3(loc, bucket_op=True):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=loc.bucket, Prefix=loc.key):
                keys.extend(obj["Key"] for obj in page.get("Contents", []) if "Key" in obj)
        return sorted(f"s3://{loc.bucket}/{key}" for key in keys)

    def copy_prefix(self, src_dir_uri: str | ArtifactUri, dst_dir_uri: str | ArtifactUri) -> int:
        """Copy every object under ``src_dir_uri`` to the same relative names under
        ``dst_dir_uri``, never overwriting one; returns how many were copied.

        An object already at the destination with the same content is left as it is, so a
        copy retried after a crash converges. If one holds different content, nothing at all
        is copied and :class:`AlreadyExists` names it. Content is compared by size, then by
        ETag or S3's SHA-256 checksum where both sides have one, and only when neither
        settles it by hashing both objects.

        S3 to S3 is a server-side copy (objects up to 5 GB); anything to or from a local
        directory goes through files. ``manifest.json`` is copied last so a reader that waits
        for it never sees a half-copied directory. An empty source raises :class:`NotFound`.
        Checking and copying are separate requests: callers serialise writers of one
        destination (the operator registers one version of a model at a time).
        """
        src = _as_uri(src_dir_uri).as_dir()
        dst = _as_uri(dst_dir_uri).as_dir()
        names = [parse_uri(u).relative_to(src) for u in self.list(src)]
        if not names:
            raise NotFound(f"there is nothing to copy under {src}", uri=str(src))
        # Every destination is checked before anything is copied: a refused copy adds nothing.
        missing = [n for n in names if not self._holds_copy(src.child(n), dst.child(n))]
        for name in in_write_order(missing):
            self._copy_one(src.child(name), dst.child(name))
        logger.debug(
            "copied %d objects from %s to %s (%d already there)",
            len(missing),
            src,
            dst,
            len(names) - len(missing),
        )
        return len(missing)

    def _stat(self, loc: ArtifactUri) -> _Stat | None:
        """Size and, on S3, ETag and SHA-256 checksum of an object; ``None`` if it is missing."""
        if loc.scheme == "file":
            with self._local(loc):
                return _Stat(loc.path.stat().st_size) if loc.path.is_file() else None
        try:
            with self._s3(loc):
                head = self.client.head_object(
                    Bucket=loc.bucket, Key=loc.key, ChecksumMode="ENABLED"
                )
        except NotFound:
            return None
        checksum = head.get("ChecksumSHA256")
        # A multipart upload's composite checksum ("<base64>-<parts>") is not the content's.
        full_object = checksum if checksum and "-" not in checksum else None
        return _Stat(head["ContentLength"], head.get("ETag"), full_object)

    def _holds_copy(self, src: ArtifactUri, dst: ArtifactUri) -> bool:
        """Whether ``dst`` already holds ``src``'s content (``False`` if ``dst`` is missing);
        raises :class:`AlreadyExists` if it holds anything else."""
        there = self._stat(dst)
        if there is None:
            return False
        source = self._stat(src)
        if source is None:
            raise NotFound(f"{src} does not exist", uri=str(src))
        if source.size != there.size:
            difference = f"{there.size} bytes, not {source.size}"
        elif source.etag is not None and source.etag == there.etag:
            return True
        elif source.sha256 is not None and there.sha256 is not None:
            if source.sha256 == there.sha256:
                return True
            difference = "a different SHA-256 checksum"
        elif (actual := self.sha256(dst)) == (expected := self.sha256(src)):
            # ETags differ for equal content after a multipart upload or with SSE-KMS.
            return True
        else:
            difference = f"{actual}, not {expected}"
        raise AlreadyExists(
            f"{dst} already exists with different content than {src} ({difference}); "
            "stored artifacts are never overwritten: remove the object if it is not wanted, "
            "or store the new artifact elsewhere",
            uri=str(dst),
        )

    def _copy_one(self, src: ArtifactUri, dst: ArtifactUri) -> None:
        if src.scheme == "s3" and dst.scheme == "s3":
            with self._s3(dst):
                self.client.copy_object(
                    Bucket=dst.bucket,
                    Key=dst.key,
                    CopySource={"Bucket": src.bucket, "Key": src.key},
                )
        elif src.scheme == "file":
            self.upload_file(src.path, dst)
        else:
            self.download_file(src, dst.path)


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class StorageCheck:
    """The outcome of :func:`check_storage`: a condition's status, reason and message."""

    ok: bool
    reason: str
    message: str


def storage_reason(exc: StorageError) -> str:
    """The condition reason (from :mod:`mlops_operator.api.reasons`) for a storage error
    that is not about a specific missing object."""
    if isinstance(exc, BucketNotFound):
        return reasons.BUCKET_NOT_FOUND
    if isinstance(exc, CredentialsMissing):
        return reasons.CREDENTIALS_MISSING
    if isinstance(exc, AccessDenied):
        return reasons.ACCESS_DENIED
    return reasons.STORAGE_UNREACHABLE


def check_storage(store: ArtifactStore, dataset_uri: str, artifact_bucket_uri: str) -> StorageCheck:
    """Check that the dataset object is readable and the artifact bucket reachable.

    Done before a training Job is created, so a typo in a URI or a missing credentials
    Secret is reported on the TrainingJob within seconds instead of after a pod start.
    Reasons: ``StorageOK``, ``StorageUnreachable``, ``DatasetNotFound``, ``BucketNotFound``,
    ``AccessDenied``, ``CredentialsMissing``, ``InvalidSpec`` (a malformed URI).
    """
    try:
        dataset = _object(dataset_uri)
        artifacts = _as_uri(artifact_bucket_uri)
    except ValueError as exc:
        return StorageCheck(False, reasons.INVALID_SPEC, str(exc))
    try:
        store.head(dataset)
    except NotFound:
        message = f"dataset {dataset} does not exist; check spec.dataset.uri"
        if dataset.scheme == "s3":
            try:
                store.check_bucket(dataset)
            except BucketNotFound:
                message = (
                    f"dataset {dataset} does not exist because bucket s3://{dataset.bucket}/ "
                    "does not exist; check spec.dataset.uri"
                )
            except StorageError:
                pass  # the object is missing either way; its bucket was only for the message
        return StorageCheck(False, reasons.DATASET_NOT_FOUND, message)
    except StorageError as exc:
        return StorageCheck(False, storage_reason(exc), exc.message)
    try:
        store.check_bucket(artifacts)
    except StorageError as exc:
        return StorageCheck(False, storage_reason(exc), f"artifact storage: {exc.message}")
    return StorageCheck(
        True,
        reasons.STORAGE_OK,
        f"dataset {dataset} is readable and artifact storage {artifacts} is reachable",
    )
