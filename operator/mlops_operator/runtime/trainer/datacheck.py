"""The dataset's schema at training (``schema.json``), and the checks a later dataset passes
against it before a (re)training fits.

The schema records, per column: its type (``numeric`` or ``categorical``), pandas dtype,
nullability, share of missing values, range or category set, and binned distribution (for
the population stability index, PSI); for the whole dataset: the row count and the label's
distribution. :func:`check` compares a dataset with such a schema and returns findings, each
``error`` (the training stops before fitting) or ``warning`` (reported).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from mlops_operator.api.trainingjob import DataChecks, Severity, Task
from mlops_operator.runtime.trainer.preprocess import kind_of

if TYPE_CHECKING:
    import pandas as pd

FORMAT_VERSION: Final = 1
MAX_CATEGORIES: Final = 200
"""Categories recorded per column; a column with more records the most frequent ones."""
MAX_LISTED: Final = 5
"""Values named in one finding's message."""
EPSILON: Final = 1e-4


@dataclass(frozen=True)
class Finding:
    """One result of the checks."""

    check: str
    severity: str
    column: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        """As the termination message, the manifest, the card and the status show it."""
        doc: dict[str, Any] = {"check": self.check, "severity": self.severity}
        if self.column is not None:
            doc["column"] = self.column
        doc["message"] = self.message
        return doc


def _category_shares(values: pd.Series[Any]) -> dict[str, float]:
    counts = values.dropna().astype(str).value_counts(normalize=True)
    return {str(k): round(float(v), 6) for k, v in counts.head(MAX_CATEGORIES).items()}


def _numeric(values: pd.Series[Any]) -> Any:
    import numpy as np

    return values.to_numpy(dtype=float, na_value=np.nan)


