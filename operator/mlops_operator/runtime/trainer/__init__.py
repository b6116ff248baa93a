"""The trainer: what runs in a TrainingJob's pod, and by hand on a laptop.

``mlops-operator train -f trainingjob.yaml`` reads the dataset, fits the estimator, measures
it on a held-out split and writes, into the output directory and in this order:
``reference.json`` (training distribution for drift detection), ``metrics.json``,
``model.joblib`` and ``manifest.json``. The manifest comes last: its presence marks a
complete run. The outcome goes to the termination message (see
:mod:`mlops_operator.runtime.termination`) and progress to stderr, for ``kubectl logs``.

One module per step: :mod:`.request` (the TrainingJob), :mod:`.estimator` (allow-list,
class, parameters, task), :mod:`.data` (dataset, columns, split), :mod:`.evaluate`
(metrics), :mod:`.output` (the files, manifest last), :mod:`.run` (the steps in order) and
:mod:`.command` (exit code and termination message); :mod:`.failure` is the error they share.

scikit-learn, pandas and joblib are imported inside functions, so the command line starts
fast and these modules can be imported where they are not needed.
"""

from mlops_operator.runtime.trainer.command import train_command
from mlops_operator.runtime.trainer.failure import TrainingFailure
from mlops_operator.runtime.trainer.request import (
    TRAININGJOB_ENV,
    TrainingRequest,
    load_trainingjob,
    parse_trainingjob,
)
from mlops_operator.runtime.trainer.run import train

__all__ = [
    "TRAININGJOB_ENV",
    "TrainingFailure",
    "TrainingRequest",
    "load_trainingjob",
    "parse_trainingjob",
    "train",
    "train_command",
]
