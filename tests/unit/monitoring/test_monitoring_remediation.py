from __future__ import annotations

import datetime as dt

import pytest

from mlops_operator.monitoring.remediate import (
    may_retrain,
    next_run,
    validate_cron,
)

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("started", "in_flight", "allowed", "reason"),
    [
        ([], False, True, "Retraining allowed: 0 of 3"),
        ([], True, False, "already running"),
        ([T0 - 30 * dt.timedelta(minutes=1)], False, False, "Cooling down"),
        ([T0 - HOUR], False, True, "1 of 3 started"),
        ([T0 - 5 * HOUR, T0 - 4 * HOUR, T0 - 3 * HOUR], False, False, "Daily budget spent"),
        # the oldest start left the 24 hour window
        ([T0 - 25 * HOUR, T0 - 4 * HOUR, T0 - 3 * HOUR], False, True, "2 of 3 started"),
    ],
)
def test_cooldown_and_daily_budget(
    started: list[dt.datetime], in_flight: bool, allowed: bool, reason: str
) -> None:
    ok, why = may_retrain(T0, started, in_flight, cooldown_seconds=3600, max_per_day=3)
    assert ok is allowed
    assert reason in why


def test_refusals_say_when_the_next_retraining_may_start() -> None:
    _, cooling = may_retrain(T0, [T0 - 10 * dt.timedelta(minutes=1)], False, 3600, 3)
    assert cooling.endswith(
        f"the next may start at {(T0 + 50 * dt.timedelta(minutes=1)).isoformat()}."
    )
    starts = [T0 - 25 * HOUR, T0 - 5 * HOUR, T0 - 4 * HOUR, T0 - 3 * HOUR]
    _, spent = may_retrain(T0, starts, False, 0, 3)
    # three of the four starts are in the window; a slot opens when the oldest of them leaves
    assert "3 of 3 retrainings started in the last 24 hours; the next may start at " in spent
    assert spent.endswith(f"{(T0 + 19 * HOUR).isoformat()}.")
    assert may_retrain(T0, [], False, 0, 0) == (False, "Retraining is disabled: maxPerDay is 0.")


def test_a_persistent_breach_cannot_start_a_retraining_storm() -> None:
    started: list[dt.datetime] = []
    for minute in range(0, 48 * 60, 5):
        now = T0 + dt.timedelta(minutes=minute)
        if may_retrain(now, started, False, cooldown_seconds=600, max_per_day=3)[0]:
            started.append(now)
    assert len(started) == 6
    for start in started:
        assert len([s for s in started if start - dt.timedelta(days=1) < s <= start]) <= 3


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("0 3 * * 0", T0, dt.datetime(2026, 3, 15, 3, 0, tzinfo=dt.UTC)),
        ("*/15 * * * *", T0, T0 + dt.timedelta(minutes=15)),
        ("@daily", T0, dt.datetime(2026, 3, 11, tzinfo=dt.UTC)),
        # 04:00 at UTC+2 is 02:00 UTC: the schedule fires an hour later, not tomorrow
        (
            "0 3 * * *",
            dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2026, 3, 10, 3, 0, tzinfo=dt.UTC),
        ),
        (
            "0 12 * * *",
            dt.datetime(2026, 3, 10, 12, 0),
            dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.UTC),
        ),
    ],
)
def test_next_run_is_strictly_after_in_utc(
    cron: str, after: dt.datetime, expected: dt.datetime
) -> None:
    result = next_run(cron, after)
    assert result == expected
    assert result.tzinfo is not None and result.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 3 * * 0", None),
        ("@weekly", None),
        ("0 0 29 2 *", None),
        ("", "empty"),
        ("bad", "1 fields"),
        ("*/5 * * * * 10", "6 fields"),
        ("60 * * * *", "not a valid cron expression"),
        ("@reboot", "unknown schedule macro"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_validate_cron(cron: str, problem: str | None) -> None:
    message = validate_cron(cron)
    if problem is None:
        assert message is None
    else:
        assert message is not None and problem in message


def test_next_run_refuses_an_invalid_schedule() -> None:
    with pytest.raises(ValueError, match="never fires"):
        next_run("0 0 31 2 *", T0)