def column_schema(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    """The schema of one column."""
    import numpy as np

    from mlops_operator.runtime.refstats import bin_edges, bin_proportions

    values = frame[column]
    missing = float(values.isna().mean()) if len(values) else 0.0
    doc: dict[str, Any] = {
        "type": kind_of(frame, column),
        "dtype": str(values.dtype),
        "nullable": bool(missing > 0),
        "missingShare": round(missing, 6),
    }
    if doc["type"] == "numeric":
        x = _numeric(values)
        x = x[~np.isnan(x)]
        edges = bin_edges(x)
        doc.update(
            min=float(x.min()) if x.size else None,
            max=float(x.max()) if x.size else None,
            mean=float(x.mean()) if x.size else None,
            edges=edges,
            proportions=bin_proportions(edges, x),
        )
    else:
        shares = _category_shares(values)
        doc.update(categories=sorted(shares), shares=shares)
    return doc


def capture_schema(
    frame: pd.DataFrame, features: Sequence[str], target: str, task: Task
) -> dict[str, Any]:
    """``schema.json``: every feature's and the target's schema, rows, label distribution."""
    columns = {c: column_schema(frame, c) for c in [*features, target]}
    label: dict[str, Any]
    if task == "classification":
        label = {"kind": "classes", "shares": _category_shares(frame[target])}
    else:
        label = {
            "kind": "values",
            **{k: columns[target].get(k) for k in ("edges", "proportions", "min", "max", "mean")},
        }
    return {
        "formatVersion": FORMAT_VERSION,
        "rows": len(frame),
        "target": target,
        "task": task,
        "features": list(features),
        "columns": columns,
        "label": label,
    }


def _psi_shares(reference: Mapping[str, float], actual: Mapping[str, float]) -> float:
    import math

    total = 0.0
    for key in set(reference) | set(actual):
        e = max(float(reference.get(key, 0.0)), EPSILON)
        a = max(float(actual.get(key, 0.0)), EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def _listed(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in values[:MAX_LISTED])
    more = len(values) - MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


class _Findings:
    def __init__(self) -> None:
        self.items: list[Finding] = []

    def add(self, check: str, severity: Severity, column: str | None, message: str) -> None:
        if severity != "off":
            self.items.append(Finding(check, severity, column, message))


def check(
    frame: pd.DataFrame,
    reference: Mapping[str, Any],
    features: Sequence[str],
    target: str,
    thresholds: DataChecks,
) -> list[Finding]:
    """Findings of ``frame`` (the whole dataset, before any split) against ``reference``
    (a ``schema.json``), errors first."""
    import numpy as np

    from mlops_operator.runtime.refstats import psi

    found = _Findings()
    ref_columns: Mapping[str, Any] = reference.get("columns") or {}
    rows = len(frame)
    ref_rows = int(reference.get("rows") or 0)
    wanted = max(thresholds.min_rows, int(thresholds.min_rows_share * ref_rows))
    if rows < wanted:
        found.add(
            "tooFewRows",
            "error",
            None,
            f"{rows} rows, fewer than the {wanted} required (the reference had {ref_rows})",
        )
    for column in [*features, target]:
        ref = ref_columns.get(column)
        if not isinstance(ref, Mapping):
            if column in frame.columns:
                found.add("newColumn", "warning", column, "column not in the reference")
            continue
        if column not in frame.columns:
            found.add(
                "missingColumn",
                "error",
                column,
                f"column {column!r} of the reference is missing (renamed or dropped?)",
            )
            continue
        now = column_schema(frame, column)
        if now["type"] != ref.get("type"):
            found.add(
                "typeChanged",
                "error",
                column,
                f"was {ref.get('type')} ({ref.get('dtype')}), is now {now['type']} "
                f"({now['dtype']})",
            )
            continue
        extra = now["missingShare"] - float(ref.get("missingShare") or 0.0)
        if extra > thresholds.max_missing_share:
            found.add(
                "missingShare",
                "error",
                column,
                f"{now['missingShare']:.1%} missing, against "
                f"{float(ref.get('missingShare') or 0):.1%} in the reference (at most "
                f"{thresholds.max_missing_share:.0%} more allowed)",
            )
        if now["type"] == "numeric":
            lo, hi = ref.get("min"), ref.get("max")
            if lo is not None and hi is not None and now["min"] is not None:
                slack = (float(hi) - float(lo)) * thresholds.range_tolerance
                x = _numeric(frame[column])
                x = x[~np.isnan(x)]
                outside = int(np.sum((x < lo - slack) | (x > hi + slack)))
                if outside:
                    found.add(
                        "outOfRange",
                        thresholds.out_of_range,
                        column,
                        f"{outside} values outside the reference range [{lo:.4g}, {hi:.4g}] "
                        f"(seen [{now['min']:.4g}, {now['max']:.4g}])",
                    )
            value = psi(ref, _numeric(frame[column])) if ref.get("edges") is not None else None
        else:
            new = [c for c in now["categories"] if c not in set(ref.get("categories") or [])]
            if new and column != target:
                found.add(
                    "newCategories",
                    thresholds.new_categories,
                    column,
                    f"{len(new)} categories the reference never saw: {_listed(new)}",
                )
            value = _psi_shares(ref.get("shares") or {}, now["shares"])
        if column == target:
            if value is not None and value > thresholds.psi_error:
                found.add(
                    "labelDrift",
                    thresholds.drift,
                    column,
                    f"label distribution shifted: PSI {value:.3f} > {thresholds.psi_error:g}",
                )
            continue
        if value is not None and value > thresholds.psi_error:
            found.add(
                "drift",
                thresholds.drift,
                column,
                f"distribution shifted: PSI {value:.3f} > {thresholds.psi_error:g}",
            )
        elif value is not None and value > thresholds.psi_warning:
            found.add(
                "drift",
                "warning",
                column,
                f"distribution moved: PSI {value:.3f} > {thresholds.psi_warning:g}",
            )
    return sorted(found.items, key=lambda f: f.severity != "error")


def summary(findings: Sequence[Finding]) -> str:
    """A sentence naming the errors' columns, e.g. ``2 data checks failed: missingColumn
    on 'age'; typeChanged on 'plan'``."""
    errors = [f for f in findings if f.severity == "error"]
    parts = [f"{f.check} on {f.column!r}" if f.column else f.check for f in errors]
    columns = sorted({f.column for f in errors if f.column})
    named = f" (columns: {', '.join(columns)})" if columns else ""
    return (
        f"{len(errors)} data check{'s' if len(errors) != 1 else ''} failed before fitting"
        f"{named}: {'; '.join(parts)}"
    )
