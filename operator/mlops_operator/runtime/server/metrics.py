"""The server's Prometheus metrics, multiprocess-safe.

The server always runs prometheus-client in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``
is set by ``serve`` before any worker starts), so one code path serves one worker or many.
Counters and histograms sum across workers. Per-worker windows are combined deliberately:

- online metrics are never averaged over workers: each worker exports the sufficient
  statistics of its feedback window as ``livesum`` gauges (see :mod:`mlops_operator.api.online`):
  the correct count, per-class true/false positive and false negative counts and the sample
  count for a classifier; the sums of absolute and squared errors, of labels and of squared
  labels for a regressor. ``/metrics`` derives ``mlops_online_accuracy`` and
  ``mlops_online_mae`` from them for one pod; anything aggregating over replicas sums the
  statistics first and divides last (docs/monitoring.md has the PromQL), which is exact;
- drift PSI is the largest over the workers (``livemax``): each worker sees a random share of
  the same traffic, and the worst window is the one to alert on; categorical features have
  one too (category shares against training), and their values never seen in training are
  counted (``mlops_unseen_categories_total``, by feature);
- ``mlops_model_ready`` is the smallest (``livemin``): ready only when every worker is;
- ``mlops_drift_available`` is 0 for a model without ``reference.json`` (a model brought
  without its training statistics): its drift metrics never appear (rather than a PSI of 0,
  which would say "no drift"); they appear with the first computed PSI.

Every metric carries ``model`` and ``version`` labels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from mlops_operator.api.online import (
    ABS_ERROR,
    CORRECT,
    FALSE_NEGATIVES,
    FALSE_POSITIVES,
    LABEL_SQUARES,
    LABEL_SUM,
    LABELLED,
    SQUARED_ERROR,
    TRUE_POSITIVES,
)
from mlops_operator.runtime.server.feedback import RollingScore

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

_LABELS: Final = ("model", "version")
_CORRECT: Final = CORRECT
_ABS_ERROR: Final = ABS_ERROR
_SAMPLES: Final = LABELLED


class ServerMetrics:
    """The metrics of one served model, registered in ``registry``."""

    def __init__(self, model: str, version: str, registry: CollectorRegistry) -> None:
        self._labels = {"model": model, "version": version}
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.requests = Counter(
            "mlops_requests",
            "Inference requests (v1 predict, v2 infer, grpc ModelInfer) by protocol and HTTP "
            "status code (for grpc: the HTTP status of the same refusal).",
            [*_LABELS, "protocol", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "mlops_request_duration_seconds",
            "Time to answer an inference request, from the body read to the response.",
            [*_LABELS, "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._batch_size = Histogram(
            "mlops_batch_size",
            "Rows per predict call after micro-batching.",
            _LABELS,
            buckets=BATCH_BUCKETS,
            registry=registry,
        ).labels(**self._labels)
        self.predictions = Counter(
            "mlops_predictions",
            "Predicted rows by predicted class (empty for regression models).",
            [*_LABELS, "class"],
            registry=registry,
        )
        self._feedback = Counter(
            "mlops_feedback",
            "Labelled predictions received as feedback.",
            _LABELS,
            registry=registry,
        ).labels(**self._labels)
        self._samples = Gauge(
            _SAMPLES,
            "Labelled samples in the feedback windows (summed over workers).",
            _LABELS,
            multiprocess_mode="livesum",
            registry=registry,
        ).labels(**self._labels)
        self._psi = Gauge(
            "mlops_feature_drift_psi",
            "Population stability index of a feature's recent inputs against training "
            "(largest over workers).",
            [*_LABELS, "feature"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self._psi_max = Gauge(
            "mlops_drift_psi_max",
            "Largest mlops_feature_drift_psi over the features.",
            _LABELS,
            multiprocess_mode="livemax",
            registry=registry,
        )
        self._unseen = Counter(
            "mlops_unseen_categories",
            "Values of a categorical feature never seen in training, by feature: predicted "
            "(encoded as none of the known categories), not refused.",
            [*_LABELS, "feature"],
            registry=registry,
        )
        self._window_rows = Gauge(
            "mlops_drift_window_rows",
            "Rows behind the drift PSI (summed over workers).",
            _LABELS,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._ready = Gauge(
            "mlops_model_ready",
            "1 when the model is loaded and verified in every worker, else 0.",
            _LABELS,
            multiprocess_mode="livemin",
            registry=registry,
        ).labels(**self._labels)
        self._ready.set(0)
        self._drift_available = Gauge(
            "mlops_drift_available",
            "1 when input drift is measured (the model came with reference.json), 0 when it "
            "cannot be: /v2/models/<model> says why.",
            _LABELS,
            multiprocess_mode="livemin",
            registry=registry,
        )
        self._registry = registry
        self._score_total: Counter | None = None
        self._window_total: Gauge | None = None
        self._window_gauges: dict[str, Gauge] = {}
        self._class_children: dict[str, tuple[Any, Any, Any]] = {}

    def model_loaded(self, *, regression: bool, drift: bool = True) -> None:
        """Create the task's feedback metrics (known once the model is loaded); mark ready
        and say whether drift is measured.

        Only the task's own metrics exist, so a classifier never exports an MAE of 0.
        """
        # Labelled only now: before the model loads, nobody knows.
        self._drift_available.labels(**self._labels).set(1 if drift else 0)
        if regression:
            self._score_total = Counter(
                "mlops_feedback_absolute_error",
                "Sum of absolute errors of labelled predictions (regression).",
                _LABELS,
                registry=self._registry,
            )
            self._window_total = Gauge(
                _ABS_ERROR,
                "Sum of absolute errors in the online-MAE windows (summed over workers).",
                _LABELS,
                multiprocess_mode="livesum",
                registry=self._registry,
            )
            self._window_gauges = {
                name: Gauge(
                    name,
                    f"{doc} in the feedback windows (summed over workers).",
                    _LABELS,
                    multiprocess_mode="livesum",
                    registry=self._registry,
                )
                for name, doc in (
                    (SQUARED_ERROR, "Sum of squared errors"),
                    (LABEL_SUM, "Sum of the labels"),
                    (LABEL_SQUARES, "Sum of the squared labels"),
                )
            }
        else:
            self._score_total = Counter(
                "mlops_feedback_correct",
                "Labelled predictions that were correct (classification).",
                _LABELS,
                registry=self._registry,
            )
            self._window_total = Gauge(
                _CORRECT,
                "Correct predictions in the online-accuracy windows (summed over workers).",
                _LABELS,
                multiprocess_mode="livesum",
                registry=self._registry,
            )
            self._window_gauges = {
                name: Gauge(
                    name,
                    f"Per class: {doc} in the feedback windows (summed over workers).",
                    [*_LABELS, "class"],
                    multiprocess_mode="livesum",
                    registry=self._registry,
                )
                for name, doc in (
                    (TRUE_POSITIVES, "labelled samples of the class predicted as the class"),
                    (FALSE_POSITIVES, "samples predicted as the class labelled another class"),
                    (FALSE_NEGATIVES, "labelled samples of the class predicted as another"),
                )
            }
        self._ready.set(1)

    def request(self, protocol: str, code: int, seconds: float) -> None:
        """Count one inference request."""
        # The labelled children are looked up once: ``labels()`` builds and hashes the
        # label values under a lock, which cost more than the increments themselves.
        children = self._request_children.get((protocol, code))
        if children is None:
            children = (
                self.requests.labels(**self._labels, protocol=protocol, code=str(code)),
                self.duration.labels(**self._labels, protocol=protocol),
            )
            self._request_children[(protocol, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def batch(self, size: int, counts: Iterable[tuple[str, int]]) -> None:
        """Record one predict call and its predictions by class."""
        self._batch_size.observe(size)
        for cls, count in counts:
            self.predictions.labels(**self._labels, **{"class": cls}).inc(count)

    def feedback(self, scores: Sequence[float], window: RollingScore) -> None:
        """Count labelled predictions by their scores (1/0 correct, or absolute errors) and
        publish this worker's rolling window: its size and sufficient statistics."""
        if self._score_total is None or self._window_total is None:
            raise RuntimeError("feedback before the model was loaded")
        self._feedback.inc(len(scores))
        self._score_total.labels(**self._labels).inc(sum(scores))
        self._window_total.labels(**self._labels).set(window.total)
        self._samples.set(window.samples)
        gauges = self._window_gauges
        if window.regression:
            errors = window.errors
            for name, value in (
                (SQUARED_ERROR, errors.squared_error),
                (LABEL_SUM, errors.label_sum),
                (LABEL_SQUARES, errors.label_squares),
            ):
                gauges[name].labels(**self._labels).set(value)
            return
        for cls, counts in window.changed_classes().items():
            # Looked up once per class (bounded by the window's class cap), as in request().
            children = self._class_children.get(cls)
            if children is None:
                tp, fp, fn = (
                    gauges[name].labels(**self._labels, **{"class": cls})
                    for name in (TRUE_POSITIVES, FALSE_POSITIVES, FALSE_NEGATIVES)
                )
                children = self._class_children[cls] = (tp, fp, fn)
            children[0].set(counts.tp)
            children[1].set(counts.fp)
            children[2].set(counts.fn)

    def unseen(self, counts: dict[str, int]) -> None:
        """Count values of categorical features the model never saw, by feature."""
        for feature, count in counts.items():
            self._unseen.labels(**self._labels, feature=feature).inc(count)

    def drift(self, psi: dict[str, float], rows: int) -> None:
        """Publish this worker's drift PSI by feature."""
        for feature, value in psi.items():
            self._psi.labels(**self._labels, feature=feature).set(value)
        if psi:
            self._psi_max.labels(**self._labels).set(max(psi.values()))
        self._window_rows.labels(**self._labels).set(rows)


