"""Builtin metrics of a service, aggregated over the ``/metrics`` texts of its ready pods.

Aggregation follows the model server's exposition (``runtime/server/metrics.py``):

- ``accuracy``: correct predictions over labelled samples, each summed over pods, so every
  replica weighs by its samples and the ratio is exact;
- ``precision``, ``recall``, ``f1`` (macro, or of one class) and ``mae``, ``rmse``, ``r2``:
  likewise from the pods' window statistics (per-class confusion counts, error and label
  sums; :mod:`mlops_operator.api.online`) summed over pods, the ratio taken last, so the
  value is the metric over the pooled feedback of every replica;
- ``drift``: the largest PSI over pods (the worst window is the one to alert on);
- ``errorRate`` and ``latencyP99``: counters and histogram buckets summed over pods, as the
  increase since the previous scrape. A pod's counters that went down mean the pod restarted:
  its increase is then its current value, like PromQL ``increase`` across a counter reset,
  which is why the snapshot keeps the counters per pod.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast, get_args

from prometheus_client.parser import text_string_to_metric_families

from mlops_operator.api import online
from mlops_operator.api.inferenceservice import PER_CLASS_METRICS, BuiltinMetric
from mlops_operator.api.online import ClassCounts, ClassMetric, ErrorSums

_CORRECT: Final = online.CORRECT
_LABELLED: Final = online.LABELLED
_CONFUSION: Final = {online.TRUE_POSITIVES: 0, online.FALSE_POSITIVES: 1, online.FALSE_NEGATIVES: 2}
_ERROR_SUMS: Final = {
    online.ABS_ERROR: "abs_error",
    online.SQUARED_ERROR: "squared_error",
    online.LABEL_SUM: "label_sum",
    online.LABEL_SQUARES: "label_squares",
}
_PSI_MAX: Final = "mlops_drift_psi_max"
_DRIFT_ROWS: Final = "mlops_drift_window_rows"
_DRIFT_AVAILABLE: Final = "mlops_drift_available"
_REQUESTS: Final = "mlops_requests_total"
_BUCKETS: Final = "mlops_request_duration_seconds_bucket"

BUILTIN_METRICS: Final[tuple[BuiltinMetric, ...]] = get_args(BuiltinMetric)
LATENCY_QUANTILE: Final = 0.99
FIRST_SCRAPE: Final = "first scrape: rates need two"


@dataclass(frozen=True)
class Measurement:
    """One measured value with the samples behind it.

    ``value`` None means there is nothing to judge yet (no feedback, no requests);
    ``samples`` None means the source has no notion of samples (a PromQL query), so the
    ``minSamples`` check does not apply.
    """

    value: float | None
    samples: int | None
    message: str


@dataclass(frozen=True)
class PodCounters:
    """One pod's counter totals at a scrape."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)
    """Cumulative latency histogram: bucket upper bound (``inf`` for ``+Inf``) to count."""

    def went_down(self, previous: PodCounters) -> bool:
        """Any counter below its previous value, or a different bucket layout: a restart."""
        return (
            self.requests < previous.requests
            or self.errors < previous.errors
            or self.buckets.keys() != previous.buckets.keys()
            or any(self.buckets[le] < count for le, count in previous.buckets.items())
        )

    def increase(self, previous: PodCounters | None) -> PodCounters:
        """Counters gained since ``previous``; all of them after a restart or for a new pod."""
        if previous is None or self.went_down(previous):
            return self
        return PodCounters(
            requests=self.requests - previous.requests,
            errors=self.errors - previous.errors,
            buckets={le: count - previous.buckets[le] for le, count in self.buckets.items()},
        )


