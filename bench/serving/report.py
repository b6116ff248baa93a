"""From measurements to the results file: medians, ratios, targets and the markdown table.
Pure functions of data, so the arithmetic behind every claim is unit-tested."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from bench.common import analysis, markdown_table, median
from bench.serving.load import Run

HERE = pathlib.Path(__file__).resolve().parent
ANALYSIS = HERE / "analysis.md"

TARGET_VS_MLSERVER = 2.0
TARGET_VS_FLOOR = 0.8
ONE_WORKER_TARGETS: Mapping[tuple[str, int], tuple[str, float]] = {
    ("rf", 1): ("mlserver", 2.5),
    ("lr", 1): ("floor", 0.9),
}
"""Single-row targets met by ``ours-w1`` alone: a forest at 2.5x MLServer's best, a
LogisticRegression at 0.9x the bare floor with the same single worker."""


def combine(runs: Sequence[Run]) -> dict[str, Any]:
    """The median of each figure over repeated runs; errors are summed."""
    return {
        "rps": round(median([r.rps for r in runs]) or 0.0, 1),
        "p50_ms": round(median([r.p50_ms for r in runs]) or 0.0, 2),
        "p99_ms": round(median([r.p99_ms for r in runs]) or 0.0, 2),
        "max_ms": round(max(r.max_ms for r in runs), 2),
        "errors": sum(r.errors for r in runs),
        "runs": len(runs),
        "requests": sum(r.requests for r in runs),
    }


def max_under_slo(closed: Mapping[str, Mapping[str, Any]], slo_ms: float) -> float | None:
    """The highest throughput among the concurrency levels whose p99 met the SLO."""
    ok = [level["rps"] for level in closed.values() if level["p99_ms"] <= slo_ms]
    return max(ok) if ok else None


def errors(payload: Mapping[str, Any]) -> int:
    runs = [*payload["closed"].values(), *payload["open"].values()]
    return sum(int(r["errors"]) for r in runs)


def _best(
    per_contender: Mapping[str, Mapping[str, Any]],
    families: Mapping[str, str],
    family: str,
    n: str,
    level: str,
) -> tuple[str, Mapping[str, Any]] | None:
    """The contender of ``family`` with the highest throughput at ``level``."""
    candidates = [
        (name, result["payloads"][n]["closed"][level])
        for name, result in per_contender.items()
        if families[name] == family and level in result["payloads"][n]["closed"]
    ]
    return max(candidates, key=lambda c: c[1]["rps"]) if candidates else None


def family_of(name: str) -> str:
    return name.split("-", 1)[0]


def comparisons(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per model and payload: ours against the best of each other family at the target
    level, ours against the floor with the same number of workers, and the verdicts."""
    level = str(data["plan"]["target_level"])
    out = []
    for model, per_contender in data["results"].items():
        families = {name: family_of(name) for name in per_contender}
        payload_sizes = next(iter(per_contender.values()))["payloads"].keys()
        for n in payload_sizes:
            ours = _best(per_contender, families, "ours", n, level)
            if ours is None:
                continue
            row: dict[str, Any] = {"model": model, "rows": int(n), "ours": ours[0]}
            ours_rps, ours_p99 = ours[1]["rps"], ours[1]["p99_ms"]
            for family in ("mlserver", "kserve"):
                best = _best(per_contender, families, family, n, level)
                if best is None:
                    continue
                row[family] = best[0]
                row[f"vs_{family}"] = (
                    round(ours_rps / best[1]["rps"], 2) if best[1]["rps"] else None
                )
                row[f"{family}_p99_ms"] = best[1]["p99_ms"]
            row["ours_p99_ms"] = ours_p99
            w1 = per_contender.get("ours-w1", {}).get("payloads", {}).get(n, {}).get("closed", {})
            if level in w1:
                row["w1_rps"], row["w1_p99_ms"] = w1[level]["rps"], w1[level]["p99_ms"]
                if row.get("mlserver"):
                    best_rps = per_contender[row["mlserver"]]["payloads"][n]["closed"][level]["rps"]
                    row["w1_vs_mlserver"] = round(row["w1_rps"] / best_rps, 2) if best_rps else None
            floors = {}
            for name, result in per_contender.items():
                if families[name] != "floor":
                    continue
                twin = "ours-" + name.split("-", 1)[1]
                if twin in per_contender:
                    ours_same = per_contender[twin]["payloads"][n]["closed"][level]["rps"]
                    floor_rps = result["payloads"][n]["closed"][level]["rps"]
                    floors[twin] = round(ours_same / floor_rps, 2) if floor_rps else None
            row["vs_floor"] = floors
            row["ours_errors"] = sum(
                errors(result["payloads"][n])
                for name, result in per_contender.items()
                if families[name] == "ours"
            )
            row["targets"] = verdicts(row)
            out.append(row)
    return out


