"""ModelVersion: an immutable registry entry for one trained model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from mlops_operator.api.base import DNS_LABEL, ApiModel, Condition, SecretKeyRef, StatusModel
from mlops_operator.api.trainingjob import Gate, Task

KIND = "ModelVersion"
PLURAL = "modelversions"

DIGEST = r"^sha256:[0-9a-f]{64}$"
ARTIFACT_URI = r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.*|file:///.+)$"


class ArtifactSpec(ApiModel):
    """The stored model and how to load it."""

    uri: Annotated[str, Field(pattern=ARTIFACT_URI, max_length=2048)]
    """Directory holding ``model.joblib`` (and, optionally, ``manifest.json`` and
    ``reference.json``): ``s3://bucket/prefix/`` or ``file:///path/``."""

    digest: Annotated[str, Field(pattern=DIGEST)]
    """``sha256:<hex>`` of ``model.joblib``; verified before the model is ever loaded."""

    format: Literal["joblib"] = "joblib"
    """Serialization format of the model file."""

    framework: Literal["scikit-learn"] = "scikit-learn"
    """Library the model was built with."""

    framework_version: str | None = None
    """Library version that trained the model; the server warns on a mismatch."""

    python_version: str | None = None
    """Python version that trained the model."""

    endpoint: str | None = None
    """S3-compatible endpoint holding the artifact; unset means the operator's default."""

    credentials_secret: SecretKeyRef | None = None
    """Secret with ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` for the artifact; unset
    means the operator's default Secret name."""


class SourceSpec(ApiModel):
    """Lineage: where the model came from."""

    training_job: str | None = None
    """TrainingJob that produced it; unset for models registered by hand."""

    dataset_uri: str | None = None
    """Dataset the model was trained on."""

    dataset_digest: Annotated[str, Field(pattern=DIGEST)] | None = None
    """``sha256:<hex>`` of the dataset file at training time."""

    dataset_version_id: str | None = None
    """S3 ``VersionId`` of the dataset object read (a versioned bucket)."""

    dataset_etag: str | None = None
    """ETag of the dataset object read."""

    dataset_last_modified: str | None = None
    """Last-modified time of the dataset object read."""

    dataset_rows: Annotated[int, Field(ge=0)] | None = None
    """Rows in the dataset read."""

    parent_version: str | None = None
    """The ModelVersion the dataset was validated against (a retraining's predecessor)."""

    training_spec: dict[str, Any] | None = None
    """The TrainingJob spec that produced the model, the dataset pinned to the version read:
    ``mlops-operator retrain --from <modelversion>`` trains it again."""


class ModelVersionSpec(ApiModel):
    """A registered model version. Immutable once created."""

    model: Annotated[str, Field(pattern=DNS_LABEL, max_length=50)]
    """Registry name of the model."""

    version: Annotated[int, Field(ge=1)]
    """Version number, monotonic per model."""

    artifact: ArtifactSpec
    """The stored model."""

    task: Task | None = None
    """``classification`` or ``regression``."""

    metrics: dict[str, float] = Field(default_factory=dict)
    """Held-out metrics measured at training time."""

    params: dict[str, Any] = Field(default_factory=dict)
    """Estimator parameters."""

    gates: list[Gate] = Field(default_factory=list)
    """Thresholds the metrics must meet for the version to be served as ``latest``."""

    source: SourceSpec = Field(default_factory=SourceSpec)
    """Lineage of the model."""


Phase = Literal["Pending", "Ready", "Failed", "Degraded"]


class GateResult(StatusModel):
    """The outcome of one gate."""

    metric: str
    """Metric the gate checks."""

    value: float | None = None
    """Measured value; unset when the metric was not reported."""

    min: float | None = None
    """Lower bound of the gate."""

    max: float | None = None
    """Upper bound of the gate."""

    passed: bool
    """Whether the value is within the bounds."""


class ModelVersionStatus(StatusModel):
    """Observed state of a ModelVersion."""

    phase: Phase | None = None
    """``Pending`` (verifying), ``Ready`` (verified, passed its gates, not degraded), ``Failed``
    (invalid spec, digest mismatch or failed gates) or ``Degraded`` (monitoring marked it)."""

    conditions: list[Condition] = Field(default_factory=list)
    """``Ready``, ``ArtifactVerified``, ``GatesPassed``, ``Degraded``."""

    observed_generation: int | None = None
    """The ``metadata.generation`` this status describes."""

    gate_results: list[GateResult] = Field(default_factory=list)
    """Each gate with its measured value."""

    main_metric: str | None = None
    """The headline metric for ``kubectl get``."""

    served_by: list[str] = Field(default_factory=list)
    """InferenceServices currently serving this version."""

    card_uri: str | None = None
    """The model card (``card.md``, beside ``card.json``) written with the artifact."""