@dataclass(frozen=True)
class Snapshot:
    """Counter totals per pod name, kept between evaluations to compute increases."""

    pods: Mapping[str, PodCounters]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict, e.g. for an annotation; read back with :meth:`from_json`."""
        return {
            "pods": {
                name: {
                    "requests": c.requests,
                    "errors": c.errors,
                    "buckets": {_le_text(le): n for le, n in sorted(c.buckets.items())},
                }
                for name, c in sorted(self.pods.items())
            }
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """Read what :meth:`to_json` wrote."""
        return cls(
            pods={
                name: PodCounters(
                    requests=float(c["requests"]),
                    errors=float(c["errors"]),
                    buckets={float(le): float(n) for le, n in c["buckets"].items()},
                )
                for name, c in data["pods"].items()
            }
        )


@dataclass(frozen=True)
class Aggregate:
    """The builtin metrics of one scrape of every ready pod."""

    measurements: Mapping[BuiltinMetric, Measurement | None]
    """None when no pod's ``/metrics`` could be read: the metric could not be measured."""

    snapshot: Snapshot
    """Pass as ``previous`` to the next :func:`aggregate`."""

    unreadable: Mapping[str, str]
    """Pods whose text did not parse, with the parser's error."""

    classes: Mapping[str, ClassCounts] = field(default_factory=dict)
    """Confusion counts by class, summed over the pods read."""

    note: str = ""
    """Which pods the values come from, for messages."""

    def measurement(self, metric: BuiltinMetric, cls: str | None = None) -> Measurement | None:
        """The measurement of ``metric``: of one class ``cls`` (precision, recall, f1), else
        the service-wide value."""
        whole = self.measurements.get(metric)
        if cls is None or whole is None or metric not in PER_CLASS_METRICS:
            return whole
        if whole.value is None:
            return whole  # no feedback, or not a classifier: say that, not "unknown class"
        return _of_class(self.classes, cast(ClassMetric, metric), cls, self.note)


@dataclass
class _Pod:
    correct: float | None = None
    labelled: float = 0.0
    confusion: dict[str, list[float]] | None = None
    errors: dict[str, float] | None = None
    psi_max: float | None = None
    drift_rows: float = 0.0
    drift_available: float | None = None
    counters: PodCounters = field(default_factory=PodCounters)


def _le_text(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)


