"""InferenceService: serves a ModelVersion, watches its metrics, rolls back or retrains."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, model_validator

from mlops_operator.api.base import (
    DNS_LABEL,
    ApiModel,
    Condition,
    ResourceRequirements,
    StatusModel,
)
from mlops_operator.api.pod import PodOverrides
from mlops_operator.api.trainingjob import DatasetSpec, TrainingJobSpec

KIND = "InferenceService"
PLURAL = "inferenceservices"

BuiltinMetric = Literal[
    "accuracy",
    "precision",
    "recall",
    "f1",
    "mae",
    "rmse",
    "r2",
    "drift",
    "errorRate",
    "latencyP99",
]
CLASSIFICATION_METRICS: Final[frozenset[BuiltinMetric]] = frozenset(
    {"accuracy", "precision", "recall", "f1"}
)
"""Builtin metrics of a classifier's feedback."""
REGRESSION_METRICS: Final[frozenset[BuiltinMetric]] = frozenset({"mae", "rmse", "r2"})
"""Builtin metrics of a regressor's feedback."""
PER_CLASS_METRICS: Final[tuple[BuiltinMetric, ...]] = ("precision", "recall", "f1")
"""Builtin metrics a policy may take for one class (``class``) instead of the macro average."""
Action = Literal["Rollback", "Retrain", "RollbackAndRetrain", "Alert"]


class ServerSpec(ApiModel):
    """Tuning of the model server."""

    workers: Annotated[int, Field(ge=1, le=64)] = 1
    """Worker processes per replica."""

    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = 256
    """Most rows collected into one ``predict`` call."""

    max_batch_delay_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    """Longest a request waits for others to join its batch, under concurrent load only: a
    request that arrives alone after a batch of one is predicted at once, and a batch goes
    as soon as it holds as many requests as the last one did."""


class PrometheusSource(ApiModel):
    """A PromQL query whose result is the metric's value."""

    query: Annotated[str, Field(min_length=1)]
    """PromQL expression returning one sample, e.g.
    ``sum(rate(mlops_requests_total{version="{{ version }}",code=~"5.."}[5m]))``;
    ``{{ model }}``, ``{{ version }}`` (the served version), ``{{ namespace }}`` and
    ``{{ service }}`` are filled in before each query."""

    address: str | None = None
    """Prometheus base URL; unset means the operator's setting."""


class MetricPolicy(ApiModel):
    """One monitored metric with its threshold."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.builtin) != has(self.prometheus)",
                    "message": "set exactly one of builtin or prometheus",
                },
                {"rule": "has(self.min) || has(self.max)", "message": "set min or max"},
                {
                    "rule": "!has(self.class) || (has(self.builtin) && self.builtin in "
                    "['precision', 'recall', 'f1'])",
                    "message": "class applies to the builtin metrics precision, recall and f1 only",
                },
            ]
        }
    )

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
    """Name of the policy, shown in ``status.lastEvaluation``."""

    builtin: BuiltinMetric | None = None
    """A metric the operator reads from the model server pods, over the feedback windows of
    all replicas: for classifiers ``accuracy``, ``precision``, ``recall``, ``f1`` (macro
    averages, or of one ``class``); for regressors ``mae``, ``rmse``, ``r2``; for any model
    ``drift`` (largest per-feature PSI), ``errorRate``, ``latencyP99`` (seconds). A
    classifier's metric on a regressor (or the reverse) is an InvalidSpec."""

    class_: Annotated[
        Annotated[str, Field(min_length=1, max_length=253)] | None, Field(alias="class")
    ] = None
    """With ``precision``, ``recall`` or ``f1``: judge this class instead of the macro
    average; the class label's string form (``"1"`` for class 1, ``"setosa"``). Its samples
    are the class's predictions for precision, its labelled samples for recall and f1."""

    prometheus: PrometheusSource | None = None
    """A PromQL query instead of a builtin metric."""

    min: float | None = None
    """Breach when the value falls below this."""

    max: float | None = None
    """Breach when the value rises above this."""

    min_samples: Annotated[int, Field(ge=0)] = 100
    """Below this many samples the verdict is Inconclusive, never a breach."""

    failure_limit: Annotated[int, Field(ge=1)] = 3
    """Consecutive breaching evaluations before acting."""

    @model_validator(mode="after")
    def _one_source_and_threshold(self) -> MetricPolicy:
        if (self.builtin is None) == (self.prometheus is None):
            raise ValueError(f"metric {self.name!r} needs exactly one of builtin or prometheus")
        if self.min is None and self.max is None:
            raise ValueError(f"metric {self.name!r} needs min or max")
        if self.class_ is not None and self.builtin not in PER_CLASS_METRICS:
            raise ValueError(
                f"metric {self.name!r}: class applies to the builtin metrics precision, recall "
                "and f1 only"
            )
        return self


