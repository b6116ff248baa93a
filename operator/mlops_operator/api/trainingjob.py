"""TrainingJob: one training run of a scikit-learn estimator on a dataset in S3."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from mlops_operator.api.base import (
    DNS_LABEL,
    ApiModel,
    Condition,
    ResourceRequirements,
    SecretKeyRef,
    StatusModel,
)
from mlops_operator.api.pod import PodOverrides

KIND = "TrainingJob"
PLURAL = "trainingjobs"

DATASET_URI = r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+|file:///.+)$"
CLASS_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"

VALIDATE_AGAINST_ENV = "MLOPS_VALIDATE_AGAINST"
"""The trainer's environment variable holding, as JSON, the ModelVersion its dataset is
checked against: ``{"name": ..., "schemaUri": ...}``; the operator resolves
``validation.against`` (or a retraining's predecessor) into it."""

Task = Literal["classification", "regression"]
DatasetFormat = Literal["csv", "parquet"]


class DatasetSpec(ApiModel):
    """Where the training data is and which columns to learn from."""

    uri: Annotated[str, Field(pattern=DATASET_URI, max_length=2048)]
    """Location of one CSV or Parquet file: ``s3://bucket/key`` or ``file:///path``."""

    format: DatasetFormat | None = None
    """File format; unset means inferred from the extension (``.csv``, ``.parquet``)."""

    target: Annotated[str, Field(min_length=1)]
    """Column holding the label (classification) or value (regression) to predict."""

    features: Annotated[list[str], Field(min_length=1)] | None = None
    """Columns used as model inputs; unset means every column except the target."""

    version_id: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """S3 ``VersionId`` of the dataset object to read (a versioned bucket); unset means the
    current object. The version actually read is recorded in the ModelVersion's lineage."""


ImputeStrategy = Literal["mean", "median", "most_frequent", "constant", "none"]
Scaling = Literal["none", "standard", "minmax", "robust"]
Encoding = Literal["onehot", "ordinal"]
ColumnKind = Literal["numeric", "categorical"]


class TransformSpec(ApiModel):
    """What is done to a column before the estimator sees it; unset fields keep the default
    of the column's type."""

    impute: ImputeStrategy | None = None
    """Fill missing values: ``mean``, ``median`` (numeric default), ``most_frequent``
    (categorical default), ``constant`` (0, or ``missing`` for categories) or ``none``."""

    scale: Scaling | None = None
    """Scale a numeric column: ``none`` (default), ``standard``, ``minmax`` or ``robust``."""

    encode: Encoding | None = None
    """Encode a categorical column: ``onehot`` (default; categories unseen in training are
    ignored at serving time) or ``ordinal`` (unseen categories become -1)."""


class ColumnTransform(TransformSpec):
    """The preprocessing of one named column."""

    name: Annotated[str, Field(min_length=1)]
    """The column."""

    kind: ColumnKind | None = None
    """Treat the column as ``numeric`` or ``categorical`` (e.g. integer codes); unset means
    from its type: numbers are numeric, strings and booleans categorical."""

    drop: bool = False
    """Leave the column out of the model."""


class PreprocessingSpec(ApiModel):
    """How raw columns become model inputs: one scikit-learn Pipeline (a ColumnTransformer
    before the estimator) saved as ``model.joblib``, so the server takes raw rows."""

    numeric: TransformSpec = Field(default_factory=TransformSpec)
    """Defaults for numeric columns (impute ``median``, no scaling)."""

    categorical: TransformSpec = Field(default_factory=TransformSpec)
    """Defaults for categorical columns (impute ``most_frequent``, ``onehot``)."""

    columns: list[ColumnTransform] = Field(default_factory=list)
    """Overrides for named columns."""

    @model_validator(mode="after")
    def _unique_columns(self) -> PreprocessingSpec:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("preprocessing.columns names a column more than once")
        return self


class EstimatorSpec(ApiModel):
    """The scikit-learn estimator to fit."""

    class_name: Annotated[str, Field(pattern=CLASS_NAME, max_length=256)]
    """Fully qualified class, e.g. ``sklearn.ensemble.RandomForestClassifier``. Only classes
    under the operator's allowed module prefixes (default ``sklearn.``) can be used."""

    params: dict[str, Any] = Field(default_factory=dict)
    """Constructor keyword arguments, e.g. ``{n_estimators: 100, max_depth: 8}``."""


Severity = Literal["error", "warning", "off"]


class DataChecks(ApiModel):
    """Thresholds of the checks a dataset passes before a training that validates it. A
    finding of severity ``error`` stops the training before fitting; ``warning`` is
    reported; ``off`` skips the check."""

    max_missing_share: Annotated[float, Field(ge=0, le=1)] = 0.2
    """A column may have at most this share of missing values more than in the reference."""

    min_rows: Annotated[int, Field(ge=1)] = 20
    """Fewer rows than this is an error."""

    min_rows_share: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Fewer rows than this share of the reference's rows is an error."""

    range_tolerance: Annotated[float, Field(ge=0)] = 0.1
    """Values may leave the reference range by this share of its width."""

    psi_warning: Annotated[float, Field(gt=0)] = 0.1
    """A column's PSI against the reference above this is a warning."""

    psi_error: Annotated[float, Field(gt=0)] = 0.25
    """A column's PSI against the reference above this is a finding of ``drift`` severity."""

    drift: Severity = "warning"
    """Severity of a PSI above ``psiError`` (per column) and of label drift."""

    new_categories: Severity = "warning"
    """Severity of categories the reference never saw."""

    out_of_range: Severity = "warning"
    """Severity of values outside the reference range (with ``rangeTolerance``)."""


class ValidationSpec(ApiModel):
    """How the held-out evaluation is done."""

    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """Fraction of rows held out for evaluation."""

    random_state: int = 42
    """Seed of the train/test split and of estimators that accept one."""

    stratify: bool = True
    """Keep class proportions in the split (classification only)."""

    metrics: list[str] | None = None
    """Metrics to report; unset means all for the task (classification: accuracy, precision,
    recall, f1, rocAuc; regression: r2, mae, rmse)."""

    against: Annotated[str, Field(pattern=r"^(latest|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")] | None = (
        None
    )
    """Check the dataset, before fitting, against the schema and statistics recorded with
    this ModelVersion (a name, or ``latest``: the model's newest version). Retrainings started
    by an InferenceService check against the version they replace."""

    data: DataChecks = Field(default_factory=lambda: DataChecks())
    """Thresholds of the data checks."""


class Gate(ApiModel):
    """A threshold a held-out metric must meet for the version to be promoted."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.min) || has(self.max)", "message": "a gate needs min or max"}
            ]
        }
    )

    metric: Annotated[str, Field(min_length=1)]
    """Metric name as reported in ``status.metrics``, e.g. ``accuracy``."""

    min: float | None = None
    """The metric must be greater than or equal to this."""

    max: float | None = None
    """The metric must be less than or equal to this."""

    @model_validator(mode="after")
    def _has_threshold(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError(f"gate on {self.metric!r} needs min or max")
        return self


class StorageSpec(ApiModel):
    """Where artifacts go, overriding the operator's defaults."""

    bucket: Annotated[str, Field(min_length=3, max_length=63)] | None = None
    """Bucket for the artifacts; unset means the operator's default bucket."""

    prefix: str | None = None
    """Key prefix; versions land under ``<prefix>/<namespace>/<model>/<version>/``."""

    endpoint: str | None = None
    """S3-compatible endpoint URL; unset means the operator's default."""

    region: str | None = None
    """Region for the S3 client."""

    credentials_secret: SecretKeyRef | None = None
    """Secret with ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``; unset means the
    operator's default Secret name."""


class TrainingJobSpec(ApiModel):
    """Desired state of a TrainingJob."""

    model: Annotated[str, Field(pattern=DNS_LABEL, max_length=50)]
    """Registry name of the model; versions are registered as ModelVersion ``<model>-v<N>``."""

    dataset: DatasetSpec
    """Training data."""

    estimator: EstimatorSpec
    """What to fit."""

    task: Task | None = None
    """``classification`` or ``regression``; unset means inferred from the estimator."""

    preprocessing: PreprocessingSpec | None = None
    """How raw columns are prepared; unset means the defaults when the features need them
    (numbers imputed with the median, categories imputed and one-hot encoded), and the bare
    estimator when every feature is numeric and complete."""

    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    """Held-out evaluation, and the data checks before fitting."""

    gates: list[Gate] = Field(default_factory=list)
    """Thresholds the held-out metrics must meet; a version that misses one is registered
    but never promoted."""

    storage: StorageSpec = Field(default_factory=StorageSpec)
    """Artifact storage; defaults come from the operator's settings."""

    resources: ResourceRequirements | None = None
    """CPU and memory of the training pod."""

    backoff_limit: Annotated[int, Field(ge=0, le=20)] = 2
    """Retries of the training pod before the TrainingJob fails."""

    active_deadline_seconds: Annotated[int, Field(ge=1)] | None = None
    """Wall-clock limit of the whole training, retries included."""

    image: str | None = None
    """Runtime image override; unset means the operator's runtime image."""

    pod_spec: PodOverrides | None = None
    """Where and as whom the training pod runs: ServiceAccount, node selector, tolerations,
    affinity, image pull Secrets, priority class, extra labels and annotations. Each field
    set here replaces the operator's default for it."""


Phase = Literal["Pending", "Running", "Succeeded", "Failed"]

MAX_FINDINGS = 20
"""Findings kept in a TrainingJob's status; the model card has them all."""


class Finding(StatusModel):
    """One result of the data checks before fitting."""

    check: str
    """``missingColumn``, ``typeChanged``, ``missingShare``, ``outOfRange``, ``newCategories``,
    ``tooFewRows``, ``labelDrift``, ``drift`` or ``newColumn``."""

    severity: Literal["error", "warning"]
    """``error`` stops the training; ``warning`` is reported."""

    column: str | None = None
    """The column concerned; unset for the whole dataset."""

    message: str
    """What was found, with the values."""


class TrainingJobStatus(StatusModel):
    """Observed state of a TrainingJob."""

    phase: Phase | None = None
    """``Pending``, ``Running``, ``Succeeded`` or ``Failed``."""

    conditions: list[Condition] = Field(default_factory=list)
    """``Ready``, ``StorageReachable``, ``DataValidated``, ``Registered``."""

    observed_generation: int | None = None
    """The ``metadata.generation`` this status describes."""

    job_name: str | None = None
    """Name of the batch Job running the trainer."""

    version: int | None = None
    """Version number assigned to the trained model once training succeeded."""

    model_version: str | None = None
    """Name of the registered ModelVersion."""

    artifact_uri: str | None = None
    """Directory holding ``model.joblib`` and ``manifest.json``."""

    metrics: dict[str, float] = Field(default_factory=dict)
    """Held-out metrics of the trained model."""

    main_metric: str | None = None
    """The headline metric for ``kubectl get``: ``accuracy=0.97`` or ``r2=0.81``."""

    start_time: dt.datetime | None = None
    """When the training Job started."""

    completion_time: dt.datetime | None = None
    """When the TrainingJob finished, successfully or not."""

    failure_reason: str | None = None
    """Why training failed, from the trainer's termination message."""

    findings: list[Finding] = Field(default_factory=list)
    """Data checks' findings (at most 20), errors first."""

    card_uri: str | None = None
    """The model card (``card.md``) of the registered version."""
