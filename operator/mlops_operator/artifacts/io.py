"""Storage as the controllers use it: credentials from the namespace's Secret, boto3 off the
event loop, and the reachability check behind the ``StorageReachable`` condition."""

from __future__ import annotations

import asyncio

from mlops_operator.api import reasons
from mlops_operator.artifacts import store as artifacts
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.artifacts.store import (
    AlreadyExists,
    ArtifactStore,
    CredentialsMissing,
    NotFound,
    StorageCheck,
    StorageError,
)
from mlops_operator.context import Context
from mlops_operator.kube import client as k8s

__all__ = [
    "AlreadyExists",
    "CredentialsMissing",
    "NotFound",
    "StorageError",
    "check",
    "copy_prefix",
    "open_store",
    "read_bytes",
    "sha256",
]


STORES_KEPT = 64
"""Artifact stores (boto3 clients) kept per operator process, one per distinct credentials."""


SKIPPED_MESSAGE = (
    "Not checked: the operator does not read credentials Secrets (settings "
    "s3CheckCredentials=false); the training pod reaches S3 with its own credentials."
)


async def _credentials(
    ctx: Context, namespace: str, secret: str | None
) -> tuple[str | None, str | None]:
    # Ambient credentials (IRSA, an instance profile, environment variables) when no Secret
    # is named, or when the operator may not read Secrets at all.
    if not secret or not ctx.settings.s3_check_credentials:
        return None, None
    try:
        data = await ctx.kube.read_secret(namespace, secret)
    except k8s.NotFound:
        raise CredentialsMissing(
            f"Secret {namespace}/{secret} with the S3 credentials does not exist; create it "
            "with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ) from None
    except k8s.KubeError as exc:
        if exc.status != 403:
            raise
        raise CredentialsMissing(
            f"The operator may not read Secret {namespace}/{secret}: grant it with the chart's "
            "rbac.secretNamespaces, or set settings.s3.checkCredentials=false so the operator "
            "never reads Secrets."
        ) from None
    missing = [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not data.get(k)]
    if missing:
        raise CredentialsMissing(f"Secret {namespace}/{secret} has no {' or '.join(missing)}.")
    return data["AWS_ACCESS_KEY_ID"], data["AWS_SECRET_ACCESS_KEY"]


async def open_store(ctx: Context, namespace: str, storage: ResolvedStorage) -> ArtifactStore:
    """An artifact store with the credentials from the namespace's Secret: one per endpoint,
    region and credentials, kept for the process (a boto3 client costs ~0.1 s of CPU and
    megabytes to build; a burst of TrainingJobs built one each)."""
    key_id, secret_key = await _credentials(ctx, namespace, storage.credentials_secret)
    key = (storage.endpoint, storage.region, key_id, secret_key)
    store = ctx.stores.get(key)
    if store is None:
        if len(ctx.stores) >= STORES_KEPT:
            del ctx.stores[next(iter(ctx.stores))]  # the oldest: rotated keys, say
        # The boto3 client is created lazily, inside the first call made off the event loop.
        store = ctx.stores[key] = ArtifactStore(
            endpoint=storage.endpoint,
            region=storage.region,
            access_key_id=key_id,
            secret_access_key=secret_key,
            timeout=ctx.settings.storage_check_timeout_seconds,
        )
    return store


async def check(
    ctx: Context, namespace: str, storage: ResolvedStorage, dataset_uri: str
) -> StorageCheck:
    """Can the dataset be read and the artifact bucket be written with these credentials?
    Skipped when the operator does not read Secrets: its own credentials prove nothing about
    the pod's."""
    if not ctx.settings.s3_check_credentials:
        return StorageCheck(True, reasons.STORAGE_CHECK_SKIPPED, SKIPPED_MESSAGE)
    try:
        store = await open_store(ctx, namespace, storage)
    except CredentialsMissing as exc:
        return StorageCheck(False, reasons.CREDENTIALS_MISSING, str(exc))
    return await asyncio.to_thread(
        artifacts.check_storage, store, dataset_uri, f"s3://{storage.bucket}/"
    )


async def read_bytes(store: ArtifactStore, uri: str) -> bytes:
    """Read a small object (a manifest) off the event loop."""
    return await asyncio.to_thread(store.read_bytes, uri)


async def copy_prefix(store: ArtifactStore, src: str, dst: str) -> int:
    """Copy a run's artifacts to the version's directory, server-side, off the event loop;
    returns how many objects were copied.

    Never overwrites: objects already there with the same content are kept (a retried
    registration converges), and a different object there raises :class:`AlreadyExists`.
    """
    return await asyncio.to_thread(store.copy_prefix, src, dst)


async def sha256(store: ArtifactStore, uri: str) -> str:
    """Stream an object and return ``sha256:<hex>``."""
    return await asyncio.to_thread(store.sha256, uri)
