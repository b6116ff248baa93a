"""The operator's settings, read from ``MLOPS_``-prefixed environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops_operator.api.pod import PodOverrides


class Settings(BaseSettings):
    """Operator-wide defaults; every resource can override the storage ones in its spec."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    runtime_image: str = "mlops-operator/runtime:0.1.0"
    """Image that runs the trainer and the model server, unless a spec names its own."""

    s3_endpoint: str | None = None
    """S3-compatible endpoint URL (MinIO, Ceph, a cloud); unset means the AWS default."""

    s3_bucket: str = "mlops-artifacts"
    """Bucket for model artifacts when a TrainingJob does not name one."""

    s3_prefix: str = "models"
    """Key prefix under which artifacts are stored: ``<prefix>/<namespace>/<model>/<version>/``."""

    s3_check_credentials: bool = True
    """Whether the operator reads the credentials Secret to reach S3 itself (the storage check
    before training, registration, digest verification). False: it never reads a Secret (no
    RBAC on Secrets needed), skips the storage check, and reaches S3 with its own ambient
    credentials (IRSA on its ServiceAccount, or ``AWS_*`` variables); the pods still get the
    Secret's keys through ``secretKeyRef``."""

    s3_region: str | None = None
    """Region passed to the S3 client, for endpoints that require one."""

    s3_credentials_secret: str | None = "mlops-s3-credentials"
    """Secret in the resource's namespace with ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``; unset means ambient credentials (IRSA, instance profile)."""

    allowed_estimator_prefixes: list[str] = Field(default_factory=lambda: ["sklearn."])
    """Module prefixes an estimator's ``className`` may come from: importing a name runs code."""

    job_ttl_seconds: int = 86400
    """``ttlSecondsAfterFinished`` on training Jobs, so finished Jobs are cleaned up."""

    training_pod: PodOverrides = Field(default_factory=PodOverrides)
    """Defaults for the training pods (JSON, camelCase, as a TrainingJob's ``podSpec``);
    a TrainingJob's ``podSpec`` wins field by field."""

    serving_pod: PodOverrides = Field(default_factory=PodOverrides)
    """Defaults for the model-server pods (JSON, as an InferenceService's ``podSpec``);
    an InferenceService's ``podSpec`` wins field by field."""

    prometheus_url: str | None = None
    """Prometheus base URL for ``prometheus`` metric policies that name no address."""

    resync_seconds: float = Field(default=300.0, ge=10)
    """Every object is reconciled at least this often, whatever happens (kopf re-lists)."""

    workers: int = Field(default=32, ge=1, le=64)
    """Concurrent reconciles per kind (one per object at a time)."""

    max_retry_seconds: float = Field(default=300.0, ge=1)
    """Longest wait between two retries of a failing reconcile (backoff doubles up to it)."""

    peering_settle_seconds: float = Field(default=5.0, ge=0)
    """With peering (several replicas): how long kopf must have let this replica act before
    it reconciles anything, after it starts or resumes: the time for a peer started at the
    same moment to announce itself."""

    storage_check_timeout_seconds: float = 10.0
    """Timeout of the storage reachability check done before a training Job is created."""
