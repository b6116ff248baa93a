"""The estimator: the allow-list check (before any import), the class, its parameters and
its task. scikit-learn is imported only once a name has passed the check."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlops_operator.api.trainingjob import CLASS_NAME, Task
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.failure import TrainingFailure

_CLASS_NAME = re.compile(CLASS_NAME)


def resolve_estimator_class(class_name: str, allowed_prefixes: Sequence[str]) -> type[Any]:
    """The scikit-learn estimator class named ``class_name``.

    The name is checked against ``allowed_prefixes`` before anything is imported, because
    importing a module runs its code.
    """
    if not _CLASS_NAME.match(class_name) or not any(
        class_name.startswith(prefix) for prefix in allowed_prefixes
    ):
        allowed = ", ".join(allowed_prefixes) or "(none)"
        raise TrainingFailure(
            tm.ESTIMATOR_NOT_ALLOWED,
            f"estimator class {class_name!r} is not allowed; allowed prefixes: {allowed}",
        )
    module_name, _, attr = class_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainingFailure(
            tm.UNKNOWN_ESTIMATOR,
            f"estimator class {class_name!r} not found: there is no module {module_name!r}",
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        close = difflib.get_close_matches(attr, [n for n in dir(module) if n[:1].isupper()], 3)
        hint = f"; did you mean {', '.join(f'{module_name}.{n}' for n in close)}?" if close else ""
        raise TrainingFailure(
            tm.UNKNOWN_ESTIMATOR,
            f"estimator class {class_name!r} not found: module {module_name!r} has no "
            f"{attr!r}{hint}",
        )
    from sklearn.base import BaseEstimator

    if not (
        isinstance(cls, type)
        and issubclass(cls, BaseEstimator)
        and callable(getattr(cls, "fit", None))
        and callable(getattr(cls, "predict", None))
    ):
        raise TrainingFailure(
            tm.UNKNOWN_ESTIMATOR,
            f"{class_name!r} is not a scikit-learn estimator with fit and predict",
        )
    return cls


def _parameter_names(cls: type[Any]) -> list[str]:
    signature = inspect.signature(cls.__init__)
    return [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def build_estimator(cls: type[Any], params: Mapping[str, Any], random_state: int) -> Any:
    """An instance of ``cls`` with ``params``, checked before any fitting.

    ``random_state`` is set when the estimator accepts one and ``params`` leave it unset,
    so runs are reproducible.
    """
    valid = _parameter_names(cls)
    unknown = [name for name in params if name not in valid]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, valid, 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TrainingFailure(
            tm.INVALID_PARAMS,
            f"{cls.__name__} has no parameter {name!r}{hint}; "
            f"its parameters are: {', '.join(valid)}",
        )
    kwargs = dict(params)
    if "random_state" in valid and "random_state" not in kwargs:
        kwargs["random_state"] = random_state
    try:
        estimator = cls(**kwargs)
        # scikit-learn checks parameter values only in fit(); check them now, so a bad
        # value is reported as such and not as a failed training.
        validate = getattr(estimator, "_validate_params", None)
        if callable(validate):
            validate()
    except (TypeError, ValueError) as exc:
        raise TrainingFailure(
            tm.INVALID_PARAMS, f"invalid {cls.__name__} parameters: {exc}"
        ) from exc
    return estimator


def infer_task(estimator: Any, declared: Task | None) -> Task:
    """The task: ``declared`` if set (it must agree with the estimator), else inferred."""
    from sklearn.base import is_classifier, is_regressor

    name = type(estimator).__name__
    kind: Task | None = None
    if is_classifier(estimator):
        kind = "classification"
    elif is_regressor(estimator):
        kind = "regression"
    if declared is None:
        if kind is None:
            raise TrainingFailure(
                tm.INVALID_SPEC,
                f"cannot tell whether {name} is a classifier or a regressor; set spec.task",
            )
        return kind
    if kind is not None and kind != declared:
        raise TrainingFailure(
            tm.INVALID_SPEC,
            f"spec.task is {declared} but {name} is a "
            f"{'classifier' if kind == 'classification' else 'regressor'}",
        )
    return declared
