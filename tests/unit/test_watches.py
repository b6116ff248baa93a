"""The operator asks kopf only to watch: indexes and ``on.event`` triggers. That is what lets
it skip kopf's diff-base (``kopf_settings.NoDiffBase``) and keep no bookkeeping on objects."""

from __future__ import annotations

import kopf

import mlops_operator.main  # noqa: F401  (registers every handler)
from mlops_operator import kopf_settings, watches


def test_no_handler_detects_changes_spawns_daemons_or_needs_a_finalizer() -> None:
    registry = kopf.get_default_registry()
    assert registry._changing.get_all_handlers() == []
    assert registry._spawning.get_all_handlers() == []
    assert {h.id for h in registry._watching.get_all_handlers()} >= {
        "trainingjob_event",
        "modelversion_event",
        "inferenceservice_event",
    }
    assert set(watches.INDEXES.values()) == {h.id for h in registry._indexing.get_all_handlers()}


def test_the_settings_keep_no_diff_base() -> None:
    settings = kopf.OperatorSettings()
    kopf_settings.apply(settings, resync_seconds=120)
    assert isinstance(settings.persistence.diffbase_storage, kopf_settings.NoDiffBase)
    assert settings.watching.server_timeout == 120
