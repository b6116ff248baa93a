"""Pure parts of the operator benchmark: latency summaries, request accounting, the verdict
against the targets, and the Markdown report. Functions of data only; ``run.py`` does I/O."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import analysis, markdown_table, percentile

ANALYSIS = pathlib.Path(__file__).resolve().parent / "analysis.md"
"""Hand-written findings (fixed and left alone), quoted under "What bounds each figure"."""

BENCH_CLIENT = "mlops-bench"
"""The User-Agent product of the benchmark's own requests, left out of the operator's."""

ISVC_WRITES_TARGET = 4.0
"""Writes (creates, patches, updates, deletes; Events apart) per InferenceService from its
create to Ready."""
ISVC_READS_TARGET = 0.0
"""GETs and LISTs per InferenceService: a reconcile reads from the watches only."""
TJ_REQUESTS_TARGET = 3.0
"""Requests (reads and writes; Events apart) per TrainingJob until its Job exists."""
BURST_ABSORBED_TARGET = 6.0
"""Seconds from the first create of the InferenceService burst until every Deployment exists."""
IDLE_CPU_RATIO_TARGET = 2.0
"""Our CPU over the empty kopf operator's in the idle window."""
RSS_TARGET = 150 * 2**20
"""Bytes: the operator's RSS holding the services and training jobs."""
CLOCK_TICK = 0.01
"""Seconds: the resolution of a process's CPU times; an idle floor below it counts as one."""
READ_VERBS = frozenset({"get", "list", "watch"})
WRITE_VERBS = frozenset({"create", "patch", "update", "delete"})

PHASES = ("isvc-burst", "isvc-trickle", "tj-burst", "tj-trickle")
PHASE_TITLES = {
    "isvc-burst": "InferenceService burst",
    "isvc-trickle": "InferenceService trickle",
    "tj-burst": "TrainingJob burst",
    "tj-trickle": "TrainingJob trickle",
}
CHILD_KIND = {"isvc": "Deployment", "tj": "Job"}


def latency_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50, p99 and max of a list of seconds (None where there are no values)."""
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def pair_latencies(
    created: Mapping[str, float], reached: Mapping[str, float]
) -> tuple[list[float], list[str]]:
    """Seconds from each object's creation to the moment it reached a state (its child was
    seen, its status was written, it became Ready), and the names that never did."""
    latencies = [reached[name] - at for name, at in created.items() if name in reached]
    missing = sorted(name for name in created if name not in reached)
    return latencies, missing


def request_delta(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, int]]:
    """Requests served between two snapshots of the emulator's counters, by client class
    (``bench`` for the benchmark's own, ``operator`` for every other) and ``verb resource``."""

    def index(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], int]:
        return {(r["client"], r["verb"], r["resource"]): int(r["count"]) for r in rows}

    old, new = index(before), index(after)
    result: dict[str, dict[str, int]] = {"bench": {}, "operator": {}}
    for key, count in sorted(new.items()):
        delta = count - old.get(key, 0)
        if delta <= 0:
            continue
        client, verb, resource = key
        side = result["bench" if client == BENCH_CLIENT else "operator"]
        label = f"{verb} {resource}"
        side[label] = side.get(label, 0) + delta
    return result


def split_requests(requests: Mapping[str, int]) -> dict[str, int]:
    """An operator's requests (``verb resource`` → count) as reads (get, list, watch) and
    writes (create, patch, update, delete) of everything but Events, and Events apart; with
    ``gets`` and ``lists``, the reads a reconcile would make (a watch is kopf's stream)."""
    out = {"reads": 0, "writes": 0, "events": 0, "gets": 0, "lists": 0, "watches": 0}
    for label, count in requests.items():
        verb, _, resource = label.partition(" ")
        if resource == "events":
            out["events"] += count
        elif verb in READ_VERBS:
            out["reads"] += count
            out[{"get": "gets", "list": "lists", "watch": "watches"}[verb]] += count
        elif verb in WRITE_VERBS:
            out["writes"] += count
    return out


def per_object(phase: Mapping[str, Any], what: str) -> float | None:
    """One figure of ``split_requests`` over a phase, per object created in it."""
    created = int(phase.get("created") or 0)
    requests = phase.get("requests")
    if not created or requests is None:
        return None
    split = split_requests(requests)
    if what == "requests":
        return (split["reads"] + split["writes"]) / created
    if what == "reconcile_reads":
        return (split["gets"] + split["lists"]) / created
    return split[what] / created


