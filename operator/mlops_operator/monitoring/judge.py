"""Pure decisions of the monitoring loop: each policy's verdict and streak, and whether the
served version is degraded.

A streak of breaches counts evaluations in a row whose verdict is ``Breached``. A
``Healthy`` verdict resets it; ``Inconclusive`` (too few samples, nothing measured yet) and
``Error`` (could not measure) leave it unchanged, because a gap in the data is evidence
neither of a breach nor of a recovery. So a metric flapping between breach and health never
reaches its ``failureLimit``, while breaches separated only by gaps still do.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlops_operator.api.inferenceservice import Evaluation, MetricPolicy, MetricResult
from mlops_operator.monitoring.aggregate import Measurement


def _num(value: float) -> str:
    return f"{value:.4g}"


def _threshold(policy: MetricPolicy) -> str:
    bounds = []
    if policy.min is not None:
        bounds.append(f"min {_num(policy.min)}")
    if policy.max is not None:
        bounds.append(f"max {_num(policy.max)}")
    return " and ".join(bounds)


def _over(samples: int | None) -> str:
    return "" if samples is None else f" over {samples} samples"


def evaluate_metric(
    policy: MetricPolicy,
    measurement: Measurement | None,
    previous: MetricResult | None,
    *,
    error: str = "",
) -> MetricResult:
    """Judge one measurement against its policy, carrying the breach streak of ``previous``.

    ``measurement`` None means it could not be measured (``error`` says why): verdict
    ``Error``. No value (or NaN), or fewer samples than ``minSamples``: ``Inconclusive``, never
    a breach; samples None (a PromQL source) skips the ``minSamples`` check. A value below
    ``min`` or above ``max``: ``Breached``, the streak grows by one; otherwise ``Healthy``, the
    streak resets to 0. ``Error`` and ``Inconclusive`` keep the streak as it was.
    """
    streak = previous.consecutive_breaches if previous is not None else 0
    kept = f"streak stays at {streak}/{policy.failure_limit}"
    name = policy.name
    if measurement is None:
        why = error or "no measurement"
        return MetricResult(
            name=name,
            verdict="Error",
            consecutive_breaches=streak,
            message=f"{name} could not be measured: {why}; {kept}.",
        )
    value, samples = measurement.value, measurement.samples
    if value is None or math.isnan(value):
        detail = measurement.message or "no value"
        return MetricResult(
            name=name,
            value=None,
            samples=samples,
            verdict="Inconclusive",
            consecutive_breaches=streak,
            message=f"{name} has no value yet ({detail}); {kept}.",
        )
    if samples is not None and samples < policy.min_samples:
        return MetricResult(
            name=name,
            value=value,
            samples=samples,
            verdict="Inconclusive",
            consecutive_breaches=streak,
            message=f"{name} {_num(value)} over {samples} samples, fewer than minSamples "
            f"{policy.min_samples}: not judged; {kept}.",
        )
    if policy.min is not None and value < policy.min:
        comparison = f"< min {_num(policy.min)}"
    elif policy.max is not None and value > policy.max:
        comparison = f"> max {_num(policy.max)}"
    else:
        reset = f"; a streak of {streak} breaches reset" if streak else ""
        return MetricResult(
            name=name,
            value=value,
            samples=samples,
            verdict="Healthy",
            consecutive_breaches=0,
            message=f"{name} {_num(value)} within {_threshold(policy)}{_over(samples)}{reset}.",
        )
    streak += 1
    return MetricResult(
        name=name,
        value=value,
        samples=samples,
        verdict="Breached",
        consecutive_breaches=streak,
        message=f"{name} {_num(value)} {comparison} ({streak}/{policy.failure_limit} "
        f"consecutive breaches{_over(samples)}).",
    )


@dataclass(frozen=True)
class Decision:
    """Whether the served version is degraded, and the results that make it so."""

    degraded: bool
    breaching: list[MetricResult]
    """Results whose streak reached their policy's ``failureLimit``."""

    summary: str
    """A sentence for the ``Degraded`` condition, the Event and the history entry."""


def decide(policies: Sequence[MetricPolicy], results: Sequence[MetricResult]) -> Decision:
    """Degraded when any policy's streak of breaches reached its ``failureLimit``.

    Results are matched to policies by name; a result without a policy is ignored.
    """
    limits = {p.name: p.failure_limit for p in policies}
    breaching = [
        r for r in results if r.name in limits and r.consecutive_breaches >= limits[r.name]
    ]
    if breaching:
        return Decision(True, breaching, "; ".join(r.message.rstrip(".") for r in breaching) + ".")
    judged = [r for r in results if r.name in limits]
    counts: dict[str, int] = {}
    for r in judged:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    tally = ", ".join(f"{n} {verdict.lower()}" for verdict, n in sorted(counts.items()))
    summary = f"No policy reached its failure limit ({tally})." if tally else "No policies."
    return Decision(False, [], summary)


@dataclass(frozen=True)
class Measured:
    """One measurement of every policy of a service, taken at ``time`` on ``version``; the
    service's reconcile judges it once (an evaluation newer than ``status.lastEvaluation``)."""

    time: dt.datetime
    version: int
    values: Mapping[str, Measurement | None]


def judge(
    policies: Sequence[MetricPolicy], measured: Measured, last: Evaluation | None
) -> tuple[Evaluation, Decision]:
    """The evaluation of ``measured`` against the policies, carrying the streaks of ``last``
    when it judged the same version; and whether the version is degraded."""
    previous = (
        {r.name: r for r in last.metrics}
        if last is not None and last.version == measured.version
        else {}
    )
    results = [
        evaluate_metric(p, measured.values.get(p.name), previous.get(p.name)) for p in policies
    ]
    evaluation = Evaluation(time=measured.time, version=measured.version, metrics=results)
    return evaluation, decide(policies, results)
