"""Pure decisions of the serving path: which version to serve, and its history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlops_operator.api import reasons
from mlops_operator.api.inferenceservice import HistoryEntry

HISTORY_LIMIT = 50


@dataclass(frozen=True)
class Candidate:
    """What the serving decision needs to know about one ModelVersion."""

    name: str
    version: int
    phase: str | None
    artifact_verified: bool
    gates_passed: bool
    degraded: bool

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Candidate:
        """Read a ModelVersion object as returned by the API."""
        status = obj.get("status") or {}
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        return cls(
            name=obj["metadata"]["name"],
            version=int(obj["spec"]["version"]),
            phase=status.get("phase"),
            artifact_verified=conds.get(reasons.ARTIFACT_VERIFIED) == "True",
            gates_passed=conds.get(reasons.GATES_PASSED) == "True",
            degraded=status.get("phase") == "Degraded" or conds.get(reasons.DEGRADED) == "True",
        )

    @property
    def servable_as_latest(self) -> bool:
        """Ready, passed its gates and not Degraded: what ``latest`` may select."""
        return (
            self.phase == "Ready"
            and self.artifact_verified
            and self.gates_passed
            and not self.degraded
        )


@dataclass(frozen=True)
class Resolution:
    """The outcome of choosing a version: the candidate, or why there is none."""

    candidate: Candidate | None
    reason: str
    message: str


def resolve_version(
    model: str,
    requested: int | Literal["latest"],
    candidates: Iterable[Candidate],
    exclude: Collection[int] = (),
) -> Resolution:
    """``latest`` = the newest version servable as latest and not in ``exclude`` (versions
    this service declined to promote); a pinned number must exist and have a verified artifact
    (a person pinning it may serve a version that missed its gates)."""
    by_version = {c.version: c for c in candidates}
    if requested == "latest":
        servable = [
            c for c in by_version.values() if c.servable_as_latest and c.version not in exclude
        ]
        if not servable:
            return Resolution(
                None,
                reasons.NO_SERVABLE_VERSION,
                f"No version of model {model!r} is Ready, passed its gates and is not Degraded; "
                "waiting for one.",
            )
        best = max(servable, key=lambda c: c.version)
        return Resolution(best, reasons.RESOLVED, f"Serving the latest version, {best.version}.")
    pinned = by_version.get(requested)
    if pinned is None:
        return Resolution(
            None,
            reasons.NO_SERVABLE_VERSION,
            f"Version {requested} of model {model!r} does not exist; waiting for it.",
        )
    if not pinned.artifact_verified:
        return Resolution(
            None,
            reasons.NO_SERVABLE_VERSION,
            f"Version {requested} ({pinned.name}) has no verified artifact "
            f"(phase {pinned.phase or 'Pending'}); it cannot be served.",
        )
    return Resolution(pinned, reasons.RESOLVED, f"Serving pinned version {requested}.")


def change_reason(
    previous: int | None,
    requested: int | Literal["latest"],
    new: int,
    previous_degraded: bool = False,
) -> str:
    """Why the served version changes: ``Initial``, ``Pinned``, ``RolledBack`` (the served
    version was marked Degraded) or ``NewLatest``."""
    if previous is None:
        return "Initial"
    if requested != "latest":
        return "Pinned"
    if previous_degraded:
        return "RolledBack"
    return "NewLatest" if new > previous else "LatestChanged"


def record(
    history: Sequence[HistoryEntry],
    version: int,
    reason: str,
    message: str,
    now: dt.datetime,
    limit: int = HISTORY_LIMIT,
) -> list[HistoryEntry]:
    """``history`` with a new entry appended, keeping the ``limit`` most recent."""
    entry = HistoryEntry(version=version, time=now, reason=reason, message=message)
    return [*history, entry][-limit:]


@dataclass(frozen=True)
class Rollout:
    """How far a predictor Deployment has got."""

    ready_replicas: int
    available: bool
    complete: bool


def rollout(deployment: Mapping[str, Any], replicas: int) -> Rollout:
    """Read a Deployment's status: available = at least one ready pod (or none wanted);
    complete = every wanted pod runs the current template and is ready."""
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation") or 0
    observed = int(status.get("observedGeneration") or 0) >= int(generation)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    complete = observed and updated >= replicas and ready >= replicas and total <= replicas
    return Rollout(ready_replicas=ready, available=ready >= min(1, replicas), complete=complete)