class MonitoringSpec(ApiModel):
    """How often and on what the service is judged."""

    interval_seconds: Annotated[int, Field(ge=5, le=86400)] = 30
    """Seconds between evaluations."""

    metrics: list[MetricPolicy] = Field(default_factory=list)
    """The policies evaluated every interval."""


class RetrainSpec(ApiModel):
    """How a replacement model is trained."""

    template: TrainingJobSpec | None = None
    """TrainingJob spec to run; unset means the spec of the TrainingJob that produced the
    serving version."""

    dataset: DatasetSpec | None = None
    """Dataset override, e.g. a newer data prefix."""

    cooldown_seconds: Annotated[int, Field(ge=0)] = 3600
    """Least time between two retrainings of this service."""

    max_per_day: Annotated[int, Field(ge=0, le=100)] = 3
    """Most retrainings started in 24 hours."""

    schedule: str | None = None
    """Cron expression for scheduled retraining, e.g. ``0 3 * * 0``."""


SCALE_TO_ZERO_REFUSED = (
    "minReplicas 0 (scale to zero) is not supported: a HorizontalPodAutoscaler keeps at least "
    "one replica; use KEDA or Knative for scale-to-zero (see docs/autoscaling.md)"
)


class AutoscalingSpec(ApiModel):
    """Horizontal autoscaling of the predictor by a HorizontalPodAutoscaler (autoscaling/v2)
    the operator owns: on inference requests per second per replica (a Pods metric served by a
    metrics adapter such as prometheus-adapter) or on CPU utilisation (a Resource metric)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minReplicas) || self.minReplicas >= 1",
                    "message": SCALE_TO_ZERO_REFUSED,
                },
                {
                    "rule": "!has(self.minReplicas) || self.maxReplicas >= self.minReplicas",
                    "message": "maxReplicas must be greater than or equal to minReplicas",
                },
                {
                    "rule": "has(self.targetRequestsPerSecond) != "
                    "has(self.targetCpuUtilizationPercent)",
                    "message": "set exactly one of targetRequestsPerSecond or "
                    "targetCpuUtilizationPercent",
                },
            ]
        }
    )

    min_replicas: Annotated[int, Field(ge=0, le=100)] = 1
    """Fewest replicas, at least 1 (scale-to-zero needs KEDA or Knative, see
    docs/autoscaling.md)."""

    max_replicas: Annotated[int, Field(ge=1, le=100)]
    """Most replicas; at least ``minReplicas``."""

    target_requests_per_second: Annotated[float, Field(ge=0.001, le=1_000_000)] | None = None
    """Inference requests per second each replica should serve on average: the
    ``mlops_requests_per_second`` Pods metric, which a metrics adapter derives from the
    server's ``mlops_requests_total`` counter (see docs/autoscaling.md)."""

    target_cpu_utilization_percent: Annotated[int, Field(ge=1, le=1000)] | None = None
    """Average CPU use of the replicas, in percent of their CPU request."""

    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    """How long the load must stay low before replicas are removed: the autoscaler scales
    down to the highest replica count it recommended over this window."""

    @model_validator(mode="after")
    def _bounds_and_one_target(self) -> AutoscalingSpec:
        if self.min_replicas < 1:
            raise ValueError(SCALE_TO_ZERO_REFUSED)
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas ({self.max_replicas}) must be greater than or equal to "
                f"minReplicas ({self.min_replicas})"
            )
        if (self.target_requests_per_second is None) == (
            self.target_cpu_utilization_percent is None
        ):
            raise ValueError(
                "set exactly one of targetRequestsPerSecond or targetCpuUtilizationPercent"
            )
        return self


class PromotionSpec(ApiModel):
    """When a retrained version replaces the serving one."""

    must_beat: str | None = None
    """Held-out metric the new version must improve on over the version it replaces."""


class InferenceServiceSpec(ApiModel):
    """Desired state of an InferenceService."""

    model: Annotated[str, Field(pattern=DNS_LABEL, max_length=50)]
    """Registry name of the model to serve."""

    version: Annotated[
        int | Literal["latest"],
        Field(
            json_schema_extra={
                "x-kubernetes-validations": [
                    {
                        "rule": "type(self) == int ? self >= 1 : self == 'latest'",
                        "message": "version must be a number >= 1 or 'latest'",
                    }
                ]
            }
        ),
    ] = "latest"
    """A version number, or ``latest``: the newest Ready version that passed its gates and is
    not Degraded."""

    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    """Model server pods; ignored while ``autoscaling`` is set (the autoscaler owns the
    Deployment's replica count then)."""

    autoscaling: AutoscalingSpec | None = None
    """Scale the predictor between ``minReplicas`` and ``maxReplicas`` on load; unset means
    a fixed ``replicas``."""

    resources: ResourceRequirements | None = None
    """CPU and memory per pod."""

    server: ServerSpec = Field(default_factory=ServerSpec)
    """Model server tuning."""

    monitoring: MonitoringSpec | None = None
    """Metric policies; unset means not monitored."""

    on_degradation: Action = "Rollback"
    """What to do when a policy breaches ``failureLimit`` times in a row."""

    retrain: RetrainSpec | None = None
    """Retraining settings for ``Retrain``, ``RollbackAndRetrain`` and schedules."""

    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    """Rules for promoting a retrained version."""

    image: str | None = None
    """Runtime image override; unset means the operator's runtime image."""

    pod_spec: PodOverrides | None = None
    """Where and as whom the model-server pods run: ServiceAccount, node selector, tolerations,
    affinity, image pull Secrets, priority class, extra labels and annotations. Each field
    set here replaces the operator's default for it."""


