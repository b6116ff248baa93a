"""Pure decisions of the monitoring loop: verdicts, degradation, rollback target, retraining
budget, promotion and schedules.

A streak of breaches counts evaluations in a row whose verdict is ``Breached``. A
``Healthy`` verdict resets it; ``Inconclusive`` (too few samples, nothing measured yet) and
``Error`` (could not measure) leave it unchanged, because a gap in the data is evidence
neither of a breach nor of a recovery. So a metric flapping between breach and health never
reaches its ``failureLimit``, while breaches separated only by gaps still do.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from croniter import CroniterError, croniter

from mlops_operator.api.inferenceservice import HistoryEntry, MetricPolicy, MetricResult
from mlops_operator.policy.scrape import Measurement
from mlops_operator.policy.serving import Candidate

LOWER_IS_BETTER: Final = frozenset({"mae", "rmse"})
"""Held-out metrics where a smaller value is better; every other metric (accuracy, f1,
precision, recall, rocAuc, r2) is better when larger."""

DAY: Final = dt.timedelta(days=1)

_CRON_MACROS: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_CRON_PROBE: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


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


def rollback_target(
    history: Sequence[HistoryEntry], candidates: Sequence[Candidate], current: int
) -> Candidate | None:
    """The version to roll back to from ``current``, or None when no healthy one exists.

    The newest entry of the service's history (newest last), other than ``current``, whose
    version is still servable as latest (Ready, verified, passed its gates, not Degraded);
    when the history holds none, the newest servable version older than ``current``.
    """
    servable = {c.version: c for c in candidates if c.servable_as_latest}
    for entry in reversed(history):
        if entry.version != current and entry.version in servable:
            return servable[entry.version]
    older = [c for version, c in servable.items() if version < current]
    return max(older, key=lambda c: c.version, default=None)


def may_retrain(
    now: dt.datetime,
    started: Sequence[dt.datetime],
    in_flight: bool,
    cooldown_seconds: int,
    max_per_day: int,
) -> tuple[bool, str]:
    """Whether a retraining of the service may start now, and a sentence saying why.

    Refused while one is in flight, within ``cooldown_seconds`` of the last start, or when
    ``max_per_day`` retrainings started in the 24 hours before ``now``.
    """
    if in_flight:
        return False, "A retraining is already running; at most one runs at a time."
    if max_per_day <= 0:
        return False, "Retraining is disabled: maxPerDay is 0."
    past = sorted(started)
    if past:
        ready_at = past[-1] + dt.timedelta(seconds=cooldown_seconds)
        if now < ready_at:
            return False, (
                f"Cooling down: the last retraining started at {past[-1].isoformat()}; "
                f"the next may start at {ready_at.isoformat()}."
            )
    today = [t for t in past if t > now - DAY]
    if len(today) >= max_per_day:
        ready_at = today[-max_per_day] + DAY
        return False, (
            f"Daily budget spent: {len(today)} of {max_per_day} retrainings started in the "
            f"last 24 hours; the next may start at {ready_at.isoformat()}."
        )
    return True, (
        f"Retraining allowed: {len(today)} of {max_per_day} started in the last 24 hours."
    )


def _beats(metric: str, candidate: float, replaced: float) -> bool:
    return candidate < replaced if metric in LOWER_IS_BETTER else candidate > replaced


def promotion_verdict(
    candidate_metrics: Mapping[str, float],
    candidate: Candidate,
    replaced_metrics: Mapping[str, float] | None,
    must_beat: str | None,
) -> tuple[bool, str]:
    """Whether a retrained version may replace the served one, and a sentence saying why.

    It must be Ready with a verified artifact, have passed its gates, not be Degraded, and,
    when ``must_beat`` names a held-out metric, be strictly better on it than the replaced
    version (lower for ``mae`` and ``rmse``, higher for the rest). ``replaced_metrics`` None
    means no version is being replaced, so there is nothing to beat. A metric missing on
    either side refuses the promotion: the comparison cannot be made.
    """
    label = f"version {candidate.version}"
    if candidate.phase != "Ready" or not candidate.artifact_verified:
        return False, f"{label} is not Ready (phase {candidate.phase or 'Pending'})."
    if not candidate.gates_passed:
        return False, f"{label} did not pass its promotion gates."
    if candidate.degraded:
        return False, f"{label} is Degraded."
    if must_beat is None:
        return True, f"{label} is Ready and passed its gates."
    if replaced_metrics is None:
        return True, f"{label} is Ready and passed its gates; no served version to beat."
    mine = candidate_metrics.get(must_beat)
    if mine is None:
        return False, f"{label} has no {must_beat} metric to compare (promotion.mustBeat)."
    theirs = replaced_metrics.get(must_beat)
    if theirs is None:
        return False, f"the replaced version has no {must_beat} metric to compare against."
    direction = "lower" if must_beat in LOWER_IS_BETTER else "higher"
    if not _beats(must_beat, mine, theirs):
        return False, (
            f"{label} {must_beat} {_num(mine)} does not beat {_num(theirs)} of the replaced "
            f"version ({direction} is better)."
        )
    return True, (
        f"{label} {must_beat} {_num(mine)} beats {_num(theirs)} of the replaced version "
        f"({direction} is better)."
    )


def validate_cron(cron: str) -> str | None:
    """Why ``cron`` is not a usable schedule, or None when it is.

    Five fields (minute hour day-of-month month day-of-week) or a macro such as ``@daily``, as
    a Kubernetes CronJob takes them; it must also fire at some time (``0 0 31 2 *`` never does).
    """
    fields = cron.split()
    if not fields:
        return "the schedule is empty"
    if fields[0].startswith("@"):
        if len(fields) != 1 or fields[0] not in _CRON_MACROS:
            return f"unknown schedule macro {cron!r}; use one of {', '.join(sorted(_CRON_MACROS))}"
    elif len(fields) != 5:
        return (
            f"{cron!r} has {len(fields)} fields; a schedule has 5: "
            "minute hour day-of-month month day-of-week"
        )
    if not croniter.is_valid(cron):
        return f"{cron!r} is not a valid cron expression"
    try:
        croniter(cron, _CRON_PROBE).get_next(dt.datetime)
    except CroniterError:
        return f"{cron!r} never fires"
    return None


def next_run(cron: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` at which ``cron`` fires, in UTC.

    The schedule is read in UTC, like a CronJob without a time zone on a UTC cluster; an
    ``after`` without a time zone is taken as UTC. Check ``cron`` with :func:`validate_cron`
    first: an invalid one raises ``ValueError``.
    """
    problem = validate_cron(cron)
    if problem is not None:
        raise ValueError(problem)
    start = after.replace(tzinfo=dt.UTC) if after.tzinfo is None else after.astimezone(dt.UTC)
    return croniter(cron, start).get_next(dt.datetime)


def render_query(query: str, **values: object) -> str:
    """Fill ``{{ model }}``, ``{{ version }}``, ``{{ namespace }}`` and ``{{ service }}`` in a
    PromQL query, so one policy follows the served version across rollouts."""
    return re.sub(
        r"\{\{\s*(\w+)\s*\}\}",
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0),
        query,
    )
