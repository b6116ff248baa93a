"""The artifact layout: where runs and registered versions live, and the files in them.
The contract between the trainer, the operator and the model server. Pure.

Every run and every registered version has a directory of its own under the storage
prefix, first by Kubernetes namespace, because versions are numbered per namespace::

    s3://<bucket>/<prefix>/<namespace>/<model>/runs/<trainingjob>-<uid8>-g<generation>/
    s3://<bucket>/<prefix>/<namespace>/<model>/<version>/
    s3://<bucket>/<prefix>/_local/<model>/runs/<name>/        (``mlops-operator train`` by hand)

A namespace name is a DNS label, so it never starts with ``_`` and runs by hand never share
a directory with anything the operator writes. Each directory holds :data:`REFERENCE_FILE`,
:data:`SCHEMA_FILE`, :data:`METRICS_FILE`, :data:`MODEL_FILE`, the model card
(:data:`CARD_JSON_FILE`, :data:`CARD_FILE`) and, written last, :data:`MANIFEST_FILE`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

MODEL_FILE: Final = "model.joblib"
"""The fitted estimator, ``joblib.dump``-ed; its sha256 is the ModelVersion's digest."""

MANIFEST_FILE: Final = "manifest.json"
"""What the run produced (digest, metrics, features, lineage). Written last: its presence
marks a complete directory, so it is also copied last."""

METRICS_FILE: Final = "metrics.json"
"""The held-out metrics, also in the manifest."""

REFERENCE_FILE: Final = "reference.json"
"""The training distribution (quantile bins) the model server measures drift against."""

SCHEMA_FILE: Final = "schema.json"
"""The dataset's schema and statistics at training (columns, types, nullability, ranges,
categories, missing shares, rows, label distribution): what later datasets are checked
against before a retraining fits."""

CARD_JSON_FILE: Final = "card.json"
"""The model card as data: model, parameters, preprocessing, dataset versions, metrics,
gates, data-check findings, lineage, library versions."""

CARD_FILE: Final = "card.md"
"""The model card for people, rendered from :data:`CARD_JSON_FILE`."""

ARTIFACT_FILES: Final = (
    REFERENCE_FILE,
    SCHEMA_FILE,
    METRICS_FILE,
    MODEL_FILE,
    CARD_JSON_FILE,
    CARD_FILE,
    MANIFEST_FILE,
)
"""Every file of a complete artifact directory, in the order the trainer writes them."""

RUNS_DIR: Final = "runs"
"""The directory, beside a model's versions, that holds its unregistered training runs."""

LOCAL_DIR: Final = "_local"
"""Where runs by hand go instead of a namespace; never a namespace name (a DNS label)."""

LOCAL_RUN_NAME: Final = "local"
"""The run directory of a run by hand whose TrainingJob has no name."""

UID_CHARS: Final = 8
"""Characters of the TrainingJob's uid in its run directory: a re-created TrainingJob of the
same name gets a new directory."""


def _segment(what: str, value: str) -> str:
    """``value`` as one path segment; a name that would move the directory is refused."""
    if not value or "/" in value or value in (".", "..") or not value.isprintable():
        raise ValueError(f"{what} {value!r} cannot be one segment of an artifact path")
    return value


def _prefix_segments(prefix: str) -> list[str]:
    """The segments of a key prefix: ``""``, ``"/"``, ``"models"`` and ``"/a//b/"`` are all
    fine; the prefix is the operator's or the user's choice, so it is taken as it comes."""
    return [part for part in prefix.split("/") if part]


def _dir_uri(bucket: str, prefix: str, *segments: str) -> str:
    if not bucket or "/" in bucket:
        raise ValueError(f"bucket {bucket!r} is not a bucket name")
    key = "/".join([*_prefix_segments(prefix), *segments])
    return f"s3://{bucket}/{key}/"


def run_dir_uri(
    bucket: str,
    prefix: str,
    namespace: str,
    model: str,
    trainingjob: str,
    uid: str,
    generation: int,
) -> str:
    """Where one training run writes before it is registered:
    ``s3://<bucket>/<prefix>/<namespace>/<model>/runs/<tj>-<uid8>-g<generation>/``.

    Unique per TrainingJob object (its uid) and per generation, so a re-created TrainingJob
    or an edited spec never reuses, or finds, the files of an earlier run.
    """
    if not uid:
        raise ValueError("a run directory needs the TrainingJob's uid")
    if isinstance(generation, bool) or generation < 1:
        raise ValueError(f"generation {generation!r} is not a positive integer")
    run = f"{_segment('TrainingJob', trainingjob)}-{uid[:UID_CHARS]}-g{generation}"
    return _dir_uri(
        bucket,
        prefix,
        _segment("namespace", namespace),
        _segment("model", model),
        RUNS_DIR,
        _segment("run", run),
    )


def version_dir_uri(bucket: str, prefix: str, namespace: str, model: str, version: int) -> str:
    """Where a registered version lives: ``s3://<bucket>/<prefix>/<namespace>/<model>/<version>/``.

    Versions are numbered per namespace, so the namespace is part of the path.
    """
    if isinstance(version, bool) or version < 1:
        raise ValueError(f"version {version!r} is not a positive integer")
    return _dir_uri(
        bucket,
        prefix,
        _segment("namespace", namespace),
        _segment("model", model),
        str(version),
    )


def local_run_dir_uri(bucket: str, prefix: str, model: str, name: str | None) -> str:
    """Where a run by hand (``mlops-operator train`` without ``--output``) writes:
    ``s3://<bucket>/<prefix>/_local/<model>/runs/<name or 'local'>/``."""
    return _dir_uri(
        bucket,
        prefix,
        LOCAL_DIR,
        _segment("model", model),
        RUNS_DIR,
        _segment("run", name or LOCAL_RUN_NAME),
    )


def file_uri(dir_uri: str, name: str) -> str:
    """The URI of the file ``name`` (e.g. :data:`MODEL_FILE`) in the directory ``dir_uri``,
    which may or may not end with ``/``."""
    if not name or name.startswith("/"):
        raise ValueError(f"{name!r} is not a relative file name")
    return (dir_uri if dir_uri.endswith("/") else dir_uri + "/") + name


def in_write_order(names: Iterable[str]) -> list[str]:
    """Relative names sorted, every :data:`MANIFEST_FILE` after everything else: the order to
    write or copy a directory in, so a reader that waits for the manifest never sees a
    half-written one."""
    return sorted(names, key=lambda n: (n.rsplit("/", 1)[-1] == MANIFEST_FILE, n))