def seconds_per_request(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> float | None:
    """Mean time the emulator spent serving one (non-watch) request between two snapshots."""

    def totals(rows: Iterable[Mapping[str, Any]]) -> tuple[int, float]:
        served = [r for r in rows if r["verb"] != "watch"]
        return sum(int(r["count"]) for r in served), sum(r["seconds"] or 0.0 for r in served)

    count_before, seconds_before = totals(before)
    count_after, seconds_after = totals(after)
    count = count_after - count_before
    return (seconds_after - seconds_before) / count if count > 0 else None


@dataclass(frozen=True)
class Check:
    """One target: what it says, the measured value, and whether the value meets it."""

    target: str
    value: str
    met: bool | None
    """None when the run did not measure it."""


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def total_cpu(side: Mapping[str, Any]) -> float:
    """CPU seconds an operator spent over every phase and the idle window."""
    phases = side.get("phases") or {}
    spent = sum(float(p.get("cpu_seconds") or 0.0) for p in phases.values())
    return spent + float((side.get("idle") or {}).get("cpu_seconds") or 0.0)


def _worst(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def idle_ratio(data: Mapping[str, Any]) -> float | None:
    """Our idle CPU over the floor's, the floor counted as at least one clock tick."""
    ours = (data["operators"]["ours"].get("idle") or {}).get("cpu_seconds")
    floor = data["operators"].get("floor")
    if ours is None or not floor:
        return None
    return float(ours) / max(float((floor.get("idle") or {}).get("cpu_seconds") or 0), CLOCK_TICK)


def verdict(data: Mapping[str, Any]) -> list[Check]:
    """The issue's targets, judged on a run's data (a figure the run lacks is n/a)."""
    ours = data["operators"]["ours"]
    phases = ours["phases"]
    isvc = [phases[p] for p in ("isvc-burst", "isvc-trickle") if p in phases]
    tj = [phases[p] for p in ("tj-burst", "tj-trickle") if p in phases]
    writes = _worst(per_object(p, "writes") for p in isvc)
    reads = _worst(per_object(p, "reconcile_reads") for p in isvc)
    tj_requests = _worst(per_object(p, "requests") for p in tj)
    burst = phases.get("isvc-burst") or {}
    absorbed = burst.get("children_seconds")
    if burst.get("missing_children"):
        absorbed = None
    ratio = idle_ratio(data)
    rss = ours.get("rss_bytes")

    def check(target: str, value: float | None, limit: float, unit: str, digits: int) -> Check:
        return Check(target, _fmt(value, unit, digits), None if value is None else value <= limit)

    return [
        check(
            f"writes per InferenceService, create to Ready ≤ {ISVC_WRITES_TARGET:g}",
            writes,
            ISVC_WRITES_TARGET,
            "",
            2,
        ),
        check(
            f"reads (GET, LIST) per InferenceService = {ISVC_READS_TARGET:g}",
            reads,
            ISVC_READS_TARGET,
            "",
            2,
        ),
        check(
            f"requests per TrainingJob until its Job exists ≤ {TJ_REQUESTS_TARGET:g}",
            tj_requests,
            TJ_REQUESTS_TARGET,
            "",
            2,
        ),
        check(
            f"burst of {burst.get('created', '?')} InferenceServices: every Deployment exists "
            f"within {BURST_ABSORBED_TARGET:g} s",
            absorbed,
            BURST_ABSORBED_TARGET,
            " s",
            1,
        ),
        check(
            f"idle CPU ≤ {IDLE_CPU_RATIO_TARGET:g}× the empty kopf operator",
            ratio,
            IDLE_CPU_RATIO_TARGET,
            "×",
            2,
        ),
        check(
            f"operator RSS ≤ {RSS_TARGET // 2**20} MB",
            None if rss is None else rss / 2**20,
            RSS_TARGET / 2**20,
            " MB",
            0,
        ),
    ]


def _ratio(ours: float | None, floor: float | None) -> str:
    if ours is None or floor is None or floor == 0:
        return ""
    ratio = ours / floor
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"


def figures(data: Mapping[str, Any]) -> list[tuple[str, float | None, float | None, str]]:
    """The side-by-side rows: (figure, ours, floor, unit). Floor is None where it does not
    apply (the empty operator creates no children)."""
    ours = data["operators"]["ours"]
    floor = data["operators"].get("floor") or {"phases": {}}
    rows: list[tuple[str, float | None, float | None, str]] = []

    def both(path: Sequence[str], side: Mapping[str, Any]) -> float | None:
        node: Any = side
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return None if node is None else float(node)

    for phase in PHASES:
        if phase not in ours["phases"]:
            continue
        title = PHASE_TITLES[phase]
        child = CHILD_KIND[phase.split("-")[0]]
        p = ("phases", phase)
        if phase.endswith("burst"):
            rows.append(
                (
                    f"{title}: all {child}s exist after",
                    both((*p, "children_seconds"), ours),
                    None,
                    "s",
                )
            )
        for q in ("p50", "p99", "max"):
            rows.append(
                (f"{title}: create→{child} {q}", both((*p, "child_latency", q), ours), None, "s")
            )
        for q in ("p50", "p99"):
            rows.append(
                (
                    f"{title}: create→status written {q}",
                    both((*p, "status_latency", q), ours),
                    None,
                    "s",
                )
            )
        if phase.startswith("isvc"):
            for q in ("p50", "p99"):
                rows.append(
                    (f"{title}: create→Ready {q}", both((*p, "ready_latency", q), ours), None, "s")
                )
        ours_p, floor_p = ours["phases"][phase], floor["phases"].get(phase) or {}
        for what, label in (
            ("requests", "API requests per object (reads + writes)"),
            ("reads", "reads per object (get, list, watch)"),
            ("writes", "writes per object"),
            ("events", "Events per object"),
        ):
            rows.append(
                (f"{title}: {label}", per_object(ours_p, what), per_object(floor_p, what), "")
            )
        rows.append(
            (
                f"{title}: operator CPU",
                both((*p, "cpu_seconds"), ours),
                both((*p, "cpu_seconds"), floor),
                "s",
            )
        )
    rows.append(
        (
            "Idle: operator CPU",
            both(("idle", "cpu_seconds"), ours),
            both(("idle", "cpu_seconds"), floor),
            "s",
        )
    )
    rows.append(("Total operator CPU", total_cpu(ours), total_cpu(floor) or None, "s"))
    for key, label in (("rss_bytes", "RSS"), ("pss_bytes", "PSS")):
        o, f = both((key,), ours), both((key,), floor)
        rows.append(
            (
                f"Operator {label} at the end",
                None if o is None else o / 2**20,
                None if f is None else f / 2**20,
                "MB",
            )
        )
    return rows


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "MB":
        digits = 0
    elif unit == "s":
        digits = 3 if abs(value) < 10 else 1
    else:
        digits = 2
    return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"


def figures_table(data: Mapping[str, Any]) -> str:
    """Markdown table of ours vs the floor with the ratio."""
    rows = [
        (name, _cell(o, unit), _cell(f, unit), _ratio(o, f)) for name, o, f, unit in figures(data)
    ]
    return markdown_table(("figure", "mlops-operator", "empty kopf operator", "ours/floor"), rows)


def bounds(data: Mapping[str, Any]) -> list[str]:
    """What limits each figure, in sentences with the run's numbers."""
    out: list[str] = []
    emulator = data.get("emulator") or {}
    for name in ("ours", "floor"):
        side = data["operators"].get(name)
        if not side:
            continue
        label = "mlops-operator" if name == "ours" else "the empty operator"
        for phase in PHASES:
            p = side["phases"].get(phase)
            if not p:
                continue
            wall = p.get("wall_seconds") or 0.0
            if not wall:
                continue
            em = (emulator.get(name) or {}).get(phase) or {}
            out.append(
                f"{PHASE_TITLES[phase]}, {label}: {wall:.1f} s wall; operator "
                f"{p['cpu_seconds'] / wall:.0%} of a core, emulator "
                f"{(em.get('cpu_seconds') or 0.0) / wall:.0%}, load generator "
                f"{(em.get('client_cpu_seconds') or 0.0) / wall:.0%}; the emulator served "
                f"{em.get('requests', 0) / wall:.0f} requests/s at "
                f"{_fmt(_ms(em.get('seconds_per_request')), ' ms')} each; the client's creates "
                f"took p50 {_fmt(_ms((p.get('create_latency') or {}).get('p50')), ' ms')}, "
                f"p99 {_fmt(_ms((p.get('create_latency') or {}).get('p99')), ' ms')} "
                f"({p.get('create_rate') or 0:.0f}/s)." + _breakdown(p)
            )
    return out


def _breakdown(phase: Mapping[str, Any]) -> str:
    """The operator's requests per object in a phase, most frequent first."""
    created = phase.get("created") or 0
    requests = phase.get("requests") or {}
    if not created or not requests:
        return ""
    ranked = sorted(requests.items(), key=lambda kv: (-kv[1], kv[0]))
    return " Per object: " + ", ".join(f"{n / created:.2f} {label}" for label, n in ranked) + "."


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def comparison(data: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    """A compact table of this run's headline figures against the previous run's."""
    if not previous or "operators" not in previous:
        return ""
    then = {name: o for name, o, _, _ in figures(previous)}
    rows = []
    for name, o, _, unit in figures(data):
        before = then.get(name)
        if o is not None and before is not None:
            rows.append((name, _cell(before, unit), _cell(o, unit), _ratio(o, before)))
    if not rows:
        return ""
    header = ("figure (ours)", f"previous ({previous.get('finished', '?')})", "this run", "ratio")
    return markdown_table(header, rows)


def command(cfg: Mapping[str, Any]) -> str:
    """How to repeat a run of this configuration."""
    if cfg.get("count", 1000) == 1000 and tuple(cfg.get("kinds", ("isvc", "tj"))) == (
        "isvc",
        "tj",
    ):
        return "make bench-operator"
    kinds = ",".join(cfg.get("kinds", ("isvc", "tj")))
    return (
        f"python bench/operator/run.py --count {cfg['count']} --trickle {cfg['trickle']} "
        f"--kinds {kinds}"
    )


def results_name(cfg: Mapping[str, Any]) -> str:
    """``operator`` for the standard run, ``operator-<count>`` for another scale."""
    return "operator" if cfg.get("count", 1000) == 1000 else f"operator-{cfg['count']}"


def render(data: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> str:
    """The whole ``operator.md``."""
    cfg = data["config"]
    m = data["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items())
    checks = verdict(data)
    lines = [
        "# Operator benchmark: mlops-operator against the empty kopf operator",
        "",
        f"Run `{command(cfg)}` ({data['finished']}, {data['wall_seconds']:.0f} s wall)."
        + (f" Load average before → after: {data['load']}." if data.get("load") else ""),
        "",
        "One process starts the sandbox (the Kubernetes API emulator and S3, in a process of "
        "its own, workload runner off) and then, one after the other and never at the same "
        "time, each operator as a real process watching its own namespace. For each operator "
        f"the same objects are created over HTTP: {cfg['count']} InferenceServices as fast "
        f"as {cfg['concurrency']} concurrent clients can (the burst), then — once the "
        f"operator is quiet again — {cfg['trickle']} more at {cfg['trickle_rate']:g}/s "
        + (
            "(the trickle); then the same for TrainingJobs; then an idle window of "
            if "tj" in cfg.get("kinds", ("isvc", "tj"))
            else "(the trickle); no TrainingJobs in this run; then an idle window of "
        )
        + f"{cfg['idle_seconds']:g} s with everything held. Before the timed phases each "
        f"namespace holds {cfg['models']} ModelVersions of {cfg['models']} models, each "
        f"served by {(cfg['count'] + cfg['trickle']) // cfg['models']} services (a real "
        "artifact in S3, verified by our operator), a credentials Secret, and a dataset in "
        "S3.",
        "",
        "Latencies are measured from the moment the API answered 201 to the object's create, "
        "to the moment a watch the benchmark holds saw the child's ADDED event (the "
        "emulator's creationTimestamp has whole seconds only), the object's status written by "
        "the operator (`status.observedGeneration` or `status.phase` present), or the service "
        "Ready. Pod readiness is faked: when a Deployment appears, the benchmark writes a "
        "ready status into it, as a kubelet would, so services become Ready. Jobs are left "
        "pending. API requests are counted by the emulator per client (the benchmark's own "
        "are left out) and verb: reads are get, list and watch, writes are create, patch, "
        "update and delete, and Events (which the operator posts itself) are counted apart; "
        "per object means over the phase, from the first create until the operator is quiet "
        "again. A watch request is kopf (re)opening a stream, not a read a reconcile makes: "
        "the reads target counts gets and lists only. CPU is the operator process's "
        "user+system time from the start of a phase to the moment it was quiet again; "
        "RSS/PSS at the end, holding everything.",
        "",
        "The empty operator (`bench/operator/empty_operator.py`) registers no-op `on.event` "
        "handlers for the same resources, with the same label filters and the same kopf "
        "settings (`kopf_settings.apply`, the same re-list period), and nothing else: it "
        "writes nothing, so its phases end when its CPU is quiet.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}; {packages}.",
        "",
        "## Results",
        "",
        figures_table(data),
        "## Targets",
        "",
        markdown_table(
            ("target", "measured", "met"),
            [
                (c.target, c.value, {True: "yes", False: "**no**", None: "n/a"}[c.met])
                for c in checks
            ],
        ),
        "## What bounds each figure",
        "",
        *[f"- {line}" for line in bounds(data)],
        analysis(ANALYSIS) or "",
    ]
    compared = comparison(data, previous)
    if compared:
        lines += ["## Against the previous run", "", compared]
    return "\n".join(lines)