def verdicts(row: Mapping[str, Any]) -> dict[str, bool]:
    """Which of the issue's targets this model and payload met."""
    met: dict[str, bool] = {}
    if row.get("vs_mlserver") is not None:
        met["2x MLServer"] = row["vs_mlserver"] >= TARGET_VS_MLSERVER
        met["p99 ≤ MLServer's"] = row["ours_p99_ms"] <= row["mlserver_p99_ms"]
    if row["vs_floor"]:
        met["0.8x floor"] = all(
            ratio is not None and ratio >= TARGET_VS_FLOOR for ratio in row["vs_floor"].values()
        )
    target = ONE_WORKER_TARGETS.get((row["model"], row["rows"]))
    if target is not None and "w1_rps" in row:
        versus, ratio = target
        if versus == "mlserver" and row.get("w1_vs_mlserver") is not None:
            met[f"{ratio:g}x MLServer, 1 worker"] = row["w1_vs_mlserver"] >= ratio
            met["p99 ≤ MLServer's, 1 worker"] = row["w1_p99_ms"] <= row["mlserver_p99_ms"]
        if versus == "floor" and row["vs_floor"].get("ours-w1") is not None:
            met[f"{ratio:g}x floor, 1 worker"] = row["vs_floor"]["ours-w1"] >= ratio
    met["zero errors"] = row["ours_errors"] == 0
    return met


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def contender_table(data: Mapping[str, Any], model: str, n: str) -> str:
    plan = data["plan"]
    level = str(plan["target_level"])
    rates = [str(r) for r in plan["open_rates"].get(n, ())]
    header = [
        "contender",
        f"req/s c={level}",
        "p50 ms",
        "p99 ms",
        f"max req/s, p99 ≤ {plan['slo_p99_ms']:g} ms",
        *[f"{r}/s p50 · p99 ms" for r in rates],
        "CPU s / 1k req",
        "RSS · PSS MB",
        "ready s",
        "errors",
    ]
    rows = []
    for name, result in data["results"][model].items():
        p = result["payloads"][n]
        at = p["closed"][level]
        opened = [
            f"{_fmt(p['open'][r]['p50_ms'], 1)} · {_fmt(p['open'][r]['p99_ms'], 1)}"
            if r in p["open"]
            else "–"
            for r in rates
        ]
        rows.append(
            [
                name,
                _fmt(at["rps"]),
                _fmt(at["p50_ms"], 1),
                _fmt(at["p99_ms"], 1),
                _fmt(max_under_slo(p["closed"], plan["slo_p99_ms"])),
                *opened,
                _fmt(p["cpu_seconds_per_1k"], 2),
                f"{_fmt(p['rss_mb'])} · {_fmt(p['pss_mb'])}",
                _fmt(result["ready_seconds"], 1),
                errors(p),
            ]
        )
    return markdown_table(header, rows)


def sweep_table(data: Mapping[str, Any], model: str, n: str) -> str:
    levels = [str(c) for c in data["plan"]["levels"]]
    rows = []
    for name, result in data["results"][model].items():
        closed = result["payloads"][n]["closed"]
        rows.append(
            [name]
            + [
                f"{_fmt(closed[c]['rps'])} · {_fmt(closed[c]['p99_ms'], 1)}" if c in closed else "–"
                for c in levels
            ]
        )
    return markdown_table(["contender", *[f"c={c} req/s · p99 ms" for c in levels]], rows)


def ratio_table(rows: Sequence[Mapping[str, Any]]) -> str:
    floor_keys = sorted({k for r in rows for k in r["vs_floor"]})
    header = [
        "model",
        "rows",
        "ours / MLServer",
        "ours / KServe",
        *[f"{k} / floor" for k in floor_keys],
        "p99 ours · MLServer ms",
        "targets",
    ]
    body = []
    for r in rows:
        missed = [name for name, ok in r["targets"].items() if not ok]
        body.append(
            [
                r["model"],
                r["rows"],
                _ratio(r.get("vs_mlserver")),
                _ratio(r.get("vs_kserve")),
                *[_ratio(r["vs_floor"].get(k)) for k in floor_keys],
                f"{_fmt(r['ours_p99_ms'], 1)} · {_fmt(r.get('mlserver_p99_ms'), 1)}",
                "all met" if not missed else "missed: " + ", ".join(missed),
            ]
        )
    return markdown_table(header, body)


