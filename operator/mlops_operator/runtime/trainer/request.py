"""The TrainingJob the trainer is given: from a file, stdin or ``$MLOPS_TRAININGJOB``."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from mlops_operator.api.trainingjob import VALIDATE_AGAINST_ENV, TrainingJobSpec
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.failure import TrainingFailure

TRAININGJOB_ENV: Final = "MLOPS_TRAININGJOB"
"""Environment variable holding the TrainingJob as JSON when no ``-f`` is given."""


REFERENCE_ENV: Final = VALIDATE_AGAINST_ENV


@dataclass(frozen=True)
class Reference:
    """The ModelVersion a dataset is checked against, and where its ``schema.json`` is."""

    name: str
    schema_uri: str


@dataclass(frozen=True)
class TrainingRequest:
    """A parsed TrainingJob: its name (``None`` for a bare spec), its spec, and the version
    its dataset is checked against (``None``: no check)."""

    name: str | None
    spec: TrainingJobSpec
    reference: Reference | None = None


def reference_from_env() -> Reference | None:
    """The :class:`Reference` in ``$MLOPS_VALIDATE_AGAINST``, if set."""
    text = os.environ.get(REFERENCE_ENV)
    if not text:
        return None
    try:
        doc = json.loads(text)
        return Reference(name=str(doc["name"]), schema_uri=str(doc["schemaUri"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"${REFERENCE_ENV} is not {{name, schemaUri}} JSON: {exc}"
        ) from exc


def validation_message(exc: ValidationError, prefix: str) -> str:
    """Every problem of ``exc`` as ``field.path: message``, joined by ``; ``."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def parse_trainingjob(text: str, source: str) -> TrainingRequest:
    """Parse a TrainingJob (YAML or JSON; a whole object or a bare spec) read from ``source``."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"cannot parse the TrainingJob in {source}: {exc}"
        ) from exc
    if not isinstance(doc, dict):
        raise TrainingFailure(
            tm.INVALID_SPEC, f"{source} does not hold a TrainingJob (expected a mapping)"
        )
    kind = doc.get("kind")
    if kind is not None and kind != "TrainingJob":
        raise TrainingFailure(tm.INVALID_SPEC, f"{source} holds a {kind}, not a TrainingJob")
    name: str | None = None
    raw_spec: Any = doc
    prefix = ""
    if "spec" in doc:
        raw_spec, prefix = doc["spec"], "spec"
        metadata = doc.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
            name = metadata["name"]
    try:
        spec = TrainingJobSpec.model_validate(raw_spec)
    except ValidationError as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"invalid TrainingJob in {source}: {validation_message(exc, prefix)}"
        ) from exc
    return TrainingRequest(name=name, spec=spec, reference=reference_from_env())


def load_trainingjob(manifest_path: str | None) -> TrainingRequest:
    """Read the TrainingJob from a file, from stdin (``-``) or from ``$MLOPS_TRAININGJOB``."""
    if manifest_path is None:
        text = os.environ.get(TRAININGJOB_ENV)
        if not text:
            raise TrainingFailure(
                tm.INVALID_SPEC,
                f"no TrainingJob given: pass -f FILE or set {TRAININGJOB_ENV} to its JSON",
            )
        return parse_trainingjob(text, f"${TRAININGJOB_ENV}")
    if manifest_path == "-":
        return parse_trainingjob(sys.stdin.read(), "stdin")
    try:
        text = Path(manifest_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingFailure(
            tm.INVALID_SPEC, f"cannot read the TrainingJob file {manifest_path}: {exc}"
        ) from exc
    return parse_trainingjob(text, manifest_path)
