"""One training run: check the estimator, read the dataset, fit, measure and write the
artifacts. Every step lives in its own module; this one puts them in order."""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlops_operator.api.trainingjob import Task
from mlops_operator.artifacts.store import (
    ArtifactStore,
    ArtifactUri,
    NotFound,
    StorageError,
    parse_uri,
)
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.data import (
    labelled_rows,
    load_dataset,
    select_columns,
    split_holdout,
)
from mlops_operator.runtime.trainer.datacheck import Finding, capture_schema, check, summary
from mlops_operator.runtime.trainer.estimator import (
    build_estimator,
    infer_task,
    resolve_estimator_class,
)
from mlops_operator.runtime.trainer.evaluate import class_scores, compute_metrics, select_metrics
from mlops_operator.runtime.trainer.failure import (
    TrainingFailure,
    ValidationFailure,
    storage_failure,
)
from mlops_operator.runtime.trainer.output import RunRecord, default_output_uri, write_artifacts
from mlops_operator.runtime.trainer.preprocess import (
    build_pipeline,
    kind_of,
    needs_pipeline,
    plan_columns,
    unknown_columns,
)
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


def _validate(
    request: TrainingRequest,
    frame: Any,
    features: list[str],
    target: str,
    store: ArtifactStore,
) -> list[Finding]:
    """The data checks against the request's reference version, before any fitting; raises
    ``DataValidationFailed`` on an error finding. No reference: nothing to check."""
    ref = request.reference
    if ref is None:
        if request.spec.validation.against:
            logger.warning(
                "validation.against=%s is resolved by the operator; run by hand, the dataset "
                "is not checked",
                request.spec.validation.against,
            )
        return []
    try:
        schema = json.loads(store.read_bytes(ref.schema_uri))
    except NotFound:
        logger.warning(
            "%s has no %s (trained before data checks): not checked", ref.name, ref.schema_uri
        )
        return []
    findings = check(frame, schema, features, target, request.spec.validation.data)
    for f in findings:
        logger.log(
            logging.ERROR if f.severity == "error" else logging.WARNING,
            "data check against %s: %s %s%s: %s",
            ref.name,
            f.severity,
            f.check,
            f" on {f.column!r}" if f.column else "",
            f.message,
        )
    if any(f.severity == "error" for f in findings):
        raise ValidationFailure(
            f"dataset {request.spec.dataset.uri} against {ref.name}: {summary(findings)}",
            [f.to_json() for f in findings],
        )
    logger.info("data checks against %s passed (%d warnings)", ref.name, len(findings))
    return findings


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

    dataset = spec.dataset
    frame, dataset_digest, version = load_dataset(
        store, dataset.uri, dataset.format, workdir, dataset.version_id
    )
    target = dataset.target
    features = select_columns(frame, target, dataset.features, dataset.uri, task)
    unknown = unknown_columns(spec.preprocessing, features)
    if unknown:
        raise TrainingFailure(
            tm.MISSING_COLUMN,
            f"spec.preprocessing.columns names {', '.join(map(repr, unknown))}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not a feature of dataset {dataset.uri}",
        )
    labelled = labelled_rows(frame, target, dataset.uri)
    findings = _validate(request, labelled, features, target, store)
    schema = capture_schema(labelled, features, target, task)

    steps = None
    model: Any = estimator
    if needs_pipeline(labelled, features, spec.preprocessing):
        steps = plan_columns(labelled, features, spec.preprocessing)
        model = build_pipeline(steps, estimator)
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
        "fitting %s on %d rows × %d features (%d held out)%s",
        class_name,
        len(x_train),
        len(features),
        len(x_test),
        " after preprocessing" if steps else "",
    )
    started = time.monotonic()
    with _logged_warnings("fit"):
        try:
            model.fit(x_train, y_train)
        except (ValueError, TypeError) as exc:
            raise TrainingFailure(tm.TRAINING_ERROR, f"fitting {class_name} failed: {exc}") from exc
    fit_seconds = round(time.monotonic() - started, 3)
    logger.info("fitted in %.2f s", fit_seconds)

    classes: list[Any] = list(getattr(model, "classes_", []))
    with _logged_warnings("metrics"):
        y_pred = model.predict(x_test)
        scores = class_scores(model, x_test, len(classes)) if task == "classification" else None
        metrics = compute_metrics(
            task, metric_names, y_test, y_pred, scores=scores, classes=classes
        )
    logger.info("%s", " ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or "no metrics")

    # Drift is measured on numbers; categories are in schema.json.
    reference = reference_stats(
        {
            f: x_train[f].to_numpy(dtype=float, na_value=np.nan)
            for f in features
            if kind_of(x_train, f) == "numeric"
        }
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
        dataset_uri=dataset.uri,
        dataset_digest=dataset_digest,
        rows=len(frame),
        train_rows=len(x_train),
        test_rows=len(x_test),
        fit_seconds=fit_seconds,
        dataset_version=version,
        preprocessing=[s.describe() for s in steps] if steps is not None else None,
        validation={
            "against": request.reference.name if request.reference else None,
            "findings": [f.to_json() for f in findings],
        },
        spec=spec,
    )
    digest = write_artifacts(
        store,
        out,
        workdir,
        estimator=model,
        reference=reference,
        record=record,
        schema=schema,
    )
    return tm.TrainingSummary(digest=digest, artifact_uri=str(out), metrics=metrics)
