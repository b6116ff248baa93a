"""The soak's pure parts: a fitted slope per sampled series, the verdicts, the report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

SERIES: tuple[tuple[str, str, float], ...] = (
    ("operator RSS (MB)", "operator.rss_mb", 5.0),
    ("operator open fds", "operator.fds", 3.0),
    ("operator asyncio tasks", "operator_tasks", 3.0),
    ("sandbox RSS (MB)", "sandbox.rss_mb", 10.0),
    ("sandbox open fds", "sandbox.fds", 5.0),
    ("model server RSS, mean per pod (MB)", "servers.rss_mb", 5.0),
    ("model server open fds, mean per pod", "servers.fds", 2.0),
)
"""(label, path in a sample, the least growth over the run that counts as a trend)."""
RELATIVE = 0.05
"""Growth over the run above this share of the series' mean (and above its floor) is a trend."""
NOISE = 2.0
"""…and above this many standard errors of the slope (times the span): beyond the noise."""
OBJECTS = (
    "deployments",
    "replicasets",
    "pods",
    "services",
    "jobs",
    "trainingjobs",
    "modelversions",
    "events",
)


def value(sample: dict[str, Any], path: str) -> float | None:
    """A series' value in one sample; model servers' is the mean over the pods seen."""
    head, _, field = path.partition(".")
    if head == "servers":
        pods = sample.get("servers") or []
        return sum(p[field] for p in pods) / len(pods) if pods else None
    node = sample.get(head)
    if field:
        return float(node[field]) if isinstance(node, dict) else None
    return float(node) if node is not None else None


