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

P99_AFTER_BURST_TARGET = 1.0
"""Seconds: p99 create→Deployment for services created once the burst is absorbed."""
RSS_TARGET = 250 * 2**20
"""Bytes: the operator's RSS holding the services and training jobs."""
CPU_RATIO_TARGET = 1.5
"""Our CPU seconds over the empty kopf operator's, for the whole run."""

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
    seen, kopf marked it handled), and the names that never did."""
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


def verdict(data: Mapping[str, Any]) -> list[Check]:
    """The issue's three targets, judged on a run's data."""
    ours = data["operators"]["ours"]
    floor = data["operators"].get("floor")
    trickle = (ours["phases"].get("isvc-trickle") or {}).get("child_latency") or {}
    p99 = trickle.get("p99")
    incomplete = bool((ours["phases"].get("isvc-trickle") or {}).get("missing_children"))
    rss = ours.get("rss_bytes")
    ratio = total_cpu(ours) / total_cpu(floor) if floor and total_cpu(floor) > 0 else None
    return [
        Check(
            f"p99 create→Deployment once the burst is absorbed < {P99_AFTER_BURST_TARGET:g} s",
            _fmt(p99, " s", 3),
            None if p99 is None else p99 < P99_AFTER_BURST_TARGET and not incomplete,
        ),
        Check(
            f"operator RSS < {RSS_TARGET // 2**20} MB",
            _fmt(None if rss is None else rss / 2**20, " MB", 0),
            None if rss is None else rss < RSS_TARGET,
        ),
        Check(
            f"CPU ≤ {CPU_RATIO_TARGET:g}× the empty kopf operator",
            _fmt(ratio, "×"),
            None if ratio is None else ratio <= CPU_RATIO_TARGET,
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
        rows.append(
            (
                f"{title}: create→handled by kopf p99",
                both((*p, "handled_latency", "p99"), ours),
                both((*p, "handled_latency", "p99"), floor),
                "s",
            )
        )
        rows.append(
            (
                f"{title}: API requests per object",
                both((*p, "requests_per_object"), ours),
                both((*p, "requests_per_object"), floor),
                "",
            )
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
    digits = 0 if unit == "MB" else (3 if unit == "s" and abs(value) < 10 else 1)
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
                f"({p.get('create_rate') or 0:.0f}/s)."
            )
    return out


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


def render(data: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> str:
    """The whole ``operator.md``."""
    cfg = data["config"]
    m = data["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items())
    checks = verdict(data)
    lines = [
        "# Operator benchmark: mlops-operator against the empty kopf operator",
        "",
        f"Run `make bench-operator` ({data['finished']}, {data['wall_seconds']:.0f} s wall).",
        "",
        "One process starts the sandbox (the Kubernetes API emulator and S3, in a process of "
        "its own, workload runner off) and then, one after the other and never at the same "
        "time, each operator as a real process watching its own namespace. For each operator "
        f"the same objects are created over HTTP: {cfg['count']} InferenceServices as fast "
        f"as {cfg['concurrency']} concurrent clients can (the burst), then — once the "
        f"operator is quiet again — {cfg['trickle']} more at {cfg['trickle_rate']:g}/s "
        "(the trickle); then the same for TrainingJobs; then an idle window of "
        f"{cfg['idle_seconds']:g} s with everything held. Before the timed phases each "
        f"namespace holds {cfg['models']} ModelVersions of {cfg['models']} models, each "
        f"served by {(cfg['count'] + cfg['trickle']) // cfg['models']} services (a real "
        "artifact in S3, verified by our operator), a credentials Secret, and a dataset in "
        "S3.",
        "",
        "Latencies are measured from the moment the API answered 201 to the object's create, "
        "to the moment the child's ADDED event reached a watch the benchmark holds (the "
        "emulator's creationTimestamp has whole seconds only), or to the moment kopf's "
        '`last-handled-configuration` annotation appeared ("handled", which both operators '
        "write). Pod readiness is faked: when a Deployment appears, the benchmark writes a "
        "ready status into it, as a kubelet would, so services become Ready and leave the "
        "not-ready re-check timer. Jobs are left pending. API requests per object are "
        "counted by the emulator per client (the benchmark's own are left out). CPU is the "
        "operator process's user+system time from the start of a phase to the moment it was "
        "quiet again; RSS/PSS at the end, holding everything.",
        "",
        "The empty operator (`bench/operator/empty_operator.py`) registers no-op create, "
        "resume, spec-update and event handlers for the same resources with the same kopf "
        "settings; it creates no children, has no timers, and its objects get no status.",
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
