"""Pure decisions of remediation: the retraining budget, promotion of a retrained version,
and retraining schedules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Final

from croniter import CroniterError, croniter

from mlops_operator.api.inferenceservice import HistoryEntry
from mlops_operator.serving.plan import Candidate

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
