"""Resolve where artifacts go from a spec's storage section and the operator's settings."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_operator.api.trainingjob import StorageSpec
from mlops_operator.settings import Settings


@dataclass(frozen=True)
class ResolvedStorage:
    """Storage settings after defaults are applied."""

    bucket: str
    prefix: str
    endpoint: str | None
    region: str | None
    credentials_secret: str | None


def resolve_storage(spec: StorageSpec, settings: Settings) -> ResolvedStorage:
    """The spec's values where set, the operator's defaults otherwise."""
    secret = spec.credentials_secret.name if spec.credentials_secret else None
    return ResolvedStorage(
        bucket=spec.bucket or settings.s3_bucket,
        prefix=spec.prefix if spec.prefix is not None else settings.s3_prefix,
        endpoint=spec.endpoint or settings.s3_endpoint,
        region=spec.region or settings.s3_region,
        credentials_secret=secret or settings.s3_credentials_secret,
    )
