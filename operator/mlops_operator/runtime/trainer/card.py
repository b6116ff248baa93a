"""The model card: ``card.json`` (data) and ``card.md`` (for people), written with every run
from its manifest and schema, so each registered version carries its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def card_document(
    manifest: Mapping[str, Any],
    schema: Mapping[str, Any],
    gates: list[dict[str, Any]],
) -> dict[str, Any]:
    """The card's data: what the manifest says, a schema summary and the gates' results
    as far as training can tell (the registry re-checks them)."""
    metrics = manifest.get("metrics") or {}
    results = []
    for gate in gates:
        value = metrics.get(gate["metric"])
        lo, hi = gate.get("min"), gate.get("max")
        passed = value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)
        results.append({**gate, "value": value, "passed": passed})
    columns = schema.get("columns") or {}
    return {
        "model": manifest.get("model"),
        "trainingJob": manifest.get("trainingJob"),
        "estimator": {"className": manifest.get("className"), "params": manifest.get("params")},
        "task": manifest.get("task"),
        "target": manifest.get("target"),
        "features": manifest.get("features"),
        "preprocessing": manifest.get("preprocessing"),
        "dataset": manifest.get("dataset"),
        "schema": {
            "rows": schema.get("rows"),
            "columns": {
                name: {
                    k: col.get(k)
                    for k in ("type", "dtype", "nullable", "missingShare", "min", "max")
                    if col.get(k) is not None
                }
                | ({"categories": len(col["categories"])} if "categories" in col else {})
                for name, col in columns.items()
            },
            "label": schema.get("label"),
        },
        "metrics": metrics,
        "split": manifest.get("split"),
        "gates": results,
        "validation": manifest.get("validation"),
        "lineage": manifest.get("lineage"),
        "frameworks": {
            "scikit-learn": manifest.get("frameworkVersion"),
            "python": manifest.get("pythonVersion"),
            "joblib": manifest.get("joblibVersion"),
        },
        "digest": manifest.get("digest"),
        "createdAt": manifest.get("createdAt"),
    }


def _row(*cells: Any) -> str:
    return "| " + " | ".join("" if c is None else str(c) for c in cells) + " |"


def render_markdown(card: Mapping[str, Any]) -> str:
    """``card.md`` from :func:`card_document`."""
    lines = [f"# Model card: {card.get('model')}", ""]
    estimator = card.get("estimator") or {}
    lines += [
        "## Model",
        "",
        f"- Estimator: `{estimator.get('className')}` ({card.get('task')})",
        f"- Target: `{card.get('target')}`",
        f"- Digest: `{card.get('digest')}`",
        f"- Trained by TrainingJob: `{card.get('trainingJob')}` at {card.get('createdAt')}",
        "",
        "### Parameters",
        "",
        _row("parameter", "value"),
        _row("---", "---"),
        *(_row(k, v) for k, v in sorted((estimator.get("params") or {}).items())),
        "",
        "## Preprocessing",
        "",
    ]
    steps = card.get("preprocessing")
    if steps:
        lines += [
            _row("column", "kind", "impute", "scale/encode"),
            _row("---", "---", "---", "---"),
        ]
        for s in steps:
            done = "dropped" if s.get("dropped") else s.get("scale") or s.get("encode")
            lines.append(_row(s.get("column"), s.get("kind"), s.get("impute"), done))
    else:
        lines.append(
            "None: every feature is numeric and complete; the estimator sees them as they are."
        )
    dataset = card.get("dataset") or {}
    lines += [
        "",
        "## Dataset",
        "",
        f"- URI: `{dataset.get('uri')}`",
        f"- Version: `{dataset.get('versionId') or 'unversioned bucket'}`, ETag "
        f"`{dataset.get('etag')}`, last modified {dataset.get('lastModified')}",
        f"- sha256: `{dataset.get('digest')}`",
        f"- Rows: {dataset.get('rows')} ({dataset.get('trainRows')} train, "
        f"{dataset.get('testRows')} held out)",
        "",
        "### Schema",
        "",
        _row("column", "type", "missing", "range / categories"),
        _row("---", "---", "---", "---"),
    ]
    for name, col in ((card.get("schema") or {}).get("columns") or {}).items():
        spread = (
            f"{col['categories']} categories"
            if "categories" in col
            else f"[{col.get('min')}, {col.get('max')}]"
        )
        lines.append(_row(name, col.get("type"), f"{col.get('missingShare', 0):.1%}", spread))
    split = card.get("split") or {}
    lines += [
        "",
        "## Metrics (held-out split)",
        "",
        f"Held out: test size {split.get('testSize')}, random state {split.get('randomState')}, "
        f"stratified {split.get('stratify')}.",
        "",
        _row("metric", "value"),
        _row("---", "---"),
        *(_row(k, f"{v:.4f}") for k, v in (card.get("metrics") or {}).items()),
        "",
        "## Gates",
        "",
    ]
    gates = card.get("gates") or []
    if gates:
        lines += [_row("metric", "min", "max", "value", "passed"), _row(*["---"] * 5)]
        lines += [
            _row(g["metric"], g.get("min"), g.get("max"), g.get("value"), g.get("passed"))
            for g in gates
        ]
    else:
        lines.append("No gates.")
    validation = card.get("validation") or {}
    lines += ["", "## Data validation", ""]
    if validation.get("against"):
        lines.append(f"Checked against `{validation['against']}` before fitting.")
        findings = validation.get("findings") or []
        lines += [
            "",
            *(f"- **{f['severity']}** {f.get('column') or ''}: {f['message']}" for f in findings),
        ]
        if not findings:
            lines.append("No findings.")
    else:
        lines.append("Not checked: no reference version (a first training).")
    lineage = card.get("lineage") or {}
    frameworks = card.get("frameworks") or {}
    lines += [
        "",
        "## Lineage",
        "",
        f"- Parent version: `{lineage.get('parentVersion') or 'none'}`",
        "",
        "## Frameworks",
        "",
        *(f"- {k}: {v}" for k, v in frameworks.items()),
        "",
    ]
    return "\n".join(lines)
