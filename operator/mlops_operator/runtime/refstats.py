"""Reference statistics of the training data, and the population stability index (PSI).

The trainer stores, per feature, a binned distribution of the training split in
``reference.json``; the model server later bins the values it sees with the same edges
and compares the two with :func:`psi`. Conventional reading of PSI: below 0.1 no shift,
0.1 to 0.25 a moderate shift, above 0.25 a significant one.

Binning: ``edges`` are sorted cut points; ``k`` edges make ``k + 1`` bins, open at both
ends, each closed on the left: ``(-inf, e0)``, ``[e0, e1)``, ..., ``[e(k-1), +inf)``. Values
outside the training range therefore land in the outer bins instead of being lost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

BINS: Final = 10
"""Quantile bins per continuous feature."""

EPSILON: Final = 1e-4
"""Stand-in proportion for an empty bin: PSI takes the log of proportions."""

FORMAT_VERSION: Final = 1
"""Version of the ``reference.json`` layout."""


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def bin_edges(values: npt.ArrayLike, bins: int = BINS) -> list[float]:
    """Cut points for ``values`` (NaN ignored).

    A continuous column gets its deciles (deduplicated, so heavy ties give fewer bins). A
    column with at most ``bins`` distinct values (constant, boolean, small counts) gets one
    bin per value plus one above the maximum instead, so a shift between those values, or
    away from a constant, still shows up.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return []
    distinct = np.unique(x)
    if distinct.size <= bins:
        top = np.nextafter(distinct[-1], np.inf)
        return [float(v) for v in distinct] + [float(top)]
    quantiles = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    return [float(v) for v in np.unique(quantiles)]


def bin_proportions(edges: list[float], values: npt.ArrayLike) -> list[float]:
    """Fraction of the non-NaN ``values`` in each of the ``len(edges) + 1`` bins."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return [0.0] * (len(edges) + 1)
    index = np.searchsorted(np.asarray(edges, dtype=float), x, side="right")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [float(c) / x.size for c in counts]


def feature_stats(values: npt.ArrayLike, bins: int = BINS) -> dict[str, Any]:
    """Binned distribution and summary statistics of one numeric feature.

    ``std`` is the population standard deviation; ``missing`` the fraction of NaN values.
    Statistics of a column with no values are ``None``.
    """
    raw = np.asarray(values, dtype=float)
    x = raw[~np.isnan(raw)]
    edges = bin_edges(x, bins)
    return {
        "edges": edges,
        "proportions": bin_proportions(edges, x),
        "count": int(x.size),
        "mean": _finite_or_none(float(np.mean(x))) if x.size else None,
        "std": _finite_or_none(float(np.std(x))) if x.size else None,
        "min": _finite_or_none(float(np.min(x))) if x.size else None,
        "max": _finite_or_none(float(np.max(x))) if x.size else None,
        "missing": round(float(raw.size - x.size) / raw.size, 6) if raw.size else 0.0,
    }


def reference_stats(columns: Mapping[str, npt.ArrayLike], bins: int = BINS) -> dict[str, Any]:
    """The ``reference.json`` document for named numeric columns (the training split)."""
    return {
        "formatVersion": FORMAT_VERSION,
        "method": "quantile",
        "bins": bins,
        "features": {name: feature_stats(values, bins) for name, values in columns.items()},
    }


def psi(reference_feature_stats: Mapping[str, Any], values: npt.ArrayLike) -> float:
    """Population stability index of ``values`` against one feature's reference stats.

    ``sum((actual - expected) * ln(actual / expected))`` over the reference bins, with
    empty bins counted as :data:`EPSILON`. NaN values are ignored; with no values on either
    side there is nothing to compare and the result is 0.
    """
    edges = [float(e) for e in reference_feature_stats["edges"]]
    expected = np.asarray(reference_feature_stats["proportions"], dtype=float)
    if expected.size != len(edges) + 1:
        raise ValueError(
            f"reference stats have {len(edges)} edges but {expected.size} proportions; "
            f"expected {len(edges) + 1}"
        )
    actual = np.asarray(bin_proportions(edges, values), dtype=float)
    x = np.asarray(values, dtype=float)
    if expected.sum() == 0 or np.isnan(x).all():
        return 0.0
    e = np.clip(expected, EPSILON, None)
    a = np.clip(actual, EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


OTHER: Final = "\x00other"
"""The bucket of categories a reference does not list (unseen in training, or beyond the
categories it recorded); no category is spelt this way."""


def category_psi(reference_shares: Mapping[str, float], values: Iterable[str | None]) -> float:
    """Population stability index of categorical ``values`` against the training shares of
    each category (``schema.json``'s ``shares``, over the non-missing values).

    Categories the reference does not list share one bucket, whose reference share is what
    the listed ones leave (0 when they cover everything), so a stream of ever new values
    (ids) counts as one shift, not one per value. Missing values (``None``) are ignored, as
    in the reference; with no values there is nothing to compare and the result is 0.
    """
    counts: dict[str, int] = {}
    total = 0
    for value in values:
        if value is None:
            continue
        key = value if value in reference_shares else OTHER
        counts[key] = counts.get(key, 0) + 1
        total += 1
    if total == 0 or not reference_shares:
        return 0.0
    expected = {k: float(v) for k, v in reference_shares.items()}
    expected[OTHER] = max(0.0, 1.0 - sum(expected.values()))
    result = 0.0
    for key, share in expected.items():
        e = max(share, EPSILON)
        a = max(counts.get(key, 0) / total, EPSILON)
        result += (a - e) * math.log(a / e)
    return float(result)
