"""Fault injection for the sandbox: rules that make the API emulator (and the S3 server)
misbehave like a real control plane under load, and the emulator's request log.

A :class:`Fault` matches requests by verb, resource (``deployments``,
``inferenceservices/status``), name, namespace and client (the User-Agent's product name:
``mlops-operator``, ``kopf``, ``kubectl``…); it is live for a time window (``seconds``), a
number of answers (``times``), or both, optionally only from a trigger on (``after`` matching
requests of ``after_verb``/``after_resource`` were served first), and answers a matching
request with probability ``probability`` drawn from its own ``seed``. Its ``action`` says how:

- ``error``: an API ``Status`` with ``status`` (409, 429, 500, 503…), ``Retry-After`` when set;
- ``timeout``: hold the request ``hold`` seconds (past the client's read timeout), then drop it;
- ``close``: close the connection without an answer;
- ``lost``: serve the request (a write lands), then close the connection before its answer, as
  when the client's read timeout fires after the API server committed the write;
- ``drop``: serve a watch, and cut its connection after ``hold`` seconds;
- ``stall``: answer a watch with its headers and no event for ``hold`` seconds, then cut it;
- ``expire``: ``410 Gone`` (``Expired``) on a list or watch that asks for a resourceVersion,
  as an API server does once that version has left its watch cache.

An :class:`S3Fault` does the same to the S3 server: ``slowdown`` (503 SlowDown), ``latency``
(answers ``latency`` seconds late) or ``refuse`` (the port closed for ``seconds``).

Tests use the objects (``Sandbox.inject(Fault(...))``); people use ``mlops-sandbox fault``,
which talks to the admin endpoint under ``/sandbox/`` on the emulator's port (see
docs/faults.md).
"""

from __future__ import annotations

import collections
import dataclasses
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

ACTIONS = ("error", "timeout", "close", "lost", "drop", "stall", "expire")
S3_ACTIONS = ("slowdown", "latency", "refuse")
REASONS = {
    409: "Conflict",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}
DEFAULT_HOLD = 35.0
"""How long a ``timeout`` holds a request: past the operator's 30 s read timeout."""


class FaultError(ValueError):
    """A fault rule that cannot work (an unknown action, a probability above 1…)."""


@dataclasses.dataclass(frozen=True)
class Call:
    """One API request as fault rules and the request log see it."""

    client: str
    """The User-Agent's product name: ``mlops-operator``, ``kopf``, ``kubectl``…"""
    verb: str
    """``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``."""
    resource: str
    """``plural`` or ``plural/subresource``; ``discovery`` for the rest."""
    namespace: str | None
    name: str | None
    resource_version: str
    """The ``resourceVersion`` query parameter of a list or watch ('' when absent)."""


def _matches(value: str | None, actual: str | None) -> bool:
    return value is None or value == actual