class HistoryEntry(StatusModel):
    """One change of the served version."""

    version: int
    """Version served from this point."""

    time: dt.datetime
    """When the change was made."""

    reason: str
    """Why: ``Initial``, ``NewLatest``, ``Pinned``, ``RolledBack``, ``Promoted``."""

    message: str = ""
    """Details, e.g. the metric values behind a rollback."""


class MetricResult(StatusModel):
    """The last verdict on one policy."""

    name: str
    """Policy name."""

    value: float | None = None
    """Measured value; unset when nothing could be measured."""

    samples: int | None = None
    """Samples behind the value."""

    verdict: Literal["Healthy", "Breached", "Inconclusive", "Error"]
    """Outcome of the comparison with the threshold."""

    consecutive_breaches: int = 0
    """Breaches in a row so far."""

    message: str = ""
    """Explanation, e.g. why the verdict is Inconclusive."""


class Evaluation(StatusModel):
    """The latest evaluation of every policy."""

    time: dt.datetime
    """When it ran."""

    version: int | None = None
    """The version that was evaluated; streaks start over when the served version changes."""

    metrics: list[MetricResult] = Field(default_factory=list)
    """One result per policy."""


class RejectedVersion(StatusModel):
    """A version this service declined to promote."""

    version: int
    """The version."""

    reason: str
    """Why it is not served."""

    time: dt.datetime
    """When it was declined."""


class RetrainingStatus(StatusModel):
    """Retraining runs this service started."""

    active: str | None = None
    """The TrainingJob running now, if any."""

    started: Annotated[list[dt.datetime], Field(max_length=100)] = Field(default_factory=list)
    """Start times of recent retrainings, for the cooldown and the daily budget."""

    count: int = 0
    """Retrainings started so far; the next TrainingJob is ``<service>-retrain-<count+1>``."""

    last_result: str | None = None
    """What became of the last retraining."""

    next_scheduled: dt.datetime | None = None
    """When ``spec.retrain.schedule`` starts the next one."""


class AutoscalerStatus(StatusModel):
    """What the predictor's HorizontalPodAutoscaler reports."""

    current_replicas: int | None = None
    """Replicas of the Deployment when the autoscaler last looked."""

    desired_replicas: int | None = None
    """Replicas the autoscaler last decided on."""

    current_metric: str | None = None
    """The scaling metric's current average over the replicas, e.g. ``3.2 requests/s`` or
    ``45% CPU``."""

    last_scale_time: dt.datetime | None = None
    """When the autoscaler last changed the replica count."""

    message: str | None = None
    """Why the autoscaler cannot scale, when it says it cannot (e.g. the metric is not served
    by a metrics adapter)."""


Phase = Literal["Pending", "Ready", "Degraded", "Failed"]


class InferenceServiceStatus(StatusModel):
    """Observed state of an InferenceService."""

    phase: Phase | None = None
    """``Pending``, ``Ready``, ``Degraded`` or ``Failed``."""

    conditions: list[Condition] = Field(default_factory=list)
    """``Ready``, ``Progressing``, ``Degraded``, ``RolledBack``, ``Retraining``."""

    observed_generation: int | None = None
    """The ``metadata.generation`` this status describes."""

    url: str | None = None
    """In-cluster URL of the service."""

    current_version: int | None = None
    """Version being served."""

    ready_replicas: int = 0
    """Pods ready to answer."""

    desired_replicas: int | None = None
    """Pods wanted now: ``spec.replicas``, or the autoscaler's latest decision while
    ``spec.autoscaling`` is set."""

    autoscaler: AutoscalerStatus | None = None
    """The autoscaler's view, while ``spec.autoscaling`` is set."""

    history: Annotated[list[HistoryEntry], Field(max_length=50)] = Field(default_factory=list)
    """The most recent version changes, newest last."""

    last_evaluation: Evaluation | None = None
    """The latest evaluation of the metric policies."""

    rejected_versions: Annotated[list[RejectedVersion], Field(max_length=50)] = Field(
        default_factory=list
    )
    """Versions this service will not promote, with the reason (e.g. it did not beat the
    version it would replace)."""

    retraining: RetrainingStatus = Field(default_factory=lambda: RetrainingStatus())
    """Retraining started by this service."""