def derived(families: Sequence[Metric]) -> Iterator[Metric]:
    """``mlops_online_accuracy`` and ``mlops_online_mae`` from the summed window gauges."""
    totals: dict[str, dict[tuple[str, str], float]] = {_CORRECT: {}, _ABS_ERROR: {}, _SAMPLES: {}}
    for family in families:
        if family.name in totals:
            for sample in family.samples:
                key = (sample.labels.get("model", ""), sample.labels.get("version", ""))
                totals[family.name][key] = totals[family.name].get(key, 0.0) + sample.value
    for name, source, doc in (
        ("mlops_online_accuracy", _CORRECT, "Accuracy over the last labelled samples."),
        ("mlops_online_mae", _ABS_ERROR, "Mean absolute error over the last labelled samples."),
    ):
        family = GaugeMetricFamily(name, doc, labels=_LABELS)
        for key, samples in totals[_SAMPLES].items():
            if samples > 0 and key in totals[source]:
                family.add_metric(list(key), totals[source][key] / samples)
        if family.samples:
            yield family


class _Exposition(Collector):
    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        families = list(self._source.collect())
        return [*families, *derived(families)]


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of every worker's metrics plus the derived gauges.

    In multiprocess mode the values come from the files of all workers, not from
    ``registry`` (which only holds this worker's metric objects).
    """
    source: Collector = registry
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        source = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]
    exposition = CollectorRegistry(auto_describe=False)
    exposition.register(_Exposition(source))
    return generate_latest(exposition)
