"""Pydantic validation errors as the sentences a person reads in a status condition."""

from __future__ import annotations

from pydantic import ValidationError


def _alias(name: str | int) -> str:
    if isinstance(name, int):
        return f"[{name}]"
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def describe_validation_error(exc: ValidationError, *, root: str = "spec") -> str:
    """``spec.dataset.uri: Field required; spec.validation.testSize: ...`` (wire names)."""
    parts = []
    for error in exc.errors(include_url=False):
        path = root
        for loc in error["loc"]:
            segment = _alias(loc)
            path += segment if segment.startswith("[") else f".{segment}"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{path}: {message}")
    return "; ".join(parts)