def _parse(text: str, model: str) -> _Pod:
    pod = _Pod()
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    # Samples are matched by sample name, not family name: the parser files an untyped
    # ``x_total`` under family ``x_total`` but a typed counter under ``x``.
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            name, value = sample.name, float(sample.value)
            if name == _CORRECT:
                pod.correct = (pod.correct or 0.0) + value
            elif name in _CONFUSION:
                if pod.confusion is None:
                    pod.confusion = {}
                counts = pod.confusion.setdefault(sample.labels.get("class", ""), [0.0] * 3)
                counts[_CONFUSION[name]] += value
            elif name in _ERROR_SUMS:
                pod.errors = pod.errors or {}
                pod.errors[_ERROR_SUMS[name]] = pod.errors.get(_ERROR_SUMS[name], 0.0) + value
            elif name == _LABELLED:
                pod.labelled += value
            elif name == _PSI_MAX:
                pod.psi_max = value if pod.psi_max is None else max(pod.psi_max, value)
            elif name == _DRIFT_ROWS:
                pod.drift_rows += value
            elif name == _DRIFT_AVAILABLE:
                pod.drift_available = value
            elif name == _REQUESTS:
                requests += value
                if sample.labels.get("code", "").startswith("5"):
                    errors += value
            elif name == _BUCKETS:
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + value
    pod.counters = PodCounters(requests=requests, errors=errors, buckets=buckets)
    return pod


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of a cumulative histogram, as PromQL ``histogram_quantile``.

    Linear interpolation inside the bucket holding the rank, the first bucket starting at 0;
    a rank in the ``+Inf`` bucket answers the largest finite bound. Counts that decrease with
    the bound (buckets summed from inconsistent sources) are raised to stay monotonic, as
    Prometheus does. None where PromQL answers NaN: no ``+Inf`` bucket, fewer than two
    buckets, or no observations.
    """
    bounds = sorted(buckets)
    if len(bounds) < 2 or not math.isinf(bounds[-1]):
        return None
    counts: list[float] = []
    for le in bounds:
        counts.append(max(buckets[le], counts[-1] if counts else 0.0))
    observations = counts[-1]
    if observations <= 0:
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * observations
    b = next(i for i, count in enumerate(counts) if count >= rank)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)


def _pods_note(read: int, unreadable: int) -> str:
    note = f"from {read} pod{'' if read == 1 else 's'}"
    if unreadable:
        note += f" ({unreadable} unreadable)"
    return note


def _accuracy(pods: Sequence[_Pod], note: str) -> Measurement:
    labelled = sum(p.labelled for p in pods)
    samples = round(labelled)
    if labelled <= 0:
        return Measurement(None, 0, f"no labelled feedback yet {note}")
    correct = [p.correct for p in pods if p.correct is not None]
    if not correct:
        return Measurement(
            None, samples, f"no online accuracy {note}: the model is not a classifier"
        )
    value = sum(correct) / labelled
    return Measurement(value, samples, f"online accuracy over {samples} labelled samples {note}")


_NAMES: Final[Mapping[str, str]] = {
    "precision": "macro precision",
    "recall": "macro recall",
    "f1": "macro F1",
    "mae": "online MAE",
    "rmse": "online RMSE",
    "r2": "online R²",
}


def _pooled_classes(pods: Sequence[_Pod]) -> dict[str, ClassCounts] | None:
    """Confusion counts by class summed over pods; None when no pod exports any."""
    found = [p.confusion for p in pods if p.confusion is not None]
    if not found:
        return None
    pooled: dict[str, ClassCounts] = {}
    for confusion in found:
        for cls, (tp, fp, fn) in confusion.items():
            pooled[cls] = pooled.get(cls, ClassCounts()) + ClassCounts(tp, fp, fn)
    return pooled


def _classification(
    pods: Sequence[_Pod], pooled: Mapping[str, ClassCounts] | None, note: str
) -> dict[BuiltinMetric, Measurement]:
    """Macro precision, recall and F1 over the pooled confusion counts."""
    labelled = sum(p.labelled for p in pods)
    samples = round(labelled)
    result: dict[BuiltinMetric, Measurement] = {}
    for metric in PER_CLASS_METRICS:
        name = _NAMES[metric]
        if labelled <= 0:
            result[metric] = Measurement(None, 0, f"no labelled feedback yet {note}")
        elif pooled is None:
            result[metric] = Measurement(
                None,
                samples,
                f"no {name} {note}: the pods export no per-class counts (the model is not "
                "a classifier)",
            )
        else:
            present = sum(1 for c in pooled.values() if c.present)
            result[metric] = Measurement(
                online.macro(pooled, cast(ClassMetric, metric)),
                samples,
                f"{name} over {present} classes and {samples} labelled samples {note}",
            )
    return result


def _of_class(
    pooled: Mapping[str, ClassCounts], metric: ClassMetric, cls: str, note: str
) -> Measurement:
    """One class's precision, recall or F1 over the pooled counts."""
    counts = pooled.get(cls, ClassCounts())
    samples = round(counts.samples(metric))
    value = counts.value(metric)
    what = "predictions of" if metric == "precision" else "labelled samples of"
    if value is None:
        why = {
            "precision": "was never predicted",
            "recall": "has no labelled samples",
            "f1": "was neither labelled nor predicted",
        }[metric]
        return Measurement(
            None, samples, f"{metric} of class {cls!r} is undefined: the class {why} {note}"
        )
    return Measurement(
        value, samples, f"{metric} of class {cls!r} over {samples} {what} the class {note}"
    )


def _regression(pods: Sequence[_Pod], note: str) -> dict[BuiltinMetric, Measurement]:
    """MAE, RMSE and R² over the pooled error and label sums."""
    labelled = sum(p.labelled for p in pods)
    samples = round(labelled)
    found = [p.errors for p in pods if p.errors is not None]
    sums = ErrorSums(n=labelled)
    for errors in found:
        sums = sums + ErrorSums(**errors)
    values = {"mae": sums.mae, "rmse": sums.rmse, "r2": sums.r2}
    result: dict[BuiltinMetric, Measurement] = {}
    for metric in ("mae", "rmse", "r2"):
        name = _NAMES[metric]
        if labelled <= 0:
            result[metric] = Measurement(None, 0, f"no labelled feedback yet {note}")
        elif not found:
            result[metric] = Measurement(
                None,
                samples,
                f"no {name} {note}: the pods export no error sums (the model is not a regressor)",
            )
        elif values[metric] is None:
            result[metric] = Measurement(
                None,
                samples,
                f"{name} is undefined over {samples} labelled samples {note}: the labels "
                "do not vary",
            )
        else:
            result[metric] = Measurement(
                values[metric], samples, f"{name} over {samples} labelled samples {note}"
            )
    return result


