"""One training run: check the estimator, read the dataset, fit, measure and write the
artifacts. Every step lives in its own module; this one puts them in order."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlops_operator.api.trainingjob import Task
from mlops_operator.artifacts.store import ArtifactStore, ArtifactUri, StorageError, parse_uri
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.data import (
    labelled_rows,
    load_dataset,
    select_columns,
    split_holdout,
)
from mlops_operator.runtime.trainer.estimator import (
    build_estimator,
    infer_task,
    resolve_estimator_class,
)
from mlops_operator.runtime.trainer.evaluate import class_scores, compute_metrics, select_metrics
from mlops_operator.runtime.trainer.failure import TrainingFailure, storage_failure
from mlops_operator.runtime.trainer.output import RunRecord, default_output_uri, write_artifacts
from mlops_operator.runtime.trainer.request import TrainingRequest, validation_message
from mlops_operator.settings import Settings

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _logged_warnings(stage: str) -> Iterator[None]:
    """Log warnings raised by scikit-learn (convergence, ill-defined metrics) instead of
    letting a warnings filter turn them into errors or print them unformatted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        logger.warning("%s: %s: %s", stage, w.category.__name__, " ".join(str(w.message).split()))


def train(
    request: TrainingRequest,
    output: str | None = None,
    *,
    store: ArtifactStore | None = None,
    settings: Settings | None = None,
) -> tm.TrainingSummary:
    """Run one training and write its artifacts; raises :class:`TrainingFailure`."""
    spec = request.spec
    try:
        settings = settings or Settings()
    except ValidationError as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"invalid MLOPS_ settings: {validation_message(exc, '')}"
        ) from exc
    class_name = spec.estimator.class_name
    cls = resolve_estimator_class(class_name, settings.allowed_estimator_prefixes)
    estimator = build_estimator(cls, spec.estimator.params, spec.validation.random_state)
    task = infer_task(estimator, spec.task)
    metric_names = select_metrics(task, spec.validation.metrics)

    try:
        out = parse_uri(output or default_output_uri(spec, request.name, settings)).as_dir()
    except ValueError as exc:
        raise TrainingFailure(tm.INVALID_SPEC, f"invalid output location: {exc}") from exc
    if store is None:
        store = ArtifactStore(
            endpoint=spec.storage.endpoint or settings.s3_endpoint,
            region=spec.storage.region or settings.s3_region,
        )
    try:
        with tempfile.TemporaryDirectory(prefix="mlops-train-") as tmp:
            return _train(request, estimator, task, metric_names, store, out, Path(tmp))
    except StorageError as exc:
        raise storage_failure(exc) from exc


def _train(
    request: TrainingRequest,
    estimator: Any,
    task: Task,
    metric_names: tuple[str, ...],
    store: ArtifactStore,
    out: ArtifactUri,
    workdir: Path,
) -> tm.TrainingSummary:
    import numpy as np

    from mlops_operator.runtime.refstats import reference_stats

    spec = request.spec
    class_name = spec.estimator.class_name
    # Fail before the (possibly long) training if the results could not be stored.
    store.check_bucket(out)

    frame, dataset_digest = load_dataset(store, spec.dataset.uri, spec.dataset.format, workdir)
    target = spec.dataset.target
    features = select_columns(frame, target, spec.dataset.features, spec.dataset.uri, task)
    labelled = labelled_rows(frame, target, spec.dataset.uri)
    validation = spec.validation
    x_train, x_test, y_train, y_test = split_holdout(
        labelled[features],
        labelled[target],
        task,
        validation.test_size,
        validation.random_state,
        validation.stratify,
    )

    logger.info(
        "fitting %s on %d rows × %d features (%d held out)",
        class_name,
        len(x_train),
        len(features),
        len(x_test),
    )
    started = time.monotonic()
    with _logged_warnings("fit"):
        try:
            estimator.fit(x_train, y_train)
        except (ValueError, TypeError) as exc:
            raise TrainingFailure(tm.TRAINING_ERROR, f"fitting {class_name} failed: {exc}") from exc
    fit_seconds = round(time.monotonic() - started, 3)
    logger.info("fitted in %.2f s", fit_seconds)

    classes: list[Any] = list(getattr(estimator, "classes_", []))
    with _logged_warnings("metrics"):
        y_pred = estimator.predict(x_test)
        scores = class_scores(estimator, x_test, len(classes)) if task == "classification" else None
        metrics = compute_metrics(
            task, metric_names, y_test, y_pred, scores=scores, classes=classes
        )
    logger.info("%s", " ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or "no metrics")

    reference = reference_stats(
        {f: x_train[f].to_numpy(dtype=float, na_value=np.nan) for f in features}
    )
    record = RunRecord(
        model=spec.model,
        training_job=request.name,
        class_name=class_name,
        task=task,
        features=features,
        target=target,
        classes=classes,
        metrics=metrics,
        dataset_uri=spec.dataset.uri,
        dataset_digest=dataset_digest,
        rows=len(frame),
        train_rows=len(x_train),
        test_rows=len(x_test),
        fit_seconds=fit_seconds,
    )
    digest = write_artifacts(
        store, out, workdir, estimator=estimator, reference=reference, record=record
    )
    return tm.TrainingSummary(digest=digest, artifact_uri=str(out), metrics=metrics)