@attrs.define
class Fault:
    """A rule that answers matching API requests with a fault instead of serving them.
    Unset matchers match anything; ``times=None`` and ``seconds=None`` mean no limit."""

    status: int = 500
    verb: str | None = None
    """One verb, or several separated by commas (``create,patch,update,delete``: writes)."""
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    client: str | None = None
    times: int | None = 1
    """Answer at most this many requests (None: no limit, usually with ``seconds``)."""
    seconds: float | None = None
    """Live for this long from its start (injection, or its trigger)."""
    after: int = 0
    """Start only once this many trigger requests were served (0: at once)."""
    after_verb: str | None = None
    after_resource: str | None = None
    """The trigger's verb and resource; when both unset, the rule's own matchers."""
    probability: float = 1.0
    seed: int | None = None
    action: str = "error"
    retry_after: float | None = None
    """Seconds sent as ``Retry-After`` with an ``error`` (429 and 503 mean it)."""
    hold: float = DEFAULT_HOLD
    """Seconds a ``timeout`` or ``stall`` holds, or a ``drop`` lets a watch run."""
    hits: int = 0
    """Requests answered with the fault so far."""
    id: int = 0
    """Set when injected: what ``mlops-sandbox fault list`` shows."""
    triggered: int = attrs.field(default=0, init=False)
    """Trigger requests seen so far."""
    started: float | None = attrs.field(default=None, init=False)
    """``time.monotonic()`` when the rule started (None: waiting for its trigger)."""
    _rng: random.Random = attrs.field(factory=random.Random, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise FaultError(f"unknown action {self.action!r}: one of {', '.join(ACTIONS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultError(f"probability must be between 0 and 1, not {self.probability}")
        if self.action == "error" and not 400 <= self.status <= 599:
            raise FaultError(f"an error's status must be 4xx or 5xx, not {self.status}")
        for field in ("times", "seconds", "after", "retry_after", "hold"):
            value = getattr(self, field)
            if value is not None and value < 0:
                raise FaultError(f"{field} must not be negative, not {value}")
        self._rng = random.Random(self.seed)

    def arm(self, now: float) -> None:
        """Start the clock now (on injection), unless the rule waits for a trigger."""
        if self.after == 0 and self.started is None:
            self.started = now

    def live(self, now: float) -> bool:
        """Whether the rule may still answer (started, within its window and its count)."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.started is None:
            return True  # waiting for its trigger
        return self.seconds is None or now - self.started < self.seconds

    def _target(self, call: Call) -> bool:
        if self.action == "expire" and (
            call.verb not in ("list", "watch") or call.resource_version in ("", "0")
        ):
            return False
        if self.action in ("drop", "stall") and call.verb != "watch":
            return False
        if self.action == "lost" and call.verb == "watch":
            return False
        return (
            (self.verb is None or call.verb in self.verb.split(","))
            and _matches(self.resource, call.resource)
            and _matches(self.namespace, call.namespace)
            and _matches(self.name, call.name)
            and (self.client is None or call.client == self.client)
        )

    def _trigger(self, call: Call) -> bool:
        if self.after_verb is None and self.after_resource is None:
            return self._target(call)
        return (
            _matches(self.after_verb, call.verb)
            and _matches(self.after_resource, call.resource)
            and _matches(self.namespace, call.namespace)
        )

    def answers(self, call: Call, now: float) -> bool:
        """Whether this rule answers ``call`` (counting it as a hit, or as a trigger)."""
        if self.started is None:
            if self._trigger(call):
                self.triggered += 1
                if self.triggered >= self.after:
                    self.started = now
            return False  # the Nth trigger itself is served
        if not self.live(now) or not self._target(call):
            return False
        if self.probability < 1.0 and self._rng.random() >= self.probability:
            return False
        self.hits += 1
        return True

    def describe(self) -> dict[str, Any]:
        """The rule as JSON (the admin endpoint's answer)."""
        body = {
            field.name: getattr(self, field.name)
            for field in attrs.fields(Fault)
            if field.init and not field.name.startswith("_")
        }
        body["triggered"] = self.triggered
        body["live"] = self.live(time.monotonic())
        return body


def fault_from_json(body: Mapping[str, Any]) -> Fault:
    """A :class:`Fault` from the admin endpoint's JSON (the CLI's ``fault add``)."""
    result: Fault = _from_json(Fault, body)
    return result


_FIELD_TYPES: dict[str, type] = {
    "status": int,
    "times": int,
    "after": int,
    "seed": int,
    "seconds": float,
    "probability": float,
    "retry_after": float,
    "hold": float,
    "latency": float,
}


def _from_json(cls: Any, body: Mapping[str, Any]) -> Any:
    if not isinstance(body, Mapping):
        raise FaultError("a fault is a JSON object")
    fields = {f.name for f in attrs.fields(cls) if f.init and f.name not in ("hits", "id")}
    unknown = sorted(set(body) - fields)
    if unknown:
        raise FaultError(f"unknown fault field(s): {', '.join(unknown)}")
    for name, value in body.items():
        expected = _FIELD_TYPES.get(name, str)
        number = expected is float and isinstance(value, int)
        if value is not None and (
            isinstance(value, bool) or not (isinstance(value, expected) or number)
        ):
            raise FaultError(f"{name} must be a {expected.__name__}, not {value!r}")
    try:
        return cls(**body)
    except TypeError as exc:  # a None where a value is needed
        raise FaultError(f"a field cannot be null: {exc}") from None


class Faults:
    """The live rules of one server, in the order they were added (the first match wins)."""

    def __init__(self, on_add: Callable[[Any], None] | None = None) -> None:
        self._on_add = on_add
        self._rules: list[Any] = []
        self._next_id = 1
        self._lock = threading.Lock()

    def add(self, rule: Any) -> Any:
        """Add a rule (a :class:`Fault` or :class:`S3Fault`); it gets an ``id`` and starts."""
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            rule.arm(time.monotonic())
            self._rules.append(rule)
        if self._on_add is not None:
            self._on_add(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def remove(self, fault_id: int) -> bool:
        """Remove one rule by id; whether it was there."""
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != fault_id]
            return len(self._rules) < before

    def __iter__(self) -> Iterator[Any]:
        with self._lock:
            return iter(list(self._rules))

    def __len__(self) -> int:
        return len(self._rules)

    def append(self, rule: Any) -> None:
        """Like :meth:`add` (a list's name, for callers that treat this as one)."""
        self.add(rule)

    def pick(self, answers: Callable[[Any, float], bool]) -> Any:
        """The first rule for which ``answers(rule, now)`` holds, or None."""
        now = time.monotonic()
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            if answers(rule, now):
                return rule
        return None


@dataclasses.dataclass(slots=True)
class Record:
    """One request the emulator received, as the request log keeps it (slotted, with the
    client, verb and resource strings interned: a full log of 100,000 holds ~15 MB)."""

    at: float
    """``time.time()`` when it arrived."""
    client: str
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    status: int | None = None
    """The HTTP status answered (None while a watch streams or for a dropped connection)."""
    fault: int | None = None
    """The id of the fault that answered it, if one did."""

    def describe(self) -> dict[str, Any]:
        """The record as JSON."""
        return dataclasses.asdict(self)


class RequestLog:
    """The emulator's last ``size`` requests, oldest first: tests count them ("no retry
    storm"), ``mlops-sandbox fault requests`` prints them."""

    def __init__(self, size: int = 100_000) -> None:
        self._records: collections.deque[Record] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def append(self, call: Call, fault: int | None = None) -> Record:
        """Log a request as it arrives; its ``status`` is set when it is answered."""
        record = Record(
            time.time(),
            sys.intern(call.client),
            sys.intern(call.verb),
            sys.intern(call.resource),
            call.namespace and sys.intern(call.namespace),
            call.name,
            None,
        )
        record.fault = fault
        with self._lock:
            self._records.append(record)
        return record

    def records(
        self,
        *,
        client: str | None = None,
        verb: str | Iterable[str] | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        since: float | None = None,
    ) -> list[Record]:
        """The logged requests that match every given filter (``verb`` may be several)."""
        verbs = {verb} if isinstance(verb, str) else set(verb) if verb is not None else None
        with self._lock:
            records = list(self._records)
        return [
            r
            for r in records
            if _matches(client, r.client)
            and (verbs is None or r.verb in verbs)
            and _matches(resource, r.resource)
            and _matches(namespace, r.namespace)
            and _matches(name, r.name)
            and (since is None or r.at >= since)
        ]

    def count(self, **filters: Any) -> int:
        """How many logged requests match (the filters of :meth:`records`)."""
        return len(self.records(**filters))

    def clear(self) -> None:
        """Forget every request logged so far."""
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)


@attrs.define
class S3Fault:
    """A rule for the S3 server: ``slowdown`` answers 503 SlowDown, ``latency`` answers
    ``latency`` seconds late, ``refuse`` closes the port for ``seconds``. Live for
    ``seconds`` (None: no limit) and at most ``times`` requests (None: no limit)."""

    action: str = "slowdown"
    times: int | None = None
    seconds: float | None = None
    latency: float = 1.0
    hits: int = 0
    id: int = 0
    started: float | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.action not in S3_ACTIONS:
            raise FaultError(f"unknown S3 action {self.action!r}: one of {', '.join(S3_ACTIONS)}")
        if self.action == "refuse" and self.seconds is None:
            raise FaultError("refusing connections needs a window (seconds)")
        if self.times is None and self.seconds is None:
            raise FaultError("an S3 fault needs a window (seconds) or a count (times)")
        for field in ("times", "seconds", "latency"):
            value = getattr(self, field)
            if value is not None and value < 0:
                raise FaultError(f"{field} must not be negative, not {value}")

    def arm(self, now: float) -> None:
        """Start the clock (on injection)."""
        self.started = now

    def live(self, now: float) -> bool:
        """Within its window and its count."""
        if self.times is not None and self.hits >= self.times:
            return False
        return self.seconds is None or self.started is None or now - self.started < self.seconds

    def answers(self, now: float) -> bool:
        """Whether this rule answers the next request (counting the hit)."""
        if self.action == "refuse" or not self.live(now):
            return False
        self.hits += 1
        return True

    def describe(self) -> dict[str, Any]:
        """The rule as JSON."""
        body = {f.name: getattr(self, f.name) for f in attrs.fields(S3Fault) if f.init}
        body["live"] = self.live(time.monotonic())
        return body


def s3_fault_from_json(body: Mapping[str, Any]) -> S3Fault:
    """An :class:`S3Fault` from the admin endpoint's JSON."""
    result: S3Fault = _from_json(S3Fault, body)
    return result


_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class S3FaultMiddleware:
    """A WSGI layer in front of moto: the first live ``slowdown`` or ``latency`` rule
    answers (``refuse`` is the server's, which closes its port)."""

    def __init__(self, app: Callable[..., Any], faults: Faults) -> None:
        self._app = app
        self._faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Serve one S3 request, or a fault."""
        rule = self._faults.pick(lambda r, now: r.answers(now))
        if rule is not None and rule.action == "slowdown":
            start_response(
                "503 Slow Down",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(_SLOW_DOWN)))],
            )
            return [_SLOW_DOWN]
        if rule is not None:
            time.sleep(rule.latency)
        return self._app(environ, start_response)