def _drift(pods: Sequence[_Pod], note: str) -> Measurement:
    rows = round(sum(p.drift_rows for p in pods))
    psi = [p.psi_max for p in pods if p.psi_max is not None]
    if not psi and pods and all(p.drift_available == 0 for p in pods):
        return Measurement(
            None,
            rows,
            "drift cannot be measured: the model was registered without reference.json "
            f"(its training statistics) {note}",
        )
    if not psi:
        return Measurement(None, rows, f"no drift window yet {note}")
    return Measurement(max(psi), rows, f"largest feature PSI over {rows} rows {note}")


def _rates(
    increase: Iterable[PodCounters], first: bool, note: str
) -> tuple[Measurement, Measurement]:
    if first:
        return Measurement(None, 0, FIRST_SCRAPE), Measurement(None, 0, FIRST_SCRAPE)
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for counters in increase:
        requests += counters.requests
        errors += counters.errors
        for le, count in counters.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + count
    total = round(requests)
    if requests <= 0:
        error_rate = Measurement(None, 0, f"no requests since the previous scrape {note}")
    else:
        error_rate = Measurement(
            errors / requests,
            total,
            f"5xx share of {total} requests since the previous scrape {note}",
        )
    observed = round(buckets.get(math.inf, 0.0))
    p99 = histogram_quantile(LATENCY_QUANTILE, buckets)
    if p99 is None:
        latency = Measurement(None, observed, f"no timed requests since the previous scrape {note}")
    else:
        latency = Measurement(
            p99,
            observed,
            f"p99 latency in seconds of {observed} requests since the previous scrape {note}",
        )
    return error_rate, latency


def aggregate(
    pods: Mapping[str, str],
    model: str,
    previous: Snapshot | None,
    failed: Mapping[str, str] | None = None,
) -> Aggregate:
    """The builtin metrics of ``model`` from the ``/metrics`` text of every ready pod, keyed by
    pod name, and the snapshot for the next call.

    ``previous`` None (first scrape, or the operator restarted) leaves the rates unmeasured.
    ``failed`` names ready pods whose ``/metrics`` could not be fetched, with the reason. Such
    a pod, like one whose text does not parse, is left out and keeps its previous counters, so
    the next increase covers both intervals instead of counting its whole life again; a pod
    gone since ``previous`` is forgotten. When no ready pod could be read at all, every metric
    is None (could not measure); with no ready pods at all there is simply nothing to judge.
    """
    parsed: dict[str, _Pod] = {}
    unreadable = dict(failed or {})
    for name, text in pods.items():
        try:
            parsed[name] = _parse(text, model)
        except (ValueError, KeyError, IndexError) as exc:
            unreadable[name] = f"unparsable metrics: {exc}"
    before = previous.pods if previous is not None else {}
    counters = {name: pod.counters for name, pod in parsed.items()}
    kept = {name: before[name] for name in unreadable if name in before}
    snapshot = Snapshot(pods={**kept, **counters})
    measurements: dict[BuiltinMetric, Measurement | None]
    if not parsed:
        empty = None if unreadable else Measurement(None, 0, "no ready pods to scrape")
        measurements = dict.fromkeys(BUILTIN_METRICS, empty)
    else:
        note = _pods_note(len(parsed), len(unreadable))
        values = list(parsed.values())
        error_rate, latency = _rates(
            (c.increase(before.get(name)) for name, c in counters.items()), previous is None, note
        )
        pooled = _pooled_classes(values)
        measurements = {
            "accuracy": _accuracy(values, note),
            **_classification(values, pooled, note),
            **_regression(values, note),
            "drift": _drift(values, note),
            "errorRate": error_rate,
            "latencyP99": latency,
        }
        return Aggregate(
            measurements=measurements,
            snapshot=snapshot,
            unreadable=unreadable,
            classes=pooled or {},
            note=note,
        )
    return Aggregate(measurements=measurements, snapshot=snapshot, unreadable=unreadable)
