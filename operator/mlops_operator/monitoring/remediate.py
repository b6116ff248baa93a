"""Pure decisions of remediation: the retraining budget and retraining schedules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from croniter import CroniterError, croniter

DAY: Final = dt.timedelta(days=1)

_CRON_MACROS: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_CRON_PROBE: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


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