def fit(ts: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of ys over ts, and its standard error."""
    n = len(ts)
    if n < 3:
        return 0.0, math.inf
    mt, my = sum(ts) / n, sum(ys) / n
    sxx = sum((t - mt) ** 2 for t in ts)
    if sxx == 0:
        return 0.0, math.inf
    slope = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / sxx
    residual = sum((y - my - slope * (t - mt)) ** 2 for t, y in zip(ts, ys, strict=True))
    stderr = math.sqrt(residual / (n - 2) / sxx)
    return slope, stderr


def trend(samples: Sequence[dict[str, Any]], path: str, floor: float) -> dict[str, Any]:
    """The fitted growth of one series over the run, the threshold it is held to, and
    whether it stays under it."""
    points = [(s["t"], v) for s in samples if (v := value(s, path)) is not None]
    ts, ys = [t for t, _ in points], [y for _, y in points]
    slope, stderr = fit(ts, ys)
    span = (ts[-1] - ts[0]) if ts else 0.0
    mean = sum(ys) / len(ys) if ys else 0.0
    growth = slope * span
    noise = NOISE * stderr * span if math.isfinite(stderr) else math.inf
    threshold = max(RELATIVE * mean, floor, noise)
    return {
        "samples": len(ys),
        "first": round(ys[0], 2) if ys else None,
        "last": round(ys[-1], 2) if ys else None,
        "mean": round(mean, 2),
        "slope_per_hour": round(slope * 3600, 2),
        "growth_over_run": round(growth, 2),
        "threshold": round(threshold, 2) if math.isfinite(threshold) else None,
        "passed": len(ys) >= 3 and growth <= threshold,
    }


def verdict(data: dict[str, Any]) -> dict[str, Any]:
    """Trends, errors once the faults stopped, and object counts: each judged."""
    samples = data["samples"]
    quiet_from = data["quiet_from"]
    # The first sample is taken as the load starts, before any request: what a process opens
    # for its first clients (keep-alive sockets, the scrape's connection) is a step, not growth.
    under_load = samples[1:]
    trends = {label: trend(under_load, path, floor) for label, path, floor in SERIES}
    quiet = [s for s in samples if s["t"] >= quiet_from]
    load_errors = [e for e in data["load"]["errors"] if e[0] >= quiet_from]
    operator_errors = quiet[-1]["operator_errors"] - quiet[0]["operator_errors"] if quiet else None
    first, last = samples[0]["objects"], samples[-1]["objects"]
    objects = {kind: [first.get(kind, 0), last.get(kind, 0)] for kind in OBJECTS}
    services = data["config"]["services"]
    bounded = (
        last.get("deployments", 0) == services
        and last.get("services", 0) == services
        and last.get("replicasets", 0) <= 4 * services
        and last.get("jobs", 0) <= data["retrainings"] + data["config"]["models"]
    )
    degradations = data.get("degradations") or []
    retrained = all(d["took"] is not None for d in degradations)
    passed = (
        all(t["passed"] for t in trends.values())
        and bool(quiet)
        and not load_errors
        and operator_errors == 0
        and data["operator_log"]["tracebacks"] == 0
        and bounded
        and retrained
    )
    return {
        "passed": passed,
        "degradations_retrained": retrained,
        "retention": retention(samples),
        "trends": trends,
        "quiet_samples": len(quiet),
        "load_errors_after_faults": load_errors,
        "operator_errors_after_faults": operator_errors,
        "objects": objects,
        "objects_bounded": bounded,
    }


def retention(samples: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """What the emulator held, by store, at the first and at the last sample."""
    first = samples[0].get("retention") or {} if samples else {}
    last = samples[-1].get("retention") or {} if samples else {}
    return {key: [first.get(key, 0), last.get(key, 0)] for key in {**first, **last}}


def samples_fault_hits(data: dict[str, Any]) -> int:
    """Requests the injected faults answered, over the run."""
    return max((int(s.get("fault_hits", 0)) for s in data["samples"]), default=0)


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render(data: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    v = data["verdict"]
    config = data["config"]
    machine = data.get("machine") or {}
    load = data["load"]
    lines = [
        "# Soak: the operator under steady load, degradations, retrainings and API faults",
        "",
        f"Run {data.get('date', '?')}: {config['services']} InferenceServices over "
        f"{config['models']} models for {config['minutes']:g} min, sampled every "
        f"{config['sample_seconds']:g} s; faults and degradations in the first "
        f"{config['fault_share']:.0%}, errors counted from {data['quiet_from']:.0f} s. "
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, shared with "
        f"other work (load average {data.get('loadavg', {}).get('before', ['?'])[0]} before).",
        "",
        f"**Verdict: {'PASSED' if v['passed'] else 'FAILED'}.** "
        f"{load['predictions']} predictions and {load['feedback']} feedback posts; "
        f"{data['retrainings']} retrainings; {samples_fault_hits(data)} API requests answered "
        f"with an injected fault; {len(load['errors'])} load errors in all, "
        f"{len(v['load_errors_after_faults'])} after the faults stopped; "
        f"{len(load.get('retried') or [])} requests retried once on a connection closed "
        "before any answer; operator errors after "
        f"the faults stopped: {v['operator_errors_after_faults']}; tracebacks in the operator "
        f"log: {data['operator_log']['tracebacks']}.",
        "",
        "## Trends (least-squares slope over the samples)",
        "",
        "A series fails when its fitted growth over the run exceeds the largest of "
        f"{RELATIVE:.0%} of its mean, its floor, and {NOISE:g} standard errors of the slope "
        "times the span (the noise). The fit starts at the second sample: the first is taken "
        "as the load starts, before any request.",
        "",
        _row(["series", "first", "last", "mean", "slope /h", "growth", "threshold", "ok"]),
        _row(["---"] * 8),
    ]
    for label, t in v["trends"].items():
        lines.append(
            _row(
                [
                    label,
                    t["first"],
                    t["last"],
                    t["mean"],
                    t["slope_per_hour"],
                    t["growth_over_run"],
                    t["threshold"],
                    "yes" if t["passed"] else "**no**",
                ]
            )
        )
    lines += [
        "",
        "## Objects in the cluster (first sample → last)",
        "",
        _row(["kind", "first", "last"]),
        _row(["---"] * 3),
        *(_row([k, a, b]) for k, (a, b) in v["objects"].items()),
        "",
        "Deployments and Services stay one per InferenceService; ReplicaSets are held by the "
        "Deployments' `revisionHistoryLimit` (3); training Jobs go after their "
        "`ttlSecondsAfterFinished` (60 s here, `MLOPS_JOB_TTL_SECONDS`; a day by default). "
        "TrainingJobs and ModelVersions are records: each retraining adds one of each and "
        "nothing removes them (no retention policy yet); Events go after the event TTL. "
        f"Bounded: {'yes' if v['objects_bounded'] else '**no**'}.",
        "",
        "## What the API emulator held (first sample → last)",
        "",
        "Removed objects are forgotten at once and Events expire "
        f"{config.get('event_ttl', 3600):g} s after their last write (the sandbox's default is "
        "1 h, the API server's `--event-ttl`); the watch history keeps ~75 s per resource "
        "(at least 100 events, at most 1,000); the request log keeps the last "
        f"{config.get('request_log_size', 100000):,} requests.",
        "",
        _row(["store", "first", "last"]),
        _row(["---"] * 3),
        *(_row([k, a, b]) for k, (a, b) in sorted(v.get("retention", {}).items())),
        "",
        *_memory(data.get("sandbox_memory")),
        "## Degradations",
        "",
        "Each service gets wrong labels until the operator starts a retraining. The deadline "
        "grows with the labels already in the server's accuracy window (the last 1,000 per "
        "pod): about 28% of the window must be wrong before the accuracy falls under 0.7, "
        "then two evaluations 10 s apart, plus 60 s of slack. "
        f"All retrained in time: {'yes' if v.get('degradations_retrained', True) else '**no**'}.",
        "",
        _row(["service", "at (s)", "window", "deadline (s)", "took (s)", "last accuracy"]),
        _row(["---"] * 6),
        *(
            _row(
                [
                    d["service"],
                    f"{d['at']:.0f}",
                    d["window"],
                    f"{d['deadline']:.0f}",
                    "**no retraining**" if d["took"] is None else f"{d['took']:.0f}",
                    d["accuracy"],
                ]
            )
            for d in data.get("degradations") or []
        ),
        "",
        "## Faults: requests each answered",
        "",
        *(
            f"- {f['status']} on {f['verb']} {f['resource']}: {f['hits']}"
            for f in data.get("faults") or []
        ),
        "",
        "## Timeline (seconds since the soak began, first trainings included)",
        "",
        *(f"- {t:.0f} s: {what}" for t, what in data["events"]),
        "",
    ]
    if load["errors"]:
        lines += ["## Load errors (first 20)", ""]
        lines += [f"- {t:.0f} s: {e}" for t, e in load["errors"][:20]]
        lines.append("")
    if load.get("retried"):
        lines += ["## Requests retried once (first 20)", ""]
        lines += [f"- {t:.0f} s: {e}" for t, e in load["retried"][:20]]
        lines.append("")
    return "\n".join(lines)


def _memory(memory: dict[str, Any] | None) -> list[str]:
    """The sandbox's allocation growth by source line, when the run traced it."""
    if not memory or "top" not in memory:
        return []
    lines = [
        f"Traced allocations of the sandbox process grew {memory['growth_mb']} MB over the run "
        "(tracemalloc, from its start to the end); the lines that grew most:",
        "",
        _row(["line", "KiB", "blocks"]),
        _row(["---"] * 3),
    ]
    lines += [_row([m["where"], m["kib"], m["blocks"]]) for m in memory["top"]]
    return [*lines, ""]
