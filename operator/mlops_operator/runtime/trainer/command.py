"""``mlops-operator train``: one training, its outcome in the termination message and in the
exit code, its progress on stderr for ``kubectl logs``."""

from __future__ import annotations

import logging
import sys

from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.failure import TrainingFailure, ValidationFailure
from mlops_operator.runtime.trainer.request import load_trainingjob
from mlops_operator.runtime.trainer.run import train

logger = logging.getLogger(__name__)


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    logging.getLogger("mlops_operator").setLevel(logging.INFO)


def train_command(manifest_path: str | None, output: str | None) -> int:
    """``mlops-operator train``: train, write the termination message, return the exit code.

    Exit code 0 on success, 2 on a failure no retry can fix (``PERMANENT_REASONS``), 3 when
    storage could not be reached (``STORAGE_REASONS``: not a failure of the training), 4 when
    the dataset failed its data checks before fitting, 1 on any other failure. Expected
    failures are logged as one line; an unexpected error is logged with its traceback and
    reported as ``TrainingError``.
    """
    _configure_logging()
    try:
        summary = train(load_trainingjob(manifest_path), output)
    except ValidationFailure as exc:
        logger.error("training stopped before fitting: %s", exc.message)
        tm.write_termination_message(tm.format_validation_failure(exc.message, exc.findings))
        return tm.exit_code_for(exc.reason)
    except TrainingFailure as exc:
        logger.error("training failed: %s: %s", exc.reason, exc.message)
        tm.write_termination_message(tm.format_failure(exc.reason, exc.message))
        return tm.exit_code_for(exc.reason)
    except Exception as exc:
        logger.exception("training failed with an unexpected error")
        tm.write_termination_message(
            tm.format_failure(
                tm.TRAINING_ERROR,
                f"unexpected {type(exc).__name__}: {exc}; the pod's log has the traceback",
            )
        )
        return tm.EXIT_FAILURE
    tm.write_termination_message(tm.format_success(summary))
    logger.info("training succeeded: model %s in %s", summary.digest, summary.artifact_uri)
    return 0
