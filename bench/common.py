"""What both benchmarks share: the machine's description, a process tree's CPU and memory,
percentiles, and writing results next to the previous run's."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import pathlib
import platform
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any

import psutil

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def machine(packages: Iterable[str] = ()) -> dict[str, Any]:
    """The facts a reader needs to compare two runs: CPU, cores, memory, OS, Python and the
    versions of the packages that matter for the figures."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
    }


@dataclasses.dataclass(frozen=True)
class TreeUsage:
    """CPU seconds (user + system) and memory of a process and all its descendants."""

    cpu_seconds: float
    rss_bytes: int
    """Sum of resident set sizes; counts pages shared between workers once per worker."""
    pss_bytes: int
    """Sum of proportional set sizes: shared pages split between the processes sharing them."""


def tree_usage(pid: int) -> TreeUsage:
    """Usage of ``pid`` and its live descendants right now. Children that already exited are
    not counted, which is why benchmarks sample long-lived servers, not short jobs."""
    root = psutil.Process(pid)
    cpu = 0.0
    rss = pss = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                memory = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        cpu += times.user + times.system
        rss += memory.rss
        pss += getattr(memory, "pss", memory.rss)
    return TreeUsage(cpu_seconds=cpu, rss_bytes=rss, pss_bytes=pss)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def write_results(name: str, data: dict[str, Any], markdown: str) -> pathlib.Path:
    """Write ``results/<name>.json`` and ``results/<name>.md``. The previous pair is moved to
    ``results/history/<name>-<its timestamp>.*`` first, so runs can be compared over time."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    current_json = RESULTS / f"{name}.json"
    current_md = RESULTS / f"{name}.md"
    if current_json.exists():
        try:
            stamp = json.loads(current_json.read_text())["finished"]
        except (ValueError, KeyError):
            stamp = dt.datetime.fromtimestamp(current_json.stat().st_mtime, dt.UTC).isoformat()
        # 2026-11-22T12:21:19+00:00 → 20261122T122119
        stamp = stamp[:19].replace("-", "").replace(":", "")
        history = RESULTS / "history"
        history.mkdir(exist_ok=True)
        shutil.move(current_json, history / f"{name}-{stamp}.json")
        if current_md.exists():
            shutil.move(current_md, history / f"{name}-{stamp}.md")
    current_json.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    current_md.write_text(markdown)
    return current_md


def previous_results(name: str) -> dict[str, Any] | None:
    """The last run's JSON (before this run writes its own), for a comparison section."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except ValueError:
        return None
    return loaded


def analysis(path: pathlib.Path) -> str | None:
    """The hand-written "what bounds each figure" text kept beside a benchmark, if any: the
    generated results file quotes it, so prose and figures are read together."""
    return path.read_text().strip() + "\n" if path.exists() else None


def rerender(name: str, render: Callable[[dict[str, Any], dict[str, Any] | None], str]) -> int:
    """Rewrite ``results/<name>.md`` from ``results/<name>.json`` and the newest run in
    history, after the analysis was edited; no measuring."""
    data = previous_results(name)
    if data is None:
        print(f"no bench/results/{name}.json yet: run the benchmark first", file=sys.stderr)
        return 1
    history = sorted((RESULTS / "history").glob(f"{name}-*.json"))
    previous = json.loads(history[-1].read_text()) if history else None
    (RESULTS / f"{name}.md").write_text(render(data, previous))
    return 0


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured table; numbers right-aligned."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|")
    for row in rows:
        lines.append("| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"