def previous_table(data: Mapping[str, Any], previous: Mapping[str, Any]) -> str | None:
    """Throughput at the target level now against the previous run, where both measured."""
    level = str(data["plan"]["target_level"])
    rows = []
    for model, per_contender in data["results"].items():
        for name, result in per_contender.items():
            before = previous.get("results", {}).get(model, {}).get(name)
            if before is None:
                continue
            for n, p in result["payloads"].items():
                old = before["payloads"].get(n, {}).get("closed", {}).get(level)
                if not old or not old["rps"]:
                    continue
                now = p["closed"][level]["rps"]
                rows.append([model, n, name, _fmt(old["rps"]), _fmt(now), _ratio(now / old["rps"])])
    if not rows:
        return None
    header = ["model", "rows", "contender", "before req/s", "now req/s", "now / before"]
    return markdown_table(header, rows)


def headline(data: Mapping[str, Any]) -> str:
    """One line per model and payload: the ratios and whether the targets were met."""
    lines = []
    for r in comparisons(data):
        floors = ", ".join(f"{k}/floor {_ratio(v)}" for k, v in r["vs_floor"].items())
        missed = [name for name, ok in r["targets"].items() if not ok]
        lines.append(
            f"{r['model']} {r['rows']:>2} rows: ours/MLServer {_ratio(r.get('vs_mlserver'))}, "
            f"ours/KServe {_ratio(r.get('vs_kserve'))}, {floors}; "
            + ("targets met" if not missed else "missed: " + ", ".join(missed))
        )
    return "\n".join(lines)


def render(data: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    m = data["machine"]
    plan = data["plan"]
    parts = [
        "# Serving benchmark\n",
        f"Generated by `make bench-serving` (`bench/serving/run.py`) on {data['finished']}, "
        f"in {data['wall_seconds']} s"
        + (" — **quick mode: short runs, not for comparison**." if data.get("quick") else ".")
        + "\n",
        "## Machine\n",
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}. The load generator shares these cores with the server.\n",
        "Versions: "
        + "; ".join(
            f"{family}: " + ", ".join(f"{n} {v}" for n, v in vs.items())
            for family, vs in data["versions"].items()
        )
        + ".\n",
        "## Method\n",
        "Every contender serves the same `model.joblib`, trained once by `mlops-operator train` "
        "on scikit-learn's breast-cancer data (30 features), and answers the same Open "
        "Inference Protocol v2 JSON request (one FP64 tensor of 1 or 32 real rows); its answers "
        "are checked against the model's own predictions before any load. Closed loop: wrk, one "
        f"thread, {plan['run_seconds']:g} s per run after a {plan['warmup_seconds']:g} s warm-up; "
        f"at c={plan['target_level']} the median of {plan['runs_at_target']} runs. Open loop: "
        f"requests leave on a fixed schedule for {plan['open_seconds']:g} s (aiohttp) and "
        "latency counts from the scheduled time, so a server that falls behind is charged for "
        "its queue. CPU is the server's whole process tree (user + system) during the "
        f"c={plan['target_level']} runs; RSS sums the tree, PSS splits shared pages. Errors are "
        "non-2xx answers, timeouts and socket errors over all runs.\n",
        "Contenders:\n",
        "\n".join(f"- `{name}`: {text}" for name, text in data["contenders"].items()) + "\n",
        "## Ratios and targets\n",
        f"Throughput at c={plan['target_level']}: ours (the better of our worker counts) over the "
        "best configuration of each other server, and over the floor with the same workers. "
        f"Targets: ≥ {TARGET_VS_MLSERVER:g}× MLServer with a p99 no worse, ≥ "
        f"{TARGET_VS_FLOOR:g}× the floor, zero errors; and with one worker on one row, "
        + ", ".join(
            f"{model.upper()} ≥ {ratio:g}× {'MLServer' if against == 'mlserver' else 'the floor'}"
            for (model, _), (against, ratio) in ONE_WORKER_TARGETS.items()
        )
        + ".\n",
        ratio_table(comparisons(data)),
    ]
    for model in data["results"]:
        first = next(iter(data["results"][model].values()))
        for n in first["payloads"]:
            parts += [
                f"## {model}, {n} row{'s' if n != '1' else ''} per request\n",
                contender_table(data, model, n),
                "Closed-loop sweep:\n",
                sweep_table(data, model, n),
            ]
    text = analysis(ANALYSIS)
    if text:
        parts += ["## What bounds each figure\n", text]
    if previous is not None:
        table = previous_table(data, previous)
        if table:
            parts += [f"## Against the previous run ({previous.get('finished', '?')})\n", table]
    return "\n".join(parts)
